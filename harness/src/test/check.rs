//! Checking a run's history and writing what was found: the checkers (linearizability or set,
//! availability after the heal, convergence), each anomaly in its context, `results.json`, the
//! report, the results index.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use workloads::checker::{self, CheckOptions, Verdict};
use workloads::generator::WorkloadKind;
use workloads::history::Event;

use super::drive::Driven;
use super::plan::Plan;
use crate::results::{Anomaly, Interrupted, ModeResult, Results};

/// Checks the history, writes `results.json` and the report, updates the results index and
/// prints the verdict; returns the exit code and what was written.
pub(super) fn check_and_report(
    plan: &Plan,
    seed: u64,
    run_dir: &Path,
    events: &[Event],
    driven: &Driven,
    interrupted: Option<Interrupted>,
) -> anyhow::Result<(u8, Results)> {
    let args = &plan.args;
    let mut results = check_history(plan, events)?;
    if let Some(heal_at_ns) = driven.heal_at_ns {
        let reads_in_run = match args.workload {
            WorkloadKind::Register => plan.read_modes.iter().map(|m| m.as_str().into()).collect(),
            WorkloadKind::Set => Vec::new(),
        };
        let a = crate::availability::check(
            events,
            &crate::availability::AvailabilityInput {
                heal_at_ns,
                recovery_time_s: args.recovery_time,
                read_modes: reads_in_run,
                heal_error: driven.heal_error.clone(),
                cut_short: driven.cut_short,
            },
        );
        results.valid = results.valid.worst(a.valid);
        for an in &a.anomalies {
            results
                .anomalies
                .push(Anomaly::of_run("availability", None, &an.explanation));
        }
        let mut a = serde_json::to_value(&a)?;
        if !driven.heal_errors_during_run.is_empty() {
            a["heal_errors_during_run"] = json!(driven.heal_errors_during_run);
        }
        results.checkers.insert("availability".into(), a);
    }
    let convergence = match &driven.convergence {
        Some(c) => c.clone(),
        None => crate::convergence::ConvergenceReport::not_run("the run was interrupted"),
    };
    results.valid = results.valid.worst(convergence.valid);
    if driven.convergence.is_some() {
        for an in &convergence.anomalies {
            results.anomalies.push(Anomaly::of_run(
                "convergence",
                an.key.as_deref(),
                &an.explanation,
            ));
        }
    }
    results
        .checkers
        .insert("convergence".into(), serde_json::to_value(&convergence)?);
    // An interrupted run covers only what was recorded: never valid.
    if interrupted.is_some() && results.valid == Verdict::Valid {
        results.valid = Verdict::Unknown;
    }
    results.interrupted = interrupted;
    results.stats = serde_json::to_value(crate::report::compute(events))?;
    results.seed = Some(seed);
    results.test = Some(plan.test_name.clone());
    results.system = Some(args.system.as_str().to_string());
    results.system_version = Some(driven.system_version.clone());
    results.command_line = Some(args.command_line(seed));
    let coverage = crate::coverage::compute(
        events,
        &driven.observations,
        &crate::coverage::CoverageInput {
            families: plan.families.clone(),
            read_modes: plan.read_modes.iter().map(|m| m.as_str().into()).collect(),
            nodes: (1..=args.nodes as u64).map(node::raft::node_name).collect(),
            workload_end_ns: driven.workload_end_ns,
            final_heal_ns: None,
        },
    );
    // Each anomaly in its context: the faults active then, the leader, the node's view.
    for a in &mut results.anomalies {
        a.context = crate::anomaly_context::of(a, events, &coverage.windows, &driven.observations);
    }
    results.coverage = Some(coverage);
    results.write(run_dir)?;
    if !args.no_report {
        if let Err(e) = crate::report::build_run_report(run_dir) {
            eprintln!("harness: report failed: {e:#}");
        }
    }
    crate::report::update_latest(&args.results_dir, run_dir)?;
    if let Err(e) = crate::report::rebuild_results_index(&args.results_dir) {
        eprintln!("harness: results index failed: {e:#}");
    }
    let report = (!args.no_report).then(|| run_dir.join("index.html"));
    super::terminal::print_verdict(&plan.test_name, seed, &results, report.as_deref());
    Ok((results.valid.exit_code(), results))
}

/// The workload's checker over the history: the verdict, one entry per read mode, the
/// checker's report and its anomalies (the rest of [`Results`] is left empty).
fn check_history(plan: &Plan, events: &[Event]) -> anyhow::Result<Results> {
    let args = &plan.args;
    let opts = CheckOptions {
        timeout: Duration::from_secs_f64(args.check_timeout),
        all_anomalies: args.check_all,
        ..CheckOptions::default()
    };
    let mut results = Results::default();
    match args.workload {
        WorkloadKind::Register => {
            let r = checker::check_register(events, &opts).context("checking the history")?;
            let typed = |a: &checker::Anomaly| -> anyhow::Result<Anomaly> {
                Ok(Anomaly::from_value(serde_json::to_value(a)?))
            };
            for (m, rep) in &r.read_modes {
                results.read_modes.insert(
                    m.clone(),
                    ModeResult {
                        valid: rep.valid,
                        reads: Some(rep.reads as u64),
                        anomalies: rep.anomalies.iter().map(typed).collect::<Result<_, _>>()?,
                    },
                );
            }
            // Every mode's anomalies, in the order `RegisterReport::anomalies` lists them.
            results.anomalies = results
                .read_modes
                .values()
                .flat_map(|m| m.anomalies.iter().cloned())
                .collect();
            results.valid = r.valid;
            results
                .checkers
                .insert("linearizable".into(), serde_json::to_value(&r)?);
        }
        WorkloadKind::Set => {
            let s = checker::check_set(events).context("checking the history")?;
            let mode = plan.read_modes[0].as_str().to_string();
            results.read_modes.insert(
                mode.clone(),
                ModeResult {
                    valid: s.valid,
                    reads: Some(s.reads as u64),
                    anomalies: Vec::new(),
                },
            );
            let set_anomaly = |explanation: String| {
                let mut a = Anomaly::explained(explanation);
                a.key = Some("set".into());
                a.read_mode = Some(mode.clone());
                a.ops = s.bad_reads.clone();
                a
            };
            if s.lost.count > 0 {
                let mut a = set_anomaly(lost_explanation(&s));
                // The span the loss happened in: from the first lost acknowledgement to
                // the first read that missed a lost element (the faults in between are
                // the suspects).
                let from = s.lost_details.iter().map(|d| d.ack_time).min();
                let to = s.lost_details.iter().map(|d| d.first_missing_time).min();
                if let (Some(from), Some(to)) = (from, to) {
                    a.span_ns = Some([from, to.max(from)]);
                }
                results.anomalies.push(a);
            }
            if s.stale_linearizable_reads > 0 {
                results.anomalies.push(set_anomaly(stale_explanation(&s)));
            }
            if s.unexpected.count > 0 {
                results.anomalies.push(set_anomaly(format!(
                    "{} elements read were never added: {}",
                    s.unexpected.count,
                    elements_preview(&s.unexpected.elements)
                )));
            }
            results.valid = s.valid;
            results
                .checkers
                .insert("set".into(), serde_json::to_value(&s)?);
        }
    }
    Ok(results)
}

/// The set checker's lost elements in words: how many, then the first few one by one.
fn lost_explanation(s: &checker::SetReport) -> String {
    const SHOWN: usize = 10;
    let secs = |ns: u64| format!("{:.3}", ns as f64 / 1e9);
    let mut out = format!(
        "{} elements acknowledged (or read) are absent from every read after some point (lost): {}",
        s.lost.count,
        elements_preview(&s.lost.elements)
    );
    for d in s.lost_details.iter().take(SHOWN) {
        let seen = match (d.last_seen_index, d.last_seen_time) {
            (Some(i), Some(t)) => format!("last seen by read #{i} at {} s", secs(t)),
            _ => "never read".into(),
        };
        out.push_str(&format!(
            "\n  {}: added at {} s (#{}){}, {} at {} s (#{}), {seen}, missing from read #{} at {} s",
            d.element,
            secs(d.add_time),
            d.add_index,
            d.node.as_deref().map(|n| format!(" via {n}")).unwrap_or_default(),
            if d.acknowledged { "acknowledged" } else { "first read" },
            secs(d.ack_time),
            d.ack_index,
            d.first_missing_index,
            secs(d.first_missing_time),
        ));
    }
    if s.lost.count > SHOWN {
        out.push_str(&format!(
            "\n  … {} more in results.json (checkers.set.lost_details)",
            s.lost.count - SHOWN
        ));
    }
    out
}

/// The set checker's stale reads through linearizable paths in words, worst elements first.
fn stale_explanation(s: &checker::SetReport) -> String {
    let worst: Vec<String> = s
        .worst_stale
        .iter()
        .map(|w| {
            format!(
                "{} (missing until {:.1} ms after it was known, last by read #{})",
                w.element,
                w.stable_latency_ns as f64 / 1e6,
                w.last_missing_index
            )
        })
        .collect();
    format!(
        "{} linearizable reads were stale: they began after an element was acknowledged (or read) and missed it, and a later read held it ({} stale elements; worst: {})",
        s.stale_linearizable_reads,
        s.stale_count,
        worst.join(", ")
    )
}

/// The first elements of a (possibly huge) list, for one-line explanations; the full lists
/// are in `results.json` under `checkers.set`.
fn elements_preview(elements: &[i64]) -> String {
    const SHOWN: usize = 20;
    let head: Vec<String> = elements.iter().take(SHOWN).map(i64::to_string).collect();
    if elements.len() > SHOWN {
        format!("{}, … ({} more)", head.join(", "), elements.len() - SHOWN)
    } else {
        head.join(", ")
    }
}
