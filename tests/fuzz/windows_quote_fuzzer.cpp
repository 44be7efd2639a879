// Windows command lines: windows_quote/windows_join/windows_split against reference parsers of
// the rules, written here from their descriptions (not from proc's code).
//
// Two rule sets differ in one place, a `""` inside a quoted part:
//   - the MSVC CRT since 2008 reads a literal `"` and stays inside the quotes (what
//     windows_split documents);
//   - CommandLineToArgvW (shell32) reads a literal `"` and leaves the quotes.
// Both treat the first token specially when asked to parse a whole command line (the program
// name: up to the next `"` if it starts with one, else up to the first space or tab, with no
// backslash processing).
//
// Properties:
//   windows_split(s) == crt_args(s)                       for every s
//   windows_split(windows_join(v)) == v                    for every v
//   shell32_args(windows_join(v)) == v                     (join never writes `""` in quotes)
//   shell32_command_line(windows_join(v)) == v             when v[0] is a plausible program
//                                                          path (no `"`, and no trailing `\`
//                                                          if it needs quotes), as documented
#include <proc/shlex.hpp>
#include <string>
#include <vector>

#include "fuzz_input.hpp"

namespace {

bool blank(char c) { return c == ' ' || c == '\t'; }

// The CRT rules (post-2008), as a character-at-a-time state machine: backslashes are counted
// and settled when the next other character shows what they were.
std::vector<std::string> crt_args(std::string_view s) {
  std::vector<std::string> argv;
  std::string cur;
  bool have = false, quoted = false;
  std::size_t pending = 0;  // backslashes not yet written
  std::size_t i = 0;
  while (i <= s.size()) {
    const bool end = i == s.size();
    const char c = end ? '\0' : s[i];
    if (!end && c == '\\') {
      ++pending;
      have = true;
      ++i;
      continue;
    }
    if (!end && c == '"') {
      cur.append(pending / 2, '\\');
      bool escaped = pending % 2 == 1;
      pending = 0;
      have = true;
      if (escaped) {
        cur += '"';
      } else if (quoted && i + 1 < s.size() && s[i + 1] == '"') {
        cur += '"';  // "" inside quotes: a literal quote; still quoted
        ++i;
      } else {
        quoted = !quoted;
      }
      ++i;
      continue;
    }
    cur.append(pending, '\\');
    pending = 0;
    if (end || (!quoted && blank(c))) {
      if (have) argv.push_back(cur);
      cur.clear();
      have = false;
      ++i;
      continue;
    }
    cur += c;
    have = true;
    ++i;
  }
  return argv;
}

// CommandLineToArgvW's rules for the arguments, in the shape of the well-known implementation
// that counts runs of quotes: after an unescaped `"` the quote count goes up; within a run,
// every third quote is a literal one and resets the count; a count of 2 at the end of a run
// means "left the quotes".
std::vector<std::string> shell32_args(std::string_view s, std::size_t i = 0) {
  std::vector<std::string> argv;
  while (i < s.size() && blank(s[i])) ++i;
  if (i >= s.size()) return argv;
  std::string cur;
  std::size_t backslashes = 0;
  int qcount = 0;
  while (i < s.size()) {
    char c = s[i];
    if (blank(c) && qcount == 0) {
      argv.push_back(cur);
      cur.clear();
      backslashes = 0;
      while (i < s.size() && blank(s[i])) ++i;
      if (i >= s.size()) return argv;
      continue;
    }
    if (c == '\\') {
      cur += c;
      ++backslashes;
      ++i;
      continue;
    }
    if (c == '"') {
      if (backslashes % 2 == 0) {
        cur.resize(cur.size() - backslashes / 2);
        ++qcount;
      } else {
        cur.resize(cur.size() - backslashes / 2 - 1);
        cur += '"';
      }
      backslashes = 0;
      ++i;
      while (i < s.size() && s[i] == '"') {
        if (++qcount == 3) {
          cur += '"';
          qcount = 0;
        }
        ++i;
      }
      if (qcount == 2) qcount = 0;
      continue;
    }
    cur += c;
    backslashes = 0;
    ++i;
  }
  argv.push_back(cur);
  return argv;
}

// A whole command line as CommandLineToArgvW reads it: the program name, then the arguments.
std::vector<std::string> shell32_command_line(std::string_view s) {
  std::vector<std::string> argv;
  std::size_t i = 0;
  std::string prog;
  if (!s.empty() && s[0] == '"') {
    i = 1;
    while (i < s.size() && s[i] != '"') prog += s[i++];
    if (i < s.size()) ++i;  // the closing quote
  } else {
    while (i < s.size() && !blank(s[i])) prog += s[i++];
  }
  argv.push_back(prog);
  auto rest = shell32_args(s, i);
  argv.insert(argv.end(), rest.begin(), rest.end());
  return argv;
}

bool needs_quotes(const std::string& s) {
  if (s.empty()) return true;
  for (char c : s)
    if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '"') return true;
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  std::string_view raw(reinterpret_cast<const char*>(data), size);

  FUZZ_CHECK(proc::windows_split(raw) == crt_args(raw));

  // A list of arguments from a small alphabet, where the hard cases live.
  std::vector<std::string> v;
  std::size_t count = in.byte() % 6;
  for (std::size_t k = 0; k < count; ++k) v.push_back(in.from("ab \t\\\"\n\v", 12));
  if (!in.empty()) v.emplace_back(in.rest());

  const std::string line = proc::windows_join(v);
  FUZZ_CHECK(proc::windows_split(line) == v);
  FUZZ_CHECK(crt_args(line) == v);
  FUZZ_CHECK(shell32_args(line) == v);
  for (const std::string& s : v)
    FUZZ_CHECK(proc::windows_split(proc::windows_quote(s)) == std::vector<std::string>{s});
  if (!v.empty() && v[0].find('"') == std::string::npos &&
      !(needs_quotes(v[0]) && !v[0].empty() && v[0].back() == '\\'))
    FUZZ_CHECK(shell32_command_line(line) == v);
  return 0;
}
