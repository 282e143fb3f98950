//! Shared helpers for Rollcall's benchmarks: a counting global allocator and workload builders.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use rollcall_core::{ConnId, Engine, Key, Meta, Millis, Outputs, Topic};

/// A global allocator that counts live heap bytes, so a bench can report bytes per presence.
pub struct CountingAlloc;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Live heap bytes allocated through [`CountingAlloc`] (when it is the global allocator).
pub fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// CPU seconds (user + system) the calling thread has used, from `/proc/thread-self/stat`
/// (Linux; 10 ms resolution, in USER_HZ = 100 ticks). On a machine shared with other work the
/// wall clock counts time spent waiting for a core; this does not. `None` off Linux.
pub fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// The Phoenix.Tracker reference workload: `n` presences over `topics` topics, one connection
/// and one key each, meta `{status, online_at}` (as in the Tracker measurement we compare to).
pub struct Workload {
    /// Topic of presence i is `topics[i % topics.len()]`.
    pub topics: Vec<Topic>,
    /// One key per presence.
    pub keys: Vec<Key>,
    /// One meta per presence (distinct allocations, as real metas are).
    pub metas: Vec<Meta>,
}

impl Workload {
    /// Builds the inputs for `n` presences over `topics` topics.
    pub fn new(n: usize, topics: usize) -> Workload {
        Workload {
            topics: (0..topics)
                .map(|t| Topic::from(format!("realtime:room-{t}")))
                .collect(),
            keys: (0..n).map(|i| Key::from(format!("user-{i}"))).collect(),
            metas: (0..n)
                .map(|i| {
                    Meta::parse(&format!(
                        r#"{{"status":"online","online_at":{}}}"#,
                        1_764_000_000_000u64 + i as u64
                    ))
                    .expect("valid meta")
                })
                .collect(),
        }
    }

    /// Sum of the metas' JSON bytes (what "beyond the meta's own bytes" excludes).
    pub fn meta_bytes(&self) -> usize {
        self.metas.iter().map(Meta::len).sum()
    }

    /// Connects presence i's connection (`ConnId(i)`) on `engine`.
    pub fn connect_all(&self, engine: &Engine) {
        for i in 0..self.keys.len() {
            engine
                .connect(ConnId(i as u64), Millis(0))
                .expect("fresh id");
        }
    }

    /// Tracks every presence; `out` is drained every 1024 tracks, as a server would.
    pub fn track_all(&self, engine: &Engine, out: &mut Outputs) {
        let nt = self.topics.len();
        for (i, key) in self.keys.iter().enumerate() {
            engine
                .track(
                    ConnId(i as u64),
                    &self.topics[i % nt],
                    key,
                    self.metas[i].clone(),
                    Millis(1),
                    out,
                )
                .expect("within limits");
            if i % 1024 == 0 {
                out.clear();
            }
        }
        out.clear();
    }
}
