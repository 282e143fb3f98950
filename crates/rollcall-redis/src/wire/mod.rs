//! The node-to-node format: what one node writes into Redis for the others. A compact binary
//! layout of its own, versioned apart from the client protocol (docs/clustering.md, "Node-to-node
//! format", is the reference; this module is its only implementation).
//!
//! Every pub/sub message and every stored hash value starts with [`VERSION`]. A node decodes
//! only the version it speaks and refuses any other with [`WireError::UnknownVersion`], so a
//! mixed-version cluster shows up as a counted refusal instead of as garbled presences.
//! Presences travel as [`Entry`]s: the key, `phx_ref`, `phx_ref_prev` and the meta as the
//! normalised JSON object text the core holds, copied byte for byte (never parsed here). The
//! client's `presence_diff` JSON is rendered by the receiving node (`render.rs`).
//!
//! `encode.rs` writes, `decode.rs` reads (borrowing from the input, refusing anything it could
//! not have written: the decoder is the encoder's exact inverse).

mod decode;
mod encode;

use rollcall_core::{DiffEntry, PresenceRef};

pub(crate) use encode::{Writer, encode_hash_value};

/// The format version this node writes and reads, the first byte of everything it stores or
/// publishes. Bump it on any change of layout (see docs/clustering.md for the rollout rule).
/// Version 1 is not a printable byte, so the text format before it (`D node {..}`, values
/// `5:alice{..}`) is refused as an unknown version too.
pub(crate) const VERSION: u8 = 1;

/// Message kinds (the byte after the version).
pub(crate) mod kind {
    /// A diff: joins and leaves.
    pub(crate) const DIFF: u8 = b'D';
    /// The node's full state of the topic.
    pub(crate) const RESET: u8 = b'R';
    /// The node is gone from the topic.
    pub(crate) const GONE: u8 = b'X';
    /// A broadcast: event and payload.
    pub(crate) const BROADCAST: u8 = b'B';
    /// A load marker (see `view.rs`).
    pub(crate) const MARKER: u8 = b'M';
}

/// Bit 0 of an entry's flags byte: a `phx_ref_prev` follows the ref.
const FLAG_PREV: u8 = 1;

/// One presence as it travels between nodes, borrowed from a message or a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    /// The presence key.
    pub(crate) key: &'a str,
    /// Its `phx_ref` (unique per node).
    pub(crate) presence_ref: PresenceRef,
    /// On an update, the ref it replaces (`phx_ref_prev`).
    pub(crate) prev_ref: Option<PresenceRef>,
    /// The meta: a JSON object's text, `{` to `}`, as the core normalised it.
    pub(crate) meta: &'a str,
}

impl<'a> From<&'a DiffEntry> for Entry<'a> {
    fn from(e: &'a DiffEntry) -> Entry<'a> {
        Entry {
            key: e.key.as_str(),
            presence_ref: e.presence.presence_ref,
            prev_ref: e.presence.prev_ref,
            meta: e.presence.meta.as_json(),
        }
    }
}

/// A decoded pub/sub message. The topic is the channel's, so it is not repeated inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A node's diff of one topic.
    Diff {
        node: &'a str,
        joins: Vec<Entry<'a>>,
        leaves: Vec<Entry<'a>>,
    },
    /// A node's full state of the topic, replacing what was known of it.
    Reset {
        node: &'a str,
        presences: Vec<Entry<'a>>,
    },
    /// The node has nothing in the topic any more.
    Gone { node: &'a str },
    /// A broadcast for the topic's subscribers.
    Broadcast {
        node: &'a str,
        event: &'a str,
        payload: &'a str,
    },
    /// A load marker, echoed back to the node that published it.
    Marker { node: &'a str, token: &'a str },
}

impl<'a> Frame<'a> {
    /// The node that published the message.
    pub(crate) fn node(&self) -> &'a str {
        match self {
            Frame::Diff { node, .. }
            | Frame::Reset { node, .. }
            | Frame::Gone { node }
            | Frame::Broadcast { node, .. }
            | Frame::Marker { node, .. } => node,
        }
    }

    /// Decodes a whole message.
    ///
    /// # Errors
    /// Any input [`Frame::encode`] could not have written.
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Frame<'a>, WireError> {
        decode::frame(bytes)
    }

    /// Encodes the message.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(kind_of(self), self.node());
        match self {
            Frame::Diff { joins, leaves, .. } => {
                w.entries(joins.iter().copied());
                w.entries(leaves.iter().copied());
            }
            Frame::Reset { presences, .. } => w.entries(presences.iter().copied()),
            Frame::Gone { .. } => {}
            Frame::Broadcast { event, payload, .. } => {
                w.str(event);
                w.str(payload);
            }
            Frame::Marker { token, .. } => w.str(token),
        }
        w.finish()
    }
}

fn kind_of(f: &Frame<'_>) -> u8 {
    match f {
        Frame::Diff { .. } => kind::DIFF,
        Frame::Reset { .. } => kind::RESET,
        Frame::Gone { .. } => kind::GONE,
        Frame::Broadcast { .. } => kind::BROADCAST,
        Frame::Marker { .. } => kind::MARKER,
    }
}

/// Decodes a stored hash value: [`VERSION`] then one entry.
///
/// # Errors
/// Any input [`encode_hash_value`] could not have written.
pub(crate) fn decode_hash_value(bytes: &[u8]) -> Result<Entry<'_>, WireError> {
    decode::hash_value(bytes)
}

/// Why a message or value was refused. Small and `Copy`: refusals are counted, not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WireError {
    /// Written in another version of the format (or the text format before version 1).
    #[error("node-to-node format version {0}, this node speaks version {VERSION}")]
    UnknownVersion(u8),
    /// The input ends before the field it was reading (a length or count past the end).
    #[error("node-to-node message ends early")]
    Truncated,
    /// A field holds what the encoder never writes.
    #[error("malformed node-to-node message: {0}")]
    Malformed(&'static str),
}

/// One presence of some node, owned: what a remote view and the local mirror keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Presence {
    pub(crate) key: String,
    pub(crate) presence_ref: PresenceRef,
    pub(crate) prev_ref: Option<PresenceRef>,
    /// The meta's JSON object text, as received (or as the core holds it).
    pub(crate) meta: Box<str>,
}

impl Presence {
    /// The entry to encode.
    pub(crate) fn entry(&self) -> Entry<'_> {
        Entry {
            key: &self.key,
            presence_ref: self.presence_ref,
            prev_ref: self.prev_ref,
            meta: &self.meta,
        }
    }
}

impl From<Entry<'_>> for Presence {
    fn from(e: Entry<'_>) -> Presence {
        Presence {
            key: e.key.to_string(),
            presence_ref: e.presence_ref,
            prev_ref: e.prev_ref,
            meta: e.meta.into(),
        }
    }
}

pub(crate) use crate::presences::NodePresences;

#[cfg(test)]
mod tests;
