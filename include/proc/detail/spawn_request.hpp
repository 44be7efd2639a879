#pragma once
// What the public layer hands a back end's spawn(): every option already validated and turned
// into plain data, so the back ends need none of the public headers (no include cycles) and the
// same request drives posix/spawn.hpp and windows/spawn.hpp.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace proc::detail {

/// A user or group as given: a name to resolve, or a numeric id.
struct IdSpec {
  bool is_name = false;
  std::string name;
  std::uint32_t id = 0;
};

template <class Handle>
struct BasicSpawnRequest {
  std::vector<std::string> argv;                // the child's argv (shell already applied)
  std::string program;                          // executable or argv[0], before PATH lookup
  std::optional<std::vector<std::string>> env;  // "NAME=value", sorted; nullopt: inherit
  std::optional<std::string> env_path;          // PATH in `env` (when env is given)
  Handle stdio[3];                              // invalid: inherit
  bool err_to_stdout = false;                   // stderr joins the child's stdout
  std::optional<std::filesystem::path> cwd;
  bool close_fds = true;
  std::vector<int> pass_fds;
  bool start_new_session = false;
  std::optional<int> process_group;
  bool restore_signals = true;
  std::optional<unsigned> umask;
  std::optional<IdSpec> user, group;
  std::optional<std::vector<IdSpec>> extra_groups;
  const std::function<void()>* pre_exec = nullptr;  // null or empty: none
  bool kill_on_parent_exit = false;
  bool shell = false;  // for messages only
  // More handles the child gets, at the same values (proc::mp passes its channels this way).
  // POSIX: as pass_fds. Windows: made inheritable for the spawn and put in the handle list.
  std::vector<Handle> inherit;
  // POSIX: the pseudo-terminal slave that becomes the child's controlling terminal (in its new
  // session); unset: none.
  std::optional<Handle> ctty;
  // Windows: more CreateProcessW flags, and a hidden window.
  std::uint32_t creation_flags = 0;
  bool hide_window = false;
};

}  // namespace proc::detail
