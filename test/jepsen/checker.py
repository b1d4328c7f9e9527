#!/usr/bin/env python3
"""History checker for conclave's Jepsen-style fault-injection tests.

A history is JSON Lines, one operation event per line. Every client operation
is an "invoke" event followed by a completion: "ok" (it happened, with its
result), "fail" (it definitely did not take effect) or "info" (unknown: it may
take effect at any time after its invoke, or never). An invoke without a
completion is treated like "info".

Checks:
  * KV keys (f = read / write / cas on field "key"): each key on its own
    (P-compositionality) must be linearizable with respect to a versioned
    register, found by a Wing & Gong / Lowe just-in-time linearization search.
  * Locks (f = acquire / release / session_lost on field "lock"): fencing
    tokens are unique and increase in request order (real time, and first
    come, first served for requests that were queued), two processes never
    hold a lock at the same time unless the older holder lost its session,
    and a client that kept its session alive never loses it.
  * Members (type = observe, f = member): a member the test never stops is
    never seen dead or left, keeps its first registration session, and is
    alive when last seen.

Usable as a module, `check(events) -> dict`, or as a command:
    python3 checker.py HISTORY.jsonl [--json]
exit status 0: valid, 1: a violation was found, 2: malformed history.
"""
import bisect
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

KV_FUNCTIONS = ("read", "write", "cas")
LOCK_FUNCTIONS = ("acquire", "release")
SESSION_LOST = "session_lost"
OBSERVE = "observe"
MEMBER = "member"
COMPLETIONS = ("ok", "fail", "info")
INFINITY = float("inf")
PREFIX_TAIL = 5  # linearized ops shown before a linearizability failure
MAX_LOCK_ERRORS = 10  # violations reported per lock and check


class MalformedHistory(Exception):
    """The history cannot be checked; `line` is the 1-based event line."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass
class Op:
    """One client operation: its invoke and (if any) completion event."""
    process: int
    f: str
    target: str  # the key or the lock name
    invoke: dict
    invoke_time: int
    invoke_line: int
    type: str = "info"  # completion type; "info" until a completion is seen
    completion: dict = field(default_factory=dict)
    complete_time: float = INFINITY
    complete_line: Optional[int] = None

    def describe(self) -> str:
        """A one-line description naming the op's arguments, result and lines."""
        args = " (wait)" if self.invoke.get("wait") else ""
        if self.f in ("write", "cas"):
            args = f" {self.invoke['value']!r}"
        if self.f == "cas":
            args += f" if version={self.invoke['expected_version']}"
        result = self.type
        if self.type == "ok" and self.f == "read":
            result += f" {self.completion['value']!r} version={self.completion['version']}"
        elif self.type == "ok" and self.f == "cas":
            result += f" applied={self.completion['applied']}"
        elif self.type == "ok" and self.f == "acquire":
            result += f" token={self.completion['token']}"
            if "queued_ns" in self.completion:
                result += f" (queued at t={self.completion['queued_ns']})"
        where = f"invoke line {self.invoke_line} t={self.invoke_time}"
        if self.complete_line is not None:
            where += f", {self.type} line {self.complete_line} t={self.completion['time_ns']}"
        return f"p{self.process} {self.f}{args} -> {result} [{where}]"


@dataclass
class Notice:
    """A session_lost notice: `process` learned its session on `lock` ended;
    `heartbeating`: it had kept the session alive until then."""
    process: int
    lock: str
    time: int
    line: int
    heartbeating: bool


@dataclass
class Observation:
    """A member's registry entry as a client read it."""
    member: str
    status: str
    session: int
    time: int
    line: int


# ---------------------------------------------------------------- parsing

def _require(condition: bool, line: int, message: str) -> None:
    if not condition:
        raise MalformedHistory(line, message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_relevant(event: dict) -> bool:
    """Rule: nemesis events and events of unknown functions are ignored."""
    f = event.get("f")
    return (event.get("type") != "nemesis"
            and f in KV_FUNCTIONS + LOCK_FUNCTIONS + (SESSION_LOST,))


def _target_field(f: str) -> str:
    return "key" if f in KV_FUNCTIONS else "lock"


def _validate_invoke(event: dict, line: int) -> None:
    """Rule: writes and cas carry a string value, cas an int expected_version,
    an acquire that waits in the queue says so with a boolean 'wait'."""
    f = event["f"]
    if f == "acquire" and "wait" in event:
        _require(isinstance(event["wait"], bool), line, "acquire 'wait' must be a boolean")
    if f in ("write", "cas"):
        _require(isinstance(event.get("value"), str), line,
                 f"{f} invoke needs a string 'value'")
    if f == "cas":
        _require(_is_int(event.get("expected_version")), line,
                 "cas invoke needs an int 'expected_version'")


def _validate_ok(event: dict, f: str, line: int) -> None:
    """Rule: ok reads carry value and version, ok cas applied, ok acquire token."""
    if f == "read":
        _require("value" in event and (event["value"] is None or isinstance(event["value"], str)),
                 line, "ok read needs a 'value' that is a string or null")
        _require(_is_int(event.get("version")), line, "ok read needs an int 'version'")
    elif f == "cas":
        _require(isinstance(event.get("applied"), bool), line,
                 "ok cas needs a boolean 'applied'")
    elif f == "acquire":
        _require(_is_int(event.get("token")), line, "ok acquire needs an int 'token'")


def _validate_common(event: dict, line: int) -> None:
    """Rule: an event names an int process, an int time_ns and its key or lock."""
    _require(_is_int(event.get("process")), line, "event needs an int 'process'")
    _require(_is_int(event.get("time_ns")), line, "event needs an int 'time_ns'")
    target = _target_field(event["f"])
    _require(isinstance(event.get(target), str), line,
             f"{event['f']} event needs a string '{target}'")


def _validate_queued(event: dict, op: Op, line: int) -> None:
    """Rule: 'queued_ns' (when an acquire that waits was queued) is an int
    between its invoke and its completion."""
    if "queued_ns" not in event:
        return
    _require(op.invoke.get("wait") is True, line, "'queued_ns' on an acquire that did not wait")
    queued = event["queued_ns"]
    _require(_is_int(queued) and op.invoke_time <= queued <= event["time_ns"], line,
             "'queued_ns' must be an int between the invoke and the completion")


def _observation(event: dict, line: int) -> Observation:
    """Rule: a member observation names the member, its status and session."""
    _require(_is_int(event.get("time_ns")), line, "event needs an int 'time_ns'")
    _require(isinstance(event.get("member"), str), line, "member observation needs a string 'member'")
    _require(isinstance(event.get("status"), str), line, "member observation needs a string 'status'")
    _require(_is_int(event.get("session")), line, "member observation needs an int 'session'")
    return Observation(event["member"], event["status"], event["session"], event["time_ns"], line)


def parse_history(numbered_events) -> Tuple[List[Op], List[Notice], List[Observation]]:
    """Pairs invokes with completions; raises MalformedHistory on bad structure.

    Rules: a process has at most one operation outstanding, and an op that
    ended with info never completes, so its process issues no more ops; a
    completion must follow an invoke of the same process, function and
    key/lock, and is not earlier than its invoke. An op still outstanding at
    the end of the history keeps type "info".
    """
    ops: List[Op] = []
    notices: List[Notice] = []
    observations: List[Observation] = []
    outstanding: Dict[int, Op] = {}
    retired: Dict[int, Op] = {}  # process -> its op that ended with info
    for line, event in numbered_events:
        if not isinstance(event, dict):
            raise MalformedHistory(line, "event is not a JSON object")
        if event.get("type") == OBSERVE and event.get("f") == MEMBER:
            observations.append(_observation(event, line))
            continue
        if not _is_relevant(event):
            continue
        _validate_common(event, line)
        process, f, kind = event["process"], event["f"], event.get("type")
        target = event[_target_field(f)]
        if f == SESSION_LOST:
            _require(isinstance(event.get("heartbeating"), bool), line,
                     "session_lost needs a boolean 'heartbeating'")
            notices.append(Notice(process, target, event["time_ns"], line, event["heartbeating"]))
        elif kind == "invoke":
            if process in outstanding:
                previous = outstanding[process]
                raise MalformedHistory(
                    line, f"process {process} invokes {f} while its {previous.f} "
                    f"from line {previous.invoke_line} is still outstanding")
            if process in retired:
                previous = retired[process]
                raise MalformedHistory(
                    line, f"process {process} invokes {f} after its {previous.f} ended "
                    f"with info at line {previous.complete_line}: use a fresh process")
            _validate_invoke(event, line)
            op = Op(process, f, target, event, event["time_ns"], line)
            outstanding[process] = op
            ops.append(op)
        elif kind in COMPLETIONS:
            op = outstanding.pop(process, None)
            _require(op is not None, line,
                     f"{kind} completion of {f} without an outstanding invoke "
                     f"by process {process}")
            _require(op.f == f and op.target == target, line,
                     f"{kind} {f} on {target!r} does not match the outstanding "
                     f"{op.f} on {op.target!r} invoked at line {op.invoke_line}")
            _require(event["time_ns"] >= op.invoke_time, line,
                     f"completion time precedes its invoke at line {op.invoke_line}")
            if kind == "ok":
                _validate_ok(event, f, line)
                _validate_queued(event, op, line)
            op.type, op.completion, op.complete_line = kind, event, line
            if kind == "info":  # never completes: it stays concurrent with all later ops
                retired[process] = op
            else:
                op.complete_time = event["time_ns"]
        else:
            raise MalformedHistory(line, f"unknown event type {kind!r}")
    return ops, notices, observations


def load_history(path: str) -> List[Tuple[int, Any]]:
    """Reads a JSON Lines file as (line number, event) pairs, skipping blanks."""
    numbered = []
    with open(path, encoding="utf-8") as history:
        for line, text in enumerate(history, 1):
            if not text.strip():
                continue
            try:
                numbered.append((line, json.loads(text)))
            except json.JSONDecodeError as error:
                raise MalformedHistory(line, f"bad JSON: {error.msg}") from None
    return numbered


# ----------------------------------------------------- KV linearizability

INITIAL_STATE = (None, 0)  # (value, version) of an absent key
UNREAD = ("unread",)  # stands for any value no ok read returns (never a str)
WRITE_QUEUE = ("write", None)  # the effect of writing an unread value


def _register_step(state, op: Op):
    """Applies `op` to a versioned register; None if its result is impossible.

    Model: write sets the value and bumps the version; an ok read must see the
    exact (value, version); a cas applies (and bumps the version) iff the
    version equals expected_version, and an ok cas must report which happened.
    An info cas is only worth linearizing when it applies: otherwise it has
    no effect, which is the same as omitting it.
    """
    value, version = state
    if op.f == "write":
        return (op.invoke["value"], version + 1)
    if op.f == "read":
        return state if state == (op.completion["value"], op.completion["version"]) else None
    matches = version == op.invoke["expected_version"]
    applied = op.completion["applied"] if op.type == "ok" else True
    if matches != applied:
        return None
    return (op.invoke["value"], version + 1) if applied else state


def _changes_nothing(op: Op) -> bool:
    """Ok reads and ok cas ops that report not applied leave the state as is."""
    return op.type == "ok" and (op.f == "read" or (op.f == "cas" and not op.completion["applied"]))


def _writes(op: Op) -> bool:
    """Whether `op`, once linearized, has written its value."""
    return op.f == "write" or (op.f == "cas" and not _changes_nothing(op))


def _version_ceiling(op: Op) -> float:
    """The highest register version at which `op` can still be linearized.

    Versions never decrease, so an ok read of version n, or an ok applied cas
    expecting n, is impossible once the register is past version n.
    """
    if op.type == "ok" and op.f == "read":
        return op.completion["version"]
    if op.type == "ok" and op.f == "cas" and op.completion["applied"]:
        return op.invoke["expected_version"]
    return INFINITY


def _call_key(op: Op):
    return (op.invoke_time, 0, op.invoke_line)


def _return_key(op: Op):
    return (op.complete_time, 1, op.complete_line)  # calls sort first at equal times


def _effect(op: Op, index: int, read_values: set):
    """A key shared by ops that change the register alike; else the op's index.

    A value no ok read returns cannot be told apart from another, so writes
    of such values are alike, and so are such cas ops (ok applied, or info:
    linearized only when they apply) expecting one version.
    """
    if _writes(op) and op.invoke["value"] not in read_values:
        return (op.f, op.invoke.get("expected_version"))
    return index


class _PendingOps:
    """The ops not yet linearized at the current search node.

    Distinct ops sit in a doubly linked list of call and return entries in
    time order (entry 2*i is op i's call, 2*i+1 its return; info ops have no
    return entry: they never complete). Linearizing an op lifts its entries
    out; backtracking puts them back (dancing links: restoring in reverse
    order of removal).

    Symmetry reduction: ops with one effect (see _effect) are
    interchangeable. Swapping two such ops in a linearization keeps it valid
    when the one placed first returns no later than the other and both were
    invoked by then. So, of the window's ok ops with one effect, only the one
    returning first is tried; and info ops with one effect, which never
    return, are used in invoke order: they sit in queues instead of the list,
    and only the earliest unused op of a queue is tried.
    """

    def __init__(self, ops: List[Op]):
        self.ops = ops
        self.pending_reads: Dict[Optional[str], int] = {}  # value -> unlinearized ok reads
        self.read_versions: Dict[Optional[str], set] = {}  # value -> versions reads saw
        for op in ops:
            if op.type == "ok" and op.f == "read":
                value = op.completion["value"]
                self.pending_reads[value] = self.pending_reads.get(value, 0) + 1
                self.read_versions.setdefault(value, set()).add(op.completion["version"])
        read_values = set(self.read_versions)
        self.effect = [_effect(op, index, read_values) for index, op in enumerate(ops)]
        self.queue_of: Dict[int, tuple] = {}  # queued info op -> its queue's effect
        self.queues: Dict[tuple, List[int]] = {}  # effect -> info ops, invoke order
        self.used: Dict[tuple, int] = {}  # effect -> how many are linearized
        entries = []
        for index, op in enumerate(ops):
            effect = self.effect[index]
            if op.type == "info" and isinstance(effect, tuple):
                self.queue_of[index] = effect
                self.queues.setdefault(effect, []).append(index)
                self.used[effect] = 0
                continue
            entries.append((_call_key(op), 2 * index))
            if op.type == "ok":
                entries.append((_return_key(op), 2 * index + 1))
        for queue in self.queues.values():
            queue.sort(key=lambda index: _call_key(ops[index]))
        entries.sort()
        self.head, self.end = 2 * len(ops), 2 * len(ops) + 1
        self.next = [self.end] * (2 * len(ops) + 2)
        self.prev = [self.head] * (2 * len(ops) + 2)
        order = [self.head] + [entry for _, entry in entries] + [self.end]
        for a, b in zip(order, order[1:]):
            self.next[a], self.prev[b] = b, a
        bounded = sorted((_call_key(op), index) for index, op in enumerate(ops) if op.type == "ok")
        self.calls = [call for call, _ in bounded]
        self.ceilings = [(INFINITY, None)] * (len(bounded) + 1)  # suffix minima: (ceiling, op)
        for position in range(len(bounded) - 1, -1, -1):
            index = bounded[position][1]
            self.ceilings[position] = min((_version_ceiling(ops[index]), index),
                                          self.ceilings[position + 1], key=lambda pair: pair[0])

    def _unlink(self, entry: int) -> None:
        self.next[self.prev[entry]] = self.next[entry]
        self.prev[self.next[entry]] = self.prev[entry]

    def _relink(self, entry: int) -> None:
        self.next[self.prev[entry]] = entry
        self.prev[self.next[entry]] = entry

    def lift(self, index: int) -> None:
        op = self.ops[index]
        if op.type == "ok" and op.f == "read":
            self.pending_reads[op.completion["value"]] -= 1
        if index in self.queue_of:
            self.used[self.queue_of[index]] += 1
            return
        self._unlink(2 * index)
        if self.ops[index].type == "ok":
            self._unlink(2 * index + 1)

    def unlift(self, index: int) -> None:
        op = self.ops[index]
        if op.type == "ok" and op.f == "read":
            self.pending_reads[op.completion["value"]] += 1
        if index in self.queue_of:
            self.used[self.queue_of[index]] -= 1
            return
        if self.ops[index].type == "ok":
            self._relink(2 * index + 1)
        self._relink(2 * index)

    def window(self, version: int):
        """Ops that may be linearized next, and the op whose return bounds them.

        Rule (just-in-time linearization): the next op must have been invoked
        before the earliest return of a pending ok op. Ok ops are listed before
        info ops, so info ops are only tried when the ok ops cannot explain the
        history. Of the info queues only writes and the cas queue expecting
        the current version can have an effect. The bounding op is None when
        every ok op is linearized.
        """
        first_return: Dict[Any, int] = {}  # ok op effect -> op returning first
        info_calls = []
        entry = self.next[self.head]
        while entry != self.end and entry % 2 == 0:
            index = entry // 2
            if self.ops[index].type == "info":
                info_calls.append(index)
            else:
                effect = self.effect[index]
                rival = first_return.get(effect)
                if rival is None or self.ops[index].complete_time < self.ops[rival].complete_time:
                    first_return[effect] = index
            entry = self.next[entry]
        ok_calls = list(first_return.values())
        if entry == self.end:
            return ok_calls + info_calls, None
        blocker = entry // 2
        for effect in (WRITE_QUEUE, ("cas", version)):
            queue = self.queues.get(effect, ())
            if self.used.get(effect, 0) < len(queue):
                index = queue[self.used[effect]]
                if _call_key(self.ops[index]) < _return_key(self.ops[blocker]):
                    info_calls.append(index)
        return ok_calls + info_calls, blocker

    def tightest_ceiling(self, window: List[int], blocker: int):
        """(ceiling, op): the lowest version ceiling of the pending ok ops.

        Those are the window's ok ops and the ok ops invoked after `blocker`
        returns (all still pending, as the search has not reached them).
        """
        later = self.ceilings[bisect.bisect(self.calls, _return_key(self.ops[blocker]))]
        return min([(_version_ceiling(self.ops[i]), i) for i in window] + [later],
                   key=lambda pair: pair[0])

    def allows(self, state, new_state) -> bool:
        """Whether a step from `state` to `new_state` keeps every ok read possible.

        Each value is written once, so a value cannot be overwritten while
        reads of it are pending (even reads not yet invoked), and a read value
        must be written at the version its reads report.
        """
        if new_state[1] == state[1]:
            return True
        versions = self.read_versions.get(new_state[0])
        return not self.pending_reads.get(state[0]) and (
            versions is None or versions == {new_state[1]})

    def seen_key(self, mask: int, state):
        """The memo key: what decides how the search can go on from here.

        `mask` holds the linearized ops that are not queued; states differing
        only in an unread value are equal. Of the queues only the count of
        used info writes matters: an info cas applies only at its expected
        version, so the cas queues past it are spent and those ahead unused.
        """
        canonical = state if state[0] in self.read_versions else (UNREAD, state[1])
        return (mask, canonical, self.used.get(WRITE_QUEUE, 0))


@dataclass
class _Frame:
    """A search node: the state after linearizing `op` on top of `parent`."""
    state: Tuple[Optional[str], int]
    mask: int  # the linearized ops, except queued info ops
    window: List[int]  # ops that may be linearized next
    blocker: Optional[int]  # the pending ok op returning first
    choices: List[int]  # the ops of the window worth trying
    doomed_by: Optional[int] = None  # a pending op that can no longer fit
    op: Optional[int] = None
    parent: Optional["_Frame"] = None
    depth: int = 0  # ok ops linearized so far
    tried: int = 0

    def path(self) -> List[int]:
        ops, frame = [], self
        while frame.op is not None:
            ops.append(frame.op)
            frame = frame.parent
        return ops[::-1]


def _new_frame(pending: _PendingOps, state, mask, **links) -> _Frame:
    """Builds a node and picks the ops worth trying from its window.

    Rules: a node is dead (nothing is tried) when the version is past the
    ceiling of a pending ok op, in the window or invoked later. If
    an op that changes nothing can be linearized now, it is the only choice:
    any linearization that places it later stays valid with it moved here
    (its call precedes every pending return, and the ops it jumps over see
    the same state).
    """
    window, blocker = pending.window(state[1])
    frame = _Frame(state, mask, window, blocker, window, **links)
    if blocker is None:
        return frame
    ceiling, tightest = pending.tightest_ceiling(window, blocker)
    if state[1] > ceiling:
        frame.choices, frame.doomed_by = [], tightest
        return frame
    forced = [i for i in window if _changes_nothing(pending.ops[i])
              and _register_step(state, pending.ops[i]) is not None]
    frame.choices = forced[:1] or window
    return frame


def _search(ops: List[Op]) -> Optional[_Frame]:
    """WGL depth-first search; returns None if linearizable, else the deepest node.

    Each step linearizes one op from the window, if the model and the rules
    of _PendingOps.allows accept it. A node whose memo key (linearized-set
    bitmask and state, see _PendingOps.seen_key) was already explored is not
    explored again. A node with nothing left to try is backtracked. The
    history is linearizable once every ok op is linearized (info ops may stay
    out).
    """
    pending = _PendingOps(ops)
    root = _new_frame(pending, INITIAL_STATE, 0)
    if root.blocker is None:
        return None
    stack, deepest, seen = [root], root, set()
    while stack:
        frame = stack[-1]
        if frame.tried == len(frame.choices):
            stack.pop()
            if frame.op is not None:
                pending.unlift(frame.op)
            continue
        index = frame.choices[frame.tried]
        frame.tried += 1
        state = _register_step(frame.state, ops[index])
        if state is None or not pending.allows(frame.state, state):
            continue
        mask = frame.mask if index in pending.queue_of else frame.mask | (1 << index)
        pending.lift(index)
        key = pending.seen_key(mask, state)
        if key in seen:
            pending.unlift(index)
            continue
        seen.add(key)
        depth = frame.depth + (ops[index].type == "ok")
        child = _new_frame(pending, state, mask, op=index, parent=frame, depth=depth)
        if child.blocker is None:
            return None
        if depth > deepest.depth:
            deepest = child
        stack.append(child)
    return deepest


def _describe_failure(key: str, ops: List[Op], frame: _Frame) -> dict:
    """The window around the point where the search got furthest: the last
    linearized ops, the state, the op that cannot be linearized (the first
    to return, or one whose version the register has passed), the ops
    concurrent at that point, and the pending reads of the current value
    (which forbid overwriting it)."""
    prefix = frame.path()
    done = set(prefix)
    value, version = frame.state
    awaited = [op.describe() for index, op in enumerate(ops)
               if index not in done and op.type == "ok" and op.f == "read"
               and op.completion["value"] == value][:PREFIX_TAIL]
    culprit = frame.blocker if frame.doomed_by is None else frame.doomed_by
    message = (f"key {key!r} is not linearizable: after {len(prefix)} linearized ops "
               f"(state value={value!r} version={version}) no order explains "
               f"{ops[culprit].describe()}")
    if frame.doomed_by is not None:
        message += (f", which needs version {_version_ceiling(ops[culprit])}: "
                    f"versions never decrease")
    elif awaited:
        message += f" while a read of the current value is still to come: {awaited[0]}"
    return {
        "linearized": len(prefix),
        "prefix_tail": [ops[i].describe() for i in prefix[-PREFIX_TAIL:]],
        "state": {"value": value, "version": version},
        "blocked": ops[culprit].describe(),
        "concurrent": [ops[i].describe() for i in frame.window],
        "awaited_reads": awaited,
        "message": message,
    }


def check_key(key: str, ops: List[Op]) -> dict:
    """Checks one key's ops; fail ops are dropped, and so are info reads.

    Rule: a fail op never took effect, and an info read has no effect and no
    result, so neither constrains the register.
    """
    kept = [op for op in ops if op.type == "ok" or (op.type == "info" and op.f != "read")]
    result = {
        "ops": len(ops),
        "ok": sum(op.type == "ok" for op in ops),
        "info": sum(op.type == "info" for op in ops),
        "fail": sum(op.type == "fail" for op in ops),
    }
    failure = _search(kept)
    result["valid"] = failure is None
    if failure is not None:
        result["failure"] = _describe_failure(key, kept, failure)
    return result


# ------------------------------------------------------------------ locks

@dataclass
class Hold:
    """A process holding a lock from its acquire ok until `end`."""
    acquire: Op
    end: float = INFINITY

    @property
    def token(self) -> int:
        return self.acquire.completion["token"]

    @property
    def start(self) -> int:
        return self.acquire.complete_time


def _capped(errors: List[str], total: int, what: str) -> List[str]:
    if total > len(errors):
        errors.append(f"... {total - len(errors)} more {what} violations")
    return errors


def check_unique_tokens(lock: str, acquires: List[Op]) -> List[str]:
    """Rule (a): no two ok acquires of a lock get the same fencing token."""
    first: Dict[int, Op] = {}
    errors, total = [], 0
    for op in acquires:
        token = op.completion["token"]
        if token in first:
            total += 1
            if len(errors) < MAX_LOCK_ERRORS:
                errors.append(f"lock {lock!r}: token {token} granted twice: "
                              f"{first[token].describe()} and {op.describe()}")
        else:
            first[token] = op
    return _capped(errors, total, "duplicate-token")


def _taken_in(op: Op) -> float:
    """When the lock service had surely taken in `op`'s request: the reply
    that queued it, or else its completion."""
    return op.completion.get("queued_ns", op.complete_time)


def check_token_order(lock: str, acquires: List[Op]) -> List[str]:
    """Rule (b): if acquire A was taken in (completed, or queued behind the
    holder) before acquire B was invoked, token(A) < token(B). For a queued A
    this is first come, first served: no later request gets the lock before
    it, whether it waits too or tries once."""
    by_taken_in = sorted(acquires, key=_taken_in)
    errors, total = [], 0
    highest, done = None, 0  # highest-token acquire taken in before B's invoke
    for op in sorted(acquires, key=lambda op: op.invoke_time):
        while done < len(by_taken_in) and _taken_in(by_taken_in[done]) < op.invoke_time:
            earlier = by_taken_in[done]
            if highest is None or earlier.completion["token"] > highest.completion["token"]:
                highest = earlier
            done += 1
        if highest is not None and highest.completion["token"] >= op.completion["token"]:
            total += 1
            if len(errors) < MAX_LOCK_ERRORS:
                if highest.complete_time < op.invoke_time:
                    what = "token did not increase in real-time order"
                    order = "completed before"
                else:
                    what = "a later request got the lock first (first come, first served)"
                    order = "was queued before the invoke of"
                errors.append(f"lock {lock!r}: {what}: {highest.describe()} {order} {op.describe()}")
    return _capped(errors, total, "token-order")


def check_live_sessions(lock: str, notices: List[Notice]) -> List[str]:
    """Rule (d): a client that kept its session alive (keepalives sent
    throughout, while the cluster had a leader) never loses it."""
    errors = [f"lock {lock!r}: p{n.process} lost its session [line {n.line} t={n.time}] "
              f"although it kept it alive" for n in notices if n.heartbeating]
    total = len(errors)
    return _capped(errors[:MAX_LOCK_ERRORS], total, "live-session")


def lock_holds(ops: List[Op]) -> List[Hold]:
    """The holds of one lock, derived per process from its ops in order.

    Rule: a hold starts at an acquire ok and ends at the invoke of the
    process's next release that did not fail (a failed release definitely left
    the lock held), or at the invoke of its next acquire; otherwise it lasts
    forever.
    """
    holds, open_hold = [], {}
    for op in sorted(ops, key=lambda op: op.invoke_time):
        hold = open_hold.get(op.process)
        ends_hold = op.f == "acquire" or op.type != "fail"
        if hold is not None and ends_hold:
            hold.end = op.invoke_time
            del open_hold[op.process]
        if op.f == "acquire" and op.type == "ok":
            open_hold[op.process] = Hold(op)
            holds.append(open_hold[op.process])
    return holds


def check_mutual_exclusion(lock: str, holds: List[Hold], notices: List[Notice]) -> List[str]:
    """Rule (c): holds of different processes never overlap in time, unless
    the holder with the older (lower) token got a session_lost notice for the
    lock after its acquire ok: its lock expired while it still believed it
    held it, which fencing tokens guard against."""
    def excused(hold: Hold) -> bool:
        return any(n.process == hold.acquire.process and n.time > hold.start for n in notices)

    errors, total, active = [], 0, []
    for hold in sorted(holds, key=lambda h: h.start):
        active = [other for other in active if other.end > hold.start]
        for other in active:
            if other.acquire.process == hold.acquire.process:
                continue
            older = min(other, hold, key=lambda h: (h.token, h.start))
            if excused(older):
                continue
            total += 1
            if len(errors) < MAX_LOCK_ERRORS:
                until = "never released" if other.end == INFINITY else f"held until t={other.end}"
                errors.append(f"lock {lock!r}: held by two processes at once: "
                              f"{other.acquire.describe()} ({until}) and "
                              f"{hold.acquire.describe()}")
        active.append(hold)
    return _capped(errors, total, "mutual-exclusion")


def check_lock(lock: str, ops: List[Op], notices: List[Notice]) -> dict:
    """Runs checks (a) to (d) on one lock."""
    acquires = [op for op in ops if op.f == "acquire" and op.type == "ok"]
    errors = (check_unique_tokens(lock, acquires)
              + check_token_order(lock, acquires)
              + check_mutual_exclusion(lock, lock_holds(ops), notices)
              + check_live_sessions(lock, notices))
    return {
        "valid": not errors,
        "ops": len(ops),
        "acquires": len(acquires),
        "queued": sum("queued_ns" in op.completion for op in acquires),
        "releases": sum(op.f == "release" and op.type == "ok" for op in ops),
        "session_lost": len(notices),
        "errors": errors,
    }


# ---------------------------------------------------------------- members

def check_member(member: str, observations: List[Observation]) -> dict:
    """Rule (e): a member the test keeps running is never declared dead (nor
    left), never registers again (a new session means its first one
    expired), and is alive when last seen (suspect only for a while)."""
    errors = []
    dead = [o for o in observations if o.status in ("dead", "left")]
    if dead:
        errors.append(f"member {member!r} was seen {dead[0].status} [line {dead[0].line} t={dead[0].time}]"
                      f"{f' ({len(dead) - 1} more times)' if len(dead) > 1 else ''}")
    first = observations[0]
    other = next((o for o in observations if o.session != first.session), None)
    if other is not None:
        errors.append(f"member {member!r} registered again: session {first.session} "
                      f"[line {first.line}], then {other.session} [line {other.line} t={other.time}]")
    last = observations[-1]
    if last.status != "alive":
        errors.append(f"member {member!r} was {last.status} when last seen [line {last.line} t={last.time}]")
    statuses: Dict[str, int] = {}
    for o in observations:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    return {"valid": not errors, "observations": len(observations), "statuses": statuses, "errors": errors}


# ------------------------------------------------------------------- API

def _group(items, attribute: str) -> Dict[str, list]:
    groups: Dict[str, list] = {}
    for item in items:
        groups.setdefault(getattr(item, attribute), []).append(item)
    return groups


def check_numbered(numbered_events) -> dict:
    """Like check(), for (line number, event) pairs."""
    ops, notices, observations = parse_history(numbered_events)
    kv_ops = _group((op for op in ops if op.f in KV_FUNCTIONS), "target")
    lock_ops = _group((op for op in ops if op.f in LOCK_FUNCTIONS), "target")
    notices_by_lock = _group(notices, "lock")
    kv = {key: check_key(key, key_ops) for key, key_ops in sorted(kv_ops.items())}
    locks = {lock: check_lock(lock, lock_ops.get(lock, []), notices_by_lock.get(lock, []))
             for lock in sorted(set(lock_ops) | set(notices_by_lock))}
    members = {member: check_member(member, seen)
               for member, seen in sorted(_group(observations, "member").items())}
    errors = [result["failure"]["message"] for result in kv.values() if not result["valid"]]
    errors += [error for result in locks.values() for error in result["errors"]]
    errors += [error for result in members.values() for error in result["errors"]]
    return {"valid": not errors, "kv": kv, "locks": locks, "members": members, "errors": errors}


def check(events) -> dict:
    """Checks a history given as a list of event dicts (line = 1-based index).

    Returns {"valid": bool, "kv": {key: {...}}, "locks": {lock: {...}},
    "members": {member: {...}}, "errors": [str]}; raises MalformedHistory if the history is malformed.
    """
    return check_numbered(enumerate(events, 1))


def check_file(path: str) -> dict:
    """Checks a JSON Lines history file."""
    return check_numbered(load_history(path))


# ------------------------------------------------------------------- CLI

def summary(result: dict) -> List[str]:
    """Human-readable lines: ops checked per key and lock, and the verdict."""
    lines = []
    for key, r in result["kv"].items():
        verdict = "linearizable" if r["valid"] else "NOT linearizable"
        lines.append(f"key {key}: {r['ops']} ops ({r['ok']} ok, {r['info']} info, "
                     f"{r['fail']} fail): {verdict}")
        if not r["valid"]:
            failure = r["failure"]
            ending = ", ending with:" if failure["prefix_tail"] else ""
            lines.append(f"  linearized {failure['linearized']} ops{ending}")
            lines += [f"    {op}" for op in failure["prefix_tail"]]
            lines.append(f"  state: {failure['state']}")
            lines.append(f"  cannot linearize: {failure['blocked']}")
            lines.append("  concurrent ops at that point:")
            lines += [f"    {op}" for op in failure["concurrent"]]
            if failure["awaited_reads"]:
                lines.append("  reads of the current value still to come:")
                lines += [f"    {op}" for op in failure["awaited_reads"]]
    for lock, r in result["locks"].items():
        verdict = "valid" if r["valid"] else "INVALID"
        lines.append(f"lock {lock}: {r['ops']} ops ({r['acquires']} acquired, {r['queued']} of them "
                     f"after waiting in the queue, {r['releases']} released, "
                     f"{r['session_lost']} session_lost): {verdict}")
        lines += [f"  {error}" for error in r["errors"]]
    for member, r in result["members"].items():
        verdict = "valid" if r["valid"] else "INVALID"
        seen = ", ".join(f"{status} {n}" for status, n in sorted(r["statuses"].items()))
        lines.append(f"member {member}: seen {r['observations']} times ({seen}): {verdict}")
        lines += [f"  {error}" for error in r["errors"]]
    lines.append("VALID" if result["valid"] else f"INVALID: {len(result['errors'])} violations")
    return lines


def main(argv: List[str]) -> int:
    args = [a for a in argv if a != "--json"]
    if len(args) != 1:
        print("usage: checker.py HISTORY.jsonl [--json]", file=sys.stderr)
        return 2
    try:
        result = check_file(args[0])
    except MalformedHistory as error:
        print(f"malformed history {args[0]}: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"cannot read {args[0]}: {error}", file=sys.stderr)
        return 2
    if "--json" in argv:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(summary(result)))
    return 0 if result["valid"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
