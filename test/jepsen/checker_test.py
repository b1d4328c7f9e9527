#!/usr/bin/env python3
"""Tests for checker.py. Run: python3 checker_test.py

Ends with the doctest-style summary line the project's test runner parses:
"[doctest] test cases: T | P passed | F failed | S skipped".
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checker  # noqa: E402

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checker.py")


class History:
    """Builds a history; each event gets the next timestamp (steps of 10)."""

    def __init__(self):
        self.events = []
        self.time = 0
        self.outstanding = {}

    def _emit(self, **event):
        self.time += 10
        event["time_ns"] = self.time
        self.events.append(event)

    def invoke(self, process, f, target, **fields):
        field = "lock" if f in ("acquire", "release") else "key"
        self.outstanding[process] = {"f": f, field: target}
        self._emit(process=process, type="invoke", f=f, **{field: target}, **fields)
        return self

    def complete(self, process, type, **fields):
        self._emit(process=process, type=type, **self.outstanding.pop(process), **fields)
        return self

    def write(self, process, key, value, type="ok"):
        self.invoke(process, "write", key, value=value)
        return self.complete(process, type, value=value)

    def read(self, process, key, value, version):
        self.invoke(process, "read", key)
        return self.complete(process, "ok", value=value, version=version)

    def cas(self, process, key, expected, value, applied):
        self.invoke(process, "cas", key, value=value, expected_version=expected)
        return self.complete(process, "ok", value=value, applied=applied)

    def acquire(self, process, lock, token):
        self.invoke(process, "acquire", lock)
        return self.complete(process, "ok", token=token)

    def queue(self, process, lock):
        """An acquire that waits, up to the reply that queued it."""
        self.invoke(process, "acquire", lock, wait=True)
        self.queued_at = getattr(self, "queued_at", {})
        self.queued_at[process] = self.time + 5
        return self

    def granted(self, process, lock, token):
        """The waiter sees that the lock was handed to it."""
        return self.complete(process, "ok", token=token, queued_ns=self.queued_at.pop(process))

    def release(self, process, lock, type="ok"):
        self.invoke(process, "release", lock)
        return self.complete(process, type)

    def session_lost(self, process, lock, heartbeating=False):
        self._emit(process=process, type="info", f="session_lost", lock=lock, heartbeating=heartbeating)
        return self

    def member(self, name, status, session=7):
        self._emit(type="observe", f="member", member=name, status=status, session=session)
        return self


def simulate(seed, n_ops, n_procs, key="k", info_rate=0.05, abort_rate=0.1):
    """A history of a real linearizable register under random concurrency.

    Clients invoke reads, writes and cas; each pending op takes effect at a
    random moment (its linearization point) and completes later. Some ops
    complete "fail" without effect, some "info" after taking effect, and some
    "info" before taking effect: those apply at a random later moment or
    never. info_rate: chance that a completion after the effect is "info";
    abort_rate: chance per step that a pending op may end without effect.
    Returns (events, values) with values[v] the value at version v.
    """
    rng = random.Random(seed)
    values = [None]
    events, pending, zombies = [], {}, []
    clients = list(range(n_procs))
    state = {"time": 0, "next_pid": n_procs, "issued": 0, "writes": 0}

    def emit(process, type, op, **fields):
        state["time"] += rng.randint(1, 3)
        event = {"process": process, "type": type, "f": op["f"], "key": key,
                 "time_ns": state["time"]}
        event.update(fields)
        events.append(event)

    def apply(op):
        version = len(values) - 1
        if op["f"] == "read":
            op["result"] = {"value": values[-1], "version": version}
        elif op["f"] == "write":
            values.append(op["value"])
            op["result"] = {"value": op["value"]}
        else:
            applied = op["expected_version"] == version
            if applied:
                values.append(op["value"])
            op["result"] = {"value": op["value"], "applied": applied}

    def invoke(process):
        f = rng.choices(["read", "write", "cas"], [5, 3, 2])[0]
        op = {"f": f, "applied": False}
        args = {}
        if f != "read":
            state["writes"] += 1
            op["value"] = args["value"] = f"v-{process}-{state['writes']}"
        if f == "cas":
            version = len(values) - 1
            expected = version if rng.random() < 0.6 else max(0, version + rng.randint(-2, 1))
            op["expected_version"] = args["expected_version"] = expected
        pending[process] = op
        state["issued"] += 1
        emit(process, "invoke", op, **args)

    def retire(process):
        clients[clients.index(process)] = state["next_pid"]
        state["next_pid"] += 1

    def complete(process):
        op = pending.pop(process)
        if rng.random() < info_rate:
            emit(process, "info", op)
            retire(process)
        else:
            emit(process, "ok", op, **op["result"])

    def abort(process):
        op = pending.pop(process)
        if rng.random() < 0.5:
            emit(process, "fail", op)
            return
        emit(process, "info", op)
        retire(process)
        if rng.random() < 0.5:
            zombies.append(op)

    while state["issued"] < n_ops or pending:
        actions = []
        if state["issued"] < n_ops:
            actions += [(invoke, p) for p in clients if p not in pending]
        for process, op in pending.items():
            if "result" in op:
                actions.append((complete, process))
            else:
                actions.append((lambda p: apply(pending[p]), process))
                if rng.random() < abort_rate:
                    actions.append((abort, process))
        if zombies and rng.random() < 0.1:
            actions.append((lambda _: apply(zombies.pop(rng.randrange(len(zombies)))), None))
        action, arg = rng.choice(actions)
        action(arg)
    return events, values


def brute_force_linearizable(events):
    """An independent oracle: tries every order of the ok ops and any subset
    of the info ops (reads and fail ops dropped), with no pruning."""
    ops, _, _ = checker.parse_history(enumerate(events, 1))
    ops = [op for op in ops if op.type == "ok" or (op.type == "info" and op.f != "read")]

    def step(state, op):
        value, version = state
        if op.f == "write":
            return (op.invoke["value"], version + 1)
        if op.f == "read":
            return state if (op.completion["value"], op.completion["version"]) == state else None
        applies = version == op.invoke["expected_version"]
        if op.type == "ok" and op.completion["applied"] != applies:
            return None
        return (op.invoke["value"], version + 1) if applies else state

    def linearizable(state, remaining):
        if all(op.type != "ok" for op in remaining):
            return True
        for op in remaining:
            if any(other.complete_time < op.invoke_time for other in remaining):
                continue  # another remaining op completed before this one began
            after = step(state, op)
            if after is not None and linearizable(
                    after, [other for other in remaining if other is not op]):
                return True
        return False

    return linearizable((None, 0), ops)


def mutate_result(events, values, rng):
    """A copy where one ok read or cas reports a random (maybe wrong) result."""
    events = [dict(event) for event in events]
    results = [e for e in events if e["type"] == "ok" and e["f"] in ("read", "cas")]
    if results:
        event = rng.choice(results)
        if event["f"] == "cas":
            event["applied"] = not event["applied"]
        else:
            event["value"] = rng.choice(values)
            event["version"] = rng.choice([values.index(event["value"]),
                                           rng.randint(0, len(values))])
    return events


def ok_reads(events):
    """(invoke, ok) event pairs of the ok reads in a history."""
    outstanding, pairs = {}, []
    for event in events:
        if event["type"] == "invoke":
            outstanding[event["process"]] = event
        elif event["type"] == "ok" and event["f"] == "read":
            pairs.append((outstanding[event["process"]], event))
    return pairs


def corrupt_unwritten(events, rng):
    """A copy of the history where one read returns a value never written."""
    events = [dict(event) for event in events]
    _, ok = rng.choice(ok_reads(events))
    ok["value"] = "never-written"
    return events


def corrupt_overwritten(events, values, rng):
    """A copy where a read R returns an overwritten state: one older than what
    an ok read completed before R's invoke saw. None if no such pair exists."""
    events = [dict(event) for event in events]
    reads = ok_reads(events)
    pairs = [(earlier, later) for (_, earlier) in reads for (invoke, later) in reads
             if earlier["time_ns"] < invoke["time_ns"] and earlier["version"] > 0]
    if not pairs:
        return None
    earlier, later = rng.choice(pairs)
    later["version"] = earlier["version"] - 1
    later["value"] = values[later["version"]]
    return events


class KvTest(unittest.TestCase):
    def assertValid(self, history):
        result = checker.check(history.events)
        self.assertTrue(result["valid"], result["errors"])
        return result

    def assertInvalid(self, history, key="k"):
        result = checker.check(history.events)
        self.assertFalse(result["valid"])
        self.assertFalse(result["kv"][key]["valid"])
        return result

    def test_sequential_valid(self):
        h = History().read(1, "k", None, 0).write(1, "k", "a").read(2, "k", "a", 1)
        h.write(2, "k", "b").cas(1, "k", 2, "c", True).read(1, "k", "c", 3)
        result = self.assertValid(h)
        self.assertEqual(result["kv"]["k"]["ops"], 6)

    def test_concurrent_writes_linearized_against_invoke_order(self):
        h = History().invoke(1, "write", "k", value="a").invoke(2, "write", "k", value="b")
        h.complete(1, "ok", value="a").complete(2, "ok", value="b")
        self.assertValid(h.read(3, "k", "a", 2))  # only order: b, a

    def test_read_invoked_before_write_sees_it(self):
        h = History().invoke(1, "read", "k").write(2, "k", "x")
        self.assertValid(h.complete(1, "ok", value="x", version=1))

    def test_stale_read_invalid(self):
        h = History().write(1, "k", "a").read(2, "k", None, 0)
        result = self.assertInvalid(h)
        failure = result["kv"]["k"]["failure"]
        self.assertIn("write 'a'", failure["blocked"])  # cannot overwrite null yet
        self.assertIn("read -> ok None version=0", failure["awaited_reads"][0])
        self.assertIn("key 'k' is not linearizable", result["errors"][0])

    def test_lost_write_invalid(self):
        h = History().write(1, "k", "a").write(2, "k", "b").read(3, "k", "a", 1)
        self.assertInvalid(h)

    def test_failure_window_names_prefix_and_concurrent_ops(self):
        h = History().write(1, "k", "a").invoke(2, "write", "k", value="b")
        h.invoke(3, "read", "k").invoke(4, "write", "k", value="c")
        h.complete(3, "ok", value="zzz", version=2).complete(2, "ok", value="b")
        failure = self.assertInvalid(h)["kv"]["k"]["failure"]
        self.assertEqual(failure["linearized"], 2)
        self.assertEqual(failure["state"], {"value": "b", "version": 2})
        self.assertIn("'b'", failure["prefix_tail"][-1])
        self.assertIn("'zzz'", failure["blocked"])
        self.assertTrue(any("'c'" in op for op in failure["concurrent"]))

    def test_info_write_observed_later_is_valid(self):
        h = History().write(1, "k", "a", type="info")
        h.write(2, "k", "b").read(2, "k", "b", 1).read(2, "k", "a", 2)
        self.assertValid(h)

    def test_info_write_never_observed_is_valid(self):
        h = History().write(1, "k", "a", type="info")
        self.assertValid(h.read(2, "k", None, 0).write(2, "k", "b").read(2, "k", "b", 1))

    def test_unfinished_invoke_is_treated_as_info(self):
        h = History().invoke(1, "write", "k", value="a").read(2, "k", "a", 1)
        self.assertValid(h)

    def test_cas_consistent(self):
        h = History().write(1, "k", "a").cas(1, "k", 1, "c", True).read(1, "k", "c", 2)
        self.assertValid(h.cas(2, "k", 1, "d", False).read(2, "k", "c", 2))

    def test_cas_applied_with_wrong_version_invalid(self):
        self.assertInvalid(History().write(1, "k", "a").cas(1, "k", 5, "c", True))

    def test_cas_not_applied_with_matching_version_invalid(self):
        self.assertInvalid(History().write(1, "k", "a").cas(1, "k", 1, "c", False))

    def test_info_cas_observed_is_valid(self):
        h = History().write(1, "k", "a").invoke(2, "cas", "k", value="c", expected_version=1)
        self.assertValid(h.complete(2, "info").read(1, "k", "c", 2))

    def test_failed_write_observed_invalid(self):
        self.assertInvalid(History().write(1, "k", "a", type="fail").read(2, "k", "a", 1))

    def test_failed_write_not_observed_valid(self):
        self.assertValid(History().write(1, "k", "a", type="fail").read(2, "k", None, 0))

    def test_keys_are_independent(self):
        h = History().write(1, "k1", "a").write(2, "k2", "b")
        h.read(1, "k1", "a", 1).read(2, "k2", "b", 1)
        self.assertValid(h)
        result = checker.check(h.read(3, "k2", "a", 1).events)
        self.assertFalse(result["valid"])
        self.assertTrue(result["kv"]["k1"]["valid"])
        self.assertFalse(result["kv"]["k2"]["valid"])
        self.assertEqual(len(result["errors"]), 1)

    def test_nemesis_and_unknown_events_ignored(self):
        h = History().write(1, "k", "a")
        h.events.insert(1, {"type": "nemesis", "f": "partition", "value": ["n1"]})
        h.events.insert(1, {"type": "invoke", "f": "start", "process": 1, "time_ns": 15})
        self.assertValid(h.read(2, "k", "a", 1))


class LockTest(unittest.TestCase):
    def check(self, history):
        return checker.check(history.events)

    def test_valid_hand_off(self):
        h = History().acquire(1, "L", 1).release(1, "L").acquire(2, "L", 2).release(2, "L")
        result = self.check(h)
        self.assertTrue(result["valid"], result["errors"])
        self.assertEqual(result["locks"]["L"]["acquires"], 2)

    def test_overlapping_holders_invalid(self):
        result = self.check(History().acquire(1, "L", 1).acquire(2, "L", 2).release(1, "L"))
        self.assertFalse(result["valid"])
        self.assertIn("held by two processes", result["errors"][0])

    def test_overlap_excused_by_session_lost(self):
        h = History().acquire(1, "L", 1).acquire(2, "L", 2).session_lost(1, "L")
        result = self.check(h.release(1, "L"))
        self.assertTrue(result["valid"], result["errors"])

    def test_session_lost_of_newer_holder_does_not_excuse(self):
        h = History().acquire(1, "L", 1).acquire(2, "L", 2).session_lost(2, "L")
        self.assertFalse(self.check(h)["valid"])

    def test_session_lost_before_the_acquire_does_not_excuse(self):
        h = History().session_lost(1, "L").acquire(1, "L", 1).acquire(2, "L", 2)
        self.assertFalse(self.check(h)["valid"])

    def test_session_lost_on_other_lock_does_not_excuse(self):
        h = History().acquire(1, "L", 1).acquire(2, "L", 2).session_lost(1, "M")
        self.assertFalse(self.check(h)["locks"]["L"]["valid"])

    def test_failed_release_keeps_the_lock_held(self):
        h = History().acquire(1, "L", 1).release(1, "L", type="fail").acquire(2, "L", 2)
        self.assertFalse(self.check(h)["valid"])

    def test_info_release_may_have_released(self):
        h = History().acquire(1, "L", 1).release(1, "L", type="info").acquire(2, "L", 2)
        result = self.check(h)
        self.assertTrue(result["valid"], result["errors"])

    def test_token_not_increasing_in_real_time_invalid(self):
        h = History().acquire(1, "L", 5).release(1, "L").acquire(2, "L", 3).release(2, "L")
        result = self.check(h)
        self.assertFalse(result["valid"])
        self.assertIn("did not increase", result["errors"][0])

    def test_duplicate_token_invalid(self):
        h = History().acquire(1, "L", 4).release(1, "L").acquire(2, "L", 4)
        result = self.check(h)
        self.assertFalse(result["valid"])
        self.assertTrue(any("granted twice" in e for e in result["errors"]))

    def test_concurrent_acquires_may_complete_in_any_token_order(self):
        h = History().invoke(1, "acquire", "L").invoke(2, "acquire", "L")
        h.complete(2, "ok", token=2).release(2, "L").complete(1, "ok", token=1)
        result = self.check(h)
        self.assertTrue(result["valid"], result["errors"])

    def test_queued_waiters_are_served_first_come_first_served(self):
        h = History().acquire(1, "L", 1).queue(2, "L").queue(3, "L").release(1, "L")
        h.granted(2, "L", 4).release(2, "L").granted(3, "L", 6).release(3, "L")
        result = self.check(h)
        self.assertTrue(result["valid"], result["errors"])
        self.assertEqual(result["locks"]["L"]["queued"], 2)

    def test_later_waiter_served_first_invalid(self):
        h = History().acquire(1, "L", 1).queue(2, "L").queue(3, "L").release(1, "L")
        h.granted(3, "L", 4).release(3, "L").granted(2, "L", 6).release(2, "L")
        result = self.check(h)
        self.assertFalse(result["valid"])
        self.assertIn("first come, first served", result["errors"][0])

    def test_try_lock_jumping_the_queue_invalid(self):
        h = History().acquire(1, "L", 1).queue(2, "L").release(1, "L").acquire(3, "L", 4).release(3, "L")
        h.granted(2, "L", 6)
        self.assertFalse(self.check(h)["valid"])

    def test_waiters_queued_concurrently_may_be_served_in_any_order(self):
        h = History().acquire(1, "L", 1).invoke(2, "acquire", "L", wait=True).queue(3, "L")
        h.queued_at[2] = h.time + 5  # queued after 3 was invoked
        h.release(1, "L").granted(3, "L", 4).release(3, "L").granted(2, "L", 6)
        result = self.check(h)
        self.assertTrue(result["valid"], result["errors"])

    def test_hand_off_observed_late_overlaps_nothing(self):
        # The waiter sees its grant after the holder released: no overlap.
        h = History().acquire(1, "L", 1).queue(2, "L").release(1, "L").granted(2, "L", 3)
        h.release(2, "L")
        self.assertTrue(self.check(h)["valid"])

    def test_session_lost_while_heartbeating_invalid(self):
        h = History().acquire(1, "L", 1).session_lost(1, "L", heartbeating=True)
        result = self.check(h)
        self.assertFalse(result["valid"])
        self.assertIn("although it kept it alive", result["errors"][0])

    def test_session_lost_after_heartbeats_stopped_valid(self):
        h = History().acquire(1, "L", 1).session_lost(1, "L", heartbeating=False)
        self.assertTrue(self.check(h)["valid"])

    def test_zombie_holder_fenced_by_the_next_waiter(self):
        # 1 stops heartbeating while holding: its session expires, the lock
        # passes to waiter 2 with a higher token, and 1 learns it later.
        h = History().acquire(1, "L", 1).queue(2, "L").granted(2, "L", 5)
        h.session_lost(1, "L").release(1, "L", type="fail").release(2, "L")
        result = self.check(h)
        self.assertTrue(result["valid"], result["errors"])

    def test_zombie_holder_with_the_higher_token_invalid(self):
        h = History().acquire(1, "L", 5).queue(2, "L").granted(2, "L", 3)
        h.session_lost(1, "L").release(1, "L", type="fail")
        self.assertFalse(self.check(h)["valid"])


class MemberTest(unittest.TestCase):
    def check(self, history):
        return checker.check(history.events)

    def test_alive_and_briefly_suspect_valid(self):
        h = History().member("w1", "alive").member("w1", "suspect").member("w1", "alive")
        result = self.check(h)
        self.assertTrue(result["valid"], result["errors"])
        self.assertEqual(result["members"]["w1"]["statuses"], {"alive": 2, "suspect": 1})

    def test_seen_dead_invalid(self):
        h = History().member("w1", "alive").member("w1", "dead").member("w1", "alive")
        result = self.check(h)
        self.assertFalse(result["valid"])
        self.assertIn("was seen dead", result["errors"][0])

    def test_registered_again_invalid(self):
        h = History().member("w1", "alive", session=7).member("w1", "alive", session=9)
        result = self.check(h)
        self.assertFalse(result["valid"])
        self.assertIn("registered again", result["errors"][0])

    def test_suspect_when_last_seen_invalid(self):
        h = History().member("w1", "alive").member("w1", "suspect")
        result = self.check(h)
        self.assertFalse(result["valid"])
        self.assertIn("suspect when last seen", result["errors"][0])

    def test_members_are_independent(self):
        h = History().member("w1", "alive").member("w2", "dead").member("w1", "alive")
        result = self.check(h)
        self.assertTrue(result["members"]["w1"]["valid"])
        self.assertFalse(result["members"]["w2"]["valid"])


class CliTest(unittest.TestCase):
    def run_checker(self, lines, *args):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            f.write("\n".join(lines) + "\n")
        self.addCleanup(os.unlink, f.name)
        return subprocess.run([sys.executable, CHECKER, f.name, *args],
                              capture_output=True, text=True, timeout=60)

    def test_valid_exit_0_with_summary(self):
        lines = [json.dumps(e) for e in History().write(1, "k", "a").events]
        run = self.run_checker(lines)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn("key k: 1 ops", run.stdout)
        self.assertEqual(run.stdout.strip().splitlines()[-1], "VALID")

    def test_violation_exit_1_and_json(self):
        h = History().write(1, "k", "a").read(2, "k", None, 0)
        run = self.run_checker([json.dumps(e) for e in h.events], "--json")
        self.assertEqual(run.returncode, 1, run.stderr)
        self.assertFalse(json.loads(run.stdout)["kv"]["k"]["valid"])

    def assertMalformed(self, lines, expected):
        run = self.run_checker(lines)
        self.assertEqual(run.returncode, 2, run.stdout + run.stderr)
        self.assertIn(expected, run.stderr)

    def test_malformed_bad_json(self):
        lines = [json.dumps(e) for e in History().write(1, "k", "a").events]
        self.assertMalformed(lines + ["{not json"], "line 3: bad JSON")

    def test_malformed_completion_without_invoke(self):
        event = {"process": 1, "type": "ok", "f": "write", "key": "k", "value": "a", "time_ns": 1}
        self.assertMalformed([json.dumps(event)], "line 1: ok completion of write without")

    def test_malformed_two_outstanding_ops(self):
        h = History().invoke(1, "write", "k", value="a").invoke(1, "read", "k")
        self.assertMalformed([json.dumps(e) for e in h.events], "line 2: process 1 invokes read")

    def test_malformed_session_lost_without_heartbeating(self):
        event = {"process": 1, "type": "info", "f": "session_lost", "lock": "L", "time_ns": 1}
        self.assertMalformed([json.dumps(event)], "line 1: session_lost needs a boolean 'heartbeating'")

    def test_malformed_queued_before_invoke(self):
        h = History().queue(1, "L")
        h.queued_at[1] = 0
        h.granted(1, "L", 3)
        self.assertMalformed([json.dumps(e) for e in h.events], "line 2: 'queued_ns' must be")

    def test_malformed_member_observation_without_status(self):
        event = {"type": "observe", "f": "member", "member": "w1", "session": 3, "time_ns": 1}
        self.assertMalformed([json.dumps(event)], "line 1: member observation needs a string 'status'")

    def test_malformed_process_reused_after_info(self):
        h = History().write(1, "k", "a", type="info").invoke(1, "read", "k")
        self.assertMalformed([json.dumps(e) for e in h.events], "line 3: process 1 invokes read")

    def test_malformed_missing_read_version(self):
        h = History().invoke(1, "read", "k").complete(1, "ok", value=None)
        self.assertMalformed([json.dumps(e) for e in h.events], "line 2: ok read needs an int")


class RandomizedTest(unittest.TestCase):
    SEEDS = range(50)

    def test_simulated_histories_valid(self):
        for seed in self.SEEDS:
            events, _ = simulate(seed, 200, 5)
            with self.subTest(seed=seed):
                result = checker.check(events)
                self.assertTrue(result["valid"], result["errors"])

    def test_simulation_exercises_info_and_fail(self):
        events = [e for seed in self.SEEDS for e in simulate(seed, 200, 5)[0]]
        self.assertGreater(sum(e["type"] == "info" for e in events), 100)
        self.assertGreater(sum(e["type"] == "fail" for e in events), 100)

    def test_read_of_unwritten_value_invalid(self):
        for seed in self.SEEDS:
            events, _ = simulate(seed, 200, 5)
            with self.subTest(seed=seed):
                corrupted = corrupt_unwritten(events, random.Random(seed))
                self.assertFalse(checker.check(corrupted)["valid"])

    def test_read_of_overwritten_value_invalid(self):
        corrupted_seeds = 0
        for seed in self.SEEDS:
            events, values = simulate(seed, 200, 5)
            corrupted = corrupt_overwritten(events, values, random.Random(seed))
            if corrupted is None:
                continue
            corrupted_seeds += 1
            with self.subTest(seed=seed):
                self.assertFalse(checker.check(corrupted)["valid"])
        self.assertGreater(corrupted_seeds, 40)

    def test_agrees_with_brute_force_on_small_histories(self):
        verdicts = []
        for seed in range(300):
            rng = random.Random(seed)
            events, values = simulate(seed, 8, rng.randint(2, 4), info_rate=0.3, abort_rate=0.4)
            for history in (events, mutate_result(events, values, rng)):
                expected = brute_force_linearizable(history)
                verdicts.append(expected)
                with self.subTest(seed=seed):
                    self.assertEqual(checker.check(history)["valid"], expected)
        self.assertGreater(verdicts.count(False), 100)
        self.assertGreater(verdicts.count(True), 100)

    def test_performance_3000_ops_10_processes(self):
        events, values = simulate(2024, 3000, 10)
        result = checker.check(events)
        self.assertTrue(result["valid"], result["errors"])
        self.assertEqual(result["kv"]["k"]["ops"], 3000)
        corrupted = corrupt_overwritten(events, values, random.Random(2024))
        self.assertFalse(checker.check(corrupted)["valid"])

    def test_performance_3000_ops_20_processes(self):
        events, _ = simulate(2025, 3000, 20)
        self.assertTrue(checker.check(events)["valid"])
        self.assertFalse(checker.check(corrupt_unwritten(events, random.Random(2025)))["valid"])


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    failed = {getattr(test, "test_case", test).id()
              for test, _ in result.failures + result.errors}
    failed |= {test.id() for test in result.unexpectedSuccesses}
    skipped = len(result.skipped)
    passed = result.testsRun - len(failed) - skipped
    sys.stderr.flush()
    print(f"[doctest] test cases: {result.testsRun} | {passed} passed | "
          f"{len(failed)} failed | {skipped} skipped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
