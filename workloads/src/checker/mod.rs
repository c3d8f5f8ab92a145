//! Checkers: linearizability of the register model and the set checker.
//!
//! Entry points:
//! - [`validate`]: structural checks every history must pass before any checker runs
//!   (consecutive indexes, completions matching an open invocation, no process reused after
//!   `info`, time never decreasing).
//! - [`check_register`]: linearizability per key and per read mode (Wing & Gong / Lowe search
//!   as in Porcupine, keys raced in parallel, time and memory budgets).
//! - [`check_set`]: lost, unexpected and recovered elements of the set workload.
//! - [`detect_model`]: which of the two a history is for.
//!
//! A checker that cannot decide says [`Verdict::Unknown`], never [`Verdict::Valid`].

mod fasthash;
pub mod gen;
pub mod register;
pub mod set;
mod validate;
mod verdict;

pub use register::{check_register, Anomaly, KeyReport, ModeReport, OpSummary, RegisterReport};
pub use set::{
    check_set, LatencyQuantiles, LostElement, ReadSummary, SetLatencies, SetReport, StaleElement,
};
pub use validate::validate;
pub use verdict::Verdict;

use crate::generator::WorkloadKind;
use crate::history::{Event, EventType};
use std::time::Duration;

/// Budgets and parallelism of a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Wall-clock budget for the whole check; keys still undecided when it runs out are
    /// `unknown`.
    pub timeout: Duration,
    /// Memory budget (bytes) for the search caches of all keys together; a key whose search
    /// would exceed it is given up as `unknown`.
    pub memory_limit: usize,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Keep checking the other keys of a read mode after one is invalid, and report every
    /// anomaly; by default the first invalid key decides the mode and cancels the rest
    /// (which are then `unknown`), which is faster.
    pub all_anomalies: bool,
}

impl Default for CheckOptions {
    /// 300 s, 1 GiB, one thread per core, first anomaly only.
    fn default() -> Self {
        CheckOptions {
            timeout: Duration::from_secs(300),
            memory_limit: 1 << 30,
            threads: 0,
            all_anomalies: false,
        }
    }
}

impl CheckOptions {
    /// The number of worker threads to use (at least 1).
    pub fn worker_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }
}

/// Which workload (and so which checker) a history is for: `Set` if it has any client `add`
/// invocation, else `Register`.
pub fn detect_model(events: &[Event]) -> WorkloadKind {
    let has_add = events
        .iter()
        .any(|e| e.kind == EventType::Invoke && e.f == "add");
    if has_add {
        WorkloadKind::Set
    } else {
        WorkloadKind::Register
    }
}
