//! `rollcall-loadgen versus`: the seed's express + socket.io + ioredis baseline and a Rollcall
//! server under the same client load, one after the other on this machine, at several
//! connection counts; prints the three per-connection ratios (RSS, CPU per connect + join +
//! track, CPU per heartbeat), writes them as JSON and plots them against the connection count.
//!
//! Both servers are started fresh for every size and killed afterwards; their figures are read
//! from `/proc/<pid>` (the baseline's Redis CPU is not counted, Rollcall's SQLite write-behind
//! is). The baseline is loaded by its own `load.mjs`; Rollcall by [`crate::run()`] with the same
//! shape (connections, rooms, one track each, heartbeat period, steady duration).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::opts::{Placement, RunArgs, parse_duration};
use crate::report::plot_err;
use crate::run::{Mode, run};

/// Options of `rollcall-loadgen versus`.
#[derive(Debug, Clone, clap::Args)]
pub struct VersusArgs {
    /// The Rollcall server binary (a release build), started with its default config in a
    /// fresh temporary directory for every size.
    #[arg(long, default_value = "target/release/rollcall")]
    pub rollcall: PathBuf,
    /// Extra arguments for the Rollcall server (space separated, e.g. `--database-url none`).
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub rollcall_args: String,
    /// The baseline's folder (`server.mjs`, `load.mjs`, `package-lock.json`); it is copied to
    /// `--work-dir` and installed there with `npm ci` once.
    #[arg(long, default_value = "../shared/baselines/socketio")]
    pub baseline: PathBuf,
    /// Scratch folder for the baseline's copy and the servers' working directories.
    #[arg(long, default_value = "/tmp/rollcall-versus")]
    pub work_dir: PathBuf,
    /// Connection counts to measure, comma separated (at most ~19,000: one process per side).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,5000,10000,15000,19000"
    )]
    pub sizes: Vec<usize>,
    /// Room size (every room has this many members, one tracked presence each).
    #[arg(long, default_value_t = 10)]
    pub room: usize,
    /// Heartbeat interval of every connection.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub heartbeat: Duration,
    /// Length of the heartbeat phase.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Connection set-ups in flight on the Rollcall side (the baseline's `load.mjs` opens one
    /// socket at a time, so 1 is the same shape).
    #[arg(long, default_value_t = 1)]
    pub ramp_concurrency: usize,
    /// Port of the server under test.
    #[arg(long, default_value_t = 4390)]
    pub port: u16,
    /// Redis for the baseline (its `presence:*` keys are deleted after every size).
    #[arg(long, default_value = "127.0.0.1:6379")]
    pub redis: String,
    /// Write the figures here as JSON (not under `docs/results/`, which holds `run` summaries).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Plot RSS and CPU per connection against the connection count here (PNG).
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// One server's figures at one size.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Side {
    /// RSS growth per connection from before the first connection to after the ramp, KiB.
    pub rss_kib_per_conn: f64,
    /// Server RSS after the ramp, MiB.
    pub rss_mib: f64,
    /// Server CPU per connect + join + track, µs.
    pub cpu_us_per_connect: f64,
    /// Server CPU per heartbeat in the heartbeat phase, µs.
    pub cpu_us_per_heartbeat: f64,
}

/// Both servers at one size, and baseline ÷ Rollcall.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Row {
    /// Connections.
    pub connections: usize,
    /// express + socket.io + ioredis.
    pub socketio: Side,
    /// Rollcall.
    pub rollcall: Side,
    /// socket.io ÷ Rollcall: RSS per connection.
    pub ratio_rss: f64,
    /// socket.io ÷ Rollcall: CPU per connect + join + track.
    pub ratio_connect: f64,
    /// socket.io ÷ Rollcall: CPU per heartbeat.
    pub ratio_heartbeat: f64,
}

/// The whole comparison, as written by `--out`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// UTC date.
    pub date: String,
    /// The command line.
    pub command: String,
    /// Room size, heartbeat (ms), heartbeat phase (s).
    pub shape: String,
    /// One row per size.
    pub rows: Vec<Row>,
}

/// Kills the child when dropped, so a failed size never leaves a server behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the comparison and prints its table.
///
/// # Errors
/// A server that does not start, a load that fails, or an unwritable output.
pub async fn versus(args: VersusArgs) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.rollcall.exists(),
        "--rollcall {} does not exist (cargo build --release -p rollcall-server)",
        args.rollcall.display()
    );
    anyhow::ensure!(args.room > 0, "--room must be at least 1");
    let rollcall = std::fs::canonicalize(&args.rollcall)?;
    let baseline = install_baseline(&args.baseline, &args.work_dir)?;
    let mut report = Report {
        date: crate::probe::today(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        shape: format!(
            "rooms of {}, one track each, heartbeat every {} ms for {} s",
            args.room,
            args.heartbeat.as_millis(),
            args.duration.as_secs()
        ),
        rows: Vec::new(),
    };
    for &n in &args.sizes {
        eprintln!("versus: {n} connections, socket.io baseline");
        let socketio = socketio_side(&args, &baseline, n)?;
        eprintln!("versus: {n} connections, rollcall");
        let rollcall = rollcall_side(&args, &rollcall, n).await?;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let row = Row {
            connections: n,
            ratio_rss: ratio(socketio.rss_kib_per_conn, rollcall.rss_kib_per_conn),
            ratio_connect: ratio(socketio.cpu_us_per_connect, rollcall.cpu_us_per_connect),
            ratio_heartbeat: ratio(socketio.cpu_us_per_heartbeat, rollcall.cpu_us_per_heartbeat),
            socketio,
            rollcall,
        };
        eprintln!("{}", serde_json::to_string(&row)?);
        report.rows.push(row);
    }
    println!("{}", table(&report));
    if let Some(out) = &args.out {
        std::fs::write(out, serde_json::to_string_pretty(&report)? + "\n")?;
    }
    if let Some(plot) = &args.plot {
        match crate::report::register_font() {
            Ok(()) => plot_versus(&report, plot)?,
            Err(e) => eprintln!("plot skipped: {e}"),
        }
    }
    Ok(report)
}

/// The Markdown table of a report: figures of both servers and the three ratios per size.
pub fn table(r: &Report) -> String {
    let mut s = format!(
        "{} ({}), `{}`\n\n| connections | RSS/conn socket.io | Rollcall | ratio | CPU/connect+join+track socket.io | Rollcall | ratio | CPU/heartbeat socket.io | Rollcall | ratio |\n|---|---|---|---|---|---|---|---|---|---|\n",
        r.date, r.shape, r.command
    );
    for w in &r.rows {
        s += &format!(
            "| {} | {:.2} KiB | {:.2} KiB | {:.1}× | {:.0} µs | {:.0} µs | {:.1}× | {:.1} µs | {:.1} µs | {:.1}× |\n",
            w.connections,
            w.socketio.rss_kib_per_conn,
            w.rollcall.rss_kib_per_conn,
            w.ratio_rss,
            w.socketio.cpu_us_per_connect,
            w.rollcall.cpu_us_per_connect,
            w.ratio_connect,
            w.socketio.cpu_us_per_heartbeat,
            w.rollcall.cpu_us_per_heartbeat,
            w.ratio_heartbeat,
        );
    }
    s
}

/// Copies the baseline to `work/socketio` and runs `npm ci` there unless already installed.
fn install_baseline(src: &Path, work: &Path) -> anyhow::Result<PathBuf> {
    let dst = work.join("socketio");
    std::fs::create_dir_all(&dst)?;
    for f in [
        "server.mjs",
        "load.mjs",
        "package.json",
        "package-lock.json",
    ] {
        let from = src.join(f);
        std::fs::copy(&from, dst.join(f))
            .map_err(|e| anyhow::anyhow!("--baseline: {}: {e}", from.display()))?;
    }
    if !dst.join("node_modules/socket.io").exists() {
        eprintln!("versus: npm ci in {}", dst.display());
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dst)
            .status()?
            .success();
        anyhow::ensure!(ok, "npm ci failed in {}", dst.display());
    }
    Ok(dst)
}

/// Waits until something accepts on `addr` (at most 20 s).
fn wait_listening(addr: SocketAddr, child: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("the server exited before listening on {addr}: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("nothing listens on {addr} after 20 s")
}

/// What `load.mjs` prints.
#[derive(Deserialize)]
struct BaselineLine {
    rss_per_conn_kib: f64,
    rss_total_mib: f64,
    join_cpu_s: f64,
    hb_cpu_s: f64,
    heartbeats: f64,
}

fn socketio_side(args: &VersusArgs, dir: &Path, n: usize) -> anyhow::Result<Side> {
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let (host, port) = args
        .redis
        .rsplit_once(':')
        .ok_or_else(|| anyhow::anyhow!("--redis must be host:port"))?;
    let mut server = Killed(
        Command::new("node")
            .arg("server.mjs")
            .current_dir(dir)
            .env("PORT", args.port.to_string())
            .env("REDIS_HOST", host)
            .env("REDIS_PORT", port)
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_listening(addr, &mut server.0)?;
    let out = Command::new("node")
        .arg("load.mjs")
        .arg(format!("http://{addr}"))
        .arg(n.to_string())
        .arg(args.room.to_string())
        .arg(args.heartbeat.as_millis().to_string())
        .arg(args.duration.as_secs().max(1).to_string())
        .arg(server.0.id().to_string())
        .current_dir(dir)
        .stderr(Stdio::inherit())
        .output()?;
    drop(server);
    let _ = Command::new("redis-cli")
        .args(["-h", host, "-p", port, "EVAL"])
        .arg("for _,k in ipairs(redis.call('KEYS','presence:*')) do redis.call('DEL',k) end")
        .arg("0")
        .stdout(Stdio::null())
        .status();
    anyhow::ensure!(out.status.success(), "load.mjs failed: {}", out.status);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| anyhow::anyhow!("load.mjs printed no JSON: {text}"))?;
    let b: BaselineLine = serde_json::from_str(line)?;
    Ok(Side {
        rss_kib_per_conn: b.rss_per_conn_kib,
        rss_mib: b.rss_total_mib,
        cpu_us_per_connect: b.join_cpu_s * 1e6 / n as f64,
        cpu_us_per_heartbeat: b.hb_cpu_s * 1e6 / b.heartbeats.max(1.0),
    })
}

async fn rollcall_side(args: &VersusArgs, bin: &Path, n: usize) -> anyhow::Result<Side> {
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let dir = args.work_dir.join(format!("rollcall-{n}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut server = Killed(
        Command::new(bin)
            .arg("--bind")
            .arg(addr.to_string())
            .args(args.rollcall_args.split_whitespace())
            .current_dir(&dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_listening(addr, &mut server.0)?;
    let load = RunArgs {
        servers: vec![addr],
        connections: n,
        workers: 0,
        rooms: args.room.to_string(),
        heartbeat: args.heartbeat,
        churn: 0.0,
        duration: args.duration,
        settle: Duration::from_secs(2),
        ramp_concurrency: args.ramp_concurrency,
        server_pids: vec![server.0.id()],
        redis_url: None,
        topic_prefix: "vs".into(),
        label: format!("versus-{n}"),
        note: String::new(),
        out: None,
        quiet: true,
        placement: Placement::Modulo,
        reconnect: false,
    };
    let s = run(load, Mode::Processes).await?;
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(
        s.connect_errors == 0 && s.connections_held == n as u64,
        "rollcall held {} of {n} connections ({} errors)",
        s.connections_held,
        s.connect_errors
    );
    Ok(Side {
        rss_kib_per_conn: s.server.rss_bytes_per_conn / 1024.0,
        rss_mib: s.server.rss_kib_after_ramp as f64 / 1024.0,
        cpu_us_per_connect: s.server.cpu_us_per_connect,
        cpu_us_per_heartbeat: s.server.cpu_us_per_heartbeat,
    })
}

/// Three panels (RSS, connect CPU, heartbeat CPU per connection) against connections.
fn plot_versus(r: &Report, path: &Path) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (1500, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let panels = root.split_evenly((1, 3));
    type Pick = fn(&Side) -> f64;
    let figures: [(&str, &str, Pick); 3] = [
        ("RSS per connection", "KiB", |s| s.rss_kib_per_conn),
        ("CPU per connect + join + track", "µs", |s| {
            s.cpu_us_per_connect
        }),
        ("CPU per heartbeat", "µs", |s| s.cpu_us_per_heartbeat),
    ];
    let xmax = r.rows.iter().map(|w| w.connections).max().unwrap_or(1000) as f64 * 1.08;
    for (area, (title, unit, pick)) in panels.iter().zip(figures) {
        let ymax = r
            .rows
            .iter()
            .flat_map(|w| [pick(&w.socketio), pick(&w.rollcall)])
            .fold(1.0, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("connections")
            .y_desc(unit)
            .draw()
            .map_err(plot_err)?;
        for (name, color, side) in [
            (
                "socket.io + ioredis",
                RED,
                (|w| &w.socketio) as fn(&Row) -> &Side,
            ),
            ("Rollcall", BLUE, |w| &w.rollcall),
        ] {
            let pts: Vec<(f64, f64)> = r
                .rows
                .iter()
                .map(|w| (w.connections as f64, pick(side(w))))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(plot_err)?
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color));
            chart
                .draw_series(pts.iter().map(|p| Circle::new(*p, 4, color.filled())))
                .map_err(plot_err)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_prints_each_size_with_its_ratios() {
        let side = |rss, c, h| Side {
            rss_kib_per_conn: rss,
            rss_mib: 1.0,
            cpu_us_per_connect: c,
            cpu_us_per_heartbeat: h,
        };
        let r = Report {
            date: "2026-12-02".into(),
            command: "x".into(),
            shape: "s".into(),
            rows: vec![Row {
                connections: 15000,
                socketio: side(16.0, 800.0, 30.0),
                rollcall: side(4.0, 40.0, 5.0),
                ratio_rss: 4.0,
                ratio_connect: 20.0,
                ratio_heartbeat: 6.0,
            }],
        };
        let t = table(&r);
        assert!(t.contains("| 15000 | 16.00 KiB | 4.00 KiB | 4.0× | 800 µs | 40 µs | 20.0× | 30.0 µs | 5.0 µs | 6.0× |"), "{t}");
    }
}
