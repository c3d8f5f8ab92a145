//! Checking a run's history and writing what was found: the checkers (linearizability or set,
//! availability after the heal, convergence), each anomaly in its context, `results.json`, the
//! report, the results index.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use workloads::checker::{self, CheckOptions, Verdict};
use workloads::generator::WorkloadKind;

use super::drive::Driven;
use super::plan::Plan;
use super::runner::write_json;

/// Checks the history, writes results.json and the report, updates the results index.
pub(super) fn check_and_report(
    plan: &Plan,
    seed: u64,
    run_dir: &Path,
    events: &[workloads::history::Event],
    driven: &Driven,
    interrupted: Option<Interrupted>,
) -> anyhow::Result<(u8, serde_json::Value)> {
    let args = &plan.args;
    let opts = CheckOptions {
        timeout: Duration::from_secs_f64(args.check_timeout),
        all_anomalies: args.check_all,
        ..CheckOptions::default()
    };
    let stats = crate::report::compute(events);
    let (verdict, read_modes, checkers, anomalies) = match args.workload {
        WorkloadKind::Register => {
            let r = checker::check_register(events, &opts).context("checking the history")?;
            let modes: serde_json::Map<String, serde_json::Value> = r
                .read_modes
                .iter()
                .map(|(m, rep)| {
                    (
                        m.clone(),
                        json!({"valid": rep.valid, "reads": rep.reads, "anomalies": rep.anomalies}),
                    )
                })
                .collect();
            let anomalies: Vec<_> = r.anomalies().cloned().collect();
            (r.valid, modes, json!({"linearizable": r}), json!(anomalies))
        }
        WorkloadKind::Set => {
            let s = checker::check_set(events).context("checking the history")?;
            let mode = plan.read_modes[0].as_str().to_string();
            let mut modes = serde_json::Map::new();
            modes.insert(
                mode.clone(),
                json!({"valid": s.valid, "reads": s.reads, "anomalies": []}),
            );
            let mut anomalies = Vec::new();
            if s.lost.count > 0 {
                let mut a = json!({"key": "set", "read_mode": mode, "explanation":
                    lost_explanation(&s),
                    "ops": s.bad_reads});
                // The span the loss happened in: from the first lost acknowledgement to
                // the first read that missed a lost element (the faults in between are
                // the suspects).
                let from = s.lost_details.iter().map(|d| d.ack_time).min();
                let to = s.lost_details.iter().map(|d| d.first_missing_time).min();
                if let (Some(from), Some(to)) = (from, to) {
                    a["span_ns"] = json!([from, to.max(from)]);
                }
                anomalies.push(a);
            }
            if s.stale_linearizable_reads > 0 {
                anomalies.push(json!({"key": "set", "read_mode": mode, "explanation":
                    stale_explanation(&s),
                    "ops": s.bad_reads}));
            }
            if s.unexpected.count > 0 {
                anomalies.push(json!({"key": "set", "read_mode": mode, "explanation":
                    format!("{} elements read were never added: {}", s.unexpected.count, elements_preview(&s.unexpected.elements)),
                    "ops": s.bad_reads}));
            }
            (s.valid, modes, json!({"set": s}), json!(anomalies))
        }
    };
    let (mut checkers, mut anomalies) = (checkers, anomalies);
    let mut verdict = verdict;
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
        verdict = verdict.worst(a.valid);
        for an in &a.anomalies {
            push_anomaly(&mut anomalies, "availability", None, &an.explanation);
        }
        let mut a = serde_json::to_value(&a)?;
        if !driven.heal_errors_during_run.is_empty() {
            a["heal_errors_during_run"] = json!(driven.heal_errors_during_run);
        }
        checkers["availability"] = a;
    }
    let convergence = match &driven.convergence {
        Some(c) => c.clone(),
        None => crate::convergence::ConvergenceReport::not_run("the run was interrupted"),
    };
    verdict = verdict.worst(convergence.valid);
    if driven.convergence.is_some() {
        for an in &convergence.anomalies {
            push_anomaly(
                &mut anomalies,
                "convergence",
                an.key.as_deref(),
                &an.explanation,
            );
        }
    }
    checkers["convergence"] = json!(convergence);
    // An interrupted run covers only what was recorded: never valid.
    if interrupted.is_some() && verdict == Verdict::Valid {
        verdict = Verdict::Unknown;
    }
    let mut results = json!({
        "valid": verdict,
        "read_modes": read_modes,
        "checkers": checkers,
        "anomalies": anomalies,
        "stats": stats,
        "seed": seed,
        "test": plan.test_name,
        "system": args.system.as_str(),
        "system_version": driven.system_version,
        "command_line": args.command_line(seed),
    });
    if let Some(i) = &interrupted {
        results["interrupted"] = json!(i);
    }
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
    if let Some(list) = results["anomalies"].as_array_mut() {
        for a in list.iter_mut() {
            let ctx =
                crate::anomaly_context::of(a, events, &coverage.windows, &driven.observations);
            if let (Some(ctx), Some(obj)) = (ctx, a.as_object_mut()) {
                obj.insert("context".into(), serde_json::to_value(ctx)?);
            }
        }
    }
    let anomalies = results["anomalies"].clone();
    results["coverage"] = serde_json::to_value(&coverage)?;
    write_json(&run_dir.join("results.json"), &results)?;
    if !args.no_report {
        if let Err(e) = crate::report::build_run_report(run_dir) {
            eprintln!("harness: report failed: {e:#}");
        }
    }
    crate::report::update_latest(&args.results_dir, run_dir)?;
    if let Err(e) = crate::report::rebuild_results_index(&args.results_dir) {
        eprintln!("harness: results index failed: {e:#}");
    }
    let label = verdict.label();
    let per_mode: Vec<String> = read_modes
        .iter()
        .map(|(m, v)| format!("{m}: {}", Verdict::from_json(Some(&v["valid"])).label()))
        .collect();
    let mut notes = per_mode;
    if let Some(i) = &interrupted {
        notes.push(format!("interrupted by {} at {:.1} s", i.signal, i.at_s));
    }
    match coverage.warnings.len() {
        0 => {}
        1 => notes.push("1 coverage warning".into()),
        n => notes.push(format!("{n} coverage warnings")),
    }
    println!(
        "{}: {label} ({}) seed {seed}",
        plan.test_name,
        notes.join(", ")
    );
    for w in &coverage.warnings {
        println!("  coverage warning: {w}");
    }
    println!("  {}", super::terminal::coverage_line(&coverage));
    for a in anomalies.as_array().into_iter().flatten().take(3) {
        println!(
            "  anomaly on {} ({}): {}",
            a["key"].as_str().unwrap_or("?"),
            a["read_mode"].as_str().unwrap_or("?"),
            a["explanation"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
        );
        if let Some(c) = a["context"]["text"].as_str() {
            println!("    context: {c}");
        }
    }
    // --no-report writes no page: print no path to one.
    if !args.no_report {
        println!("  report: {}", run_dir.join("index.html").display());
    }
    Ok((verdict.exit_code(), results))
}

/// A run stopped by a signal: which and when (seconds since the test start).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub(super) struct Interrupted {
    pub(super) at_s: f64,
    pub(super) signal: &'static str,
}

/// Adds a checker's anomaly to the run's list (`anomalies` in results.json).
fn push_anomaly(
    anomalies: &mut serde_json::Value,
    checker: &str,
    key: Option<&str>,
    explanation: &str,
) {
    if let Some(list) = anomalies.as_array_mut() {
        list.push(json!({"checker": checker, "key": key.unwrap_or(checker), "read_mode": "-", "explanation": explanation}));
    }
}

/// The first elements of a (possibly huge) list, for one-line explanations; the full lists
/// are in `results.json` under `checkers.set`.
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

fn elements_preview(elements: &[i64]) -> String {
    const SHOWN: usize = 20;
    let head: Vec<String> = elements.iter().take(SHOWN).map(i64::to_string).collect();
    if elements.len() > SHOWN {
        format!("{}, … ({} more)", head.join(", "), elements.len() - SHOWN)
    } else {
        head.join(", ")
    }
}
