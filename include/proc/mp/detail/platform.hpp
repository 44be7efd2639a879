#pragma once
// The only switch between proc::mp's back ends: detail/posix/ and detail/windows/ define the same
// names in proc::mp::detail with the same signatures.

#include "proc/config.hpp"

#if defined(PROC_WINDOWS)
#  include "proc/mp/detail/windows/channel.hpp"
#  include "proc/mp/detail/windows/child.hpp"
#else
#  include "proc/mp/detail/posix/channel.hpp"
#  include "proc/mp/detail/posix/child.hpp"
#endif
