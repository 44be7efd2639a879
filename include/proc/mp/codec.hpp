#pragma once
/// \file
/// The value codec of `proc::mp`: how arguments, results and messages travel between processes
/// of the same program.
///
/// A type is **Transferable** when the codec knows how to copy it into bytes and back:
///
/// - `bool`, the other arithmetic types (character types too), enums, `std::byte`;
/// - `std::basic_string` of a character type, `std::vector` (also `std::vector<bool>`),
///   `std::deque`, `std::list`, `std::array`, `std::map`, `std::multimap`,
///   `std::unordered_map`, `std::unordered_multimap`, `std::set`, `std::multiset`,
///   `std::unordered_set`, `std::unordered_multiset`, `std::optional`, `std::variant`,
///   `std::monostate`, `std::tuple`, `std::pair`, `std::chrono::duration`,
///   `std::chrono::time_point`, `std::filesystem::path` — of Transferable types;
/// - aggregates (plain structs) of Transferable fields, nested to any depth, up to 32 fields
///   each; the fields are found by structured bindings;
/// - empty default-constructible classes: captureless lambdas, `std::less<>`, tag types (they
///   travel as a marker byte and are default-constructed on arrival);
/// - any type `T` for which `proc::mp::codec<T>` is specialised (this wins over every built-in
///   rule), and with `<proc/mp/cereal.hpp>` types that have a cereal `serialize()`.
///
/// Refused at compile time, with a message that names `proc::mp::codec<T>`: raw pointers,
/// references, `std::string_view` and `std::span` (they do not own their data), unions, C
/// arrays (also as fields), aggregates with a base class, lambdas with captures, and other
/// classes that are neither aggregates nor empty.
///
/// Adding a type:
///
/// ```cpp
/// template <>
/// struct proc::mp::codec<Money> {
///   static void encode(proc::mp::Writer& w, const Money& m) { w.write(m.cents()); }
///   static Money decode(proc::mp::Reader& r) { return Money::from_cents(r.read<long>()); }
/// };
/// ```
///
/// `encode` must write at least one byte (an empty encoding is a `SerializationError`), so
/// that counts of elements can be checked against the bytes that remain; `decode` reports bad
/// bytes with `Reader::fail`.
///
/// **The format is not for storage or the network.** Numbers are in the machine's own byte order
/// and sizes, type tags are hashes of compiler-specific type names, and nothing is versioned:
/// bytes are meant to be read by another process of the same executable on the same machine.
///
/// Wire format (all integers native-endian):
///
/// - a message: u64 type tag (`type_tag<T>()`), then the value, then nothing;
/// - `bool`: u8 0 or 1; arithmetic types and enums: their bytes; empty classes: u8 0;
/// - strings, sequences, sets, maps: u64 count, then the elements (a map: key, value, ...);
///   contiguous trivially copyable elements (`std::vector<int>`, strings, `std::array<char, N>`,
///   structs of numbers without padding) are one block of bytes; `std::vector<bool>`: u64 count
///   and the bits packed 8 a byte, low bit first, unused bits zero;
/// - `std::array<T, N>`: the N elements (u8 0 for N = 0); tuples, pairs, aggregates: the
///   elements in order (u8 0 for `std::tuple<>`);
/// - `std::optional`: u8 0, or u8 1 and the value; `std::variant`: the index (u8, u32 beyond 255
///   alternatives) and the alternative;
/// - `std::chrono::duration`: its `count()`; `time_point`: its duration since the epoch;
///   `std::filesystem::path`: its `native()` string.
///
/// Decoding checks every byte it is given: a length or count larger than the bytes left, a bool
/// or optional flag other than 0 or 1, a variant index out of range, a duplicate key in a map or
/// set, truncation, a wrong type tag or trailing bytes are a `SerializationError` that says what
/// was wrong for which type; nothing is allocated beyond what the bytes can justify.

#include <algorithm>
#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "proc/detail/platform.hpp"
#include "proc/mp/detail/codec_fields.hpp"
#include "proc/mp/detail/codec_type_name.hpp"
#include "proc/mp/errors.hpp"

namespace proc::mp {

class Reader;
namespace detail {
class DecodeScope;
class MessageScope;
}  // namespace detail

/// The encoder: appends values to one message, held in a reusable buffer.
///
/// Small parts are copied into the buffer; spans of `view_threshold` bytes or more written with
/// `write_view` (big strings and vectors of numbers) are only referenced, so sending a 1 GiB
/// string does not copy it first. Such a message is valid only while those objects live and are
/// not modified: send it (`segments()`, for `writev`) before touching them.
class Writer {
 public:
  /// Spans at least this long are referenced by `write_view`, not copied.
  static constexpr std::size_t view_threshold = 64 * 1024;

  /// A contiguous piece of the message: in the buffer, or a referenced span.
  struct Segment {
    const char* data;
    std::size_t size;
  };

  /// An empty message.
  Writer() = default;

  /// Appends a copy of `n` bytes at `p`.
  void write_bytes(const void* p, std::size_t n) {
    if (n != 0) buf_.append(static_cast<const char*>(p), n);
  }

  /// Appends `n` bytes at `p`: by reference when `n >= view_threshold` (the caller keeps them
  /// alive and unchanged until the message is sent), else as a copy.
  void write_view(const void* p, std::size_t n) {
    if (n < view_threshold) {
      write_bytes(p, n);
      return;
    }
    views_.push_back({buf_.size(), static_cast<const char*>(p), n});
    view_bytes_ += n;
  }

  /// Appends the encoding of `v` (no type tag; see `encode_message`). A type that is not
  /// Transferable is a compile-time error naming `proc::mp::codec<T>`.
  template <class T>
  void write(const T& v);

  /// Fixed-width integers, in the machine's byte order (for codecs and frame headers).
  void write_u64(std::uint64_t v) { write_bytes(&v, sizeof v); }
  void write_u32(std::uint32_t v) { write_bytes(&v, sizeof v); }
  void write_u8(std::uint8_t v) { buf_.push_back(static_cast<char>(v)); }

  /// Adds a handle (descriptor or `HANDLE`) to pass along with the message and returns its slot
  /// in `handles()`; a codec writes the slot and the receiver calls `Reader::take_handle(slot)`.
  /// The Writer neither owns nor closes it.
  std::size_t add_handle(proc::detail::native_handle h) {
    handles_.push_back(h);
    return handles_.size() - 1;
  }
  /// The handles added, by slot.
  [[nodiscard]] const std::vector<proc::detail::native_handle>& handles() const noexcept {
    return handles_;
  }

  /// The message in order: copied parts (in the buffer) and referenced spans, for `writev`.
  /// When `size() == buffer().size()` nothing is referenced and `buffer()` is the whole message.
  [[nodiscard]] std::vector<Segment> segments() const {
    std::vector<Segment> out;
    out.reserve(views_.size() * 2 + 1);
    std::size_t at = 0;
    for (const View& v : views_) {
      if (v.at > at) out.push_back({buf_.data() + at, v.at - at});
      out.push_back({v.data, v.size});
      at = v.at;
    }
    if (buf_.size() > at) out.push_back({buf_.data() + at, buf_.size() - at});
    return out;
  }

  /// The message's size in bytes, referenced spans included.
  [[nodiscard]] std::size_t size() const noexcept { return buf_.size() + view_bytes_; }

  /// The whole message as one string (a copy of everything, referenced spans included).
  [[nodiscard]] std::string flatten() const {
    std::string out;
    out.reserve(size());
    for (const Segment& s : segments()) out.append(s.data, s.size);
    return out;
  }

  /// Empties the message (bytes, referenced spans, handles), keeping the buffer's capacity.
  void clear() noexcept {
    buf_.clear();
    views_.clear();
    handles_.clear();
    view_bytes_ = 0;
  }

  /// The buffer the copied parts go to. Bytes may be appended to it before encoding (a frame
  /// header to fill in later); afterwards bytes may be overwritten in place, but its size must
  /// not change, since referenced spans are placed by their offset in it.
  [[nodiscard]] std::string& buffer() noexcept { return buf_; }
  [[nodiscard]] const std::string& buffer() const noexcept { return buf_; }

 private:
  struct View {
    std::size_t at;  // the offset in buf_ the span comes before
    const char* data;
    std::size_t size;
  };
  std::string buf_;
  std::vector<View> views_;
  std::vector<proc::detail::native_handle> handles_;
  std::size_t view_bytes_ = 0;
};

/// The decoder: reads values from one contiguous message, checking every length against what
/// remains. Every failure is a `SerializationError` naming the type being decoded.
class Reader {
 public:
  /// Values nested deeper than this (a recursive type, e.g. a tree) are refused when decoded,
  /// so that hostile bytes cannot exhaust the stack.
  static constexpr std::size_t max_depth = 512;

  /// Reads `data` (which must outlive the Reader); `handles` are the handles that came with the
  /// message, by slot.
  explicit Reader(std::string_view data, std::span<const proc::detail::native_handle> handles = {})
      : data_(data), handles_(handles), taken_(handles.size(), false) {}

  /// Copies the next `n` bytes to `out`; `SerializationError` when fewer than `n` remain.
  void read_bytes(void* out, std::size_t n) {
    std::string_view s = take(n);
    if (n != 0) std::memcpy(out, s.data(), n);
  }

  /// The next `n` bytes, in place; `SerializationError` when fewer than `n` remain.
  std::string_view take(std::size_t n) {
    if (n > remaining()) truncated(n);
    std::string_view s(data_.data() + pos_, n);
    pos_ += n;
    return s;
  }

  /// Fixed-width integers as `Writer::write_u64` and friends wrote them.
  std::uint64_t read_u64() { return read_scalar<std::uint64_t>(); }
  std::uint32_t read_u32() { return read_scalar<std::uint32_t>(); }
  std::uint8_t read_u8() { return read_scalar<std::uint8_t>(); }

  /// Decodes a `T` (no type tag; see `decode_message`). A type that is not Transferable is a
  /// compile-time error naming `proc::mp::codec<T>`.
  template <class T>
  T read();

  /// Bytes not read yet.
  [[nodiscard]] std::size_t remaining() const noexcept { return data_.size() - pos_; }

  /// The handle in `slot` of the message's handle table; each slot can be taken once.
  /// `SerializationError` when the message came without handles, the slot is out of range, or
  /// it was taken already.
  proc::detail::native_handle take_handle(std::size_t slot) {
    if (handles_.empty())
      fail("it refers to handle slot " + std::to_string(slot) + " but came without handles");
    if (slot >= handles_.size())
      fail("handle slot " + std::to_string(slot) + " is out of range (" +
           std::to_string(handles_.size()) + " handles came with the message)");
    if (taken_[slot]) fail("handle slot " + std::to_string(slot) + " is taken twice");
    taken_[slot] = true;
    return handles_[slot];
  }

  /// Whether `slot` was taken; after a failed decode, the handles not taken are the receiver's
  /// to close.
  [[nodiscard]] bool handle_taken(std::size_t slot) const noexcept {
    return slot < taken_.size() && taken_[slot];
  }

  /// Throws a `SerializationError` for bad bytes: "proc::mp: cannot decode <type>: <why>", with
  /// the type being decoded (and the message's type). For codecs to report invalid values.
  [[noreturn]] void fail(const std::string& why) const {
    std::string what = "proc::mp: cannot decode ";
    if (!message_.empty()) {
      what += message_;
      if (!decoding_.empty() && decoding_ != message_)
        what.append(" (reading a ").append(decoding_) += ')';
    } else if (!decoding_.empty()) {
      what += decoding_;
    } else {
      what += "the message";
    }
    throw SerializationError(what + ": " + why);
  }

 private:
  friend class detail::DecodeScope;
  friend class detail::MessageScope;

  template <class T>
  T read_scalar() {
    T v{};
    read_bytes(&v, sizeof v);
    return v;
  }

  [[noreturn]] void truncated(std::size_t n) const {
    fail("truncated: " + std::to_string(n) + " more bytes needed, " + std::to_string(remaining()) +
         " left");
  }

  std::string_view data_;
  std::size_t pos_ = 0;
  std::span<const proc::detail::native_handle> handles_;
  std::vector<bool> taken_;
  std::string_view decoding_;  // the type being decoded, for messages
  std::string_view message_;   // the type of the whole message (decode_message)
  std::size_t depth_ = 0;
};

/// The customisation point: specialise `proc::mp::codec<T>` with
/// `static void encode(Writer&, const T&)` (writing at least one byte) and
/// `static T decode(Reader&)` to make `T` Transferable. A specialisation wins over every built-in
/// rule (so it can also change how an aggregate travels). The primary template is never defined.
///
/// Declare the specialisation (or include `<proc/mp/cereal.hpp>`) before the type is first used
/// with the codec, in every file that uses it: as with any template specialisation, what the
/// codec finds at its first use is what it keeps.
template <class T>
struct codec;

/// A name of `T`, stable within one binary (it differs between compilers).
template <class T>
constexpr std::string_view type_name() noexcept {
  return detail::type_name_of<T>();
}

/// A 64-bit hash of `type_name<T>()`: the tag that starts every message of type `T`.
template <class T>
constexpr std::uint64_t type_tag() noexcept {
  return detail::fnv1a(type_name<T>());
}

namespace detail {

template <class>
inline constexpr bool dependent_false = false;

inline std::string hex(std::uint64_t v) {
  std::string s(16, '0');
  for (std::size_t i = 16; i-- > 0; v >>= 4) s[i] = "0123456789abcdef"[v & 15];
  return s;
}

// The type being decoded, for error messages, and the nesting depth.
class DecodeScope {
 public:
  DecodeScope(Reader& r, std::string_view name) : r_(r), saved_(r.decoding_) {
    r.decoding_ = name;
    if (r.depth_ == Reader::max_depth) {
      r.decoding_ = saved_;  // the destructor will not run
      r.fail("values nested deeper than " + std::to_string(Reader::max_depth) + " levels");
    }
    ++r.depth_;
  }
  ~DecodeScope() {
    r_.decoding_ = saved_;
    --r_.depth_;
  }
  DecodeScope(const DecodeScope&) = delete;
  DecodeScope& operator=(const DecodeScope&) = delete;

 private:
  Reader& r_;
  std::string_view saved_;
};

class MessageScope {
 public:
  MessageScope(Reader& r, std::string_view name) : r_(r), saved_(r.message_) { r.message_ = name; }
  ~MessageScope() { r_.message_ = saved_; }
  MessageScope(const MessageScope&) = delete;
  MessageScope& operator=(const MessageScope&) = delete;

 private:
  Reader& r_;
  std::string_view saved_;
};

// ---- what a type is ----------------------------------------------------------------------------

template <class T, template <class...> class Template>
inline constexpr bool is_specialization = false;
template <template <class...> class Template, class... A>
inline constexpr bool is_specialization<Template<A...>, Template> = true;

template <class T>
inline constexpr bool is_std_array = false;
template <class T, std::size_t N>
inline constexpr bool is_std_array<std::array<T, N>> = true;

template <class T>
inline constexpr bool is_std_span = false;
template <class T, std::size_t N>
inline constexpr bool is_std_span<std::span<T, N>> = true;

template <class T>
struct pack_of;
template <template <class...> class Template, class... A>
struct pack_of<Template<A...>> {
  using type = type_list<A...>;
};

// A user's codec<T>: complete, and with the two functions.
template <class T>
concept codec_declared = requires {
  sizeof(codec<T>);
};
template <class T>
concept codec_usable = requires(Writer& w, Reader& r, const T& v) {
  codec<T>::encode(w, v);
  { codec<T>::decode(r) } -> std::convertible_to<T>;
};

// How a (cv-unqualified) type travels, or why it cannot.
enum class Rule {
  user,
  boolean,
  arithmetic,
  enumeration,
  empty,
  string,
  vector_bool,
  sequence,
  array,
  map,
  set,
  optional,
  variant,
  tuple,
  duration,
  time_point,
  path,
  aggregate,
  // refused
  bad_codec,
  reference,
  pointer,
  function,
  c_array,
  view,
  union_type,
  base,
  c_array_member,
  too_many_fields,
  uncountable,
  lambda,
  other,
};

constexpr bool refused(Rule r) noexcept { return r >= Rule::bad_codec; }

template <class C>
constexpr bool char_like() {
  return std::is_arithmetic_v<C> && !std::is_same_v<C, bool>;
}

// Scalars and the standard library types of the list; Rule::other for anything else.
template <class T>
constexpr Rule library_rule() {
  if constexpr (std::is_reference_v<T>) {
    return Rule::reference;
  } else if constexpr (std::is_same_v<T, bool>) {
    return Rule::boolean;
  } else if constexpr (std::is_arithmetic_v<T>) {
    return Rule::arithmetic;
  } else if constexpr (std::is_enum_v<T>) {
    return Rule::enumeration;
  } else if constexpr (std::is_pointer_v<T> || std::is_member_pointer_v<T> ||
                       std::is_null_pointer_v<T>) {
    return Rule::pointer;
  } else if constexpr (std::is_function_v<T>) {
    return Rule::function;
  } else if constexpr (std::is_array_v<T>) {
    return Rule::c_array;
  } else if constexpr (is_specialization<T, std::basic_string_view> || is_std_span<T>) {
    return Rule::view;
  } else if constexpr (is_specialization<T, std::basic_string>) {
    return char_like<typename T::value_type>() ? Rule::string : Rule::other;
  } else if constexpr (is_specialization<T, std::vector>) {
    return std::is_same_v<typename T::value_type, bool> ? Rule::vector_bool : Rule::sequence;
  } else if constexpr (is_specialization<T, std::deque> || is_specialization<T, std::list>) {
    return Rule::sequence;
  } else if constexpr (is_std_array<T>) {
    return Rule::array;
  } else if constexpr (is_specialization<T, std::map> || is_specialization<T, std::multimap> ||
                       is_specialization<T, std::unordered_map> ||
                       is_specialization<T, std::unordered_multimap>) {
    return Rule::map;
  } else if constexpr (is_specialization<T, std::set> || is_specialization<T, std::multiset> ||
                       is_specialization<T, std::unordered_set> ||
                       is_specialization<T, std::unordered_multiset>) {
    return Rule::set;
  } else if constexpr (is_specialization<T, std::optional>) {
    return Rule::optional;
  } else if constexpr (is_specialization<T, std::variant>) {
    return Rule::variant;
  } else if constexpr (is_specialization<T, std::tuple> || is_specialization<T, std::pair>) {
    return Rule::tuple;
  } else if constexpr (is_specialization<T, std::chrono::duration>) {
    return Rule::duration;
  } else if constexpr (is_specialization<T, std::chrono::time_point>) {
    return Rule::time_point;
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    return Rule::path;
  } else {
    return Rule::other;
  }
}

/// Whether the codec has a built-in rule for `T` from the standard library or the language (so a
/// bridge such as cereal's must leave it alone).
template <class T>
inline constexpr bool library_type = library_rule<std::remove_cv_t<T>>() != Rule::other;

template <class T>
constexpr Rule class_rule() {
  if constexpr (std::is_union_v<T>) {
    return Rule::union_type;
  } else if constexpr (std::is_empty_v<T> && std::is_default_constructible_v<T>) {
    return Rule::empty;
  } else if constexpr (std::is_aggregate_v<T>) {
    constexpr Shape shape = aggregate_shape<T>();
    if constexpr (shape == Shape::fields) return Rule::aggregate;
    if constexpr (shape == Shape::base) return Rule::base;
    if constexpr (shape == Shape::c_array) return Rule::c_array_member;
    if constexpr (shape == Shape::too_many) return Rule::too_many_fields;
    return Rule::uncountable;
  } else if constexpr (names_a_lambda(type_name_of<T>())) {
    return Rule::lambda;
  } else {
    return Rule::other;
  }
}

template <class T>
constexpr Rule rule_of() {
  if constexpr (codec_declared<T>) {
    return codec_usable<T> ? Rule::user : Rule::bad_codec;
  } else if constexpr (constexpr Rule r = library_rule<T>(); r != Rule::other) {
    return r;
  } else if constexpr (std::is_class_v<T> || std::is_union_v<T>) {
    return class_rule<T>();
  } else {
    return Rule::other;
  }
}

template <class T>
inline constexpr Rule rule_v = rule_of<T>();

template <class T>
inline constexpr std::size_t field_count = element_count<T>;  // valid for Rule::aggregate

// The compile-time refusals, one message each.
template <class T>
[[noreturn]] void refuse() {
  constexpr Rule rule = rule_v<T>;
  if constexpr (rule == Rule::bad_codec) {
    static_assert(dependent_false<T>,
                  "proc::mp::codec<T> is specialised for this type but lacks `static void "
                  "encode(proc::mp::Writer&, const T&)` or `static T decode(proc::mp::Reader&)`");
  } else if constexpr (rule == Rule::reference) {
    static_assert(dependent_false<T>,
                  "proc::mp: a reference cannot travel (a reference field, tuple element or "
                  "read<T&>); hold the value instead, or specialise proc::mp::codec<T> for the "
                  "type around it");
  } else if constexpr (rule == Rule::pointer) {
    static_assert(dependent_false<T>,
                  "proc::mp: a raw pointer cannot travel (an address means nothing in another "
                  "process); send the value it points to, or specialise proc::mp::codec<T>");
  } else if constexpr (rule == Rule::function) {
    static_assert(dependent_false<T>,
                  "proc::mp: a function cannot travel as a value; use an entry point "
                  "(proc::mp::fn<&f>), or specialise proc::mp::codec<T>");
  } else if constexpr (rule == Rule::c_array) {
    static_assert(dependent_false<T>,
                  "proc::mp: a C array cannot travel; use std::array or std::vector, or "
                  "specialise proc::mp::codec<T>");
  } else if constexpr (rule == Rule::view) {
    static_assert(dependent_false<T>,
                  "proc::mp: std::string_view and std::span do not own their data and cannot "
                  "travel; send a std::string or std::vector, or specialise proc::mp::codec<T>");
  } else if constexpr (rule == Rule::union_type) {
    static_assert(dependent_false<T>,
                  "proc::mp: a union cannot travel (nothing says which member is active); use "
                  "std::variant, or specialise proc::mp::codec<T>");
  } else if constexpr (rule == Rule::base) {
    static_assert(dependent_false<T>,
                  "proc::mp: an aggregate with a base class cannot travel (structured bindings "
                  "cannot reach its fields); make the base a field, or specialise "
                  "proc::mp::codec<T>");
  } else if constexpr (rule == Rule::c_array_member) {
    static_assert(dependent_false<T>,
                  "proc::mp: an aggregate with a C array member cannot travel; use std::array, "
                  "or specialise proc::mp::codec<T>");
  } else if constexpr (rule == Rule::too_many_fields) {
    static_assert(dependent_false<T>,
                  "proc::mp: an aggregate with more than 32 fields (counting each element of a C "
                  "array member) cannot travel; group fields in nested structs, use std::array, "
                  "or specialise proc::mp::codec<T>");
  } else if constexpr (rule == Rule::uncountable) {
    static_assert(dependent_false<T>,
                  "proc::mp: the fields of this aggregate cannot be counted (a reference member, "
                  "or a member that cannot be initialised from a value of its type); specialise "
                  "proc::mp::codec<T>");
  } else if constexpr (rule == Rule::lambda) {
    static_assert(dependent_false<T>,
                  "proc::mp: a lambda with captures cannot travel; use a function object with "
                  "fields or specialise proc::mp::codec<T>");
  } else {
    static_assert(dependent_false<T>,
                  "proc::mp: this type is not Transferable (not a built-in type, an aggregate or "
                  "an empty class); specialise proc::mp::codec<T> with `static void "
                  "encode(proc::mp::Writer&, const T&)` and `static T decode(proc::mp::Reader&)`");
  }
  std::abort();
}

// ---- properties used by the rules --------------------------------------------------------------

template <class Seen, class T>
struct seen_before;
template <class T, class... Seen>
struct seen_before<type_list<Seen...>, T> : std::bool_constant<(std::is_same_v<T, Seen> || ...)> {};

template <class T, class Seen>
constexpr bool transferable_in();

template <class Seen, class... T>
constexpr bool all_transferable(type_list<T...>) {
  return (transferable_in<T, Seen>() && ...);
}

// Deep: the elements and fields too. `Seen` holds the aggregates being checked, so a recursive
// type (a tree of aggregates holding a vector of themselves) ends.
template <class T, class Seen>
constexpr bool transferable_in() {
  using U = std::remove_cv_t<T>;
  constexpr Rule rule = rule_v<U>;
  if constexpr (refused(rule)) {
    return false;
  } else if constexpr (rule == Rule::sequence || rule == Rule::set || rule == Rule::optional ||
                       rule == Rule::array) {
    return transferable_in<typename U::value_type, Seen>();
  } else if constexpr (rule == Rule::map) {
    return transferable_in<typename U::key_type, Seen>() &&
           transferable_in<typename U::mapped_type, Seen>();
  } else if constexpr (rule == Rule::variant || rule == Rule::tuple) {
    return all_transferable<Seen>(typename pack_of<U>::type{});
  } else if constexpr (rule == Rule::duration) {
    return transferable_in<typename U::rep, Seen>();
  } else if constexpr (rule == Rule::time_point) {
    return transferable_in<typename U::duration, Seen>();
  } else if constexpr (rule == Rule::aggregate) {
    if constexpr (seen_before<Seen, U>::value) {
      return true;
    } else {
      return []<class... S>(type_list<S...>) {
        return all_transferable<type_list<S..., U>>(field_types<U, field_count<U>>{});
      }(Seen{});
    }
  } else {
    return true;
  }
}

template <class... T>
constexpr std::size_t sum_min_sizes(type_list<T...>);

// The fewest bytes a value of T encodes to (at least 1): counts are checked against
// remaining() / min_size, so a loop over elements can never outrun the bytes.
template <class T>
constexpr std::size_t min_size() {
  using U = std::remove_cv_t<T>;
  constexpr Rule rule = rule_v<U>;
  if constexpr (rule == Rule::arithmetic || rule == Rule::enumeration) {
    return sizeof(U);
  } else if constexpr (rule == Rule::string || rule == Rule::vector_bool ||
                       rule == Rule::sequence || rule == Rule::map || rule == Rule::set ||
                       rule == Rule::path) {
    return sizeof(std::uint64_t);
  } else if constexpr (rule == Rule::array) {
    constexpr std::size_t n = std::tuple_size_v<U>;
    return n == 0 ? 1 : n * min_size<typename U::value_type>();
  } else if constexpr (rule == Rule::variant) {
    return []<class... A>(type_list<A...>) {
      return (sizeof...(A) <= 255 ? 1 : 4) + std::min({min_size<A>()...});
    }(typename pack_of<U>::type{});
  } else if constexpr (rule == Rule::tuple) {
    return sum_min_sizes(typename pack_of<U>::type{});
  } else if constexpr (rule == Rule::duration) {
    return min_size<typename U::rep>();
  } else if constexpr (rule == Rule::time_point) {
    return min_size<typename U::duration>();
  } else if constexpr (rule == Rule::aggregate) {
    return sum_min_sizes(field_types<U, field_count<U>>{});
  } else {
    return 1;  // bool, optional, empty classes, user codecs (which must write a byte)
  }
}

template <class... T>
constexpr std::size_t sum_min_sizes(type_list<T...>) {
  if constexpr (sizeof...(T) == 0) {
    return 1;
  } else {
    return (min_size<T>() + ...);
  }
}

template <class T>
constexpr bool bitwise();

template <class... F>
constexpr bool fields_bitwise(type_list<F...>) {
  return ((!std::is_const_v<F> && bitwise<F>()) && ...) && (sizeof(F) + ...) > 0;
}
template <class... F>
constexpr std::size_t fields_size(type_list<F...>) {
  return (sizeof(F) + ...);
}

// Whether the encoding of T is exactly its object bytes, so that a contiguous run of Ts is one
// memcpy each way: numbers, enums, and arrays, durations and padding-free structs of them (not
// bool: its byte is checked). Every byte pattern must be a valid value on decoding.
template <class T>
constexpr bool bitwise() {
  constexpr Rule rule = rule_v<T>;
  if constexpr (std::is_const_v<T> || std::is_volatile_v<T> || std::is_reference_v<T>) {
    return false;
  } else if constexpr (rule == Rule::arithmetic || rule == Rule::enumeration) {
    return true;
  } else if constexpr (rule == Rule::array) {
    return std::tuple_size_v<T> != 0 && bitwise<typename T::value_type>() &&
           sizeof(T) == std::tuple_size_v<T> * sizeof(typename T::value_type);
  } else if constexpr (rule == Rule::duration) {
    return bitwise<typename T::rep>() && sizeof(T) == sizeof(typename T::rep) &&
           std::is_trivially_copyable_v<T>;
  } else if constexpr (rule == Rule::aggregate) {
    if constexpr (std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>) {
      using fields = field_types<T, field_count<T>>;
      return fields_bitwise(fields{}) && fields_size(fields{}) == sizeof(T);
    } else {
      return false;
    }
  } else {
    return false;
  }
}

template <class T>
inline constexpr bool bitwise_v = bitwise<T>();

template <class T>
using decoded_t = std::conditional_t<std::is_array_v<T> || std::is_function_v<T>, char, T>;

template <class T>
void encode_value(Writer& w, const std::remove_reference_t<T>& v);
template <class T>
decoded_t<T> decode_value(Reader& r);

// A count read from the bytes, checked: each element takes at least min_size<E> bytes.
template <class... E>
std::size_t read_count(Reader& r) {
  constexpr std::size_t per = (min_size<E>() + ...);
  const std::uint64_t n = r.read_u64();
  if (n > r.remaining() / per)
    r.fail("a count of " + std::to_string(n) + " elements is more than the " +
           std::to_string(r.remaining()) + " bytes left can hold");
  return static_cast<std::size_t>(n);
}

// How many elements of size `each` to reserve for `n` announced ones: no more than 16 times the
// bytes left, so that a type much bigger than its encoding cannot make a small message reserve
// gigabytes (the container still grows to n as elements really arrive).
inline std::size_t reserve_count(std::size_t n, std::size_t each, std::size_t left) {
  const std::uint64_t cap = (static_cast<std::uint64_t>(left) * 16 + 4096) / each;
  return n < cap ? n : static_cast<std::size_t>(cap);
}

template <class V>
void encode_bits(Writer& w, const V& v) {
  w.write_u64(v.size());
  unsigned char chunk[256];
  std::size_t used = 0;
  unsigned byte = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (v[i]) byte |= 1u << (i % 8);
    if (i % 8 == 7) {
      chunk[used++] = static_cast<unsigned char>(byte);
      byte = 0;
      if (used == sizeof chunk) {
        w.write_bytes(chunk, used);
        used = 0;
      }
    }
  }
  if (v.size() % 8 != 0) chunk[used++] = static_cast<unsigned char>(byte);
  w.write_bytes(chunk, used);
}

template <class V>
V decode_bits(Reader& r) {
  const std::uint64_t n = r.read_u64();
  if (n / 8 > r.remaining() || n / 8 + (n % 8 != 0) > r.remaining())
    r.fail("a count of " + std::to_string(n) + " bits is more than the " +
           std::to_string(r.remaining()) + " bytes left can hold");
  const auto count = static_cast<std::size_t>(n);
  std::string_view bytes = r.take(count / 8 + (count % 8 != 0));
  if (count % 8 != 0 && (static_cast<unsigned char>(bytes.back()) >> (count % 8)) != 0)
    r.fail("the unused bits of the last byte are not zero");
  V v(count);
  for (std::size_t i = 0; i < count; ++i)
    v[i] = ((static_cast<unsigned char>(bytes[i / 8]) >> (i % 8)) & 1u) != 0;
  return v;
}

template <class T>
inline constexpr bool is_vector = is_specialization<T, std::vector>;
template <class T>
inline constexpr bool is_multi =
    is_specialization<T, std::multimap> || is_specialization<T, std::unordered_multimap> ||
    is_specialization<T, std::multiset> || is_specialization<T, std::unordered_multiset>;

template <class E, std::size_t>
E decode_element(Reader& r) {
  return decode_value<E>(r);
}

template <class T>
void encode_value(Writer& w, const std::remove_reference_t<T>& v) {
  constexpr Rule rule = rule_v<T>;
  if constexpr (!std::is_same_v<T, std::remove_cv_t<T>>) {
    encode_value<std::remove_cv_t<T>>(w, v);
  } else if constexpr (rule == Rule::user) {
    const std::size_t before = w.size();
    codec<T>::encode(w, v);
    if (w.size() == before)
      throw SerializationError("proc::mp: proc::mp::codec<" + std::string(type_name_of<T>()) +
                               ">::encode wrote nothing; every value must encode to at least "
                               "one byte");
  } else if constexpr (rule == Rule::boolean) {
    w.write_u8(v ? 1 : 0);
  } else if constexpr (rule == Rule::arithmetic || rule == Rule::enumeration) {
    w.write_bytes(&v, sizeof v);
  } else if constexpr (rule == Rule::empty) {
    w.write_u8(0);
  } else if constexpr (rule == Rule::string) {
    w.write_u64(v.size());
    w.write_view(v.data(), v.size() * sizeof(typename T::value_type));
  } else if constexpr (rule == Rule::vector_bool) {
    encode_bits(w, v);
  } else if constexpr (rule == Rule::sequence) {
    using E = typename T::value_type;
    w.write_u64(v.size());
    if constexpr (is_vector<T> && bitwise_v<E>) {
      w.write_view(v.data(), v.size() * sizeof(E));
    } else {
      for (const E& e : v) encode_value<E>(w, e);
    }
  } else if constexpr (rule == Rule::array) {
    using E = typename T::value_type;
    if constexpr (std::tuple_size_v<T> == 0) {
      w.write_u8(0);
    } else if constexpr (bitwise_v<E>) {
      w.write_view(v.data(), sizeof(T));
    } else {
      for (const E& e : v) encode_value<E>(w, e);
    }
  } else if constexpr (rule == Rule::map) {
    w.write_u64(v.size());
    for (const auto& [key, value] : v) {
      encode_value<typename T::key_type>(w, key);
      encode_value<typename T::mapped_type>(w, value);
    }
  } else if constexpr (rule == Rule::set) {
    w.write_u64(v.size());
    for (const auto& e : v) encode_value<typename T::key_type>(w, e);
  } else if constexpr (rule == Rule::optional) {
    w.write_u8(v.has_value() ? 1 : 0);
    if (v) encode_value<typename T::value_type>(w, *v);
  } else if constexpr (rule == Rule::variant) {
    if (v.valueless_by_exception())
      throw SerializationError("proc::mp: cannot encode " + std::string(type_name_of<T>()) +
                               ": the variant is valueless (an exception interrupted an "
                               "assignment)");
    constexpr std::size_t n = std::variant_size_v<T>;
    if constexpr (n <= 255) {
      w.write_u8(static_cast<std::uint8_t>(v.index()));
    } else {
      w.write_u32(static_cast<std::uint32_t>(v.index()));
    }
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      using Fn = void (*)(Writer&, const T&);
      static constexpr Fn table[] = {+[](Writer& ww, const T& vv) {
        encode_value<std::variant_alternative_t<I, T>>(ww, *std::get_if<I>(&vv));
      }...};
      table[v.index()](w, v);
    }
    (std::make_index_sequence<n>{});
  } else if constexpr (rule == Rule::tuple) {
    constexpr std::size_t n = std::tuple_size_v<T>;
    if constexpr (n == 0) {
      w.write_u8(0);
    } else {
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (encode_value<std::tuple_element_t<I, T>>(w, std::get<I>(v)), ...);
      }
      (std::make_index_sequence<n>{});
    }
  } else if constexpr (rule == Rule::duration) {
    encode_value<typename T::rep>(w, v.count());
  } else if constexpr (rule == Rule::time_point) {
    encode_value<typename T::duration>(w, v.time_since_epoch());
  } else if constexpr (rule == Rule::path) {
    encode_value<typename T::string_type>(w, v.native());
  } else if constexpr (rule == Rule::aggregate) {
    visit_fields<field_count<T>>(v, [&]<class... F>(type_list<F...>, const auto&... field) {
      (encode_value<std::remove_cv_t<F>>(w, field), ...);
    });
  } else {
    refuse<T>();
  }
}

template <class T>
decoded_t<T> decode_value(Reader& r) {
  constexpr Rule rule = rule_v<T>;
  if constexpr (!std::is_same_v<T, std::remove_cv_t<T>>) {
    return decode_value<std::remove_cv_t<T>>(r);
  } else if constexpr (rule == Rule::boolean) {
    const std::uint8_t b = r.read_u8();
    if (b > 1) r.fail("a bool is 0 or 1, not " + std::to_string(b));
    return b == 1;
  } else if constexpr (rule == Rule::arithmetic || rule == Rule::enumeration) {
    T v{};
    r.read_bytes(&v, sizeof v);
    return v;
  } else if constexpr (refused(rule)) {
    refuse<T>();
  } else {
    DecodeScope scope(r, type_name_of<T>());
    if constexpr (rule == Rule::user) {
      return static_cast<T>(codec<T>::decode(r));
    } else if constexpr (rule == Rule::empty) {
      if (const std::uint8_t b = r.read_u8(); b != 0)
        r.fail("an empty value is the byte 0, not " + std::to_string(b));
      return T{};
    } else if constexpr (rule == Rule::string) {
      using C = typename T::value_type;
      const std::uint64_t n = r.read_u64();
      if (n > r.remaining() / sizeof(C))
        r.fail("a length of " + std::to_string(n) + " characters is more than the " +
               std::to_string(r.remaining()) + " bytes left");
      const auto count = static_cast<std::size_t>(n);
      std::string_view bytes = r.take(count * sizeof(C));
      if constexpr (std::is_same_v<C, char>) {
        return T(bytes.data(), count);
      } else {
        T s;
        s.resize(count);
        if (count != 0) std::memcpy(s.data(), bytes.data(), bytes.size());
        return s;
      }
    } else if constexpr (rule == Rule::vector_bool) {
      return decode_bits<T>(r);
    } else if constexpr (rule == Rule::sequence) {
      using E = typename T::value_type;
      if constexpr (is_vector<T> && bitwise_v<E>) {
        const std::size_t n = read_count<E>(r);
        std::string_view bytes = r.take(n * sizeof(E));
        T v(n);
        if (n != 0) std::memcpy(v.data(), bytes.data(), bytes.size());
        return v;
      } else {
        const std::size_t n = read_count<E>(r);
        T v;
        if constexpr (is_vector<T>) v.reserve(reserve_count(n, sizeof(E), r.remaining()));
        for (std::size_t i = 0; i < n; ++i) v.push_back(decode_value<E>(r));
        return v;
      }
    } else if constexpr (rule == Rule::array) {
      using E = typename T::value_type;
      constexpr std::size_t n = std::tuple_size_v<T>;
      if constexpr (n == 0) {
        if (const std::uint8_t b = r.read_u8(); b != 0)
          r.fail("an empty array is the byte 0, not " + std::to_string(b));
        return T{};
      } else if constexpr (bitwise_v<E>) {
        T a;
        r.read_bytes(a.data(), sizeof(T));
        return a;
      } else if constexpr (std::is_default_constructible_v<E> && std::is_move_assignable_v<E>) {
        T a{};
        for (E& e : a) e = decode_value<E>(r);
        return a;
      } else {
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
          return T{{decode_element<E, I>(r)...}};
        }
        (std::make_index_sequence<n>{});
      }
    } else if constexpr (rule == Rule::map) {
      using K = typename T::key_type;
      using M = typename T::mapped_type;
      const std::size_t n = read_count<K, M>(r);
      T m;
      if constexpr (requires { m.reserve(n); })
        m.reserve(reserve_count(n, sizeof(typename T::value_type), r.remaining()));
      for (std::size_t i = 0; i < n; ++i) {
        K key = decode_value<K>(r);
        M value = decode_value<M>(r);
        const std::size_t before = m.size();
        m.emplace_hint(m.end(), std::move(key), std::move(value));
        if (!is_multi<T> && m.size() == before)
          r.fail("element " + std::to_string(i) + " repeats a key");
      }
      return m;
    } else if constexpr (rule == Rule::set) {
      using K = typename T::key_type;
      const std::size_t n = read_count<K>(r);
      T s;
      if constexpr (requires { s.reserve(n); })
        s.reserve(reserve_count(n, sizeof(K), r.remaining()));
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t before = s.size();
        s.emplace_hint(s.end(), decode_value<K>(r));
        if (!is_multi<T> && s.size() == before)
          r.fail("element " + std::to_string(i) + " repeats a key");
      }
      return s;
    } else if constexpr (rule == Rule::optional) {
      const std::uint8_t flag = r.read_u8();
      if (flag > 1) r.fail("the flag of an optional is 0 or 1, not " + std::to_string(flag));
      if (flag == 0) return T{};
      return T(std::in_place, decode_value<typename T::value_type>(r));
    } else if constexpr (rule == Rule::variant) {
      constexpr std::size_t n = std::variant_size_v<T>;
      std::size_t index = 0;
      if constexpr (n <= 255) {
        index = r.read_u8();
      } else {
        index = r.read_u32();
      }
      if (index >= n)
        r.fail("the variant index " + std::to_string(index) + " is out of range (" +
               std::to_string(n) + " alternatives)");
      return [&]<std::size_t... I>(std::index_sequence<I...>) {
        using Fn = T (*)(Reader&);
        static constexpr Fn table[] = {+[](Reader& rr) {
          return T(std::in_place_index<I>, decode_value<std::variant_alternative_t<I, T>>(rr));
        }...};
        return table[index](r);
      }
      (std::make_index_sequence<n>{});
    } else if constexpr (rule == Rule::tuple) {
      constexpr std::size_t n = std::tuple_size_v<T>;
      if constexpr (n == 0) {
        if (const std::uint8_t b = r.read_u8(); b != 0)
          r.fail("an empty tuple is the byte 0, not " + std::to_string(b));
        return T{};
      } else {
        // Braced initialisers are evaluated left to right, in the order they were written.
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
          return T{decode_value<std::tuple_element_t<I, T>>(r)...};
        }
        (std::make_index_sequence<n>{});
      }
    } else if constexpr (rule == Rule::duration) {
      return T(decode_value<typename T::rep>(r));
    } else if constexpr (rule == Rule::time_point) {
      return T(decode_value<typename T::duration>(r));
    } else if constexpr (rule == Rule::path) {
      return T(decode_value<typename T::string_type>(r));
    } else {
      static_assert(rule == Rule::aggregate);
      return [&]<class... F>(type_list<F...>) -> T {
        if constexpr (((std::is_array_v<F> || std::is_function_v<F>) || ...)) {
          (decode_value<std::remove_cv_t<F>>(r), ...);  // the refusal, without more errors
          std::abort();
        } else {
          return T{decode_value<std::remove_cv_t<F>>(r)...};
        }
      }(field_types<T, field_count<T>>{});
    }
  }
}

}  // namespace detail

template <class T>
void Writer::write(const T& v) {
  detail::encode_value<std::remove_cv_t<T>>(*this, v);
}

template <class T>
T Reader::read() {
  return detail::decode_value<std::remove_cv_t<T>>(*this);
}

/// Whether values of `T` can travel (see the file's documentation). Checks elements and fields
/// too: `Transferable<std::vector<int*>>` is false. References are not Transferable.
template <class T>
concept Transferable = detail::transferable_in<T, detail::type_list<>>();

/// Writes a message: `type_tag<T>()`, then `v`.
template <class T>
void encode_message(Writer& w, const T& v) {
  w.write_u64(type_tag<std::remove_cv_t<T>>());
  w.write(v);
}

/// Reads a message written by `encode_message<T>`: checks the type tag (a `SerializationError`
/// naming `T` when the message holds another type), decodes the value, and requires that
/// nothing is left after it.
template <class T>
T decode_message(Reader& r) {
  using U = std::remove_cv_t<T>;
  detail::MessageScope scope(r, type_name<U>());
  const std::uint64_t tag = r.read_u64();
  if (tag != type_tag<U>())
    r.fail("the message holds another type (its type tag is " + detail::hex(tag) + ", not " +
           detail::hex(type_tag<U>()) + ")");
  U v = r.read<U>();
  if (r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " bytes are left after the value");
  return v;
}

/// The bytes of a message holding `v` (`encode_message`, then one flat copy).
template <class T>
std::string to_bytes(const T& v) {
  Writer w;
  encode_message(w, v);
  return w.flatten();
}

/// The value of a message made by `to_bytes<T>` (without handles).
template <class T>
T from_bytes(std::string_view bytes) {
  Reader r(bytes);
  return decode_message<T>(r);
}

}  // namespace proc::mp
