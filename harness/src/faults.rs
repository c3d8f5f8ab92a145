//! The fault schedule as the harness plays it: wait, apply the planner's next fault, wait,
//! heal it, until the deadline. Every start and stop is a `nemesis` event in the history.

use std::time::{Duration, Instant};

use nemesis::schedule::{Fault, Planner};
use tokio_util::sync::CancellationToken;
use workloads::recorder::Recorder;

use crate::active_faults::ActiveFaults;
use crate::cluster::Cluster;

/// The schedule: wait, apply a fault, wait, heal it; until the deadline. Every start and stop
/// is a `nemesis` event in the history.
pub async fn run_schedule(
    mut planner: Planner,
    cluster: &Cluster,
    recorder: &Recorder,
    deadline: Instant,
    stop: CancellationToken,
    interval_s: f64,
) -> anyhow::Result<()> {
    if !planner.is_active() {
        return Ok(());
    }
    let mean = Duration::from_secs_f64(interval_s);
    // Sleeps until `until` or the deadline/stop, whichever comes first; false when the run is over.
    async fn wait(until: Instant, deadline: Instant, stop: &CancellationToken) -> bool {
        let t = until.min(deadline);
        tokio::select! {
            _ = tokio::time::sleep_until(t.into()) => Instant::now() < deadline,
            _ = stop.cancelled() => false,
        }
    }
    // Bounded: each iteration waits at least half an interval.
    loop {
        if !wait(
            Instant::now() + planner.next_interval(mean),
            deadline,
            &stop,
        )
        .await
        {
            return Ok(());
        }
        let leader = cluster.leader().await;
        let Some(fault) = planner.next_fault(leader) else {
            return Ok(());
        };
        if let Fault::Scripted { script, old, peer } = fault {
            let reached =
                crate::scripted::run(cluster, recorder, script, old, peer, deadline, &stop).await?;
            tracing::info!("{} script: {reached:?}", script.as_str());
            continue;
        }
        // Each step of a sequence is healed as the next is applied; each part of a combined
        // fault is its own start/stop pair in the history, so the charts shade each window
        // by its kind.
        let mut active = ActiveFaults::new(cluster, recorder);
        let mut failed = false;
        for step in fault.steps() {
            if !active.is_empty() {
                if !wait(
                    Instant::now() + planner.next_interval(mean),
                    deadline,
                    &stop,
                )
                .await
                {
                    break;
                }
                active.heal().await?;
            }
            for part in step.parts() {
                if let Err(e) = active.apply(part).await {
                    tracing::warn!("{e:#}");
                    failed = true;
                    break;
                }
            }
            if failed {
                break;
            }
        }
        if !failed {
            wait(
                Instant::now() + planner.next_interval(mean),
                deadline,
                &stop,
            )
            .await;
        }
        active.heal().await?;
        if Instant::now() >= deadline || stop.is_cancelled() {
            return Ok(());
        }
    }
}
