//! The self-test page (`results/selftest/index.html`): one row per bug with its fault, read
//! path, whether it was caught, how long it took, the correct node's verdict, and links to
//! every run's report.

use std::path::Path;

use maud::{html, Markup};

use super::BugResult;
use crate::exit;
use crate::report::html::{page, url_path};

fn link(p: &Path, text: &str) -> Markup {
    let segs: Vec<String> = p.iter().map(|x| x.to_string_lossy().into_owned()).collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    html! { a href=(format!("{}/index.html", url_path(&segs))) { (text) } }
}

/// The page as a string.
pub fn render(rows: &[BugResult], elapsed: std::time::Duration) -> String {
    let all_ok = !rows.is_empty() && rows.iter().all(BugResult::ok);
    let body = html! {
        main {
            h1 { "Self-test: does the harness catch deliberate bugs?" }
            p {
                @if all_ok { span.verdict.valid { "PASS" } } @else { span.verdict.invalid { "FAIL" } }
                " " (rows.iter().filter(|r| r.caught).count()) " of " (rows.len()) " bugs caught; "
                (format!("{:.0}", elapsed.as_secs_f64())) " s in all."
            }
            p.sub {
                "Each bug runs under the fault and read path that should expose it, with seeds 1, 2, ... until a run is invalid; "
                "the correct node then runs with the same options and seed (so the same fault schedule) and must be valid."
            }
            table {
                tr { th { "bug" } th { "fault" } th { "read mode" } th { "workload" } th { "caught" } th { "runs" } th { "seconds to detect" } th { "correct node" } th { "runs with the bug" } th { "note" } th { "why this fault" } }
                @for r in rows {
                    tr {
                        td.mono { (r.bug) }
                        td { (r.nemesis) }
                        td { (r.read_mode) }
                        td { (r.workload) }
                        td { @if r.caught { span.pill.invalid { "caught" } } @else { span.pill.unknown { "NO" } } }
                        td.n { (r.runs) }
                        td.n { (format!("{:.1}", r.seconds)) }
                        td {
                            @match r.correct_code {
                                Some(0) => span.pill.valid { "valid" },
                                Some(c) => span.pill.invalid { (exit::label(c)) },
                                None => span.pill.unknown { "not run" },
                            }
                            @if let Some(p) = &r.correct_run { " " (link(p, "report")) }
                        }
                        td {
                            @for (i, p) in r.bug_runs.iter().enumerate() {
                                @let c = r.bug_codes.get(i).copied().unwrap_or(255);
                                (link(p, &format!("{} ({})", i + 1, exit::label(c)))) " "
                            }
                        }
                        td { (r.note) }
                        td.note { (r.why) }
                    }
                }
            }
            h2 { "Reproduce" }
            @for r in rows.iter().filter(|r| r.reproduce.is_some()) {
                p { b { (r.bug) } }
                pre { (r.reproduce.as_deref().unwrap_or("")) }
            }
            p.note { "selftest.json has the same data, machine-readable." }
        }
    };
    page("Self-test", "", body).into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_links_and_verdicts() {
        let r = BugResult {
            bug: "follower-read-local".into(),
            nemesis: "partition".into(),
            read_mode: "follower".into(),
            workload: "register".into(),
            caught: true,
            runs: 1,
            seconds: 16.2,
            seed: Some(1),
            bug_codes: vec![1],
            bug_runs: vec!["runs/t-bug/20261127T1".into()],
            correct: "valid".into(),
            correct_code: Some(0),
            correct_run: Some("runs/t/20261127T2".into()),
            reproduce: Some("harness test --seed 1 --bug follower-read-local".into()),
            note: String::new(),
            why: "cut off".into(),
        };
        let html = render(&[r], std::time::Duration::from_secs(40));
        assert!(html.contains("PASS"));
        assert!(html.contains("runs/t-bug/20261127T1/index.html"));
        assert!(html.contains("runs/t/20261127T2/index.html"));
        assert!(html.contains("--bug follower-read-local"));
    }
}
