#!/usr/bin/env python3
"""Checks the layering of the code: cli -> app -> train -> model | data | eval -> io -> common.

Every `#include "vcpclip/<area>/..."` in src/<area>/, include/vcpclip/<area>/ and the folder's
private headers must point at the area itself or at an area below it, and CMakeLists.txt's
`vcpclip_add_area(<area> DEPS ...)` lines must state the same dependencies. Prints every violation
(file:line) and exits 1 when there is one.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
# What each area may include (besides itself).
ALLOWED = {
    "common": set(),
    "io": {"common"},
    "data": {"io", "common"},
    "model": {"io", "common"},
    "eval": {"io", "common"},
    "train": {"model", "data", "eval", "io", "common"},
    "app": {"train", "model", "data", "eval", "io", "common"},
    "cli": {"app", "train", "model", "data", "eval", "io", "common"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]vcpclip/([a-z_]+)/')


def area_files():
    for area in ALLOWED:
        for base in (ROOT / "src" / area, ROOT / "include" / "vcpclip" / area):
            if base.is_dir():
                for f in sorted(base.rglob("*")):
                    if f.suffix in (".h", ".cpp", ".hpp", ".inc"):
                        yield area, f


def include_violations():
    out = []
    for area, f in area_files():
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if m and m.group(1) != area and m.group(1) in ALLOWED and m.group(1) not in ALLOWED[area]:
                out.append(f"{f.relative_to(ROOT)}:{n}: {area} must not include vcpclip/{m.group(1)}/ "
                           f"(allowed: {', '.join(sorted(ALLOWED[area])) or 'nothing'})")
    return out


def cmake_violations():
    text = (ROOT / "CMakeLists.txt").read_text()
    out = []
    declared = {}
    for m in re.finditer(r"vcpclip_add_area\((\w+)(?:\s+DEPS\s+([\w\s]+))?\)", text):
        declared[m.group(1)] = set((m.group(2) or "").split())
    for area, deps in declared.items():
        extra = deps - ALLOWED.get(area, set())
        if extra:
            out.append(f"CMakeLists.txt: vcpclip_{area} DEPS {' '.join(sorted(extra))} break the layering")
    missing = [a for a in ALLOWED if a != "cli" and a not in declared]
    if missing:
        out.append(f"CMakeLists.txt: no vcpclip_add_area for {', '.join(missing)}")
    return out


def main():
    problems = include_violations() + cmake_violations()
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layering violation(s); the layers are cli -> app -> train -> "
              "model | data | eval -> io -> common (docs/architecture.md)")
        return 1
    print("layering ok: cli -> app -> train -> model | data | eval -> io -> common")
    return 0


if __name__ == "__main__":
    sys.exit(main())
