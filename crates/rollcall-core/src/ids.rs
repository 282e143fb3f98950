//! Identifiers: connections, presence refs, topics, keys and watch sets.
//!
//! Topics and keys are reference-counted strings so one allocation is shared by the table,
//! the connection index and the status map.

use std::borrow::Borrow;
use std::fmt;
use std::num::NonZeroU64;
use std::ops::Deref;
use std::sync::Arc;

/// One client connection (a WebSocket), chosen by the adapter and unique while it is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// Identifies one presence (one track of one key by one connection in one topic).
///
/// Kept as a number and rendered on demand as 11 URL-safe base64 characters, the wire's
/// `phx_ref`. A new ref is minted on every track and every meta update, so a client can tell
/// an update from the presence it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PresenceRef(NonZeroU64);

const B64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Length of a rendered [`PresenceRef`].
pub const PRESENCE_REF_LEN: usize = 11;

impl PresenceRef {
    /// Wraps a raw value; `None` for zero, which is reserved so `Option<PresenceRef>` stays 8 bytes.
    pub fn new(raw: u64) -> Option<PresenceRef> {
        NonZeroU64::new(raw).map(PresenceRef)
    }

    /// The raw number behind the ref.
    pub fn raw(self) -> u64 {
        self.0.get()
    }

    /// Renders the ref as URL-safe base64 (no padding) into `buf` and returns it as text.
    pub fn encode(self, buf: &mut [u8; PRESENCE_REF_LEN]) -> &str {
        let v = self.0.get();
        // 64 bits = 10 groups of 6 bits plus 4 bits; most significant first.
        for (i, slot) in buf.iter_mut().enumerate() {
            let shift = 64i32 - 6 * (i as i32 + 1);
            let bits = if shift >= 0 {
                (v >> shift) & 0x3f
            } else {
                (v << (-shift)) & 0x3f
            };
            *slot = B64URL[bits as usize];
        }
        std::str::from_utf8(buf).expect("base64url alphabet is ASCII")
    }

    /// Parses a rendered ref back, for replicas and tests.
    pub fn decode(text: &str) -> Option<PresenceRef> {
        if text.len() != PRESENCE_REF_LEN {
            return None;
        }
        let mut v: u64 = 0;
        for (i, c) in text.bytes().enumerate() {
            let d = B64URL.iter().position(|&b| b == c)? as u64;
            let shift = 64i32 - 6 * (i as i32 + 1);
            if shift >= 0 {
                v |= d << shift;
            } else {
                if d & ((1 << (-shift)) - 1) != 0 {
                    return None;
                }
                v |= d >> (-shift);
            }
        }
        PresenceRef::new(v)
    }
}

impl fmt::Display for PresenceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; PRESENCE_REF_LEN];
        f.write_str(self.encode(&mut buf))
    }
}

macro_rules! shared_str {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Wraps a string; cloning the result later only bumps a reference count.
            pub fn new(s: &str) -> Self {
                $name(Arc::from(s))
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name::new(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(Arc::from(s))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&*self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

shared_str!(
    /// A channel topic as the client names it, e.g. `realtime:room1`.
    Topic
);
shared_str!(
    /// A presence key: who is present (a user id, or a server-generated UUID).
    Key
);

/// One registered watch set (see [`crate::Engine::watch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatchId(pub u64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_render_as_eleven_url_safe_chars_and_round_trip() {
        for raw in [1u64, 2, 63, 64, 0xdead_beef, u64::MAX, 1 << 63] {
            let r = PresenceRef::new(raw).unwrap();
            let text = r.to_string();
            assert_eq!(text.len(), PRESENCE_REF_LEN);
            assert!(
                text.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(PresenceRef::decode(&text), Some(r), "{text}");
        }
    }

    #[test]
    fn distinct_refs_render_distinctly() {
        let a = PresenceRef::new(1).unwrap().to_string();
        let b = PresenceRef::new(2).unwrap().to_string();
        assert_ne!(a, b);
    }

    #[test]
    fn zero_is_not_a_ref() {
        assert!(PresenceRef::new(0).is_none());
        assert_eq!(std::mem::size_of::<Option<PresenceRef>>(), 8);
    }

    #[test]
    fn malformed_ref_text_is_rejected() {
        assert!(PresenceRef::decode("short").is_none());
        assert!(PresenceRef::decode("!!!!!!!!!!!").is_none());
        // the last char carries only 4 bits; low 2 bits set is not a canonical encoding
        assert!(PresenceRef::decode("AAAAAAAAAAB").is_none());
    }
}
