#pragma once
/// \file
/// The one include of `proc::mp`, Python's `multiprocessing` for C++: run your own functions in
/// other processes (`Process`, `spawn`), talk to them (`Connection`), hand out work (`Pool`),
/// share state (`Lock`, `SharedMemory`, `Shared`, `SharedArray`, `Queue`, `Manager`).
/// Separate from `<proc/proc.hpp>` (which it includes), so programs that only run commands do
/// not pay its compile cost.

#include "proc/mp/codec.hpp"
#include "proc/mp/connection.hpp"
#include "proc/mp/errors.hpp"
#include "proc/mp/init.hpp"
#include "proc/mp/manager.hpp"
#include "proc/mp/pool.hpp"
#include "proc/mp/process.hpp"
#include "proc/mp/queue.hpp"
#include "proc/mp/shared.hpp"
#include "proc/proc.hpp"
