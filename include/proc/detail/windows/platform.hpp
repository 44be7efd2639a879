#pragma once
// The Windows back end, in dependency order. See each file's header for the calls it uses.
// Every name the public headers take from proc::detail is defined here with the signature the
// POSIX back end gives it (detail/posix/platform.hpp).

#include "proc/detail/windows/environ.hpp"
#include "proc/detail/windows/handle.hpp"
#include "proc/detail/windows/pty.hpp"
#include "proc/detail/windows/pump.hpp"
#include "proc/detail/windows/quote.hpp"
#include "proc/detail/windows/signals.hpp"
#include "proc/detail/windows/spawn.hpp"
#include "proc/detail/windows/wait.hpp"
#include "proc/detail/windows/win32.hpp"
