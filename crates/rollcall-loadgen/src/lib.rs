//! Rollcall's load generator.
//!
//! `rollcall-loadgen run` opens N WebSocket connections to one or several Rollcall servers,
//! split over worker processes (it re-executes itself as `rollcall-loadgen worker`; one process
//! holds at most ~19k sockets here) with source addresses spread over 127.0.x.y. Each connection
//! joins a room chosen by a room-size distribution, tracks, heartbeats, and on command churns
//! (leave, re-join, track). Receivers time every track → `presence_diff` with HDR histograms,
//! merged across workers. The coordinator reads the servers' RSS and CPU from /proc and, with
//! `--redis-url`, Redis' command counter, and prints a JSON [`Summary`].
//!
//! `rollcall-loadgen versus` runs the seed's socket.io baseline and Rollcall one after the
//! other under the same load and prints the per-connection ratios.
//!
//! `rollcall-loadgen million` starts a cluster of nodes on Redis, loads it with up to a million
//! connections, holds them, checks a sample of rooms exactly, kills a node and measures its
//! presences leaving and its clients coming back elsewhere.
//!
//! `rollcall-loadgen report` turns `docs/results/*.json` into `docs/benchmarks-load.md` and
//! its PNG plots.
//!
//! # Layout
//! - [`opts`]: options, room layout, each worker's share
//! - [`worker`]: the connections of one worker
//! - [`run`](mod@run): the coordinator and the summary
//! - [`probe`]: /proc, Redis `INFO`, dates
//! - [`report`]: the Markdown tables and plots
//! - [`million`]: the cluster scenario (nodes, hold, checks, kill, reconnect storm)
//! - [`versus`]: the socket.io baseline and Rollcall under the same load, with ratios

pub mod million;
pub mod opts;
pub mod probe;
pub mod report;
pub mod run;
pub mod versus;
pub mod worker;

pub use opts::{Placement, RunArgs};
pub use run::{Mode, Summary, run};
