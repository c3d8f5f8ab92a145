//! etcd under packet-level partitions: three members, one per network namespace
//! (`nemesis::netns`), the leader isolated by a grudge, a new leader elected by the other two,
//! then healed. The client runs in the bridge namespace (the controller address, never cut).
//! Prints `SKIPPED: <reason>` and returns when namespaces cannot be built or `etcd` is not on
//! PATH. (It lives here, not in `nemesis/tests`, because `etcd-system` depends on `nemesis`.)

use std::path::Path;
use std::time::Duration;

use etcd_system::client::EtcdClient;
use etcd_system::launcher::{self, EtcdCluster, EtcdConfig};
use nemesis::netns::{self, NetnsCluster};
use nemesis::partition;
use tokio::time::Instant;

/// The member (index) that the members in `among` agree is leader, with its term, once they
/// all report the same leader, which is one of them and calls itself leader; `None` after
/// `timeout`.
async fn agreed_leader(
    client: &mut EtcdClient,
    among: &[usize],
    min_term: u64,
    timeout: Duration,
) -> Option<(usize, u64)> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let poll = (Instant::now() + Duration::from_millis(300)).min(deadline);
        let mut seen = Vec::new();
        for &i in among {
            if let Ok(s) = client.status(i, poll).await {
                seen.push((i, s));
            }
        }
        if seen.len() == among.len() {
            let leader_id = seen[0].1.leader_id;
            let leader = seen
                .iter()
                .find(|(_, s)| s.member_id == leader_id && s.leader_id == leader_id);
            if let Some((i, s)) = leader {
                if leader_id != 0
                    && s.raft_term >= min_term
                    && seen.iter().all(|(_, o)| o.leader_id == leader_id)
                {
                    return Some((*i, s.raft_term));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[test]
fn isolated_leader_is_replaced_and_the_cluster_heals() {
    if let Err(reason) = netns::available() {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    if !launcher::available(Path::new("etcd")) {
        eprintln!("SKIPPED: etcd is not on PATH (apt-get install etcd-server)");
        return;
    }
    let t0 = std::time::Instant::now();
    let net = NetnsCluster::create_n(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One namespace each, so every member can use etcd's usual ports.
    let mut cfg = EtcdConfig::new(dir.path().to_path_buf(), vec![2379; 3], vec![2380; 3]);
    cfg.hosts = (1..=3).map(|id| net.addr(id).unwrap().into()).collect();
    cfg.command_prefix = (1..=3).map(|id| net.exec_prefix(id).unwrap()).collect();
    let etcd = EtcdCluster::start(cfg).unwrap();
    let all = [0, 1, 2];

    let log = net
        .run_in_controller(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut client = etcd.client();
                let (leader, term) = agreed_leader(&mut client, &all, 0, Duration::from_secs(30))
                    .await
                    .expect("no leader within 30 s");
                let t_leader = t0.elapsed();

                let grudge = partition::isolate(&[1, 2, 3], leader as u64 + 1).unwrap();
                net.apply_grudge(&grudge).unwrap();
                let rest: Vec<usize> = all.iter().copied().filter(|&i| i != leader).collect();
                let (new_leader, new_term) =
                    agreed_leader(&mut client, &rest, term + 1, Duration::from_secs(20))
                        .await
                        .expect("no new leader among the other two within 20 s");
                assert_ne!(new_leader, leader);
                assert!(new_term > term);
                let t_new = t0.elapsed();

                net.heal_all().unwrap();
                let (after, _) =
                    agreed_leader(&mut client, &all, new_term, Duration::from_secs(20))
                        .await
                        .expect("the three members do not agree on a leader 20 s after heal");
                format!(
                    "leader n{} (term {term}) at {t_leader:?}; isolated; new leader n{} \
                     (term {new_term}) at {t_new:?}; healed, all agree on n{} at {:?}",
                    leader + 1,
                    new_leader + 1,
                    after + 1,
                    t0.elapsed()
                )
            })
        })
        .unwrap();
    eprintln!("{}: {log}", net.run_id());
    // Members die (SIGKILL by PID, reaped) before their namespaces are deleted.
    drop(etcd);
    let run_id = net.run_id().to_string();
    net.teardown().unwrap();
    let list = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&run_id));
}
