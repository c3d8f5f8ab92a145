//! What `harness test` prints while it runs and when it ends: a progress line every few
//! seconds, then the verdict, the coverage line, the first anomalies and the report's path.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use workloads::recorder::Recorder;

use crate::results::Results;
use crate::text::plural;

/// Prints progress: a line every 5 s (every second on a terminal).
pub fn progress_task(
    recorder: Recorder,
    time_limit: Duration,
    stop: CancellationToken,
    quiet: bool,
) -> tokio::task::JoinHandle<()> {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_secs(1)
    } else {
        Duration::from_secs(5)
    };
    tokio::spawn(async move {
        let start = Instant::now();
        // Bounded by the time limit plus slack; aborted by the caller at the end.
        while !quiet
            && start.elapsed() < time_limit + Duration::from_secs(30)
            && !stop.is_cancelled()
        {
            tokio::time::sleep(every).await;
            let c = recorder.counts();
            let faults: Vec<String> = recorder.open_faults().keys().cloned().collect();
            eprintln!(
                "harness: {:>5.1}/{:.0} s  ops {:>6}  ok {:>6}  fail {:>5}  info {:>5}  faults: {}",
                start.elapsed().as_secs_f64(),
                time_limit.as_secs_f64(),
                c.total.invoke,
                c.total.ok,
                c.total.fail,
                c.total.info,
                if faults.is_empty() {
                    "none".into()
                } else {
                    faults.join(", ")
                }
            );
        }
    })
}

/// One line of what the faults did: leader changes, leaderless time, under partition.
pub fn coverage_line(c: &crate::coverage::Coverage) -> String {
    fn known<T: std::fmt::Display>(v: Option<T>) -> String {
        v.map_or_else(|| "?".into(), |x| x.to_string())
    }
    let changes = c.leader_changes.map_or_else(
        || "? leader changes".to_string(),
        |n| plural(n as usize, "leader change", "leader changes"),
    );
    let mut s = format!(
        "faults: {}, {changes}, max term {}, {} s without a leader",
        plural(c.windows.len(), "window", "windows"),
        known(c.max_term),
        known(c.leaderless_s),
    );
    if let Some(share) = c.partition_leaderless_share() {
        s.push_str(&format!(
            " ({:.0}% of the time under partition)",
            share * 100.0
        ));
    }
    if !c.failpoints.is_empty() {
        let fired = c
            .failpoints
            .iter()
            .filter(|u| u.fired.is_some_and(|f| f > 0))
            .count();
        let crashes: u64 = c.failpoints.iter().map(|u| u.crashed).sum();
        s.push_str(&format!(
            "; {} failpoints set, {fired} fired, {crashes} crashes ({})",
            c.failpoints.len(),
            c.failpoints
                .iter()
                .map(|u| u.point.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    s
}

/// The verdict as the run ends: `<test>: <verdict> (<per mode>, <notes>) seed <seed>`, the
/// coverage warnings, what the faults did, the first three anomalies with their context,
/// and the report's path (none with `--no-report`).
pub fn print_verdict(test_name: &str, seed: u64, results: &Results, report: Option<&Path>) {
    let mut notes = results.modes_line();
    if let Some(i) = &results.interrupted {
        notes.push(format!(
            "interrupted by {} at {:.1} s",
            i.signal.as_deref().unwrap_or("a signal"),
            i.at_s.unwrap_or(0.0)
        ));
    }
    let warnings = results
        .coverage
        .as_ref()
        .map(|c| c.warnings.as_slice())
        .unwrap_or_default();
    match warnings.len() {
        0 => {}
        n => notes.push(plural(n, "coverage warning", "coverage warnings")),
    }
    println!(
        "{test_name}: {} ({}) seed {seed}",
        results.valid.label(),
        notes.join(", ")
    );
    for w in warnings {
        println!("  coverage warning: {w}");
    }
    if let Some(c) = &results.coverage {
        println!("  {}", coverage_line(c));
    }
    for a in results.anomalies.iter().take(3) {
        println!(
            "  anomaly on {} ({}): {}",
            a.key.as_deref().unwrap_or("?"),
            a.read_mode.as_deref().unwrap_or("?"),
            a.headline()
        );
        if let Some(c) = &a.context {
            println!("    context: {}", c.text);
        }
    }
    if let Some(r) = report {
        println!("  report: {}", r.display());
    }
}

#[cfg(test)]
mod tests {
    use super::coverage_line;
    use crate::coverage::{compute, CoverageInput};

    #[test]
    fn the_coverage_line_counts_in_words() {
        let mut c = compute(&[], &[], &CoverageInput::default());
        assert_eq!(
            coverage_line(&c),
            "faults: 0 windows, ? leader changes, max term ?, ? s without a leader"
        );
        c.leader_changes = Some(1);
        c.max_term = Some(2);
        c.leaderless_s = Some(0.4);
        assert_eq!(
            coverage_line(&c),
            "faults: 0 windows, 1 leader change, max term 2, 0.4 s without a leader"
        );
    }
}
