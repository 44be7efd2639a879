#pragma once
// The POSIX back end, in dependency order. See each file's header for the calls it uses.

#include "proc/detail/posix/environ.hpp"
#include "proc/detail/posix/handle.hpp"
#include "proc/detail/posix/pump.hpp"
#include "proc/detail/posix/signals.hpp"
#include "proc/detail/posix/spawn.hpp"
#include "proc/detail/posix/syscall.hpp"
#include "proc/detail/posix/wait.hpp"
