//! `harness soak`: many short seeded runs over a matrix of nemeses × read modes, round-robin,
//! until a time budget is spent (many short randomized runs rather than one long one). Only
//! failing runs keep their directories; every run is summarised in `summary.json`, a page
//! (`results/soak/<timestamp>/index.html`) and, with `--junit`, JUnit XML.
//!
//! Guarantees: no run starts unless its time limit plus the measured per-run overhead still
//! fits in the budget, and the checker of each run is given at most what is left; every
//! failing run is listed with the one command that reproduces it.

pub mod duration;
pub mod junit;
pub mod matrix;
pub mod page;
pub mod runner;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::exit;
use matrix::Cell;

/// Options of `harness soak`.
#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    /// Time budget: 90s, 10m, 1h, 1h30m, or plain seconds. No run starts that could not
    /// finish within it.
    #[arg(long)]
    pub duration: String,
    /// Also write JUnit XML here (one test case per run).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Where results go; this soak's are under <DIR>/soak/<timestamp>/.
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
    /// "NEMESES x READ-MODES [x BUGS]", e.g. "partition,kill x read-index,lease"; repeatable,
    /// cells add up. Default: "none,partition,kill,pause,clock x log,read-index,lease,follower".
    #[arg(long)]
    pub matrix: Vec<String>,
    /// Start every node of every cell with this deliberate bug (forces failures).
    #[arg(long)]
    pub bug: Option<String>,
    /// Seconds each run's workload lasts.
    #[arg(long, default_value_t = 10.0)]
    pub run_time: f64,
    /// Cluster size of each run.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// register or set.
    #[arg(long, default_value = "register")]
    pub workload: String,
    /// Mean seconds between fault changes.
    #[arg(long, default_value_t = 2.0)]
    pub nemesis_interval: f64,
    /// First seed (run i uses seed + i); default random, printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The node binary under test.
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
}

/// What one soak run found (a line of `summary.json`).
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    /// The matrix cell's name.
    pub cell: String,
    /// The seed.
    pub seed: u64,
    /// Exit code of the run (0 valid, 1 invalid, 2 unknown, 255 harness failure).
    pub code: u8,
    /// One line: verdict per read mode and the first anomaly.
    pub verdict: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The command that reproduces the run.
    pub reproduce: String,
    /// The run directory, kept only when the run did not pass (relative to the soak dir).
    pub run_dir: Option<PathBuf>,
}

/// Per-run time beyond the workload's time limit (start, settle, final reads, check) assumed
/// before any run has been measured.
const INITIAL_OVERHEAD: Duration = Duration::from_secs(20);

/// Added to the largest measured overhead when deciding whether one more run fits.
const OVERHEAD_MARGIN: Duration = Duration::from_secs(3);

/// Runs `harness soak`; returns the exit code (0 all runs valid, 1 some invalid, 2 some
/// unknown, 254 bad options, 255 harness failure).
pub fn run(args: &SoakArgs) -> u8 {
    match run_inner(args) {
        Ok(code) => code,
        Err(SoakError::Usage(m)) => {
            eprintln!("harness soak: {m}");
            exit::BAD_USAGE
        }
        Err(SoakError::Failed(e)) => {
            eprintln!("harness soak: {e:#}");
            exit::HARNESS_FAILED
        }
    }
}

enum SoakError {
    Usage(String),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for SoakError {
    fn from(e: anyhow::Error) -> Self {
        SoakError::Failed(e)
    }
}

/// The `harness test` options of one cell (before the seed).
fn cell_args(
    args: &SoakArgs,
    cell: &Cell,
    runs_dir: &Path,
) -> Result<crate::cli::TestArgs, SoakError> {
    let mut w: Vec<String> = [
        "--nodes",
        &args.nodes.to_string(),
        "--time-limit",
        &args.run_time.to_string(),
        "--workload",
        &args.workload,
        "--nemesis",
        &cell.nemesis,
        "--read-mode",
        &cell.read_mode,
        "--nemesis-interval",
        &args.nemesis_interval.to_string(),
        "--concurrency",
        "6",
        "--keys",
        "4",
        "--no-report",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(b) = cell.bug.as_ref().or(args.bug.as_ref()) {
        w.extend(["--bug".into(), b.clone()]);
    }
    if let Some(n) = &args.node_bin {
        w.extend(["--node-bin".into(), n.display().to_string()]);
    }
    w.extend(["--results-dir".into(), runs_dir.display().to_string()]);
    let t = runner::test_args(&w).map_err(|e| SoakError::Usage(e.to_string()))?;
    runner::plan(&t).map_err(|e| SoakError::Usage(format!("cell {}: {e}", cell.name())))?;
    Ok(t)
}

fn run_inner(args: &SoakArgs) -> Result<u8, SoakError> {
    let budget = duration::parse_duration(&args.duration)
        .map_err(|e| SoakError::Usage(format!("--duration: {e}")))?;
    if !(args.run_time.is_finite() && args.run_time > 0.0) {
        return Err(SoakError::Usage("--run-time must be positive".into()));
    }
    let specs = if args.matrix.is_empty() {
        vec![matrix::DEFAULT_MATRIX.to_string()]
    } else {
        args.matrix.clone()
    };
    let cells =
        matrix::parse_matrix(&specs).map_err(|e| SoakError::Usage(format!("--matrix: {e}")))?;
    let started = Instant::now();
    let stamp = crate::run_dir::timestamp();
    let soak_dir = args.results_dir.join("soak").join(&stamp);
    let runs_dir = soak_dir.join("runs");
    std::fs::create_dir_all(&runs_dir).map_err(|e| {
        SoakError::Failed(anyhow::anyhow!("cannot create {}: {e}", runs_dir.display()))
    })?;
    // Validate every cell before spending any time.
    let cell_test_args = cells
        .iter()
        .map(|c| cell_args(args, c, &runs_dir))
        .collect::<Result<Vec<_>, _>>()?;
    let base_seed = args
        .seed
        .unwrap_or_else(|| rand::Rng::gen::<u64>(&mut rand::thread_rng()) >> 11);
    eprintln!(
        "harness soak: {} cells, budget {:.0} s, first seed {base_seed}, results {}",
        cells.len(),
        budget.as_secs_f64(),
        soak_dir.display()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| SoakError::Failed(anyhow::anyhow!("cannot start the async runtime: {e}")))?;

    let mut summaries: Vec<RunSummary> = Vec::new();
    // The largest measured overhead; until a run was measured, INITIAL_OVERHEAD.
    let mut measured: Option<Duration> = None;
    let run_time = Duration::from_secs_f64(args.run_time);
    // Bounded: every iteration either runs (taking at least run_time) or stops.
    for i in 0u64.. {
        let left = budget.saturating_sub(started.elapsed());
        let overhead = measured.map_or(INITIAL_OVERHEAD, |m| m + OVERHEAD_MARGIN);
        if run_time + overhead > left {
            break;
        }
        let ci = (i as usize) % cells.len();
        let cell = &cells[ci];
        let mut targs = cell_test_args[ci].clone();
        // The checker gets what is left after the workload and a margin for start and stop.
        let check_s = left
            .saturating_sub(run_time + Duration::from_secs(10))
            .as_secs_f64()
            .clamp(5.0, 120.0);
        targs.check_timeout = check_s;
        let plan = runner::plan(&targs).map_err(|e| SoakError::Usage(e.to_string()))?;
        let seed = base_seed.wrapping_add(i);
        let reproduce = runner::reproduce_command(&targs, seed);
        let outcome = rt.block_on(runner::run_test_retrying(&plan, seed))?;
        let this = outcome.elapsed.saturating_sub(run_time);
        measured = Some(measured.map_or(this, |m| m.max(this)));
        let kept = if outcome.code == exit::VALID {
            if let Err(e) = std::fs::remove_dir_all(&outcome.run_dir) {
                eprintln!(
                    "harness soak: cannot remove {}: {e}",
                    outcome.run_dir.display()
                );
            }
            // The test's directory too, once its last run is gone (fails harmlessly if not).
            if let Some(parent) = outcome.run_dir.parent() {
                let _ = std::fs::remove_dir(parent);
            }
            None
        } else {
            // Failing runs keep everything, including the charts skipped while running.
            if outcome.run_dir.join("history.jsonl").is_file() {
                if let Err(e) = crate::report::build_run_report(&outcome.run_dir) {
                    eprintln!(
                        "harness soak: report of {} failed: {e:#}",
                        outcome.run_dir.display()
                    );
                }
            }
            Some(runner::relative_to(&outcome.run_dir, &soak_dir))
        };
        let s = RunSummary {
            cell: cell.name(),
            seed,
            code: outcome.code,
            verdict: runner::one_line(&outcome),
            seconds: outcome.elapsed.as_secs_f64(),
            reproduce,
            run_dir: kept,
        };
        eprintln!(
            "harness soak: [{:>5.0}/{:.0} s] run {} {} seed {}: {}",
            started.elapsed().as_secs_f64(),
            budget.as_secs_f64(),
            i + 1,
            s.cell,
            seed,
            s.verdict
        );
        summaries.push(s);
        // Keep the summary current, so an interrupted soak still reports what it did.
        write_outputs(
            args,
            &soak_dir,
            &stamp,
            &cells,
            &summaries,
            started.elapsed(),
        )?;
    }
    write_outputs(
        args,
        &soak_dir,
        &stamp,
        &cells,
        &summaries,
        started.elapsed(),
    )?;
    // The runs index lists only what is left; `latest` may point at a deleted run.
    let latest = runs_dir.join("latest");
    if std::fs::symlink_metadata(&latest).is_ok() && std::fs::metadata(&latest).is_err() {
        let _ = std::fs::remove_file(&latest);
    }
    let _ = crate::report::rebuild_results_index(&runs_dir);

    let code = summaries
        .iter()
        .fold(exit::VALID, |acc, s| exit::worst(acc, s.code));
    let failed = summaries.iter().filter(|s| s.code != exit::VALID).count();
    println!(
        "soak: {} runs over {} cells in {:.0} s, {} not valid; summary {}",
        summaries.len(),
        cells.len(),
        started.elapsed().as_secs_f64(),
        failed,
        soak_dir.join("index.html").display()
    );
    for s in summaries.iter().filter(|s| s.code != exit::VALID) {
        println!(
            "  {} seed {}: {}\n    reproduce: {}",
            s.cell, s.seed, s.verdict, s.reproduce
        );
    }
    if summaries.is_empty() {
        eprintln!("harness soak: the budget is too short for even one run");
        return Ok(exit::UNKNOWN);
    }
    Ok(code)
}

/// Writes summary.json, the page and the JUnit XML (atomically, so readers never see half).
fn write_outputs(
    args: &SoakArgs,
    soak_dir: &Path,
    stamp: &str,
    cells: &[Cell],
    summaries: &[RunSummary],
    elapsed: Duration,
) -> Result<(), SoakError> {
    use crate::report::index::write_atomic;
    let json = serde_json::json!({
        "started": stamp,
        "duration": args.duration,
        "elapsed_s": elapsed.as_secs_f64(),
        "cells": cells.iter().map(Cell::name).collect::<Vec<_>>(),
        "runs": summaries,
    });
    let mut bytes = serde_json::to_vec_pretty(&json).map_err(anyhow::Error::from)?;
    bytes.push(b'\n');
    write_atomic(&soak_dir.join("summary.json"), &bytes)?;
    let html = page::render(stamp, &args.duration, cells, summaries, elapsed);
    write_atomic(&soak_dir.join("index.html"), html.as_bytes())?;
    if let Some(path) = &args.junit {
        let cases: Vec<junit::Case> = summaries.iter().map(to_case).collect();
        let xml = junit::render("harness-soak", stamp, &cases);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(anyhow::Error::from)?;
        }
        write_atomic(path, xml.as_bytes())?;
    }
    Ok(())
}

fn to_case(s: &RunSummary) -> junit::Case {
    junit::Case {
        classname: s.cell.clone(),
        name: s.seed.to_string(),
        seconds: s.seconds,
        result: match s.code {
            exit::VALID => junit::CaseResult::Passed,
            exit::INVALID => junit::CaseResult::Failed,
            exit::UNKNOWN => junit::CaseResult::Unknown,
            _ => junit::CaseResult::HarnessError,
        },
        message: s.verdict.clone(),
        reproduce: s.reproduce.clone(),
        run_dir: s.run_dir.as_ref().map(|p| p.display().to_string()),
    }
}
