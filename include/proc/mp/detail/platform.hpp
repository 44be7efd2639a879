#pragma once
// The switch between proc::mp's back ends for processes and channels: detail/posix/ and
// detail/windows/ define the same names in proc::mp::detail with the same signatures.
// shared.hpp, queue.hpp and manager.hpp pick their own back-end file (segment, queue, manager)
// the same way, so that a program that does not include them does not compile them.

#include "proc/config.hpp"

#if defined(PROC_WINDOWS)
#  include "proc/mp/detail/windows/channel.hpp"
#  include "proc/mp/detail/windows/child.hpp"
#else
#  include "proc/mp/detail/posix/channel.hpp"
#  include "proc/mp/detail/posix/child.hpp"
#endif
