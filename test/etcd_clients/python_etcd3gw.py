#!/usr/bin/python3
"""python3-etcd3gw (Debian's client of etcd's JSON gateway, which no one here
wrote) against conclave's gateway on http-listen, or against etcd 3.4.

Usage: python_etcd3gw.py HOST:PORT AREA [LEADER_PID], AREA one of kv, txn,
lease, watch, failover (a watch and a lease through the kill of LEADER_PID,
halfway through the watched writes).
Prints one line per check and exits 0 when all hold (1 and the failed checks
otherwise; 3 with a line "SKIP ..." when the gateway answers that a method
is not implemented yet, gRPC code 12). The client is made with api_path '/v3/': its default, /v3alpha,
is not served by etcd 3.4's gateway."""
import os
import queue
import signal
import sys
import threading
import time

from etcd3gw import exceptions
from etcd3gw.client import Etcd3Client

NOT_SERVED = 3


def run():
    host, port = sys.argv[1].rsplit(":", 1)
    area = sys.argv[2]
    c = Etcd3Client(host=host, port=int(port), api_path="/v3/", timeout=15)
    failures = []

    def check(what, ok):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            failures.append(what)

    if area == "kv":
        check("put answers True", c.put("gw/a", "1") is True)
        c.put("gw/b", b"\x00\xff bytes")
        c.put("gx", "outside")
        check("get returns the value put", c.get("gw/a") == [b"1"])
        check("bytes round-trip (base64 both ways)", c.get("gw/b") == [b"\x00\xff bytes"])
        check("an absent key gets nothing", c.get("gw/none") == [])
        got = [(m["key"], v) for v, m in c.get_prefix("gw/")]
        check("get_prefix lists the prefix in key order",
              got == [(b"gw/a", b"1"), (b"gw/b", b"\x00\xff bytes")])
        value, meta = c.get("gw/a", metadata=True)[0]
        check("metadata has the proto field names, 64-bit numbers as strings",
              meta["version"] == "1" and meta["create_revision"] == meta["mod_revision"]
              and int(meta["mod_revision"]) > 0)
        c.put("gw/a", "2")
        _, meta2 = c.get("gw/a", metadata=True)[0]
        check("a second put is version 2 at a later revision",
              meta2["version"] == "2" and int(meta2["mod_revision"]) > int(meta["mod_revision"]))
        everything = [m["key"] for _, m in c.get_all()]
        check("get_all lists from \\0 on", b"gw/a" in everything and b"gx" in everything)
        check("delete of a present key says so", c.delete("gw/a") is True)
        check("get after delete gets nothing", c.get("gw/a") == [])
        check("delete_prefix removes the prefix", c.delete_prefix("gw/") is True)
        check("the prefix is empty", c.get_prefix("gw/") == [])
        check("a key outside the prefix stays", c.get("gx") == [b"outside"])
        s = c.status()
        members = c.members()
        check("status names a leader among the members",
              "leader" in s and s["leader"] in [m["ID"] for m in members])
        check("status reports a version and a raft index", s.get("version") and int(s["raftIndex"]) > 0)
        check("members have peer URLs", all(m.get("peerURLs") for m in members))
        print("members %d" % len(members))
    elif area == "txn":
        c.delete("gt/k")
        check("create succeeds on an absent key", c.create("gt/k", "v1") is True)
        check("create fails on a present key", c.create("gt/k", "v2") is False)
        check("the key keeps the first value", c.get("gt/k") == [b"v1"])
        check("replace with the right old value succeeds", c.replace("gt/k", "v1", "v3") is True)
        check("replace with a wrong old value fails", c.replace("gt/k", "v1", "v4") is False)
        check("the key has the replaced value", c.get("gt/k") == [b"v3"])
    elif area == "lease":
        lease = c.lease(ttl=30)
        check("a granted lease has an id", lease.id > 0)
        c.put("gl/k", "v", lease=lease)
        check("time to live is at most the TTL granted", 0 < lease.ttl() <= 30)
        check("the lease lists its key", lease.keys() == [b"gl/k"])
        check("keep-alive answers the TTL granted", lease.refresh() == 30)
        check("revoke answers True", lease.revoke() is True)
        check("revoking deletes the lease's keys", c.get("gl/k") == [])
    elif area == "watch":
        # etcd3gw's watch thread does not look at the HTTP status: ask first.
        probe = c.session.post(c.get_url("/watch"), json={"create_request": {"key": "Zw=="}}, stream=True)
        status = probe.status_code
        probe.close()
        if status == 501:
            print("SKIP Watch not served yet")
            return NOT_SERVED
        events, cancel = c.watch_prefix("gwatch/")
        got = queue.Queue()

        def drain():
            for e in events:
                got.put(e)

        threading.Thread(target=drain, daemon=True).start()
        # watch_prefix returns once the answer's headers came, which the
        # gateway sends with the watch's "created" response: it is in place.
        c.put("gwatch/a", "1")
        c.delete("gwatch/a")
        first = got.get(timeout=15)
        second = got.get(timeout=15)
        check("a put arrives as an event with the key and value",
              first["kv"]["key"] == b"gwatch/a" and first["kv"]["value"] == b"1" and "type" not in first)
        check("a delete arrives as a DELETE event", second.get("type") == "DELETE"
              and second["kv"]["key"] == b"gwatch/a")
        cancel()
    elif area == "failover":
        leader_pid = int(sys.argv[3])
        kept = c.lease(ttl=5)
        c.put("gf/kept", "alive", lease=kept)
        got = queue.Queue()
        watcher, cancel = c.watch_prefix("gf/w/")

        def drain():
            for e in watcher:
                got.put(e)

        threading.Thread(target=drain, daemon=True).start()
        revisions = []
        for i in range(40):
            if i == 20:
                os.kill(leader_pid, signal.SIGKILL)
            key = "gf/w/%02d" % i
            for attempt in range(150):
                try:
                    # A put whose outcome was unknown may have applied: look before putting again.
                    found = c.get(key, metadata=True)
                    if not found:
                        c.put(key, str(i))
                        found = c.get(key, metadata=True)
                    revisions.append(int(found[0][1]["mod_revision"]))
                    break
                except Exception as e:  # the gateway's errors while no leader answers
                    print("retrying %s: %s" % (key, type(e).__name__), flush=True)
                    time.sleep(0.2)
            if i % 5 == 0:
                try:
                    kept.refresh()
                except Exception as e:
                    print("refresh failed: %s" % type(e).__name__, flush=True)
        events = []
        deadline = time.time() + 30
        while len(events) < 40 and time.time() < deadline:
            try:
                events.append(got.get(timeout=1))
            except queue.Empty:
                pass
        cancel()
        check("all 40 writes acknowledged", len(revisions) == 40)
        check("the watch saw all 40 writes", len(events) == 40)
        check("each once, in order, at the revision its put got",
              [(e["kv"]["key"], e["kv"]["value"], int(e["kv"]["mod_revision"])) for e in events] ==
              [(("gf/w/%02d" % i).encode(), str(i).encode(), revisions[i]) for i in range(len(revisions))])
        check("the lease lived on", c.get("gf/kept") == [b"alive"] and kept.ttl() > 0)
    else:
        print("unknown area " + area)
        return 2
    return 1 if failures else 0


def main():
    try:
        return run()
    except exceptions.Etcd3Exception as e:
        if '"code":12' in (e.detail_text or ""):
            print("SKIP not served yet: " + e.detail_text)
            return NOT_SERVED
        raise


if __name__ == "__main__":
    sys.exit(main())
