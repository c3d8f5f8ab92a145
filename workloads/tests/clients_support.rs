//! Helpers shared by the `clients_*` tests (included with `#[path]`; as a test crate of its
//! own it has no tests).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

use workloads::client::NodeAddr;
use workloads::fake_node::{new_store, Behaviour, FakeNode, SharedStore};

/// A fake cluster: `n1` leads, the others redirect to it.
pub struct FakeCluster {
    pub nodes: Vec<FakeNode>,
    pub addrs: Vec<NodeAddr>,
    pub store: SharedStore,
}

pub async fn fake_cluster(n: usize) -> FakeCluster {
    let store = new_store();
    let leader = FakeNode::start(store.clone(), Behaviour::default())
        .await
        .expect("start fake leader");
    let leader_addr = leader.addr().to_string();
    let mut nodes = vec![leader];
    for _ in 1..n {
        let b = Behaviour {
            follower_of: Some((Some(1), Some(leader_addr.clone()))),
            ..Behaviour::default()
        };
        nodes.push(FakeNode::start(store.clone(), b).await.expect("start fake"));
    }
    let addrs = nodes
        .iter()
        .enumerate()
        .map(|(i, f)| NodeAddr {
            name: format!("n{}", i + 1),
            client_addr: f.addr(),
        })
        .collect();
    FakeCluster {
        nodes,
        addrs,
        store,
    }
}

/// The seed of a randomized test: `TEST_SEED` from the environment, else `default`. Printed
/// so that a failure names it.
pub fn seed(default: u64) -> u64 {
    let s = std::env::var("TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    println!("seed {s} (rerun with TEST_SEED={s})");
    s
}

/// Runs `tools/validate-history` (the format checker of `docs/spec/history.md`) on
/// `history`; panics with its output on failure.
pub fn validate(history: &std::path::Path, min_ops: u64) -> String {
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/validate-history");
    let out = Command::new("python3")
        .arg(&tool)
        .arg(history)
        .arg("--min-ops")
        .arg(min_ops.to_string())
        .output()
        .expect("run python3 validate-history");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "validate-history failed:\n{text}");
    println!("{}", text.trim());
    text
}
