#pragma once
// The only switch between back ends. detail/posix/ and detail/windows/ define the same names
// in proc::detail with the same signatures; everything above this header is platform-free.

#include "proc/config.hpp"

#if defined(PROC_WINDOWS)
#  include "proc/detail/windows/platform.hpp"
#else
#  include "proc/detail/posix/platform.hpp"
#endif
