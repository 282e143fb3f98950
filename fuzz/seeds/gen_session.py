#!/usr/bin/env python3
"""Writes the seed corpus of the `session` target: conformance scenarios (docs/realtime-spec.md §9,
tests/realtime-js, crates/rollcall-server/tests/raw_frames.rs) spelled in the op encoding
`rollcall_server::fuzzing` reads. Run from the repository root:
`python3 fuzz/seeds/gen_session.py`.

Each op is [socket, opcode, fields...]; opcodes (mod 12): 0 open(vsn flag: odd = v2),
2 close, 3 join(topic, key, enabled, ack, self, refusal), 4 leave(topic),
5 track(topic, meta...), 6 untrack(topic), 7 heartbeat, 8 broadcast(topic, binary, n),
9 garbage(binary, len, bytes), 10 tick(expire if 0 mod 8 else step byte).
Topics: 0..2 realtime:room0..2, 5 "realtime:", 6 "room1", 7 a 309-byte topic.
Keys: 0 none, 1 "", 2..5 alice/bob/carol/dave, 6 the number 42.
Metas: 0 {}, 1 {"n","s"} (n, len, chars), 3 {"pad": "x"*len}, 4 non-object (choice).
"""
import hashlib, os

def open_(s, v2=True): return [s, 0, 1 if v2 else 0]
def close(s): return [s, 2]
def join(s, topic=1, key=2, enabled=1, ack=0, self_=0, refusal=0):
    return [s, 3, topic, key, enabled, ack, self_, refusal]
def leave(s, topic=1): return [s, 4, topic]
def track(s, topic=1, n=1, chars=b""): return [s, 5, topic, 1, n, len(chars)] + list(chars)
def track_empty(s, topic=1): return [s, 5, topic, 0]
def track_pad(s, topic=1, n=10): return [s, 5, topic, 3, n]
def track_bad(s, topic=1, which=0): return [s, 5, topic, 4, which]
def untrack(s, topic=1): return [s, 6, topic]
def heartbeat(s): return [s, 7]
def broadcast(s, topic=1, binary=0, n=1): return [s, 8, topic, binary, n]
def garbage(s, data, binary=0): return [s, 9, binary, len(data)] + list(data)
def tick(step=5): return [0, 10, 1, step]
def expire(): return [0, 10, 0]

V2_HB = b'[null,"9","phoenix","heartbeat",{}]'
SCENARIOS = {
    "heartbeat": [open_(0), heartbeat(0), open_(1, False), heartbeat(1)],
    "join_track_leave": [open_(0), join(0), track(0), leave(0)],
    "two_users_one_room": [open_(0), open_(1), join(0, key=2), join(1, key=3), track(0),
                           track(1, n=2), untrack(0), close(1)],
    "v1_and_v2": [open_(0, False), open_(1), join(0, key=4), join(1, key=4), track(0),
                  track(1), tick(), close(0), close(1)],
    "generated_key": [open_(0), join(0, key=1), track(0, n=3, chars=b"ab"), track_empty(0)],
    "no_key": [open_(0), join(0, key=0, enabled=0), track(0), untrack(0), track(0)],
    "number_key": [open_(0), join(0, key=6), track(0)],
    "update_meta": [open_(0), join(0), track(0, n=1), track(0, n=2), track(0, n=2)],
    "rejoin_replaces": [open_(0), join(0, key=2), track(0), join(0, key=3), track(0)],
    "channel_limit": [open_(0), join(0, topic=0), join(0, topic=1), join(0, topic=2)],
    "key_limit": [open_(0), open_(1), open_(2), open_(3), join(0, key=2), join(1, key=3),
                  join(2, key=4), join(3, key=5), track(0), track(1), track(2), track(3)],
    "per_key_limit": [open_(0), open_(1), open_(2), join(0), join(1), join(2), track(0),
                      track(1), track(2)],
    "meta_too_large": [open_(0), join(0), track(0), track_pad(0, n=250), track(0)],
    "meta_not_a_map": [open_(0), join(0), track_bad(0, 0), track_bad(0, 1), track_bad(0, 3)],
    "unmatched_topic": [open_(0), join(0, topic=6), join(0, topic=5), track(0, topic=2),
                        broadcast(0, topic=2)],
    "topic_too_long": [open_(0), join(0, topic=7)],
    "private_refused": [open_(0), join(0, refusal=1)],
    "postgres_changes_refused": [open_(0), join(0, refusal=2)],
    "replay_refused": [open_(0), join(0, refusal=3)],
    "broadcast_ack": [open_(0), open_(1), join(0, ack=1), join(1), broadcast(0), broadcast(1)],
    "broadcast_binary": [open_(0), open_(1, False), join(0, self_=1), join(1),
                         broadcast(0, binary=1), broadcast(1, binary=1)],
    "close_drops_presence": [open_(0), open_(1), join(0), join(1, key=3), track(0), track(1),
                             close(0), heartbeat(1)],
    "timeout_expires": [open_(0), open_(1), join(0), track(0), tick(50), expire(), open_(0),
                        join(0), track(0)],
    "presence_state_on_join": [open_(0), join(0), track(0), open_(1), join(1, key=3, enabled=1)],
    "leave_unjoined": [open_(0), leave(0, topic=2), untrack(0, topic=2)],
    "garbage_text": [open_(0), garbage(0, b"not json"), garbage(0, b"[1,2]"),
                     garbage(0, b'["1","1","phoenix","dance",{}]'), garbage(0, V2_HB)],
    "garbage_binary": [open_(0), join(0), garbage(0, b"\x03\x01\x01\x0e\x05\x00\x01", 1),
                       garbage(0, b"\x04\x01\x01\x00\x01te{}", 1), garbage(0, b"\x07", 1)],
    "access_token": [open_(0), join(0), garbage(0, b'["1","5","realtime:room1","access_token",'
                                                   b'{"access_token":"eyJ.x.y"}]')],
    "diff_batches": [open_(0), open_(1), join(0, enabled=1), join(1, key=3, enabled=1),
                     track(0), track(1), tick(1), track(0, n=9), tick(2), untrack(1), tick(3)],
    "reconnect": [open_(0), join(0), track(0), close(0), open_(0), join(0), track(0)],
}

d = os.path.join("fuzz", "corpus", "session")
os.makedirs(d, exist_ok=True)
for name, ops in SCENARIOS.items():
    data = bytes(b for op in ops for b in op)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
print(len(SCENARIOS), "session seeds")
