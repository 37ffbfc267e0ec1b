#!/usr/bin/env python3
"""Keeps the README (and docs/*.md) honest: the tests behind `Readme.*` in tests/CMakeLists.txt.

  check_readme.py structure --binary BUILD/vcpclip --root SRC
      - every subcommand that `vcpclip --help` lists has a row in the README's command table
        ("What is in the box"), and every row names a real subcommand;
      - every how-to a user relies on is still there (REQUIRED_HEADINGS, REQUIRED_EXAMPLES);
      - every quoted cross-reference `see "X"` names a heading (of the same file, or of the README
        for docs/*.md; a heading matches when it is X or starts with X);
      - every relative link [text](path) points at a file of the repository.
  check_readme.py examples --binary BUILD/vcpclip --root SRC [--only NAME]
      - runs every shell block marked `<!-- runnable: NAME -->` (the line before its ```bash fence),
        in a scratch folder that has the repository's configs/, tests/, scripts/, assets/ and the
        build folder as build/, with `set -euo pipefail`; then the block's extra check, if it has one
        (POST_CHECKS). Fails on the first block that fails, naming it and showing its output.

Exit status 0 when everything holds, 1 otherwise (each problem on its own line).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

# The how-to sections a reader must find (a heading starting with each text).
REQUIRED_HEADINGS = [
    "The two commands",
    "The demo",
    "What is in the box",
    "Examples",
    "Your own product in five minutes",
    "Deploying: calibrate, decide, link",
    "Real data: reproducing the paper",
    "Few-shot: reference images",
    "Serving",
    "Configuration",
    "Output formats",
    "Building",
    "Tests",
]
# The runnable examples that must exist (each one is run by `examples`).
REQUIRED_EXAMPLES = ["examples", "own-product", "serving", "few-shot"]

RUNNABLE = re.compile(r"<!--\s*runnable:\s*([A-Za-z0-9_-]+)\s*-->\s*\n```(?:bash|sh)\n(.*?)\n```", re.S)
SEE = re.compile(r'see "([^"]+)"')
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(#[^)]*)?\)")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def headings(text):
    out = []
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and re.match(r"#{1,6} ", line):
            out.append(re.sub(r"^#{1,6} ", "", line).strip())
    return out


def subcommands(binary):
    """The subcommand names of `vcpclip --help` (CLI11's "Subcommands:" list)."""
    text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout
    names, inside = [], False
    for line in text.splitlines():
        if re.match(r"^\s*subcommands:\s*$", line, re.I):
            inside = True
            continue
        if inside:
            m = re.match(r"^\s{2,}([a-z][a-z0-9_-]*)\b", line)
            if m:
                names.append(m.group(1))
            elif line.strip() and not line.startswith(" "):
                break
    if not names:
        raise SystemExit(f"check_readme: found no subcommands in `{binary} --help`:\n{text}")
    return names


def command_table_rows(readme):
    """Subcommand names of the rows of the table under "What is in the box"."""
    m = re.search(r"^## What is in the box\n(.*?)(?=^## )", readme, re.S | re.M)
    if not m:
        return None
    return re.findall(r"^\| `vcpclip ([a-z][a-z0-9_-]*)", m.group(1), re.M)


def check_structure(binary, root):
    problems = []
    readme = read(os.path.join(root, "README.md"))
    readme_heads = headings(readme)
    for want in REQUIRED_HEADINGS:
        if not any(h.startswith(want) for h in readme_heads):
            problems.append(f'README.md: the section "{want}" is missing')
    rows = command_table_rows(readme)
    if rows is None:
        problems.append('README.md: no command table (a "## What is in the box" section)')
        rows = []
    cmds = subcommands(binary)
    for c in cmds:
        if c not in rows:
            problems.append(f"README.md: subcommand `{c}` (vcpclip --help) has no row in the command table")
    for r in sorted(set(rows)):
        if r not in cmds:
            problems.append(f"README.md: the command table lists `vcpclip {r}`, which vcpclip --help does not know")
    names = [m.group(1) for m in RUNNABLE.finditer(readme)]
    for want in REQUIRED_EXAMPLES:
        if want not in names:
            problems.append(f"README.md: the runnable example `{want}` (<!-- runnable: {want} -->) is missing")
    docs = [os.path.join("docs", f) for f in sorted(os.listdir(os.path.join(root, "docs"))) if f.endswith(".md")]
    for rel in ["README.md"] + docs:
        text = read(os.path.join(root, rel))
        heads = headings(text) + (readme_heads if rel != "README.md" else [])
        for ref in SEE.findall(text):
            ref = re.sub(r"\s+", " ", ref)  # a reference may wrap over two lines
            if not any(h == ref or h.startswith(ref) for h in heads):
                problems.append(f'{rel}: see "{ref}" names no heading')
        for target, _ in LINK.findall(text):
            if re.match(r"^[a-z]+:", target):
                continue  # http(s), mailto: not checked (no network)
            path = os.path.normpath(os.path.join(root, os.path.dirname(rel), target))
            if not os.path.exists(path):
                problems.append(f"{rel}: the link ({target}) points at no file")
    return problems


def examples(root):
    found = []
    for rel in ["README.md"] + [os.path.join("docs", f) for f in sorted(os.listdir(os.path.join(root, "docs")))]:
        if rel.endswith(".md"):
            for m in RUNNABLE.finditer(read(os.path.join(root, rel))):
                found.append((rel, m.group(1), m.group(2)))
    return found


def check_own_product(scratch):
    """The walk-through's promise: at --image-quantile 0.95, about 5 % of good parts kept aside are NG."""
    problems = []
    cal = json.load(open(os.path.join(scratch, "runs/own/cal/calibration.json")))
    q = cal["image_quantile"]
    good = json.load(open(os.path.join(scratch, "runs/own/check/scores.json")))["images"]
    if len(good) < 200:
        problems.append(f"own-product: expected at least 200 held-out good images, found {len(good)}")
    ng = sum(1 for e in good if e["decision"] == "ng")
    rate = ng / max(1, len(good))
    print(f"own-product: {ng} of {len(good)} held-out good parts flagged NG = {100 * rate:.1f} % "
          f"(image quantile {q}: {100 * (1 - q):.1f} % expected, within +-3 points)")
    if abs(rate - (1 - q)) > 0.03:
        problems.append(f"own-product: {100 * rate:.1f} % of held-out good parts flagged NG, expected "
                        f"{100 * (1 - q):.1f} +- 3 points (1 - image quantile {q})")
    scores = json.load(open(os.path.join(scratch, "runs/own/pred/scores.json")))
    for e in scores["images"]:
        mask = os.path.join(scratch, "runs/own/pred", e["mask"])
        if not os.path.isfile(mask):
            problems.append(f"own-product: mask {mask} of {e['path']} is missing")
            break
    return problems


POST_CHECKS = {"own-product": check_own_product}


def scratch_folder(binary, root):
    scratch = tempfile.mkdtemp(prefix="vcpclip_readme_")
    root = os.path.abspath(root)
    for name in ["configs", "tests", "scripts", "assets", "examples", "docs"]:
        if os.path.exists(os.path.join(root, name)):
            os.symlink(os.path.join(root, name), os.path.join(scratch, name))
    os.symlink(os.path.dirname(os.path.abspath(binary)), os.path.join(scratch, "build"))
    return scratch


def run_examples(binary, root, only):
    problems = []
    blocks = [b for b in examples(root) if not only or b[1] == only]
    if not blocks:
        return [f"no runnable example{' named ' + only if only else ''} found"]
    for rel, name, body in blocks:
        scratch = scratch_folder(binary, root)
        t0 = time.time()
        proc = subprocess.run(["bash", "-c", "set -euo pipefail\n" + body], cwd=scratch, capture_output=True,
                              text=True)
        print(f"{rel}: runnable example `{name}`: exit {proc.returncode} in {time.time() - t0:.1f} s")
        if proc.returncode != 0:
            problems.append(f"{rel}: runnable example `{name}` failed (exit {proc.returncode}):\n"
                            f"--- script ---\n{body}\n--- output (last 4000 characters) ---\n"
                            f"{(proc.stdout + proc.stderr)[-4000:]}")
        elif name in POST_CHECKS:
            problems += POST_CHECKS[name](scratch)
        shutil.rmtree(scratch, ignore_errors=True)
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["structure", "examples"])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    problems = check_structure(a.binary, a.root) if a.what == "structure" else run_examples(a.binary, a.root, a.only)
    for p in problems:
        print("FAIL:", p)
    if not problems:
        print(f"check_readme {a.what}: ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
