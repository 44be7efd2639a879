// child.cpp - a small, standalone helper program that the proc tests spawn as a child process.
//
// Usage: child OP [ARGS...] [OP [ARGS...]]...
//
// The operations are executed left to right. All output goes through raw, unbuffered
// write()/WriteFile calls, so the interleaving of stdout and stderr is exactly the order of the
// operations. The process exits with status 0 after the last operation unless an operation says
// otherwise.
//
// Exit statuses used by the helper itself:
//   99  unknown operation
//   98  missing or malformed argument to an operation
//   97  a system call needed by an operation failed (e.g. fork, creating a file)
//
// Operations (see the test suite for how they are used):
//   out TEXT / err TEXT        write TEXT to stdout / stderr (no newline)
//   outln TEXT / errln TEXT    same, followed by "\n"
//   exit N                     exit immediately with status N
//   sleep MS                   sleep MS milliseconds
//   cat / cat-err              copy stdin to stdout / stderr until EOF
//   count-in                   read stdin to EOF, print the number of bytes read
//   spew N / spew-err N        write N pattern bytes ('a' + offset % 26) to stdout / stderr
//   spew-both N                N pattern bytes to both streams, alternating 4 KiB blocks
//   lines N / lines-err N      write "1\n" ... "N\n" to stdout / stderr
//   lines-both N               "o1\n" ... to stdout and "e1\n" ... to stderr
//   args                       print each remaining argument as "<len>:<bytes>\n" (ends the list)
//   cmdline                    print the raw command line (POSIX: argv joined by spaces)
//   argv0                      print argv[0]
//   env NAME                   print the value of NAME, or "<unset>"
//   envall                     print every NAME=VALUE of the environment, one per line
//   pwd                        print the current directory
//   fds                        print the open file descriptors >= 3 (Windows: "n/a")
//   raise SIG                  raise signal SIG with default disposition (Windows: exit 3)
//   sigstate                   print SIGPIPE/SIGINT dispositions and blocked state
//   umask                      print the umask in octal
//   ids                        print uid, gid and supplementary groups
//   pgid                       print pid, process group, session and parent pid
//   readline                   read one line from stdin, print "got:LINE" or "got-eof"
//   echo-lines                 reply "reply:LINE" to each stdin line until EOF
//   close-out / close-in       close stdout / stdin
//   write-after-close N        ignore SIGPIPE, spew N bytes to stdout, print "survived" to stderr
//   grandchild MS              start a grandchild that sleeps MS ms holding stdout/stderr open
//   pid                        print this process's pid
//   wait-signal                block forever (until killed)
//   trap-term                  ignore SIGTERM via a handler, then print "trapped"
//   check-stdio                print whether fds 0, 1 and 2 are open
//   touch PATH                 create or truncate the file PATH
//   isatty                     print "in=0|1 out=0|1 err=0|1" (whether each is a terminal;
//                              Windows: a console)
//   winsize                    print the terminal size of stdout as "ROWSxCOLS" (Windows: the
//                              console window's)
//   console                    Windows: from here on a NULL standard handle means the console's
//                              own, as Windows gives a pseudo-console child (Wine does not)
//   prompt TEXT                write TEXT (no newline), read one line, print "got:LINE"
//   term-cleanup TEXT          on SIGTERM: write TEXT to stdout and exit 0 (POSIX; Windows:
//                              Ctrl+Break does the same)
//   burn MS                    use MS milliseconds of CPU time (a busy loop)
//   alloc MIB                  allocate and touch MIB MiB (peak resident set >= MIB MiB)
//   concur DIR MS              create DIR/<pid>, print how many files DIR holds, sleep MS, remove
//                              the file again (run_all's concurrency limit, seen from the children)
//
// POSIX-only operations that have no Windows equivalent (fds, sigstate, umask, ids, pgid) print
// "n/a\n" on Windows.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <cwchar>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#ifdef _WIN32
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  ifndef NOMINMAX
#    define NOMINMAX
#  endif
#  include <fcntl.h>
#  include <io.h>
#  include <windows.h>
// shellapi.h (CommandLineToArgvW) needs windows.h to be included first.
#  include <shellapi.h>
#  ifdef _MSC_VER
#    pragma comment(lib, "shell32")
#  endif
#else
#  include <dirent.h>
#  include <fcntl.h>
#  include <signal.h>
#  include <sys/ioctl.h>
#  include <sys/stat.h>
#  include <sys/types.h>
#  include <time.h>
#  include <unistd.h>
extern char** environ;
#endif

namespace {

std::string& on_term_text() {
  static std::string t;
  return t;
}

unsigned long current_pid() {
#ifdef _WIN32
  return GetCurrentProcessId();
#else
  return static_cast<unsigned long>(getpid());
#endif
}

// Size of the I/O buffers and of the blocks written by the spew operations.
constexpr std::size_t kBlock = 64 * 1024;

enum class Stream { out, err };

// ---------------------------------------------------------------------------------------------
// Platform primitives: unbuffered writes to stdout/stderr and reads from stdin.
// ---------------------------------------------------------------------------------------------

#ifdef _WIN32

// Set by the op "console": a NULL standard handle means the console's own (CONIN$/CONOUT$).
// Windows gives a child of a pseudo-console (proc::pty) the console's handles for the NULL
// ones it was started with; Wine leaves them NULL, so the tests of proc::pty say "console".
bool console_fallback = false;

HANDLE console_handle(bool input) {
  static HANDLE in = INVALID_HANDLE_VALUE, out = INVALID_HANDLE_VALUE;
  HANDLE& h = input ? in : out;
  if (h == INVALID_HANDLE_VALUE)
    h = CreateFileW(input ? L"CONIN$" : L"CONOUT$", GENERIC_READ | GENERIC_WRITE,
                    FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr, OPEN_EXISTING, 0, nullptr);
  return h;
}

HANDLE std_handle_or_console(DWORD which) {
  HANDLE h = GetStdHandle(which);
  if ((h == nullptr || h == INVALID_HANDLE_VALUE) && console_fallback)
    h = console_handle(which == STD_INPUT_HANDLE);
  return h;
}

HANDLE std_handle(Stream s) {
  return std_handle_or_console(s == Stream::out ? STD_OUTPUT_HANDLE : STD_ERROR_HANDLE);
}

// Writes all of data; returns false on any failure (e.g. a broken pipe or a closed handle).
bool write_all(Stream s, const char* data, std::size_t len) {
  HANDLE h = std_handle(s);
  if (h == nullptr || h == INVALID_HANDLE_VALUE) return false;
  while (len > 0) {
    DWORD chunk = static_cast<DWORD>(std::min<std::size_t>(len, 1u << 30));
    DWORD written = 0;
    if (!WriteFile(h, data, chunk, &written, nullptr) || written == 0) return false;
    data += written;
    len -= written;
  }
  return true;
}

// Reads up to len bytes from stdin. Returns the number of bytes read, 0 at EOF (including a
// broken pipe, which is how the end of a pipe shows up on Windows) and -1 on error.
long long read_in(char* buf, std::size_t len) {
  HANDLE h = std_handle_or_console(STD_INPUT_HANDLE);
  if (h == nullptr || h == INVALID_HANDLE_VALUE) return -1;
  DWORD got = 0;
  if (!ReadFile(h, buf, static_cast<DWORD>(std::min<std::size_t>(len, 1u << 30)), &got, nullptr)) {
    DWORD e = GetLastError();
    return (e == ERROR_BROKEN_PIPE || e == ERROR_HANDLE_EOF) ? 0 : -1;
  }
  return static_cast<long long>(got);
}

#else

// Writes all of data, retrying partial writes and EINTR; returns false on any failure
// (e.g. EPIPE when SIGPIPE is ignored, or EBADF after close-out).
bool write_all(Stream s, const char* data, std::size_t len) {
  int fd = s == Stream::out ? 1 : 2;
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

// Reads up to len bytes from stdin, retrying EINTR. Returns the byte count, 0 at EOF, -1 on error.
long long read_in(char* buf, std::size_t len) {
  for (;;) {
    ssize_t n = ::read(0, buf, len);
    if (n < 0 && errno == EINTR) continue;
    return static_cast<long long>(n);
  }
}

#endif

bool put(Stream s, std::string_view text) { return write_all(s, text.data(), text.size()); }

// Prints "child: MSG" to stderr and exits with the given status.
[[noreturn]] void die(int status, std::string_view msg) {
  std::string line = "child: ";
  line += msg;
  line += '\n';
  put(Stream::err, line);
  std::exit(status);
}

// ---------------------------------------------------------------------------------------------
// Windows string conversions (the helper works with UTF-8 internally).
// ---------------------------------------------------------------------------------------------

#ifdef _WIN32

std::string to_utf8(const wchar_t* w, std::size_t len) {
  if (len == 0) return {};
  int n = WideCharToMultiByte(CP_UTF8, 0, w, static_cast<int>(len), nullptr, 0, nullptr, nullptr);
  std::string out(static_cast<std::size_t>(n > 0 ? n : 0), '\0');
  if (n > 0) {
    WideCharToMultiByte(CP_UTF8, 0, w, static_cast<int>(len), out.data(), n, nullptr, nullptr);
  }
  return out;
}

std::string to_utf8(const wchar_t* w) { return to_utf8(w, std::wcslen(w)); }

std::wstring to_wide(const std::string& s) {
  if (s.empty()) return {};
  int n = MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), nullptr, 0);
  std::wstring out(static_cast<std::size_t>(n > 0 ? n : 0), L'\0');
  if (n > 0) {
    MultiByteToWideChar(CP_UTF8, 0, s.data(), static_cast<int>(s.size()), out.data(), n);
  }
  return out;
}

#endif

// ---------------------------------------------------------------------------------------------
// Argument handling.
// ---------------------------------------------------------------------------------------------

// Returns the program arguments as UTF-8 strings. On Windows they come from the wide command
// line (CommandLineToArgvW) rather than the ANSI argv so that Unicode round-trips.
std::vector<std::string> program_args([[maybe_unused]] int argc, [[maybe_unused]] char** argv) {
  std::vector<std::string> args;
#ifdef _WIN32
  int n = 0;
  wchar_t** wargv = CommandLineToArgvW(GetCommandLineW(), &n);
  if (wargv == nullptr) die(97, "CommandLineToArgvW failed");
  for (int i = 0; i < n; ++i) args.push_back(to_utf8(wargv[i]));
  LocalFree(wargv);
#else
  for (int i = 0; i < argc; ++i) args.emplace_back(argv[i]);
#endif
  return args;
}

// A cursor over the argument list that the operations consume from.
class ArgCursor {
 public:
  explicit ArgCursor(std::vector<std::string> args) : args_(std::move(args)) {}

  bool done() const { return pos_ >= args_.size(); }
  const std::vector<std::string>& all() const { return args_; }

  // Takes the next argument (an op name or an op's parameter).
  const std::string& next(const std::string& op) {
    if (done()) die(98, "missing argument for " + op);
    return args_[pos_++];
  }

  // Takes all remaining arguments (used by `args`, which ends the op list).
  std::vector<std::string> rest() {
    std::vector<std::string> r(args_.begin() + static_cast<std::ptrdiff_t>(pos_), args_.end());
    pos_ = args_.size();
    return r;
  }

  // Takes the next argument as a signed decimal number.
  long long next_int(const std::string& op) {
    const std::string& s = next(op);
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno == ERANGE) die(98, "bad number '" + s + "' for " + op);
    return v;
  }

  // Takes the next argument as a non-negative decimal number.
  std::uint64_t next_uint(const std::string& op) {
    const std::string& s = next(op);
    errno = 0;
    char* end = nullptr;
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    // strtoull silently accepts a leading '-', so reject it explicitly.
    if (s.empty() || s.find('-') != std::string::npos || *end != '\0' || errno == ERANGE) {
      die(98, "bad number '" + s + "' for " + op);
    }
    return static_cast<std::uint64_t>(v);
  }

 private:
  std::vector<std::string> args_;
  std::size_t pos_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Operations shared by all platforms.
// ---------------------------------------------------------------------------------------------

void sleep_ms(std::uint64_t ms) {
#ifdef _WIN32
  // Sleep takes a DWORD and treats 0xFFFFFFFF as INFINITE, so sleep long waits in pieces.
  while (ms > 0) {
    DWORD piece = static_cast<DWORD>(std::min<std::uint64_t>(ms, 0x7FFFFFFF));
    Sleep(piece);
    ms -= piece;
  }
#else
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ms / 1000);
  ts.tv_nsec = static_cast<long>((ms % 1000) * 1000000);
  // nanosleep stores the remaining time when interrupted by a handled signal; keep sleeping.
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
#endif
}

// The spew pattern: byte i of the output is 'a' + i % 26. The buffer holds one block plus 26
// extra bytes so that any block can start at any phase of the pattern without copying.
const std::string& pattern() {
  static const std::string p = [] {
    std::string s(kBlock + 26, '\0');
    for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>('a' + i % 26);
    return s;
  }();
  return p;
}

// Writes count pattern bytes starting at pattern offset `offset`, in blocks of at most `block`
// bytes (block <= kBlock). Returns false if a write failed.
bool spew_range(Stream s, std::uint64_t offset, std::uint64_t count, std::size_t block) {
  const std::string& p = pattern();
  while (count > 0) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(count, block));
    if (!write_all(s, p.data() + offset % 26, n)) return false;
    offset += n;
    count -= n;
  }
  return true;
}

void spew_both(std::uint64_t total) {
  constexpr std::size_t kSmall = 4 * 1024;
  for (std::uint64_t off = 0; off < total;) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(total - off, kSmall));
    if (!spew_range(Stream::out, off, n, kSmall)) return;
    if (!spew_range(Stream::err, off, n, kSmall)) return;
    off += n;
  }
}

// Copies stdin to the given stream until EOF or a write failure.
void cat(Stream s) {
  std::vector<char> buf(kBlock);
  for (;;) {
    long long n = read_in(buf.data(), buf.size());
    if (n <= 0) return;
    if (!write_all(s, buf.data(), static_cast<std::size_t>(n))) return;
  }
}

void count_in() {
  std::vector<char> buf(kBlock);
  std::uint64_t total = 0;
  for (;;) {
    long long n = read_in(buf.data(), buf.size());
    if (n <= 0) break;
    total += static_cast<std::uint64_t>(n);
  }
  put(Stream::out, std::to_string(total) + "\n");
}

// Writes "1\n" ... "N\n", buffered in chunks of about kBlock bytes.
void lines(Stream s, std::uint64_t n) {
  std::string buf;
  buf.reserve(kBlock + 32);
  for (std::uint64_t i = 1; i <= n; ++i) {
    buf += std::to_string(i);
    buf += '\n';
    if (buf.size() >= kBlock) {
      if (!put(s, buf)) return;
      buf.clear();
    }
  }
  put(s, buf);
}

// Writes "o1\n"... to stdout and "e1\n"... to stderr, each stream buffered separately.
void lines_both(std::uint64_t n) {
  std::string out, err;
  out.reserve(kBlock + 32);
  err.reserve(kBlock + 32);
  for (std::uint64_t i = 1; i <= n; ++i) {
    std::string num = std::to_string(i);
    out += 'o';
    out += num;
    out += '\n';
    err += 'e';
    err += num;
    err += '\n';
    if (out.size() >= kBlock) {
      if (!put(Stream::out, out)) return;
      out.clear();
    }
    if (err.size() >= kBlock) {
      if (!put(Stream::err, err)) return;
      err.clear();
    }
  }
  if (put(Stream::out, out)) put(Stream::err, err);
}

// Reads one line from stdin one byte at a time, so that nothing after the newline is consumed.
// Returns false if EOF (or an error) came before any byte was read. The newline is not stored.
bool read_line(std::string& line) {
  line.clear();
  bool any = false;
  char c = 0;
  while (read_in(&c, 1) == 1) {
    any = true;
    if (c == '\n') return true;
    line += c;
  }
  return any;
}

void print_args(const std::vector<std::string>& rest) {
  std::string text;
  for (const std::string& a : rest) {
    text += std::to_string(a.size());
    text += ':';
    text += a;
    text += '\n';
  }
  put(Stream::out, text);
}

// ---------------------------------------------------------------------------------------------
// Platform-specific operations.
// ---------------------------------------------------------------------------------------------

#ifdef _WIN32

void print_cmdline(const std::vector<std::string>&) {
  put(Stream::out, to_utf8(GetCommandLineW()) + "\n");
}

void print_env(const std::string& name) {
  std::wstring wname = to_wide(name);
  std::wstring value(256, L'\0');
  for (;;) {
    // A variable with an empty value also returns 0, so reset the error to tell them apart.
    SetLastError(ERROR_SUCCESS);
    DWORD n =
        GetEnvironmentVariableW(wname.c_str(), value.data(), static_cast<DWORD>(value.size()));
    if (n == 0) {
      if (GetLastError() == ERROR_ENVVAR_NOT_FOUND) {
        put(Stream::out, "<unset>\n");
      } else {
        put(Stream::out, "\n");
      }
      return;
    }
    if (n < value.size()) {
      put(Stream::out, to_utf8(value.data(), n) + "\n");
      return;
    }
    value.resize(n);  // Too small: n is the required size including the terminator.
  }
}

void print_envall() {
  wchar_t* block = GetEnvironmentStringsW();
  if (block == nullptr) return;
  std::string text;
  // The block is a sequence of NUL-terminated "NAME=VALUE" strings ended by an empty string.
  for (const wchar_t* p = block; *p != L'\0'; p += std::wcslen(p) + 1) {
    text += to_utf8(p);
    text += '\n';
  }
  FreeEnvironmentStringsW(block);
  put(Stream::out, text);
}

void print_pwd() {
  DWORD n = GetCurrentDirectoryW(0, nullptr);
  std::wstring dir(n, L'\0');
  n = GetCurrentDirectoryW(static_cast<DWORD>(dir.size()), dir.data());
  put(Stream::out, to_utf8(dir.data(), n) + "\n");
}

// Closes one of the standard handles and forgets it. If stdout and stderr share one handle
// (e.g. both were given the same pipe), only forget it so that the other stream keeps working,
// which mirrors closing fd 1 when fd 2 is a duplicate of it on POSIX.
void close_std(DWORD which) {
  HANDLE h = GetStdHandle(which);
  if (h != nullptr && h != INVALID_HANDLE_VALUE) {
    bool shared = false;
    if (which == STD_OUTPUT_HANDLE) shared = h == GetStdHandle(STD_ERROR_HANDLE);
    if (!shared) CloseHandle(h);
  }
  SetStdHandle(which, nullptr);
}

bool std_open(DWORD which) {
  HANDLE h = GetStdHandle(which);
  if (h == nullptr || h == INVALID_HANDLE_VALUE) return false;
  SetLastError(ERROR_SUCCESS);
  return GetFileType(h) != FILE_TYPE_UNKNOWN || GetLastError() == ERROR_SUCCESS;
}

void check_stdio() {
  std::string text;
  text += std_open(STD_INPUT_HANDLE) ? "0=open " : "0=closed ";
  text += std_open(STD_OUTPUT_HANDLE) ? "1=open " : "1=closed ";
  text += std_open(STD_ERROR_HANDLE) ? "2=open\n" : "2=closed\n";
  put(Stream::out, text);
}

// Starts "<this exe> sleep MS", inheriting our standard handles, and does not wait for it.
void grandchild(std::uint64_t ms) {
  std::wstring exe(32768, L'\0');
  DWORD len = GetModuleFileNameW(nullptr, exe.data(), static_cast<DWORD>(exe.size()));
  if (len == 0) die(97, "GetModuleFileNameW failed");
  exe.resize(len);
  std::wstring cmd = L"\"" + exe + L"\" sleep " + std::to_wstring(ms);

  STARTUPINFOW si{};
  si.cb = sizeof(si);
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  si.hStdOutput = GetStdHandle(STD_OUTPUT_HANDLE);
  si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
  // Handles passed through STARTUPINFO must be inheritable. Failures (e.g. for a null handle)
  // are harmless, so they are ignored.
  for (HANDLE h : {si.hStdInput, si.hStdOutput, si.hStdError}) {
    if (h != nullptr && h != INVALID_HANDLE_VALUE) {
      SetHandleInformation(h, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
    }
  }
  PROCESS_INFORMATION pi{};
  if (!CreateProcessW(exe.c_str(), cmd.data(), nullptr, nullptr, TRUE, 0, nullptr, nullptr, &si,
                      &pi)) {
    die(97, "CreateProcessW failed");
  }
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
}

void touch(const std::string& path) {
  HANDLE h = CreateFileW(to_wide(path).c_str(), GENERIC_WRITE,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                         CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
  if (h == INVALID_HANDLE_VALUE) die(97, "cannot create " + path);
  CloseHandle(h);
}

#else  // POSIX

void print_cmdline(const std::vector<std::string>& all) {
  std::string text;
  for (std::size_t i = 0; i < all.size(); ++i) {
    if (i > 0) text += ' ';
    text += all[i];
  }
  put(Stream::out, text + "\n");
}

void print_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  put(Stream::out, v == nullptr ? std::string("<unset>\n") : std::string(v) + "\n");
}

void print_envall() {
  std::string text;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    text += *e;
    text += '\n';
  }
  put(Stream::out, text);
}

void print_pwd() {
  std::vector<char> buf(4096);
  while (getcwd(buf.data(), buf.size()) == nullptr) {
    if (errno != ERANGE) die(97, "getcwd failed");
    buf.resize(buf.size() * 2);
  }
  put(Stream::out, std::string(buf.data()) + "\n");
}

void print_fds() {
  std::vector<int> fds;
  bool listed = false;
#  ifdef __linux__
  // /proc/self/fd lists exactly the open descriptors; skip the one opendir itself uses.
  if (DIR* dir = opendir("/proc/self/fd")) {
    int own = dirfd(dir);
    while (dirent* ent = readdir(dir)) {
      if (ent->d_name[0] < '0' || ent->d_name[0] > '9') continue;  // "." and ".."
      int fd = std::atoi(ent->d_name);
      if (fd >= 3 && fd != own) fds.push_back(fd);
    }
    closedir(dir);
    listed = true;
  }
#  endif
  if (!listed) {
    for (int fd = 3; fd < 1024; ++fd) {
      if (fcntl(fd, F_GETFD) != -1) fds.push_back(fd);
    }
  }
  std::sort(fds.begin(), fds.end());
  std::string text;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    if (i > 0) text += ' ';
    text += std::to_string(fds[i]);
  }
  put(Stream::out, text + "\n");
}

void raise_signal(long long sig) {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(static_cast<int>(sig), &sa, nullptr);
  // Make sure the signal is not blocked, otherwise raise() would only leave it pending.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, static_cast<int>(sig));
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
  raise(static_cast<int>(sig));
  // Signals whose default action is to ignore them (e.g. SIGCHLD) fall through to the next op.
}

std::string disposition(int sig) {
  struct sigaction sa {};
  sigaction(sig, nullptr, &sa);
  if (!(sa.sa_flags & SA_SIGINFO)) {
    if (sa.sa_handler == SIG_DFL) return "dfl";
    if (sa.sa_handler == SIG_IGN) return "ign";
  }
  return "handler";
}

void print_sigstate() {
  sigset_t blocked;
  sigemptyset(&blocked);
  sigprocmask(SIG_BLOCK, nullptr, &blocked);
  std::string text = "SIGPIPE=" + disposition(SIGPIPE);
  text += sigismember(&blocked, SIGPIPE) == 1 ? " blocked=1" : " blocked=0";
  text += " SIGINT=" + disposition(SIGINT);
  text += sigismember(&blocked, SIGUSR1) == 1 ? " SIGUSR1blocked=1\n" : " SIGUSR1blocked=0\n";
  put(Stream::out, text);
}

void print_umask() {
  // umask can only be read by setting it, so set a dummy value and restore the original.
  mode_t old = umask(022);
  umask(old);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%03o\n", static_cast<unsigned>(old));
  put(Stream::out, buf);
}

void print_ids() {
  int n = getgroups(0, nullptr);
  std::vector<gid_t> groups(static_cast<std::size_t>(n > 0 ? n : 0));
  if (n > 0) {
    n = getgroups(n, groups.data());
    groups.resize(static_cast<std::size_t>(n > 0 ? n : 0));
  }
  std::sort(groups.begin(), groups.end());
  std::string text =
      "uid=" + std::to_string(getuid()) + " gid=" + std::to_string(getgid()) + " groups=";
  for (std::size_t i = 0; i < groups.size(); ++i) {
    if (i > 0) text += ',';
    text += std::to_string(groups[i]);
  }
  put(Stream::out, text + "\n");
}

void print_pgid() {
  put(Stream::out, "pid=" + std::to_string(getpid()) + " pgid=" + std::to_string(getpgid(0)) +
                       " sid=" + std::to_string(getsid(0)) + " ppid=" + std::to_string(getppid()) +
                       "\n");
}

void check_stdio() {
  std::string text;
  for (int fd = 0; fd < 3; ++fd) {
    text += std::to_string(fd);
    text += fcntl(fd, F_GETFD) != -1 ? "=open" : "=closed";
    text += fd < 2 ? ' ' : '\n';
  }
  put(Stream::out, text);
}

// Forks a grandchild that keeps the inherited descriptors open while it sleeps.
void grandchild(std::uint64_t ms) {
  pid_t p = fork();
  if (p < 0) die(97, "fork failed");
  if (p == 0) {
    sleep_ms(ms);
    _exit(0);
  }
}

// SIGTERM handler for trap-term: does nothing, so the signal is effectively ignored.
void ignore_signal(int) {}

void trap_term() {
  struct sigaction sa {};
  sa.sa_handler = ignore_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, nullptr);
  put(Stream::out, "trapped\n");
}

void touch(const std::string& path) {
  int fd;
  do {
    fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) die(97, "cannot create " + path);
  close(fd);
}

#endif

// ---------------------------------------------------------------------------------------------
// The op interpreter.
// ---------------------------------------------------------------------------------------------

void run(ArgCursor& args) {
  while (!args.done()) {
    const std::string op = args.next("");
    if (op == "out") {
      put(Stream::out, args.next(op));
    } else if (op == "err") {
      put(Stream::err, args.next(op));
    } else if (op == "console") {
#ifdef _WIN32
      console_fallback = true;
#endif
    } else if (op == "outln") {
      put(Stream::out, args.next(op) + "\n");
    } else if (op == "errln") {
      put(Stream::err, args.next(op) + "\n");
    } else if (op == "exit") {
      std::exit(static_cast<int>(args.next_int(op)));
    } else if (op == "sleep") {
      sleep_ms(args.next_uint(op));
    } else if (op == "cat") {
      cat(Stream::out);
    } else if (op == "cat-err") {
      cat(Stream::err);
    } else if (op == "count-in") {
      count_in();
    } else if (op == "spew") {
      spew_range(Stream::out, 0, args.next_uint(op), kBlock);
    } else if (op == "spew-err") {
      spew_range(Stream::err, 0, args.next_uint(op), kBlock);
    } else if (op == "spew-both") {
      spew_both(args.next_uint(op));
    } else if (op == "lines") {
      lines(Stream::out, args.next_uint(op));
    } else if (op == "lines-err") {
      lines(Stream::err, args.next_uint(op));
    } else if (op == "lines-both") {
      lines_both(args.next_uint(op));
    } else if (op == "args") {
      print_args(args.rest());
    } else if (op == "cmdline") {
      print_cmdline(args.all());
    } else if (op == "argv0") {
      put(Stream::out, (args.all().empty() ? std::string() : args.all()[0]) + "\n");
    } else if (op == "env") {
      print_env(args.next(op));
    } else if (op == "envall") {
      print_envall();
    } else if (op == "pwd") {
      print_pwd();
    } else if (op == "readline") {
      std::string line;
      put(Stream::out, read_line(line) ? "got:" + line + "\n" : std::string("got-eof\n"));
    } else if (op == "echo-lines") {
      std::string line;
      while (read_line(line)) {
        if (!put(Stream::out, "reply:" + line + "\n")) break;
      }
    } else if (op == "check-stdio") {
      check_stdio();
    } else if (op == "grandchild") {
      grandchild(args.next_uint(op));
    } else if (op == "touch") {
      touch(args.next(op));
    } else if (op == "isatty") {
#ifdef _WIN32
      auto tty = [](int fd) {
        const DWORD ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
        DWORD mode = 0;
        return GetConsoleMode(std_handle_or_console(ids[fd]), &mode) ? "1" : "0";
      };
#else
      auto tty = [](int fd) { return ::isatty(fd) ? "1" : "0"; };
#endif
      put(Stream::out, std::string("in=") + tty(0) + " out=" + tty(1) + " err=" + tty(2) + "\n");
    } else if (op == "winsize") {
#ifdef _WIN32
      CONSOLE_SCREEN_BUFFER_INFO info{};
      if (!GetConsoleScreenBufferInfo(std_handle(Stream::out), &info))
        die(97, "GetConsoleScreenBufferInfo");
      put(Stream::out, std::to_string(info.srWindow.Bottom - info.srWindow.Top + 1) + "x" +
                           std::to_string(info.srWindow.Right - info.srWindow.Left + 1) + "\n");
#else
      winsize ws{};
      if (ioctl(1, TIOCGWINSZ, &ws) != 0) die(97, "TIOCGWINSZ");
      put(Stream::out, std::to_string(ws.ws_row) + "x" + std::to_string(ws.ws_col) + "\n");
#endif
    } else if (op == "prompt") {
      put(Stream::out, args.next(op));
      std::string line;
      char c;
      while (read_in(&c, 1) == 1 && c != '\n') line += c;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      put(Stream::out, "got:" + line + "\n");
    } else if (op == "term-cleanup") {
      on_term_text() = args.next(op);
#ifdef _WIN32
      SetConsoleCtrlHandler(
          [](DWORD type) -> BOOL {
            if (type != CTRL_BREAK_EVENT && type != CTRL_C_EVENT) return FALSE;
            put(Stream::out, on_term_text());
            ExitProcess(0);
          },
          TRUE);
#else
      struct sigaction sa {};
      sa.sa_handler = [](int) {
        const std::string& t = on_term_text();
        ssize_t ignored = ::write(1, t.data(), t.size());
        (void)ignored;
        _exit(0);
      };
      sigemptyset(&sa.sa_mask);
      sigaction(SIGTERM, &sa, nullptr);
#endif
    } else if (op == "burn") {
      // CPU time, not wall time: loop until the process has used MS ms of it.
      const std::clock_t until =
          std::clock() + static_cast<std::clock_t>(args.next_uint(op) * CLOCKS_PER_SEC / 1000);
      volatile std::uint64_t sink = 0;
      while (std::clock() < until)
        for (int i = 0; i < 100000; ++i) sink = sink + static_cast<std::uint64_t>(i);
    } else if (op == "alloc") {
      const std::size_t bytes = static_cast<std::size_t>(args.next_uint(op)) << 20;
      char* p = new char[bytes];
      for (std::size_t i = 0; i < bytes; i += 4096) p[i] = static_cast<char>(i);
      volatile char keep = p[bytes / 2];
      (void)keep;
      delete[] p;
    } else if (op == "concur") {
      std::filesystem::path dir = args.next(op);
      std::uint64_t ms = args.next_uint(op);
      std::filesystem::path mine = dir / std::to_string(current_pid());
      touch(mine.string());
      std::size_t n = 0;
      for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.is_regular_file();
      put(Stream::out, std::to_string(n) + "\n");
      sleep_ms(ms);
      std::filesystem::remove(mine);
    } else if (op == "write-after-close") {
      std::uint64_t n = args.next_uint(op);
#ifndef _WIN32
      // The test wants the write to fail with EPIPE rather than kill us.
      struct sigaction sa {};
      sa.sa_handler = SIG_IGN;
      sigemptyset(&sa.sa_mask);
      sigaction(SIGPIPE, &sa, nullptr);
#endif
      spew_range(Stream::out, 0, n, kBlock);  // A failed write just ends the spew.
      put(Stream::err, "survived\n");
    } else if (op == "pid") {
#ifdef _WIN32
      put(Stream::out, std::to_string(GetCurrentProcessId()) + "\n");
#else
      put(Stream::out, std::to_string(getpid()) + "\n");
#endif
    } else if (op == "close-out") {
#ifdef _WIN32
      close_std(STD_OUTPUT_HANDLE);
#else
      close(1);
#endif
    } else if (op == "close-in") {
#ifdef _WIN32
      close_std(STD_INPUT_HANDLE);
#else
      close(0);
#endif
    } else if (op == "wait-signal") {
#ifdef _WIN32
      for (;;) Sleep(INFINITE);
#else
      for (;;) pause();  // pause() returns after a handled signal (e.g. trap-term); keep waiting.
#endif
    } else if (op == "trap-term") {
#ifdef _WIN32
      put(Stream::out, "trapped\n");
#else
      trap_term();
#endif
    } else if (op == "raise") {
      long long sig = args.next_int(op);
#ifdef _WIN32
      (void)sig;
      std::exit(3);  // Windows has no signals to raise; exit like abort() would.
#else
      raise_signal(sig);
#endif
    } else if (op == "fds" || op == "sigstate" || op == "umask" || op == "ids" || op == "pgid") {
#ifdef _WIN32
      put(Stream::out, "n/a\n");
#else
      if (op == "fds") print_fds();
      if (op == "sigstate") print_sigstate();
      if (op == "umask") print_umask();
      if (op == "ids") print_ids();
      if (op == "pgid") print_pgid();
#endif
    } else {
      die(99, "unknown op " + op);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
#ifdef _WIN32
  // All I/O goes through ReadFile/WriteFile, but also put the CRT descriptors in binary mode so
  // that nothing ever translates "\n". Skip descriptors without an underlying handle, for which
  // the CRT would report an invalid parameter.
  const DWORD ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
  for (int fd = 0; fd < 3; ++fd) {
    HANDLE h = GetStdHandle(ids[fd]);
    if (h != nullptr && h != INVALID_HANDLE_VALUE) _setmode(fd, _O_BINARY);
  }
#endif
  std::vector<std::string> all = program_args(argc, argv);
  ArgCursor args(std::move(all));
  if (!args.done()) args.next("");  // Skip argv[0]; it stays available through all().
  run(args);
  return 0;
}
