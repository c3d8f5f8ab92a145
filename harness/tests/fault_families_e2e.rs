//! Each fault family has its effect on a real cluster (a fault that does nothing would make
//! a valid verdict meaningless): an isolated leader loses leadership and the majority
//! elects a new one; a killed node's process is gone and comes back on restart; a paused
//! process stops answering and resumes; a skewed clock is reported by the node; a removed
//! node leaves the configuration and rejoins.

mod common;

use node::raft::Role;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use harness::cluster::{Cluster, ClusterOptions};
use nemesis::partition;
use nemesis::schedule::{ClockSkew, Fault};
use nemesis::targets::Target;

fn options(nodes: usize) -> ClusterOptions {
    common::cluster_options(nodes, 42)
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {limit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_family_has_its_effect() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), &options(3)).await.unwrap();
    let leader = cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let addrs: BTreeMap<u64, std::net::SocketAddr> = cluster.client_addrs();

    // Partition: isolate the leader. The majority elects another; the old one steps down.
    let fault = Fault::Partition {
        shape: "isolate-leader",
        grudge: partition::isolate(&cluster.ids(), leader).unwrap(),
    };
    cluster.apply(&fault).await.unwrap();
    let old = addrs[&leader];
    wait_until(
        "a new leader on the majority side",
        Duration::from_secs(15),
        || async { matches!(cluster.leader().await, Some(l) if l != leader) },
    )
    .await;
    wait_until(
        "the isolated leader steps down",
        Duration::from_secs(15),
        || async {
            nemesis::admin::status(old)
                .await
                .map(|s| s.role != Role::Leader)
                .unwrap_or(false)
        },
    )
    .await;
    cluster.heal(&fault).await.unwrap();
    let leader = cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();

    // Kill: the process is gone; heal restarts it on its data directory.
    let victim = cluster.ids().into_iter().find(|&n| n != leader).unwrap();
    let fault = Fault::Kill {
        target: Target::One,
        nodes: vec![victim],
    };
    cluster.apply(&fault).await.unwrap();
    assert!(
        nemesis::admin::status(addrs[&victim]).await.is_err(),
        "a killed node still answers"
    );
    cluster.heal(&fault).await.unwrap();
    wait_until(
        "the killed node answers after restart",
        Duration::from_secs(15),
        || async { nemesis::admin::status(addrs[&victim]).await.is_ok() },
    )
    .await;

    // Pause: no answer while stopped; answers again after resume.
    let fault = Fault::Pause {
        target: Target::One,
        nodes: vec![victim],
    };
    cluster.apply(&fault).await.unwrap();
    assert!(
        nemesis::admin::status(addrs[&victim]).await.is_err(),
        "a paused node still answers"
    );
    cluster.heal(&fault).await.unwrap();
    wait_until(
        "the paused node answers after resume",
        Duration::from_secs(10),
        || async { nemesis::admin::status(addrs[&victim]).await.is_ok() },
    )
    .await;

    // Clock: the node reports the skew; heal resets it.
    let mut skews = BTreeMap::new();
    skews.insert(
        victim,
        ClockSkew {
            offset_ms: 250.0,
            rate: 0.5,
        },
    );
    let fault = Fault::Clock { skews };
    cluster.apply(&fault).await.unwrap();
    let s = nemesis::admin::status(addrs[&victim]).await.unwrap();
    assert_eq!(s.clock.rate, 0.5);
    assert_eq!(s.clock.offset_ms, 250.0);
    cluster.heal(&fault).await.unwrap();
    let s = nemesis::admin::status(addrs[&victim]).await.unwrap();
    assert_eq!(s.clock.rate, 1.0);
    assert_eq!(s.clock.offset_ms, 0.0);

    // Membership: remove the leader through joint consensus, then add it back.
    let leader = cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let fault = Fault::Membership {
        removed: leader,
        was_leader: true,
    };
    cluster.apply(&fault).await.unwrap();
    let voters = |m: node::protocol::Reply| match m {
        node::protocol::Reply::Members(m) => m.voters,
        other => panic!("{other:?}"),
    };
    let new_leader = cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let members = nemesis::admin::request(
        addrs[&new_leader],
        node::protocol::Operation::Members,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    let v = voters(members);
    assert!(!v.contains(&leader), "n{leader} still a voter: {v:?}");
    assert_eq!(v.len(), 2);
    cluster.heal(&fault).await.unwrap();
    let l = cluster
        .wait_for_leader(Duration::from_secs(20))
        .await
        .unwrap();
    let members = nemesis::admin::request(
        addrs[&l],
        node::protocol::Operation::Members,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    assert_eq!(voters(members).len(), 3, "the removed node rejoined");

    // Delay and loss on every link: the cluster still has a leader, and heals.
    for fault in [
        Fault::Delay {
            fixed_ms: 20,
            jitter_ms: 10,
        },
        Fault::Loss { p: 0.2 },
    ] {
        cluster.apply(&fault).await.unwrap();
        cluster
            .wait_for_leader(Duration::from_secs(20))
            .await
            .unwrap();
        cluster.heal(&fault).await.unwrap();
    }
    cluster.shutdown().await;
}
