//! JSON rendering of presence payloads: `presence_state` and `presence_diff`.
//!
//! Metas are stored as JSON text, so rendering splices `phx_ref` (and `phx_ref_prev`) into the
//! stored object instead of building a `serde_json::Value`: one pass, no re-serialisation.

use crate::diff::{Diff, DiffEntry, PresenceView};
use crate::ids::{Key, PRESENCE_REF_LEN, PresenceRef};
use crate::meta::Meta;

/// Writes a JSON string literal (quoted, escaped).
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Writes one presence as `{...meta,"phx_ref":"..","phx_ref_prev":".."}`.
pub fn write_presence(out: &mut Vec<u8>, p: &PresenceView) {
    write_parts(out, &p.meta, p.presence_ref, p.prev_ref);
}

/// [`write_presence`] from the parts of a view, so the table can render without cloning.
pub(crate) fn write_parts(
    out: &mut Vec<u8>,
    meta: &Meta,
    presence_ref: PresenceRef,
    prev_ref: Option<PresenceRef>,
) {
    write_presence_with(meta.members(), presence_ref, prev_ref, |s| {
        out.extend_from_slice(s.as_bytes())
    });
}

/// [`write_presence`] into a `String`, from a meta object's members (its text between the
/// braces) and the refs: for adapters that hold metas as text of their own (e.g. presences of
/// other nodes), so every presence on the wire is rendered by this one function.
pub fn write_presence_text(
    out: &mut String,
    meta_members: &str,
    presence_ref: PresenceRef,
    prev_ref: Option<PresenceRef>,
) {
    write_presence_with(meta_members, presence_ref, prev_ref, |s| out.push_str(s));
}

/// The one renderer of a presence object: `{<members>,"phx_ref":"..","phx_ref_prev":".."}`,
/// handed out in pieces.
fn write_presence_with(
    members: &str,
    presence_ref: PresenceRef,
    prev_ref: Option<PresenceRef>,
    mut push: impl FnMut(&str),
) {
    let mut buf = [0u8; PRESENCE_REF_LEN];
    push("{");
    push(members);
    if !members.is_empty() {
        push(",");
    }
    push("\"phx_ref\":\"");
    push(presence_ref.encode(&mut buf));
    push("\"");
    if let Some(prev) = prev_ref {
        push(",\"phx_ref_prev\":\"");
        push(prev.encode(&mut buf));
        push("\"");
    }
    push("}");
}

/// Writes `{"key":{"metas":[...]},...}` for keys given in order, each with its presences.
pub fn write_state<'a, I, P>(out: &mut Vec<u8>, keys: I)
where
    I: IntoIterator<Item = (&'a Key, P)>,
    P: IntoIterator<Item = &'a PresenceView>,
{
    write_groups(
        out,
        keys.into_iter().map(|(k, ps)| {
            (
                k.as_str(),
                ps.into_iter()
                    .map(|p| (&p.meta, p.presence_ref, p.prev_ref)),
            )
        }),
    );
}

/// [`write_state`] over keys as text and presences as parts.
pub(crate) fn write_groups<'a, I, P>(out: &mut Vec<u8>, keys: I)
where
    I: IntoIterator<Item = (&'a str, P)>,
    P: IntoIterator<Item = (&'a Meta, PresenceRef, Option<PresenceRef>)>,
{
    out.push(b'{');
    let mut first_key = true;
    for (key, presences) in keys {
        if !first_key {
            out.push(b',');
        }
        first_key = false;
        write_str(out, key);
        out.extend_from_slice(b":{\"metas\":[");
        for (i, (meta, r, prev)) in presences.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_parts(out, meta, r, prev);
        }
        out.extend_from_slice(b"]}");
    }
    out.push(b'}');
}

/// Writes diff entries grouped by key, keys in order of first appearance.
fn write_entries(out: &mut Vec<u8>, entries: &[DiffEntry]) {
    // Diffs are small (usually one key), so a linear scan beats hashing.
    let mut keys: Vec<&Key> = Vec::new();
    for e in entries {
        if !keys.contains(&&e.key) {
            keys.push(&e.key);
        }
    }
    write_state(
        out,
        keys.into_iter().map(|k| {
            (
                k,
                entries
                    .iter()
                    .filter(move |e| &e.key == k)
                    .map(|e| &e.presence),
            )
        }),
    );
}

impl Diff {
    /// Writes the `presence_diff` payload: `{"joins":{..},"leaves":{..}}`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"joins\":");
        write_entries(out, &self.joins);
        out.extend_from_slice(b",\"leaves\":");
        write_entries(out, &self.leaves);
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(r: u64, prev: Option<u64>, meta: &str) -> PresenceView {
        PresenceView {
            presence_ref: PresenceRef::new(r).unwrap(),
            prev_ref: prev.and_then(PresenceRef::new),
            meta: Meta::parse(meta).unwrap(),
        }
    }

    #[test]
    fn an_update_diff_renders_as_supabase_sends_it() {
        let d = Diff {
            joins: vec![DiffEntry {
                key: Key::new("a"),
                presence: view(2, Some(1), r#"{"status":"away"}"#),
            }],
            leaves: vec![DiffEntry {
                key: Key::new("a"),
                presence: view(1, None, r#"{"status":"online"}"#),
            }],
        };
        let mut out = Vec::new();
        d.write_json(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let r1 = PresenceRef::new(1).unwrap().to_string();
        let r2 = PresenceRef::new(2).unwrap().to_string();
        assert_eq!(
            v,
            serde_json::json!({
                "joins": {"a": {"metas": [{"status":"away","phx_ref":r2,"phx_ref_prev":r1}]}},
                "leaves": {"a": {"metas": [{"status":"online","phx_ref":r1}]}}
            })
        );
    }

    #[test]
    fn empty_meta_and_empty_diff_render_valid_json() {
        let mut out = Vec::new();
        Diff::default().write_json(&mut out);
        assert_eq!(out, br#"{"joins":{},"leaves":{}}"#);
        out.clear();
        write_presence(&mut out, &view(1, None, "{}"));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["phx_ref"], PresenceRef::new(1).unwrap().to_string());
    }

    #[test]
    fn keys_are_escaped_and_grouped() {
        let e = |k: &str, r| DiffEntry {
            key: Key::new(k),
            presence: view(r, None, r#"{"n":1}"#),
        };
        let d = Diff {
            joins: vec![e("q\"uote", 1), e("b", 2), e("q\"uote", 3)],
            leaves: vec![],
        };
        let mut out = Vec::new();
        d.write_json(&mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["joins"]["q\"uote"]["metas"].as_array().unwrap().len(), 2);
        assert_eq!(v["joins"]["b"]["metas"].as_array().unwrap().len(), 1);
    }
}
