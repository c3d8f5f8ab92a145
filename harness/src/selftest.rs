//! `harness selftest`: proves the harness catches real protocol mistakes. For each deliberate
//! bug of `node --bug`, runs the scenario that exposes it ([`scenarios`]) with a few seeds until
//! a run is invalid, then runs the correct node with the same options and seed (hence the same
//! fault schedule, which is drawn from the seed). Prints a table, writes
//! `results/selftest/index.html` (+ `selftest.json`) linking every run's report.
//!
//! Exit code: 0 only if every bug was caught and the correct node was valid in every run;
//! 1 otherwise; 254 bad options; 255 if the harness itself failed (including a correct-node
//! run that could not even start). The whole command stays within `--budget`: no run starts
//! unless it and its correct-node twin fit in what is left.

pub mod page;
pub mod scenarios;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::exit;
use crate::test::runner;
use node::bugs::Bug;
use scenarios::Scenario;

/// Options of `harness selftest`.
#[derive(Args, Debug, Clone)]
pub struct SelftestArgs {
    /// Where results go; the page is <DIR>/selftest/index.html, runs under <DIR>/selftest/runs/.
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
    /// Total seconds the self-test may take (runs that would not fit are not started).
    #[arg(long, default_value_t = 840.0)]
    pub budget: f64,
    /// Comma-separated bugs to test (default: all, or the quick ones with --fast).
    #[arg(long)]
    pub bugs: Option<String>,
    /// Only the quickest bugs (for CI; about 2 minutes).
    #[arg(long)]
    pub fast: bool,
    /// The node binary under test.
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
    /// First seed of each bug's runs (run i uses seed + i), so a self-test is reproducible.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What the self-test found for one bug (a row of the table and of `selftest.json`).
#[derive(Clone, Debug, Serialize)]
pub struct BugResult {
    /// The bug.
    pub bug: String,
    /// Its scenario's nemesis, read mode and workload.
    pub nemesis: String,
    pub read_mode: String,
    pub workload: String,
    /// Whether a run with the bug was invalid.
    pub caught: bool,
    /// Runs with the bug, up to and including the first invalid one.
    pub runs: usize,
    /// Seconds of those runs (time to first detection when caught).
    pub seconds: f64,
    /// The seed of the catching run (or of the last run tried).
    pub seed: Option<u64>,
    /// Exit code of each run with the bug.
    pub bug_codes: Vec<u8>,
    /// Run directories of the runs with the bug (relative to the selftest directory).
    pub bug_runs: Vec<PathBuf>,
    /// The correct node's verdict under the same options and seed (`valid`, `INVALID`, ...),
    /// or `not run`.
    pub correct: String,
    /// Exit code of the correct node's run.
    pub correct_code: Option<u8>,
    /// Its run directory.
    pub correct_run: Option<PathBuf>,
    /// The command that reproduces the catching run.
    pub reproduce: Option<String>,
    /// Why it was not caught, when it was not (e.g. the budget ran out).
    pub note: String,
    /// Why this scenario should expose the bug (or what it would take).
    pub why: String,
}

impl BugResult {
    /// Whether this row passes: caught, and the correct node valid.
    pub fn ok(&self) -> bool {
        self.caught && self.correct_code == Some(exit::VALID)
    }
}

/// Per-run time beyond the time limit assumed before any run was measured.
const INITIAL_OVERHEAD: Duration = Duration::from_secs(15);

/// Runs `harness selftest`; returns the exit code.
pub fn run(args: &SelftestArgs) -> u8 {
    match run_inner(args) {
        Ok(code) => code,
        Err((code, m)) => {
            eprintln!("harness selftest: {m}");
            code
        }
    }
}

/// The scenarios selected by `--bugs` / `--fast`, quickest first.
pub fn select(args: &SelftestArgs) -> Result<Vec<&'static Scenario>, String> {
    let mut out: Vec<&'static Scenario> = match &args.bugs {
        Some(list) => {
            let mut v = Vec::new();
            for b in list.split(',').map(str::trim).filter(|b| !b.is_empty()) {
                let Ok(bug) = b.parse::<Bug>() else {
                    return Err(format!(
                        "--bugs: unknown bug {b:?} (expected some of {})",
                        Bug::names()
                    ));
                };
                let s = scenarios::scenario(bug).ok_or_else(|| format!("no scenario for {b}"))?;
                if !v.contains(&s) {
                    v.push(s);
                }
            }
            v
        }
        None => scenarios::SCENARIOS
            .iter()
            .filter(|s| !args.fast || s.fast)
            .collect(),
    };
    if out.is_empty() {
        return Err("--bugs: no bug selected".into());
    }
    out.sort_by_key(|s| !s.fast);
    Ok(out)
}

fn run_inner(args: &SelftestArgs) -> Result<u8, (u8, String)> {
    let usage = |m: String| (exit::BAD_USAGE, m);
    if !(args.budget.is_finite() && args.budget > 0.0) {
        return Err(usage("--budget must be positive".into()));
    }
    let chosen = select(args).map_err(usage)?;
    let dir = args.results_dir.join("selftest");
    let runs_dir = dir.join("runs");
    std::fs::create_dir_all(&runs_dir).map_err(|e| {
        (
            exit::HARNESS_FAILED,
            format!("cannot create {}: {e}", runs_dir.display()),
        )
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            (
                exit::HARNESS_FAILED,
                format!("cannot start the async runtime: {e}"),
            )
        })?;
    let budget = Duration::from_secs_f64(args.budget);
    let started = Instant::now();
    // The largest measured overhead (+ margin); until a run was measured, INITIAL_OVERHEAD.
    let mut measured: Option<Duration> = None;
    let mut harness_failed = false;
    let mut rows: Vec<BugResult> = Vec::new();

    for sc in &chosen {
        let mut words = sc.words();
        words.extend(["--results-dir".into(), runs_dir.display().to_string()]);
        if let Some(n) = &args.node_bin {
            words.extend(["--node-bin".into(), n.display().to_string()]);
        }
        let correct_args =
            crate::test::args::test_args(&words).map_err(|e| usage(e.to_string()))?;
        let mut bug_args = correct_args.clone();
        bug_args.bug = Some(sc.bug.to_string());
        let bug_plan = crate::test::plan(&bug_args).map_err(|e| usage(e.to_string()))?;
        let correct_plan = crate::test::plan(&correct_args).map_err(|e| usage(e.to_string()))?;
        let mut row = BugResult {
            bug: sc.bug.to_string(),
            nemesis: sc.nemesis.into(),
            read_mode: sc.read_mode.into(),
            workload: sc.workload.into(),
            caught: false,
            runs: 0,
            seconds: 0.0,
            seed: None,
            bug_codes: vec![],
            bug_runs: vec![],
            correct: "not run".into(),
            correct_code: None,
            correct_run: None,
            reproduce: None,
            note: String::new(),
            why: sc.why.into(),
        };
        eprintln!(
            "harness selftest: {} under {} / {} / {}",
            sc.bug, sc.nemesis, sc.read_mode, sc.workload
        );
        let per_run = Duration::from_secs_f64(sc.time_limit);
        for i in 0..sc.max_runs {
            let overhead = measured.map_or(INITIAL_OVERHEAD, |m| m + Duration::from_secs(3));
            // Room for this run and the correct node's twin.
            if 2 * (per_run + overhead) > budget.saturating_sub(started.elapsed()) {
                row.note = format!("budget spent after {} runs", row.runs);
                break;
            }
            let seed = args.seed.wrapping_add(i as u64);
            let o = rt
                .block_on(runner::run_test_retrying(&bug_plan, seed))
                .map_err(|e| (exit::HARNESS_FAILED, format!("{e:#}")))?;
            let this = o.elapsed.saturating_sub(per_run);
            measured = Some(measured.map_or(this, |m| m.max(this)));
            row.runs += 1;
            row.seconds += o.elapsed.as_secs_f64();
            row.seed = Some(seed);
            row.bug_codes.push(o.code);
            row.bug_runs
                .push(crate::run_dir::relative_to(&o.run_dir, &dir));
            eprintln!(
                "harness selftest:   {} seed {seed}: {}",
                sc.bug,
                runner::one_line(&o)
            );
            if o.code == exit::INVALID {
                row.caught = true;
                row.reproduce = Some(runner::reproduce_command(&bug_args, seed));
                break;
            }
        }
        if row.runs > 0 && !row.caught && row.note.is_empty() {
            row.note = format!("no anomaly in {} runs", row.runs);
        }
        if let Some(seed) = row.seed {
            let overhead = measured.map_or(INITIAL_OVERHEAD, |m| m + Duration::from_secs(3));
            if per_run + overhead <= budget.saturating_sub(started.elapsed()) {
                let o = rt
                    .block_on(runner::run_test_retrying(&correct_plan, seed))
                    .map_err(|e| (exit::HARNESS_FAILED, format!("{e:#}")))?;
                let this = o.elapsed.saturating_sub(per_run);
                measured = Some(measured.map_or(this, |m| m.max(this)));
                if o.code == exit::HARNESS_FAILED {
                    harness_failed = true;
                }
                row.correct = runner::one_line(&o);
                row.correct_code = Some(o.code);
                row.correct_run = Some(crate::run_dir::relative_to(&o.run_dir, &dir));
            }
        }
        rows.push(row);
        write_outputs(&dir, &rows, started.elapsed())
            .map_err(|e| (exit::HARNESS_FAILED, format!("{e:#}")))?;
    }
    write_outputs(&dir, &rows, started.elapsed())
        .map_err(|e| (exit::HARNESS_FAILED, format!("{e:#}")))?;
    let _ = crate::report::rebuild_results_index(&runs_dir);
    print!("{}", table(&rows));
    println!(
        "selftest: {} of {} bugs caught, correct node valid in {} of {} runs, {:.0} s; page {}",
        rows.iter().filter(|r| r.caught).count(),
        rows.len(),
        rows.iter()
            .filter(|r| r.correct_code == Some(exit::VALID))
            .count(),
        rows.len(),
        started.elapsed().as_secs_f64(),
        dir.join("index.html").display()
    );
    if harness_failed {
        return Ok(exit::HARNESS_FAILED);
    }
    Ok(if rows.iter().all(BugResult::ok) {
        exit::VALID
    } else {
        exit::INVALID
    })
}

/// The table printed at the end: bug, fault, read mode, caught, runs, seconds, correct node.
pub fn table(rows: &[BugResult]) -> String {
    let mut s = format!(
        "{:<22} {:<15} {:<10} {:<8} {:<6} {:>5} {:>8}  {}\n",
        "bug", "fault", "read mode", "workload", "caught", "runs", "seconds", "correct node"
    );
    for r in rows {
        let correct = r.correct.split(';').next().unwrap_or("");
        s.push_str(&format!(
            "{:<22} {:<15} {:<10} {:<8} {:<6} {:>5} {:>8.1}  {}\n",
            r.bug,
            r.nemesis,
            r.read_mode,
            r.workload,
            if r.caught { "yes" } else { "NO" },
            r.runs,
            r.seconds,
            correct
        ));
    }
    s
}

fn write_outputs(dir: &Path, rows: &[BugResult], elapsed: Duration) -> anyhow::Result<()> {
    use crate::run_dir::write_atomic;
    let json = serde_json::json!({
        "elapsed_s": elapsed.as_secs_f64(),
        "passed": rows.iter().all(BugResult::ok),
        "bugs": rows,
    });
    let mut bytes = serde_json::to_vec_pretty(&json)?;
    bytes.push(b'\n');
    write_atomic(&dir.join("selftest.json"), &bytes)?;
    write_atomic(
        &dir.join("index.html"),
        page::render(rows, elapsed).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(bugs: Option<&str>, fast: bool) -> SelftestArgs {
        SelftestArgs {
            results_dir: "results".into(),
            budget: 60.0,
            bugs: bugs.map(str::to_string),
            fast,
            node_bin: None,
            seed: 1,
        }
    }

    #[test]
    fn selects_all_fast_or_named_bugs() {
        assert_eq!(select(&args(None, false)).unwrap().len(), Bug::ALL.len());
        let fast = select(&args(None, true)).unwrap();
        assert!((2..=3).contains(&fast.len()));
        let named = select(&args(Some("commit-by-count,follower-read-local"), false)).unwrap();
        // Quick ones first.
        assert_eq!(named[0].bug, Bug::FollowerReadLocal);
        assert!(select(&args(Some("nope"), false))
            .unwrap_err()
            .contains("nope"));
        assert!(select(&args(Some(" , "), false)).is_err());
    }

    #[test]
    fn table_says_no_honestly() {
        let r = BugResult {
            bug: "commit-by-count".into(),
            nemesis: "partition,kill".into(),
            read_mode: "log".into(),
            workload: "register".into(),
            caught: false,
            runs: 4,
            seconds: 80.0,
            seed: Some(4),
            bug_codes: vec![0, 0, 0, 0],
            bug_runs: vec![],
            correct: "valid (log: valid)".into(),
            correct_code: Some(0),
            correct_run: None,
            reproduce: None,
            note: "no anomaly in 4 runs".into(),
            why: String::new(),
        };
        assert!(!r.ok());
        let t = table(&[r]);
        assert!(t.contains("commit-by-count") && t.contains(" NO "), "{t}");
    }
}
