"""The conformance script: etcdctl 3.4 commands run in this order against
Debian's etcd and against conclave, and what conclave answers so far.

SUPPORTED is the one list to edit as features land: a step runs against
conclave only when every method (or method part) it names is in it; the
other steps run against etcd only and count as skipped. `table.py` prints
README.md's table of etcd v3 methods from this file.

Each step names the methods its command calls and, apart, those it needs
besides: the ones that made the state it reads (a `get` of what a `txn`
wrote needs KV.Txn).
Templates in args and stdin: {NAME} is a value captured by an earlier step
on the same system ({NAME+1}: plus one), {tmp} that system's temporary
directory, {leader_hex} / {follower_hex} its leader's or another member's id.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

# Every etcd v3 gRPC method (etcd 3.4's rpc.proto, v3lock.proto, v3election.proto).
METHODS = [
    "KV.Range", "KV.Put", "KV.DeleteRange", "KV.Txn", "KV.Compact",
    "Watch.Watch",
    "Lease.LeaseGrant", "Lease.LeaseRevoke", "Lease.LeaseKeepAlive", "Lease.LeaseTimeToLive", "Lease.LeaseLeases",
    "Cluster.MemberAdd", "Cluster.MemberRemove", "Cluster.MemberUpdate", "Cluster.MemberList", "Cluster.MemberPromote",
    "Maintenance.Alarm", "Maintenance.Status", "Maintenance.Defragment", "Maintenance.Hash", "Maintenance.HashKV",
    "Maintenance.Snapshot", "Maintenance.MoveLeader",
    "Auth.AuthEnable", "Auth.AuthDisable", "Auth.Authenticate", "Auth.UserAdd", "Auth.UserGet", "Auth.UserList",
    "Auth.UserDelete", "Auth.UserChangePassword", "Auth.UserGrantRole", "Auth.UserRevokeRole", "Auth.RoleAdd",
    "Auth.RoleGet", "Auth.RoleList", "Auth.RoleDelete", "Auth.RoleGrantPermission", "Auth.RoleRevokePermission",
    "Lock.Lock", "Lock.Unlock",
    "Election.Campaign", "Election.Proclaim", "Election.Leader", "Election.Observe", "Election.Resign",
]

# Parts of a method that conclave does not yet answer as etcd does: a step
# that needs one names it like a method ("KV.Range:past-revision").
PARTS = {
    "KV.Range:past-revision": "reads at a past revision",
    "KV.DeleteRange:atomic": "a range of several keys deleted at one revision (conclave: one revision per key)",
    "Cluster.MemberList:client-urls": "every member's client URLs (conclave: only the answering master's)",
}

# What conclave answers as etcd does. Edit this list as features land.
SUPPORTED = {
    "KV.Range", "KV.Put", "KV.DeleteRange", "KV.Txn", "KV.Compact", "KV.Range:past-revision", "KV.DeleteRange:atomic",
    "Watch.Watch", "Maintenance.Alarm", "Maintenance.Defragment",
    "Lease.LeaseGrant", "Lease.LeaseRevoke", "Lease.LeaseKeepAlive", "Lease.LeaseTimeToLive", "Lease.LeaseLeases",
    "Maintenance.Status", "Maintenance.MoveLeader", "Cluster.MemberList:client-urls",
    "Cluster.MemberAdd", "Cluster.MemberRemove", "Cluster.MemberPromote", "Maintenance.Snapshot",
    "Lock.Lock", "Lock.Unlock", "Election.Campaign", "Election.Proclaim", "Election.Leader", "Election.Observe",
    "Election.Resign", "Auth.Authenticate", "Maintenance.Hash", "Maintenance.HashKV",
    "Cluster.MemberList",
}

# etcdctl 3.4 builds `lock` and `elect` from these (clientv3/concurrency), not
# from the Lock and Election services.
MUTEX = ["Lease.LeaseGrant", "Lease.LeaseKeepAlive", "Lease.LeaseRevoke", "KV.Txn", "KV.Range", "KV.DeleteRange",
         "Watch.Watch"]
LEASE = ["Lease.LeaseGrant", "KV.Put"]           # a lease granted, a key put with it
REVOKED = LEASE + ["Lease.LeaseRevoke"]


@dataclass
class Step:
    name: str                     # the rule it checks: the test case's name
    methods: List[str]            # etcd v3 methods (and parts) its command calls
    args: List[str]               # etcdctl arguments (API 3)
    needs: List[str] = field(default_factory=list)  # methods that made the state it reads
    stdin: Optional[str] = None   # for `txn`
    exit: Optional[int] = 0       # etcd's exit code (checks the script itself); None: not checked
    compare: Tuple[str, ...] = ("exit", "stdout", "errors")  # "file": {file} written, non-empty
    file: Optional[str] = None
    at: str = "all"               # endpoints: all, leader, or one (the first)
    own_line: bool = False        # keep only the output lines naming the endpoint asked
    unique_lines: bool = False    # one line per distinct normalised line (one per endpoint)
    revs: Dict[str, str] = field(default_factory=dict)  # NAME: dotted JSON path of a revision in stdout
    ids: Dict[str, str] = field(default_factory=dict)   # NAME: regex (one group) of an id in stdout, shown as <NAME>
    until: Optional[str] = None   # a long-running command: stopped once stdout holds this
    background: Optional[str] = None  # keep it running under this name (after `until`, if given)
    stop: Optional[str] = None    # stop the background command of this name (after `until`): its whole output
    only_conclave: bool = False   # etcd cannot run it (one member): conclave must exit `exit` and print `expect`
    expect: Optional[str] = None  # (normalised), with no error


def txn(*lines):
    return "\n".join(lines) + "\n"


STEPS = [
    # --- KV: put, get, del -------------------------------------------------------------
    # (etcdctl 3.4 has no --count-only, nor the min/max revision filters: etcd_api_test
    # covers them through gRPC.)
    Step("put a new key", ["KV.Put"], ["put", "kv/a", "1"]),
    Step("put over a key: the header's revision is the next one", ["KV.Put"], ["put", "kv/a", "2", "-w", "json"]),
    Step("put more keys", ["KV.Put"], ["put", "kv/b", "10"]),
    Step("put a third key", ["KV.Put"], ["put", "kv/c", "3"]),
    Step("put a fourth key", ["KV.Put"], ["put", "kv/d", "20"]),
    Step("put a key beside the prefix", ["KV.Put"], ["put", "kw", "99", "-w", "json"], revs={"r_kw": "header.revision"}),
    Step("get one key", ["KV.Range"], ["get", "kv/a"]),
    Step("get one key as JSON: create and mod revision, version", ["KV.Range"], ["get", "kv/a", "-w", "json"]),
    Step("get a missing key: nothing, exit 0", ["KV.Range"], ["get", "kv/none"]),
    Step("get --prefix", ["KV.Range"], ["get", "--prefix", "kv/"]),
    Step("get --prefix --keys-only", ["KV.Range"], ["get", "--prefix", "kv/", "--keys-only"]),
    Step("get --prefix --print-value-only", ["KV.Range"], ["get", "--prefix", "kv/", "--print-value-only"]),
    Step("get --prefix --limit: more and count", ["KV.Range"], ["get", "--prefix", "kv/", "--limit", "2", "-w", "json"]),
    Step("get --prefix --keys-only as JSON: no values", ["KV.Range"],
         ["get", "--prefix", "kv/", "--keys-only", "-w", "json"]),
    Step("get KEY RANGE_END: the half-open range", ["KV.Range"], ["get", "kv/a", "kv/c"]),
    Step("get --from-key", ["KV.Range"], ["get", "--from-key", "kv/c"]),
    Step("get --sort-by VALUE --order DESCEND: bytes order", ["KV.Range"],
         ["get", "--prefix", "kv/", "--sort-by", "VALUE", "--order", "DESCEND"]),
    Step("get --sort-by MODIFY --order DESCEND", ["KV.Range"],
         ["get", "--prefix", "kv/", "--sort-by", "MODIFY", "--order", "DESCEND", "--keys-only"]),
    Step("get --sort-by CREATE", ["KV.Range"], ["get", "--prefix", "kv/", "--sort-by", "CREATE", "--keys-only"]),
    Step("get --sort-by VERSION", ["KV.Range"], ["get", "kv/a", "kv/c", "--sort-by", "VERSION", "--keys-only"]),
    Step("get --sort-by KEY --order DESCEND", ["KV.Range"],
         ["get", "--prefix", "kv/", "--sort-by", "KEY", "--order", "DESCEND", "--keys-only"]),
    Step("get --order DESCEND alone sorts by key", ["KV.Range"], ["get", "--prefix", "kv/", "--order", "DESCEND"]),
    Step("get --limit with --sort-by: the first after sorting", ["KV.Range"],
         ["get", "--prefix", "kv/", "--sort-by", "VALUE", "--limit", "1"]),
    Step("get --rev at the current revision", ["KV.Range"], ["get", "--prefix", "kv/", "--rev", "{r_kw}"]),
    Step("get --rev at a past revision: the keys as they were", ["KV.Range", "KV.Range:past-revision"],
         ["get", "--prefix", "kv/", "--rev", "{r_kw-2}", "-w", "json"]),
    Step("get --consistency s (serializable) at the leader", ["KV.Range"], ["get", "kv/a", "--consistency", "s"],
         at="leader"),
    Step("put --prev-kv: the value replaced", ["KV.Put"], ["put", "kv/a", "3", "--prev-kv"]),
    Step("put --prev-kv of a new key: no previous", ["KV.Put"], ["put", "kv/e", "5", "--prev-kv"]),
    Step("put --ignore-value: keeps the value, a new version", ["KV.Put"], ["put", "kv/b", "--ignore-value"]),
    Step("get after put --ignore-value", ["KV.Range"], ["get", "kv/b", "-w", "json"]),
    Step("put --ignore-value of a missing key: key not found", ["KV.Put"],
         ["put", "kv/none", "--ignore-value"], exit=1),
    Step("put --ignore-lease of a missing key: key not found", ["KV.Put"],
         ["put", "kv/none", "v", "--ignore-lease"], exit=1),
    Step("del a key: deleted 1", ["KV.DeleteRange"], ["del", "kv/d"]),
    Step("del it again: deleted 0", ["KV.DeleteRange"], ["del", "kv/d"]),
    Step("del --prev-kv", ["KV.DeleteRange"], ["del", "kv/c", "--prev-kv"]),
    Step("del as JSON: the header's revision", ["KV.DeleteRange"], ["del", "kv/e", "-w", "json"]),
    Step("del --prefix of one key", ["KV.DeleteRange"], ["del", "--prefix", "kv/b", "--prev-kv"]),
    Step("get after the deletes", ["KV.Range"], ["get", "--prefix", "kv/", "-w", "json"]),
    # A step conclave skips leaves its keys there: no later step reads m/ or z/.
    Step("put keys to delete by range", ["KV.Put"], ["put", "m/1", "a"]),
    Step("put a second key to delete by range", ["KV.Put"], ["put", "m/2", "b"]),
    Step("put a third key to delete by range", ["KV.Put"], ["put", "m/3", "c"]),
    Step("del --prefix of several keys, at one revision", ["KV.DeleteRange", "KV.DeleteRange:atomic"],
         ["del", "--prefix", "m/", "--prev-kv", "-w", "json"]),
    Step("put the last keys (no later key sorts after z/)", ["KV.Put"], ["put", "z/1", "a"]),
    Step("put a second last key", ["KV.Put"], ["put", "z/2", "b"]),
    Step("del --from-key of the last key", ["KV.DeleteRange"], ["del", "--from-key", "z/2", "--prev-kv"]),
    Step("put a third last key", ["KV.Put"], ["put", "z/3", "c"]),
    Step("del --from-key of several keys, at one revision", ["KV.DeleteRange", "KV.DeleteRange:atomic"],
         ["del", "--from-key", "z/", "-w", "json"]),
    Step("del KEY RANGE_END of no key: deleted 0", ["KV.DeleteRange"], ["del", "kv/x", "kv/y"]),

    # --- errors -----------------------------------------------------------------------
    Step("get of the empty key: key is not provided", ["KV.Range"], ["get", ""], exit=1),
    Step("put of the empty key: key is not provided", ["KV.Put"], ["put", "", "v"], exit=1),
    Step("del of the empty key: key is not provided", ["KV.DeleteRange"], ["del", ""], exit=1),
    Step("put with an unknown lease: requested lease not found", ["KV.Put"],
         ["put", "kv/a", "v", "--lease", "1234"], exit=1),
    Step("get --rev far in the future: required revision is a future revision", ["KV.Range"],
         ["get", "kv/a", "--rev", "100000"], exit=1),

    # --- txn --------------------------------------------------------------------------
    Step("put a key for transactions", ["KV.Put"], ["put", "t/a", "1"]),
    Step("txn: value compare true, then put and get", ["KV.Txn"], ["txn"],
         stdin=txn('value("t/a") = "1"', "", "put t/b yes", "get t/a", "", "put t/b no", "")),
    Step("txn: version compare false, else del and get", ["KV.Txn"], ["txn"],
         stdin=txn('version("t/a") = "2"', "", "put t/c then", "", "del t/b", "get t/b", "")),
    Step("txn as JSON: mod and create compares, the responses' revisions", ["KV.Txn"], ["txn", "-w", "json"],
         stdin=txn('mod("t/a") > "0"', 'create("t/a") < "100000"', "", "put t/c x", "get --prefix t/", "", "")),
    Step("txn: != and several compares, one false", ["KV.Txn"], ["txn"],
         stdin=txn('value("t/a") != "1"', 'version("t/c") = "1"', "", "put t/d then", "",
                   "put t/d else", "del t/c --prev-kv", "")),
    Step("get what the transactions wrote", ["KV.Range"], ["get", "--prefix", "t/", "-w", "json"], needs=["KV.Txn"]),

    # --- watch ------------------------------------------------------------------------
    Step("put a key to watch", ["KV.Put"], ["put", "w/a", "1", "-w", "json"], revs={"r_w": "header.revision"}),
    Step("put a second key to watch", ["KV.Put"], ["put", "w/b", "2"]),
    Step("delete a watched key", ["KV.DeleteRange"], ["del", "w/a"]),
    Step("put the watched key again", ["KV.Put"], ["put", "w/a", "3"]),
    Step("put the last watched key", ["KV.Put"], ["put", "w/end", "end", "-w", "json"],
         revs={"r_wend": "header.revision"}),
    Step("watch --prefix --rev from a past revision: every event since, in order", ["Watch.Watch"],
         ["watch", "--prefix", "w/", "--rev", "{r_w}"], until="w/end\nend\n", exit=None),
    Step("watch --prefix --rev --prev-kv", ["Watch.Watch"],
         ["watch", "--prefix", "w/", "--rev", "{r_w}", "--prev-kv"], until="w/end\nend\n", exit=None),
    Step("watch one key from a past revision", ["Watch.Watch"], ["watch", "w/a", "--rev", "{r_w}"],
         until="PUT\nw/a\n3\n", exit=None),
    Step("watch --prefix from the next revision, started before the writes", ["Watch.Watch"],
         ["watch", "--prefix", "w2/", "--rev", "{r_wend+1}"], background="watch", exit=None),
    Step("put under a watch", ["KV.Put"], ["put", "w2/a", "1"]),
    Step("put under a watch again", ["KV.Put"], ["put", "w2/a", "2"]),
    Step("delete under a watch", ["KV.DeleteRange"], ["del", "w2/a"]),
    Step("the watch started before the writes printed each", ["Watch.Watch"], [],
         stop="watch", until="DELETE\nw2/a\n", exit=None),

    # --- leases -----------------------------------------------------------------------
    Step("lease grant", ["Lease.LeaseGrant"], ["lease", "grant", "600"],
         ids={"lease1": r"lease ([0-9a-f]+) granted"}),
    Step("put --lease", ["KV.Put"], ["put", "l/a", "1", "--lease", "{lease1}"], needs=LEASE),
    Step("get a key with a lease", ["KV.Range"], ["get", "l/a", "-w", "json"], needs=LEASE),
    Step("put --ignore-lease keeps the lease", ["KV.Put"], ["put", "l/a", "2", "--ignore-lease"], needs=LEASE),
    Step("get after put --ignore-lease", ["KV.Range"], ["get", "l/a", "-w", "json"], needs=LEASE),
    Step("put --ignore-lease with a lease given: lease is provided", ["KV.Put"],
         ["put", "l/a", "3", "--ignore-lease", "--lease", "1234"], exit=1),
    Step("lease keep-alive --once", ["Lease.LeaseKeepAlive"], ["lease", "keep-alive", "--once", "{lease1}"],
         needs=LEASE),
    Step("lease timetolive --keys", ["Lease.LeaseTimeToLive"], ["lease", "timetolive", "{lease1}", "--keys"],
         needs=LEASE),
    Step("lease timetolive --keys as JSON", ["Lease.LeaseTimeToLive"],
         ["lease", "timetolive", "{lease1}", "--keys", "-w", "json"], needs=LEASE),
    Step("lease list", ["Lease.LeaseLeases"], ["lease", "list"], needs=LEASE),
    Step("lease revoke", ["Lease.LeaseRevoke"], ["lease", "revoke", "{lease1}"], needs=LEASE),
    Step("a revoked lease's keys are gone", ["KV.Range"], ["get", "--prefix", "l/"], needs=REVOKED),
    Step("lease timetolive of a revoked lease: already expired", ["Lease.LeaseTimeToLive"],
         ["lease", "timetolive", "{lease1}"], needs=REVOKED),
    Step("lease revoke again: requested lease not found", ["Lease.LeaseRevoke"], ["lease", "revoke", "{lease1}"],
         exit=1, needs=REVOKED),
    Step("lease list with none left", ["Lease.LeaseLeases"], ["lease", "list"], needs=REVOKED),

    # --- lock and elect (etcdctl builds them from KV, Watch and Lease) ------------------
    Step("lock NAME -- CMD runs CMD holding the lock", MUTEX, ["lock", "conf-lock", "--", "echo", "held"]),
    Step("lock NAME -- CMD: the lock's key and revision in CMD's environment", MUTEX,
         ["lock", "conf-lock", "--", "sh", "-c", "echo $ETCD_LOCK_KEY rev=$ETCD_LOCK_REV"]),
    Step("the lock is released after CMD", ["KV.Range"], ["get", "--prefix", "conf-lock"], needs=MUTEX),
    Step("elect: a campaign wins and prints its proposal", MUTEX, ["elect", "conf-elect", "cand1"],
         background="campaign", until="cand1\n", exit=None),
    Step("elect -l: the leader's proposal", MUTEX, ["elect", "-l", "conf-elect"], until="cand1\n", exit=None),
    Step("the campaign's key", ["KV.Range"], ["get", "--prefix", "conf-elect", "--keys-only"], needs=MUTEX),
    Step("a stopped campaign resigns", MUTEX, [], stop="campaign", exit=None),
    Step("no campaign's key is left", ["KV.Range"], ["get", "--prefix", "conf-elect"], needs=MUTEX),

    # --- compaction -------------------------------------------------------------------
    Step("put a key to compact", ["KV.Put"], ["put", "c/a", "1", "-w", "json"], revs={"r_c1": "header.revision"}),
    Step("put it again", ["KV.Put"], ["put", "c/a", "2", "-w", "json"], revs={"r_c2": "header.revision"}),
    Step("put it a third time", ["KV.Put"], ["put", "c/a", "3"]),
    Step("compaction", ["KV.Compact"], ["compaction", "{r_c2}"]),
    Step("get --rev of a compacted revision: required revision has been compacted", ["KV.Range"],
         ["get", "c/a", "--rev", "{r_c1}"], exit=1, needs=["KV.Compact"]),
    Step("get --rev of the compaction's revision", ["KV.Range", "KV.Range:past-revision"],
         ["get", "c/a", "--rev", "{r_c2}"], needs=["KV.Compact"]),
    Step("watch from a compacted revision: canceled", ["Watch.Watch"],
         ["watch", "c/a", "--rev", "{r_c1}"], exit=5, needs=["KV.Compact"]),
    Step("compaction of a compacted revision: required revision has been compacted", ["KV.Compact"],
         ["compaction", "{r_c1}"], exit=1),
    Step("compaction of a future revision: required revision is a future revision", ["KV.Compact"],
         ["compaction", "100000"], exit=1),

    # --- cluster and maintenance ------------------------------------------------------
    Step("member list: the answering member's own entry", ["Cluster.MemberList"], ["member", "list"],
         at="one", own_line=True),
    Step("member list: every member's entry, with client URLs", ["Cluster.MemberList",
                                                                  "Cluster.MemberList:client-urls"],
         ["member", "list"], unique_lines=True),
    Step("member list as JSON: the answering member", ["Cluster.MemberList"], ["member", "list", "-w", "json"],
         at="one", own_line=True),
    Step("endpoint status as JSON at the leader", ["Maintenance.Status"], ["endpoint", "status", "-w", "json"],
         at="leader"),
    Step("endpoint health of every endpoint", ["KV.Range"], ["endpoint", "health"], unique_lines=True),
    Step("alarm list: none", ["Maintenance.Alarm"], ["alarm", "list"]),
    Step("defrag", ["Maintenance.Defragment"], ["defrag"], unique_lines=True),
    Step("snapshot save writes a file", ["Maintenance.Snapshot"], ["snapshot", "save", "{tmp}/snapshot.db"],
         compare=("exit", "file"), file="{tmp}/snapshot.db", at="one"),  # etcdctl asks one member
    Step("move-leader of an unknown member: bad leader transferee", ["Maintenance.Status", "Maintenance.MoveLeader"],
         ["move-leader", "1234"], exit=1),
    Step("move-leader to the leader itself", ["Maintenance.Status", "Maintenance.MoveLeader"],
         ["move-leader", "{leader_hex}"]),
    Step("move-leader to another member (3 members: conclave only)", ["Maintenance.Status", "Maintenance.MoveLeader"],
         ["move-leader", "{follower_hex}"], only_conclave=True,
         expect="Leadership transferred from <member> to <member>\n"),
    Step("endpoint status after move-leader names the new leader", ["Maintenance.Status"],
         ["endpoint", "status", "-w", "json"], at="leader", needs=["Maintenance.MoveLeader"]),
]
