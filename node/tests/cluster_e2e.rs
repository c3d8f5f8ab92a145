//! End-to-end: three real `node` processes on loopback.
//!
//! What this test does: a leader emerges; put/get/cas work through the client protocol; the
//! leader is SIGKILLed, a new leader is elected and every acknowledged write reads back; the
//! killed node restarts on its data directory and catches up; malformed, truncated and
//! oversized frames on the client and peer ports get an error or a closed connection while
//! the node keeps serving others.

mod common;

use node::command;
use std::time::{Duration, Instant};

use common::{status, Cluster, Conn};
use node::protocol::{ErrorKind, Operation, ReadMode, Reply, Value, WriteId};

/// Sends a write to the cluster's leader, following "not leader" hints (bounded).
fn write(cluster: &Cluster, op: impl Fn() -> Operation) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut addr = cluster.nodes[0].client_addr.clone();
    let mut k = 0usize;
    while Instant::now() < deadline {
        if let Ok(mut c) = Conn::connect(&addr) {
            match c.call(op()) {
                Ok(Ok(r)) => return r,
                Ok(Err(e)) => {
                    if let ErrorKind::NotLeader {
                        leader_addr: Some(a),
                        ..
                    } = e.kind
                    {
                        addr = a;
                        continue;
                    }
                }
                Err(_) => {}
            }
        }
        k += 1;
        let live: Vec<_> = cluster.nodes.iter().filter(|n| n.child.is_some()).collect();
        addr = live[k % live.len()].client_addr.clone();
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("write did not succeed within 10 s{}", cluster.log_hint());
}

fn read(addr: &str, key: &str, mode: ReadMode) -> Option<Value> {
    let mut c = Conn::connect(addr).unwrap();
    match c
        .call(Operation::Get {
            key: key.into(),
            mode: Some(mode),
        })
        .unwrap()
    {
        Ok(Reply::Value { value }) => value,
        other => panic!("read {key} via {mode}: {other:?}"),
    }
}

#[test]
fn three_nodes_survive_leader_kill_and_bad_input() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(15));
    let laddr = cluster.nodes[leader].client_addr.clone();

    // put / get / cas through the client protocol.
    let mut seq = 0;
    let mut wid = || {
        seq += 1;
        WriteId { client: 1, seq }
    };
    let mut acked = Vec::new();
    for i in 0..20 {
        let w = wid();
        let key = format!("k{}", i % 4);
        let r = write(&cluster, || {
            Operation::Put(command::Put {
                key: key.clone(),
                value: i,
                write_id: w,
            })
        });
        assert_eq!(r, Reply::Written);
        acked.retain(|(k, _): &(String, i64)| k != &key);
        acked.push((key, i));
    }
    assert_eq!(read(&laddr, "k3", ReadMode::Log), Some(Value::Int(19)));
    let w = wid();
    let r = write(&cluster, || {
        Operation::Cas(command::Cas {
            key: "k3".into(),
            expected: Some(19),
            new: 100,
            write_id: w,
        })
    });
    assert_eq!(
        r,
        Reply::Cas {
            swapped: true,
            current: Some(19)
        }
    );
    let w = wid();
    let r = write(&cluster, || {
        Operation::Cas(command::Cas {
            key: "k3".into(),
            expected: Some(19),
            new: 101,
            write_id: w,
        })
    });
    assert!(matches!(r, Reply::Cas { swapped: false, .. }), "{r:?}");
    let w = wid();
    let r = write(&cluster, || {
        Operation::Cas(command::Cas {
            key: "fresh".into(),
            expected: None,
            new: 1,
            write_id: w,
        })
    });
    assert!(matches!(r, Reply::Cas { swapped: true, .. }), "{r:?}");
    acked.retain(|(k, _)| k != "k3");
    acked.push(("k3".into(), 100));

    // Kill the leader; a new one is elected and every acknowledged write reads back.
    cluster.kill(leader);
    let new_leader = cluster.wait_for_leader(Duration::from_secs(15));
    assert_ne!(new_leader, leader);
    let naddr = cluster.nodes[new_leader].client_addr.clone();
    for (k, v) in &acked {
        assert_eq!(
            read(&naddr, k, ReadMode::Log),
            Some(Value::Int(*v)),
            "key {k}"
        );
    }
    let w = wid();
    write(&cluster, || {
        Operation::Put(command::Put {
            key: "after".into(),
            value: 7,
            write_id: w,
        })
    });

    // Restart the killed node on its data directory: it catches up.
    cluster.spawn(leader);
    let target = status(&naddr).unwrap().commit_index;
    let start = Instant::now();
    loop {
        if let Ok(s) = status(&cluster.nodes[leader].client_addr) {
            if s.applied_index >= target {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "restarted node did not catch up to {target}{}",
            cluster.log_hint()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        read(&cluster.nodes[leader].client_addr, "after", ReadMode::Stale),
        Some(Value::Int(7))
    );

    // Bad input on the client port: malformed JSON gets an error and the connection goes on.
    let mut c = Conn::connect(&naddr).unwrap();
    c.write_frame(b"{not json").unwrap();
    let resp: serde_json::Value = serde_json::from_slice(&c.read_frame().unwrap()).unwrap();
    assert!(resp["result"]["Err"].is_object(), "{resp}");
    assert!(matches!(
        c.call(Operation::Status),
        Ok(Ok(Reply::Status(_)))
    ));
    // Oversized length prefix: the node closes the connection.
    let mut c = Conn::connect(&naddr).unwrap();
    c.write_raw(&u32::MAX.to_be_bytes()).unwrap();
    let closed = c.read_frame().and_then(|_| c.read_frame());
    assert!(
        closed.is_err(),
        "oversized frame should close the connection"
    );
    // Truncated frame then hang-up.
    let mut c = Conn::connect(&naddr).unwrap();
    c.write_raw(&[0, 0, 0, 100, b'{']).unwrap();
    drop(c);
    // Garbage on every peer port.
    for n in &cluster.nodes {
        if let Ok(mut c) = Conn::connect(&n.peer_addr) {
            let _ = c.write_frame(&[0xff; 64]);
            let _ = c.write_raw(&u32::MAX.to_be_bytes());
        }
    }
    // The cluster keeps serving.
    let w = wid();
    assert_eq!(
        write(&cluster, || Operation::Put(command::Put {
            key: "still".into(),
            value: 1,
            write_id: w,
        })),
        Reply::Written
    );
    for i in 0..cluster.nodes.len() {
        assert!(
            cluster.is_running(i),
            "n{} died on bad input{}",
            i + 1,
            cluster.log_hint()
        );
    }
}
