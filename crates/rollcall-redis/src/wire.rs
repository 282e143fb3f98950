//! What travels through Redis: pub/sub messages, hash values, and the presence JSON shapes
//! (`{key: {"metas": [..]}}`) parsed back into presences.
//!
//! A message is `<kind> <node> <rest>`: `D` a `presence_diff` payload, `R` the node's full
//! state of the topic (`presence_state` shape), `X` the node is gone from the topic, `B` a
//! broadcast (`<event length>:<event><payload>`), `M` a load marker (a token).

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::value::RawValue;

/// One presence of some node: its key and its rendered JSON (the meta with `phx_ref`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Presence {
    pub(crate) key: String,
    pub(crate) json: Box<str>,
}

/// One node's presences in one topic, by `phx_ref`.
pub(crate) type NodePresences = BTreeMap<String, Presence>;

/// A decoded pub/sub message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message<'a> {
    Diff {
        node: &'a str,
        payload: &'a str,
    },
    Reset {
        node: &'a str,
        state: &'a str,
    },
    Gone {
        node: &'a str,
    },
    Broadcast {
        node: &'a str,
        event: &'a str,
        payload: &'a str,
    },
    Marker {
        node: &'a str,
        token: &'a str,
    },
}

impl Message<'_> {
    pub(crate) fn encode(&self) -> String {
        match self {
            Message::Diff { node, payload } => format!("D {node} {payload}"),
            Message::Reset { node, state } => format!("R {node} {state}"),
            Message::Gone { node } => format!("X {node} "),
            Message::Broadcast {
                node,
                event,
                payload,
            } => format!("B {node} {}:{event}{payload}", event.len()),
            Message::Marker { node, token } => format!("M {node} {token}"),
        }
    }

    pub(crate) fn decode(text: &str) -> Option<Message<'_>> {
        let (kind, rest) = text.split_once(' ')?;
        let (node, rest) = rest.split_once(' ')?;
        Some(match kind {
            "D" => Message::Diff {
                node,
                payload: rest,
            },
            "R" => Message::Reset { node, state: rest },
            "X" => Message::Gone { node },
            "B" => {
                let (event, payload) = split_len_prefixed(rest)?;
                Message::Broadcast {
                    node,
                    event,
                    payload,
                }
            }
            "M" => Message::Marker { node, token: rest },
            _ => return None,
        })
    }
}

/// Splits `<len>:<head><tail>` into `(head, tail)`.
fn split_len_prefixed(s: &str) -> Option<(&str, &str)> {
    let (len, rest) = s.split_once(':')?;
    let len: usize = len.parse().ok()?;
    if !rest.is_char_boundary(len.min(rest.len())) || len > rest.len() {
        return None;
    }
    Some(rest.split_at(len))
}

/// A hash value: `<key length>:<key><presence json>`.
pub(crate) fn encode_hash_value(key: &str, json: &str) -> String {
    format!("{}:{key}{json}", key.len())
}

/// The inverse of [`encode_hash_value`].
pub(crate) fn decode_hash_value(v: &str) -> Option<Presence> {
    let (key, json) = split_len_prefixed(v)?;
    Some(Presence {
        key: key.to_string(),
        json: json.into(),
    })
}

#[derive(Deserialize)]
struct Metas<'a> {
    #[serde(borrow)]
    metas: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct RefOnly<'a> {
    #[serde(borrow)]
    phx_ref: std::borrow::Cow<'a, str>,
}

/// Parses `{key: {"metas": [..]}}` into `(phx_ref, presence)` pairs.
pub(crate) fn parse_state(json: &str) -> Option<Vec<(String, Presence)>> {
    let groups: HashMap<String, Metas<'_>> = serde_json::from_str(json).ok()?;
    let mut out = Vec::new();
    for (key, metas) in groups {
        for m in metas.metas {
            let r: RefOnly<'_> = serde_json::from_str(m.get()).ok()?;
            out.push((
                r.phx_ref.into_owned(),
                Presence {
                    key: key.clone(),
                    json: m.get().into(),
                },
            ));
        }
    }
    Some(out)
}

#[derive(Deserialize)]
struct DiffPayload<'a> {
    #[serde(borrow)]
    joins: &'a RawValue,
    #[serde(borrow)]
    leaves: &'a RawValue,
}

/// A parsed `presence_diff` payload: joins and leaves as `(phx_ref, presence)` pairs.
pub(crate) type ParsedDiff = (Vec<(String, Presence)>, Vec<(String, Presence)>);

/// Parses a `presence_diff` payload.
pub(crate) fn parse_diff(json: &str) -> Option<ParsedDiff> {
    let d: DiffPayload<'_> = serde_json::from_str(json).ok()?;
    Some((parse_state(d.joins.get())?, parse_state(d.leaves.get())?))
}

/// Writes `{key: {"metas": [..]}}` for presences, grouped by key in order of first appearance.
pub(crate) fn write_groups<'a>(out: &mut String, entries: impl IntoIterator<Item = &'a Presence>) {
    let mut order: Vec<&str> = Vec::new();
    let mut groups: HashMap<&str, Vec<&str>> = HashMap::new();
    for p in entries {
        let g = groups.entry(p.key.as_str()).or_insert_with(|| {
            order.push(p.key.as_str());
            Vec::new()
        });
        g.push(&p.json);
    }
    out.push('{');
    for (i, key) in order.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key).expect("a string always serialises"));
        out.push_str(":{\"metas\":[");
        for (j, json) in groups[key].iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(json);
        }
        out.push_str("]}");
    }
    out.push('}');
}

/// Renders a `presence_diff` payload.
pub(crate) fn write_diff(joins: &[Presence], leaves: &[Presence]) -> String {
    let mut out = String::with_capacity(64);
    out.push_str("{\"joins\":");
    write_groups(&mut out, joins);
    out.push_str(",\"leaves\":");
    write_groups(&mut out, leaves);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let cases = [
            Message::Diff {
                node: "a",
                payload: r#"{"joins":{},"leaves":{}}"#,
            },
            Message::Reset {
                node: "a",
                state: "{}",
            },
            Message::Gone { node: "b" },
            Message::Broadcast {
                node: "c",
                event: "broad cast:x",
                payload: r#"{"a":1}"#,
            },
            Message::Marker {
                node: "d",
                token: "t1",
            },
        ];
        for m in cases {
            assert_eq!(Message::decode(&m.encode()), Some(m.clone()));
        }
        assert_eq!(Message::decode("Q a b"), None);
        assert_eq!(Message::decode("B a 99:x"), None);
    }

    #[test]
    fn a_diff_payload_parses_into_refs_and_presences() {
        let d = r#"{"joins":{"al\"ice":{"metas":[{"n":1,"phx_ref":"r2","phx_ref_prev":"r1"}]}},"leaves":{"al\"ice":{"metas":[{"phx_ref":"r1"}]}}}"#;
        let (joins, leaves) = parse_diff(d).unwrap();
        assert_eq!(joins.len(), 1);
        assert_eq!(joins[0].0, "r2");
        assert_eq!(joins[0].1.key, "al\"ice");
        assert_eq!(leaves[0].0, "r1");
        let back = write_diff(&[joins[0].1.clone()], &[leaves[0].1.clone()]);
        let a: serde_json::Value = serde_json::from_str(&back).unwrap();
        let b: serde_json::Value = serde_json::from_str(d).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn hash_values_keep_keys_with_any_characters() {
        let v = encode_hash_value("a:b{c}9", r#"{"phx_ref":"x"}"#);
        let p = decode_hash_value(&v).unwrap();
        assert_eq!(p.key, "a:b{c}9");
        assert_eq!(&*p.json, r#"{"phx_ref":"x"}"#);
        assert_eq!(decode_hash_value("5:ab"), None);
    }
}
