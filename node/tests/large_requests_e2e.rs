//! End-to-end: large requests on a three-node cluster.
//!
//! What these tests do: a put too large to travel in one peer frame as a log entry is refused
//! `invalid` (definite) before it is proposed, and the cluster keeps committing; a follower
//! paused (SIGSTOP) while 300 puts with 20 KiB keys are committed is resumed and catches up,
//! which needs AppendEntries batches bounded in bytes (256 such entries exceed a frame).

mod common;

use node::command;
use std::time::{Duration, Instant};

use common::{status, Cluster, Conn};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use node::protocol::{ErrorKind, Operation, Reply, Request, Response, WriteId, MAX_FRAME_BYTES};

fn put(key: String, value: i64, client: u64, seq: u64) -> Operation {
    Operation::Put(command::Put {
        key,
        value,
        write_id: WriteId { client, seq },
    })
}

#[test]
fn put_too_large_for_one_entry_is_refused_invalid_and_writes_go_on() {
    let mut cluster = Cluster::start(3, &[]);
    let l = cluster.wait_for_leader(Duration::from_secs(20));
    let mut conn = Conn::connect(&cluster.nodes[l].client_addr).unwrap();
    // The largest request that still fits one client frame.
    let overhead = serde_json::to_vec(&Request {
        id: 1,
        op: put(String::new(), 1, 9, 1),
    })
    .unwrap()
    .len();
    let key = "k".repeat(MAX_FRAME_BYTES - overhead);
    let reply = conn.call(put(key, 1, 9, 1)).unwrap();
    match reply {
        Err(e) => assert!(
            e.kind == ErrorKind::Invalid && e.definite,
            "expected a definite invalid, got {e:?}{}",
            cluster.log_hint()
        ),
        Ok(r) => panic!("an oversized put was accepted: {r:?}"),
    }
    assert_eq!(
        conn.call(put("small".into(), 2, 9, 2)).unwrap(),
        Ok(Reply::Written),
        "{}",
        cluster.log_hint()
    );
}

#[test]
fn paused_follower_catches_up_after_300_puts_with_20_kib_keys() {
    const N: u64 = 300;
    let mut cluster = Cluster::start(3, &[]);
    let l = cluster.wait_for_leader(Duration::from_secs(20));
    let f = (0..3).find(|&i| i != l).unwrap();
    let pid = Pid::from_raw(cluster.nodes[f].child.as_ref().unwrap().id() as i32);
    kill(pid, Signal::SIGSTOP).unwrap();
    let mut conn = Conn::connect(&cluster.nodes[l].client_addr).unwrap();
    for seq in 1..=N {
        let mut key = format!("{seq:06}-");
        key.push_str(&"x".repeat(20 * 1024));
        let req = Request {
            id: seq,
            op: put(key, seq as i64, 5, seq),
        };
        conn.write_frame(&serde_json::to_vec(&req).unwrap())
            .unwrap();
    }
    for _ in 0..N {
        let frame = conn.read_frame().unwrap_or_else(|e| {
            kill(pid, Signal::SIGCONT).unwrap();
            panic!("reading responses: {e}{}", cluster.log_hint())
        });
        let r: Response = serde_json::from_slice(&frame).unwrap();
        assert_eq!(r.result, Ok(Reply::Written), "write {}", r.id);
    }
    let target = status(&cluster.nodes[l].client_addr).unwrap().commit_index;
    kill(pid, Signal::SIGCONT).unwrap();
    let started = Instant::now();
    loop {
        if status(&cluster.nodes[f].client_addr).is_ok_and(|s| s.applied_index >= target) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the resumed follower did not apply index {target} within 30 s{}",
            cluster.log_hint()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
