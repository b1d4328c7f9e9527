#!/usr/bin/python3
"""Wire check of conclave's etcd .proto files (schema/etcd) against the
message definitions python3-etcd3 (Debian's etcd client, run under
/usr/bin/python3) was generated from.

For each service python3-etcd3 declares, each of its methods must be in
rpc.proto with the same request and response types and streaming (the gRPC
path and framing), and every message its methods send or receive (and every
message those contain) is filled by python3-etcd3's generated code with a
distinct non-default value in every field, once per member of each oneof
and once per non-zero value of each enum field. The
bytes are decoded by `protoc --decode` against conclave's protos; the text
must be exactly what python3-etcd3 prints for the same message: every field
known by the same name and number (an unknown one prints as a bare number),
with the same type and value, and every enum value by the same name.

Usage: proto_wire_check.py PROTOC SCHEMA_DIR. One case per service, then
the doctest-style summary run_tests.py counts; a case that cannot run here
prints "CONCLAVE-SKIP: reason" (counted as passed in the summary, as doctest
does, and moved to skipped by run_tests.py). Exit status 1 if a case failed.
"""
import re
import subprocess
import sys

try:
    from etcd3.etcdrpc import auth_pb2, kv_pb2, rpc_pb2
    from google.protobuf import descriptor_pb2, text_format
    from google.protobuf.descriptor import FieldDescriptor as FD
    MISSING = None
except ImportError as e:
    MISSING = str(e)

# Services of etcd's v3 API that python3-etcd3 has no definitions of: one
# skipped case each.
OTHER_SERVICES = ["v3lockpb.Lock", "v3electionpb.Election"]

BARE_NUMBER = re.compile(r"^\s*\d+\s*[:{]", re.MULTILINE)


class Filler:
    """Gives each scalar a distinct value, so two fields swapped are noticed."""

    def __init__(self):
        self.n = 0

    def value(self, field):
        self.n += 1
        t = field.type
        if t in (FD.TYPE_INT64, FD.TYPE_INT32, FD.TYPE_SINT64, FD.TYPE_SINT32,
                 FD.TYPE_SFIXED64, FD.TYPE_SFIXED32):
            # Negative, so a signed field read as unsigned (or zigzag) differs.
            return -(1000 + self.n)
        if t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
            return (1 << 63) + self.n  # past int64: read as signed, it differs
        if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
            return (1 << 31) + self.n
        if t == FD.TYPE_BOOL:
            return True
        if t == FD.TYPE_STRING:
            return "%s-%d" % (field.name, self.n)
        if t == FD.TYPE_BYTES:
            return b"\x00\xff" + field.name.encode() + b"-%d" % self.n
        if t in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
            return 0.5 + self.n
        if t == FD.TYPE_ENUM:
            return field.enum_type.values[-1].number
        raise ValueError("field type %d of %s" % (t, field.full_name))


def fill(msg, filler, depth, choice=None):
    """Sets every field of msg to non-default values: of each oneof only the
    member choice names (by oneof name; default its first), an enum field to
    the value choice gives (by field full name; default its last). Nested
    messages are filled to depth levels (TxnRequest contains itself)."""
    choice = choice or {}
    for field in msg.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if oneof is not None and field is not choice.get(oneof.name, oneof.fields[0]):
            continue
        repeated = field.label == FD.LABEL_REPEATED
        if field.type == FD.TYPE_MESSAGE:
            if depth == 0:
                continue
            for _ in range(2 if repeated else 1):
                child = getattr(msg, field.name).add() if repeated else getattr(msg, field.name)
                fill(child, filler, depth - 1)
                if not repeated:
                    child.SetInParent()  # sent even when empty (WatchProgressRequest)
        elif repeated and field.type == FD.TYPE_ENUM:
            getattr(msg, field.name).extend(v.number for v in field.enum_type.values)
        elif repeated:
            getattr(msg, field.name).extend([filler.value(field), filler.value(field)])
        elif field.full_name in choice:
            setattr(msg, field.name, choice[field.full_name])
        else:
            setattr(msg, field.name, filler.value(field))


def variants(cls):
    """The filled messages of one type: once per oneof member, once per
    non-zero value of each singular enum field."""
    desc = cls.DESCRIPTOR
    choices = [{o.name: f} for o in desc.oneofs for f in o.fields] or [{}]
    for field in desc.fields:
        if field.type == FD.TYPE_ENUM and field.label != FD.LABEL_REPEATED:
            for v in field.enum_type.values:
                if v.number == 0:
                    continue  # proto3 does not send the default
                choice = {field.full_name: v.number}
                if field.containing_oneof is not None:
                    choice[field.containing_oneof.name] = field
                choices.append(choice)
    out = []
    for choice in choices:
        m = cls()
        fill(m, Filler(), 3, choice)
        out.append(m)
    return out


def reachable(desc, seen):
    """desc and every message type its fields contain, recursively."""
    if desc.full_name in seen:
        return
    seen[desc.full_name] = desc
    for field in desc.fields:
        if field.type == FD.TYPE_MESSAGE:
            reachable(field.message_type, seen)


def protoc_decode(protoc, schema, proto, full_name, data):
    run = subprocess.run([protoc, "--decode=" + full_name, "-I", schema, schema + "/" + proto],
                         input=data, capture_output=True)
    if run.returncode != 0:
        return None, run.stderr.decode(errors="replace").strip()
    return run.stdout.decode(errors="replace"), None


def methods(file_proto):
    """{service name: {method name: (input, output, client streams, server streams)}}"""
    return {s.name: {m.name: (m.input_type, m.output_type, m.client_streaming, m.server_streaming)
                     for m in s.method}
            for s in file_proto.service}


def our_methods(protoc, schema):
    """The services of schema/etcd/rpc.proto, as methods() gives them."""
    run = subprocess.run([protoc, "-I", schema, "--descriptor_set_out=/dev/stdout", schema + "/rpc.proto"],
                         capture_output=True, check=True)
    files = descriptor_pb2.FileDescriptorSet.FromString(run.stdout)
    return methods(files.file[0])


def check_service(protoc, schema, service, message_class, ours):
    """The failures of one service (its methods, then every message they carry);
    [] when all hold. ours: our_methods()."""
    theirs = methods(descriptor_pb2.FileDescriptorProto.FromString(rpc_pb2.DESCRIPTOR.serialized_pb))
    failures = []
    for name, signature in sorted(theirs[service.name].items()):
        mine = ours.get(service.name, {}).get(name)
        if mine != signature:
            failures.append("method %s.%s: (request, response, client streams, server streams) is %s "
                            "in python3-etcd3, %s in rpc.proto" % (service.name, name, signature, mine))
    seen = {}
    for method in service.methods:
        reachable(method.input_type, seen)
        reachable(method.output_type, seen)
    count = 0
    for name in sorted(seen):
        for msg in variants(message_class(seen[name])):
            count += 1
            want = text_format.MessageToString(msg)
            got, err = protoc_decode(protoc, schema, "rpc.proto", name, msg.SerializeToString())
            if err is not None:
                failures.append("%s: protoc --decode failed: %s" % (name, err))
            elif BARE_NUMBER.search(got):
                failures.append("%s: fields conclave's proto does not know:\n%s" % (name, got))
            elif got != want:
                failures.append("%s: decoded as\n%s\nbut python3-etcd3 sent\n%s" % (name, got, want))
    return failures, count, len(seen)


def main():
    protoc, schema = sys.argv[1], sys.argv[2]
    passed = failed = 0

    def case(name, result):
        nonlocal passed, failed
        print("[case] " + name)
        if isinstance(result, str):
            print("CONCLAVE-SKIP: " + result)
            passed += 1
        elif result:
            failed += 1
            for f in result:
                print("FAIL " + f)
        else:
            passed += 1

    if MISSING is not None:
        case("python3-etcd3's messages decode field by field against schema/etcd",
             "no python3-etcd3 under %s (%s)" % (sys.executable, MISSING))
    else:
        modules = {"etcdserverpb": rpc_pb2, "mvccpb": kv_pb2, "authpb": auth_pb2}

        def message_class(desc):
            # A nested type is an attribute of its parent's class.
            outer = desc
            path = []
            while outer is not None:
                path.insert(0, outer.name)
                outer = outer.containing_type
            cls = modules[desc.file.package]
            for part in path:
                cls = getattr(cls, part)
            return cls

        ours = our_methods(protoc, schema)
        for name, service in sorted(rpc_pb2.DESCRIPTOR.services_by_name.items()):
            failures, count, types = check_service(protoc, schema, service, message_class, ours)
            print("etcdserverpb.%s: %d methods, %d messages of %d types" % (name, len(service.methods), count, types))
            case("etcdserverpb.%s: the same methods, and python3-etcd3's messages decode field by field" % name,
                 failures)
        for full_name in sorted(OTHER_SERVICES):
            case("%s: python3-etcd3's messages decode field by field" % full_name,
                 "python3-etcd3 has no definition of %s" % full_name)

    total = passed + failed
    print("[doctest] test cases: %d | %d passed | %d failed | 0 skipped" % (total, passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
