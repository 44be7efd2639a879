// The Catch2 main, compiled once into its own library (it is the slowest file to build).
#if __has_include(<catch2/catch_session.hpp>)
#  include <catch2/catch_session.hpp>
int main(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }
#else
#  define CATCH_CONFIG_MAIN
#  include <catch2/catch.hpp>
#endif
