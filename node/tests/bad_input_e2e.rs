//! End-to-end: input a node must survive, from its admin port and from its peer port.
//!
//! - clock admin requests with out-of-range values (an offset beyond a day, a rate outside
//!   [0.01, 100]) are refused with a definite `invalid` error and change nothing; the node
//!   keeps serving afterwards.
//! - a peer message that decodes but carries a snapshot the state machine cannot load, and
//!   a frame that does not decode at all, are dropped: the node stays up and serves.

mod common;

use node::command;
use std::time::{Duration, Instant};

use common::{status, Cluster, Conn};
use node::protocol::{ErrorKind, Operation, ReadMode, Reply, Value, WriteId};
use node::raft::{ClusterConfig, Message, MessageBody, SnapshotMeta};

/// Puts `key = value` through whichever node leads, retrying transient failures.
fn put(cluster: &mut Cluster, key: &str, value: i64, seq: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let leader = cluster.wait_for_leader(Duration::from_secs(15));
        if let Ok(mut c) = Conn::connect(&cluster.nodes[leader].client_addr) {
            let r = c.call(Operation::Put(command::Put {
                key: key.into(),
                value,
                write_id: WriteId { client: 9, seq },
            }));
            if matches!(r, Ok(Ok(Reply::Written))) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("put {key} = {value} never succeeded{}", cluster.log_hint());
}

/// Reads `key` at node `i` by `mode`, retrying transient failures.
fn read(cluster: &Cluster, i: usize, key: &str, mode: ReadMode) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut c) = Conn::connect(&cluster.nodes[i].client_addr) {
            if let Ok(Ok(Reply::Value { value })) = c.call(Operation::Get {
                key: key.into(),
                mode: Some(mode),
            }) {
                return value;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "read of {key} at n{} never succeeded{}",
        i + 1,
        cluster.log_hint()
    );
}

#[test]
fn clock_admin_refuses_out_of_range_values_and_the_node_keeps_working() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(15));
    let follower = (leader + 1) % 3;
    put(&mut cluster, "k", 1, 1);
    let day_ms = 86_400_000.0;
    let bad: [(Option<f64>, Option<f64>); 8] = [
        (Some(-2e22), None),
        (Some(1e300), None),
        (Some(-1e300), None),
        (Some(day_ms + 1.0), None),
        (Some(-day_ms - 1.0), None),
        (None, Some(0.009)),
        (None, Some(100.5)),
        (Some(10.0), Some(1e300)),
    ];
    for i in [follower, leader] {
        let addr = cluster.nodes[i].client_addr.clone();
        let mut c = Conn::connect(&addr).expect("connect");
        for (offset_ms, rate) in bad {
            let r = c.call(Operation::Clock { offset_ms, rate });
            assert!(
                matches!(&r, Ok(Err(e)) if e.definite && e.kind == ErrorKind::Invalid),
                "n{}: offset {offset_ms:?} rate {rate:?}: {r:?}",
                i + 1
            );
        }
        let clock = status(&addr).expect("status").clock;
        assert_eq!((clock.offset_ms, clock.rate), (0.0, 1.0), "n{}", i + 1);
        // The limits themselves are accepted, then undone.
        for (offset_ms, rate) in [(Some(day_ms), Some(0.01)), (Some(0.0), Some(1.0))] {
            let r = c.call(Operation::Clock { offset_ms, rate });
            assert!(matches!(r, Ok(Ok(Reply::Clock(_)))), "{r:?}");
        }
    }
    // Long enough for a stalled Raft thread or an election storm to show.
    std::thread::sleep(Duration::from_secs(2));
    cluster.assert_all_running();
    put(&mut cluster, "k", 2, 2);
    let leader = cluster.wait_for_leader(Duration::from_secs(15));
    assert_eq!(
        read(&cluster, leader, "k", ReadMode::ReadIndex),
        Some(Value::Int(2))
    );
    assert_eq!(
        read(&cluster, follower, "k", ReadMode::Follower),
        Some(Value::Int(2))
    );
    for i in 0..3 {
        let s = status(&cluster.nodes[i].client_addr).expect("status");
        assert!(s.term < 20, "n{}: election storm, term {}", i + 1, s.term);
    }
}

#[test]
fn a_malformed_snapshot_or_frame_on_the_peer_port_is_dropped() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(15));
    put(&mut cluster, "k", 1, 1);
    let follower = (leader + 1) % 3;
    let s = status(&cluster.nodes[follower].client_addr).expect("status");
    let leader_id = cluster.nodes[leader].id;
    let to = cluster.nodes[follower].id;
    // From the follower's own leader, in its term: a snapshot far ahead of its log, in one
    // chunk, whose bytes are no store.
    let msg = Message {
        from: leader_id,
        to,
        term: s.term,
        body: MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index: 1_000_000,
                term: s.term,
                config: ClusterConfig::simple([1, 2, 3]),
            },
            offset: 0,
            data: b"not a snapshot".to_vec(),
            done: true,
        },
    };
    let mut peer = Conn::connect(&cluster.nodes[follower].peer_addr).expect("connect");
    peer.write_frame(&bincode::serialize(&msg).unwrap())
        .expect("send");
    // And a frame that is not a message at all, on another connection.
    let mut peer2 = Conn::connect(&cluster.nodes[follower].peer_addr).expect("connect");
    peer2.write_frame(&[0xff; 64]).expect("send");
    std::thread::sleep(Duration::from_secs(2));
    cluster.assert_all_running();
    put(&mut cluster, "k", 2, 2);
    assert_eq!(
        read(&cluster, follower, "k", ReadMode::Follower),
        Some(Value::Int(2))
    );
    let s2 = status(&cluster.nodes[follower].client_addr).expect("status");
    assert!(
        s2.commit_index < 1_000_000,
        "the bogus snapshot was adopted: {s2:?}"
    );
    cluster.assert_all_running();
}
