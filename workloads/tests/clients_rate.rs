//! The driver sustains the rate the harness asks for: 2,000 ops/s with 50 clients against a
//! fast (fake) cluster, and paces, rather than floods, when the rate is low.

#[path = "clients_support.rs"]
mod support;

use std::time::Duration;

use node::protocol::ReadMode;
use support::{fake_cluster, seed, validate};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use workloads::driver::{run_workload, WorkloadConfig};
use workloads::recorder::Recorder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustains_2000_ops_per_second_with_50_clients() {
    let seed = seed(2000);
    let cluster = fake_cluster(3).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let rec = Recorder::create(&path).unwrap();
    let cfg = WorkloadConfig {
        concurrency: 50,
        rate: 2000.0,
        keys: 8,
        read_modes: vec![ReadMode::ReadIndex, ReadMode::Follower],
        seed,
        ..WorkloadConfig::default()
    };
    let secs = 3.0;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let s = run_workload(
        &cfg,
        &cluster.addrs,
        &rec,
        deadline,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    drop(rec);
    let achieved = s.ops as f64 / secs;
    println!(
        "seed {seed}: {} ops in {:.2} s: {achieved:.0} ops/s of 2000 requested; {s:?}",
        s.ops,
        s.elapsed.as_secs_f64()
    );
    // The throughput target itself (at least 90 % of the requested rate) is measured by
    // `harness test --rate 2000 --concurrency 50`, not asserted here: a timed assertion would
    // fail on a loaded CI machine. This floor only proves pacing drives real load.
    assert!(
        achieved >= 0.25 * cfg.rate,
        "seed {seed}: achieved only {achieved:.0} ops/s of {}",
        cfg.rate
    );
    assert!(
        s.info * 100 <= s.ops,
        "seed {seed}: too many timeouts: {s:?}"
    );
    validate(&path, 1000);
}

#[tokio::test]
async fn a_low_rate_is_paced_not_flooded() {
    let cluster = fake_cluster(1).await;
    let rec = Recorder::in_memory();
    let cfg = WorkloadConfig {
        concurrency: 4,
        rate: 20.0,
        ..WorkloadConfig::default()
    };
    let s = run_workload(
        &cfg,
        &cluster.addrs,
        &rec,
        Instant::now() + Duration::from_secs(1),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    // Never more than the rate allows (no burst catch-up); a starved machine may do fewer.
    assert!((5..=21).contains(&s.ops), "{s:?}");
}
