//! The command line of `harness` (see `docs/spec/cli.md`: these names are a contract).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub use crate::test::args::TestArgs;

/// Jepsen-style fault-injection tests against a cluster of real Raft `node` processes.
#[derive(Parser, Debug)]
#[command(name = "harness", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a cluster, run a workload under a nemesis, check the history, write a report.
    Test(TestArgs),
    /// Check histories (linearizability per key and read mode, or lost set elements).
    Check(crate::check_cmd::CheckArgs),
    /// (Re)build a run's charts and HTML from its history.jsonl and test.json.
    Report {
        /// The run directory (results/<test>/<timestamp>).
        run_dir: PathBuf,
    },
    /// One page comparing runs: verdict and latency per read mode and nemesis.
    Compare {
        /// Run directories to compare (one run with several read modes works too).
        #[arg(required = true)]
        run_dirs: Vec<PathBuf>,
        /// Where to write the page (default: results/compare/<timestamp>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Many short seeded runs over a matrix of workloads x cluster sizes x nemeses x read
    /// modes until a time budget is spent; summary page and JUnit XML (nightly CI).
    Soak(crate::soak::SoakArgs),
    /// Merge several soak directories (the shards of one soak) into one summary.json, page
    /// and junit.xml; the exit code is the worst of theirs (255 if a shard is missing).
    SoakMerge(crate::soak::merge::MergeArgs),
    /// Run each deliberate node bug under the fault that exposes it; show each is caught and
    /// the correct node is valid under the same schedule.
    Selftest(crate::selftest::SelftestArgs),
    /// Put throughput with the nodes' data directories on the lazy filesystem (what
    /// `--nemesis power` and `slow-disk` use) against plain directories, in the same run.
    BenchDisk(crate::bench_disk::BenchDiskArgs),
    /// Run the node itself (used when no `node` binary is beside `harness`).
    #[command(hide = true, disable_help_flag = true)]
    Node {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}
