#pragma once
// The compile-time name of a type, read from the compiler's pretty function signature, and its
// 64-bit FNV-1a hash. Used for the type tags of messages and for error messages.
//
// The name is cut out of `__PRETTY_FUNCTION__` (`__FUNCSIG__` for MSVC) of a function template
// instantiated for T: the prefix and suffix around the type are measured once on `int`, so no
// compiler's exact wording is hard-coded. Names differ between compilers (and between standard
// libraries), which is fine: a tag only has to agree between processes of one binary.
//
// Known limit: g++ names a lambda by its enclosing function and signature only
// (`main()::<lambda()>`), so two lambdas of the same signature in one scope share a name and a
// tag. clang++ adds the source location and does not have this problem.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace proc::mp::detail {

template <class T>
constexpr std::string_view pretty_signature() noexcept {
#if defined(_MSC_VER) && !defined(__clang__)
  return __FUNCSIG__;
#else
  return __PRETTY_FUNCTION__;
#endif
}

inline constexpr std::string_view probe_signature = pretty_signature<int>();
inline constexpr std::size_t name_prefix = probe_signature.find("int");
inline constexpr std::size_t name_suffix = probe_signature.size() - name_prefix - 3;
static_assert(name_prefix != std::string_view::npos, "proc::mp: cannot read type names");

template <class T>
constexpr std::string_view type_name_of() noexcept {
  constexpr std::string_view sig = pretty_signature<T>();
  return sig.substr(name_prefix, sig.size() - name_prefix - name_suffix);
}

constexpr std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

/// Whether `name` is how this compiler names a closure type (used only to word an error).
constexpr bool names_a_lambda(std::string_view name) noexcept {
  if (name.starts_with("(lambda at ") || name.find("::(lambda at ") != std::string_view::npos)
    return name.ends_with(")");                                                      // clang++
  if (name.find("<lambda(") != std::string_view::npos) return name.ends_with(")>");  // g++
  return name.find("<lambda_") != std::string_view::npos;                            // MSVC
}

}  // namespace proc::mp::detail
