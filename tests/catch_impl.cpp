// Catch2's own implementation, compiled once for every test program (it is the slowest file to
// build, and its speed does not matter: compiled without optimisation). The mains are in
// catch_main.cpp and mp/mp_main.cpp.
#if __has_include(<catch2/catch_session.hpp>)
#  include <catch2/catch_session.hpp>
#else
#  define CATCH_CONFIG_RUNNER
#  include <catch2/catch.hpp>
#endif

int proc_test_run_catch(int argc, char* argv[]) { return Catch::Session().run(argc, argv); }
