#pragma once
// Where a back end's pump() puts what it reads: straight into the caller's storage, without a
// copy through a scratch buffer. The interface alone (the back ends include it); the sinks the
// public layer uses are in capture.hpp.

#include <cstddef>

namespace proc::detail {

class Sink {
 public:
  virtual ~Sink() = default;
  /// Room to read into; sets `room` to its size (at least 1).
  virtual char* prepare(std::size_t& room) = 0;
  /// `n` bytes were read into the room last prepared (`n` may be 0).
  virtual void commit(std::size_t n) = 0;
};

}  // namespace proc::detail
