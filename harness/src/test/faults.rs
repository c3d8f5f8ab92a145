//! The fault schedule as the harness plays it. About every interval it asks the planner for a
//! fault that may start beside the active ones (see `nemesis::schedule::Planner` for the order
//! of families and the overlap rules); each fault then lives on its own: applied, held for its
//! own duration, healed. Every start and stop is a `nemesis` event in the history, one pair per
//! part, so windows and overlaps can be computed from the history alone.
//!
//! Each fault is a future polled by the schedule's loop, not a spawned task: the faults borrow
//! the cluster and the recorder, and a slow heal (a membership change waiting for a quorum)
//! never delays another fault's heal, because the loop keeps polling them all.

use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use nemesis::schedule::{Fault, Planner};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use workloads::recorder::{NemesisPhase, Recorder};

use crate::system::{self, System};
use active::ActiveFaults;

pub mod active;
pub mod scripted;

/// Sleeps until `until` or the deadline or a stop, whichever comes first; false when the run
/// is over (deadline passed or stopped).
async fn wait(until: Instant, deadline: Instant, stop: &CancellationToken) -> bool {
    let t = until.min(deadline);
    tokio::select! {
        _ = tokio::time::sleep_until(t.into()) => Instant::now() < deadline,
        _ = stop.cancelled() => false,
    }
}

/// Plays one fault: applies it (a sequence step by step, each step healed as the next is
/// applied; a script through `scripted`), holds it for `holds` (one duration per step),
/// heals it. Ends early, healed, at the deadline or a stop. Every part applied is healed
/// before this returns, even when applying a later part failed.
async fn play(
    cluster: &dyn System,
    recorder: &Recorder,
    fault: Fault,
    holds: Vec<Duration>,
    deadline: Instant,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    if let Fault::Scripted { script, old, peer } = fault {
        let reached = scripted::run(cluster, recorder, script, old, peer, deadline, stop).await?;
        tracing::info!("{} script: {reached:?}", script.as_str());
        return Ok(());
    }
    let mut active = ActiveFaults::new(cluster, recorder);
    for (step, hold) in fault.steps().into_iter().zip(holds) {
        if !active.is_empty() {
            active.heal().await?;
        }
        let mut failed = false;
        for part in step.parts() {
            if let Err(e) = active.apply(part).await {
                tracing::warn!("{e:#}");
                failed = true;
                break;
            }
        }
        if failed || !wait(Instant::now() + hold, deadline, stop).await {
            break;
        }
    }
    active.heal().await
}

/// The schedule, until the deadline or a stop. Each fault holds for about an interval (uniform
/// in half to one and a half times `interval_s`). The first fault starts about an interval in;
/// after a start, the planner is asked again about half an interval later for a fault that
/// fits beside the active ones, so that with several families about two faults are active at
/// a time and most overlap. When nothing may start (overlap off, a script running, a family
/// waiting for a busy one), the next try comes about an interval after the next fault is
/// healed: with overlap off, or a single family, that is one fault at a time with a quiet
/// interval between faults. Bounded: every fault's hold ends at the deadline, and every fault
/// applied is healed before this returns. A failed heal stops the schedule: the other faults
/// are healed at once and the first error is returned.
pub async fn run_schedule(
    mut planner: Planner,
    cluster: &dyn System,
    recorder: &Recorder,
    deadline: Instant,
    stop: CancellationToken,
    interval_s: f64,
) -> anyhow::Result<()> {
    if !planner.may_start(&[]) {
        return Ok(());
    }
    let mean = Duration::from_secs_f64(interval_s);
    // Cancelled at a stop or when a heal fails: every fault then heals at once.
    let halt = stop.child_token();
    let mut running = FuturesUnordered::new();
    // The faults applied (or being applied) and not yet healed, by id.
    let mut active: Vec<(u64, Fault)> = Vec::new();
    let mut next_id = 0u64;
    // When to ask the planner next; `None`: after the next fault is healed.
    let mut next_try = Some(Instant::now() + planner.next_interval(mean));
    let mut first_err: Option<anyhow::Error> = None;

    // One fault ended (healed): forget it, and plan the next try if it waited for this.
    let mut ended = |id: u64,
                     result: anyhow::Result<()>,
                     active: &mut Vec<(u64, Fault)>,
                     next_try: &mut Option<Instant>,
                     planner: &mut Planner| {
        active.retain(|(i, _)| *i != id);
        if let Err(e) = result {
            tracing::warn!("{e:#}");
            first_err.get_or_insert(e);
            halt.cancel();
        }
        if next_try.is_none() {
            *next_try = Some(Instant::now() + planner.next_interval(mean));
        }
    };

    while Instant::now() < deadline && !halt.is_cancelled() {
        let wake = next_try.unwrap_or(deadline).min(deadline);
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            Some((id, r)) = running.next(), if !running.is_empty() => {
                ended(id, r, &mut active, &mut next_try, &mut planner);
                continue;
            }
            _ = halt.cancelled() => break,
        }
        if next_try.is_none_or(|t| Instant::now() < t) || Instant::now() >= deadline {
            continue;
        }
        let current: Vec<Fault> = active.iter().map(|(_, f)| f.clone()).collect();
        if !planner.may_start(&current) {
            next_try = None;
            continue;
        }
        // Ask for the leader while the active faults go on (their heals are due on time).
        let leader = {
            let ask = system::leader(cluster);
            tokio::pin!(ask);
            loop {
                tokio::select! {
                    l = &mut ask => break l,
                    Some((id, r)) = running.next(), if !running.is_empty() => {
                        ended(id, r, &mut active, &mut next_try, &mut planner);
                    }
                }
            }
        };
        let current: Vec<Fault> = active.iter().map(|(_, f)| f.clone()).collect();
        match planner.next_fault(leader, &current) {
            Some(fault) => {
                let holds = fault
                    .steps()
                    .iter()
                    .map(|_| planner.next_interval(mean))
                    .collect();
                let id = next_id;
                next_id += 1;
                active.push((id, fault.clone()));
                let play = play(cluster, recorder, fault, holds, deadline, &halt);
                running.push(async move { (id, play.await) });
                let current: Vec<Fault> = active.iter().map(|(_, f)| f.clone()).collect();
                // With overlap off (or a script running) the next fault comes one interval
                // after this one is healed, not one interval after it started.
                next_try = if planner.may_start(&current) {
                    Some(Instant::now() + planner.next_interval(mean / 2))
                } else {
                    None
                };
            }
            // Nothing is active, so nothing to wait for: try again an interval later.
            None if active.is_empty() => {
                next_try = Some(Instant::now() + planner.next_interval(mean));
            }
            None => next_try = None,
        }
    }
    // Every fault ends its hold at the deadline or the halt; wait for their heals.
    while let Some((id, r)) = running.next().await {
        ended(id, r, &mut active, &mut next_try, &mut planner);
    }
    first_err.map_or(Ok(()), Err)
}

/// How long the final heal may take before the workload is stopped regardless (a heal that
/// hangs is reported by the availability checker, not waited on forever).
pub const HEAL_BUDGET: Duration = Duration::from_secs(90);

/// What the final heal did.
#[derive(Clone, Debug)]
pub struct FinalHeal {
    /// When it ended (ns on the history's clock), completed or not.
    pub at_ns: u64,
    /// Why it did not complete, if it did not.
    pub error: Option<String>,
}

/// Heals every fault the system may still carry, within [`HEAL_BUDGET`], and records it as the
/// nemesis stop `heal-all` (with the error when it did not complete), so the availability
/// checker measures recovery from this moment.
pub async fn heal_all(cluster: &dyn System, recorder: &Recorder) -> FinalHeal {
    let healed = tokio::time::timeout(HEAL_BUDGET, cluster.heal_all()).await;
    let error = match healed {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(_) => Some(format!("still healing after {} s", HEAL_BUDGET.as_secs())),
    };
    let mut desc = json!({"fault": "heal-all"});
    if let Some(e) = &error {
        desc["error"] = json!(e);
        eprintln!("harness: the final heal did not complete: {e}");
    }
    recorder.nemesis(NemesisPhase::Stop, desc);
    FinalHeal {
        at_ns: recorder.now_ns(),
        error,
    }
}
