#!/usr/bin/env python3
"""Writes the seed corpora of the phoenix targets from conformance traffic.

The frames are the ones docs/protocol.md records from realtime-js probes and the ones
crates/rollcall-server/tests/raw_frames.rs sends. Run from the repository root:
`python3 fuzz/seeds/gen_phoenix.py`. File names are the content's sha1, as libFuzzer names them.
"""
import hashlib, json, os

def v2(jr, r, topic, event, payload):
    return json.dumps([jr, r, topic, event, payload], separators=(",", ":"))

def v1(jr, r, topic, event, payload):
    obj = {"topic": topic, "event": event, "payload": payload, "ref": r}
    if jr is not None:
        obj["join_ref"] = jr
    return json.dumps(obj, separators=(",", ":"))

JOIN_DEFAULT = {"config": {"broadcast": {"ack": False, "self": False},
                           "presence": {"key": "", "enabled": False},
                           "postgres_changes": [], "private": False},
                "access_token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"}
JOIN_PAYLOADS = [
    JOIN_DEFAULT,
    {},
    {"config": {}},
    {"config": {"presence": {"key": "alice", "enabled": True}}},
    {"config": {"presence": {"enabled": "TRUE", "key": 42}}, "user_token": "t"},
    {"config": {"broadcast": {"self": True}}},
    {"config": {"broadcast": {"ack": "true", "self": "false", "replay": {"since": 1, "limit": 5}},
                "private": True}},
    {"config": {"postgres_changes": [{"event": "*", "schema": "public"}]}},
    {"config": {"presence": {"key": True}, "private": "yes"}, "access_token": None},
    {"config": None, "access_token": "sb_publishable_x"},
    {"config": {"broadcast": [], "presence": 1, "postgres_changes": {}}},
]
PRESENCE_PAYLOADS = [
    {"type": "presence", "event": "track", "payload": {"a": 1}},
    {"type": "presence", "event": "track", "payload": {"user": "alice", "online_at": "2024-01-01T00:00:00Z"}},
    {"type": "presence", "event": "track", "payload": [1]},
    {"type": "presence", "event": "track", "payload": {"blob": "x" * 100}},
    {"type": "presence", "event": "untrack"},
    {"type": "presence", "event": "update", "payload": {}},
    {"type": "presence"},
    {"event": "track", "payload": {"s": 1}},
]
BROADCAST_PAYLOADS = [
    {"type": "broadcast", "event": "e", "payload": {"v": 1}},
    {"type": "broadcast", "event": "hello", "payload": {"msg": "hi"}},
    {"type": "broadcast", "event": "cursor", "payload": {"x": 1.5, "y": -2e3}, "meta": {"persist": True}},
    {"type": "broadcast", "event": 7},
    {"type": "broadcast"},
]
OTHER = [
    ("phoenix", "heartbeat", {}),
    ("realtime:room1", "phx_leave", {}),
    ("realtime:room1", "access_token", {"access_token": "eyJ.x.y"}),
    ("realtime:room1", "access_token", {"access_token": None}),
    ("realtime:r", "dance", {}),
    ("foo:bar", "phx_join", {}),
    ("realtime:", "phx_join", {}),
    ("realtime:room1", "phx_reply", {"status": "ok", "response": {"postgres_changes": []}}),
    ("realtime:room1", "presence_state", {"alice": {"metas": [{"phx_ref": "F1", "a": 1}]}}),
    ("realtime:room1", "presence_diff", {"joins": {}, "leaves": {"bob": {"metas": [{"phx_ref": "F2"}]}}}),
    ("realtime:room1", "system", {"status": "error", "message": "Track message size exceeded",
                                  "extension": "system", "channel": "room1"}),
    ("realtime:room1", "phx_close", {}),
]

def text_frames():
    frames = []
    for i, p in enumerate(JOIN_PAYLOADS):
        frames.append(("realtime:room%d" % (i % 3), "phx_join", p))
    for p in PRESENCE_PAYLOADS:
        frames.append(("realtime:room1", "presence", p))
    for p in BROADCAST_PAYLOADS:
        frames.append(("realtime:room1", "broadcast", p))
    frames.extend(OTHER)
    return frames

def binary_frames():
    def kind3(jr, r, topic, event, meta, enc, body):
        head = bytes([3, len(jr), len(r), len(topic), len(event), len(meta), enc])
        return head + jr + r + topic + event + meta + body
    def kind4(topic, event, meta, enc, body):
        return bytes([4, len(topic), len(event), len(meta), enc]) + topic + event + meta + body
    def kind0(jr, r, topic, event, body):
        return bytes([0, len(jr), len(r), len(topic), len(event)]) + jr + r + topic + event + body
    return [
        kind3(b"6", b"8", b"realtime:room1", b"hello", b"", 1, b'{"msg":"hi"}'),
        kind3(b"6", b"9", b"realtime:room1", b"cursor", b'{"persist":true}', 1, b'{"x":1,"y":2}'),
        kind3(b"", b"", b"te", b"e", b"", 0, b"\x00\x01\xff"),
        kind3(b"1", b"2", b"realtime:r", b"", b"", 1, b"[[[]]]"),
        kind3(b"1", b"2", b"realtime:r", b"e", b"[]", 1, b"not json"),
        kind4(b"realtime:room1", b"hello", b"", 1, b'{"msg":"hi"}'),
        kind4(b"realtime:room1", b"bin", b"", 0, b"\xde\xad\xbe\xef"),
        kind4(b"t", b"e", b'{"persist":true}', 1, b"{}"),
        kind0(b"1", b"1", b"realtime:room1", b"broadcast", b"\x01\x02"),
        kind0(b"", b"", b"", b"", b""),
        bytes([1, 0, 0, 0]), bytes([2, 1, 1, 1, 1]) + b"abcd", bytes([3]), bytes([4, 1, 1, 0, 1]),
        b"\x03\x01\x01\x0e\x05\x00\x01",
    ]

def write(target, items):
    d = os.path.join("fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    for item in items:
        data = item if isinstance(item, bytes) else item.encode()
        with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)

frames = text_frames()
write("decode_v2", [v2("1", str(i), t, e, p) for i, (t, e, p) in enumerate(frames)]
      + [v2(None, "7", "phoenix", "heartbeat", {}), "[1,2.5e3,\"t\",\"e\",[[[[]]]]]", "[]",
         "[null,null,null,null,null]", "{\"topic\":\"phoenix\"}"])
write("decode_v1", [v1("1" if i % 2 else None, str(i), t, e, p) for i, (t, e, p) in enumerate(frames)]
      + ['{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"10"}',
         '{"topic":"t","event":"e","payload":{},"ref":null,"join_ref":null}',
         '["1","1","phoenix","heartbeat",{}]', '{}'])
write("decode_binary", binary_frames())
write("join_config", [json.dumps(p) for p in JOIN_PAYLOADS + PRESENCE_PAYLOADS + BROADCAST_PAYLOADS]
      + ['{"access_token":"a","access_token":"b"}', '{"config":{"presence":{"key":""}}}',
         '[]', 'null', '"x"', '{"config":{"presence":{"key":{"a":1}}}}'])
