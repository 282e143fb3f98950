//! Every server frame recorded in docs/protocol.md §2–§5, one line each, encoded byte for byte
//! as the server must send it.

use rollcall_phoenix::{
    FrameKind, UserBroadcastBody, Vsn, decode_server_binary, encode_broadcast,
    encode_channel_error, encode_close, encode_push, encode_reply, encode_user_broadcast, reply,
};
use serde_json::value::RawValue;

/// Runs `$encode` into a fresh buffer and compares it with `$want` byte for byte.
macro_rules! encodes {
    ($name:ident, |$out:ident| $encode:expr, $want:expr) => {
        #[test]
        fn $name() {
            let mut $out = Vec::new();
            $encode;
            assert_eq!(std::str::from_utf8(&$out).unwrap(), $want);
        }
    };
}

// §3.3, §3.4, §3.7: replies.
encodes!(
    v2_heartbeat_reply,
    |out| encode_reply(
        Vsn::V2,
        None,
        Some("1"),
        "phoenix",
        "ok",
        reply::ok_empty(),
        &mut out
    ),
    r#"[null,"1","phoenix","phx_reply",{"status":"ok","response":{}}]"#
);
encodes!(
    v1_heartbeat_reply,
    |out| encode_reply(Vsn::V1, None, Some("10"), "phoenix", "ok", "{}", &mut out),
    r#"{"topic":"phoenix","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"10"}"#
);
encodes!(
    v2_join_ok,
    |out| encode_reply(
        Vsn::V2,
        Some("6"),
        Some("6"),
        "realtime:room1",
        "ok",
        r#"{"postgres_changes":[]}"#,
        &mut out
    ),
    r#"["6","6","realtime:room1","phx_reply",{"status":"ok","response":{"postgres_changes":[]}}]"#
);
encodes!(
    v1_join_ok_drops_join_ref,
    |out| encode_reply(
        Vsn::V1,
        Some("6"),
        Some("7"),
        "realtime:room1",
        "ok",
        "{}",
        &mut out
    ),
    r#"{"topic":"realtime:room1","event":"phx_reply","payload":{"status":"ok","response":{}},"ref":"7"}"#
);
encodes!(
    v2_unmatched_topic,
    |out| encode_reply(
        Vsn::V2,
        Some("1"),
        Some("1"),
        "room1",
        reply::STATUS_ERROR,
        &reply::error_reason(reply::UNMATCHED_TOPIC),
        &mut out
    ),
    r#"["1","1","room1","phx_reply",{"status":"error","response":{"reason":"unmatched topic"}}]"#
);
encodes!(
    v2_topic_name_required,
    |out| encode_reply(
        Vsn::V2,
        Some("1"),
        Some("1"),
        "realtime:",
        "error",
        &reply::error_reason(reply::TOPIC_NAME_REQUIRED),
        &mut out
    ),
    r#"["1","1","realtime:","phx_reply",{"status":"error","response":{"reason":"TopicNameRequired: You must provide a topic name"}}]"#
);
encodes!(
    v2_track_not_a_map,
    |out| encode_reply(
        Vsn::V2,
        Some("6"),
        Some("7"),
        "realtime:room1",
        "error",
        &rollcall_phoenix::PresenceError::MetaNotAMap.response(),
        &mut out
    ),
    r#"["6","7","realtime:room1","phx_reply",{"status":"error","response":{"reason":"Presence track payload must be a map"}}]"#
);

// §3.4, §3.5, §3.6, §4.3: channel pushes.
encodes!(
    v2_close,
    |out| encode_close(Vsn::V2, Some("6"), "realtime:room1", &mut out),
    r#"["6","6","realtime:room1","phx_close",{}]"#
);
encodes!(
    v1_close,
    |out| encode_close(Vsn::V1, Some("6"), "realtime:room1", &mut out),
    r#"{"topic":"realtime:room1","event":"phx_close","payload":{},"ref":"6"}"#
);
encodes!(
    v2_channel_crash,
    |out| encode_channel_error(
        Vsn::V2,
        Some("6"),
        "realtime:room1",
        reply::CHANNEL_CRASH,
        &mut out
    ),
    r#"["6","6","realtime:room1","phx_error",{"reason":"channel_crash"}]"#
);
encodes!(
    v2_system_push,
    |out| encode_push(
        Vsn::V2,
        Some("6"),
        "realtime:room1",
        "system",
        &reply::system_message(
            "error",
            reply::CLIENT_PRESENCE_RATE_LIMIT_EXCEEDED,
            Some("room1")
        ),
        &mut out
    ),
    r#"["6",null,"realtime:room1","system",{"extension":"system","status":"error","message":"Client presence rate limit exceeded","channel":"room1"}]"#
);
encodes!(
    v2_presence_state,
    |out| encode_push(
        Vsn::V2,
        Some("6"),
        "realtime:room1",
        "presence_state",
        r#"{"alice":{"metas":[{"status":"online","phx_ref":"GBmT0m3y3NhQ_wAB"}]}}"#,
        &mut out
    ),
    r#"["6",null,"realtime:room1","presence_state",{"alice":{"metas":[{"status":"online","phx_ref":"GBmT0m3y3NhQ_wAB"}]}}]"#
);
encodes!(
    v1_presence_state,
    |out| encode_push(
        Vsn::V1,
        Some("6"),
        "realtime:room1",
        "presence_state",
        "{}",
        &mut out
    ),
    r#"{"topic":"realtime:room1","event":"presence_state","payload":{},"ref":null}"#
);

// §4.4, §5.1: fan-out.
encodes!(
    v2_presence_diff,
    |out| encode_broadcast(
        Vsn::V2,
        "realtime:room1",
        "presence_diff",
        r#"{"joins":{},"leaves":{}}"#,
        &mut out
    ),
    r#"[null,null,"realtime:room1","presence_diff",{"joins":{},"leaves":{}}]"#
);
encodes!(
    v1_presence_diff,
    |out| encode_broadcast(
        Vsn::V1,
        "realtime:room1",
        "presence_diff",
        r#"{"joins":{},"leaves":{}}"#,
        &mut out
    ),
    r#"{"topic":"realtime:room1","event":"presence_diff","payload":{"joins":{},"leaves":{}},"ref":null}"#
);
encodes!(
    v2_json_user_broadcast_is_text,
    |out| assert_eq!(
        encode_user_broadcast(
            Vsn::V2,
            "realtime:room1",
            "hello",
            None,
            UserBroadcastBody::Json(raw(r#"{"msg":"hi"}"#)),
            &mut out
        ),
        Ok(FrameKind::Text)
    ),
    r#"[null,null,"realtime:room1","broadcast",{"type":"broadcast","event":"hello","payload":{"msg":"hi"}}]"#
);
encodes!(
    v1_json_user_broadcast_is_text,
    |out| assert_eq!(
        encode_user_broadcast(
            Vsn::V1,
            "realtime:room1",
            "hello",
            None,
            UserBroadcastBody::Json(raw(r#"{"msg":"hi"}"#)),
            &mut out
        ),
        Ok(FrameKind::Text)
    ),
    r#"{"topic":"realtime:room1","event":"broadcast","payload":{"type":"broadcast","event":"hello","payload":{"msg":"hi"}},"ref":null}"#
);

fn raw(text: &str) -> &RawValue {
    serde_json::from_str(text).unwrap()
}

#[test]
fn binary_user_broadcast_goes_out_as_kind4_on_v2() {
    let mut out = Vec::new();
    let kind = encode_user_broadcast(
        Vsn::V2,
        "realtime:room1",
        "hello",
        None,
        UserBroadcastBody::Binary(b"\x01\x02"),
        &mut out,
    );
    assert_eq!(kind, Ok(FrameKind::Binary));
    assert_eq!(out, b"\x04\x0e\x05\x00\x00realtime:room1hello\x01\x02");
    let m = decode_server_binary(&out).unwrap();
    assert_eq!(
        (m.join_ref, m.msg_ref, m.event.as_ref()),
        (None, None, "broadcast")
    );
}
