//! The time series of a `million` run: a sampler thread reads the nodes, Redis, the workers and
//! the kernel every few seconds; the points are written into the JSON and plotted.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::nodes::{Shards, http_get, metric, slab_kib};
use crate::probe::usage_of;
use crate::report::plot_err;

/// One sample of the whole system.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Point {
    /// Seconds since the nodes started.
    pub t_s: f64,
    /// The run's phase when sampled (`ramp`, `hold`, `kill`, `reconnect`, …).
    pub phase: String,
    /// WebSocket connections open on the live nodes (their `rollcall_connections`).
    pub connections: u64,
    /// Summed RSS of the live nodes, MiB.
    pub nodes_rss_mib: f64,
    /// Redis' RSS, MiB.
    pub redis_rss_mib: f64,
    /// Summed RSS of the load generator's workers, MiB.
    pub workers_rss_mib: f64,
    /// Kernel slab, MiB (socket objects live there).
    pub slab_mib: f64,
    /// Kernel slab growth since the first sample, MiB.
    pub slab_growth_mib: f64,
    /// Cores the live nodes used since the previous sample.
    pub nodes_cores: f64,
    /// Cores Redis used since the previous sample.
    pub redis_cores: f64,
    /// Redis commands per second since the previous sample.
    pub redis_ops_per_s: f64,
}

/// What the sampler reads; the coordinator updates it as nodes die and phases change.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Addresses and pids of the live nodes.
    pub nodes: Vec<(SocketAddr, u32)>,
    /// Worker pids.
    pub workers: Vec<u32>,
    /// Current phase label.
    pub phase: String,
}

/// A running sampler; [`Sampler::stop`] returns its points.
pub struct Sampler {
    /// Shared with the coordinator.
    pub targets: Arc<Mutex<Targets>>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Point>>,
}

impl Sampler {
    /// Samples every `every` until stopped.
    pub fn start(targets: Targets, redis: Shards, every: Duration) -> Sampler {
        let targets = Arc::new(Mutex::new(targets));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (targets.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut points = Vec::new();
            let mut last: Option<(Instant, f64, f64, f64)> = None;
            while !s.load(Ordering::Relaxed) {
                let now_targets = t.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let (p, cpu) = sample(&now_targets, &redis, t0);
                let now = Instant::now();
                let mut p = p;
                p.slab_growth_mib = points
                    .first()
                    .map_or(0.0, |f: &Point| (p.slab_mib - f.slab_mib).max(0.0));
                if let Some((at, nc, rc, ops)) = last {
                    let dt = now.duration_since(at).as_secs_f64().max(1e-3);
                    p.nodes_cores = ((cpu.0 - nc) / dt).max(0.0);
                    p.redis_cores = ((cpu.1 - rc) / dt).max(0.0);
                    p.redis_ops_per_s = ((cpu.2 - ops) / dt).max(0.0);
                }
                last = Some((now, cpu.0, cpu.1, cpu.2));
                points.push(p);
                let wake = now + every;
                while Instant::now() < wake && !s.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            points
        });
        Sampler {
            targets,
            stop,
            thread,
        }
    }

    /// Sets the phase label of the next samples.
    pub fn phase(&self, phase: &str) {
        self.targets.lock().unwrap_or_else(|e| e.into_inner()).phase = phase.into();
    }

    /// Stops and returns the points.
    pub fn stop(self) -> Vec<Point> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// One point, and the cumulative (node CPU s, Redis CPU s, Redis commands) to difference.
fn sample(t: &Targets, redis: &Shards, t0: Instant) -> (Point, (f64, f64, f64)) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let pids: Vec<u32> = t.nodes.iter().map(|n| n.1).collect();
    let (nodes_rss, nodes_cpu) = usage_of(&pids);
    let (workers_rss, _) = usage_of(&t.workers);
    let (redis_rss, redis_cpu) = redis.usage();
    let ops = redis.commands();
    let connections = t
        .nodes
        .iter()
        .filter_map(|(addr, _)| {
            let (_, body) = http_get(*addr, "/metrics").ok()?;
            metric(&body, "rollcall_connections")
        })
        .sum::<f64>() as u64;
    let p = Point {
        t_s: t0.elapsed().as_secs_f64(),
        phase: t.phase.clone(),
        connections,
        nodes_rss_mib: mib(nodes_rss),
        redis_rss_mib: mib(redis_rss),
        workers_rss_mib: mib(workers_rss),
        slab_mib: mib(slab_kib()),
        ..Point::default()
    };
    (p, (nodes_cpu, redis_cpu, ops))
}

/// Four panels over time: connections, RSS, cores, Redis commands per second.
///
/// # Errors
/// No font, or the image cannot be written.
pub fn plot(points: &[Point], title: &str, path: &Path) -> anyhow::Result<()> {
    crate::report::register_font()?;
    let root = BitMapBackend::new(path, (1400, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(plot_err)?;
    let panels = root.split_evenly((2, 2));
    type Pick = fn(&Point) -> f64;
    type Line = (&'static str, RGBColor, Pick);
    let figures: [(&str, &str, Vec<Line>); 4] = [
        (
            "connections",
            "open",
            vec![("on live nodes", BLUE, |p| p.connections as f64)],
        ),
        (
            "memory",
            "MiB",
            vec![
                ("nodes RSS", BLUE, |p| p.nodes_rss_mib),
                ("Redis RSS", RED, |p| p.redis_rss_mib),
                ("load generator RSS", GREEN, |p| p.workers_rss_mib),
                ("kernel slab growth", BLACK, |p| p.slab_growth_mib),
            ],
        ),
        (
            "CPU",
            "cores",
            vec![
                ("nodes", BLUE, |p| p.nodes_cores),
                ("Redis", RED, |p| p.redis_cores),
            ],
        ),
        (
            "Redis",
            "commands/s",
            vec![("commands/s", RED, |p| p.redis_ops_per_s)],
        ),
    ];
    let xmax = points.last().map_or(1.0, |p| p.t_s).max(1.0);
    for (area, (name, unit, lines)) in panels.iter().zip(figures) {
        let ymax = points
            .iter()
            .flat_map(|p| lines.iter().map(move |l| (l.2)(p)))
            .fold(1.0, f64::max)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(name, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc(unit)
            .draw()
            .map_err(plot_err)?;
        for (label, color, pick) in lines {
            chart
                .draw_series(LineSeries::new(
                    points.iter().map(|p| (p.t_s, pick(p))),
                    color.stroke_width(2),
                ))
                .map_err(plot_err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}
