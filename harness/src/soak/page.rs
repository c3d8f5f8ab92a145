//! The soak summary page: how many of the cells ran, pass/fail per matrix cell (and why a
//! cell did not run), then every run that did not pass with its seed, verdict, kept run
//! directory and the one command that reproduces it. A merge of shards adds a table of the
//! shards merged.

use maud::html;

use super::summary::{cells_line, RunSummary, Summary};
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
pub fn render(s: &Summary) -> String {
    let bad: Vec<&RunSummary> = s.runs.iter().filter(|r| r.code != exit::VALID).collect();
    let merged = !s.merged_from.is_empty();
    let title = if merged {
        format!("Soak {} (merged)", s.started)
    } else {
        format!("Soak {}", s.started)
    };
    let body = html! {
        main {
            h1 { (title) }
            p.sub {
                b { (cells_line(s)) } ". "
                (s.runs.len()) " runs in "
                (format!("{:.0}", s.elapsed_s)) " s (budget " (s.duration) "); "
                (bad.len()) " did not pass. Passing runs are summarised only; failing runs keep their directories."
                @if !s.finished { " The soak is still running." }
            }
            p {
                @if let Some(sh) = s.shard { "Shard " b { (sh.to_string()) } " of the matrix. " }
                @if let Some(seed) = s.seed { "First seed " (seed) " (it also ordered the cells' turns). " }
                "Exit code " (s.code) "."
            }
            @if merged {
                h2 { "Shards merged" }
                table {
                    tr { th { "directory" } th { "shard" } th { "cells ran" } th { "runs" } th { "exit code" } }
                    @for m in &s.merged_from {
                        tr {
                            td.mono { (m.dir.display().to_string()) }
                            td { (m.shard.map_or("–".to_string(), |x| x.to_string())) }
                            td.n { (m.cells_run) " of " (m.cells_total) }
                            td.n { (m.runs) }
                            td.n { (m.code) }
                        }
                    }
                }
            }
            h2 { "Cells" }
            table {
                tr { th { "cell" } th { "workload" } th { "nodes" } th { "nemesis" } th { "read mode" } th { "bug" } th { "runs" } th { "passed" } th { "invalid" } th { "unknown / error" } th { "result" } }
                @for c in &s.cells {
                    @let n = counts(&c.name, &s.runs);
                    tr {
                        td.mono { (c.name) }
                        td { (c.workload) }
                        td.n { (c.nodes) }
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
            h2 { "Cells that did not run" }
            @if s.skipped.is_empty() { p { "None: every cell ran at least once." } }
            @else {
                table {
                    tr { th { "cell" } th { "why" } }
                    @for k in &s.skipped {
                        tr { td.mono { (k.cell) } td { (k.reason) } }
                    }
                }
            }
            h2 { "Runs that did not pass" }
            @if bad.is_empty() { p { "None." } }
            @for r in &bad {
                div.anomaly {
                    b { (r.cell) " seed " (r.seed) } " — " (r.verdict)
                    " (" (format!("{:.1}", r.seconds)) " s)"
                    @if let Some(d) = &r.run_dir {
                        @let segs: Vec<String> = d.iter().map(|x| x.to_string_lossy().into_owned()).collect();
                        @let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
                        " · " a href=(format!("{}/index.html", url_path(&segs))) { "report" }
                    }
                    pre { (r.reproduce) }
                }
            }
            h2 { "All runs" }
            table {
                tr { th { "#" } th { "cell" } th { "seed" } th { "verdict" } th { "seconds" } }
                @for (i, r) in s.runs.iter().enumerate() {
                    tr {
                        td.n { (i + 1) }
                        td.mono { (r.cell) }
                        td.n { (r.seed) }
                        td { (r.verdict) }
                        td.n { (format!("{:.1}", r.seconds)) }
                    }
                }
            }
            p.note { "summary.json has the same data, machine-readable; junit.xml lists every run and every cell that did not run." }
        }
    };
    page(&title, "", body).into_string()
}

#[cfg(test)]
mod tests {
    use super::super::matrix::{parse_matrix, CellRecord, Shard};
    use super::super::summary::Skipped;
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
    fn tallies_lists_failures_and_cells_not_run() {
        let cells: Vec<CellRecord> = parse_matrix(
            &["partition x read-index,lease,log".into()],
            &["register".into()],
            &[3],
        )
        .unwrap()
        .iter()
        .map(CellRecord::from)
        .collect();
        let runs = vec![
            s("register.n3.partition.read-index", 1, 0),
            s("register.n3.partition.lease", 2, 1),
            s("register.n3.partition.read-index", 3, 255),
        ];
        assert_eq!(
            counts("register.n3.partition.read-index", &runs),
            CellCounts {
                runs: 2,
                passed: 1,
                failed: 0,
                errors: 1
            }
        );
        let summary = Summary {
            started: "T".into(),
            duration: "40s".into(),
            elapsed_s: 3.0,
            seed: Some(9),
            shard: Some(Shard { index: 2, count: 3 }),
            finished: true,
            code: 255,
            cells_run: 2,
            cells_total: 3,
            matrix: (0..9).map(|i| format!("c{i}")).collect(),
            cells,
            skipped: vec![Skipped {
                cell: "register.n3.partition.log".into(),
                reason: "time budget spent <soon>".into(),
            }],
            runs,
            merged_from: vec![],
        };
        let html = render(&summary);
        assert!(html.contains("harness test --seed 2"));
        assert!(html.contains("harness test --seed 3"));
        assert!(html.contains("v &lt;b&gt;"), "escaped");
        assert!(html.contains("runs/t/r%201/index.html"));
        assert!(html.contains("2 of 3 cells ran (shard 2/3; the matrix has 9 cells)"));
        assert!(html.contains("<b>2/3</b>"), "shard shown");
        assert!(html.contains("time budget spent &lt;soon&gt;"));
    }
}
