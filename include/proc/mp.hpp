#pragma once
/// \file
/// The one include of `proc::mp`, Python's `multiprocessing` for C++: run your own functions in
/// other processes (`Process`, `spawn`), talk to them (`Connection`), hand out work (`Pool`).
/// Separate from `<proc/proc.hpp>` (which it includes), so programs that only run commands do
/// not pay its compile cost.

#include "proc/mp/codec.hpp"
#include "proc/mp/connection.hpp"
#include "proc/mp/errors.hpp"
#include "proc/mp/init.hpp"
#include "proc/mp/pool.hpp"
#include "proc/mp/process.hpp"
#include "proc/proc.hpp"
