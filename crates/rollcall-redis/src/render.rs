//! The client's JSON, rendered by the receiving node from decoded presences: `presence_diff`
//! payloads for remote diffs and `presence_state` payloads merging local and remote presences.
//! Metas are spliced as text (`{..meta,"phx_ref":..}`), as the core renders its own.

use std::collections::HashMap;

use rollcall_core::{Key, PresenceView, write_presence, write_presence_text};

use crate::wire::Presence;

/// Something rendered as one element of a key's `metas` array.
pub(crate) trait MetaJson {
    fn write(&self, out: &mut String);
}

impl MetaJson for &Presence {
    fn write(&self, out: &mut String) {
        write_remote(out, self);
    }
}

impl MetaJson for &str {
    fn write(&self, out: &mut String) {
        out.push_str(self);
    }
}

/// Writes one presence as the client sees it (the core's renderer, on the meta's text).
fn write_remote(out: &mut String, p: &Presence) {
    // The decoder checked the braces; `get` keeps a value that skipped it from panicking.
    let members = p.meta.get(1..p.meta.len().saturating_sub(1)).unwrap_or("");
    write_presence_text(out, members, p.presence_ref, p.prev_ref);
}

/// One presence's JSON, as the client sees it.
pub(crate) fn presence_json(p: &Presence) -> String {
    let mut out = String::with_capacity(p.meta.len() + 48);
    write_remote(&mut out, p);
    out
}

/// Writes `{key: {"metas": [..]}}`, grouped by key in order of first appearance.
pub(crate) fn write_groups<'a, M: MetaJson>(
    out: &mut String,
    entries: impl IntoIterator<Item = (&'a str, M)>,
) {
    let mut order: Vec<&str> = Vec::new();
    let mut groups: HashMap<&str, Vec<M>> = HashMap::new();
    for (key, m) in entries {
        groups
            .entry(key)
            .or_insert_with(|| {
                order.push(key);
                Vec::new()
            })
            .push(m);
    }
    out.push('{');
    for (i, key) in order.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::to_string(key).expect("a string always serialises"));
        out.push_str(":{\"metas\":[");
        for (j, m) in groups[key].iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            m.write(out);
        }
        out.push_str("]}");
    }
    out.push('}');
}

/// Renders a `presence_diff` payload; `None` when nothing joined or left.
pub(crate) fn diff<'a>(
    joins: impl IntoIterator<Item = &'a Presence>,
    leaves: impl IntoIterator<Item = &'a Presence>,
) -> Option<String> {
    let mut joins = joins.into_iter().peekable();
    let mut leaves = leaves.into_iter().peekable();
    if joins.peek().is_none() && leaves.peek().is_none() {
        return None;
    }
    let mut out = String::with_capacity(128);
    out.push_str("{\"joins\":");
    write_groups(&mut out, joins.map(|p| (p.key.as_str(), p)));
    out.push_str(",\"leaves\":");
    write_groups(&mut out, leaves.map(|p| (p.key.as_str(), p)));
    out.push('}');
    Some(out)
}

/// Writes a `presence_state` payload of `local` presences and `remote` ones (`(key, presence
/// json)`, e.g. from [`crate::Cluster::remote_presences`]), one entry per key.
pub fn write_state_with(
    local: &[(Key, Vec<PresenceView>)],
    remote: &[(String, String)],
    out: &mut Vec<u8>,
) {
    let mut rendered: Vec<(&str, String)> = Vec::new();
    let mut buf = Vec::with_capacity(64);
    for (key, views) in local {
        for p in views {
            buf.clear();
            write_presence(&mut buf, p);
            rendered.push((key.as_str(), String::from_utf8_lossy(&buf).into_owned()));
        }
    }
    let all = rendered
        .iter()
        .map(|(k, j)| (*k, j.as_str()))
        .chain(remote.iter().map(|(k, j)| (k.as_str(), j.as_str())));
    let mut s = String::with_capacity((rendered.len() + remote.len()) * 64 + 2);
    write_groups(&mut s, all);
    out.extend_from_slice(s.as_bytes());
}
