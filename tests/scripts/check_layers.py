#!/usr/bin/env python3
"""Checks the layering of the code: cli -> app -> train -> model | data | eval -> io -> common.

Every `#include "vcpclip/<area>/..."` in src/<area>/, include/vcpclip/<area>/ and the folder's
private headers must point at the area itself or at an area below it, and CMakeLists.txt's
`vcpclip_add_area(<area> DEPS ...)` lines must state the same dependencies.

Inside app/ (docs/architecture.md, "The rooms of app/"): the top level holds what several commands
share; the shared rooms (config/, report/) may include the top level and each other; a command
family (serve/, bench/, demo/, ablate/) may include the top level, the shared rooms and itself,
never another family, except the families listed in FAMILY_MAY_INCLUDE (bench measures serve).
Neither the top level nor a shared room includes a family. Every folder in src/app/ or
include/vcpclip/app/ must be named below. Prints every violation (file:line) and exits 1 when
there is one.
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
APP_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]vcpclip/app/(?:([a-z_]+)/)?[a-z_]+\.h')
# The rooms of app/: what several commands share (top level "", config/, report/) and one folder
# per command family.
APP_SHARED = {"", "config", "report", "calibrate"}
APP_FAMILIES = {"serve", "bench", "demo", "ablate"}
# The one exception: `vcpclip bench` measures the server in-process (src/app/bench/serve.cpp).
FAMILY_MAY_INCLUDE = {"bench": {"serve"}}


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


def app_room(f):
    """The room of an app file: "" for the top level, else the first folder under app/."""
    for base in (ROOT / "src" / "app", ROOT / "include" / "vcpclip" / "app"):
        if base in f.parents:
            parts = f.relative_to(base).parts
            return parts[0] if len(parts) > 1 else ""
    return None


def app_room_violations():
    out = []
    for base in (ROOT / "src" / "app", ROOT / "include" / "vcpclip" / "app"):
        for d in sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []:
            if d.name not in APP_SHARED | APP_FAMILIES:
                out.append(f"{d.relative_to(ROOT)}: app room '{d.name}' is neither shared nor a command "
                           f"family (tests/scripts/check_layers.py names the rooms)")
    for area, f in area_files():
        if area != "app":
            continue
        room = app_room(f)
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            m = APP_INCLUDE.match(line)
            if not m:
                continue
            target = m.group(1) or ""
            if target in APP_SHARED or target == room or target in FAMILY_MAY_INCLUDE.get(room, set()):
                continue
            where = "the top level of app/" if room == "" else (
                f"shared room app/{room}/" if room in APP_SHARED else f"family app/{room}/")
            out.append(f"{f.relative_to(ROOT)}:{n}: {where} must not include family vcpclip/app/{target}/ "
                       f"(families include only the top level, the shared rooms and themselves)")
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
    problems = include_violations() + app_room_violations() + cmake_violations()
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layering violation(s); the layers are cli -> app -> train -> "
              "model | data | eval -> io -> common (docs/architecture.md)")
        return 1
    print("layering ok: cli -> app -> train -> model | data | eval -> io -> common; "
          "app families include no other family")
    return 0


if __name__ == "__main__":
    sys.exit(main())
