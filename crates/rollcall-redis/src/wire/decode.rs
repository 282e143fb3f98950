//! Reading the node-to-node format, borrowing from the input. The reader refuses everything the
//! encoder never writes (another version, an overlong varint, a length or count past the end,
//! unknown flags, a zero ref, a meta that is not `{..}`, trailing bytes), so a decoded message
//! re-encodes to the same bytes.

use rollcall_core::PresenceRef;

use super::{Entry, FLAG_PREV, Frame, VERSION, WireError, kind};

/// The fewest bytes an entry takes: key length, ref, flags, meta length, `{}`.
const MIN_ENTRY: usize = 1 + 8 + 1 + 1 + 2;

pub(super) fn frame(bytes: &[u8]) -> Result<Frame<'_>, WireError> {
    let mut r = Reader::versioned(bytes)?;
    let k = r.u8()?;
    let node = r.str()?;
    let f = match k {
        kind::DIFF => Frame::Diff {
            node,
            joins: r.entries()?,
            leaves: r.entries()?,
        },
        kind::RESET => Frame::Reset {
            node,
            presences: r.entries()?,
        },
        kind::GONE => Frame::Gone { node },
        kind::BROADCAST => Frame::Broadcast {
            node,
            event: r.str()?,
            payload: r.str()?,
        },
        kind::MARKER => Frame::Marker {
            node,
            token: r.str()?,
        },
        _ => return Err(WireError::Malformed("unknown message kind")),
    };
    r.end()?;
    Ok(f)
}

pub(super) fn hash_value(bytes: &[u8]) -> Result<Entry<'_>, WireError> {
    let mut r = Reader::versioned(bytes)?;
    let e = r.entry()?;
    r.end()?;
    Ok(e)
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Checks the version byte.
    fn versioned(bytes: &'a [u8]) -> Result<Reader<'a>, WireError> {
        match bytes.split_first() {
            None => Err(WireError::Truncated),
            Some((&VERSION, rest)) => Ok(Reader { rest }),
            Some((&v, _)) => Err(WireError::UnknownVersion(v)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let b: [u8; 8] = self.take(8)?.try_into().expect("take(8) returns 8 bytes");
        Ok(u64::from_be_bytes(b))
    }

    /// A minimal LEB128 varint of at most 32 bits.
    fn varint(&mut self) -> Result<usize, WireError> {
        let mut n: u64 = 0;
        for i in 0..5 {
            let b = self.u8()?;
            n |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(WireError::Malformed("overlong length"));
                }
                return u32::try_from(n)
                    .map(|n| n as usize)
                    .map_err(|_| WireError::Malformed("length over 32 bits"));
            }
        }
        Err(WireError::Malformed("length over 32 bits"))
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        let n = self.varint()?;
        std::str::from_utf8(self.take(n)?).map_err(|_| WireError::Malformed("text is not utf-8"))
    }

    fn presence_ref(&mut self) -> Result<PresenceRef, WireError> {
        PresenceRef::new(self.u64()?).ok_or(WireError::Malformed("zero ref"))
    }

    fn entry(&mut self) -> Result<Entry<'a>, WireError> {
        let key = self.str()?;
        let presence_ref = self.presence_ref()?;
        let prev_ref = match self.u8()? {
            0 => None,
            FLAG_PREV => Some(self.presence_ref()?),
            _ => return Err(WireError::Malformed("unknown entry flags")),
        };
        let meta = self.str()?;
        // Rendering splices the meta's members between its braces: only the shape is checked
        // (the JSON inside is the sending core's, normalised there, and is not parsed here).
        if meta.len() < 2 || !meta.starts_with('{') || !meta.ends_with('}') {
            return Err(WireError::Malformed("meta is not an object"));
        }
        Ok(Entry {
            key,
            presence_ref,
            prev_ref,
            meta,
        })
    }

    fn entries(&mut self) -> Result<Vec<Entry<'a>>, WireError> {
        let n = self.varint()?;
        // A count the rest cannot hold is refused before allocating for it.
        if n > self.rest.len() / MIN_ENTRY {
            return Err(WireError::Truncated);
        }
        (0..n).map(|_| self.entry()).collect()
    }

    fn end(&self) -> Result<(), WireError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(WireError::Malformed("trailing bytes"))
        }
    }
}
