//! Property tests: encode → decode is the identity for arbitrary strings in both serializers,
//! and no input makes a decoder panic.

use proptest::prelude::*;
use rollcall_phoenix::fuzzing::decode_any;
use rollcall_phoenix::{
    FrameKind, Payload, UserBroadcastBody, Vsn, decode_server_binary, decode_text, encode_message,
    encode_reply, encode_user_broadcast,
};

fn vsn() -> impl Strategy<Value = Vsn> {
    prop_oneof![Just(Vsn::V1), Just(Vsn::V2)]
}

fn payload() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{}".to_owned()),
        Just("null".to_owned()),
        any::<String>()
            .prop_map(|s| serde_json::to_string(&serde_json::json!({ "s": s })).unwrap()),
        any::<i64>().prop_map(|n| format!("[{n},{{\"k\":[]}}]")),
    ]
}

fn short_string() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("fits a length byte", |s| s.len() <= 255)
}

proptest! {
    #[test]
    fn messages_round_trip_in_both_serializers(
        vsn in vsn(),
        join_ref in proptest::option::of(any::<String>()),
        msg_ref in proptest::option::of(any::<String>()),
        topic in any::<String>(),
        event in any::<String>(),
        payload in payload(),
    ) {
        let mut out = Vec::new();
        encode_message(vsn, join_ref.as_deref(), msg_ref.as_deref(), &topic, &event, &payload, &mut out);
        let m = decode_text(vsn, std::str::from_utf8(&out).unwrap()).unwrap();
        let want_join_ref = if vsn == Vsn::V2 { join_ref.as_deref() } else { None };
        prop_assert_eq!(m.join_ref.as_deref(), want_join_ref);
        prop_assert_eq!(m.msg_ref.as_deref(), msg_ref.as_deref());
        prop_assert_eq!(m.topic.as_ref(), topic.as_str());
        prop_assert_eq!(m.event.as_ref(), event.as_str());
        let Payload::Json(p) = m.payload else { panic!("json payload expected") };
        prop_assert_eq!(p.get(), payload.as_str());
    }

    #[test]
    fn replies_are_valid_json_with_status_and_response(
        vsn in vsn(), topic in any::<String>(), status in any::<String>(), response in payload(),
    ) {
        let mut out = Vec::new();
        encode_reply(vsn, Some("1"), Some("2"), &topic, &status, &response, &mut out);
        let m = decode_text(vsn, std::str::from_utf8(&out).unwrap()).unwrap();
        let Payload::Json(p) = m.payload else { panic!("json payload expected") };
        let p: serde_json::Value = serde_json::from_str(p.get()).unwrap();
        prop_assert_eq!(&p["status"], &serde_json::Value::String(status));
        prop_assert_eq!(&p["response"], &serde_json::from_str::<serde_json::Value>(&response).unwrap());
    }

    #[test]
    fn binary_user_broadcasts_round_trip_through_kind4(
        topic in short_string(), event in short_string(), body in any::<Vec<u8>>(),
    ) {
        let mut out = Vec::new();
        let kind = encode_user_broadcast(Vsn::V2, &topic, &event, None, UserBroadcastBody::Binary(&body), &mut out);
        prop_assert_eq!(kind, Ok(FrameKind::Binary));
        let m = decode_server_binary(&out).unwrap();
        prop_assert_eq!(m.topic.as_ref(), topic.as_str());
        let Payload::UserBroadcast { event: e, body: b, .. } = m.payload else { panic!() };
        prop_assert_eq!(e.as_ref(), event.as_str());
        prop_assert!(matches!(b, UserBroadcastBody::Binary(b) if b == body.as_slice()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in any::<Vec<u8>>()) {
        decode_any(&data);
    }

    #[test]
    fn arbitrary_binary_frames_never_panic(
        kind in prop_oneof![Just(0u8), Just(3u8), Just(4u8)],
        header in proptest::collection::vec(0u8..8, 0..7),
        rest in any::<Vec<u8>>(),
    ) {
        let frame = [&[kind][..], &header, &rest].concat();
        decode_any(&frame);
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        decode_any(text.as_bytes());
        decode_any(format!("[null,\"1\",\"t\",\"e\",{text}]").as_bytes());
        decode_any(format!("{{\"topic\":\"t\",\"event\":\"e\",\"payload\":{text},\"ref\":1}}").as_bytes());
    }
}
