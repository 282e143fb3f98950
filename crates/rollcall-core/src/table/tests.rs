use super::*;

fn minter() -> impl FnMut() -> PresenceRef {
    let mut n = 0;
    move || {
        n += 1;
        PresenceRef::new(n).unwrap()
    }
}

fn track(
    table: &mut Table,
    held: &[u32],
    topic: &str,
    key: &str,
    meta: &str,
    mint: &mut impl FnMut() -> PresenceRef,
    cfg: &Config,
    out: &mut Outputs,
) -> Result<TrackOutcome, TrackError> {
    let meta = Meta::parse(meta).unwrap();
    let at = table.keys.locate(key);
    table.track(
        held,
        &Topic::new(topic),
        &Key::new(key),
        at,
        meta,
        Millis(0),
        mint,
        cfg,
        out,
    )
}

#[test]
fn retracking_changes_meta_as_one_join_plus_leave() {
    let cfg = Config::default();
    let mut t = Table::new(&cfg);
    let mut mint = minter();
    let mut out = Outputs::default();
    let first = track(
        &mut t,
        &[],
        "t",
        "a",
        r#"{"s":1}"#,
        &mut mint,
        &cfg,
        &mut out,
    )
    .unwrap();
    let p = first.joined.unwrap();
    assert_eq!(first.change, TrackChange::Joined);
    let again = track(
        &mut t,
        &[p],
        "t",
        "a",
        r#"{"s":1}"#,
        &mut mint,
        &cfg,
        &mut out,
    )
    .unwrap();
    assert_eq!(again.change, TrackChange::Unchanged);
    assert_eq!(out.diffs.len(), 1);
    let upd = track(
        &mut t,
        &[p],
        "t",
        "a",
        r#"{"s":2}"#,
        &mut mint,
        &cfg,
        &mut out,
    )
    .unwrap();
    assert_eq!(upd.change, TrackChange::Updated);
    let d = &out.diffs[1].diff;
    assert_eq!(d.joins[0].presence.prev_ref, Some(first.presence_ref));
    assert_eq!(d.leaves[0].presence.presence_ref, first.presence_ref);
    assert_ne!(first.presence_ref, upd.presence_ref);
    assert_eq!(t.get("t", "a").len(), 1);
    assert_eq!(t.get("t", "a")[0].prev_ref, Some(first.presence_ref));
}

#[test]
fn two_connections_hold_two_presences_under_one_key_and_leave_one_by_one() {
    let cfg = Config::default();
    let mut t = Table::new(&cfg);
    let mut mint = minter();
    let mut out = Outputs::default();
    let p1 = track(&mut t, &[], "t", "u", "{}", &mut mint, &cfg, &mut out).unwrap();
    let p2 = track(&mut t, &[], "t", "u", "{}", &mut mint, &cfg, &mut out).unwrap();
    let other = track(&mut t, &[], "t", "v", "{}", &mut mint, &cfg, &mut out).unwrap();
    assert_eq!((t.get("t", "u").len(), t.key_count("t")), (2, 2));
    let (p1, p2, other) = (
        p1.joined.unwrap(),
        p2.joined.unwrap(),
        other.joined.unwrap(),
    );
    let (z, c) = (Millis(0), LeaveReason::Closed);
    t.remove(p1, None, true, z, c, z, &cfg, &mut out);
    assert_eq!(t.get("t", "u").len(), 1);
    assert_eq!(&*out.diffs.last().unwrap().diff.leaves[0].key, "u");
    t.remove(other, None, true, z, c, z, &cfg, &mut out);
    assert_eq!((t.presences(), t.key_count("t")), (1, 1));
    assert_eq!(t.list("t")[0].1.len(), 1);
    t.remove(p2, None, true, z, c, z, &cfg, &mut out);
    assert_eq!(
        (t.presences(), t.key_count("t"), t.topics.count()),
        (0, 0, 0)
    );
    assert!(t.topics.find("t").is_none(), "an empty topic is freed");
}

#[test]
fn limits_refuse_without_changing_anything() {
    let cfg = Config {
        max_presences_per_key: 1,
        max_keys_per_topic: 1,
        ..Config::default()
    };
    let mut t = Table::new(&cfg);
    let mut mint = minter();
    let mut out = Outputs::default();
    track(&mut t, &[], "t", "a", "{}", &mut mint, &cfg, &mut out).unwrap();
    let e = track(&mut t, &[], "t", "a", "{}", &mut mint, &cfg, &mut out);
    assert_eq!(e.err(), Some(TrackError::TooManyPresences { max: 1 }));
    let e = track(&mut t, &[], "t", "b", "{}", &mut mint, &cfg, &mut out);
    assert_eq!(e.err(), Some(TrackError::TooManyKeys { max: 1 }));
    assert_eq!(
        (t.key_count("t"), t.presences(), t.keys.offline()),
        (1, 1, 0)
    );
}

#[test]
fn batched_diffs_flush_when_the_window_closes() {
    let cfg = Config {
        diff_batch_window: Millis(50),
        timer_granularity: Millis(10),
        ..Config::default()
    };
    let mut t = Table::new(&cfg);
    let mut mint = minter();
    let mut out = Outputs::default();
    let a = track(&mut t, &[], "t", "a", "{}", &mut mint, &cfg, &mut out).unwrap();
    let c = LeaveReason::Untracked;
    t.remove(
        a.joined.unwrap(),
        None,
        true,
        Millis(10),
        c,
        Millis(10),
        &cfg,
        &mut out,
    );
    track(&mut t, &[], "t", "b", "{}", &mut mint, &cfg, &mut out).unwrap();
    assert!(out.diffs.is_empty());
    assert_eq!(t.topics.next_due(), Some(Millis(50)));
    t.topics.flush(Millis(49), false, &mut out.diffs);
    assert!(out.diffs.is_empty());
    t.topics.flush(Millis(50), false, &mut out.diffs);
    assert_eq!(out.diffs.len(), 1);
    assert_eq!(out.diffs[0].diff.joins.len(), 1);
    assert_eq!(&*out.diffs[0].diff.joins[0].key, "b");
    assert!(out.diffs[0].diff.leaves.is_empty());
}
