//! Reports of a run, drawn from the files of its directory alone (`history.jsonl`, and when
//! present `test.json` and `results.json`):
//! - [`build_run_report`]: `latency-raw.png`, `latency-quantiles.png`, `rate.png`,
//!   `set-latency.png` (set runs only), `index.html` (verdict, coverage, configuration, charts, statistics, anomalies, files)
//!   and `timeline.html`;
//! - [`rebuild_results_index`] and [`update_latest`]: `results/index.html` and `results/latest`;
//! - [`compare`]: one page comparing runs, or the read modes of one run;
//! - [`stats::compute`]: the statistics the harness stores in `results.json` as `"stats"`.
//!
//! Pages are static HTML (no script, no network) built with maud, which escapes every value;
//! charts are PNGs drawn with plotters, byte-for-byte reproducible from the same history.

pub mod anomaly_diagram;
pub mod charts;
pub mod compare;
pub mod html;
pub mod index;
pub mod ops;
pub mod run;
pub mod run_page;
pub mod stats;
pub mod timeline;

pub use compare::compare;
pub use index::{rebuild_results_index, update_latest};
pub use stats::compute;

use anyhow::{Context, Result};
use std::collections::HashSet;
use std::path::Path;

/// Builds (or rebuilds) a run's report in `run_dir`: the three PNG charts, `timeline.html` and
/// `index.html`. Needs `run_dir/history.jsonl`; `test.json` and `results.json` are optional
/// (without results the verdict shows as unknown). Every file is replaced atomically. Charts
/// depend only on the history and the coverage (results.json's, or recomputed from
/// `cluster.jsonl`), so rebuilding a run reproduces them byte for byte.
///
/// A torn last line of the history (a harness killed mid-write, a full disk) is left out;
/// the returned warnings (one per such line, naming file and line) are for the caller to
/// show. A history without any client operation makes the page's verdict `unknown`
/// ("no operations"), whatever `results.json` says. A malformed line elsewhere is an error
/// naming the file and line once.
pub fn build_run_report(run_dir: &Path) -> Result<Vec<String>> {
    let history = run_dir.join("history.jsonl");
    // The reader's errors name the file and line already: no context repeating the path.
    let h = workloads::history::read_history(&history)?;
    let warnings: Vec<String> = h.warning(&history).into_iter().collect();
    let mut run = run::Run::load_meta(run_dir);
    if !h.has_operations() {
        run.results.no_operations();
    }
    let events = h.events;
    let coverage = run_coverage(&run, &events);
    let mut digest = ops::Digest::from_events(&events);
    digest.cluster = ops::ClusterMarks::from_coverage(&coverage.coverage);
    let stats = stats::from_digest(&digest);

    // Charts are drawn to temporary names, then renamed: a viewer never sees half a PNG.
    type Chart = fn(&ops::Digest, &Path) -> Result<()>;
    let charts: [(&str, Chart); 3] = [
        ("latency-raw.png", charts::latency_raw),
        ("latency-quantiles.png", charts::latency_quantiles),
        ("rate.png", charts::rate),
    ];
    for (name, draw) in charts {
        let tmp = run_dir.join(format!(".{name}.tmp.{}.png", std::process::id()));
        draw(&digest, &tmp).with_context(|| format!("drawing {name}"))?;
        std::fs::rename(&tmp, run_dir.join(name))
            .with_context(|| format!("writing {}", run_dir.join(name).display()))?;
    }

    // Set runs: how long each add took to become stable (or how long before it was lost).
    if events.iter().any(|e| e.f == "add") {
        if let Ok(set) = workloads::checker::check_set(&events) {
            let name = "set-latency.png";
            let tmp = run_dir.join(format!(".{name}.tmp.{}.png", std::process::id()));
            charts::set_latency(&set, &tmp).with_context(|| format!("drawing {name}"))?;
            std::fs::rename(&tmp, run_dir.join(name))
                .with_context(|| format!("writing {}", run_dir.join(name).display()))?;
        }
    }

    // Highlight in the timeline every operation an anomaly names (by either of its lines).
    let anchors = run_page::timeline_anchors(&digest);
    let highlight: HashSet<u64> = run
        .results
        .anomalies
        .iter()
        .flat_map(|a| a.ops.iter())
        .filter_map(|ix| anchors.get(ix))
        .filter_map(|id| id.strip_prefix("op-").and_then(|n| n.parse().ok()))
        .collect();
    crate::run_dir::write_atomic(
        &run_dir.join("timeline.html"),
        timeline::render(&run, &digest, &highlight).as_bytes(),
    )?;
    // The run page last: it lists the files that exist, the timeline included.
    crate::run_dir::write_atomic(
        &run_dir.join("index.html"),
        run_page::render(&run, &events, &digest, &stats, &coverage).as_bytes(),
    )?;
    Ok(warnings)
}

/// The coverage a run page shows, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ShownCoverage {
    /// The figures.
    pub coverage: crate::coverage::Coverage,
    /// True when `results.json` had none (an older or interrupted run) and it was
    /// recomputed from `history.jsonl` and, if present, `cluster.jsonl`.
    pub recomputed: bool,
}

/// The run's coverage: `results.json`'s if it has one, else recomputed from the run's files
/// (the families, read modes and cluster size from `test.json`; without `cluster.jsonl`,
/// or with an unreadable one, the leader figures are unknown). Never fails.
pub fn run_coverage(run: &run::Run, events: &[workloads::history::Event]) -> ShownCoverage {
    if let Some(c) = &run.results.coverage {
        return ShownCoverage {
            coverage: c.clone(),
            recomputed: false,
        };
    }
    let path = run.dir.join("cluster.jsonl");
    let observations = if path.is_file() {
        crate::observer::read_observations(&path).unwrap_or_else(|e| {
            tracing::warn!("{e:#}");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    // Family by family, so that one this version does not know leaves the others.
    let families = run
        .test
        .text("nemesis")
        .unwrap_or_default()
        .split(',')
        .filter_map(|f| nemesis::schedule::parse_families(f).ok())
        .flatten()
        .fold(Vec::new(), |mut acc, f| {
            if !acc.contains(&f) {
                acc.push(f);
            }
            acc
        });
    let mut read_modes: Vec<String> = match run.test.raw.get("read_modes") {
        Some(serde_json::Value::Array(xs)) => xs
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => run.results.read_modes.keys().cloned().collect(),
    };
    if read_modes.is_empty() {
        for e in events {
            if let Some(m) = &e.read_mode {
                if !read_modes.contains(m) {
                    read_modes.push(m.clone());
                }
            }
        }
    }
    let nodes = match run
        .test
        .raw
        .get("nodes")
        .and_then(serde_json::Value::as_u64)
    {
        Some(n) => (1..=n.min(1000)).map(node::raft::node_name).collect(),
        None => Vec::new(),
    };
    let input = crate::coverage::CoverageInput {
        families,
        read_modes,
        nodes,
        workload_end_ns: None,
        final_heal_ns: None,
    };
    ShownCoverage {
        coverage: crate::coverage::compute(events, &observations, &input),
        recomputed: true,
    }
}
