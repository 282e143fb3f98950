//! Every client frame recorded in docs/protocol.md §2–§5, one line each, decoded as the
//! client sends it; and malformed frames with the error each must give.

use rollcall_phoenix::{
    DecodeError, Field, Payload, UserBroadcastBody, Vsn, decode_binary, decode_text,
};

/// Decodes `$frame` in `$vsn` and checks join_ref, ref, topic, event and the payload text.
macro_rules! decodes {
    ($name:ident, $vsn:expr, $frame:expr, $jr:expr, $ref:expr, $topic:expr, $event:expr, $payload:expr) => {
        #[test]
        fn $name() {
            let frame: String = $frame.into();
            let m = decode_text($vsn, &frame).unwrap();
            assert_eq!(m.join_ref.as_deref(), $jr);
            assert_eq!(m.msg_ref.as_deref(), $ref);
            assert_eq!(m.topic, $topic);
            assert_eq!(m.event, $event);
            let Payload::Json(p) = m.payload else {
                panic!("json payload expected")
            };
            assert_eq!(p.get(), $payload);
        }
    };
}

/// Runs `$encode` into a fresh buffer and compares it with `$want` byte for byte.
const JOIN_PAYLOAD: &str = r#"{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false},"access_token":"<jwt>"}"#;

// §2.1, §3.7: vsn 1.0.0 client frames.
decodes!(
    v1_heartbeat_has_no_join_ref,
    Vsn::V1,
    r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"10"}"#,
    None,
    Some("10"),
    "phoenix",
    "heartbeat",
    "{}"
);
decodes!(
    v1_push_in_observed_key_order,
    Vsn::V1,
    r#"{"topic":"realtime:room1","event":"phx_leave","payload":{},"ref":"9","join_ref":"6"}"#,
    Some("6"),
    Some("9"),
    "realtime:room1",
    "phx_leave",
    "{}"
);
decodes!(
    v1_null_ref,
    Vsn::V1,
    r#"{"topic":"realtime:room1","event":"e","payload":{},"ref":null,"join_ref":null}"#,
    None,
    None,
    "realtime:room1",
    "e",
    "{}"
);

// §2.2, §3.2–§3.9, §4.1: vsn 2.0.0 client frames.
decodes!(
    v2_heartbeat,
    Vsn::V2,
    r#"[null,"1","phoenix","heartbeat",{}]"#,
    None,
    Some("1"),
    "phoenix",
    "heartbeat",
    "{}"
);
decodes!(
    v2_join,
    Vsn::V2,
    format!(r#"["6","6","realtime:room1","phx_join",{JOIN_PAYLOAD}]"#),
    Some("6"),
    Some("6"),
    "realtime:room1",
    "phx_join",
    JOIN_PAYLOAD
);
decodes!(
    v2_leave,
    Vsn::V2,
    r#"["6","12","realtime:room1","phx_leave",{}]"#,
    Some("6"),
    Some("12"),
    "realtime:room1",
    "phx_leave",
    "{}"
);
decodes!(
    v2_access_token,
    Vsn::V2,
    r#"["6","13","realtime:room1","access_token",{"access_token":"<jwt>"}]"#,
    Some("6"),
    Some("13"),
    "realtime:room1",
    "access_token",
    r#"{"access_token":"<jwt>"}"#
);
decodes!(
    v2_track,
    Vsn::V2,
    r#"["6","7","realtime:room1","presence",{"type":"presence","event":"track","payload":{"status":"online"}}]"#,
    Some("6"),
    Some("7"),
    "realtime:room1",
    "presence",
    r#"{"type":"presence","event":"track","payload":{"status":"online"}}"#
);
decodes!(
    v2_untrack,
    Vsn::V2,
    r#"["6","8","realtime:room1","presence",{"type":"presence","event":"untrack"}]"#,
    Some("6"),
    Some("8"),
    "realtime:room1",
    "presence",
    r#"{"type":"presence","event":"untrack"}"#
);
decodes!(
    v2_text_broadcast,
    Vsn::V2,
    r#"["6","9","realtime:room1","broadcast",{"type":"broadcast","event":"hello","payload":{"msg":"hi"}}]"#,
    Some("6"),
    Some("9"),
    "realtime:room1",
    "broadcast",
    r#"{"type":"broadcast","event":"hello","payload":{"msg":"hi"}}"#
);
decodes!(
    v2_whitespace_and_escapes,
    Vsn::V2,
    " [ null , \"1\" , \"a\\\"b\" , \"e\\u0301\" , { } ] \n",
    None,
    Some("1"),
    "a\"b",
    "e\u{301}",
    "{ }"
);

/// §2.3 probe capture: `send({type:'broadcast',event:'hello',payload:{msg:'hi'}})`.
const KIND3_PROBE: &[u8] = b"\x03\x01\x01\x0e\x05\x00\x01\
    68realtime:room1hello{\"msg\":\"hi\"}";

#[test]
fn kind3_probe_capture_decodes_to_a_user_broadcast() {
    let m = decode_binary(KIND3_PROBE).unwrap();
    assert_eq!(
        (m.join_ref.as_deref(), m.msg_ref.as_deref()),
        (Some("6"), Some("8"))
    );
    assert_eq!(
        (m.topic.as_ref(), m.event.as_ref()),
        ("realtime:room1", "broadcast")
    );
    let Payload::UserBroadcast {
        event,
        metadata,
        body,
    } = m.payload
    else {
        panic!()
    };
    assert_eq!(event, "hello");
    assert!(metadata.is_none());
    assert!(matches!(body, UserBroadcastBody::Json(p) if p.get() == r#"{"msg":"hi"}"#));
}

#[test]
fn kind3_with_metadata_and_binary_body_decodes() {
    let frame = b"\x03\x01\x01\x01\x01\x10\x00\x31\x32te{\"persist\":true}\x00\x01\xff";
    let m = decode_binary(frame).unwrap();
    let Payload::UserBroadcast { metadata, body, .. } = m.payload else {
        panic!()
    };
    assert_eq!(metadata.unwrap().get(), r#"{"persist":true}"#);
    assert!(matches!(body, UserBroadcastBody::Binary(b"\x00\x01\xff")));
}

#[test]
fn malformed_text_frames_name_the_fault() {
    let cases: &[(Vsn, &str, DecodeError)] = &[
        (Vsn::V2, "", DecodeError::InvalidJson { line: 1, column: 0 }),
        (
            Vsn::V2,
            "[1,",
            DecodeError::InvalidJson { line: 1, column: 3 },
        ),
        (Vsn::V2, "{}", DecodeError::NotAnArray),
        (Vsn::V2, "null", DecodeError::NotAnArray),
        (
            Vsn::V2,
            r#"[null,"1","phoenix","heartbeat"]"#,
            DecodeError::Arity(4),
        ),
        (
            Vsn::V2,
            r#"[null,"1","phoenix","heartbeat",{},null]"#,
            DecodeError::Arity(6),
        ),
        (
            Vsn::V2,
            r#"[null,"1","phoenix","heartbeat",{}] x"#,
            DecodeError::InvalidJson {
                line: 1,
                column: 37,
            },
        ),
        (
            Vsn::V2,
            r#"[{},"1","t","e",{}]"#,
            DecodeError::WrongType(Field::JoinRef),
        ),
        (
            Vsn::V2,
            r#"[null,true,"t","e",{}]"#,
            DecodeError::WrongType(Field::Ref),
        ),
        (
            Vsn::V2,
            r#"[null,"1",1,"e",{}]"#,
            DecodeError::WrongType(Field::Topic),
        ),
        (
            Vsn::V2,
            r#"[null,"1","t",null,{}]"#,
            DecodeError::WrongType(Field::Event),
        ),
        (Vsn::V1, "[]", DecodeError::NotAnObject),
        (
            Vsn::V1,
            "{",
            DecodeError::InvalidJson { line: 1, column: 1 },
        ),
        (
            Vsn::V1,
            r#"{"topic":"t","event":"e","payload":{}}"#,
            DecodeError::MissingField(Field::Ref),
        ),
        (
            Vsn::V1,
            r#"{"topic":"t","event":"e","payload":{},"ref":[]}"#,
            DecodeError::WrongType(Field::Ref),
        ),
        (
            Vsn::V1,
            r#"{"topic":"t","event":"e","payload":{},"ref":"1","join_ref":{}}"#,
            DecodeError::WrongType(Field::JoinRef),
        ),
    ];
    for (vsn, text, want) in cases {
        assert_eq!(
            decode_text(*vsn, text).unwrap_err(),
            *want,
            "{vsn:?} {text}"
        );
    }
}

#[test]
fn decode_errors_read_as_lowercase_sentences() {
    let err = DecodeError::LengthPastEnd {
        field: Field::Topic,
        len: 14,
        remaining: 3,
    };
    assert_eq!(err.to_string(), "field topic is 14 bytes, only 3 remain");
    assert_eq!(
        DecodeError::Arity(4).to_string(),
        "frame has 4 elements, 5 are required"
    );
    assert_eq!(
        DecodeError::UnknownKind(9).to_string(),
        "unknown binary kind 9"
    );
}
