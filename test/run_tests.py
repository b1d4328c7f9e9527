#!/usr/bin/env python3
"""Runs every test program through `meson test` and counts test cases.

Each test program is a doctest binary that ends with a summary line
"[doctest] test cases: T | P passed | F failed | S skipped". The counts of all
programs are summed; a program that fails without such a summary (a crash, a
timeout) counts as one failed case. A case that cannot run on this machine
prints "CONCLAVE-SKIP: reason" (test/skip.hpp) and returns: doctest counts it
as passed, so each such line moves one case from passed to skipped. The last
line printed is "N passed, N failed, N skipped"; the exit status is non-zero
if anything failed.

usage: run_tests.py [BUILD_DIR] [meson test options, e.g. a test name]
"""
import json
import os
import re
import subprocess
import sys

SUMMARY = re.compile(
    r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed(?:\s*\|\s*(\d+) skipped)?")
SKIP = re.compile(r"^CONCLAVE-SKIP: (.*)$", re.MULTILINE)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    extra = sys.argv[2:]
    log_path = os.path.join(build, "meson-logs", "testlog.json")
    if os.path.exists(log_path):
        os.remove(log_path)
    run = subprocess.run(["meson", "test", "-C", build, "--print-errorlogs"] + extra)

    passed = failed = skipped = 0
    results = []
    if os.path.exists(log_path):
        with open(log_path) as log:
            results = [json.loads(line) for line in log if line.strip()]
    for result in results:
        name, status = result["name"], result["result"]
        out = result.get("stdout") or ""
        summaries = SUMMARY.findall(out)
        p = sum(int(s[1]) for s in summaries)
        f = sum(int(s[2]) for s in summaries)
        k = sum(int(s[3] or 0) for s in summaries)
        for reason in SKIP.findall(out):
            print(f"{name}: skipped a case: {reason}")
            if p > 0:
                p -= 1
                k += 1
        if status not in ("OK", "EXPECTEDFAIL", "SKIP") and f == 0:
            f += 1  # crashed, timed out or failed outside a test case
            print(f"{name}: {status} without a failed test case: counted as one failure")
        passed += p
        failed += f
        skipped += k
    if not results:
        print("no test results: the build or meson test failed")
        failed += 1
    elif run.returncode != 0 and failed == 0:
        failed += 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
