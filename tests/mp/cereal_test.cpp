// The cereal bridge (<proc/mp/cereal.hpp>): types with a cereal serialize() or save/load travel
// through cereal's binary archive, alone and inside the codec's own types.
#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>
#include <cstdint>
#include <map>
#include <optional>
#include <proc/mp/cereal.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "../test_support.hpp"

namespace {

namespace mp = proc::mp;

// An aggregate with a serialize(): cereal's rule, not the aggregate rule.
struct Reading {
  std::string sensor;
  std::vector<double> values;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(sensor, values);
  }
  bool operator==(const Reading&) const = default;
};

// A class with private state, serialised through cereal::access.
class Account {
 public:
  Account() = default;
  Account(std::string owner, long cents) : owner_(std::move(owner)), cents_(cents) {}
  bool operator==(const Account&) const = default;

 private:
  friend class cereal::access;
  template <class Archive>
  void serialize(Archive& ar) {
    ar(owner_, cents_);
  }
  std::string owner_;
  long cents_ = 0;
};

// save/load instead of serialize.
class Range {
 public:
  Range() = default;
  Range(int lo, int hi) : lo_(lo), hi_(hi) {}
  template <class Archive>
  void save(Archive& ar) const {
    ar(lo_, hi_ - lo_);
  }
  template <class Archive>
  void load(Archive& ar) {
    int width = 0;
    ar(lo_, width);
    hi_ = lo_ + width;
  }
  bool operator==(const Range&) const = default;

 private:
  int lo_ = 0, hi_ = 0;
};

// A plain aggregate of cereal types and the codec's own.
struct Report {
  std::vector<Reading> readings;
  Account account;
  std::optional<Range> range;
  std::map<std::string, Reading> by_sensor;
  int count;
  bool operator==(const Report&) const = default;
};

static_assert(mp::Transferable<Reading>);
static_assert(mp::Transferable<Account>);
static_assert(mp::Transferable<Range>);
static_assert(mp::Transferable<Report>);
static_assert(mp::detail::rule_v<Reading> == mp::detail::Rule::user);
static_assert(mp::detail::rule_v<Report> == mp::detail::Rule::aggregate);
// cereal can do these too, but the codec keeps its own rules for them.
static_assert(mp::detail::rule_v<std::string> == mp::detail::Rule::string);
static_assert(mp::detail::rule_v<std::vector<double>> == mp::detail::Rule::sequence);
static_assert(mp::detail::rule_v<std::map<int, int>> == mp::detail::Rule::map);
static_assert(mp::detail::rule_v<int> == mp::detail::Rule::arithmetic);

template <class T>
T round_trip(const T& v) {
  return mp::from_bytes<T>(mp::to_bytes(v));
}

template <class T>
std::string error_of(std::string_view bytes) {
  try {
    (void)mp::from_bytes<T>(bytes);
  } catch (const mp::SerializationError& e) {
    return e.what();
  }
  return "(decoded without an error)";
}

std::string u64(std::uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }

const Reading reading{"t1", {1.5, -2.0, 3.25}};
const Report report{
    {reading, Reading{"t2", {}}}, Account("ann", 1200), Range(3, 9), {{"t1", reading}}, 2};

TEST_CASE("cereal: types with serialize() or save/load round-trip", "[cereal]") {
  CHECK(round_trip(reading) == reading);
  CHECK(round_trip(Reading{}) == Reading{});
  CHECK(round_trip(Account("bob", -5)) == Account("bob", -5));
  CHECK(round_trip(Range(-4, 10)) == Range(-4, 10));
}

TEST_CASE("cereal: nested in a vector and in an aggregate", "[cereal]") {
  const std::vector<Reading> v{reading, Reading{"empty", {}}, reading};
  CHECK(round_trip(v) == v);
  CHECK(round_trip(report) == report);
  CHECK(round_trip(std::map<int, Account>{{1, Account("c", 3)}}).at(1) == Account("c", 3));
}

TEST_CASE("cereal: the value is a length-prefixed cereal blob", "[cereal]") {
  const std::string bytes = mp::to_bytes(reading);
  std::uint64_t n = 0;
  REQUIRE(bytes.size() >= 16);
  std::memcpy(&n, bytes.data() + 8, 8);
  CHECK(n == bytes.size() - 16);
}

TEST_CASE("cereal: truncated, overlong and short blobs are refused", "[cereal]") {
  const std::string full = mp::to_bytes(report);
  for (std::size_t n = 0; n < full.size(); ++n) {
    INFO(n);
    CHECK_THROWS_AS(mp::from_bytes<Report>(std::string_view(full).substr(0, n)),
                    mp::SerializationError);
  }
  CHECK(mp::from_bytes<Report>(full) == report);

  const std::string bytes = mp::to_bytes(reading);
  const std::string tag = bytes.substr(0, 8), blob = bytes.substr(16);
  // The blob announces more than there is.
  CHECK(error_of<Reading>(tag + u64(blob.size() + 100) + blob).find("cereal blob of") !=
        std::string::npos);
  // cereal runs out of blob (cut inside it, length adjusted to match).
  const std::string cut = blob.substr(0, blob.size() - 4);
  CHECK(error_of<Reading>(tag + u64(cut.size()) + cut).find("cereal: ") != std::string::npos);
  // cereal leaves part of the blob unread.
  CHECK(error_of<Reading>(tag + u64(blob.size() + 2) + blob + "xy").find("bytes of a") !=
        std::string::npos);
}

}  // namespace
