#pragma once
// Building the command line CreateProcessW receives: for a program (CommandLineToArgvW / CRT
// rules), for cmd.exe running a shell command (shell = true), and for cmd.exe running a .bat or
// .cmd file.
//
// Calls: none (pure string functions; proc::windows_quote from shlex.hpp).
//
// Invariants:
// - For a program, `CommandLineToArgvW` and the MSVC CRT read back exactly the argv given:
//   argv[0] follows the program-name rule (up to the next '"' when quoted, no backslash
//   escapes), so it is quoted without escapes and may not contain '"'; every other argument goes
//   through proc::windows_quote.
// - cmd.exe does not know backslash escapes, expands %VAR% even inside double quotes, and treats
//   & | < > ^ ( ) as operators outside them. A shell command is handed to it verbatim behind
//   `/d /s /c "..."` (the user wrote it for cmd). Arguments for a batch file are never allowed
//   to reach cmd's parser as code (the "BatBadBut" injection, CVE-2024-24576): each is wrapped
//   in double quotes, and an argument that quotes cannot protect — one holding '"', '%', '!' or
//   a control character other than tab — is refused with std::invalid_argument.

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "proc/shlex.hpp"

namespace proc::detail {

/// argv[0] for a command line: quoted (without escapes) when it holds a space or tab or is
/// empty. Throws std::invalid_argument when it holds '"', which no command line can carry.
inline std::string quote_program_name(std::string_view arg0) {
  if (arg0.find('"') != std::string_view::npos)
    throw std::invalid_argument("proc: the program name '" + std::string(arg0) +
                                "' contains '\"', which a Windows command line cannot carry "
                                "in argv[0]");
  if (!arg0.empty() && arg0.find_first_of(" \t") == std::string_view::npos)
    return std::string(arg0);
  return "\"" + std::string(arg0) + "\"";
}

/// The command line for running a program with `argv` (UTF-8).
inline std::string program_command_line(const std::vector<std::string>& argv) {
  std::string line = quote_program_name(argv.at(0));
  for (std::size_t i = 1; i < argv.size(); ++i) {
    line += ' ';
    line += windows_quote(argv[i]);
  }
  return line;
}

/// The command line for `cmd.exe /d /s /c "<command>"`: /s makes cmd strip exactly the outer
/// quotes and run the rest as typed; /d skips the AutoRun commands of the registry.
inline std::string shell_command_line(std::string_view cmd_exe, std::string_view command) {
  return quote_program_name(cmd_exe) + " /d /s /c \"" + std::string(command) + "\"";
}

/// The first character of `arg` that cmd.exe would act on even inside double quotes, or 0.
inline char cmd_unquotable_char(std::string_view arg) noexcept {
  for (char c : arg) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '%' || c == '!' || (u < 0x20 && c != '\t') || u == 0x7f) return c;
  }
  return 0;
}

/// Whether cmd.exe reads `arg` as one plain word (nothing to quote).
inline bool cmd_plain_word(std::string_view arg) noexcept {
  if (arg.empty()) return false;
  for (char c : arg) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("-_.:/\\@+~#$").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

/// An argument for a batch file: as is when plain, else in double quotes (the batch file sees
/// the quotes in %1, as it would from a cmd prompt; %~1 removes them).
inline std::string quote_for_batch(std::string_view arg, std::size_t index,
                                   std::string_view script) {
  if (char c = cmd_unquotable_char(arg)) {
    std::string shown = c == '\n' ? "\\n" : c == '\r' ? "\\r" : std::string(1, c);
    throw std::invalid_argument(
        "proc: argument " + std::to_string(index) + " ('" + std::string(arg) +
        "') cannot be passed safely to the batch file '" + std::string(script) +
        "': cmd.exe would interpret '" + shown +
        "' even inside quotes (refused to prevent command injection; run a program instead of "
        "a .bat/.cmd file, or use shell = true and quote the command yourself)");
  }
  if (cmd_plain_word(arg)) return std::string(arg);
  return "\"" + std::string(arg) + "\"";
}

/// The command line for running the batch file `script` (a full path) with `argv[1...]`:
/// `cmd.exe /d /v:off /s /c ""<script>" <args>"`. Throws std::invalid_argument for an argument
/// (or a script path) that cannot be passed safely.
inline std::string batch_command_line(std::string_view cmd_exe, std::string_view script,
                                      const std::vector<std::string>& argv) {
  if (char c = cmd_unquotable_char(script))
    throw std::invalid_argument("proc: the batch file path '" + std::string(script) +
                                "' contains '" + std::string(1, c) +
                                "', which cmd.exe would interpret");
  std::string inner = "\"" + std::string(script) + "\"";
  for (std::size_t i = 1; i < argv.size(); ++i) {
    inner += ' ';
    inner += quote_for_batch(argv[i], i, script);
  }
  return quote_program_name(cmd_exe) + " /d /v:off /s /c \"" + inner + "\"";
}

}  // namespace proc::detail
