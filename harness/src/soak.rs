//! `harness soak`: many short seeded runs over a matrix of workloads × cluster sizes ×
//! nemeses × read modes, round-robin in an order drawn from the seed, until a time budget is
//! spent (many short randomized runs rather than one long one). Only failing runs keep their
//! directories; every run, and every cell that did not get a turn, is summarised in
//! `summary.json`, a page (`results/soak/<timestamp>/index.html`) and JUnit XML
//! (`junit.xml` beside them, and `--junit FILE`). `--shard I/N` runs one shard of the matrix;
//! `harness soak-merge` ([`merge`]) joins the shards' results.
//!
//! Guarantees: no run starts unless its time limit plus the measured per-run overhead still
//! fits in the budget, and the checker of each run is given at most what is left; every
//! failing run is listed with the one command that reproduces it; every cell that did not run
//! is listed with the reason.

pub mod duration;
pub mod junit;
pub mod matrix;
pub mod merge;
pub mod page;
pub mod summary;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;

use crate::exit;
use crate::test::runner;
use matrix::{Cell, CellRecord, Shard};
pub use summary::RunSummary;
use summary::{Skipped, Summary};
use workloads::generator::WorkloadKind;

/// Options of `harness soak`.
#[derive(Args, Debug, Clone)]
pub struct SoakArgs {
    /// Time budget: 90s, 10m, 1h, 1h30m, or plain seconds. No run starts that could not
    /// finish within it.
    #[arg(long)]
    pub duration: String,
    /// Also write JUnit XML here (one test case per run, one skipped case per cell that did
    /// not run); junit.xml in the soak's directory is always written.
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
    /// Cluster sizes, comma-separated (e.g. 3,4,5): a matrix dimension, each size its own cells.
    #[arg(long, value_delimiter = ',', default_value = "3")]
    pub nodes: Vec<usize>,
    /// Workloads, comma-separated (register, set): a matrix dimension, each its own cells.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "register")]
    pub workload: Vec<WorkloadKind>,
    /// Mean seconds between fault changes.
    #[arg(long, default_value_t = 2.0)]
    pub nemesis_interval: f64,
    /// First seed (run i uses seed + i; the seed also orders the cells' turns); default
    /// random, printed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run only shard I of N (1-based): the cells whose position in the matrix is I-1 mod N.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// The node binary under test.
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
}

/// Per-run time beyond the workload's time limit (start, settle, final reads, check) assumed
/// before any run has been measured.
const INITIAL_OVERHEAD: Duration = Duration::from_secs(20);

/// Typical per-run overhead of a short run (measured: 2-5 s), used only to estimate up front
/// how many runs the budget holds; whether a run may start uses the cautious figures.
const TYPICAL_OVERHEAD: Duration = Duration::from_secs(5);

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
) -> Result<crate::test::TestArgs, SoakError> {
    let mut w: Vec<String> = [
        "--nodes",
        &cell.nodes.to_string(),
        "--time-limit",
        &args.run_time.to_string(),
        "--workload",
        &cell.workload,
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
    let t = crate::test::args::test_args(&w).map_err(|e| SoakError::Usage(e.to_string()))?;
    crate::test::plan(&t).map_err(|e| SoakError::Usage(format!("cell {}: {e}", cell.name())))?;
    Ok(t)
}

/// The whole matrix and the cells of this soak's shard, both in matrix order.
struct Selection {
    /// Every cell of the matrix.
    all: Vec<Cell>,
    /// The cells this soak runs (all of them without `--shard`).
    mine: Vec<Cell>,
    shard: Option<Shard>,
}

/// Reads the matrix and shard options; refuses a shard that would hold no cell.
fn shard_cells(args: &SoakArgs) -> Result<Selection, SoakError> {
    let shard = args
        .shard
        .as_deref()
        .map(matrix::parse_shard)
        .transpose()
        .map_err(|e| SoakError::Usage(format!("--shard: {e}")))?;
    if !(args.run_time.is_finite() && args.run_time > 0.0) {
        return Err(SoakError::Usage("--run-time must be positive".into()));
    }
    let specs = if args.matrix.is_empty() {
        vec![matrix::DEFAULT_MATRIX.to_string()]
    } else {
        args.matrix.clone()
    };
    let workloads: Vec<String> = args
        .workload
        .iter()
        .map(|w| w.as_str().to_string())
        .collect();
    let all = matrix::parse_matrix(&specs, &workloads, &args.nodes)
        .map_err(|e| SoakError::Usage(format!("--matrix: {e}")))?;
    let mine: Vec<Cell> = match shard {
        None => all.clone(),
        Some(sh) => all
            .iter()
            .enumerate()
            .filter(|(i, _)| sh.owns(*i))
            .map(|(_, c)| c.clone())
            .collect(),
    };
    if mine.is_empty() {
        return Err(SoakError::Usage(format!(
            "--shard {}: this shard holds no cell (the matrix has {} cells)",
            shard.map(|s| s.to_string()).unwrap_or_default(),
            all.len()
        )));
    }
    Ok(Selection { all, mine, shard })
}

/// Why the cells still without a run have none; one line each.
fn skip_reason(finished: bool, needs: Duration, left: Duration) -> String {
    if finished {
        format!(
            "time budget spent before this cell's turn (needs ~{:.0} s, {:.0} s left)",
            needs.as_secs_f64(),
            left.as_secs_f64()
        )
    } else {
        "not run yet (the soak is still running)".to_string()
    }
}

fn run_inner(args: &SoakArgs) -> Result<u8, SoakError> {
    let budget = duration::parse_duration(&args.duration)
        .map_err(|e| SoakError::Usage(format!("--duration: {e}")))?;
    let Selection {
        all: all_cells,
        mine: cells,
        shard,
    } = shard_cells(args)?;
    let started = Instant::now();
    let stamp = crate::run_dir::timestamp();
    let soak_dir = args.results_dir.join("soak").join(&stamp);
    let runs_dir = soak_dir.join("runs");
    // Validate every cell before creating anything or spending any time.
    let cell_test_args = cells
        .iter()
        .map(|c| cell_args(args, c, &runs_dir))
        .collect::<Result<Vec<_>, _>>()?;
    std::fs::create_dir_all(&runs_dir).map_err(|e| {
        SoakError::Failed(anyhow::anyhow!("cannot create {}: {e}", runs_dir.display()))
    })?;
    let base_seed = args
        .seed
        .unwrap_or_else(|| rand::Rng::gen::<u64>(&mut rand::thread_rng()) >> 11);
    let order = matrix::run_order(cells.len(), base_seed);
    let shard_note = shard.map_or(String::new(), |s| {
        format!(" (shard {s} of a {}-cell matrix)", all_cells.len())
    });
    eprintln!(
        "harness soak: {} cells{shard_note}, budget {:.0} s, first seed {base_seed}, results {}",
        cells.len(),
        budget.as_secs_f64(),
        soak_dir.display()
    );
    let run_time = Duration::from_secs_f64(args.run_time);
    // Say up front when the budget cannot reach every cell, rather than only at the end.
    let per_run = run_time + TYPICAL_OVERHEAD;
    let fit = (budget.as_secs_f64() / per_run.as_secs_f64()).floor() as usize;
    if fit < cells.len() {
        eprintln!(
            "harness soak: warning: at ~{:.0} s a run the budget fits about {fit} runs for {} \
             cells; the cells take turns in an order drawn from seed {base_seed}, so another \
             seed starves other cells (give a longer --duration or split with --shard I/N to \
             run them all)",
            per_run.as_secs_f64(),
            cells.len()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| SoakError::Failed(anyhow::anyhow!("cannot start the async runtime: {e}")))?;

    let out = Outputs {
        args,
        soak_dir: &soak_dir,
        stamp: &stamp,
        matrix: all_cells.iter().map(Cell::name).collect(),
        cells: cells.iter().map(CellRecord::from).collect(),
        shard,
        seed: base_seed,
    };
    let mut summaries: Vec<RunSummary> = Vec::new();
    // The largest measured overhead; until a run was measured, INITIAL_OVERHEAD.
    let mut measured: Option<Duration> = None;
    let mut i: u64 = 0;
    // Bounded: every iteration either runs (taking at least run_time) or stops. What it
    // yields is what the next run would have needed and what was left.
    let stop = loop {
        let left = budget.saturating_sub(started.elapsed());
        let overhead = measured.map_or(INITIAL_OVERHEAD, |m| m + OVERHEAD_MARGIN);
        if run_time + overhead > left {
            break (run_time + overhead, left);
        }
        let ci = order[(i as usize) % cells.len()];
        let cell = &cells[ci];
        let mut targs = cell_test_args[ci].clone();
        // The checker gets what is left after the workload and a margin for start and stop.
        let check_s = left
            .saturating_sub(run_time + Duration::from_secs(10))
            .as_secs_f64()
            .clamp(5.0, 120.0);
        targs.check_timeout = check_s;
        let plan = crate::test::plan(&targs).map_err(|e| SoakError::Usage(e.to_string()))?;
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
            Some(crate::run_dir::relative_to(&outcome.run_dir, &soak_dir))
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
        out.write(&summaries, started.elapsed(), None)?;
        i += 1;
    };
    let summary = out.write(&summaries, started.elapsed(), Some(stop))?;
    // The runs index lists only what is left; `latest` may point at a deleted run.
    let latest = runs_dir.join("latest");
    if std::fs::symlink_metadata(&latest).is_ok() && std::fs::metadata(&latest).is_err() {
        let _ = std::fs::remove_file(&latest);
    }
    let _ = crate::report::rebuild_results_index(&runs_dir);

    let failed = summaries.iter().filter(|s| s.code != exit::VALID).count();
    println!(
        "soak: {}; {} runs in {:.0} s, {} not valid; summary {}",
        summary::cells_line(&summary),
        summaries.len(),
        started.elapsed().as_secs_f64(),
        failed,
        soak_dir.join("index.html").display()
    );
    if !summary.skipped.is_empty() {
        println!(
            "  {} cells did not run: time budget spent before their turn (needs ~{:.0} s a run); see junit.xml",
            summary.skipped.len(),
            stop.0.as_secs_f64()
        );
    }
    for s in summaries.iter().filter(|s| s.code != exit::VALID) {
        println!(
            "  {} seed {}: {}\n    reproduce: {}",
            s.cell, s.seed, s.verdict, s.reproduce
        );
    }
    if summaries.is_empty() {
        eprintln!("harness soak: the budget is too short for even one run");
    }
    Ok(summary.code)
}

/// What every rewrite of the soak's outputs shares.
struct Outputs<'a> {
    args: &'a SoakArgs,
    soak_dir: &'a Path,
    stamp: &'a str,
    matrix: Vec<String>,
    cells: Vec<CellRecord>,
    shard: Option<Shard>,
    seed: u64,
}

impl Outputs<'_> {
    /// Writes summary.json, the page and the JUnit XML (atomically, so readers never see
    /// half). `stop` is `(needed, left)` once the budget ran out; before that the cells
    /// without a run are listed as not run yet.
    fn write(
        &self,
        runs: &[RunSummary],
        elapsed: Duration,
        stop: Option<(Duration, Duration)>,
    ) -> Result<Summary, SoakError> {
        let (needs, left) = stop.unwrap_or_default();
        let reason = skip_reason(stop.is_some(), needs, left);
        let skipped = self
            .cells
            .iter()
            .filter(|c| !runs.iter().any(|r| r.cell == c.name))
            .map(|c| Skipped {
                cell: c.name.clone(),
                reason: reason.clone(),
            })
            .collect();
        let s = Summary {
            started: self.stamp.to_string(),
            duration: self.args.duration.clone(),
            elapsed_s: elapsed.as_secs_f64(),
            seed: Some(self.seed),
            shard: self.shard,
            finished: stop.is_some(),
            code: summary::runs_code(runs),
            cells_run: summary::count_cells_run(&self.cells, runs),
            cells_total: self.cells.len(),
            matrix: self.matrix.clone(),
            cells: self.cells.clone(),
            skipped,
            runs: runs.to_vec(),
            merged_from: vec![],
        };
        write_summary_files(&s, self.soak_dir, self.args.junit.as_deref())?;
        Ok(s)
    }
}

/// Writes `summary.json`, `index.html` and `junit.xml` into `dir`, and the JUnit XML also to
/// `junit` when given; each file atomically, so readers never see half of one.
pub fn write_summary_files(s: &Summary, dir: &Path, junit: Option<&Path>) -> anyhow::Result<()> {
    use crate::run_dir::write_atomic;
    let mut bytes = serde_json::to_vec_pretty(s)?;
    bytes.push(b'\n');
    write_atomic(&dir.join("summary.json"), &bytes)?;
    write_atomic(&dir.join("index.html"), page::render(s).as_bytes())?;
    let xml = junit::render("harness-soak", &s.started, &summary::junit_cases(s));
    write_atomic(&dir.join("junit.xml"), xml.as_bytes())?;
    if let Some(path) = junit {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        write_atomic(path, xml.as_bytes())?;
    }
    Ok(())
}
