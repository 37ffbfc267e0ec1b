#!/usr/bin/env python3
"""Checks the tests that did not run against tests/skip_allowlist.txt (run by scripts/test.sh).

  python3 scripts/check_skips.py <ctest JUnit file> <allowlist>

Reads ctest's JUnit report (ctest --output-junit), prints every skipped test with the reason it
gave (a GoogleTest skip's message, a script's "SKIP: ..." line), and ends with one line
"N passed, N failed, N skipped". A skip that the allowlist does not name, or that gives no
reason, is an error when CI is set (CI=true, as CI services set it): exit 1, naming the test and
its reason; otherwise a warning. Allowlist: one test a line, "<test name>  <reason>"; '#' starts a
comment; an entry without a reason is itself an error.
"""
import os
import sys
import xml.etree.ElementTree as ET


def read_allowlist(path):
    allowed = {}
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 1)
            if len(parts) < 2:
                sys.exit(f"{path}:{n}: '{parts[0]}' has no reason: write '<test name>  <why it may skip>'")
            allowed[parts[0]] = parts[1].strip()
    return allowed


def skip_reason(case):
    """The reason the test printed: GoogleTest's message after "Skipped", else a "SKIP: ..." line."""
    out = (case.findtext("system-out") or "").splitlines()
    for i, line in enumerate(out):
        if line.rstrip().endswith(": Skipped"):
            msg = []
            for rest in out[i + 1:]:
                if rest.startswith("[  SKIPPED ]"):
                    break
                if rest.strip():
                    msg.append(rest.strip())
            if msg:
                return " ".join(msg)
        if line.startswith("SKIP: "):
            return line[len("SKIP: "):].strip()
    return ""


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    report, allowlist = sys.argv[1], sys.argv[2]
    allowed = read_allowlist(allowlist)
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    passed = failed = 0
    bad = []
    skipped = []
    for case in ET.parse(report).getroot().iter("testcase"):
        status = case.get("status")
        if status == "run":
            passed += 1
        elif status == "fail":
            failed += 1
        else:
            name, reason = case.get("name"), skip_reason(case)
            skipped.append(name)
            shown = reason or "(no reason printed)"
            if name in allowed and reason:
                print(f"skipped (allowed: {allowed[name]}): {name}: {shown}")
            else:
                why = "not in " + allowlist if name not in allowed else "skipped without printing a reason"
                print(f"skipped ({why}): {name}: {shown}")
                bad.append(f"{name}: {shown}")
    rc = 0
    if bad:
        what = f"{len(bad)} skip(s) that {allowlist} does not allow"
        if ci:
            print(f"error: CI=true and {what}:\n  " + "\n  ".join(bad))
            rc = 1
        else:
            print(f"warning: {what} (an error under CI=true):\n  " + "\n  ".join(bad))
    print(f"{passed} passed, {failed} failed, {len(skipped)} skipped")
    return rc


if __name__ == "__main__":
    sys.exit(main())
