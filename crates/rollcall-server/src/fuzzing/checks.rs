//! The checks after every step: frame shapes and the engine's presences against the model.

use std::collections::BTreeMap;

use axum::extract::ws::Message;
use rollcall_phoenix::Vsn;
use serde_json::Value;

use super::*;

impl Harness {
    /// The engine's presences in each topic equal the model's.
    pub(super) fn check_presence(&self) {
        for topic in TOPICS {
            let mut engine: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for (key, views) in self.hub.engine.list(topic) {
                let metas = views
                    .iter()
                    .map(|v| serde_json::from_str(v.meta.as_json()).expect("meta is json"))
                    .collect();
                assert!(
                    !views.is_empty(),
                    "{topic}: key {key:?} listed with no presence"
                );
                engine.insert(key.as_str().to_string(), metas);
            }
            let mut given: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            let mut generated: Vec<Value> = Vec::new();
            for ch in self.sockets.values().filter_map(|s| s.channels.get(topic)) {
                match (&ch.key, &ch.meta) {
                    (_, None) => {}
                    (ModelKey::Given(k), Some(m)) => {
                        given.entry(k.clone()).or_default().push(m.clone());
                    }
                    (ModelKey::Generated, Some(m)) => generated.push(m.clone()),
                }
            }
            let mut engine_generated = Vec::new();
            for (key, mut metas) in engine {
                match given.remove(&key) {
                    Some(mut want) => {
                        sort_values(&mut metas);
                        sort_values(&mut want);
                        assert_eq!(metas, want, "{topic}: metas of {key}");
                    }
                    None => {
                        assert!(is_uuid(&key), "{topic}: unexpected key {key:?}");
                        assert_eq!(metas.len(), 1, "{topic}: a generated key is one channel's");
                        engine_generated.extend(metas);
                    }
                }
            }
            assert!(given.is_empty(), "{topic}: missing presences {given:?}");
            sort_values(&mut engine_generated);
            sort_values(&mut generated);
            assert_eq!(
                engine_generated, generated,
                "{topic}: generated-key presences"
            );
        }
    }
}

/// One frame a socket was sent, reduced to what the checks need.
#[derive(Debug)]
pub(super) struct Frame {
    pub(super) event: String,
    pub(super) msg_ref: Option<String>,
    pub(super) status: Option<String>,
}

/// Checks one outbound message's shape for a socket speaking `vsn`.
pub(super) fn check_frame(vsn: Vsn, m: &Message) -> Option<Frame> {
    let text = match m {
        Message::Text(t) => t.as_str(),
        Message::Binary(b) => {
            assert_eq!(vsn, Vsn::V2, "binary frame sent to a v1 socket");
            assert_eq!(b.first(), Some(&4), "servers send binary kind 4 only");
            rollcall_phoenix::decode_server_binary(b).expect("a kind-4 frame decodes");
            return None;
        }
        other => panic!("unexpected message {other:?}"),
    };
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let (join_ref, msg_ref, topic, event, payload) = match vsn {
        Vsn::V2 => {
            let a = v
                .as_array()
                .unwrap_or_else(|| panic!("v2 frame not an array: {text}"));
            assert_eq!(a.len(), 5, "v2 frame not a 5-array: {text}");
            (&a[0], &a[1], &a[2], &a[3], &a[4])
        }
        _ => {
            let o = v
                .as_object()
                .unwrap_or_else(|| panic!("v1 frame not an object: {text}"));
            let get = |k: &str| o.get(k).unwrap_or(&Value::Null);
            (
                get("join_ref"),
                get("ref"),
                get("topic"),
                get("event"),
                get("payload"),
            )
        }
    };
    for r in [join_ref, msg_ref] {
        assert!(
            r.is_null() || r.is_string(),
            "ref not a string or null: {text}"
        );
    }
    assert!(topic.is_string(), "topic not a string: {text}");
    let event = event
        .as_str()
        .unwrap_or_else(|| panic!("event not a string: {text}"));
    assert!(payload.is_object(), "payload not an object: {text}");
    let status = (event == event::PHX_REPLY).then(|| {
        let status = payload["status"].as_str().unwrap_or_default();
        assert!(status == "ok" || status == "error", "reply status: {text}");
        assert!(payload["response"].is_object(), "reply response: {text}");
        status.to_string()
    });
    Some(Frame {
        event: event.to_string(),
        msg_ref: msg_ref.as_str().map(String::from),
        status,
    })
}

pub(super) fn sort_values(v: &mut [Value]) {
    v.sort_unstable_by_key(|m| m.to_string());
}

pub(super) fn is_uuid(key: &str) -> bool {
    key.len() == 36 && key.bytes().filter(|b| *b == b'-').count() == 4
}
