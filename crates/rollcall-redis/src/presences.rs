//! [`NodePresences`]: one node's presences in one topic, by `phx_ref`, in ref order. Remote
//! views and the local mirror hold one per (topic, node), and with rooms spread over many
//! nodes most of them hold a single presence: a `BTreeMap` spent a whole 11-slot leaf
//! (~0.8 KB) on each, most of the ~9 KB per connection that views cost in the 400k run. Up to
//! [`FEW`] presences live in a sorted small vector (the first inline, no allocation); more
//! move to a `BTreeMap`, where nodes fill up.

use std::collections::BTreeMap;
use std::collections::btree_map;

use rollcall_core::PresenceRef;
use smallvec::SmallVec;

use crate::wire::Presence;

/// Most presences kept in the small vector before moving to a map.
const FEW: usize = 8;

/// One node's presences in one topic, by `phx_ref`, iterated in ref order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NodePresences {
    /// Up to [`FEW`], sorted by ref.
    Few(SmallVec<[(PresenceRef, Presence); 1]>),
    /// More.
    Many(BTreeMap<PresenceRef, Presence>),
}

impl Default for NodePresences {
    fn default() -> Self {
        NodePresences::Few(SmallVec::new())
    }
}

impl NodePresences {
    /// Inserts or replaces the presence of ref `r`; returns the one replaced.
    pub(crate) fn insert(&mut self, r: PresenceRef, p: Presence) -> Option<Presence> {
        match self {
            NodePresences::Few(v) => match v.binary_search_by_key(&r, |e| e.0) {
                Ok(i) => Some(std::mem::replace(&mut v[i].1, p)),
                Err(i) if v.len() < FEW => {
                    v.insert(i, (r, p));
                    None
                }
                Err(_) => {
                    let mut m: BTreeMap<PresenceRef, Presence> = v.drain(..).collect();
                    m.insert(r, p);
                    *self = NodePresences::Many(m);
                    None
                }
            },
            NodePresences::Many(m) => m.insert(r, p),
        }
    }

    /// Inserts the presence of ref `r` unless that ref is already there; true if inserted.
    pub(crate) fn insert_new(&mut self, r: PresenceRef, p: Presence) -> bool {
        if self.contains_key(&r) {
            return false;
        }
        self.insert(r, p);
        true
    }

    /// Removes the presence of ref `r`.
    pub(crate) fn remove(&mut self, r: &PresenceRef) -> Option<Presence> {
        match self {
            NodePresences::Few(v) => {
                let i = v.binary_search_by_key(r, |e| e.0).ok()?;
                Some(v.remove(i).1)
            }
            NodePresences::Many(m) => m.remove(r),
        }
    }

    /// The presence of ref `r`.
    pub(crate) fn get(&self, r: &PresenceRef) -> Option<&Presence> {
        match self {
            NodePresences::Few(v) => v.binary_search_by_key(r, |e| e.0).ok().map(|i| &v[i].1),
            NodePresences::Many(m) => m.get(r),
        }
    }

    /// Whether ref `r` is there.
    pub(crate) fn contains_key(&self, r: &PresenceRef) -> bool {
        self.get(r).is_some()
    }

    /// Number of presences.
    pub(crate) fn len(&self) -> usize {
        match self {
            NodePresences::Few(v) => v.len(),
            NodePresences::Many(m) => m.len(),
        }
    }

    /// True when there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(ref, presence)` in ref order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        match self {
            NodePresences::Few(v) => Iter::Few(v.iter()),
            NodePresences::Many(m) => Iter::Many(m.iter()),
        }
    }

    /// Refs in order.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = &PresenceRef> {
        self.iter().map(|(r, _)| r)
    }

    /// Presences in ref order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Presence> {
        self.iter().map(|(_, p)| p)
    }

    /// The presences, owned, in ref order.
    pub(crate) fn into_values(self) -> Box<dyn Iterator<Item = Presence>> {
        match self {
            NodePresences::Few(v) => Box::new(v.into_iter().map(|(_, p)| p)),
            NodePresences::Many(m) => Box::new(m.into_values()),
        }
    }
}

impl FromIterator<(PresenceRef, Presence)> for NodePresences {
    fn from_iter<I: IntoIterator<Item = (PresenceRef, Presence)>>(iter: I) -> Self {
        let mut out = NodePresences::default();
        for (r, p) in iter {
            out.insert(r, p);
        }
        out
    }
}

impl<'a> IntoIterator for &'a NodePresences {
    type Item = (&'a PresenceRef, &'a Presence);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Iterator of [`NodePresences::iter`].
pub(crate) enum Iter<'a> {
    Few(std::slice::Iter<'a, (PresenceRef, Presence)>),
    Many(btree_map::Iter<'a, PresenceRef, Presence>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a PresenceRef, &'a Presence);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Few(i) => i.next().map(|(r, p)| (r, p)),
            Iter::Many(i) => i.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(r: u64) -> Presence {
        Presence {
            key: format!("k{r}"),
            presence_ref: PresenceRef::new(r).unwrap(),
            prev_ref: None,
            meta: "{}".into(),
        }
    }

    #[test]
    fn one_presence_needs_no_allocation_and_is_small() {
        let mut n = NodePresences::default();
        n.insert(PresenceRef::new(7).unwrap(), p(7));
        assert!(matches!(&n, NodePresences::Few(v) if !v.spilled()));
        assert!(std::mem::size_of::<NodePresences>() <= 96);
    }

    proptest! {
        /// Against a BTreeMap: the same answers and the same order, across the switch to a map.
        #[test]
        fn behaves_like_a_btreemap(ops in proptest::collection::vec((0u8..3, 1u64..24), 0..80)) {
            let mut model: BTreeMap<PresenceRef, Presence> = BTreeMap::new();
            let mut n = NodePresences::default();
            for (op, r) in ops {
                let key = PresenceRef::new(r).unwrap();
                match op {
                    0 => prop_assert_eq!(n.insert(key, p(r)), model.insert(key, p(r))),
                    1 => prop_assert_eq!(n.remove(&key), model.remove(&key)),
                    _ => {
                        let fresh = !model.contains_key(&key);
                        if fresh {
                            model.insert(key, p(r));
                        }
                        prop_assert_eq!(n.insert_new(key, p(r)), fresh);
                    }
                }
                prop_assert_eq!(n.len(), model.len());
                prop_assert_eq!(n.get(&key), model.get(&key));
                let a: Vec<_> = n.iter().map(|(r, p)| (*r, p.clone())).collect();
                let b: Vec<_> = model.iter().map(|(r, p)| (*r, p.clone())).collect();
                prop_assert_eq!(a, b);
            }
            let owned: Vec<Presence> = n.clone().into_values().collect();
            prop_assert_eq!(owned, model.values().cloned().collect::<Vec<_>>());
        }
    }
}
