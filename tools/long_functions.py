#!/usr/bin/env python3
"""Lists C++/CUDA functions longer than a limit and source files longer than another (issue 23:
no file over 600 lines, no function over 120 lines outside kernels).

A brace-matching scan, not a compiler: comments, strings and preprocessor lines are blanked, then
each top-level `{` (at namespace or class scope) is classified by the text before it: a
namespace/class/struct/extern block is entered, a function body (its header holds a `)`) is
measured from the header's first line to its closing brace and skipped (lambdas and local classes
count toward their function), anything else (an initialiser) is skipped. Kernels (`__global__` /
`__device__` functions) are tagged and left out with --skip-kernels.

  python3 tools/long_functions.py                  # the whole tree (git's files)
  python3 tools/long_functions.py --check          # exit 1 when anything is over
  python3 tools/long_functions.py engine/io app    # only these folders or files
"""
import argparse
import os
import re
import subprocess
import sys

EXTS = (".cpp", ".cc", ".cxx", ".h", ".hpp", ".cu", ".cuh")
CONTAINER = re.compile(r"^(template\s*<[^{}]*>\s*)?(inline\s+)?(namespace|class|struct|union)\b|^extern\s*$")
SKIP_DIRS = ("build/", ".device/", "third_party/", "vendor/", "external/")


def blank(text):
    """Comments, string/char literals and preprocessor lines replaced by spaces (newlines kept)."""
    out = list(text)
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == "#":
            # A preprocessor line, with backslash continuations.
            j = i
            while j < n and not (text[j] == "\n" and text[j - 1] != "\\"):
                j += 1
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
            continue
        if c == "\n":
            line_start = True
            i += 1
            continue
        if not c.isspace():
            line_start = False
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                out[k] = " "
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
        elif c == 'R' and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            if not m:
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i)
            j = n if end < 0 else end + len(m.group(1)) + 2
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # a digit separator (1'000)
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            for k in range(i, min(j + 1, n)):
                if out[k] != "\n":
                    out[k] = " "
            i = j + 1
        else:
            i += 1
    return "".join(out)


def match_brace(s, i):
    """Index of the `}` matching the `{` at i (len(s) when unbalanced)."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{":
            depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(s)


def has_ctor_initializer(header):
    # `) : member(...)` but not `::`
    return re.search(r"\)\s*(noexcept\s*)?:(?!:)", header) is not None


def function_name(header):
    h = re.sub(r"\s+", " ", header).strip()
    while "__launch_bounds__" in h:  # drop it with its (nested) parentheses
        start = h.index("__launch_bounds__")
        open_ = h.find("(", start)
        depth, end = 0, open_
        while end < len(h):
            depth += {"(": 1, ")": -1}.get(h[end], 0)
            if depth == 0:
                break
            end += 1
        h = h[:start] + h[end + 1:]
    paren = h.find("(")
    if h.startswith("operator") or " operator" in h[:paren + 1]:
        m = re.search(r"([\w:~]*operator\s*\S+?)\s*\(", h)
        if m:
            return m.group(1)
    m = re.search(r"([\w:~<>,]+)\s*$", h[:paren]) if paren > 0 else None
    return m.group(1) if m else h[:60]


def scan(path):
    """[(start line, end line, name, is_kernel)] for the functions of one file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    s = blank(text)
    line_of = [0] * (len(s) + 1)
    ln = 1
    for i, c in enumerate(s):
        line_of[i] = ln
        if c == "\n":
            ln += 1
    line_of[len(s)] = ln
    found = []

    def walk(begin, end):
        header_start = begin
        i = begin
        while i < end:
            c = s[i]
            if c in ";}":
                header_start = i + 1
            elif c == "{":
                header = s[header_start:i]
                h = header.strip()
                if CONTAINER.match(h) and not re.search(r"\)\s*(const)?\s*$", h):
                    close = match_brace(s, i)
                    walk(i + 1, close)
                    i = close
                    header_start = i + 1
                elif ")" in h and not re.match(r"^(enum)\b", h) and "=" not in h.split("(")[0]:
                    if has_ctor_initializer(h) and re.search(r"[\w>]\s*$", h):
                        # a member's brace initialiser inside a constructor's initialiser list
                        i = match_brace(s, i)
                        i += 1
                        continue
                    close = match_brace(s, i)
                    first = header_start + (len(header) - len(header.lstrip()))
                    found.append((line_of[first], line_of[close], function_name(h),
                                  "__global__" in h or "__device__" in h))
                    i = close
                    header_start = i + 1
                else:
                    i = match_brace(s, i)
                    # `= {...};` and `enum {...};`: the statement goes on to its `;`
            i += 1

    walk(0, len(s))
    return found, text.count("\n") + (0 if text.endswith("\n") or not text else 1)


def tree_files(roots):
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--"] + roots,
                             capture_output=True, text=True, check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        out = [os.path.join(d, f) for r in roots for d, _, fs in os.walk(r) for f in fs]
    return sorted(p for p in out if p.endswith(EXTS) and os.path.isfile(p) and not p.startswith(SKIP_DIRS))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*", default=["."], help="folders or files (default: the whole tree)")
    ap.add_argument("--max-function", type=int, default=120, help="longest function allowed, in lines (120)")
    ap.add_argument("--max-file", type=int, default=600, help="longest file allowed, in lines (600)")
    ap.add_argument("--skip-kernels", action="store_true", help="leave __global__/__device__ functions out")
    ap.add_argument("--check", action="store_true", help="exit 1 when anything is over a limit")
    a = ap.parse_args()
    long_files, long_functions = [], []
    for path in tree_files(a.paths):
        functions, lines = scan(path)
        if lines > a.max_file:
            long_files.append((lines, path))
        for start, end, name, kernel in functions:
            length = end - start + 1
            if length > a.max_function and not (kernel and a.skip_kernels):
                long_functions.append((length, path, start, name, kernel))
    print(f"files over {a.max_file} lines: {len(long_files)}")
    for lines, path in sorted(long_files, reverse=True):
        print(f"  {path}: {lines} lines")
    print(f"functions over {a.max_function} lines: {len(long_functions)}")
    for length, path, start, name, kernel in sorted(long_functions, key=lambda x: (-x[0], x[1])):
        print(f"  {path}:{start}: {name}: {length} lines{' (kernel)' if kernel else ''}")
    return 1 if a.check and (long_files or long_functions) else 0


if __name__ == "__main__":
    sys.exit(main())
