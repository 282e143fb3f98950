//! Bucketed deadlines: the timer structure behind expiry, grace, idle and batch flushes.
//!
//! Deadlines are rounded up to a bucket of `granularity` ms. Popping costs O(items due) plus
//! O(log buckets) to find the first bucket, so a tick with nothing due is a single map
//! lookup however many timers are pending. Entries are never cancelled in place: the owner
//! remembers the bucket it last scheduled and ignores stale entries when they pop (lazy
//! cancellation), which keeps re-arming O(1).

use std::collections::BTreeMap;

use crate::slab::reserve_gently;
use crate::time::Millis;

/// A bucket squeezed into 30 bits, stored by owners to tell a live deadline from a stale one.
/// Never 0 (0 means "none armed"); buckets 2^30 - 1 apart share a token, which at worst
/// makes a stale entry run a harmless re-check.
pub(crate) fn token(bucket: u64) -> u32 {
    (bucket % u64::from(TOKEN_MASK)) as u32 + 1
}

/// The bits a [`token`] may use.
pub(crate) const TOKEN_MASK: u32 = (1 << 30) - 1;

/// A set of items, each due at a bucketed deadline.
#[derive(Debug)]
pub(crate) struct Deadlines<T> {
    granularity: u64,
    buckets: BTreeMap<u64, Vec<T>>,
}

impl<T> Deadlines<T> {
    /// An empty set whose deadlines are rounded up to multiples of `granularity` (> 0).
    pub(crate) fn new(granularity: Millis) -> Self {
        Deadlines {
            granularity: granularity.0.max(1),
            buckets: BTreeMap::new(),
        }
    }

    /// The bucket a deadline falls in; items in bucket `b` pop once `now ≥ b × granularity`.
    pub(crate) fn bucket_of(&self, at: Millis) -> u64 {
        at.0.div_ceil(self.granularity)
    }

    /// Schedules `item` at `at` (rounded up) and returns its bucket, the owner's staleness token.
    pub(crate) fn schedule(&mut self, at: Millis, item: T) -> u64 {
        let bucket = self.bucket_of(at);
        // Deadlines are mostly `now + a fixed delay`, so they mostly land in the last bucket:
        // reach it down the rightmost edge of the tree instead of searching for it.
        let items = match self.buckets.last_entry() {
            Some(last) if *last.key() == bucket => last.into_mut(),
            _ => self.buckets.entry(bucket).or_default(),
        };
        reserve_gently(items, 1);
        items.push(item);
        bucket
    }

    /// When the earliest bucket becomes due, if any item is pending.
    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.buckets
            .first_key_value()
            .map(|(b, _)| Millis(b.saturating_mul(self.granularity)))
    }

    /// Moves every item of every bucket due at `now` into `out`, with its bucket.
    pub(crate) fn pop_due(&mut self, now: Millis, out: &mut Vec<(u64, T)>) {
        while let Some(entry) = self.buckets.first_entry() {
            if entry.key().saturating_mul(self.granularity) > now.0 {
                break;
            }
            let bucket = *entry.key();
            out.extend(entry.remove().into_iter().map(|item| (bucket, item)));
        }
    }

    /// Removes and returns one item of the earliest bucket, due or not (the most recently
    /// scheduled of that bucket: order within a bucket is below the timer's resolution).
    pub(crate) fn pop_earliest(&mut self) -> Option<(u64, T)> {
        let mut entry = self.buckets.first_entry()?;
        let bucket = *entry.key();
        let item = entry.get_mut().pop();
        if entry.get().is_empty() {
            entry.remove();
        }
        item.map(|item| (bucket, item))
    }

    /// Number of scheduled entries, stale ones included (for tests and stats).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_pop_once_their_rounded_deadline_passes() {
        let mut d = Deadlines::new(Millis(10));
        assert_eq!(d.schedule(Millis(11), "a"), 2);
        d.schedule(Millis(20), "b");
        d.schedule(Millis(35), "c");
        let mut out = Vec::new();
        d.pop_due(Millis(19), &mut out);
        assert!(out.is_empty());
        d.pop_due(Millis(20), &mut out);
        assert_eq!(out, vec![(2, "a"), (2, "b")]);
        assert_eq!(d.next_due(), Some(Millis(40)));
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn pop_earliest_takes_from_the_first_bucket_even_when_not_due() {
        let mut d = Deadlines::new(Millis(10));
        d.schedule(Millis(30), "late");
        d.schedule(Millis(10), "early");
        assert_eq!(d.pop_earliest(), Some((1, "early")));
        assert_eq!(d.pop_earliest(), Some((3, "late")));
        assert_eq!(d.pop_earliest(), None);
        assert_eq!(d.next_due(), None);
    }

    #[test]
    fn an_empty_set_has_no_next_deadline() {
        let d: Deadlines<u8> = Deadlines::new(Millis(5));
        assert_eq!(d.next_due(), None);
    }
}
