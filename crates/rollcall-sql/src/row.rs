//! Queued rows and their compaction into one batch.
//!
//! A [`Row`] is a status event with its session identity resolved by the writer (so it can
//! be spilled to a file and replayed after a restart). [`Batch::compact`] turns a run of rows
//! into at most three statements' worth of data: logouts of sessions opened in earlier
//! batches (an `UPDATE`), new sessions (an `INSERT`, already closed when their logout is in
//! the same batch), and the last status per key (an upsert).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One queued status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum Row {
    /// A session opens.
    Login {
        key: String,
        run: i64,
        seq: i64,
        at: i64,
    },
    /// A session closes; `seq` is `None` when this run never saw its login.
    Logout {
        key: String,
        run: i64,
        seq: Option<i64>,
        at: i64,
        reason: String,
    },
    /// Idle or active again: only the key's status changes.
    Status {
        key: String,
        status: String,
        at: i64,
    },
}

/// A new session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewSession {
    pub(crate) key: String,
    pub(crate) run: i64,
    pub(crate) seq: i64,
    pub(crate) login_at: i64,
    pub(crate) logout_at: Option<i64>,
    pub(crate) reason: Option<String>,
}

/// A logout of a session written by an earlier batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Close {
    pub(crate) run: i64,
    pub(crate) seq: i64,
    pub(crate) at: i64,
    pub(crate) reason: String,
}

/// A key's status after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) key: String,
    pub(crate) status: &'static str,
    pub(crate) at: i64,
}

/// The rows of one transaction, compacted.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) closes: Vec<Close>,
    pub(crate) inserts: Vec<NewSession>,
    pub(crate) seen: Vec<Seen>,
    pub(crate) events: usize,
}

fn status_name(s: &str) -> &'static str {
    match s {
        "idle" => "idle",
        "offline" => "offline",
        _ => "online",
    }
}

impl Batch {
    /// Compacts `rows` (in queue order).
    pub(crate) fn compact(rows: &[Row]) -> Batch {
        let mut b = Batch {
            events: rows.len(),
            ..Batch::default()
        };
        let mut inserted: HashMap<(i64, i64), usize> = HashMap::new();
        let mut seen_at: HashMap<String, usize> = HashMap::new();
        let mut see = |b: &mut Batch, key: &str, status: &'static str, at: i64| {
            match seen_at.get(key) {
                // A later event with an earlier time (two tasks raced to report) loses, as
                // the upsert's `WHERE excluded.last_seen >= last_seen` makes it lose in SQL.
                Some(&i) if b.seen[i].at > at => {}
                Some(&i) => {
                    b.seen[i].status = status;
                    b.seen[i].at = at;
                }
                None => {
                    seen_at.insert(key.to_string(), b.seen.len());
                    b.seen.push(Seen {
                        key: key.to_string(),
                        status,
                        at,
                    });
                }
            }
        };
        for row in rows {
            match row {
                Row::Login { key, run, seq, at } => {
                    inserted.insert((*run, *seq), b.inserts.len());
                    b.inserts.push(NewSession {
                        key: key.clone(),
                        run: *run,
                        seq: *seq,
                        login_at: *at,
                        logout_at: None,
                        reason: None,
                    });
                    see(&mut b, key, "online", *at);
                }
                Row::Logout {
                    key,
                    run,
                    seq,
                    at,
                    reason,
                } => {
                    if let Some(seq) = seq {
                        match inserted.get(&(*run, *seq)) {
                            Some(&i) => {
                                b.inserts[i].logout_at = Some(*at);
                                b.inserts[i].reason = Some(reason.clone());
                            }
                            None => b.closes.push(Close {
                                run: *run,
                                seq: *seq,
                                at: *at,
                                reason: reason.clone(),
                            }),
                        }
                    }
                    see(&mut b, key, "offline", *at);
                }
                Row::Status { key, status, at } => see(&mut b, key, status_name(status), *at),
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(key: &str, seq: i64, at: i64) -> Row {
        Row::Login {
            key: key.into(),
            run: 1,
            seq,
            at,
        }
    }

    fn logout(key: &str, seq: i64, at: i64) -> Row {
        Row::Logout {
            key: key.into(),
            run: 1,
            seq: Some(seq),
            at,
            reason: "closed".into(),
        }
    }

    #[test]
    fn a_login_and_its_logout_in_one_batch_become_one_closed_insert() {
        let b = Batch::compact(&[login("a", 1, 10), logout("a", 1, 20)]);
        assert!(b.closes.is_empty());
        assert_eq!(b.inserts.len(), 1);
        assert_eq!(b.inserts[0].logout_at, Some(20));
        assert_eq!(b.seen.len(), 1);
        assert_eq!((b.seen[0].status, b.seen[0].at), ("offline", 20));
    }

    #[test]
    fn a_logout_of_an_earlier_session_is_an_update_and_a_relogin_stays_open() {
        let b = Batch::compact(&[logout("a", 1, 20), login("a", 2, 30)]);
        assert_eq!(b.closes.len(), 1);
        assert_eq!(b.closes[0].seq, 1);
        assert_eq!(b.inserts.len(), 1);
        assert_eq!(b.inserts[0].logout_at, None);
        assert_eq!((b.seen[0].status, b.seen[0].at), ("online", 30));
        assert_eq!(b.events, 2);
    }

    #[test]
    fn an_out_of_order_older_event_does_not_win_the_status() {
        let b = Batch::compact(&[login("a", 2, 30), logout("a", 1, 20)]);
        assert_eq!((b.seen[0].status, b.seen[0].at), ("online", 30));
    }

    #[test]
    fn rows_round_trip_through_json() {
        let r = logout("k", 3, 4);
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Row>(&s).unwrap(), r);
    }
}
