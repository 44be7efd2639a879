// proc::mp's value codec against hostile bytes, and against itself.
//
// The first byte of the input picks what to do with the rest:
//   - modes 0-6 decode it as a message of one of several complex types (its type tag is put in
//     front, so the fuzzer's bytes reach the value at once). Decoding must give a value or throw
//     SerializationError, nothing else: no crash, no UB, no other exception, no allocation out
//     of proportion to the input (run.sh limits the fuzzer to 2 GiB). A value that decodes must
//     encode again, decode to an equal value, and every cut of that encoding is refused.
//   - mode 7 builds a Record from the input, encodes it (with a string above the Writer's
//     view threshold when the input asks, so referenced spans are covered), and checks that
//     the segments, the flat copy and the decoded value agree, that cuts are refused, and that
//     one corrupted byte gives a value or a SerializationError.
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <list>
#include <map>
#include <optional>
#include <proc/mp/codec.hpp>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "fuzz_input.hpp"

namespace {

namespace mp = proc::mp;

enum class Kind : std::uint8_t { a, b, c };  // a fixed underlying type: every byte is a value

struct Empty {
  bool operator==(const Empty&) const = default;
};

struct Leaf {
  std::uint8_t a;
  bool b;
  Kind k;
  std::int16_t s;
  bool operator==(const Leaf&) const = default;
};

struct Point3 {  // bitwise: one block in a vector
  std::int32_t x, y, z;
  bool operator==(const Point3&) const = default;
};

struct Tree {  // recursive: bounded by Reader::max_depth
  std::string label;
  std::vector<Tree> kids;
  std::optional<std::int32_t> weight;
  bool operator==(const Tree&) const = default;
};

struct Record {
  Leaf leaf;
  std::set<std::int32_t> set;
  std::unordered_map<std::int32_t, std::string> umap;
  std::multimap<std::uint8_t, std::uint8_t> mmap;
  std::deque<std::list<char>> lists;
  std::array<std::int16_t, 3> arr;
  std::vector<Point3> points;
  std::chrono::milliseconds ms;
  std::filesystem::path path;
  std::vector<std::monostate> monos;
  std::pair<bool, std::optional<std::string>> pair;
  std::array<std::string, 2> names;
  Empty tag;
  std::u32string wide;
  std::vector<bool> bits;
  std::string big;
  bool operator==(const Record&) const = default;
};

using Map = std::map<std::string, std::vector<std::optional<std::int64_t>>>;
using Variant = std::variant<std::monostate, std::int32_t, std::string, std::vector<bool>, Leaf,
                             std::tuple<char, std::u16string>>;
using Nested = std::vector<std::vector<std::vector<std::uint8_t>>>;
using Sets = std::pair<std::unordered_set<std::string>, std::unordered_multiset<std::int8_t>>;

template <class T>
void refused(std::string_view bytes) {
  bool threw = false;
  try {
    (void)mp::from_bytes<T>(bytes);
  } catch (const mp::SerializationError&) {
    threw = true;
  }
  FUZZ_CHECK(threw);
}

// A strict prefix of a message is never a message (cut at `cut` mod size, at the end, halfway).
template <class T>
void cuts_refused(const std::string& bytes, std::size_t cut) {
  if (bytes.empty()) return;
  refused<T>(std::string_view(bytes).substr(0, cut % bytes.size()));
  refused<T>(std::string_view(bytes).substr(0, bytes.size() - 1));
  refused<T>(std::string_view(bytes).substr(0, bytes.size() / 2));
}

template <class T>
void decode_hostile(std::string_view payload, std::size_t cut) {
  std::string message(8, '\0');
  const std::uint64_t tag = mp::type_tag<T>();
  std::memcpy(message.data(), &tag, 8);
  message.append(payload);
  std::optional<T> v;
  try {
    v = mp::from_bytes<T>(message);
  } catch (const mp::SerializationError&) {
    return;  // refused: fine; any other exception escapes and is a finding
  }
  const std::string again = mp::to_bytes(*v);
  FUZZ_CHECK(mp::from_bytes<T>(again) == *v);
  cuts_refused<T>(again, cut);
}

// Doubles compare by their encoding (NaN != NaN, but its bits survive).
void decode_doubles(std::string_view payload) {
  std::string message(8, '\0');
  const std::uint64_t tag = mp::type_tag<std::vector<double>>();
  std::memcpy(message.data(), &tag, 8);
  message.append(payload);
  try {
    const auto v = mp::from_bytes<std::vector<double>>(message);
    FUZZ_CHECK(mp::to_bytes(v) == message);  // canonical: one block, every bit pattern kept
  } catch (const mp::SerializationError&) {
  }
}

std::uint16_t two_bytes(fuzz::Input& in) {
  const std::uint8_t hi = in.byte();
  return static_cast<std::uint16_t>(hi << 8 | in.byte());
}

Record build(fuzz::Input& in) {
  Record r{};
  r.leaf.a = in.byte();
  r.leaf.b = (in.byte() & 1) != 0;
  r.leaf.k = static_cast<Kind>(in.byte());
  r.leaf.s = static_cast<std::int16_t>(two_bytes(in));
  for (int i = in.byte() % 6; i > 0; --i) r.set.insert(static_cast<std::int8_t>(in.byte()));
  for (int i = in.byte() % 4; i > 0; --i) r.umap[in.byte() % 8] = in.bytes(6);
  for (int i = in.byte() % 4; i > 0; --i) r.mmap.emplace(in.byte() % 3, in.byte());
  for (int i = in.byte() % 3; i > 0; --i) {
    std::string s = in.bytes(4);
    r.lists.emplace_back(s.begin(), s.end());
  }
  for (auto& a : r.arr) a = static_cast<std::int16_t>(in.byte() - 128);
  for (int i = in.byte() % 4; i > 0; --i) r.points.push_back({in.byte(), -in.byte(), in.byte()});
  r.ms = std::chrono::milliseconds(in.byte() * 1000 - 7);
  r.path = in.from("ab/.\\", 8);
  r.monos.resize(in.byte() % 5);
  r.pair.first = (in.byte() & 1) != 0;
  if (in.byte() & 1) r.pair.second = in.bytes(5);
  r.names = {in.bytes(3), in.bytes(3)};
  for (int i = in.byte() % 4; i > 0; --i) r.wide += static_cast<char32_t>(in.byte() * 0x1111);
  r.bits.resize(in.byte() % 20);
  for (std::size_t i = 0; i < r.bits.size(); ++i) r.bits[i] = (in.byte() & 1) != 0;
  if (const std::uint8_t b = in.byte(); b >= 0xf0)  // above the view threshold
    r.big.assign(mp::Writer::view_threshold + b, static_cast<char>(in.byte()));
  else
    r.big = in.bytes(10);
  return r;
}

void round_trip(fuzz::Input& in) {
  const Record r = build(in);
  mp::Writer w;
  mp::encode_message(w, r);
  std::string joined;
  for (const auto& s : w.segments()) joined.append(s.data, s.size);
  const std::string flat = w.flatten();
  FUZZ_CHECK(joined == flat);
  FUZZ_CHECK(flat.size() == w.size());
  FUZZ_CHECK((w.size() == w.buffer().size()) == (r.big.size() < mp::Writer::view_threshold));
  FUZZ_CHECK(mp::from_bytes<Record>(flat) == r);
  const std::size_t cut = two_bytes(in);
  cuts_refused<Record>(flat, cut);
  std::string corrupt = flat;
  corrupt[cut % corrupt.size()] = static_cast<char>(in.byte());
  try {
    (void)mp::from_bytes<Record>(corrupt);
  } catch (const mp::SerializationError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0] % 8;
  const std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t cut = size * 31 + data[size - 1];
  switch (mode) {
    case 0:
      decode_hostile<Map>(payload, cut);
      break;
    case 1:
      decode_hostile<Variant>(payload, cut);
      break;
    case 2:
      decode_hostile<Record>(payload, cut);
      break;
    case 3:
      decode_hostile<Nested>(payload, cut);
      break;
    case 4:
      decode_hostile<Tree>(payload, cut);
      break;
    case 5:
      decode_hostile<Sets>(payload, cut);
      break;
    case 6:
      decode_doubles(payload);
      break;
    default: {
      fuzz::Input in(data + 1, size - 1);
      round_trip(in);
      break;
    }
  }
  return 0;
}
