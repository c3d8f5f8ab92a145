//! The observer and the coverage on a real 3-node cluster: the leader is isolated, the
//! majority elects another, a follower is paused. `cluster.jsonl` shows the new leader and
//! the paused node as unreachable (its polls time out instead of stalling the observer),
//! and the coverage of the partition window counts the leader change without a warning.

mod common;

use std::time::{Duration, Instant};

use harness::cluster::{Cluster, ClusterOptions};
use harness::coverage::{compute, CoverageInput};
use harness::observer::{read_observations, Observer};
use nemesis::partition;
use nemesis::schedule::{Fault, FaultFamily};
use nemesis::targets::Target;
use tokio_util::sync::CancellationToken;
use workloads::history::{Event, EventType, Process};

fn options(nodes: usize) -> ClusterOptions {
    common::cluster_options(nodes, 7)
}

fn nemesis_event(index: u64, t0: Instant, f: &str, fault: &Fault) -> Event {
    Event {
        index,
        time: t0.elapsed().as_nanos() as u64,
        process: Process::Nemesis,
        kind: EventType::Info,
        f: f.into(),
        key: None,
        value: fault.describe(),
        node: None,
        read_mode: None,
        error: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_sees_a_new_leader_and_a_paused_node() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), &options(3)).await.unwrap();
    let leader = cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let t0 = Instant::now();
    let stop = CancellationToken::new();
    let path = dir.path().join("cluster.jsonl");
    let observer = Observer::spawn(
        cluster.client_addrs().into_iter().collect(),
        Duration::from_millis(100),
        path.clone(),
        t0,
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut events = Vec::new();
    let isolate = Fault::Partition {
        shape: "isolate-leader",
        grudge: partition::isolate(&cluster.ids(), leader).unwrap(),
    };
    cluster.apply(&isolate).await.unwrap();
    events.push(nemesis_event(0, t0, "start", &isolate));
    let start = Instant::now();
    // Bounded: gives up after 15 s (the assertions below then say what was seen).
    while start.elapsed() < Duration::from_secs(15) {
        if matches!(cluster.leader().await, Some(l) if l != leader) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Long enough for the observer to poll the new leader's followers.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.heal(&isolate).await.unwrap();
    events.push(nemesis_event(1, t0, "stop", &isolate));

    let leader = cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let victim = cluster.ids().into_iter().find(|&n| n != leader).unwrap();
    let pause = Fault::Pause {
        target: Target::One,
        nodes: vec![victim],
    };
    cluster.apply(&pause).await.unwrap();
    events.push(nemesis_event(2, t0, "start", &pause));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    cluster.heal(&pause).await.unwrap();
    events.push(nemesis_event(3, t0, "stop", &pause));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let stopping = Instant::now();
    stop.cancel();
    let written = observer.await.unwrap().unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "the observer took {:?} to stop",
        stopping.elapsed()
    );
    cluster.shutdown().await;

    let observations = read_observations(&path).unwrap();
    assert_eq!(observations, written);
    let victim_name = node::raft::node_name(victim);
    let victim_lines: Vec<_> = observations
        .iter()
        .filter(|o| o.node == victim_name)
        .collect();
    assert!(
        victim_lines.iter().any(|o| o.unreachable),
        "the paused node never showed as unreachable: {victim_lines:?}"
    );
    assert!(
        victim_lines.last().is_some_and(|o| !o.unreachable),
        "the resumed node answers again: {victim_lines:?}"
    );

    let input = CoverageInput {
        families: vec![FaultFamily::Partition, FaultFamily::Pause],
        read_modes: vec![],
        nodes: cluster_names(3),
        workload_end_ns: None,
        final_heal_ns: None,
    };
    let c = compute(&events, &observations, &input);
    eprintln!("{}", serde_json::to_string_pretty(&c).unwrap());
    let w = &c.windows[0];
    assert_eq!(w.fault, "partition");
    assert_eq!(w.cut_leader, Some(true), "{w:?}");
    assert!(w.leader_changes.unwrap() >= 1, "{w:?}");
    let length = w.end_s.unwrap() - w.start_s;
    assert!(
        w.leaderless_s.unwrap() < length,
        "leaderless the whole window: {w:?}"
    );
    assert!(c.leader_changes.unwrap() >= 1);
    assert!(c.max_term.unwrap() >= 2);
    assert_eq!(c.windows[1].fault, "pause");
    assert_eq!(c.windows[1].cut_leader, Some(false));
    assert!(
        c.warnings.iter().all(|w| !w.contains("no leader change")),
        "{:?}",
        c.warnings
    );
}

fn cluster_names(n: u64) -> Vec<String> {
    (1..=n).map(node::raft::node_name).collect()
}
