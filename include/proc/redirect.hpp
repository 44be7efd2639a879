#pragma once
/// \file
/// `proc::Redirect`: where a child's stdin, stdout or stderr goes.

#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "proc/pipe.hpp"

namespace proc {

/// Tag: the child shares the parent's stream (the default).
struct Inherit {};
/// Tag: a new pipe; the parent's end is `Popen::in()`/`out()`/`err()`.
struct Pipe {};
/// Tag: the null device.
struct DevNull {};
/// Tag (for `err` only): stderr goes wherever stdout goes (Python's `STDOUT`).
struct ToStdout {};

/// Tag: the slave side of a new pseudo-terminal (see `proc::pty`).
struct Pty {};

inline constexpr Inherit inherit{};
inline constexpr Pipe pipe{};
inline constexpr DevNull devnull{};
inline constexpr ToStdout to_stdout{};
/// For `in`, `out` and `err` (any subset): those streams are the slave side of one new
/// pseudo-terminal, and the child gets a new session with it as its controlling terminal, so
/// `isatty()` is true there (programs colour and line-buffer their output, prompts work). The
/// parent's end is the master, as `Popen::in()`/`out()`/`err()` for the streams that asked. The
/// end of the child reads as the end of the stream. Its size: `Options::terminal_size`,
/// `Popen::resize_terminal`. Windows: ConPTY where the system has it, else `std::system_error`.
inline constexpr Pty pty{};

/// One of: `proc::inherit` (default), `proc::pipe`, `proc::devnull`, `proc::to_stdout` (stderr
/// only), `proc::file(path)`, `proc::append(path)`, `proc::fd(n)` (a borrowed descriptor or
/// `HANDLE`, not closed by proc), or a `PipeEnd` taken from another `Popen`.
///
/// A `PipeEnd` inside a `Redirect` is shared between copies of the `Options` holding it and is
/// consumed by the first child started with it: the parent closes its copy as soon as that child
/// has started.
class Redirect {
 public:
  enum class Kind { inherit, pipe, devnull, to_stdout, file, append, fd, pipe_end, pty, tee };

  Redirect() noexcept = default;
  Redirect(Inherit) noexcept {}
  Redirect(Pipe) noexcept : kind_(Kind::pipe) {}
  Redirect(DevNull) noexcept : kind_(Kind::devnull) {}
  Redirect(ToStdout) noexcept : kind_(Kind::to_stdout) {}
  Redirect(Pty) noexcept : kind_(Kind::pty) {}
  /// A pipe end taken from another `Popen` (`take_out()`, ...), or any `PipeEnd` you own.
  /// Throws `std::logic_error` when the end holds bytes that `readline()`/`lines()` read ahead:
  /// the child would never see them.
  Redirect(PipeEnd&& end) : kind_(Kind::pipe_end) {
    if (end.buffered() > 0)
      throw std::logic_error("proc: this PipeEnd holds " + std::to_string(end.buffered()) +
                             " bytes that readline()/lines() read ahead; a child given it would "
                             "never see them (hand the end on before reading from it)");
    end_ = std::make_shared<PipeEnd>(std::move(end));
  }

  [[nodiscard]] Kind kind() const noexcept { return kind_; }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] PipeEnd::native_handle_type handle() const noexcept { return handle_; }
  /// The shared pipe end of a `Kind::pipe_end` redirect (null otherwise).
  [[nodiscard]] const std::shared_ptr<PipeEnd>& pipe_end() const noexcept { return end_; }

  static Redirect make_file(std::filesystem::path p, bool append) {
    Redirect r;
    r.kind_ = append ? Kind::append : Kind::file;
    r.path_ = std::move(p);
    return r;
  }
  static Redirect make_fd(PipeEnd::native_handle_type h) noexcept {
    Redirect r;
    r.kind_ = Kind::fd;
    r.handle_ = h;
    return r;
  }
  /// `tee(target)`: captured like `pipe`, and copied to `target` as it arrives.
  static Redirect make_tee(const Redirect& target) {
    switch (target.kind()) {
      case Kind::inherit:
      case Kind::file:
      case Kind::append:
      case Kind::fd:
        break;
      default:
        throw std::invalid_argument(
            "proc::tee: the copy can go to proc::inherit, proc::file, proc::append or proc::fd "
            "only");
    }
    Redirect r = target;
    r.tee_of_ = target.kind_;
    r.kind_ = Kind::tee;
    return r;
  }
  /// For a `tee`: where the copy goes (inherit, file, append or fd; path() and handle() as for
  /// those kinds).
  [[nodiscard]] Kind tee_target() const noexcept { return tee_of_; }

 private:
  Kind kind_ = Kind::inherit;
  Kind tee_of_ = Kind::inherit;
  std::filesystem::path path_;
  PipeEnd::native_handle_type handle_ = detail::invalid_handle;
  std::shared_ptr<PipeEnd> end_;
};

/// The file at `path`: read for `in`; created or truncated for `out`/`err`.
inline Redirect file(std::filesystem::path path) {
  return Redirect::make_file(std::move(path), false);
}
/// The file at `path`, created if needed and appended to (for `out`/`err`).
inline Redirect append(std::filesystem::path path) {
  return Redirect::make_file(std::move(path), true);
}
/// A descriptor (POSIX) or `HANDLE` (Windows) you own; proc duplicates it into the child and
/// never closes it.
inline Redirect fd(PipeEnd::native_handle_type handle) noexcept {
  return Redirect::make_fd(handle);
}

/// For `out` and `err`: captured exactly as `proc::pipe` would be, *and* every chunk written,
/// as it arrives, to `target`: `proc::inherit` (this process's same stream), `proc::file`,
/// `proc::append` or `proc::fd`. For the helpers that pump (`run`, `communicate`,
/// `stream_lines`, `run_all`, `run_pipeline`); a target that blocks holds the pump up, and one
/// that fails (a closed pipe) stops getting copies while the capture goes on.
inline Redirect tee(const Redirect& target) { return Redirect::make_tee(target); }

}  // namespace proc
