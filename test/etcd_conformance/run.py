#!/usr/bin/env python3
"""etcd conformance: steps.py's etcdctl commands against Debian's etcd 3.4
(one member) and against 3 conclave masters, outputs compared after
normalising what legitimately differs.

Normalised: cluster and member ids, member names, addresses, raft terms and
indexes, versions, db sizes, timings, lease ids the steps captured, and
revisions, which are counted from each system's revision before the first
step (etcd's revisions consumed by a step conclave skips are left out of
that count). Compared: the exit code, stdout and stderr's messages (not the
client's JSON log lines).

Each step is a test case: passed when the outputs are equal, failed with a
diff; a step that needs what conclave does not support yet (steps.SUPPORTED)
runs against etcd only and prints "CONCLAVE-SKIP: ...". Ends with the
doctest-style summary test/run_tests.py counts ("passed" includes the skipped
cases, as doctest counts a case that calls CONCLAVE_SKIP). Every process it
starts is killed by pid at the end (and dies with it: PR_SET_PDEATHSIG).

usage: run.py [-v]   (CONCLAVE_BIN, CONCLAVE_ETCD, CONCLAVE_ETCDCTL: the programs)
"""
import base64
import ctypes
import difflib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import steps as script  # noqa: E402

CONCLAVE = os.environ.get("CONCLAVE_BIN", "build/roles/conclave")
ETCD = os.environ.get("CONCLAVE_ETCD", "/usr/bin/etcd")
ETCDCTL = os.environ.get("CONCLAVE_ETCDCTL", "/usr/bin/etcdctl")
VERBOSE = "-v" in sys.argv[1:]
STEP_TIMEOUT = 60  # seconds for one etcdctl run
UNTIL_TIMEOUT = 15  # seconds a long-running one (watch, elect) waits for its `until` text


def die_with_parent():
    # The child is killed when this runner dies, however it dies.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Result:
    def __init__(self, exit, stdout, stderr):
        self.exit, self.stdout, self.stderr = exit, stdout, stderr


class System:
    """One system under test: its server processes and etcdctl runs against them."""

    def __init__(self, name, tmp):
        self.name, self.tmp = name, tmp
        self.servers = []       # (pid handle, log path)
        self.endpoints = []     # client addresses, HOST:PORT
        self.members = set()    # member ids
        self.cluster_ids = set()
        self.peer_urls = []
        self.values = {}        # captured by steps: name -> value (revisions as int, ids as hex text)
        self.id_names = {}      # captured ids (hex text) -> <name>
        self.id_numbers = {}    # the same ids as numbers -> <name>
        self.base = 0           # the revision before the first step
        self.excluded = []      # revisions consumed by steps that conclave skips (etcd's only)
        self.background = {}    # name -> (Popen, stdout path, stderr path)
        self.runs = 0

    def spawn(self, args, out_path, err_path=None, stdin=None):
        out = open(out_path, "wb")
        err = open(err_path, "wb") if err_path else subprocess.STDOUT
        env = dict(os.environ, ETCDCTL_API="3")
        p = subprocess.Popen(args, stdout=out, stderr=err, stdin=stdin, env=env, preexec_fn=die_with_parent)
        out.close()
        if err_path:
            err.close()
        return p

    def etcdctl_args(self, args, at):
        return [ETCDCTL, "--endpoints", ",".join(at), "--command-timeout", "15s"] + args

    def run(self, args, at=None, stdin=None):
        """etcdctl ARGS against `at` (default: every endpoint): its exit code, stdout and stderr."""
        self.runs += 1
        out, err = (os.path.join(self.tmp, f"etcdctl-{self.runs}.{s}") for s in ("out", "err"))
        p = self.spawn(self.etcdctl_args(args, at or self.endpoints), out, err,
                       stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)
        try:
            p.communicate(stdin.encode() if stdin is not None else None, timeout=STEP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        return Result(p.returncode, read(out), read(err))

    def start_long(self, args, at):
        self.runs += 1
        out, err = (os.path.join(self.tmp, f"etcdctl-{self.runs}.{s}") for s in ("out", "err"))
        return (self.spawn(self.etcdctl_args(args, at), out, err, stdin=subprocess.DEVNULL), out, err)

    def wait_for(self, long, until):
        """Waits until its stdout holds `until` (None: no wait), it exits, or UNTIL_TIMEOUT passes:
        what it printed so far, and its exit code once it has exited."""
        p, out, err = long
        deadline = time.monotonic() + UNTIL_TIMEOUT
        while until is not None and p.poll() is None and until not in read(out) and time.monotonic() < deadline:
            time.sleep(0.02)
        return Result(p.poll(), read(out), read(err))

    def stop_long(self, long):
        """Stops it with SIGTERM (as a user's ^C would): all it printed, and its exit code."""
        p, out, err = long
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return Result(p.returncode, read(out), read(err))

    def revision(self):
        """The revision the system is at (a read of a key never written)."""
        r = self.run(["get", "conformance-probe", "-w", "json"])
        if r.exit != 0:
            raise RuntimeError(f"{self.name}: cannot read the revision: {r.stderr}")
        return json.loads(r.stdout)["header"].get("revision", 0)

    def statuses(self):
        """Each endpoint's status (etcdctl endpoint status -w json), or None."""
        r = self.run(["endpoint", "status", "-w", "json"])
        if r.exit != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def agreed_leader(self):
        """(leader's member id, its endpoint), when every endpoint names the same leader."""
        st = self.statuses()
        if not st or len(st) != len(self.endpoints):
            return None
        leaders = {s["Status"].get("leader", 0) for s in st}
        if len(leaders) != 1 or 0 in leaders:
            return None
        lead = leaders.pop()
        at = [s["Endpoint"] for s in st if s["Status"]["header"]["member_id"] == lead]
        return (lead, at[0]) if at else None

    def leader(self, seconds=15):
        """The agreed leader, waiting for it (after a leadership transfer)."""
        deadline = time.monotonic() + seconds
        while True:
            lead = self.agreed_leader()
            if lead or time.monotonic() > deadline:
                if not lead:
                    raise RuntimeError(f"{self.name}: no leader that every endpoint names")
                return lead
            time.sleep(0.1)

    def wait_ready(self, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(p.poll() is not None for p, _ in self.servers):
                break
            if self.agreed_leader():
                return True
            time.sleep(0.2)
        return False

    def learn_members(self):
        r = self.run(["member", "list", "-w", "json"], at=[self.endpoints[0]])
        if r.exit != 0:
            raise RuntimeError(f"{self.name}: member list failed: {r.stderr}")
        j = json.loads(r.stdout)
        self.cluster_ids.add(j["header"]["cluster_id"])
        for m in j["members"]:
            self.members.add(m["ID"])
            self.peer_urls += m.get("peerURLs", [])

    def logs(self):
        return "".join(f"--- {path}\n{read(path)[-3000:]}" for _, path in self.servers)

    def stop(self):
        for p, _, _ in self.background.values():
            kill(p)
        for p, _ in self.servers:
            kill(p)


def kill(p):
    if p.poll() is None:
        p.kill()
    p.wait()


def read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def start_etcd(s):
    """A single-member etcd on free loopback ports (tried again if a port was taken meanwhile)."""
    tmp = s.tmp
    for attempt in range(3):
        client, peer = free_port(), free_port()
        data = os.path.join(tmp, f"etcd-data-{attempt}")
        log = os.path.join(tmp, f"etcd-{attempt}.log")
        p = s.spawn([ETCD, "--name", "conformance", "--data-dir", data,
                     "--listen-client-urls", f"http://127.0.0.1:{client}",
                     "--advertise-client-urls", f"http://127.0.0.1:{client}",
                     "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                     "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                     "--initial-cluster", f"conformance=http://127.0.0.1:{peer}"], log)
        s.servers = [(p, log)]
        s.endpoints = [f"127.0.0.1:{client}"]
        if s.wait_ready():
            return
        kill(p)
    raise RuntimeError("etcd did not start:\n" + s.logs())


def start_conclave(s):
    """3 conclave masters, each serving etcd's API on any free port (read from its log)."""
    tmp = s.tmp
    peers = ",".join(f"{i}=127.0.0.1:{free_port()}" for i in (1, 2, 3))
    for i in (1, 2, 3):
        log = os.path.join(tmp, f"conclave-{i}.log")
        p = s.spawn([CONCLAVE, "-r", "master", "--id", str(i), "--peers", peers, "--cluster-id", "conformance",
                     "--data-dir", os.path.join(tmp, f"conclave-{i}"), "--client-listen", "127.0.0.1:0"], log)
        s.servers.append((p, log))
    said = re.compile(r"etcd API listening on (\S+)")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [said.search(read(log)) for _, log in s.servers]
        if all(found):
            s.endpoints = [m.group(1) for m in found]
            break
        time.sleep(0.05)
    if not s.endpoints or not s.wait_ready():
        raise RuntimeError("conclave did not start:\n" + s.logs())


# --- templates and normalisation ------------------------------------------------------

TEMPLATE = re.compile(r"\{(\w+)([+-]\d+)?\}")


def fill(system, text):
    def value(m):
        name, delta = m.group(1), int(m.group(2) or 0)
        if name == "tmp":
            return system.tmp
        if name in ("leader_hex", "follower_hex"):
            lead = system.leader()
            ids = [lead[0]] if name == "leader_hex" else sorted(i for i in system.members if i != lead[0])
            return format(ids[0], "x") if ids else "0"
        if name not in system.values:
            raise RuntimeError(f"{system.name}: no {name} captured (the step that captures it failed)")
        v = system.values[name]
        return str(v + delta) if isinstance(v, int) else v
    return TEMPLATE.sub(value, text)


def logical(system, rev):
    """A revision counted from the system's base, leaving out revisions of skipped steps: @N."""
    if not isinstance(rev, int) or rev == 0:
        return rev
    return "@%d" % (rev - system.base - sum(1 for e in system.excluded if e <= rev))


REVISION_FIELDS = {"revision", "create_revision", "mod_revision", "compact_revision", "CompactRevision"}
HIDDEN_FIELDS = {"raft_term": "<term>", "raftTerm": "<term>", "raftIndex": "<index>",
                 "raftAppliedIndex": "<index>", "dbSize": "<size>", "dbSizeInUse": "<size>",
                 "took": "<took>", "ttl": "<ttl>", "name": "<name>"}
BYTES_FIELDS = {"key", "value", "keys"}


def normalise_json(system, v, key=None):
    if isinstance(v, dict):
        return {k: normalise_json(system, x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [normalise_json(system, x, key) for x in v]
    if key in REVISION_FIELDS:
        return logical(system, v)
    if key in HIDDEN_FIELDS or (key == "version" and isinstance(v, str)):
        return HIDDEN_FIELDS.get(key, "<version>")
    if key in BYTES_FIELDS and isinstance(v, str):
        try:
            return base64.b64decode(v, validate=True).decode("utf-8")
        except ValueError:
            return v
    if isinstance(v, int) and not isinstance(v, bool):
        if v in system.members:
            return "<member>"
        if v in system.cluster_ids:
            return "<cluster>"
        if v in system.id_numbers:
            return system.id_numbers[v]
    return v


def normalise_text(system, text):
    for mid in system.members:
        text = re.sub(r"\b%x\b" % mid, "<member>", text)
    for hexid, label in system.id_names.items():
        text = re.sub(r"\b%s\b" % hexid, label, text)
    for url in system.peer_urls:
        text = text.replace(url, "<peer-url>")
    for ep in system.endpoints:
        text = text.replace(ep, "<endpoint>")
    text = text.replace(system.tmp, "<tmp>")
    # A member list line: ID, status, name, peer URLs, client URLs, learner.
    text = re.sub(r"(?m)^(<member>, \w+, )[^,]*,", r"\1<name>,", text)
    text = re.sub(r"took = \S+", "took = <took>", text)
    text = re.sub(r"remaining\(-?\d+s\)", "remaining(<ttl>)", text)
    text = re.sub(r"\b(conf-lock|conf-elect)/[0-9a-f]+", r"\1/<lease>", text)
    text = re.sub(r"(compacted revision |rev=)(\d+)", lambda m: m.group(1) + logical(system, int(m.group(2))), text)
    return text


def normalise_stdout(system, step, text, at):
    if step.own_line:
        own = "http://" + at[0]
        try:
            j = json.loads(text)
            j["members"] = [m for m in j["members"] if own in m.get("clientURLs", [])]
            text = json.dumps(j)
        except ValueError:
            text = "".join(line for line in text.splitlines(True) if own in line)
    lines = []
    for line in text.splitlines():
        if line.startswith("{") or line.startswith("["):
            try:
                line = json.dumps(normalise_json(system, json.loads(line)), sort_keys=True, indent=1)
            except ValueError:
                pass
        lines.append(normalise_text(system, line))
    if step.unique_lines:
        lines = sorted(set(lines))
    return "".join(line + "\n" for line in lines)


def normalise(system, step, res, at):
    """The parts of a result the step compares, as one text."""
    parts = []
    if "exit" in step.compare:
        parts.append(f"exit: {res.exit}")
    if "stdout" in step.compare:
        parts.append("--- stdout\n" + normalise_stdout(system, step, res.stdout, at))
    if "errors" in step.compare:
        # stderr without the client's JSON log lines (their times and ids differ)
        errors = [normalise_text(system, line) for line in res.stderr.splitlines() if not line.startswith("{")]
        if step.unique_lines:
            errors = sorted(set(errors))
        parts.append("--- errors\n" + "".join(e + "\n" for e in errors))
    if "file" in step.compare:
        path = fill(system, step.file)
        size = os.path.getsize(path) if os.path.exists(path) else 0
        parts.append("file: " + ("written" if size > 0 else "missing or empty"))
    return "\n".join(parts)


# --- running steps --------------------------------------------------------------------

def execute(system, step):
    """Runs one step on one system: (its result, the endpoints it used)."""
    at = system.endpoints
    if step.at == "one":
        at = system.endpoints[:1]
    elif step.at == "leader":
        at = [system.leader()[1]]
    args = [fill(system, a) for a in step.args]
    stdin = fill(system, step.stdin) if step.stdin is not None else None
    if step.stop:
        long = system.background.pop(step.stop)
        system.wait_for(long, step.until)
        return system.stop_long(long), at
    if step.background:
        long = system.start_long(args, at)
        system.background[step.background] = long
        return system.wait_for(long, step.until), at
    if step.until:
        long = system.start_long(args, at)
        system.wait_for(long, step.until)
        return system.stop_long(long), at
    return system.run(args, at, stdin), at


def capture(system, step, res):
    """Keeps the values the step names for later steps (a failed capture fails the step)."""
    for name, path in step.revs.items():
        try:
            v = json.loads(res.stdout)
            for k in path.split("."):
                v = v[k]
        except (ValueError, KeyError, TypeError):
            raise RuntimeError(f"{system.name}: no {path} in the output:\n{res.stdout}{res.stderr}")
        system.values[name] = v
    for name, pattern in step.ids.items():
        m = re.search(pattern, res.stdout)
        if not m:
            raise RuntimeError(f"{system.name}: no {name} in the output:\n{res.stdout}{res.stderr}")
        system.values[name] = m.group(1)
        system.id_names[m.group(1)] = f"<{name}>"
        # As a JSON number it has no leading zeros (conclave's ids are small).
        system.id_numbers[int(m.group(1), 16)] = f"<{name}>"


def main():
    missing = [p for p in (ETCD, ETCDCTL) if not os.access(p, os.X_OK)]
    if missing:
        print(f"CONCLAVE-SKIP: no {', '.join(missing)} (Debian's etcd-server and etcd-client)")
        print("[doctest] test cases: 1 | 1 passed | 0 failed | 0 skipped", flush=True)
        return 0
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="etcd-conformance-")
    systems = []
    passed = failed = skipped = 0
    try:
        for name in ("etcd", "conclave"):
            os.mkdir(os.path.join(tmp, name))
            systems.append(System(name, os.path.join(tmp, name)))
        etcd, conclave = systems
        start_etcd(etcd)
        start_conclave(conclave)
        for s in systems:
            s.learn_members()
            s.base = s.revision()
        print(f"etcd at {etcd.endpoints}, conclave at {conclave.endpoints} "
              f"(ready after {time.monotonic() - started:.1f} s)", flush=True)
        for n, step in enumerate(script.STEPS, 1):
            title = f"step {n}: {step.name} " + (f"(etcdctl {' '.join(step.args)})" if step.args else
                                                  f"(stops the {step.stop})")
            unsupported = [m for m in step.methods + step.needs if m not in script.SUPPORTED]
            try:
                outputs = {}
                if not step.only_conclave:
                    before = etcd.revision() if unsupported else None
                    res, at = execute(etcd, step)
                    if unsupported:
                        etcd.excluded += range(before + 1, etcd.revision() + 1)
                    if step.exit is not None and res.exit != step.exit:
                        raise RuntimeError(f"etcd exited {res.exit}, the step expects {step.exit}:\n"
                                           f"{res.stdout}{res.stderr}")
                    capture(etcd, step, res)
                    outputs["etcd"] = normalise(etcd, step, res, at)
                    if VERBOSE:
                        print(f"etcd, {title}:\n{outputs['etcd']}")
                if unsupported:
                    print(f"CONCLAVE-SKIP: {title}: not yet supported: {', '.join(unsupported)}", flush=True)
                    skipped += 1
                    continue
                res, at = execute(conclave, step)
                capture(conclave, step, res)
                outputs["conclave"] = normalise(conclave, step, res, at)
                want = (normalise(conclave, step, Result(step.exit, step.expect, ""), at) if step.only_conclave
                        else outputs["etcd"])
            except RuntimeError as e:
                print(f"[FAIL] {title}: {e}", flush=True)
                failed += 1
                continue
            if outputs["conclave"] == want:
                passed += 1
                print(f"[ok] {title}", flush=True)
            else:
                failed += 1
                diff = difflib.unified_diff(want.splitlines(), outputs["conclave"].splitlines(),
                                            "etcd" if not step.only_conclave else "expected", "conclave",
                                            lineterm="")
                print(f"[FAIL] {title}\n" + "\n".join(diff), flush=True)
    except RuntimeError as e:
        print(f"[FAIL] setup: {e}", flush=True)
        failed += 1
    finally:
        for s in systems:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    total = passed + failed + skipped
    print(f"etcd conformance: {total} steps: {passed} passed, {failed} failed, {skipped} not yet supported by "
          f"conclave (run against etcd only); {time.monotonic() - started:.1f} s", flush=True)
    print(f"[doctest] test cases: {total} | {passed + skipped} passed | {failed} failed | 0 skipped", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
