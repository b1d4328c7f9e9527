#!/usr/bin/env python3
"""Prints README.md's table of etcd v3 methods from steps.py: what conclave
supports, which etcdctl commands of the conformance test exercise each
method, and how many of those steps are compared against conclave today.

usage: python3 test/etcd_conformance/table.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import steps as script  # noqa: E402

# etcdctl commands named by two words.
GROUPS = {"lease", "member", "endpoint", "snapshot", "alarm"}


def command(step):
    if not step.args:
        return None
    words = [a for a in step.args if not a.startswith("-")]
    return " ".join(words[:2]) if words[0] in GROUPS else words[0]


def status(method):
    if method not in script.SUPPORTED:
        return "not yet"
    gaps = [what for part, what in script.PARTS.items()
            if part.split(":")[0] == method and part not in script.SUPPORTED]
    return "supported" + ("; not yet: " + "; ".join(gaps) if gaps else "")


def main():
    print("| method | conclave | etcdctl commands that exercise it | steps compared with etcd |")
    print("| --- | --- | --- | --- |")
    for method in script.METHODS:
        using = [s for s in script.STEPS if any(m.split(":")[0] == method for m in s.methods)]
        compared = [s for s in using if all(m in script.SUPPORTED for m in s.methods + s.needs)]
        commands = []
        for s in using:
            c = command(s)
            if c and f"`{c}`" not in commands:
                commands.append(f"`{c}`")
        count = f"{len(compared)} of {len(using)}" if using else "none"
        print(f"| `{method}` | {status(method)} | {', '.join(commands) or '-'} | {count} |")


if __name__ == "__main__":
    main()
