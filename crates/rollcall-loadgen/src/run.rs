//! The coordinator: starts the workers (processes or tasks), shows the ramp, reads the servers
//! at the phase boundaries and merges the workers' reports into one [`Summary`].

use std::process::Stdio;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::opts::{RunArgs, WorkerPlan, plans};
use crate::probe::{redis_commands, today, usage_of};
use crate::worker::{Ctl, Tally, WorkerReport, run_worker};

/// Where the workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Re-executes this binary as `rollcall-loadgen worker` (the real thing: one fd limit each).
    Processes,
    /// Tokio tasks in this process (tests; bounded by this process' fd limit).
    InProcess,
}

/// Track → diff latency, milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Latency {
    /// Diff joins timed.
    pub samples: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

/// The server side, read from /proc (summed over the given pids).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerUsage {
    /// RSS before the first connection, KiB.
    pub rss_kib_before: u64,
    /// RSS once every connection is up and idle, KiB.
    pub rss_kib_after_ramp: u64,
    /// RSS at the end of the steady phase, KiB.
    pub rss_kib_end: u64,
    /// (after ramp − before) / connections held.
    pub rss_bytes_per_conn: f64,
    /// CPU seconds spent while ramping (connect + join + track).
    pub cpu_s_ramp: f64,
    /// CPU seconds spent in the steady phase.
    pub cpu_s_steady: f64,
    /// Ramp CPU per connection held.
    pub cpu_us_per_connect: f64,
    /// Steady CPU per heartbeat reply (meaningful without churn).
    pub cpu_us_per_heartbeat: f64,
    /// Cores busy on average in the steady phase.
    pub cores_steady: f64,
}

/// Redis commands over the run (`INFO stats` before and after each phase).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RedisUsage {
    /// Commands while ramping.
    pub commands_ramp: u64,
    /// Commands in the steady phase.
    pub commands_steady: u64,
    /// Ramp commands per connection held.
    pub commands_per_connect: f64,
    /// Steady commands per heartbeat reply.
    pub commands_per_heartbeat: f64,
    /// Steady commands per second.
    pub commands_per_s: f64,
}

/// The JSON summary of one run; `docs/results/*.json` hold these.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Name of the run in the report.
    pub label: String,
    /// Free text for the report.
    pub note: String,
    /// The command line that produced it.
    pub command: String,
    /// UTC date.
    pub date: String,
    /// Server addresses.
    pub servers: Vec<String>,
    /// Server pids read.
    pub server_pids: Vec<u32>,
    /// Worker count.
    pub workers: usize,
    /// Connections asked for.
    pub connections_target: usize,
    /// Connections up after the ramp.
    pub connections_held: u64,
    /// Connections that failed to come up.
    pub connect_errors: u64,
    /// Connections closed by the server during the run.
    pub closed_during_run: u64,
    /// `--rooms`.
    pub rooms: String,
    /// Heartbeat interval, ms.
    pub heartbeat_ms: u64,
    /// Churn asked for, operations/s.
    pub churn_per_s: f64,
    /// Steady phase, seconds.
    pub duration_s: f64,
    /// Ramp time, seconds.
    pub ramp_s: f64,
    /// Connections (connect + join + track) per second while ramping.
    pub connects_per_s: f64,
    /// Frames sent + received per second in the steady phase, all workers.
    pub messages_per_s: f64,
    /// Heartbeat replies per second.
    pub heartbeats_per_s: f64,
    /// `presence_diff` frames delivered per second.
    pub diff_deliveries_per_s: f64,
    /// Churn operations completed per second.
    pub churns_per_s: f64,
    /// Track → diff latency.
    pub latency: Latency,
    /// Heartbeat → reply round trip.
    pub heartbeat_rtt: Latency,
    /// Server process figures.
    pub server: ServerUsage,
    /// Redis figures, when `--redis-url` was given.
    pub redis: Option<RedisUsage>,
}

enum Event {
    Progress(u64, u64),
    Ready,
    Stopped(Box<WorkerReport>),
    Tally(Box<Tally>),
}

/// What the coordinator tells one worker, in order.
enum Order {
    Go,
    Ctl(Ctl),
}

struct Handle {
    orders: mpsc::UnboundedSender<Order>,
    exit: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<()>,
    pid: Option<u32>,
}

/// The running workers of one load: ramp, steady phase, then orders ([`Ctl`]) until exit.
pub(crate) struct Fleet {
    handles: Vec<Handle>,
    events: mpsc::UnboundedReceiver<(usize, Event)>,
    /// Connections asked for.
    total: u64,
    quiet: bool,
}

impl Fleet {
    /// Spawns the workers of `args`; they start connecting at once.
    pub(crate) fn start(args: &RunArgs, mode: Mode) -> anyhow::Result<Fleet> {
        let (ev_tx, events) = mpsc::unbounded_channel();
        let mut handles = Vec::new();
        for plan in plans(args) {
            handles.push(match mode {
                Mode::Processes => spawn_process(&plan, ev_tx.clone())?,
                Mode::InProcess => spawn_task(plan, ev_tx.clone()),
            });
        }
        Ok(Fleet {
            handles,
            events,
            total: args.connections as u64,
            quiet: args.quiet,
        })
    }

    /// Worker count.
    pub(crate) fn len(&self) -> usize {
        self.handles.len()
    }

    /// Pids of the worker processes (none in-process).
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.handles.iter().filter_map(|h| h.pid).collect()
    }

    /// Waits until every worker has finished its ramp, with a progress bar unless quiet.
    pub(crate) async fn ramp(&mut self) -> anyhow::Result<()> {
        let bar = (!self.quiet).then(|| {
            let b = indicatif::ProgressBar::new(self.total);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:40}] {pos}/{len} connected {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        let mut up = vec![(0u64, 0u64); self.handles.len()];
        let mut ready = 0;
        while ready < self.handles.len() {
            let Some((w, ev)) = self.events.recv().await else {
                anyhow::bail!("a worker exited while ramping");
            };
            match ev {
                Event::Progress(c, e) => up[w] = (c, e),
                Event::Ready => ready += 1,
                Event::Stopped(_) | Event::Tally(_) => anyhow::bail!("worker {w} stopped early"),
            }
            if let Some(b) = &bar {
                b.set_position(up.iter().map(|u| u.0).sum());
                b.set_message(format!("{} errors", up.iter().map(|u| u.1).sum::<u64>()));
            }
        }
        if let Some(b) = &bar {
            b.finish();
        }
        Ok(())
    }

    /// Starts the steady phase and waits for every worker's report.
    pub(crate) async fn steady(&mut self) -> anyhow::Result<Vec<WorkerReport>> {
        for h in &self.handles {
            let _ = h.orders.send(Order::Go);
        }
        let mut reports = Vec::new();
        while reports.len() < self.handles.len() {
            let Some((_, ev)) = self.events.recv().await else {
                anyhow::bail!("a worker exited in the steady phase");
            };
            // A late progress line after `ready` is ignored.
            if let Event::Stopped(r) = ev {
                reports.push(*r);
            }
        }
        Ok(reports)
    }

    /// Sends an order to every worker (after [`Fleet::steady`]).
    pub(crate) fn control(&self, ctl: Ctl) {
        for h in &self.handles {
            let _ = h.orders.send(Order::Ctl(ctl));
        }
    }

    /// Every worker's [`Tally`] as if node `dead` was killed.
    pub(crate) async fn tallies(&mut self, dead: usize) -> anyhow::Result<Vec<Tally>> {
        self.control(Ctl::Tally(dead));
        let mut out = Vec::new();
        while out.len() < self.handles.len() {
            let Some((_, ev)) = self.events.recv().await else {
                anyhow::bail!("a worker exited before its tally");
            };
            if let Event::Tally(t) = ev {
                out.push(*t);
            }
        }
        Ok(out)
    }

    /// Closes every connection and waits (at most 30 s per worker) for the workers to end.
    pub(crate) async fn exit(mut self) {
        for h in &mut self.handles {
            if let Some(exit) = h.exit.take() {
                let _ = exit.send(());
            }
        }
        for h in self.handles {
            let _ = tokio::time::timeout(Duration::from_secs(30), h.done).await;
        }
    }
}

/// Runs a load test and returns its summary (also written to `--out` and printed by `main`).
///
/// # Errors
/// Bad options, a worker that could not start or died, or an unwritable `--out`.
pub async fn run(args: RunArgs, mode: Mode) -> anyhow::Result<Summary> {
    crate::opts::groups(&args.rooms, args.connections).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(!args.servers.is_empty(), "no --server");
    let pids = args.server_pids.clone();
    let redis = args.redis_url.clone();
    let redis_now = || redis.as_deref().and_then(redis_commands);

    let (rss0, cpu0) = usage_of(&pids);
    let r0 = redis_now();
    let t0 = Instant::now();
    let mut fleet = Fleet::start(&args, mode)?;
    fleet.ramp().await?;
    let ramp_s = t0.elapsed().as_secs_f64();
    tokio::time::sleep(args.settle).await;
    let (rss1, cpu1) = usage_of(&pids);
    let r1 = redis_now();
    let reports = fleet.steady().await?;
    let (rss2, cpu2) = usage_of(&pids);
    let r2 = redis_now();
    let workers = fleet.len();
    fleet.exit().await;

    let mut s = merge(&args, &reports);
    s.workers = workers;
    s.ramp_s = ramp_s;
    s.connects_per_s = s.connections_held as f64 / ramp_s.max(1e-9);
    let held = s.connections_held.max(1) as f64;
    let beats = s.heartbeats_per_s * s.duration_s;
    s.server = ServerUsage {
        rss_kib_before: rss0,
        rss_kib_after_ramp: rss1,
        rss_kib_end: rss2,
        rss_bytes_per_conn: rss1.saturating_sub(rss0) as f64 * 1024.0 / held,
        cpu_s_ramp: cpu1 - cpu0,
        cpu_s_steady: cpu2 - cpu1,
        cpu_us_per_connect: (cpu1 - cpu0) * 1e6 / held,
        cpu_us_per_heartbeat: (cpu2 - cpu1) * 1e6 / beats.max(1.0),
        cores_steady: (cpu2 - cpu1) / s.duration_s.max(1e-9),
    };
    if let (Some(r0), Some(r1), Some(r2)) = (r0, r1, r2) {
        s.redis = Some(RedisUsage {
            commands_ramp: r1 - r0,
            commands_steady: r2 - r1,
            commands_per_connect: (r1 - r0) as f64 / held,
            commands_per_heartbeat: (r2 - r1) as f64 / beats.max(1.0),
            commands_per_s: (r2 - r1) as f64 / s.duration_s.max(1e-9),
        });
    }
    if let Some(path) = &args.out {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_string_pretty(&s)? + "\n")?;
    }
    Ok(s)
}

pub(crate) fn merge(args: &RunArgs, reports: &[WorkerReport]) -> Summary {
    let new = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
    let (mut hist, mut beat_hist) = (new(), new());
    let (mut sent, mut recv, mut beats, mut diffs, mut churns, mut secs) = (0, 0, 0, 0, 0, 0f64);
    let mut s = Summary::default();
    for r in reports {
        s.connections_held += r.connected;
        s.connect_errors += r.errors;
        s.closed_during_run += r.closed;
        sent += r.sent;
        recv += r.received;
        beats += r.heartbeats;
        diffs += r.diffs;
        churns += r.churns;
        secs = secs.max(r.seconds);
        for &(v, c) in &r.latency_us {
            let _ = hist.record_n(v, c);
        }
        for &(v, c) in &r.heartbeat_rtt_us {
            let _ = beat_hist.record_n(v, c);
        }
    }
    let per_s = |x: u64| x as f64 / secs.max(1e-9);
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().is_some_and(|a| a == "run") {
        argv.insert(0, "rollcall-loadgen".into());
    } else {
        argv = vec!["(in-process)".into()];
    }
    Summary {
        label: args.label.clone(),
        note: args.note.clone(),
        command: argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" "),
        date: today(),
        servers: args.servers.iter().map(ToString::to_string).collect(),
        server_pids: args.server_pids.clone(),
        connections_target: args.connections,
        rooms: args.rooms.clone(),
        heartbeat_ms: args.heartbeat.as_millis() as u64,
        churn_per_s: args.churn,
        duration_s: secs,
        messages_per_s: per_s(sent + recv),
        heartbeats_per_s: per_s(beats),
        diff_deliveries_per_s: per_s(diffs),
        churns_per_s: per_s(churns),
        latency: latency(&hist),
        heartbeat_rtt: latency(&beat_hist),
        ..s
    }
}

/// `a` as a POSIX shell word.
fn shell_quote(a: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.,:/=@+".contains(c);
    if !a.is_empty() && a.chars().all(plain) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

fn latency(h: &Histogram<u64>) -> Latency {
    let ms = |v: u64| v as f64 / 1000.0;
    Latency {
        samples: h.len(),
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

fn spawn_task(plan: WorkerPlan, ev: mpsc::UnboundedSender<(usize, Event)>) -> Handle {
    let (orders, mut orders_rx) = mpsc::unbounded_channel::<Order>();
    let (exit_tx, mut exit_rx) = oneshot::channel::<()>();
    let w = plan.index;
    let done = tokio::spawn(async move {
        let (e1, e2) = (ev.clone(), ev.clone());
        let go = async {
            while let Some(o) = orders_rx.recv().await {
                if matches!(o, Order::Go) {
                    break;
                }
            }
        };
        let res = run_worker(
            plan,
            |c, e| {
                let _ = e1.send((w, Event::Progress(c, e)));
            },
            |_, _| {
                let _ = e2.send((w, Event::Ready));
            },
            go,
        )
        .await;
        if let Ok((report, held)) = res {
            let _ = ev.send((w, Event::Stopped(Box::new(report))));
            loop {
                tokio::select! {
                    _ = &mut exit_rx => break,
                    o = orders_rx.recv() => match o {
                        Some(Order::Ctl(c)) => {
                            if let Some(t) = held.control(c) {
                                let _ = ev.send((w, Event::Tally(Box::new(t))));
                            }
                        }
                        Some(Order::Go) => {}
                        None => break,
                    },
                }
            }
            drop(held);
        }
    });
    Handle {
        orders,
        exit: Some(exit_tx),
        done,
        pid: None,
    }
}

fn spawn_process(
    plan: &WorkerPlan,
    ev: mpsc::UnboundedSender<(usize, Event)>,
) -> anyhow::Result<Handle> {
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("worker")
        .arg(serde_json::to_string(plan)?)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let (orders, mut orders_rx) = mpsc::unbounded_channel::<Order>();
    let (exit_tx, mut exit_rx) = oneshot::channel::<()>();
    let w = plan.index;
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let (tag, rest) = line.split_once(' ').unwrap_or((&line, ""));
            let nums: Vec<u64> = rest.split(' ').filter_map(|v| v.parse().ok()).collect();
            let event = match tag {
                "progress" if nums.len() == 2 => Event::Progress(nums[0], nums[1]),
                "ready" => Event::Ready,
                "report" => match serde_json::from_str(rest) {
                    Ok(r) => Event::Stopped(Box::new(r)),
                    Err(_) => continue,
                },
                "tally" => match serde_json::from_str(rest) {
                    Ok(t) => Event::Tally(Box::new(t)),
                    Err(_) => continue,
                },
                _ => continue,
            };
            if ev.send((w, event)).is_err() {
                break;
            }
        }
    });
    let done = tokio::spawn(async move {
        loop {
            let line = tokio::select! {
                _ = &mut exit_rx => break,
                o = orders_rx.recv() => match o {
                    Some(Order::Go) => "go".to_string(),
                    Some(Order::Ctl(c)) => c.line(),
                    None => break,
                },
            };
            if stdin
                .write_all(format!("{line}\n").as_bytes())
                .await
                .is_err()
                || stdin.flush().await.is_err()
            {
                break;
            }
        }
        drop(stdin);
        let _ = child.wait().await;
    });
    Ok(Handle {
        orders,
        exit: Some(exit_tx),
        done,
        pid,
    })
}

/// The body of `rollcall-loadgen worker <plan>`: talks to the coordinator over stdin/stdout.
///
/// # Errors
/// The plan is not valid JSON, or the worker failed.
pub async fn worker_main(plan_json: &str) -> anyhow::Result<()> {
    let plan: WorkerPlan = serde_json::from_str(plan_json)?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let (report, held) = run_worker(
        plan,
        |c, e| println!("progress {c} {e}"),
        |c, e| println!("ready {c} {e}"),
        async {
            while let Ok(Some(l)) = stdin.next_line().await {
                if l.trim() == "go" {
                    break;
                }
            }
        },
    )
    .await?;
    println!("report {}", serde_json::to_string(&report)?);
    // Hold the connections and carry out orders until the coordinator closes stdin.
    while let Ok(Some(line)) = stdin.next_line().await {
        if let Some(t) = Ctl::parse(&line).and_then(|c| held.control(c)) {
            println!("tally {}", serde_json::to_string(&t)?);
        }
    }
    drop(held);
    Ok(())
}
