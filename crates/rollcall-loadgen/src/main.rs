//! `rollcall-loadgen`: see the crate docs (`run`, `report`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use rollcall_loadgen::{Mode, RunArgs, report, run};

#[derive(Parser)]
#[command(version, about = "Load generator and load report for Rollcall")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Opens connections, runs the load, prints a JSON summary.
    Run(Box<RunArgs>),
    /// Regenerates the Markdown report and its plots from stored results.
    Report {
        /// Folder of result JSON files.
        #[arg(long, default_value = "docs/results")]
        results: PathBuf,
        /// The Markdown file to write (plots go beside it, under `img/`).
        #[arg(long, default_value = "docs/benchmarks-load.md")]
        out: PathBuf,
    },
    /// Runs the socket.io baseline and Rollcall under the same load, prints the ratios.
    Versus(Box<rollcall_loadgen::versus::VersusArgs>),
    /// Starts a Redis-backed cluster, holds N connections, checks rooms, kills a node.
    Million(Box<rollcall_loadgen::million::MillionArgs>),
    /// Internal: one worker process, driven over stdin/stdout by `run`.
    #[command(hide = true)]
    Worker {
        /// The worker's plan, JSON.
        plan: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Run(args) => {
            let s = run(*args, Mode::Processes).await?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        Cmd::Versus(args) => {
            rollcall_loadgen::versus::versus(*args).await?;
        }
        Cmd::Million(args) => {
            let r = rollcall_loadgen::million::million(*args).await?;
            let mut brief = r.clone();
            brief.series.clear();
            println!("{}", serde_json::to_string_pretty(&brief)?);
            anyhow::ensure!(r.passed, "the run missed a goal (see the checks above)");
        }
        Cmd::Report { results, out } => report::write(&results, &out)?,
        Cmd::Worker { plan } => rollcall_loadgen::run::worker_main(&plan).await?,
    }
    Ok(())
}
