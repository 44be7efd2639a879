#pragma once
// A small reader over a fuzzer's input bytes (our own, so the fuzzers also build without
// libFuzzer's headers, e.g. for the replay driver).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace fuzz {

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size)
      : s_(reinterpret_cast<const char*>(data), size) {}

  [[nodiscard]] bool empty() const noexcept { return s_.empty(); }

  /// The next byte, or 0 when the input is used up.
  std::uint8_t byte() {
    if (s_.empty()) return 0;
    auto b = static_cast<std::uint8_t>(s_.front());
    s_.remove_prefix(1);
    return b;
  }

  /// A string of at most `max` bytes (its length comes from one byte of the input).
  std::string bytes(std::size_t max) {
    std::size_t n = std::min<std::size_t>(byte() % (max + 1), s_.size());
    std::string out(s_.substr(0, n));
    s_.remove_prefix(n);
    return out;
  }

  /// A string of at most `max` characters drawn from `alphabet` (small alphabets make the
  /// interesting collisions and special characters likely).
  std::string from(std::string_view alphabet, std::size_t max) {
    std::size_t n = byte() % (max + 1);
    std::string out;
    for (std::size_t i = 0; i < n && !s_.empty(); ++i) out += alphabet[byte() % alphabet.size()];
    return out;
  }

  /// Everything left.
  std::string_view rest() {
    std::string_view r = s_;
    s_ = {};
    return r;
  }

 private:
  std::string_view s_;
};

/// Stops the run with a message: libFuzzer reports the abort as a finding with the input.
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

}  // namespace fuzz

#define FUZZ_CHECK(cond)              \
  do {                                \
    if (!(cond)) ::fuzz::fail(#cond); \
  } while (0)
