#pragma once
// Where a back end's pump() puts what it reads: straight into the caller's storage, without a
// copy through a scratch buffer.

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

namespace proc::detail {

class Sink {
 public:
  virtual ~Sink() = default;
  /// Room to read into; sets `room` to its size (at least 1).
  virtual char* prepare(std::size_t& room) = 0;
  /// `n` bytes were read into the room last prepared (`n` may be 0).
  virtual void commit(std::size_t n) = 0;
};

/// Captured output: a string grown geometrically, of which the first `used` bytes are data.
class CaptureBuffer final : public Sink {
 public:
  char* prepare(std::size_t& room) override {
    constexpr std::size_t min_room = 64 * 1024;
    if (data_.size() - used_ < min_room)
      data_.resize(std::max(used_ + min_room, data_.size() + data_.size() / 2 + min_room));
    room = data_.size() - used_;
    return data_.data() + used_;
  }
  void commit(std::size_t n) override { used_ += n; }

  void append(std::string_view s) {
    std::size_t room = 0;
    while (data_.size() - used_ < s.size()) prepare(room);
    s.copy(data_.data() + used_, s.size());
    used_ += s.size();
  }
  [[nodiscard]] std::size_t size() const noexcept { return used_; }
  /// A copy of the data so far (for TimeoutExpired, which must not consume it).
  [[nodiscard]] std::string copy() const { return data_.substr(0, used_); }
  /// The data, leaving this buffer empty.
  std::string take() {
    data_.resize(used_);
    used_ = 0;
    return std::move(data_);
  }

 private:
  std::string data_;
  std::size_t used_ = 0;
};

}  // namespace proc::detail
