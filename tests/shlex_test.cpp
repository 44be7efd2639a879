#include <catch2/catch.hpp>
#include <cstddef>
#include <proc/shlex.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#ifndef _WIN32
#  include <cstdio>
#endif

using namespace std::string_literals;
using Words = std::vector<std::string>;

namespace {

struct QuoteCase {
  std::string in;
  std::string out;
};

struct SplitCase {
  std::string in;
  Words out;
};

// Characters chosen to stress both quoting schemes.
const std::vector<std::string>& nasty_alphabet() {
  static const std::vector<std::string> alphabet = {" ",
                                                    "\t",
                                                    "\n",
                                                    "\r",
                                                    "\v",
                                                    "'",
                                                    "\"",
                                                    "\\",
                                                    "$",
                                                    "`",
                                                    "*",
                                                    ";",
                                                    "&",
                                                    "|",
                                                    "#",
                                                    "~",
                                                    "!",
                                                    "(",
                                                    ")",
                                                    "<",
                                                    ">",
                                                    "?",
                                                    "[",
                                                    "]",
                                                    "{",
                                                    "}",
                                                    "=",
                                                    "-",
                                                    "a",
                                                    "b",
                                                    "Z",
                                                    "0",
                                                    "/",
                                                    ".",
                                                    "%",
                                                    "@",
                                                    "\x01",
                                                    "\x1b",
                                                    "\xc3\xa9",
                                                    "\xe2\x82\xac",
                                                    "\xf0\x9f\x98\x80",
                                                    "\xff"};
  return alphabet;
}

Words random_words(std::mt19937& rng) {
  const auto& alphabet = nasty_alphabet();
  std::uniform_int_distribution<std::size_t> count(0, 6);
  std::uniform_int_distribution<std::size_t> length(0, 8);
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  Words words(count(rng));
  for (auto& w : words) {
    const std::size_t len = length(rng);
    for (std::size_t i = 0; i < len; ++i) w += alphabet[pick(rng)];
  }
  return words;
}

}  // namespace

TEST_CASE("shlex: quote table", "[shlex]") {
  const std::vector<QuoteCase> cases = {
      {"", "''"},
      {"abc", "abc"},
      {"A-Za-z0-9@%+=:,./_-", "A-Za-z0-9@%+=:,./_-"},
      {"/usr/bin/env", "/usr/bin/env"},
      {"--flag=value", "--flag=value"},
      {"a b", "'a b'"},
      {" ", "' '"},
      {"'", "''\"'\"''"},
      {"it's", "'it'\"'\"'s'"},
      {"\"", "'\"'"},
      {"$HOME", "'$HOME'"},
      {"`id`", "'`id`'"},
      {"a\\b", "'a\\b'"},
      {"*", "'*'"},
      {"a;b", "'a;b'"},
      {"~", "'~'"},
      {"line1\nline2", "'line1\nline2'"},
      {"tab\there", "'tab\there'"},
      {"caf\xc3\xa9", "'caf\xc3\xa9'"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(proc::quote(c.in) == c.out);
  }
}

TEST_CASE("shlex: join", "[shlex]") {
  CHECK(proc::join({}).empty());
  CHECK(proc::join({""}) == "''");
  CHECK(proc::join({"", ""}) == "'' ''");
  CHECK(proc::join({"ls", "-l", "my file"}) == "ls -l 'my file'");
  CHECK(proc::join({"echo", "it's"}) == "echo 'it'\"'\"'s'");
}

TEST_CASE("shlex: split table", "[shlex]") {
  const std::vector<SplitCase> cases = {
      {"", {}},
      {"   \t\n ", {}},
      {"a", {"a"}},
      {"  a  b\tc\nd\re  ", {"a", "b", "c", "d", "e"}},
      {"''", {""}},
      {"\"\"", {""}},
      {"a '' b", {"a", "", "b"}},
      {"'' ''", {"", ""}},
      {"'a b'", {"a b"}},
      {"'a\\b'", {"a\\b"}},
      {"'a\"b'", {"a\"b"}},
      {"\"a'b\"", {"a'b"}},
      {"a\"b c\"d", {"ab cd"}},
      {"a'b'\"c\"d", {"abcd"}},
      {"a\\ b", {"a b"}},
      {"\\'", {"'"}},
      {"\\\"", {"\""}},
      {"\\\\", {"\\"}},
      {"\\a", {"a"}},
      {"a\\\nb", {"ab"}},
      {"a \\\n b", {"a", "b"}},
      {"\"a\\\\b\"", {"a\\b"}},
      {"\"a\\\"b\"", {"a\"b"}},
      {"\"a\\$b\"", {"a$b"}},
      {"\"a\\`b\"", {"a`b"}},
      {"\"a\\\nb\"", {"ab"}},
      {"\"a\\xb\"", {"a\\xb"}},
      {"\"a\\'b\"", {"a\\'b"}},
      {"\"a\nb\"", {"a\nb"}},
      {"'it'\"'\"'s'", {"it's"}},
      {"echo $HOME `id` *", {"echo", "$HOME", "`id`", "*"}},
      {"a#b #c", {"a#b", "#c"}},
      {"caf\xc3\xa9 \xe2\x82\xac", {"caf\xc3\xa9", "\xe2\x82\xac"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(proc::split(c.in) == c.out);
  }
}

TEST_CASE("shlex: split errors", "[shlex]") {
  const std::vector<std::string> bad = {
      "'abc", "a 'b c", "\"abc", "a \"b\\\"", "abc\\", "\"a\\", "'", "\"", "\\",
  };
  for (const auto& in : bad) {
    CAPTURE(in);
    CHECK_THROWS_AS(proc::split(in), std::invalid_argument);
    try {
      proc::split(in);
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      CHECK(msg.find(in) != std::string::npos);
    }
  }
  CHECK_THROWS_WITH(proc::split("x 'unterminated"),
                    Catch::Contains("No closing quotation") && Catch::Contains("x 'unterminated"));
  CHECK_THROWS_WITH(proc::split("x \"unterminated"),
                    Catch::Contains("No closing quotation") && Catch::Contains("x \"unterminated"));
  CHECK_THROWS_WITH(proc::split("trailing\\"),
                    Catch::Contains("No escaped character") && Catch::Contains("trailing\\"));
}

TEST_CASE("shlex: windows_quote table", "[shlex]") {
  const std::vector<QuoteCase> cases = {
      {"", "\"\""},
      {"abc", "abc"},
      {"C:\\Program Files\\app.exe", "\"C:\\Program Files\\app.exe\""},
      {"C:\\dir\\", "C:\\dir\\"},
      {"a b", "\"a b\""},
      {"a\tb", "\"a\tb\""},
      {"a\nb", "\"a\nb\""},
      {"a\vb", "\"a\vb\""},
      {"\"", "\"\\\"\""},
      {"a\"b", "\"a\\\"b\""},
      {"a\\\"b", "\"a\\\\\\\"b\""},
      {"a\\\\\"b", "\"a\\\\\\\\\\\"b\""},
      {"a b\\", "\"a b\\\\\""},
      {"a b\\\\", "\"a b\\\\\\\\\""},
      {"a\\b c", "\"a\\b c\""},
      {"\\\\server\\share", "\\\\server\\share"},
      {"\\\\server\\my share\\", "\"\\\\server\\my share\\\\\""},
      {"caf\xc3\xa9", "caf\xc3\xa9"},
      {"caf\xc3\xa9 \xe2\x82\xac", "\"caf\xc3\xa9 \xe2\x82\xac\""},
      {"&|<>^%", "&|<>^%"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(proc::windows_quote(c.in) == c.out);
  }
}

TEST_CASE("shlex: windows_join", "[shlex]") {
  CHECK(proc::windows_join({}).empty());
  CHECK(proc::windows_join({""}) == "\"\"");
  CHECK(proc::windows_join({"prog.exe", "a b", "", "c\"d"}) == "prog.exe \"a b\" \"\" \"c\\\"d\"");
}

TEST_CASE("shlex: windows_split table", "[shlex]") {
  const std::vector<SplitCase> cases = {
      {"", {}},
      {" \t ", {}},
      {"a b\tc", {"a", "b", "c"}},
      {"  a   b  ", {"a", "b"}},
      {"a\nb", {"a\nb"}},
      {"\"\"", {""}},
      {"a \"\" b", {"a", "", "b"}},
      {"\"a b\"", {"a b"}},
      {"a\"b c\"d", {"ab cd"}},
      {"a\\b", {"a\\b"}},
      {"a\\\\b", {"a\\\\b"}},
      {"a\\\"b", {"a\"b"}},
      {"a\\\\\\\"b", {"a\\\"b"}},
      {"a\\\\\"b c\"", {"a\\b c"}},
      {"\\\\\"", {"\\"}},
      {"\"a\"\"b\"", {"a\"b"}},
      {"\"\"\"\"", {"\""}},
      {"\"a\"\"\"", {"a\""}},
      {"a\"\"b", {"ab"}},
      {"\"abc", {"abc"}},
      {"\"a b", {"a b"}},
      {"C:\\dir\\ x", {"C:\\dir\\", "x"}},
      {"\"C:\\Program Files\\\\\" x", {"C:\\Program Files\\", "x"}},
      {"\"caf\xc3\xa9 \xe2\x82\xac\"", {"caf\xc3\xa9 \xe2\x82\xac"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    CHECK(proc::windows_split(c.in) == c.out);
  }
}

TEST_CASE("shlex: random round trips", "[shlex]") {
  std::mt19937 rng(20240611u);
  for (int iter = 0; iter < 3000; ++iter) {
    const Words v = random_words(rng);

    const std::string posix = proc::join(v);
    CAPTURE(posix);
    REQUIRE(proc::split(posix) == v);

    const std::string windows = proc::windows_join(v);
    CAPTURE(windows);
    REQUIRE(proc::windows_split(windows) == v);

    for (const auto& w : v) {
      REQUIRE(proc::split(proc::quote(w)) == Words{w});
      REQUIRE(proc::windows_split(proc::windows_quote(w)) == Words{w});
    }
  }
}

TEST_CASE("shlex: split accepts arbitrary input without crashing", "[shlex]") {
  std::mt19937 rng(7u);
  const auto& alphabet = nasty_alphabet();
  std::uniform_int_distribution<std::size_t> length(0, 24);
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s;
    const std::size_t len = length(rng);
    for (std::size_t i = 0; i < len; ++i) s += alphabet[pick(rng)];
    CAPTURE(s);
    try {
      const Words words = proc::split(s);
      // Whatever split accepted, join/split must reproduce.
      REQUIRE(proc::split(proc::join(words)) == words);
    } catch (const std::invalid_argument& e) {
      REQUIRE(std::string(e.what()).find(s) != std::string::npos);
    }
    const Words wwords = proc::windows_split(s);
    REQUIRE(proc::windows_split(proc::windows_join(wwords)) == wwords);
  }
}

#ifndef _WIN32
namespace {

// Runs `/bin/sh -c 'printf "%s\0" ARGS'` through popen(3) and returns the NUL-separated words.
Words words_through_sh(const Words& v) {
  const std::string script = "printf '%s\\0' " + proc::join(v);
  const std::string command = "/bin/sh -c " + proc::quote(script);
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buf[4096];
  std::size_t got = 0;
  while ((got = std::fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, got);
  const int status = pclose(pipe);
  REQUIRE(status == 0);

  Words words;
  std::size_t start = 0;
  for (std::size_t i = 0; i < output.size(); ++i) {
    if (output[i] == '\0') {
      words.push_back(output.substr(start, i - start));
      start = i + 1;
    }
  }
  REQUIRE(start == output.size());
  return words;
}

}  // namespace

TEST_CASE("shlex: exact round trip through /bin/sh", "[shlex][posix]") {
  const std::vector<Words> lists = {
      {"plain"},
      {""},
      {"", "", ""},
      {"a b", "c\td", "e\nf", "g\rh"},
      {"'", "''", "it's", "'\"'\"'"},
      {"\"", "\\", "\\\\", "\\\"", "a\\"},
      {"$HOME", "${PATH}", "$(id)", "`id`", "$'x'", "$"},
      {"*", "?", "[a-z]", "~", "~root", "{a,b}", "!"},
      {";", "&", "|", "&&", "||", "<", ">", ">>", "(", ")", "#", "# c"},
      {"-n", "-e", "--", "-", "%s", "%d", "\\0", "\\n"},
      {"caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xff\xfe"},
      {"\x01\x02\x1b[31m", "\x7f", "\v\f"},
      {"  leading", "trailing  ", " \t\n "},
  };
  for (const auto& v : lists) {
    CAPTURE(proc::join(v));
    CHECK(words_through_sh(v) == v);
  }

  std::mt19937 rng(42u);
  for (int iter = 0; iter < 50; ++iter) {
    Words v = random_words(rng);
    if (v.empty()) v.emplace_back();  // printf with no argument would still print once
    CAPTURE(proc::join(v));
    CHECK(words_through_sh(v) == v);
  }
}
#endif
