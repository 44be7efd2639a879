// proc::mp's value codec: round trips of every built-in type, user codecs, hostile and truncated
// bytes, the Writer's referenced spans, handle slots and allocations.
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <proc/mp/codec.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "../test_support.hpp"

// ---- allocation counting (for "small messages do not allocate") -------------------------------
// Every non-aligned form is replaced (malloc/free), so each allocation pairs with its release;
// the aligned forms stay the library's own.

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
}  // namespace

// ThreadSanitizer's runtime defines operator new itself (statically): no counting under it.
#if defined(__SANITIZE_THREAD__)
#  define PROC_TEST_NO_COUNTING 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define PROC_TEST_NO_COUNTING 1
#  endif
#endif
#if !defined(PROC_TEST_NO_COUNTING)

// g++ sees malloc's memory freed by `free` through operator delete once both are inlined, and
// takes these replacements for a mismatch.
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic push
#    pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#  endif
void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#  if defined(__GNUC__) && !defined(__clang__)
#    pragma GCC diagnostic pop
#  endif
#endif  // !PROC_TEST_NO_COUNTING

namespace {

namespace mp = proc::mp;

// Counts operator new calls while alive.
class CountAllocations {
 public:
  CountAllocations() {
    allocations = 0;
    counting = true;
  }
  ~CountAllocations() { counting = false; }
  long count() const { return allocations.load(); }
};

template <class T>
T round_trip(const T& v) {
  return mp::from_bytes<T>(mp::to_bytes(v));
}

// The message of the SerializationError that decoding `bytes` as T throws.
template <class T>
std::string error_of(std::string_view bytes) {
  try {
    (void)mp::from_bytes<T>(bytes);
  } catch (const mp::SerializationError& e) {
    return e.what();
  }
  return "(decoded without an error)";
}

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

std::string u64(std::uint64_t v) { return std::string(reinterpret_cast<const char*>(&v), 8); }
std::string u32(std::uint32_t v) { return std::string(reinterpret_cast<const char*>(&v), 4); }
std::string u8(unsigned v) { return std::string(1, static_cast<char>(v)); }
template <class T>
std::string raw(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof v);
}
template <class T>
std::string tag() {
  return u64(mp::type_tag<T>());
}

// Every strict prefix of v's message is refused, and the whole message decodes to v; a byte more
// is refused too.
template <class T>
void check_truncations(const T& v) {
  const std::string full = mp::to_bytes(v);
  std::size_t refused = 0;
  for (std::size_t n = 0; n < full.size(); ++n) {
    try {
      (void)mp::from_bytes<T>(std::string_view(full).substr(0, n));
    } catch (const mp::SerializationError&) {
      ++refused;
    }
  }
  CHECK(refused == full.size());
  CHECK(mp::from_bytes<T>(full) == v);
  CHECK(contains(error_of<T>(full + '\0'), "1 bytes are left after the value"));
}

// Every byte of v's message replaced by a few values: decoding gives a value or a
// SerializationError, nothing else (any other exception fails the test).
template <class T>
void check_mutations(const T& v) {
  const std::string full = mp::to_bytes(v);
  std::size_t decoded = 0, refused = 0;
  for (std::size_t i = 0; i < full.size(); ++i) {
    for (unsigned char b : {0x00, 0x01, 0x02, 0x7f, 0x80, 0xff}) {
      std::string m = full;
      m[i] = static_cast<char>(b);
      try {
        (void)mp::from_bytes<T>(m);
        ++decoded;
      } catch (const mp::SerializationError&) {
        ++refused;
      }
    }
  }
  CHECK(decoded + refused == full.size() * 6);
}

template <class H = proc::detail::native_handle>
H fake_handle(int i) {
  if constexpr (std::is_pointer_v<H>) {
    return reinterpret_cast<H>(static_cast<std::uintptr_t>(i));
  } else {
    return static_cast<H>(i);
  }
}

// ---- types -------------------------------------------------------------------------------------

enum class Color : std::uint8_t { red, green, blue };
enum Plain { plain_a, plain_b = 1000 };

struct Point {
  int x;
  int y;
  bool operator==(const Point&) const = default;
};

struct Padded {  // not bitwise: padding after c
  char c;
  int i;
  bool operator==(const Padded&) const = default;
};

struct Inner {
  std::string name;
  std::vector<Point> points;
  std::optional<Padded> padded;
  bool operator==(const Inner&) const = default;
};

struct Tag {
  bool operator==(const Tag&) const = default;
};

struct Outer {
  Inner inner;
  std::map<std::string, Inner> by_name;
  std::variant<std::monostate, int, Inner> choice;
  std::array<Point, 2> corners;
  Tag tag;
  const int constant;
  std::chrono::milliseconds timeout;
  bool flag = true;
  bool operator==(const Outer&) const = default;
};

struct Node {
  int value;
  std::vector<Node> kids;
  bool operator==(const Node&) const = default;
};

struct Sixteen {
  int f0;
  std::string f1;
  double f2;
  std::vector<int> f3;
  char f4;
  std::optional<int> f5;
  long f6;
  std::string f7;
  short f8;
  bool f9;
  Point f10;
  unsigned f11;
  std::map<int, int> f12;
  float f13;
  Color f14;
  std::uint64_t f15;
  bool operator==(const Sixteen&) const = default;
};

struct ThirtyTwo {
  Sixteen a;
  int f1, f2, f3, f4, f5, f6, f7, f8, f9, f10;
  std::string f11, f12, f13, f14, f15, f16, f17, f18, f19, f20;
  bool f21, f22, f23, f24, f25;
  char f26, f27, f28, f29, f30;
  Sixteen b;
  bool operator==(const ThirtyTwo&) const = default;
};

// A function object with fields: they travel with it.
struct Scale {
  int factor;
  int operator()(int x) const { return x * factor; }
};

// An empty function object.
struct Doubler {
  int operator()(int x) const { return 2 * x; }
};

// A non-aggregate class, with a codec.
class Money {
 public:
  explicit Money(long cents) : cents_(cents) {}
  long cents() const { return cents_; }
  bool operator==(const Money&) const = default;

 private:
  long cents_;
};

// An aggregate whose codec overrides the aggregate rule: a marker byte, then the value.
struct Celsius {
  double degrees;
  bool operator==(const Celsius&) const = default;
};

// A codec that validates what it reads.
struct Even {
  int value;
};

// A codec that writes nothing (refused when encoding).
struct Nothing {
  int unused;
};

// A handle-carrying resource, as Connection and friends will be.
struct Resource {
  proc::detail::native_handle handle;
  int extra;
};

// A class that no single braced initialiser fits (explicit constructor, move constructor, no
// default constructor): the field counting must not mistake it for a C array.
struct Handle {
  explicit Handle(std::string s) : name(std::move(s)) {}
  Handle(Handle&&) = default;
  std::string name;
};

// Throws from a constructor, to make a valueless variant.
// (Its move may throw, so that the variant cannot build it aside first.)
struct Bomb {
  Bomb() = default;
  explicit Bomb(int) { throw std::runtime_error("boom"); }
  Bomb(Bomb&&) noexcept(false) {}
  Bomb& operator=(Bomb&&) noexcept(false) { return *this; }
};

}  // namespace

template <>
struct proc::mp::codec<Money> {
  static void encode(Writer& w, const Money& m) { w.write(m.cents()); }
  static Money decode(Reader& r) { return Money(r.read<long>()); }
};

template <>
struct proc::mp::codec<Celsius> {
  static void encode(Writer& w, const Celsius& c) {
    w.write_u8(0xce);
    w.write(c.degrees);
  }
  static Celsius decode(Reader& r) {
    if (r.read_u8() != 0xce) r.fail("no Celsius marker");
    return Celsius{r.read<double>()};
  }
};

template <>
struct proc::mp::codec<Even> {
  static void encode(Writer& w, const Even& e) { w.write(e.value); }
  static Even decode(Reader& r) {
    const int v = r.read<int>();
    if (v % 2 != 0) r.fail(std::to_string(v) + " is odd");
    return Even{v};
  }
};

template <>
struct proc::mp::codec<Nothing> {
  static void encode(Writer&, const Nothing&) {}
  static Nothing decode(Reader&) { return {}; }
};

template <>
struct proc::mp::codec<Resource> {
  static void encode(Writer& w, const Resource& r) {
    w.write_u64(w.add_handle(r.handle));
    w.write(r.extra);
  }
  static Resource decode(Reader& r) {
    const std::uint64_t slot = r.read_u64();
    proc::detail::native_handle h = r.take_handle(static_cast<std::size_t>(slot));
    return Resource{h, r.read<int>()};
  }
};

template <>
struct proc::mp::codec<Handle> {
  static void encode(Writer& w, const Handle& h) { w.write(h.name); }
  static Handle decode(Reader& r) { return Handle(r.read<std::string>()); }
};

template <>
struct proc::mp::codec<Bomb> {
  static void encode(Writer& w, const Bomb&) { w.write_u8(0); }
  static Bomb decode(Reader& r) {
    (void)r.read_u8();
    return Bomb{};
  }
};

namespace {

// ---- what is Transferable ----------------------------------------------------------------------

static_assert(mp::Transferable<int>);
static_assert(mp::Transferable<const int>);
static_assert(mp::Transferable<std::byte>);
static_assert(mp::Transferable<Color>);
static_assert(mp::Transferable<std::string>);
static_assert(mp::Transferable<std::u32string>);
static_assert(mp::Transferable<std::vector<bool>>);
static_assert(mp::Transferable<std::map<std::string, std::vector<std::optional<Point>>>>);
static_assert(mp::Transferable<std::variant<std::monostate, int, std::string>>);
static_assert(mp::Transferable<std::tuple<>>);
static_assert(mp::Transferable<std::chrono::system_clock::time_point>);
static_assert(mp::Transferable<std::filesystem::path>);
static_assert(mp::Transferable<Outer>);
static_assert(mp::Transferable<Node>);  // recursive, through a vector
static_assert(mp::Transferable<ThirtyTwo>);
static_assert(mp::Transferable<Money>);
static_assert(mp::Transferable<Scale>);
static_assert(mp::Transferable<Doubler>);
static_assert(mp::Transferable<std::less<>>);

static_assert(!mp::Transferable<int&>);
static_assert(!mp::Transferable<int*>);
static_assert(!mp::Transferable<const char*>);
static_assert(!mp::Transferable<std::vector<int*>>);
static_assert(!mp::Transferable<std::map<int, std::string_view>>);
static_assert(!mp::Transferable<std::string_view>);
static_assert(!mp::Transferable<std::span<int>>);
static_assert(!mp::Transferable<std::unique_ptr<int>>);
static_assert(!mp::Transferable<std::function<void()>>);
static_assert(!mp::Transferable<int[3]>);
union Union {
  int i;
  float f;
};
static_assert(!mp::Transferable<Union>);
struct WithBase : Point {
  int z;
};
static_assert(!mp::Transferable<WithBase>);
struct WithArray {
  int n;
  int values[4];
};
static_assert(!mp::Transferable<WithArray>);
struct WithArrayOfStrings {
  std::string names[3];
  int n;
};
static_assert(!mp::Transferable<WithArrayOfStrings>);
struct WithArrayOfOne {
  int values[1];
};
static_assert(!mp::Transferable<WithArrayOfOne>);
struct WithReference {
  const int& r;
};
static_assert(!mp::Transferable<WithReference>);
struct WithNestedArray {
  Point p;
  WithArray bad;
};
static_assert(!mp::Transferable<WithNestedArray>);

// Fields the counting must not mistake for C arrays.
struct WithHandle {
  int id;
  Handle handle;
  std::filesystem::path path;
  std::chrono::seconds seconds;
  Tag tag;
};
static_assert(mp::detail::rule_v<WithHandle> == mp::detail::Rule::aggregate);

// Which containers take the one-copy path.
static_assert(mp::detail::bitwise_v<int>);
static_assert(mp::detail::bitwise_v<Point>);
static_assert(mp::detail::bitwise_v<std::array<Point, 3>>);
static_assert(mp::detail::bitwise_v<std::chrono::nanoseconds>);
static_assert(!mp::detail::bitwise_v<bool>);
static_assert(!mp::detail::bitwise_v<Padded>);
static_assert(!mp::detail::bitwise_v<Celsius>);  // has a codec

// Names and tags are compile-time values.
static_assert(mp::type_name<int>() == "int");
static_assert(mp::type_tag<int>() != mp::type_tag<unsigned>());
static_assert(mp::type_tag<std::vector<int>>() != mp::type_tag<std::vector<long>>());

// ---- round trips -------------------------------------------------------------------------------

TEST_CASE("codec: integers, characters and enums round-trip, extremes included", "[codec]") {
  auto all = [](auto zero) {
    using T = decltype(zero);
    CHECK(round_trip(std::numeric_limits<T>::min()) == std::numeric_limits<T>::min());
    CHECK(round_trip(std::numeric_limits<T>::max()) == std::numeric_limits<T>::max());
    CHECK(round_trip(zero) == zero);
  };
  all(char{});
  all(static_cast<signed char>(0));
  all(static_cast<unsigned char>(0));
  all(wchar_t{});
  all(char8_t{});
  all(char16_t{});
  all(char32_t{});
  all(short{});
  all(static_cast<unsigned short>(0));
  all(0);
  all(0U);
  all(0L);
  all(0UL);
  all(0LL);
  all(0ULL);
  all(std::int8_t{});
  all(std::uint64_t{});
  CHECK(round_trip(true) == true);
  CHECK(round_trip(false) == false);
  CHECK(round_trip(Color::blue) == Color::blue);
  CHECK(round_trip(plain_b) == plain_b);
  CHECK(round_trip(std::byte{0xab}) == std::byte{0xab});
  CHECK(mp::to_bytes(std::int16_t{7}).size() == 8 + 2);
  CHECK(mp::to_bytes(true).size() == 8 + 1);
}

TEST_CASE("codec: floating point keeps its bits (NaN payloads, -0, infinities)", "[codec]") {
  const auto nan_bits = 0x7ff800000000abcdULL;
  const double nan = std::bit_cast<double>(nan_bits);
  CHECK(std::bit_cast<std::uint64_t>(round_trip(nan)) == nan_bits);
  const float fnan = std::bit_cast<float>(0x7fc01234U);
  CHECK(std::bit_cast<std::uint32_t>(round_trip(fnan)) == 0x7fc01234U);
  CHECK(std::signbit(round_trip(-0.0)));
  CHECK(round_trip(std::numeric_limits<double>::infinity()) ==
        std::numeric_limits<double>::infinity());
  CHECK(round_trip(std::numeric_limits<double>::denorm_min()) ==
        std::numeric_limits<double>::denorm_min());
  CHECK(round_trip(std::numeric_limits<float>::lowest()) == std::numeric_limits<float>::lowest());
  CHECK(round_trip(1.0L / 3) == 1.0L / 3);
  const std::vector<double> v{nan, -0.0, 1.5};
  const auto back = round_trip(v);
  REQUIRE(back.size() == 3);
  CHECK(std::bit_cast<std::uint64_t>(back[0]) == nan_bits);
  CHECK(std::signbit(back[1]));
}

TEST_CASE("codec: strings: empty, with NULs, wide, 1 MiB", "[codec]") {
  CHECK(round_trip(std::string()).empty());
  const std::string nuls("a\0b\0\0c", 6);
  CHECK(round_trip(nuls) == nuls);
  CHECK(round_trip(std::string(1, '\0')) == std::string(1, '\0'));
  std::string big(1 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); i += 4099) big[i] = static_cast<char>(i);
  CHECK(round_trip(big) == big);
  CHECK(round_trip(std::wstring(L"wide \u00e9")) == L"wide \u00e9");
  CHECK(round_trip(std::u8string(u8"utf-8 \u00e9")) == u8"utf-8 \u00e9");
  CHECK(round_trip(std::u16string(u"utf-16 \u00e9")) == u"utf-16 \u00e9");
  CHECK(round_trip(std::u32string(U"utf-32 \U0001f600")) == U"utf-32 \U0001f600");
  CHECK(round_trip(std::u32string(100000, U'z')) == std::u32string(100000, U'z'));
}

TEST_CASE("codec: sequences, vector<bool> and arrays", "[codec]") {
  CHECK(round_trip(std::vector<int>()).empty());
  std::vector<int> big(1 << 18);
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<int>(i * 2654435761U);
  CHECK(round_trip(big) == big);
  CHECK(round_trip(std::vector<double>{1.5, -2.25}) == std::vector<double>{1.5, -2.25});
  CHECK(round_trip(std::vector<std::string>{"a", "", "ccc"}) ==
        std::vector<std::string>{"a", "", "ccc"});
  CHECK(round_trip(std::vector<std::vector<int>>{{}, {1}, {2, 3}}) ==
        std::vector<std::vector<int>>{{}, {1}, {2, 3}});
  CHECK(round_trip(std::vector<std::byte>(100, std::byte{7})) ==
        std::vector<std::byte>(100, std::byte{7}));
  for (std::size_t n : {0, 1, 7, 8, 9, 64, 1000, 2049, 100001}) {
    std::vector<bool> bits(n);
    for (std::size_t i = 0; i < n; ++i) bits[i] = (i * 7 + i / 3) % 5 < 2;
    CHECK(round_trip(bits) == bits);
    CHECK(mp::to_bytes(bits).size() == 16 + (n + 7) / 8);
  }
  CHECK(round_trip(std::deque<int>{1, 2, 3}) == std::deque<int>{1, 2, 3});
  CHECK(round_trip(std::list<std::string>{"x", "y"}) == std::list<std::string>{"x", "y"});
  CHECK(round_trip(std::deque<std::string>()).empty());
  CHECK(round_trip(std::array<int, 3>{1, 2, 3}) == std::array<int, 3>{1, 2, 3});
  CHECK(round_trip(std::array<char, 5>{'h', 'e', 'l', 'l', 'o'}) ==
        std::array<char, 5>{'h', 'e', 'l', 'l', 'o'});
  CHECK(round_trip(std::array<std::string, 2>{"a", "b"}) == std::array<std::string, 2>{"a", "b"});
  CHECK(round_trip(std::array<bool, 3>{true, false, true}) ==
        std::array<bool, 3>{true, false, true});
  CHECK(mp::to_bytes(std::array<int, 0>{}).size() == 9);
  CHECK(round_trip(std::array<int, 0>{}) == std::array<int, 0>{});
  CHECK(round_trip(std::vector<Point>{{1, 2}, {3, 4}}) == std::vector<Point>{{1, 2}, {3, 4}});
  CHECK(round_trip(std::vector<Padded>{{'a', 1}}) == std::vector<Padded>{{'a', 1}});
}

TEST_CASE("codec: a contiguous run is the same bytes as element by element", "[codec]") {
  // vector<Point> is one block; a deque<Point> and a vector<pair<int, int>> go field by field.
  const std::vector<Point> v{{1, 2}, {3, 4}, {5, 6}};
  const std::deque<Point> d(v.begin(), v.end());
  const std::vector<std::pair<int, int>> p{{1, 2}, {3, 4}, {5, 6}};
  const std::string bv = mp::to_bytes(v).substr(8), bd = mp::to_bytes(d).substr(8),
                    bp = mp::to_bytes(p).substr(8);
  CHECK(bv == bd);
  CHECK(bv == bp);
  CHECK(bv.size() == 8 + 3 * sizeof(Point));
}

TEST_CASE("codec: maps and sets", "[codec]") {
  const std::map<std::string, int> m{{"a", 1}, {"b", 2}, {"", 0}};
  CHECK(round_trip(m) == m);
  CHECK(round_trip(std::map<int, int>()).empty());
  const std::multimap<int, std::string> mm{{1, "a"}, {1, "b"}, {2, "c"}};
  CHECK(round_trip(mm) == mm);
  const std::unordered_map<std::string, std::vector<int>> um{{"x", {1}}, {"y", {}}};
  CHECK(round_trip(um) == um);
  const std::unordered_multimap<int, int> umm{{1, 1}, {1, 2}};
  CHECK(round_trip(umm) == umm);
  const std::set<std::string> s{"a", "b"};
  CHECK(round_trip(s) == s);
  const std::multiset<int> ms{1, 1, 2};
  CHECK(round_trip(ms) == ms);
  const std::unordered_set<int> us{1, 2, 3};
  CHECK(round_trip(us) == us);
  const std::unordered_multiset<int> ums{4, 4};
  CHECK(round_trip(ums) == ums);
  const std::map<Point, int, decltype([](Point a, Point b) { return a.x < b.x; })> custom{
      {{1, 0}, 1}, {{2, 0}, 2}};
  CHECK(round_trip(custom) == custom);
}

TEST_CASE("codec: optional, variant, monostate, tuple, pair", "[codec]") {
  CHECK(round_trip(std::optional<int>()) == std::nullopt);
  CHECK(round_trip(std::optional<std::string>("x")) == std::optional<std::string>("x"));
  CHECK(round_trip(std::optional<std::optional<int>>(std::optional<int>())) ==
        std::optional<std::optional<int>>(std::optional<int>()));
  using V = std::variant<std::monostate, int, std::string, std::vector<int>, Point>;
  for (const V& v : {V{}, V{5}, V{std::string("s")}, V{std::vector<int>{1, 2}}, V{Point{1, 2}}})
    CHECK(round_trip(v) == v);
  using Twice = std::variant<int, int>;
  CHECK(round_trip(Twice(std::in_place_index<1>, 3)).index() == 1);
  CHECK(round_trip(Twice(std::in_place_index<0>, 3)).index() == 0);
  CHECK(round_trip(std::monostate{}) == std::monostate{});
  CHECK(mp::to_bytes(std::monostate{}).size() == 9);
  CHECK(round_trip(std::tuple<>()) == std::tuple<>());
  CHECK(mp::to_bytes(std::tuple<>()).size() == 9);
  const std::tuple<int, std::string, double, std::vector<int>> t{1, "two", 3.0, {4}};
  CHECK(round_trip(t) == t);
  CHECK(round_trip(std::pair<std::string, int>("a", 1)) == std::pair<std::string, int>("a", 1));
  CHECK(round_trip(std::pair<const int, int>(1, 2)) == std::pair<const int, int>(1, 2));
}

TEST_CASE("codec: a valueless variant cannot be encoded", "[codec]") {
  std::variant<int, Bomb> v;
  CHECK_THROWS_AS(v.emplace<1>(1), std::runtime_error);
  REQUIRE(v.valueless_by_exception());
  mp::Writer w;
  CHECK_THROWS_AS(w.write(v), mp::SerializationError);
}

TEST_CASE("codec: durations, time points, paths", "[codec]") {
  using namespace std::chrono_literals;
  CHECK(round_trip(1500ms) == 1500ms);
  CHECK(round_trip(std::chrono::nanoseconds::min()) == std::chrono::nanoseconds::min());
  CHECK(round_trip(std::chrono::duration<double>(2.5)) == std::chrono::duration<double>(2.5));
  const auto now = std::chrono::system_clock::now();
  CHECK(round_trip(now) == now);
  const auto steady = std::chrono::steady_clock::now();
  CHECK(round_trip(steady) == steady);
  const std::filesystem::path p = std::filesystem::path("dir") / "sub" / "file.txt";
  CHECK(round_trip(p) == p);
  CHECK(round_trip(p).native() == p.native());
  CHECK(round_trip(std::filesystem::path()).empty());
}

TEST_CASE("codec: aggregates, nested and recursive, 16 and 32 fields", "[codec]") {
  const Inner inner{"in", {{1, 2}}, Padded{'p', 9}};
  const Outer o{inner, {{"k", inner}, {"e", Inner{}}}, inner, {Point{1, 1}, Point{2, 2}}, {},
                42,    std::chrono::milliseconds(7),   false};
  CHECK(round_trip(o) == o);
  const Outer empty{{}, {}, {}, {}, {}, 0, {}};
  CHECK(round_trip(empty) == empty);
  Node tree{1, {{2, {}}, {3, {{4, {}}, {5, {{6, {}}}}}}}};
  CHECK(round_trip(tree) == tree);
  Sixteen s{1,        "one", 2.0,        {3},   'c',          5, 6, "seven", 8, true,
            {10, 11}, 12,    {{13, 13}}, 14.5F, Color::green, 15};
  CHECK(round_trip(s) == s);
  ThirtyTwo t{s,     1,    2,     3,    4,    5,    6,    7,    8,    9,        10,
              "11",  "12", "13",  "14", "15", "16", "17", "18", "19", "20",     true,
              false, true, false, true, 'a',  'b',  'c',  'd',  'e',  Sixteen{}};
  CHECK(round_trip(t) == t);
  WithHandle h{1, Handle("h"), "p", std::chrono::seconds(2), {}};
  const WithHandle back = round_trip(h);
  CHECK(back.handle.name == "h");
  CHECK(back.path == "p");
}

TEST_CASE("codec: empty types travel as one byte: tags, functors, captureless lambdas", "[codec]") {
  auto captureless = [](int x) { return x; };
  static_assert(mp::Transferable<decltype(captureless)>);
  int n = 1;
  auto by_value = [n] { return n; };
  auto by_reference = [&n] { return n; };
  auto capture_default = [&] { return 0; };  // captures nothing, but is not default-constructible
  static_assert(!mp::Transferable<decltype(by_value)>);
  static_assert(!mp::Transferable<decltype(by_reference)>);
  static_assert(!mp::Transferable<decltype(capture_default)>);
  (void)by_value;
  (void)by_reference;
  (void)capture_default;
  CHECK(mp::to_bytes(Tag{}).size() == 9);
  (void)round_trip(Tag{});
  CHECK(round_trip(Doubler{})(21) == 42);
  CHECK(round_trip(std::less<>{})(1, 2));
  auto lambda = [](int x) { return x + 1; };
  CHECK(mp::to_bytes(lambda).size() == 9);
  CHECK(round_trip(lambda)(1) == 2);
  CHECK(round_trip(Scale{3})(5) == 15);  // a function object with a field
  CHECK(contains(error_of<Tag>(tag<Tag>() + u8(1)), "an empty value is the byte 0, not 1"));
}

TEST_CASE("codec: user codecs, also over what would be an aggregate", "[codec]") {
  CHECK(round_trip(Money(1234)) == Money(1234));
  CHECK(round_trip(std::vector<Money>{Money(1), Money(2)}) ==
        std::vector<Money>{Money(1), Money(2)});
  CHECK(round_trip(std::map<std::string, Money>{{"a", Money(3)}}).at("a") == Money(3));
  const std::string c = mp::to_bytes(Celsius{21.5});
  REQUIRE(c.size() == 8 + 1 + 8);
  CHECK(static_cast<unsigned char>(c[8]) == 0xce);
  CHECK(round_trip(Celsius{21.5}) == Celsius{21.5});
  // Not the bitwise block of an aggregate of one double: the codec runs for each element.
  CHECK(mp::to_bytes(std::vector<Celsius>{{1}, {2}}).size() == 8 + 8 + 2 * 9);
  CHECK(round_trip(std::vector<Celsius>{{1}, {2}}) == std::vector<Celsius>{{1}, {2}});
  const std::string bad = error_of<Celsius>(tag<Celsius>() + u8(0) + raw(1.0));
  CHECK(contains(bad, "Celsius"));
  CHECK(contains(bad, "no Celsius marker"));
  const std::string odd = error_of<std::vector<Even>>(tag<std::vector<Even>>() + u64(1) + raw(3));
  CHECK(contains(odd, "3 is odd"));
  CHECK(contains(odd, "Even"));
  mp::Writer w;
  CHECK_THROWS_AS(w.write(Nothing{}), mp::SerializationError);
  try {
    w.write(Nothing{});
  } catch (const mp::SerializationError& e) {
    CHECK(contains(e.what(), "wrote nothing"));
  }
}

// ---- hostile bytes -----------------------------------------------------------------------------

TEST_CASE("codec: huge counts are refused before anything is allocated", "[codec][hostile]") {
  const std::uint64_t huge = 1ULL << 60;
  auto check = [&](std::string err) {
    INFO(err);
    CHECK(contains(err, "1152921504606846976"));
  };
  check(error_of<std::vector<std::monostate>>(tag<std::vector<std::monostate>>() + u64(huge)));
  check(error_of<std::vector<int>>(tag<std::vector<int>>() + u64(huge) + raw(1)));
  check(error_of<std::vector<std::string>>(tag<std::vector<std::string>>() + u64(huge)));
  check(error_of<std::map<int, int>>(tag<std::map<int, int>>() + u64(huge)));
  check(error_of<std::unordered_map<int, Tag>>(tag<std::unordered_map<int, Tag>>() + u64(huge)));
  check(error_of<std::set<std::monostate>>(tag<std::set<std::monostate>>() + u64(huge)));
  check(error_of<std::unordered_set<int>>(tag<std::unordered_set<int>>() + u64(huge)));
  check(error_of<std::deque<Tag>>(tag<std::deque<Tag>>() + u64(huge)));
  check(error_of<std::list<int>>(tag<std::list<int>>() + u64(huge)));
  check(error_of<std::string>(tag<std::string>() + u64(huge) + "abc"));
  check(error_of<std::u32string>(tag<std::u32string>() + u64(huge)));
  check(error_of<std::vector<bool>>(tag<std::vector<bool>>() + u64(huge)));
  check(error_of<std::filesystem::path>(tag<std::filesystem::path>() + u64(huge)));
  // The largest count, and one element more than the bytes hold.
  CHECK(contains(error_of<std::u32string>(tag<std::u32string>() + u64(~0ULL)), "length"));
  CHECK(contains(error_of<std::vector<int>>(tag<std::vector<int>>() + u64(3) + raw(1) + raw(2)),
                 "a count of 3 elements is more than the 8 bytes left can hold"));
  CHECK(contains(error_of<std::vector<std::monostate>>(tag<std::vector<std::monostate>>() + u64(3) +
                                                       u8(0) + u8(0)),
                 "a count of 3"));
  CHECK(mp::from_bytes<std::vector<std::monostate>>(tag<std::vector<std::monostate>>() + u64(2) +
                                                    u8(0) + u8(0))
            .size() == 2);
}

TEST_CASE("codec: flags, indexes, markers and keys are checked", "[codec][hostile]") {
  const std::string b = error_of<bool>(tag<bool>() + u8(2));
  CHECK(contains(b, "cannot decode bool"));
  CHECK(contains(b, "a bool is 0 or 1, not 2"));
  std::string outer = mp::to_bytes(Outer{{}, {}, {}, {}, {}, 1, {}, true});
  outer.back() = 9;  // Outer::flag
  CHECK(contains(error_of<Outer>(outer), "a bool is 0 or 1, not 9"));
  CHECK(contains(error_of<std::optional<int>>(tag<std::optional<int>>() + u8(2) + raw(1)),
                 "the flag of an optional is 0 or 1, not 2"));
  using V = std::variant<int, std::string>;
  const std::string v = error_of<V>(tag<V>() + u8(2) + raw(1));
  CHECK(contains(v, "the variant index 2 is out of range (2 alternatives)"));
  CHECK(contains(v, std::string(mp::type_name<V>())));
  const std::string dup = error_of<std::map<int, int>>(tag<std::map<int, int>>() + u64(2) + raw(1) +
                                                       raw(2) + raw(1) + raw(3));
  CHECK(contains(dup, "element 1 repeats a key"));
  CHECK(contains(error_of<std::set<int>>(tag<std::set<int>>() + u64(2) + raw(5) + raw(5)),
                 "repeats a key"));
  CHECK(contains(error_of<std::unordered_map<std::string, int>>(
                     tag<std::unordered_map<std::string, int>>() + u64(2) + u64(1) + "a" + raw(1) +
                     u64(1) + "a" + raw(2)),
                 "repeats a key"));
  CHECK(contains(
      error_of<std::unordered_set<int>>(tag<std::unordered_set<int>>() + u64(2) + raw(5) + raw(5)),
      "repeats a key"));
  // Duplicates are fine where the container allows them; out of order keys are sorted.
  CHECK(mp::from_bytes<std::multiset<int>>(tag<std::multiset<int>>() + u64(2) + raw(5) + raw(5))
            .size() == 2);
  CHECK(mp::from_bytes<std::set<int>>(tag<std::set<int>>() + u64(2) + raw(9) + raw(5)) ==
        std::set<int>{5, 9});
  CHECK(contains(error_of<std::vector<bool>>(tag<std::vector<bool>>() + u64(3) + u8(0x0f)),
                 "unused bits"));
  CHECK(mp::from_bytes<std::vector<bool>>(tag<std::vector<bool>>() + u64(3) + u8(0x05)) ==
        std::vector<bool>{true, false, true});
  CHECK(contains(error_of<std::array<int, 0>>(tag<std::array<int, 0>>() + u8(1)), "not 1"));
  CHECK(contains(error_of<std::tuple<>>(tag<std::tuple<>>() + u8(3)), "not 3"));
  CHECK(contains(error_of<std::monostate>(tag<std::monostate>() + u8(3)), "not 3"));
}

TEST_CASE("codec: a wrong type tag names the expected type, trailing bytes are refused",
          "[codec][hostile]") {
  const std::string e = error_of<std::vector<int>>(mp::to_bytes(std::vector<long>{1}));
  CHECK(contains(e, std::string(mp::type_name<std::vector<int>>())));
  CHECK(contains(e, "the message holds another type"));
  CHECK(contains(error_of<int>(mp::to_bytes(1L)), "cannot decode int"));
  CHECK(contains(error_of<Point>(mp::to_bytes(Point{1, 2}) + "xy"),
                 "2 bytes are left after the value"));
  CHECK(contains(error_of<int>(""), "truncated: 8 more bytes needed, 0 left"));
  CHECK(contains(error_of<int>(tag<int>() + "ab"), "truncated: 4 more bytes needed, 2 left"));
  // The nested type is named with the message's type.
  const std::string nested = error_of<Inner>(tag<Inner>() + u64(1) + "n" + u64(5));
  CHECK(contains(nested, "cannot decode " + std::string(mp::type_name<Inner>())));
  CHECK(contains(nested, "reading a " + std::string(mp::type_name<std::vector<Point>>())));
}

TEST_CASE("codec: truncation at every position is refused", "[codec][hostile]") {
  check_truncations(std::string("hello"));
  check_truncations(std::vector<int>{1, 2, 3});
  check_truncations(std::vector<bool>{true, false, true, true, false, false, true, true, true});
  check_truncations(std::map<std::string, std::vector<int>>{{"a", {1}}, {"bb", {}}});
  check_truncations(std::variant<int, std::string>(std::string("v")));
  check_truncations(std::optional<std::tuple<int, std::string>>({1, "x"}));
  check_truncations(Node{1, {{2, {}}, {3, {{4, {}}}}}});
  const Inner inner{"in", {{1, 2}}, Padded{'p', 9}};
  check_truncations(Outer{inner, {{"k", inner}}, inner, {}, {}, 42, {}});
  check_truncations(std::filesystem::path("a/b"));
  check_truncations(Money(5));
}

TEST_CASE("codec: corrupted bytes give a value or a SerializationError, nothing else",
          "[codec][hostile]") {
  const Inner inner{"in", {{1, 2}}, Padded{'p', 9}};
  check_mutations(Outer{inner, {{"k", inner}}, 5, {}, {}, 42, {}});
  check_mutations(Node{1, {{2, {}}, {3, {{4, {}}}}}});
  check_mutations(std::unordered_map<std::string, std::set<int>>{{"a", {1, 2}}, {"b", {}}});
  check_mutations(std::variant<std::monostate, std::vector<bool>, std::list<std::string>>(
      std::list<std::string>{"x", "y"}));
}

TEST_CASE("codec: nesting deeper than Reader::max_depth is refused", "[codec][hostile]") {
  auto chain = [](int depth) {
    Node n{0, {}};
    for (int i = 1; i <= depth; ++i) {
      Node parent{i, {}};
      parent.kids.push_back(std::move(n));
      n = std::move(parent);
    }
    return n;
  };
  // Each level of the tree is a Node and a vector<Node>.
  const Node ok = chain(200);
  CHECK(round_trip(ok) == ok);
  const std::string err = error_of<Node>(mp::to_bytes(chain(300)));
  CHECK(contains(err, "values nested deeper than 512 levels"));
}

// ---- the Writer --------------------------------------------------------------------------------

TEST_CASE("codec: big spans are referenced, small ones copied", "[codec][writer]") {
  const std::string big(100000, 'b');
  mp::Writer w;
  mp::encode_message(w, big);
  auto segs = w.segments();
  REQUIRE(segs.size() == 2);
  CHECK(segs[0].data == w.buffer().data());
  CHECK(segs[0].size == 16);
  CHECK(segs[1].data == big.data());
  CHECK(segs[1].size == big.size());
  CHECK(w.size() == 16 + big.size());
  CHECK(w.buffer().size() == 16);
  const std::string expected = tag<std::string>() + u64(big.size()) + big;
  CHECK(w.flatten() == expected);
  CHECK(mp::to_bytes(big) == expected);

  // Under the threshold: copied, one segment.
  mp::Writer small;
  std::string s(mp::Writer::view_threshold - 1, 's');
  mp::encode_message(small, s);
  REQUIRE(small.segments().size() == 1);
  CHECK(small.size() == small.buffer().size());
  s[0] = 'X';  // the message holds its own copy
  CHECK(small.flatten()[16] == 's');

  // Several referenced spans, with copied parts between and after them.
  struct Mixed {
    std::string a;
    int x;
    std::vector<int> v;
    char c;
    bool operator==(const Mixed&) const = default;
  };
  const Mixed m{std::string(70000, 'a'), 7, std::vector<int>(20000, 3), 'z'};
  mp::Writer mw;
  mp::encode_message(mw, m);
  segs = mw.segments();
  REQUIRE(segs.size() == 5);
  CHECK(segs[1].data == m.a.data());
  CHECK(segs[3].data == reinterpret_cast<const char*>(m.v.data()));
  CHECK(segs[3].size == m.v.size() * sizeof(int));
  CHECK(segs[4].size == 1);
  std::string joined;
  for (const auto& seg : segs) joined.append(seg.data, seg.size);
  CHECK(joined == mw.flatten());
  CHECK(joined.size() == mw.size());
  CHECK(mp::from_bytes<Mixed>(joined) == m);
  CHECK(joined ==
        tag<Mixed>() + u64(m.a.size()) + m.a + raw(7) + u64(m.v.size()) +
            std::string(reinterpret_cast<const char*>(m.v.data()), m.v.size() * sizeof(int)) + "z");
}

TEST_CASE("codec: a frame header reserved at the buffer's front, clear() keeps capacity",
          "[codec][writer]") {
  const std::string big(mp::Writer::view_threshold, 'q');
  mp::Writer w;
  w.buffer().append(8, '\0');
  mp::encode_message(w, big);
  const std::uint64_t payload = w.size() - 8;
  std::memcpy(w.buffer().data(), &payload, 8);
  auto segs = w.segments();
  REQUIRE(segs.size() == 2);
  CHECK(segs[0].size == 8 + 16);
  CHECK(std::string_view(segs[0].data, 8) == u64(payload));
  CHECK(segs[1].data == big.data());
  CHECK(mp::from_bytes<std::string>(w.flatten().substr(8)) == big);

  const std::size_t capacity = w.buffer().capacity();
  w.add_handle(fake_handle(3));
  w.clear();
  CHECK(w.size() == 0);
  CHECK(w.segments().empty());
  CHECK(w.handles().empty());
  CHECK(w.flatten().empty());
  CHECK(w.buffer().capacity() == capacity);
  w.write_view("abc", 3);
  CHECK(w.flatten() == "abc");
}

TEST_CASE("codec: small messages allocate nothing beyond the Writer's buffer", "[codec][writer]") {
#if defined(PROC_TEST_NO_COUNTING)
  WARN("skipped under ThreadSanitizer (its runtime owns operator new)");
  return;
#endif
  const std::string s16(16, 'x');
  long fresh_int = -1, reused = -1, decode_int = -1, decode_string = -1;
  {
    CountAllocations count;
    mp::Writer w;
    mp::encode_message(w, 42);
    fresh_int = count.count();
  }
  mp::Writer w;
  mp::encode_message(w, s16);  // grows the buffer once
  w.clear();
  {
    CountAllocations count;
    mp::encode_message(w, 42);
    w.clear();
    mp::encode_message(w, s16);
    reused = count.count();
  }
  const std::string bytes = w.flatten();
  const std::string int_bytes = mp::to_bytes(42);
  int i = 0;
  {
    CountAllocations count;
    mp::Reader r(int_bytes);
    i = mp::decode_message<int>(r);
    decode_int = count.count();
  }
  std::string back;
  {
    CountAllocations count;
    mp::Reader r(bytes);
    back = mp::decode_message<std::string>(r);
    decode_string = count.count();
  }
  CHECK(fresh_int == 0);
  CHECK(reused == 0);
  CHECK(decode_int == 0);
  CHECK(i == 42);
  CHECK(decode_string == 1);  // the string itself
  CHECK(back == s16);
}

// ---- handles -----------------------------------------------------------------------------------

TEST_CASE("codec: handles travel by slot, bad slots are refused", "[codec][handles]") {
  const auto h1 = fake_handle(11), h2 = fake_handle(12);
  mp::Writer w;
  CHECK(w.add_handle(h1) == 0);
  CHECK(w.add_handle(h2) == 1);
  CHECK(w.handles() == std::vector<proc::detail::native_handle>{h1, h2});
  w.clear();

  const std::vector<Resource> rs{{h1, 1}, {h2, 2}};
  mp::encode_message(w, rs);
  REQUIRE(w.handles().size() == 2);
  const std::string bytes = w.flatten();
  {
    mp::Reader r(bytes, w.handles());
    CHECK_FALSE(r.handle_taken(0));
    const auto back = mp::decode_message<std::vector<Resource>>(r);
    REQUIRE(back.size() == 2);
    CHECK(back[0].handle == h1);
    CHECK(back[0].extra == 1);
    CHECK(back[1].handle == h2);
    CHECK(r.handle_taken(0));
    CHECK(r.handle_taken(1));
    CHECK_FALSE(r.handle_taken(2));
  }
  {
    mp::Reader r(bytes);  // no handle table
    try {
      (void)mp::decode_message<std::vector<Resource>>(r);
      FAIL("decoded without handles");
    } catch (const mp::SerializationError& e) {
      CHECK(contains(e.what(), "refers to handle slot 0 but came without handles"));
    }
  }
  const std::vector<proc::detail::native_handle> one{h1};
  {
    const std::string out_of_range = tag<Resource>() + u64(5) + raw(1);
    mp::Reader r(out_of_range, one);
    try {
      (void)mp::decode_message<Resource>(r);
      FAIL("decoded slot 5 of 1");
    } catch (const mp::SerializationError& e) {
      CHECK(contains(e.what(), "handle slot 5 is out of range (1 handles came with the message)"));
    }
  }
  {
    const std::string twice =
        tag<std::vector<Resource>>() + u64(2) + u64(0) + raw(1) + u64(0) + raw(2);
    mp::Reader r(twice, one);
    try {
      (void)mp::decode_message<std::vector<Resource>>(r);
      FAIL("took slot 0 twice");
    } catch (const mp::SerializationError& e) {
      CHECK(contains(e.what(), "handle slot 0 is taken twice"));
    }
    CHECK(r.handle_taken(0));
  }
}

TEST_CASE("codec: Reader primitives check what remains", "[codec]") {
  const std::string bytes = u32(7) + u8(1) + "xyz";
  mp::Reader r(bytes);
  CHECK(r.remaining() == 8);
  CHECK(r.read_u32() == 7);
  CHECK(r.read_u8() == 1);
  CHECK(r.take(2) == "xy");
  CHECK_THROWS_AS(r.take(2), mp::SerializationError);
  char c = 0;
  r.read_bytes(&c, 1);
  CHECK(c == 'z');
  CHECK(r.remaining() == 0);
  CHECK_THROWS_AS(r.read_u64(), mp::SerializationError);
  CHECK(r.take(0).empty());
  r.read_bytes(nullptr, 0);
}

}  // namespace
