#pragma once
/// \file
/// The cereal bridge: a class that cereal can serialise (a `serialize(Archive&)` member, a
/// `save`/`load` pair, or the non-member forms) becomes Transferable, inside any other
/// Transferable type too.
///
/// ```cpp
/// #include <cereal/types/vector.hpp>  // what the type's own serialize() needs
/// #include <proc/mp/cereal.hpp>
///
/// struct Reading {
///   std::string sensor;
///   std::vector<double> values;
///   template <class Archive> void serialize(Archive& ar) { ar(sensor, values); }
/// };
/// static_assert(proc::mp::Transferable<Reading>);
/// ```
///
/// Needs cereal's headers (Debian: `libcereal-dev`); nothing else of proc includes this file. The
/// value travels as a u64 length and the bytes of cereal's `BinaryOutputArchive`; decoding reads
/// exactly that blob with a `BinaryInputArchive` and requires it to be used up. The type must be
/// default-constructible (it is loaded into a default-constructed value).
///
/// Rules: a `proc::mp::codec<T>` specialisation wins over the bridge; types the codec knows
/// itself (numbers, strings, standard containers...) keep the codec's rules even when cereal
/// could handle them; an aggregate with a `serialize()` goes through cereal.
///
/// The blob's length is checked like every length, and cereal's own errors (reading past the
/// blob's end) and impossible sizes inside it (`std::length_error`) are a `SerializationError`.
/// Sizes inside the blob are cereal's to trust: a container in a cereal type can be made to
/// allocate what hostile bytes announce, as with cereal itself.

#include <cereal/archives/binary.hpp>
#include <cereal/cereal.hpp>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <sstream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>

#include "proc/mp/codec.hpp"

namespace proc::mp {
namespace detail {

template <class T>
concept cereal_bridged =
    std::is_class_v<T> && !library_type<T> && std::is_default_constructible_v<T> &&
    cereal::traits::is_output_serializable<T, cereal::BinaryOutputArchive>::value &&
    cereal::traits::is_input_serializable<T, cereal::BinaryInputArchive>::value;

// An input buffer over bytes in place (cereal reads through std::istream).
class ViewStreambuf : public std::streambuf {
 public:
  explicit ViewStreambuf(std::string_view bytes) {
    // The get area is only read: this streambuf never puts characters back (pbackfail fails).
    char* p = const_cast<char*>(bytes.data());
    setg(p, p, p + bytes.size());
  }
  [[nodiscard]] std::size_t consumed() const noexcept {
    return static_cast<std::size_t>(gptr() - eback());
  }
};

}  // namespace detail

/// The bridge's codec (see the file's documentation).
template <class T>
requires detail::cereal_bridged<T>
struct codec<T> {
  static void encode(Writer& w, const T& v) {
    std::ostringstream out(std::ios::binary);
    {
      cereal::BinaryOutputArchive archive(out);
      archive(v);
    }
    const std::string blob = std::move(out).str();
    w.write_u64(blob.size());
    w.write_bytes(blob.data(), blob.size());
  }

  static T decode(Reader& r) {
    const std::uint64_t n = r.read_u64();
    if (n > r.remaining())
      r.fail("a cereal blob of " + std::to_string(n) + " bytes is longer than the " +
             std::to_string(r.remaining()) + " bytes left");
    const std::string_view blob = r.take(static_cast<std::size_t>(n));
    detail::ViewStreambuf buf(blob);
    std::istream in(&buf);
    T v;
    try {
      cereal::BinaryInputArchive archive(in);
      archive(v);
    } catch (const cereal::Exception& e) {
      r.fail(std::string("cereal: ") + e.what());
    } catch (const std::length_error& e) {
      r.fail(std::string("cereal: an impossible size: ") + e.what());
    }
    if (buf.consumed() != blob.size())
      r.fail("cereal read " + std::to_string(buf.consumed()) + " bytes of a " +
             std::to_string(blob.size()) + "-byte blob");
    return v;
  }
};

}  // namespace proc::mp
