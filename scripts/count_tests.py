#!/usr/bin/env python3
"""Counts criterion test cases in meson test logs.

Usage: count_tests.py TESTLOG.json...   prints "PASSED FAILED SKIPPED"

Each criterion binary ends its output with
    [====] Synthesis: Tested: X | Passing: Y | Failing: Z | Crashing: W
and that line gives its cases. A test that passed but crashed or exited in
its teardown (criterion warns, the binary exits non-zero) counts as failed.
A binary without a synthesis (it crashed or timed out) counts as one
failure, and so does a binary that meson saw fail, or whose output holds a
sanitizer report (criterion does not notice a leak reported when a test's
process exits), although its synthesis reports no failure.
"""
import json
import re
import sys

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SYNTH = re.compile(r"Synthesis: Tested: (\d+) \| Passing: (\d+) \| "
                   r"Failing: (\d+) \| Crashing: (\d+)")
TEARDOWN = re.compile(r"Warning! The test `([^`]+)` (?:crashed|exited) "
                      r"during its setup or teardown")
SKIP = re.compile(r"\[SKIP\] (\S+)")
SANITIZER = re.compile(r"ERROR: (?:Leak|Address|Thread|Memory)Sanitizer|"
                       r": runtime error: ")


def count(entry):
    out = ANSI.sub("", (entry.get("stdout") or "") + "\n" +
                   (entry.get("stderr") or ""))
    synth = SYNTH.findall(out)
    ok = entry.get("result") in ("OK", "EXPECTEDFAIL")
    skipped = len(set(SKIP.findall(out)))
    if not synth:
        if entry.get("result") == "SKIP":
            return 0, 0, 1
        return (1, 0, skipped) if ok else (0, 1, skipped)
    tested, passing = (int(v) for v in synth[-1][:2])
    passed, failed = passing, tested - passing
    broken = min(len(set(TEARDOWN.findall(out))), passed)
    passed -= broken
    failed += broken
    if (not ok or SANITIZER.search(out)) and failed == 0:
        failed = 1
        passed = max(passed - 1, 0)
    return passed, failed, skipped


def main(paths):
    total = [0, 0, 0]
    for path in paths:
        try:
            with open(path) as f:
                lines = [l for l in f if l.strip()]
        except OSError:
            total[1] += 1
            continue
        for line in lines:
            entry = json.loads(line)
            p, f_, s = count(entry)
            if f_:
                print("  failed: %s (%d)" % (entry.get("name"), f_),
                      file=sys.stderr)
            total[0] += p
            total[1] += f_
            total[2] += s
    print(*total)


if __name__ == "__main__":
    main(sys.argv[1:])
