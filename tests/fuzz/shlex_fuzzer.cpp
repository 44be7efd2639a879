// POSIX shell words: quote, join and split round trips.
//
//   split(quote(s)) == {s}        for every string s
//   split(join(v)) == v           for every list v
//   split(s) either throws std::invalid_argument or gives words w with split(join(w)) == w
//   quote(s) == s exactly when s is non-empty and made only of the safe characters
#include <proc/shlex.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "fuzz_input.hpp"

namespace {

bool all_safe(const std::string& s) {
  for (char c : s)
    if (!proc::detail::shlex::is_posix_safe(c)) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::string raw(reinterpret_cast<const char*>(data), size);

  // Arbitrary text: split must not crash, and what it gives must survive join + split.
  try {
    std::vector<std::string> words = proc::split(raw);
    FUZZ_CHECK(proc::split(proc::join(words)) == words);
  } catch (const std::invalid_argument&) {
  }

  // A list of words: the first byte picks a separator, the rest is cut at it.
  char sep = static_cast<char>(in.byte());
  std::string_view rest = in.rest();
  std::vector<std::string> v;
  std::size_t start = 0;
  while (start <= rest.size()) {
    std::size_t end = rest.find(sep, start);
    if (end == std::string_view::npos) end = rest.size();
    v.emplace_back(rest.substr(start, end - start));
    start = end + 1;
  }
  for (const std::string& s : v) {
    std::string q = proc::quote(s);
    FUZZ_CHECK(proc::split(q) == std::vector<std::string>{s});
    FUZZ_CHECK((q == s) == (!s.empty() && all_safe(s)));
  }
  FUZZ_CHECK(proc::split(proc::join(v)) == v);
  return 0;
}
