#pragma once
/// \file
/// The errors of `proc::mp`. All derive from `proc::SubprocessError`; misuse (start twice, join
/// before start, a moved-from object) is `std::logic_error` instead.

#include <string>
#include <utility>

#include "proc/errors.hpp"

namespace proc::mp {

/// The target raised an exception in the other process. `type` is its type name (demangled
/// where the compiler allows), `message` its `what()`.
class RemoteError : public SubprocessError {
 public:
  RemoteError(std::string type_, std::string message_)
      : SubprocessError("proc::mp: the child raised " + type_ + ": " + message_),
        type(std::move(type_)),
        message(std::move(message_)) {}
  std::string type;
  std::string message;
};

/// The child ended without sending a result: killed by a signal, `exit()`, `abort()`, a crash.
class ProcessDied : public SubprocessError {
 public:
  ProcessDied(int pid_, int returncode_, const std::string& what)
      : SubprocessError(what), pid(pid_), returncode(returncode_) {}
  int pid;
  int returncode;  ///< −N: killed by signal N
};

/// The other end of a channel is gone (closed or exited) and every message it sent has been
/// received (Python's `EOFError`); or a `send` found no reader.
class ChannelClosed : public SubprocessError {
 public:
  using SubprocessError::SubprocessError;
};

/// The other end went away in the middle of a message: what arrived of it is dropped.
class PeerDiedMidMessage : public SubprocessError {
 public:
  using SubprocessError::SubprocessError;
};

/// Bytes that do not decode as the expected type: another type's message, truncated or hostile.
class SerializationError : public SubprocessError {
 public:
  using SubprocessError::SubprocessError;
};

/// A pool worker died while running this task (killed, `abort`, a crash, `_exit`).
class WorkerDied : public SubprocessError {
 public:
  WorkerDied(int pid_, int returncode_, const std::string& what)
      : SubprocessError(what), pid(pid_), returncode(returncode_) {}
  int pid;
  int returncode;
};

/// A pool task ran longer than `PoolOptions::task_timeout`; its worker was killed and replaced.
class TaskTimeout : public SubprocessError {
 public:
  using SubprocessError::SubprocessError;
};

/// The task was cancelled (`Future::cancel`) before it produced a result.
class TaskCancelled : public SubprocessError {
 public:
  using SubprocessError::SubprocessError;
};

/// The pool cannot run tasks: its workers die before finishing any (a broken start), or it was
/// terminated.
class PoolBroken : public SubprocessError {
 public:
  using SubprocessError::SubprocessError;
};

/// The previous owner of a lock died holding it (a guard reports it too; see `Lock`).
class OwnerDied : public SubprocessError {
 public:
  using SubprocessError::SubprocessError;
};

/// A lock was left inconsistent by an owner that died, under `OwnerDeath::poison`.
class LockPoisoned : public SubprocessError {
 public:
  using SubprocessError::SubprocessError;
};

/// The manager process (or thread) serving a shared object is gone.
class ManagerGone : public SubprocessError {
 public:
  using SubprocessError::SubprocessError;
};

}  // namespace proc::mp
