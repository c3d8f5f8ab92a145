//! End-to-end: one client pipelines many writes on one connection under one client id.
//!
//! What this test does: a single-node cluster (so no election can interfere) gets 200 puts
//! written back to back on one connection, each with the next `seq` of one client id, before
//! any response is read. Every put must succeed: the node must hand the requests of one
//! connection to Raft in the order they were sent, or the state machine's per-client
//! de-duplication would refuse a lower `seq` proposed after a higher one.

mod common;

use node::command;
use std::collections::BTreeMap;
use std::time::Duration;

use common::{Cluster, Conn};
use node::protocol::{Operation, Reply, Request, Response, WriteId};

#[test]
fn pipelined_puts_from_one_client_all_succeed() {
    const N: u64 = 200;
    let mut cluster = Cluster::start(1, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let addr = cluster.nodes[leader].client_addr.clone();
    let mut conn = Conn::connect(&addr).unwrap();
    let client = 7;
    for seq in 1..=N {
        let req = Request {
            id: seq,
            op: Operation::Put(command::Put {
                key: format!("k{}", seq % 5),
                value: seq as i64,
                write_id: WriteId { client, seq },
            }),
        };
        conn.write_frame(&serde_json::to_vec(&req).unwrap())
            .unwrap();
    }
    let mut results = BTreeMap::new();
    while results.len() < N as usize {
        let frame = conn.read_frame().unwrap_or_else(|e| {
            panic!(
                "reading responses ({} of {N} so far): {e}{}",
                results.len(),
                cluster.log_hint()
            )
        });
        let resp: Response = serde_json::from_slice(&frame).unwrap();
        results.insert(resp.id, resp.result);
    }
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, r)| !matches!(r, Ok(Reply::Written)))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {N} pipelined puts failed, first: {:?}",
        failed.len(),
        failed.first()
    );
}
