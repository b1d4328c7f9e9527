#!/usr/bin/python3
"""python3-etcd3 (Debian's gRPC client) against conclave's etcd API beyond KV:
transactions, leases, locks and a watch, through the endpoint given. With a
pid, it kills that process (the leader) halfway through the watched writes:
the watch, served by the master this client talks to, must go on with no
gap and no repeat, and the lease must live on.

Usage: python_etcd3_more.py HOST:PORT [LEADER_PID]. Prints one line per check
and exits 0 when all hold (1 and the failed checks otherwise)."""
import os
import signal
import sys
import threading
import time

import etcd3


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    leader_pid = int(sys.argv[2]) if len(sys.argv) > 2 else None
    c = etcd3.client(host=host, port=int(port), timeout=15)
    failures = []

    def check(what, ok):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            failures.append(what)

    # Transactions: compare, then one branch, atomically.
    ok, _ = c.transaction(compare=[c.transactions.version("py/t") == 0],
                          success=[c.transactions.put("py/t", "first")],
                          failure=[c.transactions.get("py/t")])
    check("a txn whose compare holds runs its success branch", ok and c.get("py/t")[0] == b"first")
    ok, responses = c.transaction(compare=[c.transactions.version("py/t") == 0],
                                  success=[c.transactions.put("py/t", "second")],
                                  failure=[c.transactions.get("py/t")])
    check("a txn whose compare fails runs its failure branch and reads",
          not ok and responses[0][0][0] == b"first" and c.get("py/t")[0] == b"first")

    # Leases: keys go with them.
    lease = c.lease(5)
    c.put("py/leased", "x", lease=lease)
    check("a lease is granted with its TTL", lease.granted_ttl == 5 and 0 < lease.remaining_ttl <= 5)
    check("a lease lists its keys", [bytes(k) for k in lease.keys] == [b"py/leased"])
    lease.refresh()
    lease.revoke()
    check("a revoked lease takes its keys", c.get("py/leased")[0] is None)

    # A lock (python-etcd3 builds it from a txn on a leased key).
    lock = c.lock("py-lock", ttl=5)
    check("a free lock is acquired", lock.acquire(timeout=5) and lock.is_acquired())
    lock.release()
    check("a released lock is free", not lock.is_acquired())

    # A watch across the writes (and a leader kill).
    kept = c.lease(5)
    c.put("py/kept", "alive", lease=kept)
    events, done = [], threading.Event()
    iterator, cancel = c.watch_prefix("py/w/")

    def collect():
        for e in iterator:
            events.append((e.key, e.value, e.mod_revision))
            if len(events) == 40:
                break
        done.set()

    threading.Thread(target=collect, daemon=True).start()
    time.sleep(0.5)  # the watch is created before the first write
    revisions = []
    for i in range(40):
        if i == 20 and leader_pid:
            os.kill(leader_pid, signal.SIGKILL)
        key = "py/w/%02d" % i
        for attempt in range(100):
            try:
                # A put whose outcome was unknown may have applied: look before putting again.
                value, meta = c.get(key)
                if value is None:
                    c.put(key, str(i))
                    value, meta = c.get(key)
                revisions.append(meta.mod_revision)
                break
            except Exception as e:  # etcd3's errors while no leader answers
                print("retrying %s: %s" % (key, type(e).__name__), flush=True)
                time.sleep(0.2)
        if i % 5 == 0:
            kept.refresh()
    done.wait(30)
    cancel()
    check("the watch saw all 40 writes", len(events) == 40)
    check("each once, in order, at the revision its put got",
          [(k, v, r) for k, v, r in events] ==
          [(("py/w/%02d" % i).encode(), str(i).encode(), revisions[i]) for i in range(len(revisions))])
    check("the lease lived on", c.get("py/kept")[0] == b"alive" and kept.remaining_ttl > 0)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
