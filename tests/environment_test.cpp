// proc::Environment.
#include <cstdlib>

#include "test_support.hpp"

TEST_CASE("environment: a sorted map with get, set, erase, contains, size") {
  proc::Environment env{{"B", "2"}, {"A", "1"}};
  CHECK(env.size() == 2);
  CHECK(env.get("A") == "1");
  CHECK_FALSE(env.get("C").has_value());
  env.set("C", "3");
  env.set("A", "one");
  CHECK(env.get("A") == "one");
  CHECK(env.contains("C"));
  env.erase("B");
  env.erase("never-there");
  CHECK_FALSE(env.contains("B"));
  std::vector<std::string> names;
  for (const auto& [name, value] : env) names.push_back(name);
  CHECK(names == std::vector<std::string>{"A", "C"});
  proc::Environment empty;
  CHECK(empty.size() == 0);
  env.set("EMPTY", "");
  CHECK(env.get("EMPTY") == "");
}

TEST_CASE("environment: bad names and NUL bytes are invalid_argument naming them") {
  proc::Environment env;
  CHECK_THROWS_AS(env.set("", "x"), std::invalid_argument);
  CHECK_THROWS_WITH(env.set("A=B", "x"), Catch::Contains("A=B"));
  CHECK_THROWS_AS(env.set(std::string("A\0B", 3), "x"), std::invalid_argument);
  CHECK_THROWS_WITH(env.set("NAME", std::string("a\0b", 3)), Catch::Contains("NAME"));
  CHECK_THROWS_AS((proc::Environment{{"X=Y", "1"}}), std::invalid_argument);
}

TEST_CASE("environment: current() copies this process's environment") {
#if defined(_WIN32)
  _putenv_s("PROC_ENV_TEST", "value with spaces");
#else
  ::setenv("PROC_ENV_TEST", "value=with=equals", 1);
#endif
  auto env = proc::Environment::current();
  CHECK(env.contains("PATH"));
#if !defined(_WIN32)
  CHECK(env.get("PROC_ENV_TEST") == "value=with=equals");
#else
  CHECK(env.get("PROC_ENV_TEST") == "value with spaces");
#endif
}

TEST_CASE("environment: a child sees exactly the environment given") {
  proc::Environment env{{"ONLY", "this"}, {"AND", "that"}};
  auto out = proc::run(test::cmd({"envall"}), {.out = proc::pipe, .env = env}).out;
#if !defined(_WIN32)
  CHECK(out == "AND=that\nONLY=this\n");
#else
  CHECK(out.find("ONLY=this") != std::string::npos);
#endif
}

#if defined(_WIN32)
TEST_CASE("environment: names are case-insensitive on Windows") {
  proc::Environment env{{"Path", "a"}};
  env.set("PATH", "b");
  CHECK(env.size() == 1);
  CHECK(env.get("path") == "b");
  CHECK(env.begin()->first == "Path");  // the first spelling is kept
  env.erase("PATH");
  CHECK(env.size() == 0);
}
#else
TEST_CASE("environment: names are case-sensitive on POSIX") {
  proc::Environment env{{"Path", "a"}};
  env.set("PATH", "b");
  CHECK(env.size() == 2);
  CHECK(env.get("Path") == "a");
  CHECK(env.get("PATH") == "b");
}
#endif
