//! Reports of a run, drawn from the files of its directory alone (`history.jsonl`, and when
//! present `test.json` and `results.json`):
//! - [`build_run_report`]: `latency-raw.png`, `latency-quantiles.png`, `rate.png`,
//!   `index.html` (verdict, configuration, charts, statistics, anomalies, files) and
//!   `timeline.html`;
//! - [`rebuild_results_index`] and [`update_latest`]: `results/index.html` and `results/latest`;
//! - [`compare`]: one page comparing runs, or the read modes of one run;
//! - [`stats::compute`]: the statistics the harness stores in `results.json` as `"stats"`.
//!
//! Pages are static HTML (no script, no network) built with maud, which escapes every value;
//! charts are PNGs drawn with plotters, byte-for-byte reproducible from the same history.

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
/// depend only on the history, so rebuilding an older run reproduces them byte for byte.
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
    let digest = ops::Digest::from_events(&events);
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
    index::write_atomic(
        &run_dir.join("timeline.html"),
        timeline::render(&run, &digest, &highlight).as_bytes(),
    )?;
    // The run page last: it lists the files that exist, the timeline included.
    index::write_atomic(
        &run_dir.join("index.html"),
        run_page::render(&run, &events, &digest, &stats).as_bytes(),
    )?;
    Ok(warnings)
}
