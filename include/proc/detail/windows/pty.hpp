#pragma once
// proc::pty on Windows: a pseudo-console (ConPTY).
//
// Calls: CreatePseudoConsole, ResizePseudoConsole, ClosePseudoConsole (looked up in kernel32 at
// run time: they exist from Windows 10 1809 on), CreatePipe, CreateFileW (NUL), CreateEventW,
// SetEvent, CreateThread, WaitForSingleObject, DuplicateHandle, CloseHandle.
//
// The model differs from a POSIX pty: a pseudo-console is fed by two pipes (what we write to
// the console's input, what the console renders as text with VT escape sequences), and the
// child is attached to it by PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE at CreateProcessW (spawn.hpp),
// with NULL standard handles for the streams that asked for the pty, so that the console
// provides them. There is no slave handle to pass.
//
// Invariants:
// - The parent keeps the write end of the input pipe (the `in()` of a pty stdin) and the read
//   end of the output pipe (the `out()`/`err()` of pty output streams); the console's ends are
//   closed right after CreatePseudoConsole (the console holds its own). With no pty output
//   stream the console renders into NUL, so nothing can fill up unread.
// - The output pipe ends only when the pseudo-console is closed. A thread started with the
//   console (before the spawn, so nothing can fail after it) waits for the child to exit and
//   then closes the console: `out()` then reaches its end, as a POSIX pty's master reads EIO
//   once the child has gone. Processes the child left attached to the console are ended by
//   that close (Windows sends them CTRL_CLOSE_EVENT); a POSIX grandchild holding the terminal
//   would keep it open instead.
// - If the spawn fails, or the PtyMaster is destroyed before it was told the child's process,
//   the thread closes the console at once.
// - ResizePseudoConsole and ClosePseudoConsole never race: both take the console's lock, and a
//   resize after the close (the child has gone) does nothing.

#include <memory>
#include <mutex>
#include <system_error>
#include <utility>

#include "proc/detail/mutex.hpp"
#include "proc/detail/windows/handle.hpp"
#include "proc/detail/windows/win32.hpp"

namespace proc::detail {

/// The ConPTY entry points of kernel32, or null where this Windows has none.
struct ConPtyApi {
  using Create = HRESULT(WINAPI*)(COORD, HANDLE, HANDLE, DWORD, void**);
  using Resize = HRESULT(WINAPI*)(void*, COORD);
  using Close = void(WINAPI*)(void*);
  Create create = nullptr;
  Resize resize = nullptr;
  Close close = nullptr;

  static const ConPtyApi& get() {
    static const ConPtyApi api = [] {
      ConPtyApi a;
      if (HMODULE k = ::GetModuleHandleW(L"kernel32.dll")) {
        a.create = reinterpret_cast<Create>(
            reinterpret_cast<void (*)()>(::GetProcAddress(k, "CreatePseudoConsole")));
        a.resize = reinterpret_cast<Resize>(
            reinterpret_cast<void (*)()>(::GetProcAddress(k, "ResizePseudoConsole")));
        a.close = reinterpret_cast<Close>(
            reinterpret_cast<void (*)()>(::GetProcAddress(k, "ClosePseudoConsole")));
      }
      if (!a.create || !a.resize || !a.close) a = ConPtyApi{};
      return a;
    }();
    return api;
  }
};

/// PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE (older SDK headers lack it).
inline constexpr DWORD_PTR pseudoconsole_attribute = 0x00020016;

[[noreturn]] inline void throw_hresult(HRESULT hr, const std::string& what) {
  // An HRESULT made from a Win32 error carries it in its low 16 bits (facility 7).
  const DWORD code =
      HRESULT_FACILITY(hr) == FACILITY_WIN32 ? HRESULT_CODE(hr) : static_cast<DWORD>(hr);
  throw std::system_error(static_cast<int>(code), std::system_category(), what);
}

/// One pseudo-console, shared by its PtyMaster and the thread that closes it.
class PseudoConsole {
 public:
  explicit PseudoConsole(void* pc) noexcept : pc_(pc) {}
  PseudoConsole(const PseudoConsole&) = delete;
  PseudoConsole& operator=(const PseudoConsole&) = delete;
  ~PseudoConsole() { close(); }

  [[nodiscard]] void* get() const noexcept { return pc_; }

  void resize(unsigned short rows, unsigned short cols) {
    std::lock_guard lock(m_);
    if (!pc_) return;  // closed: the child has exited
    HRESULT hr =
        ConPtyApi::get().resize(pc_, COORD{static_cast<SHORT>(cols), static_cast<SHORT>(rows)});
    if (FAILED(hr)) throw_hresult(hr, "proc: ResizePseudoConsole");
  }

  void close() noexcept {
    std::lock_guard lock(m_);
    if (pc_) ConPtyApi::get().close(std::exchange(pc_, nullptr));
  }

 private:
  Mutex m_;
  void* pc_;
};

/// What the closing thread needs; it owns this and deletes it.
struct PtyCloser {
  std::shared_ptr<PseudoConsole> console;
  HANDLE go = nullptr;       // set when `process` is known (or will never be)
  HANDLE process = nullptr;  // a duplicate of the child's process handle, or null
  ~PtyCloser() {
    if (go) ::CloseHandle(go);
    if (process) ::CloseHandle(process);
  }
};

inline DWORD WINAPI pty_closer_main(void* arg) {
  std::unique_ptr<PtyCloser> c(static_cast<PtyCloser*>(arg));
  ::WaitForSingleObject(c->go, INFINITE);
  if (c->process) ::WaitForSingleObject(c->process, INFINITE);
  c->console->close();
  return 0;
}

/// The parent's side of a pseudo-console: its pipe ends, resizing, and the closing thread.
class PtyMaster {
 public:
  PtyMaster() = default;
  PtyMaster(PtyMaster&& o) noexcept { *this = std::move(o); }
  PtyMaster& operator=(PtyMaster&& o) noexcept {
    if (this != &o) {
      reset();
      in_ = std::exchange(o.in_, invalid_handle);
      out_ = std::exchange(o.out_, invalid_handle);
      console_ = std::move(o.console_);
      closer_ = std::exchange(o.closer_, nullptr);
    }
    return *this;
  }
  ~PtyMaster() { reset(); }

  [[nodiscard]] bool is_open() const noexcept { return console_ != nullptr; }
  /// The pseudo-console, for PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE.
  [[nodiscard]] native_handle child_end() const noexcept { return console_->get(); }

  /// A new handle for the parent's end of stream `stream` (0: the input, else the output).
  [[nodiscard]] native_handle parent_end(int stream) const {
    native_handle h = stream == 0 ? in_ : out_;
    if (h == invalid_handle)
      throw std::logic_error("proc: the pseudo-console renders into NUL (no pty output stream)");
    return duplicate(h);
  }

  void resize(unsigned short rows, unsigned short cols) { console_->resize(rows, cols); }

  /// The child is running: the console is closed when it exits.
  void started(native_handle process) noexcept {
    if (!closer_) return;
    HANDLE dup = nullptr;
    if (::DuplicateHandle(::GetCurrentProcess(), process, ::GetCurrentProcess(), &dup, SYNCHRONIZE,
                          FALSE, 0))
      closer_->process = dup;  // (without it the console closes at once: no hang, no leak)
    ::SetEvent(std::exchange(closer_, nullptr)->go);
  }

  /// A new pseudo-console of `rows` × `cols`; `read_output`: whether a stream reads what it
  /// renders (else it goes to NUL).
  static PtyMaster create(unsigned short rows, unsigned short cols, bool read_output) {
    const ConPtyApi& api = ConPtyApi::get();
    if (!api.create)
      throw std::system_error(std::make_error_code(std::errc::function_not_supported),
                              "proc: proc::pty needs ConPTY (CreatePseudoConsole, Windows 10 "
                              "1809 or later), which this Windows does not have");
    PtyMaster m;
    PipePair in = make_pipe();
    UniqueHandle in_read(in.read);
    m.in_ = in.write;
    UniqueHandle out_write;
    if (read_output) {
      PipePair out = make_pipe();
      m.out_ = out.read;
      out_write.reset(out.write);
    } else {
      out_write.reset(open_devnull(true));
    }
    void* pc = nullptr;
    HRESULT hr = api.create(COORD{static_cast<SHORT>(cols), static_cast<SHORT>(rows)},
                            in_read.get(), out_write.get(), 0, &pc);
    if (FAILED(hr)) throw_hresult(hr, "proc: CreatePseudoConsole");
    m.console_ = std::make_shared<PseudoConsole>(pc);
    auto closer = std::make_unique<PtyCloser>();
    closer->console = m.console_;
    closer->go = ::CreateEventW(nullptr, TRUE, FALSE, nullptr);
    if (!closer->go) throw_last_error("proc: CreateEventW");
    HANDLE t = ::CreateThread(nullptr, 64 * 1024, pty_closer_main, closer.get(),
                              STACK_SIZE_PARAM_IS_A_RESERVATION, nullptr);
    if (!t) throw_last_error("proc: CreateThread");
    ::CloseHandle(t);
    m.closer_ = closer.release();  // the thread's now; it waits for `go`
    return m;
  }

 private:
  void reset() noexcept {
    if (closer_) ::SetEvent(std::exchange(closer_, nullptr)->go);  // never started: close now
    if (in_ != invalid_handle) close_handle(std::exchange(in_, invalid_handle));
    if (out_ != invalid_handle) close_handle(std::exchange(out_, invalid_handle));
    console_.reset();
  }

  native_handle in_ = invalid_handle;
  native_handle out_ = invalid_handle;
  std::shared_ptr<PseudoConsole> console_;
  PtyCloser* closer_ = nullptr;  // until started(): the thread owns it, we may still set it
};

/// A new pseudo-console. There is no slave to close (`slave` stays invalid); `child` is the
/// pseudo-console itself, which spawn.hpp recognises in SpawnRequest::ctty and stdio.
struct PtyPair {
  PtyMaster master;
  native_handle slave = invalid_handle;
  native_handle child = invalid_handle;
};

inline PtyPair make_pty(unsigned short rows, unsigned short cols, bool read_output) {
  PtyPair p;
  p.master = PtyMaster::create(rows, cols, read_output);
  p.child = p.master.child_end();
  return p;
}

}  // namespace proc::detail
