//! The `availability` checker: after the final heal, the cluster must serve again. A system
//! that stays stuck once every fault is gone (no leader, a membership change that never
//! completes, a wedged read path) is a bug users want flagged, even though every operation
//! it did answer was correct.
//!
//! It reads only the history: the time of the final heal (the `heal-all` nemesis stop, or
//! the time the harness gives), and the first `ok` write and the first `ok` read of each
//! read mode in use that completed after it.

use std::collections::BTreeMap;

use serde::Serialize;
use workloads::checker::Verdict;
use workloads::history::{Event, EventType, Process};

/// What the checker needs besides the history.
#[derive(Clone, Debug)]
pub struct AvailabilityInput {
    /// When the final heal completed, in ns since the test start (history clock).
    pub heal_at_ns: u64,
    /// How long after the heal the workload went on (`--recovery-time`).
    pub recovery_time_s: f64,
    /// Read modes whose reads the workload issued during the run (empty for the set
    /// workload, whose only reads are the final ones).
    pub read_modes: Vec<String>,
    /// Why the final heal could not be completed, if it could not (for instance a
    /// membership change that never finished): a finding about the system.
    pub heal_error: Option<String>,
    /// True when the recovery phase was cut short (an interrupted run): the checker then
    /// cannot decide and says unknown rather than blaming the system.
    pub cut_short: bool,
}

/// One thing the checker found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AvailabilityAnomaly {
    /// One line a person can act on, e.g. "unavailable after heal: no ok write in 10 s".
    pub explanation: String,
}

/// The checker's result (`checkers.availability` in results.json).
#[derive(Clone, Debug, Serialize)]
pub struct AvailabilityReport {
    /// Valid when an ok write, and an ok read of every read mode in use, completed within
    /// the recovery time after the heal and the heal itself completed; invalid otherwise;
    /// unknown when the recovery phase was cut short.
    pub valid: Verdict,
    /// The recovery time the verdict was judged against.
    pub recovery_time_s: f64,
    /// When the final heal completed (seconds since the test start).
    pub heal_at_s: f64,
    /// Seconds from the heal to the first ok write (`write`, `cas` or `add`) after it.
    pub first_ok_write_after_heal_s: Option<f64>,
    /// Per read mode in use: seconds from the heal to the first ok read of that mode.
    pub first_ok_read_after_heal_s: BTreeMap<String, Option<f64>>,
    /// Ok operations that completed within the recovery time, by operation type.
    pub ok_after_heal: BTreeMap<String, u64>,
    /// The heal's error, when it could not be completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heal_error: Option<String>,
    /// Why the checker could not decide, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why the run is not available, one entry each.
    pub anomalies: Vec<AvailabilityAnomaly>,
}

const NS: f64 = 1e9;

/// Judges the recovery after the final heal from the history.
pub fn check(events: &[Event], input: &AvailabilityInput) -> AvailabilityReport {
    let heal = input.heal_at_ns;
    let window_end = heal.saturating_add((input.recovery_time_s * NS) as u64);
    let mut first_write: Option<u64> = None;
    let mut first_read: BTreeMap<String, Option<u64>> =
        input.read_modes.iter().map(|m| (m.clone(), None)).collect();
    let mut ok_after = BTreeMap::new();
    for e in events {
        if e.kind != EventType::Ok
            || e.process == Process::Nemesis
            || e.time < heal
            || e.time > window_end
        {
            continue;
        }
        *ok_after.entry(e.f.clone()).or_insert(0u64) += 1;
        if e.is_write() {
            first_write.get_or_insert(e.time);
        } else if e.f == "read" {
            if let Some(slot) = e.read_mode.as_ref().and_then(|m| first_read.get_mut(m)) {
                slot.get_or_insert(e.time);
            }
        }
    }
    let secs = |t: Option<u64>| t.map(|t| round_ms((t - heal) as f64 / NS));
    let mut anomalies = Vec::new();
    if let Some(err) = &input.heal_error {
        anomalies.push(AvailabilityAnomaly {
            explanation: format!("the final heal did not complete: {err}"),
        });
    }
    let limit = input.recovery_time_s;
    if first_write.is_none() {
        anomalies.push(AvailabilityAnomaly {
            explanation: format!("unavailable after heal: no ok write in {limit} s"),
        });
    }
    for (mode, t) in &first_read {
        if t.is_none() {
            anomalies.push(AvailabilityAnomaly {
                explanation: format!("unavailable after heal: no ok {mode} read in {limit} s"),
            });
        }
    }
    let mut note = None;
    let valid = if input.cut_short {
        // Not the system's fault: the recovery phase did not run to its end.
        anomalies.clear();
        note = Some("not judged: the recovery phase was cut short (interrupted run)".to_string());
        Verdict::Unknown
    } else if anomalies.is_empty() {
        Verdict::Valid
    } else {
        Verdict::Invalid
    };
    AvailabilityReport {
        valid,
        recovery_time_s: limit,
        heal_at_s: round_ms(heal as f64 / NS),
        first_ok_write_after_heal_s: secs(first_write),
        first_ok_read_after_heal_s: first_read.into_iter().map(|(m, t)| (m, secs(t))).collect(),
        ok_after_heal: ok_after,
        heal_error: input.heal_error.clone(),
        note,
        anomalies,
    }
}

/// Seconds rounded to the millisecond, so results.json stays readable.
fn round_ms(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(time_ms: u64, kind: EventType, f: &str, mode: Option<&str>) -> Event {
        Event {
            index: 0,
            time: time_ms * 1_000_000,
            process: Process::Client(1),
            kind,
            f: f.into(),
            key: Some("k1".into()),
            value: serde_json::Value::Null,
            node: Some("n1".into()),
            read_mode: mode.map(String::from),
            error: None,
        }
    }

    fn input(modes: &[&str]) -> AvailabilityInput {
        AvailabilityInput {
            heal_at_ns: 10_000_000_000,
            recovery_time_s: 10.0,
            read_modes: modes.iter().map(|m| m.to_string()).collect(),
            heal_error: None,
            cut_short: false,
        }
    }

    #[test]
    fn ok_write_and_reads_after_heal_are_valid_with_their_delays() {
        let events = vec![
            ev(9_000, EventType::Ok, "write", None), // before the heal: ignored
            ev(10_400, EventType::Fail, "write", None),
            ev(10_500, EventType::Ok, "cas", None),
            ev(11_000, EventType::Ok, "read", Some("lease")),
        ];
        let r = check(&events, &input(&["lease"]));
        assert_eq!(r.valid, Verdict::Valid, "{r:?}");
        assert_eq!(r.first_ok_write_after_heal_s, Some(0.5));
        assert_eq!(r.first_ok_read_after_heal_s["lease"], Some(1.0));
        assert_eq!(r.ok_after_heal["cas"], 1);
        assert!(r.anomalies.is_empty());
    }

    #[test]
    fn no_write_within_the_recovery_time_is_invalid() {
        let events = vec![
            ev(9_000, EventType::Ok, "write", None),
            ev(12_000, EventType::Info, "write", None),
            ev(21_000, EventType::Ok, "write", None), // after the recovery time
        ];
        let r = check(&events, &input(&[]));
        assert_eq!(r.valid, Verdict::Invalid);
        assert_eq!(
            r.anomalies[0].explanation,
            "unavailable after heal: no ok write in 10 s"
        );
        assert_eq!(r.first_ok_write_after_heal_s, None);
    }

    #[test]
    fn a_read_mode_without_an_ok_read_is_named() {
        let events = vec![
            ev(10_100, EventType::Ok, "add", None),
            ev(10_200, EventType::Ok, "read", Some("log")),
            ev(10_300, EventType::Fail, "read", Some("follower")),
        ];
        let r = check(&events, &input(&["log", "follower"]));
        assert_eq!(r.valid, Verdict::Invalid);
        assert_eq!(r.anomalies.len(), 1);
        assert!(r.anomalies[0].explanation.contains("no ok follower read"));
    }

    #[test]
    fn a_failed_heal_is_a_finding_and_a_cut_short_run_is_unknown() {
        let events = vec![ev(10_100, EventType::Ok, "write", None)];
        let mut i = input(&[]);
        i.heal_error = Some("membership change did not complete".into());
        let r = check(&events, &i);
        assert_eq!(r.valid, Verdict::Invalid);
        assert!(r.anomalies[0].explanation.contains("did not complete"));
        let mut i = input(&[]);
        i.cut_short = true;
        let r = check(&[], &i);
        assert_eq!(r.valid, Verdict::Unknown);
        assert!(r.anomalies.is_empty() && r.note.is_some());
    }
}
