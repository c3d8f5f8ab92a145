//! The soak summary page: pass/fail per matrix cell, then every run that did not pass with
//! its seed, verdict, kept run directory and the one command that reproduces it.

use maud::html;

use super::matrix::Cell;
use super::RunSummary;
use crate::exit;
use crate::report::html::{page, url_path};

/// Counts of one cell's runs.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct CellCounts {
    /// Runs started.
    pub runs: usize,
    /// Valid runs.
    pub passed: usize,
    /// Invalid runs.
    pub failed: usize,
    /// Unknown verdicts and harness failures.
    pub errors: usize,
}

/// Tallies the runs of `cell`.
pub fn counts(cell: &str, summaries: &[RunSummary]) -> CellCounts {
    let mut c = CellCounts::default();
    for s in summaries.iter().filter(|s| s.cell == cell) {
        c.runs += 1;
        match s.code {
            exit::VALID => c.passed += 1,
            exit::INVALID => c.failed += 1,
            _ => c.errors += 1,
        }
    }
    c
}

/// The page as a string.
pub fn render(
    stamp: &str,
    duration: &str,
    cells: &[Cell],
    summaries: &[RunSummary],
    elapsed: std::time::Duration,
) -> String {
    let bad: Vec<&RunSummary> = summaries.iter().filter(|s| s.code != exit::VALID).collect();
    let body = html! {
        main {
            h1 { "Soak " (stamp) }
            p.sub {
                (summaries.len()) " runs over " (cells.len()) " cells in "
                (format!("{:.0}", elapsed.as_secs_f64())) " s (budget " (duration) "); "
                (bad.len()) " did not pass. Passing runs are summarised only; failing runs keep their directories."
            }
            h2 { "Cells" }
            table {
                tr { th { "cell" } th { "nemesis" } th { "read mode" } th { "bug" } th { "runs" } th { "passed" } th { "invalid" } th { "unknown / error" } th { "result" } }
                @for c in cells {
                    @let n = counts(&c.name(), summaries);
                    tr {
                        td.mono { (c.name()) }
                        td { (c.nemesis) }
                        td { (c.read_mode) }
                        td { (c.bug.as_deref().unwrap_or("–")) }
                        td.n { (n.runs) }
                        td.n { (n.passed) }
                        td.n { (n.failed) }
                        td.n { (n.errors) }
                        td {
                            @if n.runs == 0 { span.pill.unknown { "not run" } }
                            @else if n.failed > 0 { span.pill.invalid { "FAIL" } }
                            @else if n.errors > 0 { span.pill.unknown { "ERROR" } }
                            @else { span.pill.valid { "pass" } }
                        }
                    }
                }
            }
            h2 { "Runs that did not pass" }
            @if bad.is_empty() { p { "None." } }
            @for s in &bad {
                div.anomaly {
                    b { (s.cell) " seed " (s.seed) } " — " (s.verdict)
                    " (" (format!("{:.1}", s.seconds)) " s)"
                    @if let Some(d) = &s.run_dir {
                        @let segs: Vec<String> = d.iter().map(|x| x.to_string_lossy().into_owned()).collect();
                        @let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
                        " · " a href=(format!("{}/index.html", url_path(&segs))) { "report" }
                    }
                    pre { (s.reproduce) }
                }
            }
            h2 { "All runs" }
            table {
                tr { th { "#" } th { "cell" } th { "seed" } th { "verdict" } th { "seconds" } }
                @for (i, s) in summaries.iter().enumerate() {
                    tr {
                        td.n { (i + 1) }
                        td.mono { (s.cell) }
                        td.n { (s.seed) }
                        td { (s.verdict) }
                        td.n { (format!("{:.1}", s.seconds)) }
                    }
                }
            }
            p.note { "summary.json has the same data, machine-readable." }
        }
    };
    page(&format!("Soak {stamp}"), "", body).into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(cell: &str, seed: u64, code: u8) -> RunSummary {
        RunSummary {
            cell: cell.into(),
            seed,
            code,
            verdict: "v <b>".into(),
            seconds: 1.0,
            reproduce: format!("harness test --seed {seed}"),
            run_dir: (code != 0).then(|| std::path::PathBuf::from("runs/t/r 1")),
        }
    }

    #[test]
    fn tallies_and_lists_failures_with_reproduce_commands() {
        let cells =
            super::super::matrix::parse_matrix(&["partition x read-index,lease".into()]).unwrap();
        let runs = vec![
            s("partition.read-index", 1, 0),
            s("partition.lease", 2, 1),
            s("partition.read-index", 3, 255),
        ];
        assert_eq!(
            counts("partition.read-index", &runs),
            CellCounts {
                runs: 2,
                passed: 1,
                failed: 0,
                errors: 1
            }
        );
        let html = render("T", "40s", &cells, &runs, std::time::Duration::from_secs(3));
        assert!(html.contains("harness test --seed 2"));
        assert!(html.contains("harness test --seed 3"));
        assert!(html.contains("v &lt;b&gt;"), "escaped");
        assert!(html.contains("runs/t/r%201/index.html"));
    }
}
