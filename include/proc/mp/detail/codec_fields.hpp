#pragma once
// The fields of an aggregate, without reflection: how many there are, whether the aggregate has
// a base class or a C array member (both cannot travel), and a call with every field.
//
// Counting. An aggregate `T` can be initialised from up to as many initialisers as it has
// elements; `any_field` converts to every (non-const) type, so the largest `n` for which
// `T{any_field × n}` is valid is the number of elements ("flat" count). Bases are elements too,
// and a C array member takes one initialiser per array element (brace elision: nothing converts
// to an array type), so the flat count is the number of fields only when neither is there.
//
// Bases. `any_base_of<T>` converts only to the proper bases of `T`: it can initialise the first
// element exactly when that element is a base.
//
// C arrays. Position `i` of the flat count is tried with one braced initialiser (`{}`,
// `{any_field}` or `{any_scalar}`; one of them initialises any field type we meet, and a braced
// initialiser always initialises one whole member, never part of an array) between `i` flat
// initialisers before it and the rest after it. A field that is not an array accepts that; an
// array of extent k >= 2 swallows the braced initialiser whole and leaves too many initialisers
// after it, so every form fails. A position where every form fails is an array when the same
// braced initialiser is accepted with the rest omitted; otherwise (a class that no braced form
// initialises, e.g. one with an explicit constructor and a move constructor only) it is a field
// when a flat initialiser that converts only to class types is accepted there. Arrays of extent
// 1 pass the count, but their field type is an array, which the codec refuses by itself.
//
// Fields. `visit_fields<N>(t, f)` binds the N fields with a structured binding and calls
// `f(type_list<declared types...>{}, fields...)`; the declared types keep references and const,
// so the codec can refuse reference members.

#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>

namespace proc::mp::detail {

template <class... T>
struct type_list {};

// Only ever used in unevaluated operands. The conversions have bodies all the same: clang++
// wants a definition for a type without linkage (a class in an unnamed namespace) even there.
struct any_field {
  template <class U>
  requires(!std::is_const_v<U>) operator U() const noexcept { std::terminate(); }
};
struct any_scalar {
  template <class U>
  requires(std::is_arithmetic_v<U> || std::is_enum_v<U>) operator U() const noexcept {
    std::terminate();
  }
};
struct any_class {
  template <class U>
  requires(std::is_class_v<U> && !std::is_const_v<U>) operator U() const noexcept {
    std::terminate();
  }
};
template <class T>
struct any_base_of {
  template <class U>
  requires(std::is_base_of_v<U, T> && !std::is_same_v<U, T>) operator U() const noexcept {
    std::terminate();
  }
};
template <std::size_t>
using any_field_at = any_field;

/// The most fields the codec handles (probing goes one further to see that there are more).
inline constexpr std::size_t max_fields = 32;
inline constexpr std::size_t no_count = static_cast<std::size_t>(-1);

template <class T, std::size_t... I>
constexpr bool flat_init(std::index_sequence<I...>) {
  return requires { T{any_field_at<I>{}...}; };
}

template <class T, std::size_t... N>
constexpr std::size_t flat_count(std::index_sequence<N...>) {
  std::size_t r = no_count;
  ((flat_init<T>(std::make_index_sequence<N>{}) ? (r = N) : r), ...);
  return r;
}

/// Elements of `T` (fields, bases, C array elements), or `no_count` when no count works (a
/// reference member, or a member that cannot be initialised from a value of its type); capped at
/// max_fields + 1.
template <class T>
inline constexpr std::size_t element_count =
    flat_count<T>(std::make_index_sequence<max_fields + 2>{});

template <class T, std::size_t... J>
constexpr bool first_is_base(std::index_sequence<J...>) {
  return requires { T{any_base_of<T>{}, any_field_at<J>{}...}; };
}

// Form 0: `{}`, 1: `{any_field}`, 2: `{any_scalar}`, 3: flat `any_class`.
template <class T, int Form, bool Rest, std::size_t... I, std::size_t... J>
constexpr bool init_at(std::index_sequence<I...>, std::index_sequence<J...>) {
  if constexpr (Form == 0 && Rest) {
    return requires { T{any_field_at<I>{}..., {}, any_field_at<J>{}...}; };
  } else if constexpr (Form == 0) {
    return requires { T{any_field_at<I>{}..., {}}; };
  } else if constexpr (Form == 1 && Rest) {
    return requires { T{any_field_at<I>{}..., {any_field{}}, any_field_at<J>{}...}; };
  } else if constexpr (Form == 1) {
    return requires { T{any_field_at<I>{}..., {any_field{}}}; };
  } else if constexpr (Form == 2 && Rest) {
    return requires { T{any_field_at<I>{}..., {any_scalar{}}, any_field_at<J>{}...}; };
  } else if constexpr (Form == 2) {
    return requires { T{any_field_at<I>{}..., {any_scalar{}}}; };
  } else {
    return requires { T{any_field_at<I>{}..., any_class{}, any_field_at<J>{}...}; };
  }
}

template <class T, std::size_t F, std::size_t I>
constexpr bool field_at() {
  using before = std::make_index_sequence<I>;
  using after = std::make_index_sequence<F - I - 1>;
  if (init_at<T, 0, true>(before{}, after{}) || init_at<T, 1, true>(before{}, after{}) ||
      init_at<T, 2, true>(before{}, after{}))
    return true;
  if (init_at<T, 0, false>(before{}, after{}) || init_at<T, 1, false>(before{}, after{}) ||
      init_at<T, 2, false>(before{}, after{}))
    return false;  // one braced initialiser took more than one element: an array
  return init_at<T, 3, true>(before{}, after{});
}

template <class T, std::size_t F, std::size_t... I>
constexpr bool no_c_array(std::index_sequence<I...>) {
  return (field_at<T, F, I>() && ...);
}

/// What the counting found out about an aggregate `T`.
enum class Shape { fields, uncountable, too_many, base, c_array };

template <class T>
constexpr Shape aggregate_shape() {
  constexpr std::size_t n = element_count<T>;
  if constexpr (n == no_count || n == 0) {
    return Shape::uncountable;
  } else if constexpr (n > max_fields) {
    return requires { T{any_base_of<T>{}}; }
    ? Shape::base : Shape::too_many;
  } else if constexpr (first_is_base<T>(std::make_index_sequence<n - 1>{})) {
    return Shape::base;
  } else if constexpr (!no_c_array<T, n>(std::make_index_sequence<n>{})) {
    return Shape::c_array;
  } else {
    return Shape::fields;
  }
}

// Generated: one structured binding per field count.
template <std::size_t N, class T, class F>
constexpr decltype(auto) visit_fields(T& t, F&& f) {
  static_assert(N >= 1 && N <= max_fields);
  if constexpr (N == 1) {
    auto& [f0] = t;
    return f(type_list<decltype(f0)>{}, f0);
  } else if constexpr (N == 2) {
    auto& [f0, f1] = t;
    return f(type_list<decltype(f0), decltype(f1)>{}, f0, f1);
  } else if constexpr (N == 3) {
    auto& [f0, f1, f2] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2)>{}, f0, f1, f2);
  } else if constexpr (N == 4) {
    auto& [f0, f1, f2, f3] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3)>{}, f0, f1, f2, f3);
  } else if constexpr (N == 5) {
    auto& [f0, f1, f2, f3, f4] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4)>{}, f0,
             f1, f2, f3, f4);
  } else if constexpr (N == 6) {
    auto& [f0, f1, f2, f3, f4, f5] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5)>{},
             f0, f1, f2, f3, f4, f5);
  } else if constexpr (N == 7) {
    auto& [f0, f1, f2, f3, f4, f5, f6] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6)>{},
             f0, f1, f2, f3, f4, f5, f6);
  } else if constexpr (N == 8) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7)>{},
             f0, f1, f2, f3, f4, f5, f6, f7);
  } else if constexpr (N == 9) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8);
  } else if constexpr (N == 10) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9);
  } else if constexpr (N == 11) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10);
  } else if constexpr (N == 12) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11);
  } else if constexpr (N == 13) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12);
  } else if constexpr (N == 14) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13);
  } else if constexpr (N == 15) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14);
  } else if constexpr (N == 16) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15);
  } else if constexpr (N == 17) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16);
  } else if constexpr (N == 18) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17);
  } else if constexpr (N == 19) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18);
  } else if constexpr (N == 20) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
           f19] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19);
  } else if constexpr (N == 21) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
           f20] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19),
                       decltype(f20)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19, f20);
  } else if constexpr (N == 22) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
           f20, f21] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19),
                       decltype(f20), decltype(f21)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19, f20, f21);
  } else if constexpr (N == 23) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
           f20, f21, f22] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19),
                       decltype(f20), decltype(f21), decltype(f22)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19, f20, f21, f22);
  } else if constexpr (N == 24) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
           f20, f21, f22, f23] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19),
                       decltype(f20), decltype(f21), decltype(f22), decltype(f23)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19, f20, f21, f22, f23);
  } else if constexpr (N == 25) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
           f20, f21, f22, f23, f24] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19),
                       decltype(f20), decltype(f21), decltype(f22), decltype(f23), decltype(f24)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19, f20, f21, f22, f23, f24);
  } else if constexpr (N == 26) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
           f20, f21, f22, f23, f24, f25] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19),
                       decltype(f20), decltype(f21), decltype(f22), decltype(f23), decltype(f24),
                       decltype(f25)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19, f20, f21, f22, f23, f24, f25);
  } else if constexpr (N == 27) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
           f20, f21, f22, f23, f24, f25, f26] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19),
                       decltype(f20), decltype(f21), decltype(f22), decltype(f23), decltype(f24),
                       decltype(f25), decltype(f26)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19, f20, f21, f22, f23, f24, f25, f26);
  } else if constexpr (N == 28) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
           f20, f21, f22, f23, f24, f25, f26, f27] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19),
                       decltype(f20), decltype(f21), decltype(f22), decltype(f23), decltype(f24),
                       decltype(f25), decltype(f26), decltype(f27)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19, f20, f21, f22, f23, f24, f25, f26, f27);
  } else if constexpr (N == 29) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
           f20, f21, f22, f23, f24, f25, f26, f27, f28] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19),
                       decltype(f20), decltype(f21), decltype(f22), decltype(f23), decltype(f24),
                       decltype(f25), decltype(f26), decltype(f27), decltype(f28)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19, f20, f21, f22, f23, f24, f25, f26, f27, f28);
  } else if constexpr (N == 30) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
           f20, f21, f22, f23, f24, f25, f26, f27, f28, f29] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19),
                       decltype(f20), decltype(f21), decltype(f22), decltype(f23), decltype(f24),
                       decltype(f25), decltype(f26), decltype(f27), decltype(f28), decltype(f29)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29);
  } else if constexpr (N == 31) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
           f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19),
                       decltype(f20), decltype(f21), decltype(f22), decltype(f23), decltype(f24),
                       decltype(f25), decltype(f26), decltype(f27), decltype(f28), decltype(f29),
                       decltype(f30)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30);
  } else if constexpr (N == 32) {
    auto& [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18, f19,
           f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31] = t;
    return f(type_list<decltype(f0), decltype(f1), decltype(f2), decltype(f3), decltype(f4),
                       decltype(f5), decltype(f6), decltype(f7), decltype(f8), decltype(f9),
                       decltype(f10), decltype(f11), decltype(f12), decltype(f13), decltype(f14),
                       decltype(f15), decltype(f16), decltype(f17), decltype(f18), decltype(f19),
                       decltype(f20), decltype(f21), decltype(f22), decltype(f23), decltype(f24),
                       decltype(f25), decltype(f26), decltype(f27), decltype(f28), decltype(f29),
                       decltype(f30), decltype(f31)>{},
             f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
             f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31);
  }
}

/// The declared types of the fields of an aggregate with N fields.
struct field_types_of {
  template <class L, class... X>
  L operator()(L types, const X&...) const noexcept {
    return types;
  }
};
template <class T, std::size_t N>
using field_types = decltype(visit_fields<N>(std::declval<T&>(), field_types_of{}));

}  // namespace proc::mp::detail
