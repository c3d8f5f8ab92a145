//! `summary.json` of a soak (or of a merge of shards): what was to run, what ran, what did not
//! and why. The page and the JUnit XML are both built from this one value, so the three never
//! disagree, and `soak-merge` needs nothing but the shards' `summary.json` files.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::junit;
use super::matrix::{CellRecord, Shard};
use crate::exit;

/// What one soak run found (a line of `summary.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
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

/// A cell of the soak that did not run, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    /// The cell's name.
    pub cell: String,
    /// Why it did not run, one line.
    pub reason: String,
}

/// One input of a merge, as listed in the merged summary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MergedInput {
    /// The soak directory read.
    pub dir: PathBuf,
    /// Its shard, if it was one.
    pub shard: Option<Shard>,
    /// Its exit code.
    pub code: u8,
    /// Its runs.
    pub runs: usize,
    /// Cells of it that ran at least once.
    pub cells_run: usize,
    /// Its cells.
    pub cells_total: usize,
}

/// The whole `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// When the soak (or merge) started, as in the directory name.
    pub started: String,
    /// The time budget as given (for a merge: the shards' budgets).
    pub duration: String,
    /// Seconds spent (for a merge: the longest shard, as shards run side by side).
    pub elapsed_s: f64,
    /// The first seed; it also ordered the cells' turns. None for a merge of several seeds.
    pub seed: Option<u64>,
    /// The shard this soak ran, when it ran one.
    pub shard: Option<Shard>,
    /// False while the soak is still running (the file is rewritten after every run).
    pub finished: bool,
    /// The exit code: the worst run's (2 when nothing ran; for a merge also 255 when a shard
    /// is missing).
    pub code: u8,
    /// Cells of `cells` that ran at least once.
    pub cells_run: usize,
    /// `cells.len()`.
    pub cells_total: usize,
    /// The name of every cell of the whole matrix, over all shards, in matrix order.
    pub matrix: Vec<String>,
    /// The cells this soak was to run (its shard's), in matrix order.
    pub cells: Vec<CellRecord>,
    /// Every cell of `cells` that did not run, with the reason.
    pub skipped: Vec<Skipped>,
    /// Every run, in the order they ran.
    pub runs: Vec<RunSummary>,
    /// For a merge: the directories merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<MergedInput>,
}

/// The `X of Y cells ran` line every output shows.
pub fn cells_line(s: &Summary) -> String {
    let mut line = format!("{} of {} cells ran", s.cells_run, s.cells_total);
    if let Some(sh) = s.shard {
        line.push_str(&format!(
            " (shard {sh}; the matrix has {} cells)",
            s.matrix.len()
        ));
    } else if s.cells_total != s.matrix.len() {
        line.push_str(&format!(" (the matrix has {} cells)", s.matrix.len()));
    }
    line
}

/// How many of `cells` have at least one run.
pub fn count_cells_run(cells: &[CellRecord], runs: &[RunSummary]) -> usize {
    cells
        .iter()
        .filter(|c| runs.iter().any(|r| r.cell == c.name))
        .count()
}

/// The worst exit code of the runs; 2 (unknown) when nothing ran, since nothing was checked.
pub fn runs_code(runs: &[RunSummary]) -> u8 {
    if runs.is_empty() {
        return exit::UNKNOWN;
    }
    runs.iter()
        .fold(exit::VALID, |acc, r| exit::worst(acc, r.code))
}

/// The JUnit test cases: one per run, then one `skipped` case per cell that did not run.
pub fn junit_cases(s: &Summary) -> Vec<junit::Case> {
    let mut cases: Vec<junit::Case> = s
        .runs
        .iter()
        .map(|r| junit::Case {
            classname: r.cell.clone(),
            name: r.seed.to_string(),
            seconds: r.seconds,
            result: match r.code {
                exit::VALID => junit::CaseResult::Passed,
                exit::INVALID => junit::CaseResult::Failed,
                exit::UNKNOWN => junit::CaseResult::Unknown,
                _ => junit::CaseResult::HarnessError,
            },
            message: r.verdict.clone(),
            reproduce: r.reproduce.clone(),
            run_dir: r.run_dir.as_ref().map(|p| p.display().to_string()),
        })
        .collect();
    cases.extend(s.skipped.iter().map(|k| junit::Case {
        classname: k.cell.clone(),
        name: "not run".into(),
        seconds: 0.0,
        result: junit::CaseResult::Skipped,
        message: k.reason.clone(),
        reproduce: String::new(),
        run_dir: None,
    }));
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cell: &str, code: u8) -> RunSummary {
        RunSummary {
            cell: cell.into(),
            seed: 1,
            code,
            verdict: "v".into(),
            seconds: 1.0,
            reproduce: "harness test --seed 1".into(),
            run_dir: None,
        }
    }

    fn cell(name: &str) -> CellRecord {
        CellRecord {
            name: name.into(),
            workload: "register".into(),
            nodes: 3,
            nemesis: "none".into(),
            read_mode: "log".into(),
            bug: None,
        }
    }

    #[test]
    fn codes_counts_and_cases() {
        assert_eq!(runs_code(&[]), exit::UNKNOWN);
        assert_eq!(
            runs_code(&[run("a", 0), run("a", 2), run("b", 1)]),
            exit::INVALID
        );
        let cells = vec![cell("a"), cell("b"), cell("c")];
        let runs = vec![run("a", 0), run("a", 0)];
        assert_eq!(count_cells_run(&cells, &runs), 1);
        let s = Summary {
            started: "T".into(),
            duration: "1m".into(),
            elapsed_s: 1.0,
            seed: Some(1),
            shard: Some(Shard { index: 1, count: 2 }),
            finished: true,
            code: 0,
            cells_run: 1,
            cells_total: 3,
            matrix: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            cells,
            skipped: vec![
                Skipped {
                    cell: "b".into(),
                    reason: "r".into(),
                },
                Skipped {
                    cell: "c".into(),
                    reason: "r".into(),
                },
            ],
            runs,
            merged_from: vec![],
        };
        assert_eq!(
            cells_line(&s),
            "1 of 3 cells ran (shard 1/2; the matrix has 4 cells)"
        );
        let cases = junit_cases(&s);
        assert_eq!(cases.len(), 4);
        assert_eq!(cases[3].result, junit::CaseResult::Skipped);
        assert_eq!(cases[3].classname, "c");
        // Round trip: what a merge reads back is what was written.
        let back: Summary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back.skipped, s.skipped);
        assert_eq!(back.shard, s.shard);
    }
}
