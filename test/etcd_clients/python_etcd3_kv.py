#!/usr/bin/python3
"""python3-etcd3 (Debian's, a gRPC client no one here wrote) against conclave's
etcd API: KV and the cluster's status, through the endpoint given.

Usage: python_etcd3_kv.py HOST:PORT. Prints one line per check and exits 0
when all hold (1 and the failed check otherwise)."""
import sys

import etcd3


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    c = etcd3.client(host=host, port=int(port), timeout=15)
    failures = []

    def check(what, ok):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    c.put("py/a", "1")
    c.put("py/b", b"\x00\xff bytes")
    value, meta = c.get("py/a")
    check("get returns the value put", value == b"1")
    check("a fresh key has version 1 and equal create and mod revisions",
          meta.version == 1 and meta.create_revision == meta.mod_revision)
    first = meta.mod_revision
    c.put("py/a", "2")
    value, meta = c.get("py/a")
    check("a second put is version 2 at the next revision",
          value == b"2" and meta.version == 2 and meta.mod_revision == first + 2)
    value, _ = c.get("py/b")
    check("bytes round-trip", value == b"\x00\xff bytes")
    got = sorted((m.key, v) for v, m in c.get_prefix("py/"))
    check("get_prefix lists the prefix in key order",
          got == [(b"py/a", b"2"), (b"py/b", b"\x00\xff bytes")])
    check("delete of a present key says so", c.delete("py/a") is True)
    check("delete of an absent key says so", c.delete("py/a") is False)
    value, meta = c.get("py/a")
    check("a deleted key is gone", value is None and meta is None)
    # status() resolves the leader through MemberList.
    s = c.status()
    check("status names a leader among the members",
          s.leader is not None and s.leader.id in [m.id for m in c.members])
    check("status reports a term and a raft index", s.raft_term > 0 and s.raft_index > 0)
    check("three members listed", len(list(c.members)) == 3)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
