//! `rollcall-loadgen million`: a cluster of Rollcall nodes on one Redis, loaded with up to a
//! million connections, held, checked exactly, then one node killed and its clients moved.
//!
//! Phases: start the nodes → ramp (connections placed at random over the nodes, rooms of
//! `--rooms`, one track each) → hold (heartbeats only) → check a sample of rooms through the
//! HTTP API of random nodes → `kill -9` one node, wait until the sample shows its presences gone,
//! check that every surviving room-mate saw each of them leave exactly once → reconnect storm
//! (the killed node's clients come back on other nodes) → check the sample again → tear down.
//! A sampler thread records connections, RSS, CPU and Redis commands over the whole run.

pub mod nodes;
pub mod sample;
pub mod series;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::opts::{Placement, RunArgs, groups, mix, parse_duration};
use crate::probe::{today, usage_of};
use crate::run::{Fleet, Latency, Mode, merge};
use crate::worker::{Ctl, Tally};
use nodes::{Nodes, Shards};
use sample::Check;
use series::Point;

/// Options of `rollcall-loadgen million`.
#[derive(Debug, Clone, clap::Args)]
pub struct MillionArgs {
    /// The `rollcall` binary to run as nodes.
    #[arg(long, default_value = "target/release/rollcall")]
    pub rollcall: PathBuf,
    /// Connections in total.
    #[arg(short = 'n', long, default_value_t = 1_000_000)]
    pub connections: usize,
    /// Nodes; 0 = one per 18,000 connections, and enough that after the kill each survivor
    /// holds at most 19,000 (the 20,000-fd limit per process), at least 2.
    #[arg(long, default_value_t = 0)]
    pub nodes: usize,
    /// Room sizes, as for `run --rooms`.
    #[arg(long, default_value = "10")]
    pub rooms: String,
    /// Heartbeat interval of every connection (realtime-js: 25 s).
    #[arg(long, default_value = "25s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// How long every connection is held before the checks.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub hold: Duration,
    /// The nodes' `--node-timeout`: how long a killed node's presences may take to leave.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub node_timeout: Duration,
    /// The Redis the nodes share (a fresh key prefix per run; its keys are deleted at the end);
    /// with `--redis-cluster`, every master of the cluster, comma-separated (all are measured).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// `--redis-url` is a Redis Cluster: nodes run with `--redis-cluster`.
    #[arg(long)]
    pub redis_cluster: bool,
    /// Port of node 0; node k listens on `base_port + k`.
    #[arg(long, default_value_t = 4500)]
    pub base_port: u16,
    /// Rooms whose presence_state is compared exactly.
    #[arg(long, default_value_t = 1000)]
    pub sample_rooms: usize,
    /// Connection set-ups in flight per worker while ramping and reconnecting.
    #[arg(long, default_value_t = 32)]
    pub ramp_concurrency: usize,
    /// Sampler period.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub sample_every: Duration,
    /// Extra `rollcall` arguments, space separated.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub rollcall_args: String,
    /// Node logs go here.
    #[arg(long, default_value = "/tmp/rollcall-million")]
    pub work_dir: PathBuf,
    /// Write the JSON report here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the time-series plot here (PNG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Seed of the node killed and the rooms sampled.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// Memory at the end of the ramp, all processes of the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Memory {
    /// Summed node RSS, MiB.
    pub nodes_rss_mib: f64,
    /// Redis RSS, MiB (growth over the run: `redis_rss_growth_mib`).
    pub redis_rss_mib: f64,
    /// Redis RSS growth since before the nodes started, MiB.
    pub redis_rss_growth_mib: f64,
    /// (node RSS growth + Redis RSS growth) per connection held, bytes.
    pub server_bytes_per_conn: f64,
    /// Load generator RSS per connection, bytes.
    pub loadgen_bytes_per_conn: f64,
    /// Kernel slab growth over the ramp, MiB (both ends of every loopback socket).
    pub slab_growth_mib: f64,
}

/// The JSON report of one `million` run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MillionReport {
    /// UTC date.
    pub date: String,
    /// The command line.
    pub command: String,
    /// Nodes started.
    pub nodes: usize,
    /// Load generator worker processes.
    pub workers: usize,
    /// Connections asked for.
    pub connections_target: usize,
    /// Connections up after the ramp.
    pub connections_held: u64,
    /// Connections that failed to come up.
    pub connect_errors: u64,
    /// Connections closed before the kill (must be 0).
    pub closed_before_kill: u64,
    /// Ramp time, seconds, and node CPU seconds spent in it.
    pub ramp_s: f64,
    /// Node CPU per connection set-up (connect + join + track, Redis writes), µs.
    pub ramp_cpu_us_per_connect: f64,
    /// Memory once every connection is up.
    pub memory: Memory,
    /// Hold phase length, seconds.
    pub hold_s: f64,
    /// Node cores in the hold phase (heartbeats + status refresh).
    pub hold_nodes_cores: f64,
    /// Redis cores in the hold phase.
    pub hold_redis_cores: f64,
    /// Redis commands per second in the hold phase.
    pub hold_redis_ops_per_s: f64,
    /// The same per server (one entry per master of a Redis Cluster).
    pub hold_redis_ops_per_s_by_server: Vec<f64>,
    /// Heartbeat replies per second in the hold phase.
    pub heartbeats_per_s: f64,
    /// Heartbeat round trip in the hold phase.
    pub heartbeat_rtt: Latency,
    /// Sampled rooms after the hold.
    pub check_hold: Check,
    /// The node killed.
    pub killed_node: usize,
    /// Its connections (from the workers' placement).
    pub killed_connections: u64,
    /// Seconds from the kill until every sampled room showed the survivors exactly.
    pub leave_s: f64,
    /// Sampled rooms after the kill.
    pub check_after_kill: Check,
    /// What the surviving connections saw leave.
    pub leaves: Tally,
    /// Seconds from the reconnect order until every closed connection was back.
    pub reconnect_s: f64,
    /// The workers' tally once the storm was over (`reconnected`, `reconnect_errors`).
    pub reconnect: Tally,
    /// Node CPU seconds spent in the reconnect storm.
    pub reconnect_cpu_s: f64,
    /// Sampled rooms read once, as soon as every client was back.
    pub check_reconnect_first: Check,
    /// Seconds after that until the sample was exact (cross-node views catching up), or the
    /// deadline (`2 × node_timeout + 30 s`).
    pub reconnect_exact_s: f64,
    /// Sampled rooms at that point.
    pub check_after_reconnect: Check,
    /// Every goal of the run held (0 errors, exact samples, leaves exactly once, all back).
    pub passed: bool,
    /// The time series.
    pub series: Vec<Point>,
}

/// Nodes for `n` connections: at most 18,000 each, and at most 19,000 on each survivor once
/// one node is killed and its clients come back on the others; at least 2.
fn default_nodes(n: usize) -> usize {
    n.div_ceil(18_000).max(n.div_ceil(19_000) + 1).max(2)
}

fn sum_tallies(ts: &[Tally]) -> Tally {
    ts.iter().fold(Tally::default(), |a, t| Tally {
        index: 0,
        closed: a.closed + t.closed,
        reconnected: a.reconnected + t.reconnected,
        reconnect_errors: a.reconnect_errors + t.reconnect_errors,
        on_dead: a.on_dead + t.on_dead,
        leaves_seen: a.leaves_seen + t.leaves_seen,
        leaves_expected: a.leaves_expected + t.leaves_expected,
        leave_mismatches: a.leave_mismatches + t.leave_mismatches,
    })
}

/// Prints a phase line unless quiet.
fn say(quiet: bool, t0: Instant, what: &str) {
    if !quiet {
        eprintln!("[{:>7.1}s] {what}", t0.elapsed().as_secs_f64());
    }
}

/// Runs the whole scenario and returns its report (also written to `--out`).
///
/// # Errors
/// Bad options, a node or worker that does not start, or an unwritable output. A run that
/// completes but misses a goal is not an error: `passed` is false and the checks say why.
pub async fn million(args: MillionArgs) -> anyhow::Result<MillionReport> {
    anyhow::ensure!(
        args.rollcall.exists(),
        "--rollcall {} does not exist (cargo build --release -p rollcall-server)",
        args.rollcall.display()
    );
    let layout = groups(&args.rooms, args.connections).map_err(anyhow::Error::msg)?;
    let node_count = if args.nodes == 0 {
        default_nodes(args.connections)
    } else {
        args.nodes
    };
    anyhow::ensure!(
        node_count >= 2,
        "--nodes must be at least 2 (one is killed)"
    );
    let redis = Shards::find(&args.redis_url, args.redis_cluster)?;
    let prefix = format!("mil{}", std::process::id());
    let t0 = Instant::now();
    let (redis_rss0, _) = redis.usage();
    let slab0 = nodes::slab_kib();
    let mut cluster = Nodes::start(&args, node_count, &prefix)?;
    say(
        args.quiet,
        t0,
        &format!("{node_count} nodes up on Redis prefix {prefix}"),
    );
    let (nodes_rss0, _) = usage_of(&cluster.pids());

    let load = RunArgs {
        servers: cluster.addrs.clone(),
        connections: args.connections,
        workers: 0,
        rooms: args.rooms.clone(),
        heartbeat: args.heartbeat,
        churn: 0.0,
        duration: args.hold,
        settle: Duration::from_secs(2),
        ramp_concurrency: args.ramp_concurrency,
        server_pids: cluster.pids(),
        redis_url: redis.urls.first().cloned(),
        topic_prefix: "m".into(),
        label: "million".into(),
        note: String::new(),
        out: None,
        quiet: args.quiet,
        placement: Placement::Random,
        reconnect: true,
    };
    let node_targets = |c: &Nodes| -> Vec<_> {
        c.alive()
            .into_iter()
            .zip(c.pids())
            .map(|(k, pid)| (c.addrs[k], pid))
            .collect()
    };
    let mut fleet = Fleet::start(&load, Mode::Processes)?;
    let sampler = series::Sampler::start(
        series::Targets {
            nodes: node_targets(&cluster),
            workers: fleet.pids(),
            phase: "ramp".into(),
        },
        redis.clone(),
        args.sample_every,
    );
    let result = scenario(
        &args,
        &load,
        &layout,
        &mut cluster,
        &mut fleet,
        &sampler,
        node_targets,
        (&redis, redis_rss0, slab0, nodes_rss0),
        t0,
    )
    .await;
    sampler.phase("teardown");
    fleet.exit().await;
    drop(cluster);
    let series = sampler.stop();
    redis.cleanup(&prefix);
    let mut report = result?;
    report.series = series;
    if let Some(path) = &args.out {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "rollcall-loadgen million: {} connections on {} nodes, {}",
            report.connections_held, report.nodes, report.date
        );
        series::plot(&report.series, &title, path)?;
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn scenario(
    args: &MillionArgs,
    load: &RunArgs,
    layout: &[crate::opts::Group],
    cluster: &mut Nodes,
    fleet: &mut Fleet,
    sampler: &series::Sampler,
    node_targets: impl Fn(&Nodes) -> Vec<(std::net::SocketAddr, u32)>,
    (redis, redis_rss0, slab0, nodes_rss0): (&Shards, u64, u64, u64),
    t0: Instant,
) -> anyhow::Result<MillionReport> {
    let quiet = args.quiet;
    let n_nodes = cluster.addrs.len();
    let redis_cpu = || redis.usage().1;
    let (_, cpu_ramp0) = usage_of(&cluster.pids());
    let ramp_t = Instant::now();
    fleet.ramp().await?;
    let ramp_s = ramp_t.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (nodes_rss1, cpu_ramp1) = usage_of(&cluster.pids());
    let (redis_rss1, _) = redis.usage();
    let slab1 = nodes::slab_kib();
    let (workers_rss1, _) = usage_of(&fleet.pids());
    say(
        quiet,
        t0,
        &format!("ramp done in {ramp_s:.1} s; holding {:?}", args.hold),
    );

    sampler.phase("hold");
    let (hold_cpu0, redis_cpu0, ops0, hold_t) = (
        cpu_ramp1,
        redis_cpu(),
        redis.commands_by_server(),
        Instant::now(),
    );
    let reports = fleet.steady().await?;
    let hold_s = hold_t.elapsed().as_secs_f64();
    let (_, hold_cpu1) = usage_of(&cluster.pids());
    let (redis_cpu1, ops1) = (redis_cpu(), redis.commands_by_server());
    let by_server: Vec<f64> = ops1
        .iter()
        .zip(&ops0)
        .map(|(b, a)| b.saturating_sub(*a) as f64 / hold_s.max(1e-9))
        .collect();
    let steady = merge(load, &reports);
    let held = steady.connections_held.max(1) as f64;

    sampler.phase("check");
    let rooms = sample::pick(
        layout,
        &load.topic_prefix,
        args.connections,
        args.sample_rooms,
        args.seed,
    );
    let all = cluster.alive();
    let check_hold = sample::check(&rooms, &cluster.addrs, &all, args.seed ^ 1, |_| true);
    say(
        quiet,
        t0,
        &format!(
            "hold checked: {}/{} rooms exact",
            check_hold.exact, check_hold.rooms
        ),
    );

    let dead = (mix(args.seed ^ 0xDEAD) % n_nodes as u64) as usize;
    fleet.control(Ctl::CountLeaves);
    tokio::time::sleep(Duration::from_millis(500)).await;
    sampler.phase("kill");
    cluster.kill(dead)?;
    sampler
        .targets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .nodes = node_targets(cluster);
    let kill_t = Instant::now();
    say(quiet, t0, &format!("killed node {dead} (kill -9)"));
    let alive = cluster.alive();
    let expect = sample::survivors(Placement::Random, n_nodes, dead);
    let deadline = args.node_timeout * 2 + Duration::from_secs(30);
    let mut check_after_kill;
    let mut round = 0u64;
    loop {
        round += 1;
        check_after_kill =
            sample::check(&rooms, &cluster.addrs, &alive, args.seed ^ round, &expect);
        if check_after_kill.ok() || kill_t.elapsed() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let leave_s = kill_t.elapsed().as_secs_f64();
    // Let any duplicate leave arrive before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let leaves = sum_tallies(&fleet.tallies(dead).await?);
    say(
        quiet,
        t0,
        &format!(
            "leaves: sample exact after {leave_s:.1} s; {} seen / {} expected, {} connections off",
            leaves.leaves_seen, leaves.leaves_expected, leaves.leave_mismatches
        ),
    );

    sampler.phase("reconnect");
    let (_, storm_cpu0) = usage_of(&cluster.pids());
    let storm_t = Instant::now();
    fleet.control(Ctl::Reconnect(dead));
    let storm_deadline = Duration::from_secs(120) + args.node_timeout;
    let mut back;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        back = sum_tallies(&fleet.tallies(dead).await?);
        let done = back.reconnected + back.reconnect_errors >= back.closed;
        if (done && back.closed >= leaves.on_dead) || storm_t.elapsed() > storm_deadline {
            break;
        }
    }
    let reconnect_s = storm_t.elapsed().as_secs_f64();
    let (_, storm_cpu1) = usage_of(&cluster.pids());
    let first_reconnect_check =
        sample::check(&rooms, &cluster.addrs, &alive, args.seed ^ 99, |_| true);
    sampler.phase("after");
    let mut check_after_reconnect;
    let mut round = 100u64;
    let settle = Instant::now();
    loop {
        round += 1;
        check_after_reconnect =
            sample::check(&rooms, &cluster.addrs, &alive, args.seed ^ round, |_| true);
        if check_after_reconnect.ok() || settle.elapsed() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let reconnect_exact_s = settle.elapsed().as_secs_f64();
    say(
        quiet,
        t0,
        &format!(
            "reconnect storm: {} back in {reconnect_s:.1} s ({} errors); sample {}/{} exact",
            back.reconnected,
            back.reconnect_errors,
            check_after_reconnect.exact,
            check_after_reconnect.rooms
        ),
    );

    let mib = |kib: u64| kib as f64 / 1024.0;
    let growth = |a: u64, b: u64| b.saturating_sub(a) as f64 * 1024.0;
    let memory = Memory {
        nodes_rss_mib: mib(nodes_rss1),
        redis_rss_mib: mib(redis_rss1),
        redis_rss_growth_mib: mib(redis_rss1.saturating_sub(redis_rss0)),
        server_bytes_per_conn: (growth(nodes_rss0, nodes_rss1) + growth(redis_rss0, redis_rss1))
            / held,
        loadgen_bytes_per_conn: workers_rss1 as f64 * 1024.0 / held,
        slab_growth_mib: mib(slab1.saturating_sub(slab0)),
    };
    let closed_before_kill = steady.closed_during_run;
    let passed = steady.connect_errors == 0
        && steady.connections_held == args.connections as u64
        && closed_before_kill == 0
        && check_hold.ok()
        && check_after_kill.ok()
        && leaves.leave_mismatches == 0
        && leaves.leaves_seen == leaves.leaves_expected
        && back.reconnect_errors == 0
        && back.reconnected == leaves.on_dead
        && check_after_reconnect.ok();
    Ok(MillionReport {
        date: today(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        nodes: n_nodes,
        workers: fleet.len(),
        connections_target: args.connections,
        connections_held: steady.connections_held,
        connect_errors: steady.connect_errors,
        closed_before_kill,
        ramp_s,
        ramp_cpu_us_per_connect: (cpu_ramp1 - cpu_ramp0) * 1e6 / held,
        memory,
        hold_s,
        hold_nodes_cores: (hold_cpu1 - hold_cpu0) / hold_s.max(1e-9),
        hold_redis_cores: (redis_cpu1 - redis_cpu0) / hold_s.max(1e-9),
        hold_redis_ops_per_s: by_server.iter().sum(),
        hold_redis_ops_per_s_by_server: by_server,
        heartbeats_per_s: steady.heartbeats_per_s,
        heartbeat_rtt: steady.heartbeat_rtt,
        check_hold,
        killed_node: dead,
        killed_connections: leaves.on_dead,
        leave_s,
        check_after_kill,
        leaves,
        reconnect_s,
        reconnect_cpu_s: storm_cpu1 - storm_cpu0,
        reconnect: back,
        check_reconnect_first: first_reconnect_check,
        reconnect_exact_s,
        check_after_reconnect,
        passed,
        series: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::default_nodes;

    #[test]
    fn survivors_of_the_kill_stay_under_the_fd_limit() {
        for n in [3_000, 50_000, 100_000, 200_000, 400_000, 1_000_000] {
            let k = default_nodes(n);
            assert!(n.div_ceil(k) <= 18_000, "{n} on {k}");
            assert!(n.div_ceil(k - 1) <= 19_000, "{n} on {k} after a kill");
        }
        assert_eq!(default_nodes(100_000), 7);
        assert_eq!(default_nodes(400_000), 23);
        assert_eq!(default_nodes(1_000), 2);
    }
}
