//! The workload driver and checkers, unchanged, against real etcd: a register run over three
//! read paths with the leader killed and restarted in the middle, and a set run with final
//! reads. Both must check valid. Skipped (with a message) when `etcd` is not on PATH.

use std::path::Path;
use std::time::Duration;

use etcd_system::kv::EtcdSystem;
use etcd_system::launcher::{self, EtcdCluster, EtcdConfig};
use node::protocol::ReadMode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use workloads::checker::{check_register, check_set, CheckOptions, Verdict};
use workloads::client::ClientConfig;
use workloads::driver::{final_set_reads_on, run_workload_on, WorkloadConfig};
use workloads::generator::WorkloadKind;
use workloads::recorder::Recorder;

async fn cluster(dir: &Path) -> (EtcdCluster, EtcdConfig, usize) {
    let ports = node::loopback::free_ports(6).expect("free loopback ports");
    let config = EtcdConfig::new(dir.to_path_buf(), ports[..3].to_vec(), ports[3..].to_vec());
    let cluster = EtcdCluster::start(config.clone()).unwrap();
    let mut ec = cluster.client();
    let (leader, _) = cluster
        .wait_for_leader(&mut ec, Duration::from_secs(20))
        .await
        .unwrap();
    (cluster, config, leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_set_workloads_check_valid_on_etcd() {
    if !launcher::available(Path::new("etcd")) {
        eprintln!("SKIPPED: etcd not on PATH (apt-get install etcd-server)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (mut etcd, config, leader) = cluster(dir.path()).await;
    let system = EtcdSystem::new(config.members());
    let rec = Recorder::in_memory();
    let cfg = WorkloadConfig {
        concurrency: 6,
        rate: 200.0,
        keys: 4,
        read_modes: vec![ReadMode::ReadIndex, ReadMode::Follower, ReadMode::Log],
        seed: 7,
        ..WorkloadConfig::default()
    };
    let deadline = Instant::now() + Duration::from_secs(6);
    let stop = CancellationToken::new();
    let run = run_workload_on(&cfg, &system, &rec, deadline, stop);
    let fault = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        etcd.kill(leader).unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        etcd.restart(leader).unwrap();
    };
    let (summary, ()) = tokio::join!(run, fault);
    let summary = summary.unwrap();
    eprintln!("register: {summary:?}");
    let events = rec.events();
    // What etcd said when it did not say ok, by kind and message (shown with --nocapture).
    let mut errors = std::collections::BTreeMap::<(String, String), usize>::new();
    for e in &events {
        if let Some(msg) = &e.error {
            let msg: String = msg.chars().take(60).collect();
            *errors.entry((e.kind.as_str().into(), msg)).or_default() += 1;
        }
    }
    eprintln!("register errors: {errors:?}");
    let report = check_register(&events, &CheckOptions::default()).unwrap();
    eprintln!(
        "register verdict {:?}, per mode {:?}",
        report.valid,
        report
            .read_modes
            .iter()
            .map(|(m, r)| (m.clone(), r.valid))
            .collect::<Vec<_>>()
    );
    assert_eq!(report.valid, Verdict::Valid);
    assert!(summary.ok > summary.ops / 2, "{summary:?}");

    let rec = Recorder::in_memory();
    let cfg = WorkloadConfig {
        workload: WorkloadKind::Set,
        read_modes: vec![ReadMode::ReadIndex],
        ..cfg
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let summary = run_workload_on(&cfg, &system, &rec, deadline, CancellationToken::new())
        .await
        .unwrap();
    let reads = final_set_reads_on(
        &system,
        &rec,
        ReadMode::ReadIndex,
        &ClientConfig::default(),
        Duration::from_secs(10),
    )
    .await;
    assert!(reads.iter().all(|r| r.elements.is_some()), "{reads:?}");
    let report = check_set(&rec.events()).unwrap();
    eprintln!(
        "set: {summary:?}; verdict {:?}, {} acknowledged, lost {:?}",
        report.valid, report.acknowledged, report.lost
    );
    assert_eq!(report.valid, Verdict::Valid);
    drop(etcd);
}
