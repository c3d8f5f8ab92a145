//! Driving a started system: wait for a leader, run the workload and the fault schedule to the
//! time limit, heal, let the workload go on through the recovery time, final reads, compare
//! the members; the cluster observer watches throughout.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use workloads::client::ClientConfig;
use workloads::driver::{self, LargePut, WorkloadConfig};
use workloads::generator::WorkloadKind;
use workloads::recorder::Recorder;

use super::plan::{partition_shapes, Plan, NEMESIS_SEED_SALT};
use crate::convergence::ConvergenceReport;
use crate::system::System;
use nemesis::schedule::{Planner, PlannerConfig};

/// What happened after the faults, for the availability and convergence checkers.
#[derive(Debug, Default)]
pub(super) struct Driven {
    /// When the final heal completed (ns on the history's clock), when faults were enabled.
    pub(super) heal_at_ns: Option<u64>,
    /// Why the final heal could not be completed.
    pub(super) heal_error: Option<String>,
    /// Heals of the schedule that failed during the run (the final heal retried them).
    pub(super) heal_errors_during_run: Vec<String>,
    /// The run was interrupted before its recovery phase ended.
    pub(super) cut_short: bool,
    /// The members compared after the workload stopped (None when interrupted).
    pub(super) convergence: Option<ConvergenceReport>,
    /// Every member's status changes during the run (also in cluster.jsonl).
    pub(super) observations: Vec<crate::observer::Observation>,
    /// When the workload stopped (ns on the history's clock).
    pub(super) workload_end_ns: Option<u64>,
    /// The system's version as its binary reports it.
    pub(super) system_version: String,
}

/// Test-only hooks, from `HARNESS_TEST_HOOK` (comma-separated), that break the cluster in
/// ways no fault of the schedule does, so that tests can show the checkers catch them:
/// `pause-majority-after-heal` keeps a majority of the nodes SIGSTOPped after the final heal
/// (the cluster cannot recover); `diverge-n1` starts n1 with the node's test-only divergence
/// fault (its state machine applies puts wrongly).
pub(super) fn test_hook(name: &str) -> bool {
    std::env::var("HARNESS_TEST_HOOK")
        .map(|v| v.split(',').any(|h| h.trim() == name))
        .unwrap_or(false)
}

/// Waits for a leader, runs the workload and the nemesis until the time limit, heals
/// everything, lets the workload go on for the recovery time, final reads, then compares the
/// members. Errors only for what is the harness's own failure.
pub(super) async fn drive(
    plan: &Plan,
    seed: u64,
    cluster: &dyn System,
    recorder: &Recorder,
    run_dir: &Path,
) -> anyhow::Result<Driven> {
    let args = &plan.args;
    crate::system::wait_for_leader(cluster, Duration::from_secs(20))
        .await
        .context("the cluster did not elect a leader")?;
    // Watches every member until the members are compared (or the run fails).
    let observer_stop = CancellationToken::new();
    let observer = crate::observer::Observer {
        nodes: cluster.ids(),
        interval: Duration::from_millis(args.observe_interval.max(1)),
        path: run_dir.join("cluster.jsonl"),
        t0: recorder.start(),
    };
    let observed = observer.run_on(cluster, observer_stop.clone());
    let body = async {
        let r = drive_observed(plan, seed, cluster, recorder).await;
        observer_stop.cancel();
        r
    };
    let (driven, observations) = tokio::join!(body, observed);
    let mut driven = driven?;
    driven.system_version = cluster.version();
    driven.observations = match observations {
        Ok(obs) => obs,
        Err(e) => {
            eprintln!("harness: the cluster observer failed: {e:#}");
            Vec::new()
        }
    };
    Ok(driven)
}

/// The part of [`drive`] that runs while the observer watches.
async fn drive_observed(
    plan: &Plan,
    seed: u64,
    cluster: &dyn System,
    recorder: &Recorder,
) -> anyhow::Result<Driven> {
    let args = &plan.args;

    let stop = crate::interrupt::token().child_token();
    let faults_on = !plan.families.is_empty();
    let recovery = if faults_on {
        Duration::from_secs_f64(args.recovery_time)
    } else {
        Duration::ZERO
    };

    let time_limit = Duration::from_secs_f64(args.time_limit);
    let deadline = Instant::now() + time_limit;
    let nodes = cluster.clients();
    let client = ClientConfig {
        op_timeout: Duration::from_secs_f64(args.op_timeout),
        key_bytes: args.key_bytes,
        ..ClientConfig::default()
    };
    let config = WorkloadConfig {
        workload: args.workload,
        concurrency: args.concurrency,
        rate: args.rate,
        keys: args.keys,
        read_modes: plan.read_modes.clone(),
        seed,
        client: client.clone(),
        // Halfway through the faults.
        large_put: args.large_put_bytes.map(|key_bytes| LargePut {
            key_bytes,
            after: Duration::from_secs_f64(args.time_limit / 2.0),
        }),
    };

    let planner = Planner::new(
        seed ^ NEMESIS_SEED_SALT,
        PlannerConfig {
            families: plan.families.clone(),
            nodes: cluster.ids(),
            clock_rate_min: args.clock_rate_min,
            clock_rate_max: args.clock_rate_max,
            clock_bump_ms: args.clock_bump_ms,
            failpoints: plan.failpoints.clone(),
        },
    )
    .and_then(|p| p.with_partition_shapes(&partition_shapes(args)))
    .map_err(anyhow::Error::msg)?
    .with_overlap(!args.no_overlap);
    // The workload outlives the nemesis: through the final heal and the recovery time after
    // it. `workload_stop` ends it; its deadline is only a bound.
    let workload_stop = stop.child_token();
    let workload_deadline = deadline + super::faults::HEAL_BUDGET + recovery;
    let progress = super::terminal::progress_task(
        recorder.clone(),
        time_limit + recovery,
        stop.clone(),
        args.quiet,
    );
    let workload = driver::run_workload_on(
        &config,
        &*nodes,
        recorder,
        workload_deadline.into(),
        workload_stop.clone(),
    );
    let faults_then_heal = async {
        let scheduled = super::faults::run_schedule(
            planner,
            cluster,
            recorder,
            deadline,
            stop.clone(),
            args.nemesis_interval,
        )
        .await;
        let mut driven = Driven::default();
        if faults_on {
            let healed = super::faults::heal_all(cluster, recorder).await;
            driven.heal_at_ns = Some(healed.at_ns);
            driven.heal_error = healed.error;
            if test_hook("pause-majority-after-heal") {
                let majority: Vec<_> = cluster.ids().into_iter().take(args.nodes / 2 + 1).collect();
                eprintln!("harness: test hook: pausing {majority:?} after the heal");
                let pause = nemesis::schedule::Fault::Pause {
                    target: nemesis::targets::Target::Minority,
                    nodes: majority,
                };
                if let Err(e) = cluster.apply(&pause).await {
                    eprintln!("harness: test hook failed: {e:#}");
                }
                // The recovery window starts once the majority is stopped: a write that
                // completed between the heal and the pause is not the recovery the hook
                // denies (it made this test fail on a loaded machine).
                driven.heal_at_ns = Some(recorder.now_ns());
            }
            if !stop.is_cancelled() {
                eprintln!(
                    "harness: healed; the workload goes on for {:.1} s of recovery",
                    recovery.as_secs_f64()
                );
                tokio::select! {
                    _ = tokio::time::sleep(recovery) => {}
                    _ = stop.cancelled() => {}
                }
            }
        }
        driven.cut_short = stop.is_cancelled();
        workload_stop.cancel();
        (scheduled, driven)
    };
    let (w, (n, mut driven)) = tokio::join!(workload, faults_then_heal);
    progress.abort();
    driven.workload_end_ns = Some(recorder.now_ns());
    let summary = w.context("running the workload")?;
    if let Err(e) = n {
        // A fault the schedule could not heal (a membership change that never finished, a
        // node that would not restart) is the system's doing: the final heal tried again,
        // and the availability checker judges whether the cluster came back.
        eprintln!("harness: a heal during the run failed: {e:#}");
        driven.heal_errors_during_run.push(format!("{e:#}"));
    }
    eprintln!(
        "harness: workload done: {} ops ({} ok, {} fail, {} info) in {:.1} s",
        summary.ops,
        summary.ok,
        summary.fail,
        summary.info,
        summary.elapsed.as_secs_f64()
    );
    if stop.is_cancelled() {
        return Ok(driven);
    }
    if args.workload == WorkloadKind::Set {
        if let Err(e) = crate::system::wait_for_leader(cluster, Duration::from_secs(30)).await {
            // Not the harness's failure: the checkers say what it means for the system.
            eprintln!("harness: no stable leader for the final reads: {e:#}");
        }
        let mode = plan.read_modes[0];
        driver::final_set_reads_on(&*nodes, recorder, mode, &client, Duration::from_secs(15)).await;
    }
    let keys: Vec<String> = run_keys(&recorder.events())
        .iter()
        .map(|k| workloads::client::wire_key(k, args.key_bytes))
        .collect();
    let budget = Duration::from_secs_f64(args.recovery_time.max(1.0));
    driven.convergence = Some(crate::convergence::check(cluster, &keys, budget).await);
    Ok(driven)
}

/// Every key a client operation of the run touched, in order.
fn run_keys(events: &[workloads::history::Event]) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = events
        .iter()
        .filter(|e| e.process != workloads::history::Process::Nemesis)
        .filter_map(|e| e.key.as_ref())
        .collect();
    keys.into_iter().cloned().collect()
}
