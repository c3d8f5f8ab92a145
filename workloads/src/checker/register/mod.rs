//! Linearizability of the register model (read, write, cas on independent keys), per key and
//! per read mode.
//!
//! Semantics (`docs/spec/history.md`): every key is a register that starts absent (`null`);
//! a read returning `null` saw no value; `cas [expected, new]` succeeds only if the register
//! holds `expected` (which may be `null`). `fail` operations are dropped; operations that end
//! `info` or never end may take effect at any time after their invocation, or never; reads
//! that do not end `ok` are dropped. With reads of several read modes, each mode is checked on
//! the history of all writes and cas plus that mode's reads; reads without a `read_mode`
//! form the mode `"default"`.

mod cache;
mod explain;
mod prepare;
mod race;
mod search;

pub use explain::{Anomaly, OpSummary};
pub use prepare::{HistoryStats, DEFAULT_MODE};

use super::{validate::pair, CheckOptions, Verdict};
use crate::history::{Event, HistoryError};
use search::Outcome;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

/// The result of one key in one read mode.
#[derive(Clone, Debug, Serialize)]
pub struct KeyReport {
    /// The verdict for this key.
    pub valid: Verdict,
    /// Operations searched (after dropping failed ones and unobservable indeterminate ones).
    pub ops: usize,
    /// Time spent searching this key, in milliseconds.
    pub elapsed_ms: f64,
    /// Search steps taken.
    pub steps: u64,
    /// (linearized set, state) pairs cached.
    pub cached_states: usize,
    /// Why the verdict is `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The result of one read mode.
#[derive(Clone, Debug, Serialize)]
pub struct ModeReport {
    /// Invalid if any key is; else unknown if any key is; else valid.
    pub valid: Verdict,
    /// `ok` reads of this mode.
    pub reads: usize,
    /// One per invalid key.
    pub anomalies: Vec<Anomaly>,
    /// Per-key results.
    pub keys: BTreeMap<String, KeyReport>,
}

/// The result of [`check_register`].
#[derive(Clone, Debug, Serialize)]
pub struct RegisterReport {
    /// The worst verdict over all read modes.
    pub valid: Verdict,
    /// One entry per read mode in the history.
    pub read_modes: BTreeMap<String, ModeReport>,
    /// Counts of operations.
    pub stats: HistoryStats,
    /// Wall-clock time of the check, in milliseconds.
    pub elapsed_ms: f64,
}

impl RegisterReport {
    /// All anomalies of all modes.
    pub fn anomalies(&self) -> impl Iterator<Item = &Anomaly> {
        self.read_modes.values().flat_map(|m| m.anomalies.iter())
    }
}

/// Re-runs an invalid task's search without pruning (for at most a second) to get the
/// longest prefix of the plain search, which ends at the operation a person would blame.
fn natural_prefix(
    prep: &prepare::Prepared,
    task: &prepare::Task,
    deadline: Instant,
) -> Option<Vec<u32>> {
    let until = (Instant::now() + std::time::Duration::from_secs(1)).min(deadline);
    let mem = search::MemBudget::new(256 << 20);
    let mut s = prep.search(task).without_pruning();
    let out = s.run(
        until,
        until,
        &std::sync::atomic::AtomicBool::new(false),
        &mem,
    );
    s.finish(&mem);
    match out {
        Outcome::Invalid { prefix } => Some(prefix),
        _ => None,
    }
}

/// Checks a register history for linearizability, per read mode and key, within the budgets
/// of `opts`. Validates the history first ([`super::validate`]); errors name the line.
///
/// Guarantees: `Valid` only if every (mode, key) sub-history has a linearization; `Invalid`
/// only if some has none (with an [`Anomaly`]); anything undecided within the budgets is
/// `Unknown`.
pub fn check_register(
    events: &[Event],
    opts: &CheckOptions,
) -> Result<RegisterReport, HistoryError> {
    let started = Instant::now();
    // A huge timeout means "no limit"; cap it rather than overflow.
    let deadline = started
        .checked_add(opts.timeout)
        .unwrap_or(started + std::time::Duration::from_secs(1 << 32));
    let pairs = pair(events)?;
    let prep = prepare::prepare(events, &pairs)?;
    let tasks = prep.tasks();
    let groups: Vec<u32> = tasks.iter().map(|t| t.mode).collect();
    let build = |i: usize| prep.search(&tasks[i]);
    let results = race::race(
        &groups,
        &build,
        opts.worker_threads(),
        deadline,
        opts.memory_limit,
        !opts.all_anomalies,
    );
    let mut read_modes: BTreeMap<String, ModeReport> = prep
        .modes
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                m.clone(),
                ModeReport {
                    valid: Verdict::Valid,
                    reads: prep.reads[i],
                    anomalies: Vec::new(),
                    keys: BTreeMap::new(),
                },
            )
        })
        .collect();
    // Finding natural explanations gets at most 2 s in all (more when every anomaly is
    // asked for: each gets its share).
    let explain_budget = if opts.all_anomalies { 10 } else { 2 };
    let explain_until =
        (Instant::now() + std::time::Duration::from_secs(explain_budget)).min(deadline);
    for (task, fin) in tasks.iter().zip(results) {
        let mode = &mut read_modes
            .get_mut(&prep.modes[task.mode as usize])
            .expect("every task's mode has a report");
        let (valid, reason) = match fin.outcome {
            Outcome::Valid => (Verdict::Valid, None),
            Outcome::Invalid { prefix } => {
                let prefix = natural_prefix(&prep, task, explain_until).unwrap_or(prefix);
                mode.anomalies
                    .push(explain::explain(events, &prep, task, &prefix));
                (Verdict::Invalid, None)
            }
            Outcome::GaveUp(r) => (Verdict::Unknown, Some(r)),
            Outcome::Paused => (Verdict::Unknown, Some("search did not finish".into())),
        };
        mode.valid = mode.valid.worst(valid);
        mode.keys.insert(
            prep.keys[task.key as usize].clone(),
            KeyReport {
                valid,
                ops: task.ops.len(),
                elapsed_ms: fin.elapsed.as_secs_f64() * 1e3,
                steps: fin.steps,
                cached_states: fin.cached,
                reason,
            },
        );
    }
    let valid = read_modes
        .values()
        .fold(Verdict::Valid, |v, m| v.worst(m.valid));
    Ok(RegisterReport {
        valid,
        read_modes,
        stats: prep.stats,
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

#[cfg(test)]
mod tests;
