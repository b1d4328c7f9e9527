#!/usr/bin/env python3
"""Where one write's time goes: reads the stage marks (actors/stage_trace.hpp)
that a benchmark's processes wrote to DIR (CONCLAVE_STAGE_TRACE=DIR) and
prints, for the writes the load client saw answered, the median and p90 of
each step on the critical path (client -> leader -> the follower whose ack
came first -> leader -> client) and of the leader's own disk write beside it.

    CONCLAVE_STAGE_TRACE=/tmp/st build/bench/conclave-bench --scenarios write --trials 1 \\
        --clients 1 --seconds 3 --scale 0 --recovery-entries 0
    bench/stage_breakdown.py /tmp/st
"""
import bisect
import collections
import glob
import json
import os
import struct
import sys

# actors/stage_trace.hpp's stages, in its order.
STAGES = ["client_sent", "gateway_received", "proposed", "entries_sent", "storage_queued", "storage_started",
          "storage_done", "persisted", "entries_received", "ack_sent", "ack_received", "apply_started", "applied",
          "gateway_replied", "client_received", "api_called", "api_returned",
          "entries_arrived", "ack_arrived"]


class Marks:
    """One process's marks of one stage: when each index first reached it."""

    def __init__(self):
        self.exact = {}  # index -> earliest time (range marks)
        self.cumulative = []  # (time, last) for marks covering everything up to last

    def add(self, first, last, t):
        if first == 0:
            self.cumulative.append((t, last))
            return
        for i in range(first, last + 1):
            if i not in self.exact or t < self.exact[i]:
                self.exact[i] = t

    def finish(self):
        self.cumulative.sort()
        self.times = [t for t, _ in self.cumulative]
        self.reach = []  # the highest index covered by time t
        top = 0
        for _, last in self.cumulative:
            top = max(top, last)
            self.reach.append(top)

    def at(self, index, after):
        if index in self.exact:
            return self.exact[index]
        if not self.cumulative:
            return None
        start = bisect.bisect_left(self.times, after)
        pos = bisect.bisect_left(self.reach, index, lo=start)
        return self.times[pos] if pos < len(self.reach) else None


def load(directory):
    marks = collections.defaultdict(Marks)  # (node, stage) -> Marks
    nodes = set()
    for path in glob.glob(os.path.join(directory, "stages-*.bin")):
        with open(path, "rb") as f:
            magic, node, used, _ = struct.unpack("<8sQQQ", f.read(32))
            if magic != b"CNCLSTG1":
                continue
            data = f.read(32 * used)
        nodes.add(node)
        for first, last, t, what in struct.iter_unpack("<QQqQ", data):
            if t:  # (a record being written when the process was killed is zero)
                marks[(node, STAGES[what])].add(first, last, t)
    for m in marks.values():
        m.finish()
    return marks, sorted(n for n in nodes if n != 0)


CRITICAL = [
    ("client", "client_sent"),
    ("leader", "gateway_received"),
    ("leader", "proposed"),
    ("leader", "entries_sent"),
    ("follower", "entries_arrived"),
    ("follower", "entries_received"),
    ("follower", "storage_queued"),
    ("follower", "storage_started"),
    ("follower", "storage_done"),
    ("follower", "persisted"),
    ("follower", "ack_sent"),
    ("leader", "ack_arrived"),
    ("leader", "ack_received"),
    ("leader", "apply_started"),
    ("leader", "applied"),
    ("leader", "gateway_replied"),
    ("client", "client_received"),
]
LEADER_DISK = ["proposed", "storage_queued", "storage_started", "storage_done", "persisted"]


def percentile(values, p):
    values = sorted(values)
    if not values:
        return float("nan")
    k = min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))
    return values[k]


def breakdown(marks, servers):
    client = marks.get((0, "client_sent"))
    steps = collections.defaultdict(list)  # step name -> microseconds
    disk = collections.defaultdict(list)
    leader_disk_last = 0
    writes = 0
    for index, sent in client.exact.items():
        leader = next((n for n in servers if index in marks[(n, "proposed")].exact), None)
        if leader is None:
            continue
        # The follower whose ack came first.
        acks = []
        for n in servers:
            if n == leader:
                continue
            t = marks[(n, "ack_sent")].at(index, sent)
            if t is not None:
                acks.append((t, n))
        if not acks:
            continue
        follower = min(acks)[1]
        who = {"client": 0, "leader": leader, "follower": follower}
        times = []
        for role, stage in CRITICAL:
            times.append(marks[(who[role], stage)].at(index, sent))
        if any(t is None for t in times):
            continue
        writes += 1
        for (role, stage), (prev_role, prev_stage), t, prev in zip(CRITICAL[1:], CRITICAL, times[1:], times):
            steps[f"{prev_role}.{prev_stage} -> {role}.{stage}"].append((t - prev) / 1000.0)
        steps["total"].append((times[-1] - times[0]) / 1000.0)
        dt = [marks[(leader, s)].at(index, sent) for s in LEADER_DISK]
        if all(t is not None for t in dt):
            for a, b, ta, tb in zip(LEADER_DISK, LEADER_DISK[1:], dt, dt[1:]):
                disk[f"leader.{a} -> leader.{b}"].append((tb - ta) / 1000.0)
            ack = times[[s for _, s in CRITICAL].index("ack_received")]
            if dt[-1] > ack:
                leader_disk_last += 1
    return writes, steps, disk, leader_disk_last


API = ["api_called", "gateway_received", "proposed", "applied", "gateway_replied", "api_returned"]


def api_breakdown(marks, servers):
    """The etcd API's requests on the master that served them: its handler's
    call into the master's gateway, the gateway, Raft, and back."""
    steps = collections.defaultdict(list)
    for n in servers:
        called = marks.get((n, "api_called"))
        if not called:
            continue
        for index, t0 in called.exact.items():
            leader = next((m for m in servers if index in marks[(m, "proposed")].exact), None)
            times = [t0] + [marks[(leader if s in ("proposed", "applied") else n, s)].at(index, t0) for s in API[1:]]
            if leader is None or any(t is None for t in times):
                continue
            for a, b, ta, tb in zip(API, API[1:], times, times[1:]):
                steps[f"{a} -> {b}"].append((tb - ta) / 1000.0)
            steps["total"].append((times[-1] - times[0]) / 1000.0)
    return steps


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    as_json = "--json" in sys.argv
    directory = [a for a in sys.argv[1:] if a != "--json"][0]
    marks, servers = load(directory)
    api = api_breakdown(marks, servers)
    if api:
        print(f"{len(api['total'])} etcd API writes, in the master's handler; microseconds per step (p50 / p90)")
        for k, v in api.items():
            print(f"  {k:<40}  {percentile(v, 50):8.1f} {percentile(v, 90):8.1f}")
    if not marks.get((0, "client_sent")):
        return
    writes, steps, disk, leader_disk_last = breakdown(marks, servers)
    if as_json:
        out = {k: {"p50_us": percentile(v, 50), "p90_us": percentile(v, 90)} for k, v in {**steps, **disk}.items()}
        print(json.dumps({"writes": writes, "steps": out, "leader_disk_last": leader_disk_last}))
        return
    print(f"{writes} writes; microseconds per step (p50 / p90)")
    width = max(len(k) for k in list(steps) + list(disk))
    for k, v in steps.items():
        if k != "total":
            print(f"  {k:<{width}}  {percentile(v, 50):8.1f} {percentile(v, 90):8.1f}")
    p50s = sum(percentile(v, 50) for k, v in steps.items() if k != "total")
    print(f"  {'sum of the step medians':<{width}}  {p50s:8.1f}")
    print(f"  {'client send -> answer':<{width}}  {percentile(steps['total'], 50):8.1f} {percentile(steps['total'], 90):8.1f}")
    print("the leader's own write, beside the replication:")
    for k, v in disk.items():
        print(f"  {k:<{width}}  {percentile(v, 50):8.1f} {percentile(v, 90):8.1f}")
    print(f"  the leader's write finished after the first ack in {leader_disk_last} of {writes} writes")


if __name__ == "__main__":
    main()
