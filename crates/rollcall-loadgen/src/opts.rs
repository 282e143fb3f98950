//! What a run does: the command-line options, the room layout, and each worker's share.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Options of `rollcall-loadgen run`.
#[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
pub struct RunArgs {
    /// Server address(es), comma separated or repeated; connection `i` goes to `server[i % len]`.
    #[arg(
        long = "server",
        value_delimiter = ',',
        default_value = "127.0.0.1:4000"
    )]
    pub servers: Vec<SocketAddr>,
    /// Connections to open in total.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub connections: usize,
    /// Worker processes; 0 = one per 18,000 connections (the 20,000-fd limit per process).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Room sizes as `size[:share]`, comma separated: `2:0.5,10:0.4,1000:0.1` puts half the
    /// connections in 1:1 chats, 40% in rooms of 10 and 10% in rooms of 1,000.
    #[arg(long, default_value = "10")]
    pub rooms: String,
    /// Heartbeat interval of every connection (`30s`, `500ms`).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// Churn: leave + re-join + track operations per second, over all connections.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// How long the measured (steady) phase lasts once every connection is up.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Pause after the ramp before the idle memory is read.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub settle: Duration,
    /// Connection set-ups in flight per worker while ramping.
    #[arg(long, default_value_t = 64)]
    pub ramp_concurrency: usize,
    /// Pid(s) of the server process(es): RSS and CPU are read from /proc.
    #[arg(long = "server-pid", value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// A Redis (`redis://host:port`) whose `total_commands_processed` is read before and after.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Topic prefix, so runs against a long-lived server do not share rooms.
    #[arg(long, default_value = "lg")]
    pub topic_prefix: String,
    /// Name of this run in the report.
    #[arg(long, default_value = "run")]
    pub label: String,
    /// A note shown next to the run in the report.
    #[arg(long, default_value = "")]
    pub note: String,
    /// Write the JSON summary here (it is always printed too).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// No progress bar (tests, logs).
    #[arg(long)]
    pub quiet: bool,
    /// How connections are placed on the servers: `modulo` (connection `i` on `server[i % len]`)
    /// or `random` (a fixed hash of `i`, so a room's members land on unrelated nodes).
    #[arg(long, value_enum, default_value_t = Placement::Modulo)]
    #[serde(default)]
    pub placement: Placement,
    /// A connection the server closes waits for the coordinator's `reconnect` command and then
    /// comes back on another server (used by `million` after it kills a node).
    #[arg(skip)]
    #[serde(default)]
    pub reconnect: bool,
}

/// Connection → server placement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Placement {
    /// `server[i % len]`: room-mates on consecutive servers.
    #[default]
    Modulo,
    /// `server[hash(i) % len]`: room-mates placed at random, reproducibly.
    Random,
}

impl Placement {
    /// Index of the server of connection `i` among `len` servers.
    pub fn server_of(self, i: usize, len: usize) -> usize {
        let len = len.max(1);
        match self {
            Placement::Modulo => i % len,
            Placement::Random => (mix(i as u64) % len as u64) as usize,
        }
    }
}

/// SplitMix64's finaliser: a fixed, well-spread hash of a connection index.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Parses `250ms`, `30s`, `2m` or a bare number of milliseconds.
///
/// # Errors
/// The text is not one of those forms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, mult) = if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1000.0)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60_000.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}"))?;
    if v.is_nan() || v < 0.0 {
        return Err(format!("bad duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * mult / 1000.0))
}

/// A room-size group: `count` connections in rooms of `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// Members per room.
    pub size: usize,
    /// Connections in this group.
    pub count: usize,
}

/// Splits `n` connections by the `--rooms` spec.
///
/// # Errors
/// A size is 0 or not a number, or a share is negative.
pub fn groups(spec: &str, n: usize) -> Result<Vec<Group>, String> {
    let mut parsed = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (size, share) = match part.split_once(':') {
            Some((s, w)) => (
                s,
                w.parse::<f64>()
                    .map_err(|_| format!("bad share in {part:?}"))?,
            ),
            None => (part, 1.0),
        };
        let size: usize = size.parse().map_err(|_| format!("bad size in {part:?}"))?;
        if size == 0 || share.is_nan() || share < 0.0 {
            return Err(format!("bad room group {part:?}"));
        }
        parsed.push((size, share));
    }
    let total: f64 = parsed.iter().map(|p| p.1).sum();
    if parsed.is_empty() || total <= 0.0 {
        return Err(format!("no room groups in {spec:?}"));
    }
    let mut out = Vec::with_capacity(parsed.len());
    let mut left = n;
    for (i, (size, share)) in parsed.iter().enumerate() {
        let count = if i + 1 == parsed.len() {
            left
        } else {
            ((n as f64 * share / total).round() as usize).min(left)
        };
        left -= count;
        out.push(Group { size: *size, count });
    }
    Ok(out)
}

/// Room (topic without `realtime:`) and presence key of connection `i`.
pub fn seat(groups: &[Group], prefix: &str, i: usize) -> (String, String) {
    let mut base = 0;
    for g in groups {
        if i < base + g.count {
            let room = (i - base) / g.size;
            return (format!("{prefix}-{}-{room}", g.size), format!("u{i}"));
        }
        base += g.count;
    }
    (format!("{prefix}-extra"), format!("u{i}"))
}

/// The connection indices that share connection `i`'s room (including `i`).
pub fn room_members(groups: &[Group], i: usize) -> std::ops::Range<usize> {
    let mut base = 0;
    for g in groups {
        if i < base + g.count {
            let first = base + (i - base) / g.size * g.size;
            return first..(first + g.size).min(base + g.count);
        }
        base += g.count;
    }
    i..i + 1
}

/// One worker's share of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerPlan {
    /// The run's options.
    pub args: RunArgs,
    /// This worker's index.
    pub index: usize,
    /// First global connection index.
    pub start: usize,
    /// One past the last global connection index.
    pub end: usize,
}

/// Splits a run over its workers, contiguous ranges of connection indices.
pub fn plans(args: &RunArgs) -> Vec<WorkerPlan> {
    let w = if args.workers == 0 {
        args.connections.div_ceil(18_000).max(1)
    } else {
        args.workers
    };
    (0..w)
        .map(|index| WorkerPlan {
            args: args.clone(),
            index,
            start: args.connections * index / w,
            end: args.connections * (index + 1) / w,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_split_by_share_and_seats_fill_rooms_in_order() {
        let g = groups("2:0.5,10:0.3,1000:0.2", 1000).unwrap();
        assert_eq!(g.iter().map(|g| g.count).sum::<usize>(), 1000);
        assert_eq!(
            g[0],
            Group {
                size: 2,
                count: 500
            }
        );
        assert_eq!(seat(&g, "lg", 0).0, "lg-2-0");
        assert_eq!(seat(&g, "lg", 3).0, "lg-2-1");
        assert_eq!(seat(&g, "lg", 500).0, "lg-10-0");
        assert_eq!(seat(&g, "lg", 999).0, "lg-1000-0");
        assert!(groups("0", 10).is_err());
        assert_eq!(room_members(&g, 3), 2..4);
        assert_eq!(room_members(&g, 505), 500..510);
        assert_eq!(room_members(&g, 999), 800..1000);
        for i in 0..1000 {
            let r = room_members(&g, i);
            assert!(r.contains(&i));
            assert!(
                r.clone()
                    .all(|j| seat(&g, "lg", j).0 == seat(&g, "lg", i).0)
            );
        }
        assert!(groups("", 10).is_err());
    }

    #[test]
    fn random_placement_is_fixed_and_spread() {
        let mut per = [0usize; 4];
        for i in 0..4000 {
            let s = Placement::Random.server_of(i, 4);
            assert_eq!(s, Placement::Random.server_of(i, 4));
            per[s] += 1;
        }
        assert!(per.iter().all(|&c| (800..1200).contains(&c)), "{per:?}");
        assert_eq!(Placement::Modulo.server_of(7, 4), 3);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("x").is_err());
    }
}
