#pragma once
// Starting a child on Windows.
//
// Calls: CreateProcessW (CREATE_SUSPENDED, CREATE_UNICODE_ENVIRONMENT,
// EXTENDED_STARTUPINFO_PRESENT, CREATE_NEW_PROCESS_GROUP, the caller's creation_flags;
// STARTF_USESHOWWINDOW + SW_HIDE for hide_window), InitializeProcThreadAttributeList,
// UpdateProcThreadAttribute (PROC_THREAD_ATTRIBUTE_HANDLE_LIST, PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE
// for proc::pty: see pty.hpp), DeleteProcThreadAttributeList,
// DuplicateHandle, GetStdHandle, GetHandleInformation, SetHandleInformation, CreateJobObjectW,
// SetInformationJobObject, AssignProcessToJobObject, ResumeThread, TerminateProcess,
// GetFileAttributesW, GetSystemDirectoryW, GetWindowsDirectoryW, GetFileType.
//
// Invariants:
// - Only the child's three standard handles are inherited: they are inheritable *duplicates*
//   made for this one spawn and named in PROC_THREAD_ATTRIBUTE_HANDLE_LIST, and they are closed
//   right after CreateProcessW. Duplicating, spawning and closing happen under one process-wide
//   lock, so no other spawn of ours can see another's duplicates even where the attribute list
//   is not honoured (close_fds = false, or an old Windows) — the same lock Rust's std uses.
// - The handles of SpawnRequest::inherit (proc::mp's channels) reach the child at their own
//   values, which it was told in advance, so they cannot be duplicates: each is made inheritable
//   (SetHandleInformation) under that same lock, named in the handle list, and given back its
//   previous flag right after CreateProcessW, whether it succeeded or not.
// - Arguments, environment, cwd and program path are UTF-8 in the API and UTF-16 here.
// - The program is found in the parent, through the *child's* PATH (after env/env_update) and
//   PATHEXT, so a missing program is ERROR_FILE_NOT_FOUND whose message lists what was searched.
//   The current directory is not searched implicitly (unlike CreateProcessW's own search).
// - .bat/.cmd files run through cmd.exe with every argument quoted for cmd, or are refused
//   (quote.hpp): never an injection.
// - Every child starts suspended and is put into a job object of its own before it runs a single
//   instruction, so it cannot start a grandchild outside the job. The job is how the tree is
//   killed (signal_group, run() timeouts) and, with JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE, how
//   kill_on_parent_exit works. The job allows breakaway (JOB_OBJECT_LIMIT_BREAKAWAY_OK): a
//   grandchild that asks for CREATE_BREAKAWAY_FROM_JOB leaves the tree, as it would under a shell.
// - A child that was created but could not be set up (job, resume) is terminated, never left.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "proc/detail/mutex.hpp"
#include "proc/detail/spawn_request.hpp"
#include "proc/detail/windows/environ.hpp"
#include "proc/detail/windows/handle.hpp"
#include "proc/detail/windows/pty.hpp"
#include "proc/detail/windows/quote.hpp"
#include "proc/detail/windows/signals.hpp"
#include "proc/detail/windows/win32.hpp"

namespace proc::detail {

using SpawnRequest = BasicSpawnRequest<native_handle>;

/// Thrown by spawn(); carries what SpawnError needs (code: a GetLastError() value).
struct SpawnFailure {
  int code;
  std::string program;
  std::string message;
};

/// Which way a request is spawned (one way on Windows; exposed as on POSIX).
enum class SpawnPath { create_process };

/// A started child: the handles Process takes over.
struct SpawnResult {
  DWORD pid = 0;
  SpawnPath path = SpawnPath::create_process;
  bool group_leader = false;   // started with CREATE_NEW_PROCESS_GROUP
  bool own_console = false;    // CREATE_NEW_CONSOLE, DETACHED_PROCESS or CREATE_NO_WINDOW
  bool kill_on_close = false;  // its job kills the tree when the last job handle closes
  UniqueHandle process;
  UniqueHandle job;  // null only when the job could not be made and nothing required it
};

/// The category of SpawnError codes: GetLastError() values.
inline const std::error_category& spawn_error_category() noexcept { return std::system_category(); }

// ---------------------------------------------------------------------------------------------
// Directories and the shell.

inline std::wstring system_directory() {
  wchar_t buf[MAX_PATH + 1];
  UINT n = ::GetSystemDirectoryW(buf, MAX_PATH + 1);
  if (n == 0 || n > MAX_PATH) return L"C:\\Windows\\System32";
  return std::wstring(buf, n);
}

inline std::wstring windows_directory() {
  wchar_t buf[MAX_PATH + 1];
  UINT n = ::GetWindowsDirectoryW(buf, MAX_PATH + 1);
  if (n == 0 || n > MAX_PATH) return L"C:\\Windows";
  return std::wstring(buf, n);
}

/// The cmd.exe of the system directory (not %ComSpec%, which the environment could redirect).
inline std::string cmd_exe_path() { return to_utf8(system_directory() + L"\\cmd.exe"); }

/// The argv of a shell command line: `cmd.exe /d /s /c <command>`. spawn() hands the command to
/// cmd.exe verbatim (see shell_command_line), not quoted as an argument.
inline std::vector<std::string> shell_argv(const std::string& command) {
  return {cmd_exe_path(), "/d", "/s", "/c", command};
}

/// Rejects options Windows cannot honour, naming each (never silently ignored).
/// start_new_session and process_group = 0 are CREATE_NEW_PROCESS_GROUP; process_group = n > 0
/// (joining another group) is rejected by spawn(), which sees the number.
/// Windows-only options exist here; their values are CreateProcessW's business.
inline void check_windows_only_options(std::uint32_t, bool) {}

inline void check_platform_options(const std::vector<int>& pass_fds, bool umask, bool user,
                                   bool group, bool extra_groups, bool pre_exec,
                                   bool /*new_session*/, bool /*process_group*/) {
  auto reject = [](const char* option, const char* why) {
    throw std::invalid_argument(std::string("proc: ") + option + " is not supported on Windows (" +
                                why + ")");
  };
  if (!pass_fds.empty())
    reject("pass_fds",
           "a child inherits only its three standard handles; pass a HANDLE value "
           "another way, e.g. on the command line of an inheritable duplicate");
  if (umask) reject("umask", "Windows has no umask");
  if (user) reject("user", "use CreateProcessAsUser or a service account");
  if (group) reject("group", "Windows has no POSIX groups");
  if (extra_groups) reject("extra_groups", "Windows has no POSIX groups");
  if (pre_exec) reject("pre_exec", "CreateProcessW runs no code of ours in the child");
}

// ---------------------------------------------------------------------------------------------
// Finding the program.

struct ResolvedProgram {
  std::wstring path;
  bool batch = false;  // a .bat or .cmd file: runs through cmd.exe
};

inline bool is_separator(wchar_t c) noexcept { return c == L'\\' || c == L'/'; }

inline bool has_directory(std::wstring_view p) noexcept {
  return p.find_first_of(L"\\/") != std::wstring_view::npos || (p.size() >= 2 && p[1] == L':');
}

/// Whether `p` names a place relative to the current directory ("bin\\x", ".\\x"), not to a
/// drive or a root ("C:\\x", "\\x", "\\\\server\\share\\x", "C:x").
inline bool is_relative(std::wstring_view p) noexcept {
  return !p.empty() && !is_separator(p[0]) && !(p.size() >= 2 && p[1] == L':');
}

/// The extension of the last path component (".exe"), or empty.
inline std::wstring_view extension_of(std::wstring_view p) noexcept {
  auto slash = p.find_last_of(L"\\/:");
  auto dot = p.rfind(L'.');
  if (dot == std::wstring_view::npos || (slash != std::wstring_view::npos && dot < slash))
    return {};
  return p.substr(dot);
}

inline bool is_file(const std::wstring& p) {
  DWORD a = ::GetFileAttributesW(p.c_str());
  return a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY);
}

/// The PATHEXT extensions CreateProcessW can start (.COM, .EXE, .BAT, .CMD), in PATHEXT's
/// order; others (.JS, .PY, ...) need an interpreter and are skipped.
inline std::vector<std::wstring> launchable_extensions(const std::optional<std::wstring>& pathext) {
  static const wchar_t* known[] = {L".COM", L".EXE", L".BAT", L".CMD"};
  std::vector<std::wstring> out;
  if (pathext) {
    std::wstring_view rest = *pathext;
    while (!rest.empty()) {
      auto semi = rest.find(L';');
      auto ext = rest.substr(0, semi);
      rest = semi == std::wstring_view::npos ? std::wstring_view() : rest.substr(semi + 1);
      for (const wchar_t* k : known)
        if (compare_names(ext, k) == 0 &&
            std::none_of(out.begin(), out.end(), [&](const auto& e) { return e == k; }))
          out.emplace_back(k);
    }
  }
  if (out.empty()) out.assign(std::begin(known), std::end(known));
  return out;
}

inline std::wstring join_extensions(const std::vector<std::wstring>& exts) {
  std::wstring s;
  for (const auto& e : exts) s += (s.empty() ? L"" : L";") + e;
  return s;
}

/// `base` itself when `exact` and it is a file, else the first `base + ext` that is a file.
inline std::optional<std::wstring> probe(const std::wstring& base, bool exact,
                                         const std::vector<std::wstring>& exts) {
  if (exact && is_file(base)) return base;
  for (const auto& e : exts)
    if (is_file(base + e)) return base + e;
  return std::nullopt;
}

inline bool is_batch(std::wstring_view path) {
  auto ext = extension_of(path);
  return compare_names(ext, L".bat") == 0 || compare_names(ext, L".cmd") == 0;
}

/// Finds the file to start. A name with a directory part is used as given (relative to the
/// child's cwd when one is set, as on POSIX), trying PATHEXT extensions when the file itself is
/// not there. A bare name is looked up in each directory of the child's PATH (the system and
/// Windows directories when it has none): the name itself when it has an extension, then the
/// name with each extension of PATHEXT. Throws SpawnFailure (ERROR_FILE_NOT_FOUND).
inline ResolvedProgram resolve_program(const std::string& program,
                                       const std::optional<std::wstring>& path,
                                       const std::optional<std::wstring>& pathext,
                                       const std::wstring& cwd) {
  const std::wstring name = to_wide(program, "the program name");
  const auto exts = launchable_extensions(pathext);
  if (name.empty())
    throw SpawnFailure{ERROR_FILE_NOT_FOUND, program, "proc: cannot run '': empty program name"};
  if (has_directory(name)) {
    std::wstring base = name;
    if (!cwd.empty() && is_relative(name))
      base = cwd + (is_separator(cwd.back()) ? L"" : L"\\") + name;
    if (auto found = probe(base, true, exts)) return {*found, is_batch(*found)};
    throw SpawnFailure{ERROR_FILE_NOT_FOUND, program,
                       "proc: cannot run '" + program + "': no such file (tried '" + to_utf8(base) +
                           "' and the extensions " + to_utf8(join_extensions(exts)) + ")"};
  }
  std::wstring dirs =
      path && !path->empty() ? *path : system_directory() + L";" + windows_directory();
  const bool exact = !extension_of(name).empty();
  std::wstring_view rest = dirs;
  while (!rest.empty()) {
    auto semi = rest.find(L';');
    std::wstring dir(rest.substr(0, semi));
    rest = semi == std::wstring_view::npos ? std::wstring_view() : rest.substr(semi + 1);
    if (dir.size() >= 2 && dir.front() == L'"' && dir.back() == L'"')
      dir = dir.substr(1, dir.size() - 2);
    if (dir.empty()) continue;
    if (!is_separator(dir.back())) dir += L'\\';
    if (auto found = probe(dir + name, exact, exts)) return {*found, is_batch(*found)};
  }
  throw SpawnFailure{ERROR_FILE_NOT_FOUND, program,
                     "proc: cannot run '" + program + "': not found in PATH (searched: " +
                         to_utf8(dirs) + "; extensions: " + to_utf8(join_extensions(exts)) + ")"};
}

inline void check_cwd(const SpawnRequest& rq, const std::wstring& cwd) {
  DWORD a = ::GetFileAttributesW(cwd.c_str());
  DWORD code = a == INVALID_FILE_ATTRIBUTES     ? ::GetLastError()
               : (a & FILE_ATTRIBUTE_DIRECTORY) ? 0
                                                : static_cast<DWORD>(ERROR_DIRECTORY);
  if (code)
    throw SpawnFailure{
        static_cast<int>(code), rq.program,
        "proc: cannot run '" + rq.program + "': cannot change directory to '" + to_utf8(cwd) + "'"};
}

// ---------------------------------------------------------------------------------------------
// Spawning.

/// CreateProcessW's limit on lpCommandLine, terminator included.
inline constexpr std::size_t max_command_line = 32767;

/// Held while inheritable duplicates exist (see the invariants above).
inline Mutex& spawn_mutex() {
  static Mutex m;
  return m;
}

/// Whether `h` is one of the console pseudo handles of Windows 7 and earlier (low two bits set,
/// a character device), which PROC_THREAD_ATTRIBUTE_HANDLE_LIST rejects. Real handles are
/// multiples of 4. (Python's subprocess filters them the same way.)
inline bool is_console_pseudo_handle(HANDLE h) noexcept {
  return (reinterpret_cast<std::uintptr_t>(h) & 3) == 3 && ::GetFileType(h) == FILE_TYPE_CHAR;
}

/// A PROC_THREAD_ATTRIBUTE_LIST naming the handles a child may inherit (when `handles` is not
/// empty) and the pseudo-console it is attached to (when `console` is not null).
class HandleListAttribute {
 public:
  HandleListAttribute(std::vector<HANDLE> handles, void* console)
      : handles_(std::move(handles)), console_(console) {
    const DWORD count = (handles_.empty() ? 0 : 1) + (console_ ? 1 : 0);
    SIZE_T size = 0;
    ::InitializeProcThreadAttributeList(nullptr, count, 0, &size);
    buf_.resize(size);
    auto* list = get();
    if (!::InitializeProcThreadAttributeList(list, count, 0, &size))
      throw_last_error("proc: InitializeProcThreadAttributeList");
    initialized_ = true;
    if (!handles_.empty() &&
        !::UpdateProcThreadAttribute(list, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST, handles_.data(),
                                     handles_.size() * sizeof(HANDLE), nullptr, nullptr))
      throw_last_error("proc: UpdateProcThreadAttribute(HANDLE_LIST)");
    if (console_ && !::UpdateProcThreadAttribute(list, 0, pseudoconsole_attribute, console_,
                                                 sizeof console_, nullptr, nullptr))
      throw_last_error("proc: UpdateProcThreadAttribute(PSEUDOCONSOLE)");
  }
  HandleListAttribute(const HandleListAttribute&) = delete;
  HandleListAttribute& operator=(const HandleListAttribute&) = delete;
  ~HandleListAttribute() {
    if (initialized_) ::DeleteProcThreadAttributeList(get());
  }
  LPPROC_THREAD_ATTRIBUTE_LIST get() noexcept {
    return reinterpret_cast<LPPROC_THREAD_ATTRIBUTE_LIST>(buf_.data());
  }

 private:
  std::vector<HANDLE> handles_;  // must outlive CreateProcessW: the list points into it
  void* console_;
  std::vector<char> buf_;
  bool initialized_ = false;
};

/// Makes the handles of SpawnRequest::inherit inheritable for one CreateProcessW, and gives each
/// its previous flag back when destroyed (after CreateProcessW, whether it worked or not). Used
/// under spawn_mutex(), so no other spawn of ours sees them inheritable.
class InheritForSpawn {
 public:
  InheritForSpawn(const SpawnRequest& rq, std::vector<HANDLE>& list) {
    for (HANDLE h : rq.inherit) {
      if (std::find(list.begin(), list.end(), h) != list.end()) continue;  // listed once
      DWORD flags = 0;
      if (!::GetHandleInformation(h, &flags) ||
          !::SetHandleInformation(h, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT)) {
        DWORD e = ::GetLastError();
        restore();  // a constructor that throws has no destructor run
        throw SpawnFailure{
            static_cast<int>(e), rq.program,
            "proc: cannot run '" + rq.program + "': cannot pass on handle " + handle_to_string(h)};
      }
      saved_.push_back({h, flags & HANDLE_FLAG_INHERIT});
      list.push_back(h);
    }
  }
  InheritForSpawn(const InheritForSpawn&) = delete;
  InheritForSpawn& operator=(const InheritForSpawn&) = delete;
  ~InheritForSpawn() { restore(); }

 private:
  void restore() noexcept {
    for (const auto& [h, flag] : saved_) ::SetHandleInformation(h, HANDLE_FLAG_INHERIT, flag);
    saved_.clear();
  }

  std::vector<std::pair<HANDLE, DWORD>> saved_;
};

/// Terminates a created child unless dismissed (setup after CreateProcessW failed).
struct KillUnlessDismissed {
  HANDLE process;
  bool dismissed = false;
  ~KillUnlessDismissed() {
    if (!dismissed) {
      ::TerminateProcess(process, terminated_exit_code);
      ::WaitForSingleObject(process, INFINITE);
    }
  }
};

/// Puts the suspended child in a job of its own. Returns the job, or null when that failed and
/// kill_on_parent_exit does not need it; throws SpawnFailure when it does.
inline UniqueHandle make_job(const SpawnRequest& rq, HANDLE process) {
  UniqueHandle job(::CreateJobObjectW(nullptr, nullptr));
  bool ok = static_cast<bool>(job);
  if (ok) {
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION info{};
    info.BasicLimitInformation.LimitFlags =
        JOB_OBJECT_LIMIT_BREAKAWAY_OK |
        (rq.kill_on_parent_exit ? JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE : 0);
    ok = ::SetInformationJobObject(job.get(), JobObjectExtendedLimitInformation, &info,
                                   sizeof info) &&
         ::AssignProcessToJobObject(job.get(), process);
  }
  if (ok) return job;
  DWORD e = ::GetLastError();
  if (rq.kill_on_parent_exit)
    throw SpawnFailure{static_cast<int>(e), rq.program,
                       "proc: cannot run '" + rq.program +
                           "': kill_on_parent_exit needs a job object, and the child could not "
                           "be put into one"};
  return UniqueHandle();  // tree kills degrade to killing the child alone
}

inline SpawnResult spawn(const SpawnRequest& rq) {
  if (rq.process_group && *rq.process_group != 0)
    throw std::invalid_argument("proc: process_group = " + std::to_string(*rq.process_group) +
                                " is not supported on Windows (a child can only lead a new "
                                "group: process_group = 0 or start_new_session)");
  if (rq.shell && rq.argv.size() != 5)
    throw std::invalid_argument(
        "proc: with shell = true, Windows takes the one command string only (cmd.exe has no "
        "positional parameters); put the arguments into the command");

  if (rq.ctty && (rq.creation_flags & (CREATE_NEW_CONSOLE | DETACHED_PROCESS | CREATE_NO_WINDOW)))
    throw std::invalid_argument(
        "proc: creation_flags = " + std::to_string(rq.creation_flags) +
        " asks for another console (CREATE_NEW_CONSOLE, DETACHED_PROCESS or CREATE_NO_WINDOW), "
        "but a proc::pty child is attached to its pseudo-console");
  std::optional<NativeEnvironment> env;
  std::optional<std::wstring> path, pathext;
  if (rq.env) {
    env = make_native_environment(*rq.env);
    path = env->path;
    pathext = env->pathext;
  } else {
    path = own_environment_variable(L"PATH");
    pathext = own_environment_variable(L"PATHEXT");
  }
  std::wstring cwd;
  if (rq.cwd) {
    cwd = rq.cwd->wstring();
    check_cwd(rq, cwd);
  }

  ResolvedProgram prog = resolve_program(rq.program, path, pathext, cwd);
  std::wstring application = prog.path;
  std::string line;
  if (rq.shell) {
    line = shell_command_line(rq.argv[0], rq.argv[4]);
  } else if (prog.batch) {
    std::string cmd = cmd_exe_path();
    application = to_wide(cmd);
    line = batch_command_line(cmd, to_utf8(prog.path), rq.argv);
  } else {
    line = program_command_line(rq.argv);
  }
  std::wstring command_line = to_wide(line, "an argument");
  // CreateProcessW takes at most 32767 characters with the terminator (Windows fails with
  // ERROR_FILENAME_EXCED_RANGE; Wine silently cuts the line): say so before trying.
  if (command_line.size() >= max_command_line)
    throw SpawnFailure{ERROR_FILENAME_EXCED_RANGE, rq.program,
                       "proc: cannot run '" + rq.program + "': the command line is " +
                           std::to_string(command_line.size()) +
                           " UTF-16 characters long; Windows allows " +
                           std::to_string(max_command_line) + " with the terminating NUL"};

  const bool group = rq.start_new_session || rq.process_group.has_value();
  // The caller's creation_flags are OR-ed in; proc's own (suspended start, Unicode environment,
  // the extended startup information of the handle list) cannot be taken away.
  DWORD flags = CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT | CREATE_SUSPENDED |
                (group ? CREATE_NEW_PROCESS_GROUP : 0) | static_cast<DWORD>(rq.creation_flags);
  PROCESS_INFORMATION pi{};
  {
    std::lock_guard lock(spawn_mutex());
    static const DWORD std_ids[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
    static const char* names[3] = {"stdin", "stdout", "stderr"};
    UniqueHandle dups[3];
    HANDLE child_std[3] = {nullptr, nullptr, nullptr};
    std::vector<HANDLE> inherited;
    bool any_pseudo = false;
    for (int i = 0; i < 3; ++i) {
      if (i == 2 && rq.err_to_stdout) {
        child_std[2] = child_std[1];
        continue;
      }
      if (rq.ctty && rq.stdio[i] == *rq.ctty) continue;  // NULL: the pseudo-console's own
      HANDLE src = rq.stdio[i] != invalid_handle ? rq.stdio[i] : ::GetStdHandle(std_ids[i]);
      if (src == nullptr || src == INVALID_HANDLE_VALUE) continue;  // the parent has none either
      HANDLE dup = nullptr;
      if (!::DuplicateHandle(::GetCurrentProcess(), src, ::GetCurrentProcess(), &dup, 0, TRUE,
                             DUPLICATE_SAME_ACCESS))
        throw SpawnFailure{static_cast<int>(::GetLastError()), rq.program,
                           "proc: cannot run '" + rq.program + "': cannot pass on " + names[i] +
                               " (DuplicateHandle of " + handle_to_string(src) + ")"};
      dups[i].reset(dup);
      child_std[i] = dup;
      if (is_console_pseudo_handle(dup))
        any_pseudo = true;
      else
        inherited.push_back(dup);
    }
    InheritForSpawn passed(rq, inherited);  // flags restored before the lock is released
    std::optional<HandleListAttribute> attribute;
    void* console = rq.ctty ? *rq.ctty : nullptr;
    if ((rq.close_fds && !inherited.empty()) || console)
      attribute.emplace(rq.close_fds ? inherited : std::vector<HANDLE>{}, console);
    // Console pseudo handles (Windows 7) cannot be listed; when they are all the child gets,
    // it inherits without a list (the lock still keeps other spawns' duplicates out).
    const bool inherit_all = !rq.close_fds || (inherited.empty() && any_pseudo);

    STARTUPINFOEXW si{};
    si.StartupInfo.cb = sizeof si;
    si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
    if (rq.hide_window) {
      si.StartupInfo.dwFlags |= STARTF_USESHOWWINDOW;
      si.StartupInfo.wShowWindow = SW_HIDE;
    }
    si.StartupInfo.hStdInput = child_std[0];
    si.StartupInfo.hStdOutput = child_std[1];
    si.StartupInfo.hStdError = child_std[2];
    si.lpAttributeList = attribute ? attribute->get() : nullptr;
    // close_fds = false: every inheritable handle of the process goes along (Python's meaning).
    BOOL inherit = (!inherited.empty() || inherit_all) ? TRUE : FALSE;
    // ERROR_INTERNAL_ERROR: the new process died before its start-up was done (Wine reports
    // this now and then under load: its loader failed). The child is created suspended, so none
    // of its code ran and nothing happened twice if it is tried again: up to 3 tries.
    for (int attempt = 1;; ++attempt) {
      if (::CreateProcessW(application.c_str(), command_line.data(), nullptr, nullptr, inherit,
                           flags, env ? env->block.data() : nullptr,
                           cwd.empty() ? nullptr : cwd.c_str(), &si.StartupInfo, &pi))
        break;
      DWORD e = ::GetLastError();
      if (e != ERROR_INTERNAL_ERROR || attempt == 3)
        throw SpawnFailure{static_cast<int>(e), rq.program,
                           "proc: cannot run '" + to_utf8(application) + "'"};
      ::Sleep(static_cast<DWORD>(10 * attempt));
    }
  }  // the duplicates are closed here, under the lock

  SpawnResult r;
  r.pid = pi.dwProcessId;
  r.group_leader = group;
  r.own_console =
      rq.ctty || (flags & (CREATE_NEW_CONSOLE | DETACHED_PROCESS | CREATE_NO_WINDOW)) != 0;
  r.kill_on_close = rq.kill_on_parent_exit;
  r.process.reset(pi.hProcess);
  UniqueHandle thread(pi.hThread);
  KillUnlessDismissed guard{r.process.get()};
  r.job = make_job(rq, r.process.get());
  if (::ResumeThread(thread.get()) == static_cast<DWORD>(-1))
    throw SpawnFailure{static_cast<int>(::GetLastError()), rq.program,
                       "proc: cannot run '" + rq.program + "': ResumeThread failed"};
  guard.dismissed = true;
  return r;
}

}  // namespace proc::detail
