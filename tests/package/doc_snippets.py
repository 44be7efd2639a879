#!/usr/bin/env python3
"""Checks that the code shown in docs/*.md is the code of the examples, which CI builds and runs.

A snippet in a page is a marker line followed by a fenced block:

    <!-- snippet: examples/timeout.cpp [run_timeout] -->
    ```cpp
    ...the lines between the two `// [run_timeout]` lines of examples/timeout.cpp, dedented...
    ```

    doc_snippets.py SOURCE_DIR          check every page; exit 1 on any difference
    doc_snippets.py SOURCE_DIR --fix    rewrite the blocks from the examples
"""
from __future__ import annotations

import pathlib
import re
import sys

MARKER = re.compile(r"^<!-- snippet: (\S+) \[([\w-]+)\] -->$")


def extract(source: pathlib.Path, tag: str) -> list[str]:
    """The lines between the two `// [tag]` lines of `source`, with the common indent removed."""
    lines = source.read_text().splitlines()
    marks = [i for i, line in enumerate(lines) if line.strip() == f"// [{tag}]"]
    if len(marks) != 2:
        raise ValueError(f"{source}: expected two '// [{tag}]' lines, found {len(marks)}")
    body = lines[marks[0] + 1 : marks[1]]
    indent = min((len(l) - len(l.lstrip(" ")) for l in body if l.strip()), default=0)
    return [l[indent:] for l in body]


def process(page: pathlib.Path, root: pathlib.Path, fix: bool) -> list[str]:
    problems = []
    lines = page.read_text().splitlines()
    out = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        m = MARKER.match(lines[i])
        i += 1
        if not m:
            continue
        where = f"{page.relative_to(root)}:{i}"
        if i >= len(lines) or lines[i] != "```cpp":
            problems.append(f"{where}: the marker must be followed by a ```cpp block")
            continue
        end = lines.index("```", i + 1) if "```" in lines[i + 1 :] else -1
        if end < 0:
            problems.append(f"{where}: unterminated code block")
            break
        try:
            want = extract(root / m.group(1), m.group(2))
        except (OSError, ValueError) as e:
            problems.append(f"{where}: {e}")
            want = lines[i + 1 : end]
        if lines[i + 1 : end] != want:
            problems.append(f"{where}: differs from {m.group(1)} [{m.group(2)}]")
        out += ["```cpp", *want, "```"]
        i = end + 1
    if fix:
        page.write_text("\n".join(out) + "\n")
    return problems


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    root = pathlib.Path(sys.argv[1]).resolve()
    fix = "--fix" in sys.argv[2:]
    pages = sorted((root / "docs").glob("*.md"))
    problems = [p for page in pages for p in process(page, root, fix)]
    for p in problems:
        print(p)
    count = sum(1 for page in pages for l in page.read_text().splitlines() if MARKER.match(l))
    print(f"{count} snippets in {len(pages)} pages, {len(problems)} differences"
          + (" (fixed)" if fix and problems else ""))
    return 1 if problems and not fix else 0


if __name__ == "__main__":
    sys.exit(main())
