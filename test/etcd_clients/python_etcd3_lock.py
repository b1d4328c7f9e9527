#!/usr/bin/python3
"""python3-etcd3's lock (its own recipe: a txn on the leased key /locks/NAME,
then a watch until that key changes) contended by two clients, through the
endpoint given: the second client's acquire waits while the first holds the
lock and succeeds once it releases; a third with a short timeout gives up.

Debian's python3-etcd3 0.12 hands tenacity a wait callback taking
(attempt number, seconds since start), where Debian's tenacity 8 passes one
retry state: a contended acquire raises TypeError, the same against etcd. This
script adapts that callback when etcd3.locks uses it, and changes nothing else.

Usage: python_etcd3_lock.py HOST:PORT. Prints one line per check and exits 0
when all hold (1 and the failed checks otherwise)."""
import inspect
import sys
import threading
import time
import types

import tenacity

import etcd3
import etcd3.locks


def adapt_tenacity_wait():
    """etcd3.locks sees a tenacity whose retry() turns a two-argument wait
    callback into tenacity 8's one-argument form (other callbacks pass as they are)."""
    def retry(*args, wait=None, **kwargs):
        if wait is not None and not isinstance(wait, tenacity.wait.wait_base) \
                and len(inspect.signature(wait).parameters) == 2:
            old = wait
            wait = lambda state: old(state.attempt_number, state.seconds_since_start)
        return tenacity.retry(*args, wait=wait, **kwargs) if wait is not None else tenacity.retry(*args, **kwargs)
    shim = types.SimpleNamespace(**{n: getattr(tenacity, n) for n in dir(tenacity) if not n.startswith("__")})
    shim.retry = retry
    etcd3.locks.tenacity = shim


def main():
    adapt_tenacity_wait()
    host, port = sys.argv[1].rsplit(":", 1)
    clients = [etcd3.client(host=host, port=int(port), timeout=15) for _ in range(3)]
    failures = []

    def check(what, ok, detail=""):
        print(("ok   " if ok else "FAIL ") + what + ("" if ok or not detail else ": %s" % (detail,)), flush=True)
        if not ok:
            failures.append(what)

    first = clients[0].lock("py-contended", ttl=20)
    second = clients[1].lock("py-contended", ttl=20)
    third = clients[2].lock("py-contended", ttl=20)
    check("the first client acquires the free lock", first.acquire(timeout=10) and first.is_acquired())

    # The second waits in a thread; the first releases after a second.
    result = {}

    def wait_for_it():
        try:
            result["acquired"] = second.acquire(timeout=30)
        except Exception as e:  # TypeError without the adaptation above
            result["error"] = repr(e)
        result["at"] = time.monotonic()

    waiter = threading.Thread(target=wait_for_it, daemon=True)
    waiter.start()
    waiter.join(1.0)
    check("the second client waits while the first holds the lock", not result, result)

    started = time.monotonic()
    gave_up = third.acquire(timeout=1)
    check("a third client with a 1 s timeout gives up while the lock is held",
          gave_up is False and time.monotonic() - started >= 1.0, gave_up)
    check("the first client still holds the lock", first.is_acquired() and not second.is_acquired())

    released_at = time.monotonic()
    check("the first client releases the lock", first.release())
    waiter.join(30)
    check("the second client acquires the lock once the first released it",
          result.get("acquired") is True and result["at"] >= released_at, result)
    check("the second client holds it, the first does not", second.is_acquired() and not first.is_acquired())
    check("the second client releases the lock", second.release())
    check("the released lock is free again", third.acquire(timeout=10) and third.is_acquired())
    third.release()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
