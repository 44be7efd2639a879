#pragma once
/// \file
/// `proc::Duration`: how long, for timeouts, graces and deadlines.

#include <chrono>
#include <optional>

namespace proc {

/// A span of time; converts implicitly from any `std::chrono::duration` (`200ms`, `1.5s`),
/// rounding up to whole nanoseconds. A span too long for that (over ~292 years, e.g.
/// `std::chrono::hours::max()`) becomes `std::chrono::nanoseconds::max()`: no limit in effect.
struct Duration {
  std::chrono::nanoseconds value{};

  constexpr Duration() = default;
  template <class Rep, class Period>
  constexpr Duration(std::chrono::duration<Rep, Period> d)  // NOLINT: implicit by design
      : value(saturated(d)) {}

  constexpr operator std::chrono::nanoseconds() const { return value; }  // NOLINT

 private:
  template <class Rep, class Period>
  static constexpr std::chrono::nanoseconds saturated(std::chrono::duration<Rep, Period> d) {
    using std::chrono::nanoseconds;
    // Compared in floating point: converting first would overflow (undefined behaviour).
    constexpr std::chrono::duration<double> top = nanoseconds::max();
    if (std::chrono::duration<double>(d) >= top) return nanoseconds::max();
    if (std::chrono::duration<double>(d) <= -top) return nanoseconds::min();
    return std::chrono::ceil<nanoseconds>(d);
  }
};

namespace detail {

/// Now plus `timeout` on the steady clock, saturating instead of overflowing: a timeout of
/// `nanoseconds::max()` means "no limit" rather than "already expired" (or undefined
/// behaviour), and a negative one means now.
inline std::chrono::steady_clock::time_point deadline_after(std::chrono::nanoseconds timeout) {
  using Clock = std::chrono::steady_clock;
  auto now = Clock::now();
  if (timeout <= std::chrono::nanoseconds::zero()) return now;
  if (timeout > Clock::time_point::max() - now) return Clock::time_point::max();
  return now + std::chrono::duration_cast<Clock::duration>(timeout);
}

/// The same for an optional timeout: none means no deadline.
inline std::optional<std::chrono::steady_clock::time_point> deadline_after(
    const std::optional<Duration>& timeout) {
  if (!timeout) return std::nullopt;
  return deadline_after(timeout->value);
}

}  // namespace detail

}  // namespace proc
