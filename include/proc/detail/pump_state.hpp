#pragma once
// The state of one pump (communicate(), stream_lines(), run(), run_pipeline(), run_all()), shared
// by both back ends. Each back end's pump.hpp includes this after its handle.hpp, which defines
// `native_handle` and `invalid_handle` for that platform.
//
// Handles are set to invalid_handle as each stream ends (the pump closes them), so a pump that
// stopped at its deadline can be resumed with the same state and nothing lost. An error while
// moving one state's data (a failed read, a sink that threw) is kept in `error` and stops that
// state only: the caller decides what it means (communicate() rethrows it; run_all() makes it
// that job's result).

#include <cstddef>
#include <exception>
#include <string_view>

#include "proc/detail/sink.hpp"

namespace proc::detail {

struct PumpState {
  native_handle in = invalid_handle;  // the child's stdin: `input` from `in_pos` on goes here
  std::string_view input;
  std::size_t in_pos = 0;
  native_handle out = invalid_handle;  // the child's stdout, into `out_sink`
  Sink* out_sink = nullptr;
  native_handle err = invalid_handle;  // the child's stderr, into `err_sink`
  Sink* err_sink = nullptr;
  std::exception_ptr error;  // set by the pump; the state is not pumped again until cleared

  [[nodiscard]] bool done() const noexcept {
    return in == invalid_handle && out == invalid_handle && err == invalid_handle;
  }
  /// Closes every stream still open (abandons what is left in it).
  void close_all() noexcept {
    for (native_handle* h : {&in, &out, &err}) {
      close_handle(*h);
      *h = invalid_handle;
    }
  }
};

}  // namespace proc::detail
