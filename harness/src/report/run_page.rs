//! The run page, `RUN_DIR/index.html`: verdict first (with the coverage warnings and an
//! interruption beside it), then how to reproduce the run, the charts, the statistics, what
//! the faults did (coverage), the availability and convergence checkers, the fault windows,
//! the anomalies explained (each operation linked into the timeline), the configuration and
//! links to every file of the run.

use super::html::{fmt_ms, fmt_s, page, url_path, verdict_pill};
use super::ops::{Digest, Op};
use super::run::Run;
use super::stats::{GroupStats, Stats};
use super::ShownCoverage;
use crate::coverage::{Coverage, OpCounts};
use crate::text::plural;
use maud::{html, Markup};
use std::collections::HashMap;
use std::path::Path;
use workloads::history::{Event, Process};

/// At most this many anomalies are listed (the rest are counted), to keep the page usable.
const MAX_ANOMALIES: usize = 200;
/// At most this many history lines are shown per anomaly.
const MAX_ANOMALY_LINES: usize = 60;
/// At most this many fault windows and overlaps are listed in the coverage section.
const MAX_COVERAGE_ROWS: usize = 500;

/// Styles of the banners beside the verdict.
const EXTRA_CSS: &str = r#"
.banner{background:#fff8e1;border:1px solid #e0c060;border-left:6px solid #8a6d00;border-radius:6px;padding:8px 14px;margin:8px 0}
.banner.stop{background:#fdf3f2;border-color:#f0b4ae;border-left-color:#d93025}
.banner ul{margin:4px 0;padding-left:20px}
.covwarn{font-size:22px;font-weight:700;color:#8a6d00;margin-left:12px}
"#;

/// Seconds with one decimal, or "–" when unknown.
fn opt_s(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |x| format!("{x:.1}"))
}

/// A count, or "–" when unknown.
fn opt_n(v: Option<u64>) -> String {
    v.map_or_else(|| "–".to_string(), |x| x.to_string())
}

fn by_op_table(by_op: &std::collections::BTreeMap<String, OpCounts>) -> Markup {
    html! {
        table {
            tr { th { "operation" } th { "ok" } th { "fail" } th { "info" } }
            @for (op, c) in by_op {
                tr { td { (op) } td.n { (c.ok) } td.n { (c.fail) } td.n { (c.info) } }
            }
        }
    }
}

/// What the faults did: totals, every window with its figures, overlaps, outcomes per op.
fn coverage_section(shown: &ShownCoverage) -> Markup {
    let c: &Coverage = &shown.coverage;
    html! {
        h2 id="coverage" { "Coverage: what the faults did" }
        @if shown.recomputed {
            p.note { "results.json records no coverage: recomputed from history.jsonl"
                @if c.observed { " and cluster.jsonl" } "." }
        }
        @if !c.warnings.is_empty() {
            div.banner {
                b { (plural(c.warnings.len(), "coverage warning", "coverage warnings")) }
                ul { @for w in &c.warnings { li { (w) } } }
            }
        }
        table {
            tr { th { "leader changes" } td.n { (opt_n(c.leader_changes)) } }
            tr { th { "max term" } td.n { (opt_n(c.max_term)) } }
            tr { th { "leaderless s (no leader followed by a majority)" } td.n { (opt_s(c.leaderless_s)) } }
            tr { th { "under partition s" } td.n { (format!("{:.1}", c.partition_s)) } }
            tr { th { "leaderless under partition s" } td.n {
                (opt_s(c.partition_leaderless_s))
                @if let Some(share) = c.partition_leaderless_share() { " (" (format!("{:.0}", share * 100.0)) "%)" }
            } }
            tr { th { "recovery after the final heal s" } td.n { (opt_s(c.final_recovery_s)) } }
        }
        @if !c.observed {
            p.note { "No observations of the cluster (cluster.jsonl): leader figures are unknown (–)." }
        }
        h3 { "Fault windows (" (c.windows.len()) ")" }
        @if c.windows.is_empty() { p { "No fault was applied." } }
        @else {
            table {
                tr {
                    th { "fault" } th { "shape / nodes" } th { "start s" } th { "end s" }
                    th { "leader at start" } th { "cut leader" } th { "leader changes" }
                    th { "leaderless s" } th { "ok" } th { "fail" } th { "info" } th { "recovery s" }
                }
                @for w in c.windows.iter().take(MAX_COVERAGE_ROWS) {
                    tr {
                        td { (w.fault) @if let Some(e) = &w.error { br; small { "failed: " (e) } } }
                        td { (w.shape.as_deref().unwrap_or("")) @if !w.nodes.is_empty() { " " (w.nodes.join(",")) } }
                        td.n { (format!("{:.1}", w.start_s)) }
                        td.n {
                            (opt_s(w.end_s))
                            @if w.end_s.is_none() { " (never healed)" }
                            @if w.healed_by_final { " (final heal)" }
                        }
                        td { (w.leader_at_start.as_deref().unwrap_or("–")) }
                        td { (match w.cut_leader { Some(true) => "yes", Some(false) => "no", None => "–" }) }
                        td.n { (opt_n(w.leader_changes)) }
                        td.n { (opt_s(w.leaderless_s)) }
                        td.n { (w.ok) } td.n { (w.fail) } td.n { (w.info) }
                        td.n { (w.recovery_s.map_or_else(|| "none".to_string(), |r| format!("{r:.2}"))) }
                    }
                }
            }
            @if c.windows.len() > MAX_COVERAGE_ROWS {
                p.note { (c.windows.len() - MAX_COVERAGE_ROWS) " more windows are in results.json." }
            }
            p.note { "ok/fail/info: client operations completed inside the window. Recovery: from the heal to the first ok write (write, cas or add) after it." }
        }
        @if !c.failpoints.is_empty() {
            h3 { "Failpoints (" (c.failpoints.len()) ")" }
            table {
                tr { th { "failpoint" } th { "windows" } th { "fired" } th { "crashes" } }
                @for u in &c.failpoints {
                    tr {
                        td { (u.point) } td.n { (u.windows) }
                        td.n { (opt_n(u.fired)) } td.n { (u.crashed) }
                    }
                }
            }
            p.note { "Fired: passes through the point that carried out its action, as the nodes counted them at each heal (a crash counts once). The README says what each point's window is for." }
        }
        @if !c.overlaps.is_empty() {
            h3 { "Overlapping faults (" (c.overlaps.len()) ")" }
            table {
                tr { th { "fault" } th { "with" } th { "from s" } th { "to s" } }
                @for o in c.overlaps.iter().take(MAX_COVERAGE_ROWS) {
                    tr { td { (o.a) } td { (o.b) } td.n { (format!("{:.1}", o.start_s)) } td.n { (format!("{:.1}", o.end_s)) } }
                }
            }
        }
        @if !c.by_op.is_empty() {
            h3 { "Outcomes per operation" }
            (by_op_table(&c.by_op))
        }
    }
}

/// The set checker's per-element classification (Jepsen set-full style), if the run has it:
/// counts of stable, stale, lost, never-read, unexpected and recovered elements and the
/// stable and lost latency quantiles. Element lists stay in the checker output below.
fn set_section(run: &Run) -> Markup {
    let Some((v, j)) = run.results.checkers.get("set") else {
        return html! {};
    };
    let n = |k: &str| j.get(k).and_then(|x| x.as_u64());
    let count = |k: &str| {
        j.get(k)
            .and_then(|x| x.get("count"))
            .and_then(|x| x.as_u64())
    };
    let show = |x: Option<u64>| x.map_or_else(|| "?".to_string(), |x| x.to_string());
    let rows: [(&str, Option<u64>, &str); 10] = [
        ("adds attempted", n("attempted"), ""),
        ("acknowledged", n("acknowledged"), ""),
        (
            "reads (ok)",
            n("reads"),
            "during the run and the final reads",
        ),
        (
            "stable",
            n("stable_count"),
            "in every read begun after some time",
        ),
        (
            "stale",
            n("stale_count"),
            "stable, but missed first by a read begun after it was known",
        ),
        (
            "stale reads",
            n("stale_reads"),
            "reads that missed an element a later read held",
        ),
        (
            "lost",
            count("lost"),
            "absent from every read begun after some time",
        ),
        (
            "never read",
            count("never_read"),
            "no read began after it was known",
        ),
        (
            "unexpected",
            count("unexpected"),
            "read, never successfully added",
        ),
        (
            "recovered",
            count("recovered"),
            "add of unknown outcome, read",
        ),
    ];
    let quantiles = |k: &str| {
        j.get(k).filter(|q| q.is_object()).map(|q| {
            let f = |p: &str| {
                q.get(p)
                    .and_then(|x| x.as_f64())
                    .map_or("?".into(), |x| format!("{x:.1}"))
            };
            format!(
                "n={} · min {} · p50 {} · p95 {} · p99 {} · max {} ms",
                show(q.get("count").and_then(|x| x.as_u64())),
                f("min"),
                f("p50"),
                f("p95"),
                f("p99"),
                f("max")
            )
        })
    };
    html! {
        h2 id="set" { "Set elements " (verdict_pill(*v)) }
        table {
            @for (label, x, note) in rows {
                tr { th { (label) } td.n { (show(x)) } td { small { (note) } } }
            }
            @if let Some(q) = quantiles("stable_latency") {
                tr { th { "stable latency" } td.mono colspan="2" { (q) " (from the ack)" } }
            }
            @if let Some(q) = quantiles("stable_latency_since_add") {
                tr { th { "stable latency from add" } td.mono colspan="2" { (q) " (from the add's invocation)" } }
            }
            @if let Some(q) = quantiles("lost_latency") {
                tr { th { "lost latency" } td.mono colspan="2" { (q) } }
            }
        }
        @if let Some(f) = j.get("final_reads").and_then(|f| f.as_array()).filter(|f| !f.is_empty()) {
            h3 { "Final reads (no add began after them)" }
            table {
                tr { th { "read" } th { "node" } th { "size" } th { "missing (acknowledged before it began)" } }
                @for r in f {
                    @let ix = r.get("index").and_then(|x| x.as_u64()).unwrap_or_default();
                    @let missing = r.get("missing").and_then(|x| x.as_array()).map(|m| m.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ")).unwrap_or_default();
                    @let n_missing = r.get("missing_count").and_then(|x| x.as_u64()).unwrap_or_default();
                    tr {
                        td.n { a href={"timeline.html#op-" (ix)} { "#" (ix) } }
                        td { (r.get("node").and_then(|x| x.as_str()).unwrap_or("?")) }
                        td.n { (r.get("size").and_then(|x| x.as_u64()).unwrap_or_default()) }
                        td.mono { (n_missing) @if n_missing > 0 { ": " (missing) @if n_missing > 20 { ", …" } } }
                    }
                }
            }
        }
        @if let Some(w) = j.get("worst_stale").and_then(|w| w.as_array()).filter(|w| !w.is_empty()) {
            p { "Worst stale elements (element: stable latency): "
                (w.iter().map(|e| format!("{}: {:.1} ms",
                    e.get("element").and_then(|x| x.as_i64()).unwrap_or_default(),
                    e.get("stable_latency_ns").and_then(|x| x.as_u64()).unwrap_or_default() as f64 / 1e6))
                    .collect::<Vec<_>>().join(", "))
            }
        }
    }
}

/// The availability and convergence checkers, if the run has them: verdict, explanations,
/// and their other scalar figures.
fn liveness_section(run: &Run) -> Markup {
    let names = ["availability", "convergence"];
    let present: Vec<&str> = names
        .into_iter()
        .filter(|n| run.results.checkers.contains_key(*n))
        .collect();
    html! {
        @if !present.is_empty() {
            h2 id="liveness" { "Availability and convergence" }
            @for name in present {
                @let (v, j) = &run.results.checkers[name];
                div {
                    p { b { (name) } " " (verdict_pill(*v)) }
                    @let figures: Vec<(&String, &serde_json::Value)> = j.as_object()
                        .map(|m| m.iter().filter(|(k, x)| k.as_str() != "valid" && !x.is_array() && !x.is_object()).collect())
                        .unwrap_or_default();
                    @if !figures.is_empty() {
                        table {
                            @for (k, x) in figures {
                                tr { th { (k) } td.mono { (match x { serde_json::Value::String(s) => s.clone(), o => o.to_string() }) } }
                            }
                        }
                    }
                    @for a in run.results.checker_anomalies(name) {
                p.explain { (a.explanation) }
                    }
                }
            }
        }
    }
}

/// Files of the run directory the page links to: `(label, relative href)`, only those that
/// exist, in a fixed order; node logs sorted by node id.
pub fn run_files(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for f in [
        "history.jsonl",
        "test.json",
        "results.json",
        "cluster.jsonl",
        "timeline.html",
    ] {
        if dir.join(f).is_file() {
            files.push((f.to_string(), f.to_string()));
        }
    }
    let mut nodes: Vec<String> = std::fs::read_dir(dir.join("nodes"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("node.log").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    nodes.sort();
    for n in nodes {
        files.push((
            format!("nodes/{n}/node.log"),
            url_path(&["nodes", &n, "node.log"]),
        ));
    }
    files
}

/// Maps every history line of a client operation (invocation and completion) to the id of
/// its box in `timeline.html`, and every nemesis line to its fault band.
pub fn timeline_anchors(d: &Digest) -> HashMap<u64, String> {
    let mut m = HashMap::new();
    for op in &d.ops {
        let id = format!("op-{}", op.invoke_index);
        if let Some(c) = op.complete_index {
            m.insert(c, id.clone());
        }
        m.insert(op.invoke_index, id);
    }
    for w in &d.faults {
        let id = format!("op-{}", w.start_index);
        if let Some(s) = w.stop_index {
            m.insert(s, id.clone());
        }
        m.insert(w.start_index, id);
    }
    m
}

fn stats_row(name: &str, g: &GroupStats) -> Markup {
    let c = &g.counts;
    let l = &g.latency_ms;
    html! {
        tr {
            td { (name) }
            td.n { (c.total) } td.n { (c.ok) } td.n { (c.fail) }
            td.n { (c.info) @if c.pending > 0 { " (" (c.pending) " pending)" } }
            td.n { (format!("{:.1}", g.ok_per_s)) }
            td.n { (fmt_ms(l.p50)) } td.n { (fmt_ms(l.p95)) } td.n { (fmt_ms(l.p99)) }
            td.n { (fmt_ms(l.max)) }
        }
    }
}

fn stats_table(s: &Stats) -> Markup {
    let all = GroupStats {
        counts: super::stats::Counts {
            total: s.ops,
            ok: s.ok,
            fail: s.fail,
            info: s.info,
            pending: s.pending,
        },
        latency_ms: s.latency_ms.clone(),
        ok_per_s: s.ok_per_s,
    };
    html! {
        table {
            tr {
                th { "operations" } th { "total" } th { "ok" } th { "fail" } th { "info" }
                th { "ok/s" } th { "p50 ms" } th { "p95 ms" } th { "p99 ms" } th { "max ms" }
            }
            (stats_row("all", &all))
            @for (op, g) in &s.by_op { (stats_row(op, g)) }
            @for (mode, g) in &s.by_read_mode { (stats_row(&format!("read, {mode}"), g)) }
        }
        p.note {
            "Latencies are of ok operations only (an info's latency is mostly the client's timeout). "
            "Duration " (format!("{:.1}", s.duration_s)) " s; "
            (format!("{:.1}", s.completed_per_s)) " completed operations/s."
        }
    }
}

/// Maps each line of a client operation to both of its lines (invocation, completion).
fn line_pairs(d: &Digest) -> HashMap<u64, (u64, Option<u64>)> {
    let mut m = HashMap::new();
    for op in &d.ops {
        let pair = (op.invoke_index, op.complete_index);
        m.insert(op.invoke_index, pair);
        if let Some(c) = op.complete_index {
            m.insert(c, pair);
        }
    }
    m
}

/// The lines to show for an anomaly: each named line together with the other line of its
/// operation, so that every operation is seen from invocation to completion; sorted.
fn op_lines(named: &[u64], pairs: &HashMap<u64, (u64, Option<u64>)>) -> Vec<u64> {
    let mut lines: Vec<u64> = named
        .iter()
        .flat_map(|ix| match pairs.get(ix) {
            Some((i, Some(c))) => vec![*i, *c],
            Some((i, None)) => vec![*i],
            None => vec![*ix],
        })
        .collect();
    lines.sort_unstable();
    lines.dedup();
    lines
}

/// One history line as a table row; `named` lines (those the checker cited) are bold.
fn event_row(e: &Event, anchors: &HashMap<u64, String>, named: bool) -> Markup {
    let process = match e.process {
        Process::Client(p) => p.to_string(),
        Process::Nemesis => "nemesis".to_string(),
    };
    html! {
        tr style=[named.then_some("font-weight:bold")] {
            td.n {
                @if let Some(a) = anchors.get(&e.index) {
                    a href={"timeline.html#" (a)} { (e.index) }
                } @else { (e.index) }
            }
            td.n { (fmt_s(e.time)) }
            td { (process) }
            td { (e.kind.as_str()) }
            td { (e.f) }
            td.mono { (e.key.as_deref().unwrap_or("")) }
            td.mono { (value_summary(&e.value)) }
            td { (e.read_mode.as_deref().unwrap_or("")) }
            td { (e.node.as_deref().unwrap_or("")) }
            td { (e.error.as_deref().unwrap_or("")) }
        }
    }
}

/// A value as the table shows it: a long array (a set's final read) as its size and its
/// first elements, never dumped whole.
fn value_summary(v: &serde_json::Value) -> String {
    const SHOWN: usize = 8;
    match v.as_array() {
        Some(xs) if xs.len() > SHOWN => {
            let head: Vec<String> = xs.iter().take(SHOWN).map(|x| x.to_string()).collect();
            format!("{} elements: [{}, …]", xs.len(), head.join(","))
        }
        _ => v.to_string(),
    }
}

fn anomalies_section(run: &Run, events: &[Event], d: &Digest) -> Markup {
    let anomalies = &run.results.anomalies;
    let by_index: HashMap<u64, &Event> = events.iter().map(|e| (e.index, e)).collect();
    let anchors = timeline_anchors(d);
    let pairs = line_pairs(d);
    let by_invoke: HashMap<u64, &Op> = d.ops.iter().map(|o| (o.invoke_index, o)).collect();
    html! {
        h2 id="anomalies" { "Anomalies (" (anomalies.len()) ")" }
        @if anomalies.is_empty() {
            p { @if run.results.present { "The checkers reported none." }
                @else { "No results.json: the history has not been checked." } }
        }
        @for (i, a) in anomalies.iter().take(MAX_ANOMALIES).enumerate() {
            div.anomaly id={"anomaly-" (i)} {
                b { "#" (i + 1) }
                @if let Some(k) = &a.key { " · key " code { (k) } }
                @if let Some(m) = &a.read_mode { " · read mode " b { (m) } }
                @if let Some(c) = &a.context { p.context { b { "Context: " } (c.text) } }
                p.explain { (a.explanation) }
                @if !a.ops.is_empty() {
                    @let cited: Vec<&Op> = op_lines(&a.ops, &pairs).iter().filter_map(|ix| by_invoke.get(ix).copied()).collect();
                    (super::anomaly_diagram::render(&cited, a.focus()))
                    p.note {
                        "Lines cited by the checker (bold below; click to see them in the timeline): "
                        @for (j, ix) in a.ops.iter().enumerate() {
                            @if j > 0 { ", " }
                            @if let Some(id) = anchors.get(ix) {
                                a href={"timeline.html#" (id)} { "#" (ix) }
                            } @else { "#" (ix) }
                        }
                    }
                    table {
                        tr { th { "line" } th { "time s" } th { "process" } th { "type" } th { "f" }
                             th { "key" } th { "value" } th { "read mode" } th { "node" } th { "error" } }
                        @for ix in op_lines(&a.ops, &pairs).iter().take(MAX_ANOMALY_LINES) {
                            @if let Some(e) = by_index.get(ix) { (event_row(e, &anchors, a.ops.contains(ix))) }
                        }
                    }
                }
            }
        }
        @if anomalies.len() > MAX_ANOMALIES {
            p.note { (anomalies.len() - MAX_ANOMALIES) " more anomalies are in results.json." }
        }
    }
}

fn verdict_header(run: &Run, stats: &Stats, cov: &ShownCoverage) -> Markup {
    let r = &run.results;
    let warnings = cov.coverage.warnings.len();
    html! {
        div class={"verdict big " (r.overall.as_str())} { (r.overall.label()) }
        @if warnings > 0 {
            a.covwarn href="#coverage" { "(" (plural(warnings, "coverage warning", "coverage warnings")) ")" }
        }
        @if let Some(i) = &r.interrupted {
            div class="banner stop" {
                b { "interrupted"
                    @if let Some(s) = &i.signal { " by " (s) }
                    @if let Some(t) = i.at_s { " at " (format!("{t:.1}")) " s" } }
                ": the verdict covers the recorded part only"
            }
        }
        @if warnings > 0 {
            div.banner {
                "The faults may prove less than the verdict says: "
                (plural(warnings, "coverage warning", "coverage warnings"))
                ul { @for w in &cov.coverage.warnings { li { (w) } } }
            }
        }
        @if let Some(why) = &r.override_reason {
            p.note { "Verdict " (r.overall.label()) ": " (why) " (the history holds no client operation, so nothing was checked)." }
        }
        @if !r.present {
            p.note { "No results.json in this run directory: the checker has not run (or the run was interrupted), so the verdict is unknown." }
        }
        @if !r.read_modes.is_empty() {
            div.badges {
                @for (mode, m) in &r.read_modes {
                    div class={"badge " (m.valid.as_str())} {
                        b { (mode) }
                        span.v { (m.valid.label()) }
                        br;
                        small {
                            @if let Some(n) = m.reads { (n) " reads · " }
                            @else if let Some(g) = stats.by_read_mode.get(mode) { (g.counts.total) " reads · " }
                            (plural(m.anomalies.len(), "anomaly", "anomalies"))
                        }
                    }
                }
            }
        }
        @if !r.checkers.is_empty() {
            p { "Checkers: "
                @for (name, (v, _)) in &r.checkers { (name) " " (verdict_pill(*v)) " " }
            }
        }
    }
}

/// Renders the run page; `cov` is the run's coverage (see [`super::run_coverage`]).
pub fn render(
    run: &Run,
    events: &[Event],
    d: &Digest,
    stats: &Stats,
    cov: &ShownCoverage,
) -> String {
    let name = run.name();
    let seed = run.test.text("seed");
    let system = run
        .test
        .text("system")
        .unwrap_or_else(|| "raft-kv".to_string());
    let system_version = run.test.text("system_version");
    let files = run_files(&run.dir);
    let charts = [
        ("latency-raw.png", "Latency of every operation; shape = outcome, colour = operation, shaded = fault windows"),
        ("latency-quantiles.png", "Latency quantiles over time, one line per read mode and write operation"),
        ("rate.png", "Completed operations per second by operation and outcome"),
        ("set-latency.png", "Set: distribution of each element's stable latency (and lost latency), with counts and quantiles"),
    ];
    let body = html! {
        main {
            @if run.dir.join("../../index.html").is_file() {
                p.sub { a href="../../index.html" { "← all runs" } }
            }
            h1 { (name) }
            p.sub {
                "Run " (run.timestamp())
                " · system " b { (system) }
                @if let Some(v) = &system_version { " (" (v) ")" }
                @if let Some(s) = &seed { " · seed " b.mono { (s) } }
                " · " (stats.ops) " operations in " (format!("{:.1}", stats.duration_s)) " s"
                @for (k, n) in &stats.faults { " · " (n) "× " (k) }
            }
            (verdict_header(run, stats, cov))
            @if !run.results.anomalies.is_empty() {
                p { a href="#anomalies" { (plural(run.results.anomalies.len(), "anomaly", "anomalies")) " explained below" }
                    " · " a href="timeline.html" { "timeline" } }
            } @else {
                p { a href="timeline.html" { "timeline of every operation" } }
            }
            h2 id="reproduce" { "Reproduce" }
            @if let Some(cmd) = run.test.command_line() { pre { (cmd) } }
            @else { p.note { "test.json records no command line." } }
            @if let Some(s) = &seed { p { "Seed: " code { (s) } " (every random choice of the harness flows from it)." } }
            h2 id="charts" { "Charts" }
            @for (file, alt) in charts {
                @if run.dir.join(file).is_file() {
                    figure style="margin:0" {
                        img.chart src=(file) alt=(alt);
                    }
                }
            }
            h2 id="statistics" { "Statistics" }
            (stats_table(stats))
            (coverage_section(cov))
            (set_section(run))
            (liveness_section(run))
            h2 id="faults" { "Fault events (" (d.faults.len()) ")" }
            @if d.faults.is_empty() { p { "No faults were injected." } }
            @else {
                table {
                    tr { th { "fault" } th { "start s" } th { "stop s" } th { "lines" } th { "details" } }
                    @for w in &d.faults {
                        tr {
                            td { (w.kind) }
                            td.n { (fmt_s(w.start_ns)) }
                            td.n { (fmt_s(w.end_ns)) @if !w.stopped { " (never stopped)" } }
                            td.n { a href={"timeline.html#op-" (w.start_index)} { "#" (w.start_index) }
                                   @if let Some(s) = w.stop_index { "–#" (s) } }
                            td.mono { (w.detail) }
                        }
                    }
                }
            }
            (anomalies_section(run, events, d))
            h2 id="configuration" { "Configuration" }
            @if run.test.raw.is_empty() { p.note { "No test.json." } }
            @else {
                table {
                    @for (k, v) in &run.test.raw {
                        tr { th { (k) } td.mono { (match v { serde_json::Value::String(s) => s.clone(), o => o.to_string() }) } }
                    }
                }
            }
            @if !run.results.checkers.is_empty() {
                h2 { "Checker output" }
                @for (name, (v, j)) in &run.results.checkers {
                    details {
                        summary { b { (name) } " " (verdict_pill(*v)) }
                        pre { (serde_json::to_string_pretty(j).unwrap_or_default()) }
                    }
                }
            }
            h2 id="files" { "Files" }
            ul {
                @for (label, href) in &files { li { a href=(href) { (label) } } }
            }
        }
    };
    let warnings = cov.coverage.warnings.len();
    let title = if warnings > 0 {
        format!(
            "{name} — {} ({})",
            run.results.overall.label(),
            plural(warnings, "coverage warning", "coverage warnings")
        )
    } else {
        format!("{name} — {}", run.results.overall.label())
    };
    page(&title, EXTRA_CSS, body).into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_arrays_are_summarised() {
        use serde_json::json;
        assert_eq!(value_summary(&json!([1, 2])), "[1,2]");
        assert_eq!(value_summary(&json!(5)), "5");
        let big: Vec<i64> = (0..1000).collect();
        assert_eq!(
            value_summary(&json!(big)),
            "1000 elements: [0,1,2,3,4,5,6,7, …]"
        );
    }
}
