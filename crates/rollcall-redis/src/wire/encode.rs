//! Writing the node-to-node format: a version byte, then fields, each string length-prefixed
//! with an unsigned LEB128 varint (1 byte below 128), refs as 8 bytes big-endian.

use super::{Entry, FLAG_PREV, VERSION};

/// Builds one message: the header first ([`Writer::new`]), then the kind's fields in order.
#[derive(Debug)]
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    /// Starts a message of `kind` from `node`.
    pub(crate) fn new(kind: u8, node: &str) -> Writer {
        let mut w = Writer(Vec::with_capacity(64 + node.len()));
        w.0.push(VERSION);
        w.0.push(kind);
        w.str(node);
        w
    }

    /// A length-prefixed string.
    pub(crate) fn str(&mut self, s: &str) {
        varint(&mut self.0, s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    /// A count, then each entry.
    pub(crate) fn entries<'a>(&mut self, entries: impl ExactSizeIterator<Item = Entry<'a>>) {
        varint(&mut self.0, entries.len());
        for e in entries {
            entry(&mut self.0, &e);
        }
    }

    /// The encoded message.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// A stored hash value: [`VERSION`] then the entry.
pub(crate) fn encode_hash_value(e: &Entry<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + e.key.len() + e.meta.len());
    out.push(VERSION);
    entry(&mut out, e);
    out
}

/// key, ref, flags, [prev ref], meta.
fn entry(out: &mut Vec<u8>, e: &Entry<'_>) {
    varint(out, e.key.len());
    out.extend_from_slice(e.key.as_bytes());
    out.extend_from_slice(&e.presence_ref.raw().to_be_bytes());
    match e.prev_ref {
        Some(prev) => {
            out.push(FLAG_PREV);
            out.extend_from_slice(&prev.raw().to_be_bytes());
        }
        None => out.push(0),
    }
    varint(out, e.meta.len());
    out.extend_from_slice(e.meta.as_bytes());
}

/// Unsigned LEB128: 7 bits per byte, low bits first, the high bit set on all but the last.
fn varint(out: &mut Vec<u8>, n: usize) {
    // Lengths come from in-memory strings and collections; the decoder refuses more than
    // u32::MAX, so saturating here keeps the two in step for inputs no node holds.
    let mut n = u32::try_from(n).unwrap_or(u32::MAX);
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
