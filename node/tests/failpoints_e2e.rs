//! End-to-end: failpoints set through the admin request on real node processes.
//!
//! What this test does: the admin request lists every failpoint and refuses unknown names
//! and malformed actions, changing nothing; a `panic` failpoint crashes the leader at the
//! named point (the process ends, the client hears nothing), and after a restart on the same
//! data directory nothing the cluster committed is lost: an applied-but-unanswered write and
//! a persisted-but-unsent one are both still decided the same way by every node.

mod common;

use node::command;
use std::time::{Duration, Instant};

use common::{status, Cluster, Conn};
use node::protocol::{ErrorKind, Operation, ReadMode, Reply, Value, WriteId};

fn set_failpoint(
    addr: &str,
    name: &str,
    action: &str,
) -> Result<Reply, node::protocol::ErrorReply> {
    Conn::connect(addr)
        .unwrap()
        .call(Operation::Failpoint {
            name: name.into(),
            action: action.into(),
        })
        .unwrap()
}

/// Waits (bounded) until the process at position `i` has exited.
fn wait_exit(cluster: &mut Cluster, i: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.is_running(i) {
        assert!(
            Instant::now() < deadline,
            "n{} did not crash at its failpoint{}",
            i + 1,
            cluster.log_hint()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads `key` through the read-index path at whichever node leads, following hints.
fn read_at_leader(cluster: &mut Cluster, key: &str) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let l = cluster.wait_for_leader(Duration::from_secs(15));
        if let Ok(mut c) = Conn::connect(&cluster.nodes[l].client_addr) {
            if let Ok(Ok(Reply::Value { value })) = c.call(Operation::Get {
                key: key.into(),
                mode: Some(ReadMode::ReadIndex),
            }) {
                return value;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no read of {key} succeeded{}", cluster.log_hint());
}

#[test]
fn the_admin_request_lists_failpoints_and_refuses_unknown_names_and_bad_actions() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(Duration::from_secs(15));
    let addr = cluster.nodes[0].client_addr.clone();
    let list = |addr: &str| match Conn::connect(addr)
        .unwrap()
        .call(Operation::Failpoints)
        .unwrap()
    {
        Ok(Reply::Failpoints { points }) => points,
        other => panic!("{other:?}"),
    };
    let points = list(&addr);
    assert!(points.len() >= 14, "{points:?}");
    assert!(points
        .iter()
        .all(|p| p.action == "off" && !p.window.is_empty()));
    for name in [
        "before-persist",
        "after-persist-before-send",
        "after-commit-before-apply",
        "after-apply-before-reply",
        "after-election-before-first-append",
        "before-read-lease",
        "before-install-snapshot",
        "after-install-snapshot",
        "before-apply-config-change",
    ] {
        assert!(points.iter().any(|p| p.name == name), "{name} missing");
    }
    for (name, action) in [("no-such-point", "panic"), ("before-persist", "explode")] {
        match set_failpoint(&addr, name, action) {
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Invalid, "{e:?}");
                assert!(e.definite);
            }
            Ok(r) => panic!("{name}={action} accepted: {r:?}"),
        }
    }
    assert!(
        list(&addr).iter().all(|p| p.action == "off"),
        "a refusal changed something"
    );
    match set_failpoint(&addr, "before-persist", "50%3*sleep(5)") {
        Ok(Reply::Failpoints { points }) => {
            let p = points.iter().find(|p| p.name == "before-persist").unwrap();
            assert_eq!(p.action, "50%3*sleep(5)");
        }
        other => panic!("{other:?}"),
    }
    set_failpoint(&addr, "before-persist", "off").unwrap();
    // The node still serves writes.
    let r = Conn::connect(&addr)
        .unwrap()
        .call(Operation::Put(command::Put {
            key: "k".into(),
            value: 1,
            write_id: WriteId { client: 1, seq: 1 },
        }))
        .unwrap();
    assert_eq!(r, Ok(Reply::Written));
    cluster.assert_all_running();
}

/// A crash at `point` on the leader while it handles a put: the process ends there and the
/// client hears no answer; after a restart the cluster decides the put one way for all and
/// keeps every earlier acknowledged write.
fn leader_crash_at(point: &str, expect_applied: bool) {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(15));
    let laddr = cluster.nodes[leader].client_addr.clone();
    let mut conn = Conn::connect(&laddr).unwrap();
    for seq in 1..=5 {
        let r = conn
            .call(Operation::Put(command::Put {
                key: format!("before{seq}"),
                value: seq as i64,
                write_id: WriteId { client: 1, seq },
            }))
            .unwrap();
        assert_eq!(r, Ok(Reply::Written));
    }
    match set_failpoint(&laddr, point, "1*panic") {
        Ok(Reply::Failpoints { .. }) => {}
        other => panic!("{other:?}"),
    }
    let answer = conn.call(Operation::Put(command::Put {
        key: "x".into(),
        value: 7,
        write_id: WriteId { client: 1, seq: 6 },
    }));
    assert!(answer.is_err(), "the crashed leader answered: {answer:?}");
    wait_exit(&mut cluster, leader);
    cluster.nodes[leader].child = None;
    cluster.spawn(leader);

    for seq in 1..=5 {
        assert_eq!(
            read_at_leader(&mut cluster, &format!("before{seq}")),
            Some(Value::Int(seq)),
            "an acknowledged write was lost after a crash at {point}"
        );
    }
    let x = read_at_leader(&mut cluster, "x");
    if expect_applied {
        assert_eq!(
            x,
            Some(Value::Int(7)),
            "applied before the crash, then lost"
        );
    }
    // Every node converges on the same decision.
    let l = cluster.wait_for_leader(Duration::from_secs(15));
    let target = status(&cluster.nodes[l].client_addr).unwrap().commit_index;
    let deadline = Instant::now() + Duration::from_secs(15);
    for n in &cluster.nodes {
        loop {
            let s = status(&n.client_addr).map(|s| s.applied_index).unwrap_or(0);
            if s >= target {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "n{} stuck at {s} < {target}",
                n.id
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut c = Conn::connect(&n.client_addr).unwrap();
        let local = c
            .call(Operation::Get {
                key: "x".into(),
                mode: Some(ReadMode::Stale),
            })
            .unwrap();
        assert_eq!(
            local,
            Ok(Reply::Value { value: x.clone() }),
            "n{} disagrees",
            n.id
        );
    }
    cluster.assert_all_running();
}

#[test]
fn a_crash_after_apply_before_reply_keeps_the_applied_write() {
    leader_crash_at("after-apply-before-reply", true);
}

#[test]
fn a_crash_after_persist_before_send_on_the_leader_loses_nothing_acknowledged() {
    leader_crash_at("after-persist-before-send", false);
}
