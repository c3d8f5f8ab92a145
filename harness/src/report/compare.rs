//! The comparison page (`harness compare RUN_DIR...`): one page putting runs side by side, or
//! the read modes of one run: latency CDFs per read mode, a read mode × nemesis table of
//! verdicts and p50/p99, and per-run throughput.

use super::charts::{latency_cdf, CdfSeries};
use super::html::{fmt_ms, page, url_segment, verdict_pill};
use super::ops::{Digest, Op, Outcome};
use super::run::Run;
use super::stats::{from_digest, quantiles_of, Stats};
use crate::run_dir::write_atomic;
use crate::text::plural;
use anyhow::{Context, Result};
use maud::html;
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use workloads::checker::Verdict;

/// One run, loaded for comparison.
struct Loaded {
    run: Run,
    label: String,
    /// The column the run falls in: system, nemesis and bug (a buggy run never shares a
    /// cell with a correct one).
    nemesis: String,
    digest: Digest,
    stats: Stats,
}

impl Loaded {
    /// The verdict that covers a group: a read mode's own verdict for reads, otherwise the
    /// run's overall verdict.
    fn verdict(&self, group: &str) -> Verdict {
        match group.strip_prefix("read ") {
            Some(mode) => self
                .run
                .results
                .read_modes
                .get(mode)
                .map(|m| m.valid)
                .unwrap_or(Verdict::Unknown),
            None => self.run.results.overall,
        }
    }

    fn ok_latencies(&self, group: &str) -> Vec<f64> {
        self.digest
            .ops
            .iter()
            .filter(|o| o.outcome == Outcome::Ok && o.group() == group)
            .map(Op::latency_ms)
            .collect()
    }
}

/// Groups (`read <mode>`, `write`, ...) used by any run, reads first.
fn groups(runs: &[Loaded]) -> Vec<String> {
    let mut g: Vec<String> = runs
        .iter()
        .flat_map(|r| r.digest.ops.iter().map(Op::group))
        .collect();
    g.sort_by_key(|n| (!n.starts_with("read"), n.clone()));
    g.dedup();
    g
}

/// A file-name-safe form of a series name.
fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The relative path from directory `from` to `to` (both made absolute first), as a link.
fn relative_link(from: &Path, to: &Path) -> String {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (f, t) = (abs(from), abs(to));
    let fc: Vec<Component> = f.components().collect();
    let tc: Vec<Component> = t.components().collect();
    let common = fc.iter().zip(&tc).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); fc.len() - common];
    parts.extend(
        tc[common..]
            .iter()
            .map(|c| url_segment(&c.as_os_str().to_string_lossy())),
    );
    parts.join("/")
}

/// Writes `out_dir/compare.html` and its CDF charts for the given run directories and returns
/// the page's path. Each run needs `history.jsonl`; `test.json` and `results.json` are optional
/// (missing verdicts show as unknown).
pub fn compare(run_dirs: &[PathBuf], out_dir: &Path) -> Result<PathBuf> {
    let mut runs = Vec::new();
    for dir in run_dirs {
        let run = Run::load_meta(dir);
        let path = dir.join("history.jsonl");
        // The reader's errors name the file and line already.
        let h = workloads::history::read_history(&path)?;
        if let Some(w) = h.warning(&path) {
            tracing::warn!("{w}");
        }
        let events = h.events;
        let digest = Digest::from_events(&events);
        let stats = from_digest(&digest);
        let nemesis = column_of(
            run.test.text("system").as_deref(),
            run.test.text("nemesis").as_deref(),
            run.test.text("bug").as_deref(),
        );
        runs.push(Loaded {
            label: run.name(),
            run,
            nemesis,
            digest,
            stats,
        });
    }
    // Disambiguate runs of the same test by their timestamps.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &runs {
        *seen.entry(r.label.clone()).or_default() += 1;
    }
    for r in &mut runs {
        if seen[&r.label] > 1 {
            r.label = format!("{} {}", r.label, r.run.timestamp());
        }
    }
    let groups = groups(&runs);
    // Only now that every run loaded: a failed compare leaves no empty directory behind.
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    // CDF charts: all reads on one chart, then one chart per group with a curve per run.
    let mut charts: Vec<(String, String)> = Vec::new();
    let mut overview = Vec::new();
    for r in &runs {
        for g in groups.iter().filter(|g| g.starts_with("read")) {
            let lat = r.ok_latencies(g);
            if !lat.is_empty() {
                let label = if runs.len() == 1 {
                    g.clone()
                } else {
                    format!("{}: {g}", r.label)
                };
                overview.push(CdfSeries {
                    label,
                    latencies_ms: lat,
                });
            }
        }
    }
    if !overview.is_empty() {
        let f = "cdf-reads.png".to_string();
        latency_cdf(
            "Read latency CDF by read mode",
            &overview,
            &out_dir.join(&f),
        )?;
        charts.push((f, "Read latency CDF, one curve per read mode".into()));
    }
    for g in &groups {
        let series: Vec<CdfSeries> = runs
            .iter()
            .map(|r| CdfSeries {
                label: r.label.clone(),
                latencies_ms: r.ok_latencies(g),
            })
            .filter(|s| !s.latencies_ms.is_empty())
            .collect();
        if series.is_empty() || (runs.len() == 1 && g.starts_with("read")) {
            continue; // with one run the overview already shows each read mode
        }
        let f = format!("cdf-{}.png", file_safe(g));
        latency_cdf(&format!("Latency CDF: {g}"), &series, &out_dir.join(&f))?;
        charts.push((f, format!("Latency CDF of {g}, one curve per run")));
    }

    // Read mode × nemesis: worst verdict and pooled latency quantiles.
    let mut nemeses: Vec<String> = runs.iter().map(|r| r.nemesis.clone()).collect();
    nemeses.sort();
    nemeses.dedup();
    let cell = |g: &str, n: &str| {
        let rs: Vec<&Loaded> = runs
            .iter()
            .filter(|r| r.nemesis == n && r.digest.ops.iter().any(|o| o.group() == g))
            .collect();
        if rs.is_empty() {
            return None;
        }
        let verdict = rs
            .iter()
            .map(|r| r.verdict(g))
            .max()
            .unwrap_or(Verdict::Unknown);
        let q = quantiles_of(
            rs.iter()
                .flat_map(|r| r.digest.ops.iter().filter(move |o| o.group() == g)),
        );
        Some((verdict, q))
    };

    let body = html! {
        main {
            h1 { "Comparison of " (plural(runs.len(), "run", "runs")) }
            p.sub { "Latencies are of ok operations only." }
            h2 { "Read mode × system, nemesis and bug" }
            table {
                tr { th { "operation" } @for n in &nemeses { th { (n) } } }
                tr {
                    th { "overall" }
                    @for n in &nemeses {
                        @let rs: Vec<&Loaded> = runs.iter().filter(|r| r.nemesis == *n).collect();
                        td {
                            (verdict_pill(rs.iter().map(|r| r.run.results.overall).max().unwrap_or(Verdict::Unknown)))
                            br;
                            (plural(rs.len(), "run", "runs")) " · "
                            b { (format!("{:.1}", rs.iter().map(|r| r.stats.ok_per_s).sum::<f64>() / rs.len().max(1) as f64)) }
                            " ok ops/s"
                        }
                    }
                }
                @for g in &groups {
                    tr {
                        th { (g) }
                        @for n in &nemeses {
                            td {
                                @if let Some((v, q)) = cell(g, n) {
                                    @if g.starts_with("read") { (verdict_pill(v)) br; }
                                    "p50 " b { (fmt_ms(q.p50)) } " · p99 " b { (fmt_ms(q.p99)) } " ms"
                                    br; small.note { (q.count) " ok" }
                                } @else { "–" }
                            }
                        }
                    }
                }
            }
            p.note { "A read mode's verdict covers the writes plus the reads of that mode; the overall verdict is the worst of the runs in that column; writes and CAS show latency only (a verdict belongs to a read mode or a run). Throughput is the mean over those runs." }
            h2 { "Charts" }
            @for (f, alt) in &charts { img.chart src=(f) alt=(alt); }
            h2 { "Runs" }
            table {
                tr { th { "run" } th { "system · nemesis · bug" } th { "seed" } th { "verdict" } th { "operation" }
                     th { "verdict" } th { "ok" } th { "ok/s" } th { "p50 ms" } th { "p99 ms" } th { "max ms" } }
                @for r in &runs {
                    @let gs: Vec<&String> = groups.iter().filter(|g| r.digest.ops.iter().any(|o| o.group() == **g)).collect();
                    @for (i, g) in gs.iter().enumerate() {
                        @let q = quantiles_of(r.digest.ops.iter().filter(|o| o.group() == **g));
                        tr {
                            @if i == 0 {
                                td rowspan=(gs.len()) {
                                    @if r.run.dir.join("index.html").is_file() {
                                        a href=(relative_link(out_dir, &r.run.dir.join("index.html"))) { (r.label) }
                                    } @else { (r.label) }
                                    br; small.note { (r.stats.ops) " ops · " (format!("{:.1}", r.stats.ok_per_s)) " ok/s" }
                                }
                                td rowspan=(gs.len()) {
                                    (r.nemesis)
                                    @if let Some(v) = r.run.test.text("system_version") { br; small.note { (v) } }
                                }
                                td.mono rowspan=(gs.len()) { (r.run.test.text("seed").unwrap_or_default()) }
                                td rowspan=(gs.len()) { (verdict_pill(r.run.results.overall)) }
                            }
                            td { (g) }
                            td { @if g.starts_with("read") { (verdict_pill(r.verdict(g))) } @else { "–" } }
                            td.n { (q.count) }
                            td.n { (format!("{:.1}", q.count as f64 / r.digest.duration_s())) }
                            td.n { (fmt_ms(q.p50)) } td.n { (fmt_ms(q.p99)) } td.n { (fmt_ms(q.max)) }
                        }
                    }
                }
            }
        }
    };
    let out = out_dir.join("compare.html");
    write_atomic(&out, page("Comparison", "", body).into_string().as_bytes())?;
    Ok(out)
}

/// The compare page's column of a run: "raft-kv · partition", "raft-kv · partition · bug
/// lease-no-margin" (the system is `raft-kv` when test.json does not name one).
fn column_of(system: Option<&str>, nemesis: Option<&str>, bug: Option<&str>) -> String {
    let mut c = format!(
        "{} · {}",
        system.unwrap_or("raft-kv"),
        nemesis.unwrap_or("?")
    );
    if let Some(b) = bug.filter(|b| !b.is_empty() && *b != "null") {
        c.push_str(&format!(" · bug {b}"));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buggy_run_gets_its_own_column() {
        assert_eq!(
            column_of(None, Some("partition"), None),
            "raft-kv · partition"
        );
        assert_eq!(
            column_of(Some("etcd"), Some("kill"), Some("lease-no-margin")),
            "etcd · kill · bug lease-no-margin"
        );
        assert_ne!(
            column_of(None, Some("partition"), Some("x")),
            column_of(None, Some("partition"), None)
        );
    }

    #[test]
    fn relative_links_and_file_names() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("cmp");
        let b = t.path().join("results/x y/1");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        assert_eq!(
            relative_link(&a, &b.join("index.html")),
            "../results/x%20y/1/index.html"
        );
        assert_eq!(file_safe("read read-index"), "read_read-index");
    }
}
