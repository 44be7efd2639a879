#pragma once
// The state of one pump (communicate(), stream_lines(), run_pipeline()), shared by both back
// ends. Each back end's pump.hpp includes this after its handle.hpp, which defines
// `native_handle` and `invalid_handle` for that platform.
//
// Handles are set to invalid_handle as each stream ends (the pump closes them), so a pump that
// stopped at its deadline can be resumed with the same state and nothing lost.

#include <cstddef>
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

  [[nodiscard]] bool done() const noexcept {
    return in == invalid_handle && out == invalid_handle && err == invalid_handle;
  }
};

}  // namespace proc::detail
