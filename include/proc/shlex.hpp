#pragma once
/// \file
/// Quoting and splitting of command lines, in the spirit of Python's `shlex` module.
///
/// - POSIX shell: `quote`, `join`, `split` (round trip: `split(join(v)) == v`).
/// - Windows (MSVC CRT / `CommandLineToArgvW`): `windows_quote`, `windows_join`,
///   `windows_split` (round trip: `windows_split(windows_join(v)) == v`).
///
/// These functions only manipulate strings; they never start a process.

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace proc {

namespace detail::shlex {

/// True for the characters `quote` may leave unquoted: `[A-Za-z0-9@%+=:,./_-]`.
inline constexpr bool is_posix_safe(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '@' ||
         c == '%' || c == '+' || c == '=' || c == ':' || c == ',' || c == '.' || c == '/' ||
         c == '_' || c == '-';
}

/// True for the characters `split` treats as word separators outside quotes.
inline constexpr bool is_posix_space(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/// True for the characters `windows_split` treats as argument separators outside quotes.
inline constexpr bool is_windows_space(char c) noexcept { return c == ' ' || c == '\t'; }

/// Builds the message of the exception thrown by `split`.
inline std::string split_error(std::string_view what, std::string_view input) {
  std::string msg = "proc::split: ";
  msg += what;
  msg += " in input: ";
  msg += input;
  return msg;
}

}  // namespace detail::shlex

/// Quotes `s` so that a POSIX shell reads it back as exactly one word equal to `s`.
///
/// Works like Python's `shlex.quote`:
/// - an empty string becomes `''`;
/// - a string made only of `[A-Za-z0-9@%+=:,./_-]` is returned unchanged;
/// - anything else is wrapped in single quotes, each `'` inside becoming `'"'"'`.
///
/// Throws only `std::bad_alloc`.
inline std::string quote(std::string_view s) {
  if (s.empty()) return "''";
  bool safe = true;
  for (char c : s) {
    if (!detail::shlex::is_posix_safe(c)) {
      safe = false;
      break;
    }
  }
  if (safe) return std::string(s);

  std::string out;
  out.reserve(s.size() + 2);
  out += '\'';
  for (char c : s) {
    if (c == '\'') {
      out += "'\"'\"'";
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

/// Quotes every element of `args` with `quote` and joins them with single spaces.
///
/// Works like Python's `shlex.join`; an empty vector gives an empty string.
/// Throws only `std::bad_alloc`.
inline std::string join(const std::vector<std::string>& args) {
  std::string out;
  bool first = true;
  for (const std::string& arg : args) {
    if (!first) out += ' ';
    first = false;
    out += quote(arg);
  }
  return out;
}

/// Splits `s` into words the way a POSIX shell does (no expansions, no comments).
///
/// Works like Python's `shlex.split(s)` (posix mode, `comments=False`), with the
/// backslash rules of the POSIX shell:
/// - space, tab, carriage return and newline separate words outside quotes;
/// - inside `'...'` every character is literal;
/// - inside `"..."` a backslash escapes only `\`, `"`, `$`, `` ` `` and newline
///   (backslash-newline is removed); before any other character it stays literal;
/// - outside quotes a backslash makes the next character literal, and
///   backslash-newline is a line continuation (both are removed);
/// - adjacent quoted and unquoted parts form one word, so `''` is an empty word.
///
/// Throws `std::invalid_argument` (its message contains `s`) on an unterminated
/// single or double quote ("No closing quotation") or on a trailing lone backslash
/// ("No escaped character").
inline std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  const std::size_t n = s.size();
  std::size_t i = 0;

  while (i < n) {
    const char c = s[i];
    if (detail::shlex::is_posix_space(c)) {
      if (in_word) {
        words.emplace_back().swap(word);  // leaves `word` empty
        in_word = false;
      }
      ++i;
    } else if (c == '\\') {
      if (i + 1 >= n) {
        throw std::invalid_argument(detail::shlex::split_error("No escaped character", s));
      }
      if (s[i + 1] != '\n') {  // backslash-newline is a line continuation
        word += s[i + 1];
        in_word = true;
      }
      i += 2;
    } else if (c == '\'') {
      const std::size_t close = s.find('\'', i + 1);
      if (close == std::string_view::npos) {
        throw std::invalid_argument(
            detail::shlex::split_error("No closing quotation (unterminated single quote)", s));
      }
      word.append(s.substr(i + 1, close - i - 1));
      in_word = true;
      i = close + 1;
    } else if (c == '"') {
      in_word = true;
      ++i;
      bool closed = false;
      while (i < n) {
        const char d = s[i];
        if (d == '"') {
          closed = true;
          ++i;
          break;
        }
        if (d == '\\' && i + 1 < n) {
          const char e = s[i + 1];
          if (e == '\\' || e == '"' || e == '$' || e == '`') {
            word += e;
            i += 2;
            continue;
          }
          if (e == '\n') {
            i += 2;
            continue;
          }
        }
        word += d;
        ++i;
      }
      if (!closed) {
        throw std::invalid_argument(
            detail::shlex::split_error("No closing quotation (unterminated double quote)", s));
      }
    } else {
      word += c;
      in_word = true;
      ++i;
    }
  }
  if (in_word) words.emplace_back().swap(word);
  return words;
}

/// Quotes `arg` so that `CommandLineToArgvW` and the MSVC CRT read it back exactly.
///
/// - A non-empty argument without space, tab, newline, vertical tab or `"` is
///   returned unchanged.
/// - Otherwise it is wrapped in `"`; inside, a run of N backslashes followed by `"`
///   becomes 2N+1 backslashes and the `"`, a run of N backslashes at the very end
///   becomes 2N backslashes (so the closing quote stays a quote), and every other
///   backslash is copied as is.
///
/// Throws only `std::bad_alloc`.
inline std::string windows_quote(std::string_view arg) {
  bool needs_quotes = arg.empty();
  for (char c : arg) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '"') {
      needs_quotes = true;
      break;
    }
  }
  if (!needs_quotes) return std::string(arg);

  std::string out;
  out.reserve(arg.size() + 2);
  out += '"';
  std::size_t backslashes = 0;
  for (char c : arg) {
    if (c == '\\') {
      ++backslashes;
      continue;
    }
    if (c == '"') {
      out.append(2 * backslashes + 1, '\\');
    } else {
      out.append(backslashes, '\\');
    }
    backslashes = 0;
    out += c;
  }
  out.append(2 * backslashes, '\\');
  out += '"';
  return out;
}

/// Quotes every element of `args` with `windows_quote` and joins them with single spaces.
///
/// An empty vector gives an empty string. Throws only `std::bad_alloc`.
inline std::string windows_join(const std::vector<std::string>& args) {
  std::string out;
  bool first = true;
  for (const std::string& arg : args) {
    if (!first) out += ' ';
    first = false;
    out += windows_quote(arg);
  }
  return out;
}

/// Splits a Windows command line into arguments like the modern (post-2008) MSVC CRT.
///
/// The rules are those `CommandLineToArgvW` and the CRT apply to the arguments after
/// the program name:
/// - space and tab separate arguments outside quotes;
/// - 2N backslashes followed by `"` give N backslashes, and the `"` toggles quoting;
/// - 2N+1 backslashes followed by `"` give N backslashes and a literal `"`;
/// - backslashes not followed by `"` are literal;
/// - inside quotes, `""` gives a literal `"` and quoting goes on;
/// - a quoted empty string (`""`) is an empty argument.
///
/// The first token is parsed by the same rules. The special program-name rule of
/// `CommandLineToArgvW` (the first token ends at the next quote or space, without
/// backslash processing) is not applied. For output of `windows_join` the two rules
/// agree unless the first argument contains a `"`, or needs quoting and ends with a
/// backslash; a program path has neither.
///
/// Throws only `std::bad_alloc`; an unterminated quote simply runs to the end.
inline std::vector<std::string> windows_split(std::string_view cmdline) {
  std::vector<std::string> args;
  std::string arg;
  bool in_arg = false;
  bool in_quotes = false;
  const std::size_t n = cmdline.size();
  std::size_t i = 0;

  while (i < n) {
    const char c = cmdline[i];
    if (!in_quotes && detail::shlex::is_windows_space(c)) {
      if (in_arg) {
        args.emplace_back().swap(arg);  // leaves `arg` empty
        in_arg = false;
      }
      ++i;
      continue;
    }
    in_arg = true;
    if (c == '\\') {
      std::size_t backslashes = 0;
      while (i < n && cmdline[i] == '\\') {
        ++backslashes;
        ++i;
      }
      if (i < n && cmdline[i] == '"') {
        arg.append(backslashes / 2, '\\');
        if (backslashes % 2 == 1) {
          arg += '"';
          ++i;
        }
        // With an even count the '"' is handled as a quote on the next pass.
      } else {
        arg.append(backslashes, '\\');
      }
    } else if (c == '"') {
      if (in_quotes && i + 1 < n && cmdline[i + 1] == '"') {
        arg += '"';  // "" inside quotes: a literal quote, quoting goes on
        i += 2;
      } else {
        in_quotes = !in_quotes;
        ++i;
      }
    } else {
      arg += c;
      ++i;
    }
  }
  if (in_arg) args.emplace_back().swap(arg);
  return args;
}

}  // namespace proc
