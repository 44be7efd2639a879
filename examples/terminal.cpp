// A child that believes it has a terminal: proc::pty gives it one (a pseudo-terminal in a new
// session, which becomes its controlling terminal). Programs then colour their output, flush it
// line by line, and show prompts — as they do for a person at a terminal.
#include <fmt/core.h>

#include <chrono>
#include <proc/proc.hpp>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int main() {
  // [colour]
  // grep --color=auto colours its matches only on a terminal (and when TERM is not "dumb").
  // Through a pipe: plain text. Through a pty: the same line with the escape codes, and the
  // terminal's line ending \r\n.
  std::vector<std::string> grep = {"sh", "-c", "echo 'a proc example' | grep --color=auto proc"};
  auto piped = proc::run(grep, {.out = proc::pipe, .env_update = {{"TERM", "xterm-256color"}}});
  auto tty = proc::run(grep, {.out = proc::pty, .env_update = {{"TERM", "xterm-256color"}}});
  fmt::print("through a pipe: {:?}\nthrough a pty:  {:?}\n", piped.out, tty.out);
  if (piped.out != "a proc example\n") return 1;
  if (tty.out.find("\x1b[") == std::string::npos || !tty.out.ends_with("\r\n")) return 1;
  // [colour]

  // [prompt]
  // An interactive prompt without a newline: read until it shows, answer, read the rest.
  // stdin and stdout are the same terminal, so what we type comes back as its echo.
  proc::Popen p({"sh", "-c", "printf 'Your name? '; read name; echo \"Hello, $name.\""},
                {.in = proc::pty, .out = proc::pty});
  std::string seen;
  char buf[256];
  while (seen.find("Your name? ") == std::string::npos) {
    std::size_t n = p.out().read(buf, 10s);  // TimeoutExpired if the prompt never comes
    if (n == 0) return 1;                    // the child ended without asking
    seen.append(buf, n);
  }
  p.in().write("Ada\n");
  std::string rest = p.out().read_all();  // up to the child's exit: the end of the terminal
  fmt::print("prompt {:?}, then {:?}\n", seen, rest);
  if (p.wait() != 0 || rest.find("Hello, Ada.") == std::string::npos) return 1;
  // [prompt]

  // [size]
  // The terminal's size: 24×80 unless told, changed later with resize_terminal().
  auto size =
      proc::run({"stty", "size"},
                {.in = proc::pty, .out = proc::pipe, .terminal_size = proc::TerminalSize{40, 120}});
  fmt::print("stty size: {}", size.out);
  return size.out == "40 120\n" ? 0 : 1;
  // [size]
}
