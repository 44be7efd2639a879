#pragma once
/// \file
/// The one include: every public header of proc, fmt formatters included.

#include "proc/config.hpp"
#include "proc/environment.hpp"
#include "proc/errors.hpp"
#include "proc/format.hpp"
#include "proc/options.hpp"
#include "proc/pipe.hpp"
#include "proc/pipeline.hpp"
#include "proc/popen.hpp"
#include "proc/redirect.hpp"
#include "proc/run.hpp"
#include "proc/run_all.hpp"
#include "proc/shlex.hpp"
#include "proc/usage.hpp"
