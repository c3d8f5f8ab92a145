//! A node survives any input on its ports: a three-node cluster survives seeded random
//! frames on a node's client and peer ports, plus the inputs known to have hurt nodes
//! before (an oversized put, bad clock values, an undecodable snapshot, pipelined puts).
//!
//! Frames: random lengths (0, small, past the 4 MiB limit, up to `u32::MAX`), random bytes,
//! truncated frames (a connection closed mid-frame), length prefixes with no body (which
//! swallow the frames after them), mutated valid encodings, and valid encodings of every
//! client request and every peer message with out-of-range or garbage fields. They go to the
//! leader's two ports over several concurrent connections (a connection the node closes is
//! replaced). Afterwards every node must still run, the cluster must commit a put and answer
//! a get, and each node's peak resident set (`VmHWM`) must stay under 200 MB.
//!
//! `NODE_FUZZ_FRAMES` sets the frames per port (default 50,000, the amount a node must
//! survive: about 10 s in a debug build), `NODE_FUZZ_SEED` the seed (default: the time;
//! printed either way), and `NODE_BIN` a node binary other than this build's (a release
//! build).
//!
//! Peer messages a real member would accept as its leader's (appends, heartbeats and
//! snapshots of the current term) are not forged here, apart from the one undecodable
//! snapshot: Raft trusts its members, and a forged leader could legitimately rewrite the
//! log or the configuration. Terms are otherwise random up to `u64::MAX`.

mod common;

use node::command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{memory_kib, status, Cluster, Conn};
use node::protocol::{
    MemberAddrs, Operation, ReadMode, Reply, Request, Value, WriteId, MAX_FRAME_BYTES,
};
use node::raft::{ClusterConfig, Entry, EntryPayload, Message, MessageBody, SnapshotMeta};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Concurrent connections per port.
const WORKERS: u64 = 6;
/// The whole fuzzing phase must end within this (a bound, not an expectation).
const FUZZ_LIMIT: Duration = Duration::from_secs(600);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// What the generators send next on a connection.
struct Gen {
    /// The bytes to write (one or more frames, or a fragment).
    bytes: Vec<u8>,
    /// How many frames that counts for.
    frames: u64,
    /// Close the connection after writing (the node closes it, or it is left mid-frame).
    last: bool,
}

fn one(bytes: Vec<u8>, last: bool) -> Gen {
    Gen {
        bytes,
        frames: 1,
        last,
    }
}

fn random_bytes(rng: &mut ChaCha8Rng, max: usize) -> Vec<u8> {
    let n = rng.gen_range(0..=max);
    (0..n).map(|_| rng.gen()).collect()
}

fn any_u64(rng: &mut ChaCha8Rng) -> u64 {
    *[
        0,
        1,
        2,
        3,
        7,
        u32::MAX as u64,
        u64::MAX - 1,
        u64::MAX,
        rng.gen(),
    ]
    .choose(rng)
    .unwrap()
}

fn any_i64(rng: &mut ChaCha8Rng) -> i64 {
    *[0, 1, -1, i64::MIN, i64::MAX, rng.gen()]
        .choose(rng)
        .unwrap()
}

fn any_f64(rng: &mut ChaCha8Rng) -> f64 {
    *[
        0.0,
        -0.0,
        1.0,
        -1.0,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        1e300,
        -1e300,
        86_400_001.0,
        rng.gen_range(-1e12..1e12),
    ]
    .choose(rng)
    .unwrap()
}

fn any_key(rng: &mut ChaCha8Rng) -> String {
    match rng.gen_range(0..10) {
        0 => String::new(),
        1 => "\u{0}\u{ffff}é🦀".repeat(rng.gen_range(1..50)),
        2 => "k".repeat(rng.gen_range(1000..20_000)),
        _ => format!("k{}", rng.gen_range(0..20)),
    }
}

fn any_write_id(rng: &mut ChaCha8Rng) -> WriteId {
    WriteId {
        client: *[1, 2, 3, 0, u64::MAX].choose(rng).unwrap(),
        seq: any_u64(rng),
    }
}

/// A valid client request with random, often out-of-range, fields. Membership changes
/// always name a node that does not exist (so they can never complete and shrink the
/// cluster); clock changes are undone after the fuzzing.
fn any_operation(rng: &mut ChaCha8Rng) -> Operation {
    match rng.gen_range(0..9) {
        0 => Operation::Get {
            key: any_key(rng),
            mode: ReadMode::ALL.choose(rng).copied().filter(|_| rng.gen()),
        },
        1 | 2 => Operation::Put(command::Put {
            key: any_key(rng),
            value: any_i64(rng),
            write_id: any_write_id(rng),
        }),
        3 => Operation::Cas(command::Cas {
            key: any_key(rng),
            expected: rng.gen::<bool>().then(|| any_i64(rng)),
            new: any_i64(rng),
            write_id: any_write_id(rng),
        }),
        4 => Operation::Add(command::Add {
            key: any_key(rng),
            element: any_i64(rng),
            write_id: any_write_id(rng),
        }),
        5 => Operation::Status,
        6 => Operation::Clock {
            offset_ms: rng.gen::<bool>().then(|| any_f64(rng)),
            rate: rng.gen::<bool>().then(|| any_f64(rng)),
        },
        7 => {
            let mut voters: Vec<u64> = (0..rng.gen_range(0..6)).map(|_| any_u64(rng)).collect();
            voters.push(*[0, 4, 99, u64::MAX].choose(rng).unwrap());
            let mut addrs = Vec::new();
            for &id in &voters {
                if rng.gen() {
                    let peer = ["", "x", "127.0.0.1:1", "[::1]:99999"].choose(rng).unwrap();
                    let via = String::from_utf8_lossy(&random_bytes(rng, 8)).into_owned();
                    addrs.push(MemberAddrs {
                        id,
                        peer: peer.to_string(),
                        client: "nowhere".into(),
                        peer_via: vec![(any_u64(rng), via)],
                    });
                }
            }
            Operation::ChangeMembership { voters, addrs }
        }
        _ => Operation::Members,
    }
}

fn mutate(rng: &mut ChaCha8Rng, mut v: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.gen_range(1..5) {
        if v.is_empty() {
            break;
        }
        let i = rng.gen_range(0..v.len());
        match rng.gen_range(0..4) {
            0 => v[i] = rng.gen(),
            1 => v.truncate(i),
            2 => v.insert(i, rng.gen()),
            _ => {
                v.remove(i);
            }
        }
    }
    v
}

/// The next client-port input.
fn client_gen(rng: &mut ChaCha8Rng, seq: &mut u64) -> Gen {
    match rng.gen_range(0..1000) {
        0..=149 => one(framed(&random_bytes(rng, 300)), false),
        150..=199 => one(framed(&[]), false),
        200..=229 => {
            let len = rng.gen_range(MAX_FRAME_BYTES as u32 + 1..=u32::MAX);
            one(len.to_be_bytes().to_vec(), true)
        }
        // A prefix with no body: the frames that follow become its body.
        230..=259 => one(rng.gen_range(0u32..65_536).to_be_bytes().to_vec(), false),
        // Truncated: a large frame, part of it, then the connection closes.
        260..=279 => {
            let len = rng.gen_range(100_000..=MAX_FRAME_BYTES);
            let mut v = (len as u32).to_be_bytes().to_vec();
            v.extend(random_bytes(rng, 65_536));
            one(v, true)
        }
        280..=479 => {
            let req = serde_json::to_vec(&Request {
                id: any_u64(rng),
                op: any_operation(rng),
            })
            .unwrap();
            one(framed(&mutate(rng, req)), false)
        }
        // Pipelined puts to a few keys.
        480..=579 => {
            let n = rng.gen_range(10..100);
            let mut bytes = Vec::new();
            for _ in 0..n {
                *seq += 1;
                let req = Request {
                    id: *seq,
                    op: Operation::Put(command::Put {
                        key: format!("p{}", rng.gen_range(0..5)),
                        value: *seq as i64,
                        write_id: WriteId {
                            client: 1_000 + rng.gen_range(0..3),
                            seq: *seq,
                        },
                    }),
                };
                bytes.extend(framed(&serde_json::to_vec(&req).unwrap()));
            }
            Gen {
                bytes,
                frames: n,
                last: false,
            }
        }
        // A large put, rarely: mostly accepted (to a few keys), sometimes just too large.
        580..=581 => {
            let size = if rng.gen() {
                rng.gen_range(100_000..300_000)
            } else {
                MAX_FRAME_BYTES - 200
            };
            let req = Request {
                id: 1,
                op: Operation::Put(command::Put {
                    key: format!("big{}{}", rng.gen_range(0..3), "b".repeat(size)),
                    value: 1,
                    write_id: any_write_id(rng),
                }),
            };
            one(framed(&serde_json::to_vec(&req).unwrap()), false)
        }
        _ => {
            let req = Request {
                id: any_u64(rng),
                op: any_operation(rng),
            };
            one(framed(&serde_json::to_vec(&req).unwrap()), false)
        }
    }
}

fn any_config(rng: &mut ChaCha8Rng) -> ClusterConfig {
    ClusterConfig {
        voters: (0..rng.gen_range(0..5)).map(|_| any_u64(rng)).collect(),
        outgoing: (0..rng.gen_range(0..3)).map(|_| any_u64(rng)).collect(),
        context: random_bytes(rng, 64),
    }
}

/// A peer message to `to` with random fields. Messages a member accepts from its leader
/// carry term 0 (always stale); see the module documentation.
fn any_message(rng: &mut ChaCha8Rng, to: u64) -> Message {
    let body = match rng.gen_range(0..12) {
        0 => MessageBody::AppendEntries {
            prev_index: any_u64(rng),
            prev_term: any_u64(rng),
            entries: (0..rng.gen_range(0..4))
                .map(|_| Entry {
                    term: any_u64(rng),
                    index: any_u64(rng),
                    payload: match rng.gen_range(0..3) {
                        0 => EntryPayload::Noop,
                        1 => EntryPayload::Command(random_bytes(rng, 100)),
                        _ => EntryPayload::Config(any_config(rng)),
                    },
                })
                .collect(),
            commit: any_u64(rng),
        },
        1 => MessageBody::AppendResponse {
            success: rng.gen(),
            index: any_u64(rng),
            hint_term: any_u64(rng),
            hint_index: any_u64(rng),
        },
        2 => MessageBody::RequestVote {
            pre_vote: rng.gen(),
            last_index: any_u64(rng),
            last_term: any_u64(rng),
        },
        3 => MessageBody::VoteResponse {
            pre_vote: rng.gen(),
            granted: rng.gen(),
        },
        4 => MessageBody::Heartbeat {
            commit: any_u64(rng),
            round: any_u64(rng),
        },
        5 => MessageBody::HeartbeatResponse {
            round: any_u64(rng),
        },
        6 => MessageBody::ReadIndexRequest { ctx: any_u64(rng) },
        7 => MessageBody::ReadIndexResponse {
            ctx: any_u64(rng),
            index: rng.gen::<bool>().then(|| any_u64(rng)),
        },
        8 => MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index: any_u64(rng),
                term: any_u64(rng),
                config: any_config(rng),
            },
            offset: any_u64(rng),
            data: random_bytes(rng, 200),
            done: rng.gen(),
        },
        _ => MessageBody::SnapshotResponse {
            index: any_u64(rng),
            next_offset: any_u64(rng),
        },
    };
    let term = if body.is_from_leader() {
        0
    } else {
        any_u64(rng)
    };
    Message {
        from: *[0, 1, 2, 3, 4, 99, u64::MAX].choose(rng).unwrap(),
        to,
        term,
        body,
    }
}

/// The next peer-port input for node `to`.
fn peer_gen(rng: &mut ChaCha8Rng, to: u64) -> Gen {
    match rng.gen_range(0..1000) {
        0..=99 => one(framed(&random_bytes(rng, 300)), true),
        100..=129 => one(framed(&[]), true),
        130..=159 => {
            let len = rng.gen_range(MAX_FRAME_BYTES as u32 + 1..=u32::MAX);
            one(len.to_be_bytes().to_vec(), true)
        }
        160..=189 => {
            let len = rng.gen_range(100_000..=MAX_FRAME_BYTES);
            let mut v = (len as u32).to_be_bytes().to_vec();
            v.extend(random_bytes(rng, 65_536));
            one(v, true)
        }
        190..=219 => one(rng.gen_range(0u32..65_536).to_be_bytes().to_vec(), false),
        220..=299 => {
            let m = bincode::serialize(&any_message(rng, to)).unwrap();
            let cut = rng.gen_range(0..m.len());
            one(framed(&m[..cut]), true)
        }
        300..=399 => {
            let m = bincode::serialize(&any_message(rng, to)).unwrap();
            one(framed(&mutate(rng, m)), false)
        }
        400..=419 => {
            let to = any_u64(rng);
            let m = bincode::serialize(&any_message(rng, to)).unwrap();
            one(framed(&m), true)
        }
        _ => {
            let m = bincode::serialize(&any_message(rng, to)).unwrap();
            one(framed(&m), false)
        }
    }
}

/// Sends `frames` generated inputs to `addr` over one connection at a time (replacing each
/// the node closes), draining whatever the node answers.
async fn worker(
    addr: String,
    seed: u64,
    frames: u64,
    mut gen: impl FnMut(&mut ChaCha8Rng) -> Gen,
    sent: Arc<AtomicU64>,
    conns: Arc<AtomicU64>,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Instant::now();
    let mut done = 0;
    let mut refused = 0;
    while done < frames {
        assert!(
            start.elapsed() < FUZZ_LIMIT,
            "seed {seed}: fuzzing {addr} took too long"
        );
        let stream = match TcpStream::connect(&addr).await {
            Ok(s) => s,
            Err(e) => {
                refused += 1;
                assert!(
                    refused < 200,
                    "seed {seed}: {addr} refuses connections: {e}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        refused = 0;
        conns.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let (mut r, mut w) = stream.into_split();
        // Reads (and drops) the answers until the node closes the connection.
        let drain = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        });
        let per_conn = rng.gen_range(1..=300);
        for _ in 0..per_conn {
            let g = gen(&mut rng);
            // The node may stop reading (budget) or close: a write that cannot finish in
            // time ends the connection.
            let wrote = tokio::time::timeout(Duration::from_secs(20), w.write_all(&g.bytes)).await;
            if !matches!(wrote, Ok(Ok(()))) {
                break;
            }
            done += g.frames;
            sent.fetch_add(g.frames, Ordering::Relaxed);
            if g.last || done >= frames {
                break;
            }
        }
        // The node has read everything and answered every request (each within its request
        // timeout) once it closes: wait for that, so the figures count frames processed.
        let _ = w.shutdown().await;
        drop(w);
        assert!(
            tokio::time::timeout(Duration::from_secs(30), drain)
                .await
                .is_ok(),
            "seed {seed}: {addr} kept a finished connection open for 30 s"
        );
    }
}

/// Retries `op` against any node for up to 30 s until it returns `Some`.
fn until<T>(cluster: &Cluster, mut op: impl FnMut(&mut Conn) -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for n in &cluster.nodes {
            if let Ok(mut c) = Conn::connect(&n.client_addr) {
                if let Some(t) = op(&mut c) {
                    return Some(t);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// The specific inputs: an oversized put, bad clock values, an undecodable snapshot from
/// the real leader, and 1,000 pipelined puts on one connection.
fn specific_inputs(cluster: &mut Cluster, leader: usize, seed: u64) {
    let addr = cluster.nodes[leader].client_addr.clone();
    let mut c = Conn::connect(&addr).unwrap();
    let key = "o".repeat(MAX_FRAME_BYTES - 200);
    let r = c.call(Operation::Put(command::Put {
        key,
        value: 1,
        write_id: WriteId { client: 77, seq: 1 },
    }));
    assert!(matches!(r, Ok(Err(_))), "seed {seed}: oversized put: {r:?}");
    for (offset_ms, rate) in [
        (Some(-2e22), None),
        (Some(1e300), None),
        (None, Some(0.0)),
        (None, Some(-1.0)),
        (None, Some(1e300)),
        (Some(f64::MAX), Some(f64::MIN_POSITIVE)),
    ] {
        let r = c.call(Operation::Clock { offset_ms, rate });
        assert!(
            matches!(r, Ok(Err(_))),
            "seed {seed}: clock {offset_ms:?} {rate:?}: {r:?}"
        );
    }
    // 1,000 pipelined puts, then every answer.
    let mut burst = Vec::new();
    for i in 1..=1000u64 {
        let req = Request {
            id: i,
            op: Operation::Put(command::Put {
                key: format!("pipe{}", i % 7),
                value: i as i64,
                write_id: WriteId { client: 78, seq: i },
            }),
        };
        burst.extend(framed(&serde_json::to_vec(&req).unwrap()));
    }
    c.write_raw(&burst).unwrap();
    let mut written = 0;
    for _ in 0..1000 {
        let resp: node::protocol::Response =
            serde_json::from_slice(&c.read_frame().unwrap()).unwrap();
        if matches!(resp.result, Ok(Reply::Written)) {
            written += 1;
        }
    }
    assert!(
        written > 900,
        "seed {seed}: only {written} of 1000 pipelined puts written"
    );
    // An undecodable snapshot from the leader, in its term, to a follower.
    let follower = (leader + 1) % cluster.nodes.len();
    let s = status(&cluster.nodes[follower].client_addr).unwrap();
    let msg = Message {
        from: cluster.nodes[leader].id,
        to: cluster.nodes[follower].id,
        term: s.term,
        body: MessageBody::InstallSnapshot {
            meta: SnapshotMeta {
                index: s.commit_index + 1_000_000,
                term: s.term,
                config: ClusterConfig::simple([1, 2, 3]),
            },
            offset: 0,
            data: b"no snapshot at all".to_vec(),
            done: true,
        },
    };
    let mut p = Conn::connect(&cluster.nodes[follower].peer_addr).unwrap();
    p.write_frame(&bincode::serialize(&msg).unwrap()).unwrap();
}

#[test]
fn random_frames_on_both_ports_neither_kill_a_node_nor_bloat_it() {
    let seed = env_u64("NODE_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let frames = env_u64("NODE_FUZZ_FRAMES").unwrap_or(50_000);
    println!("port fuzz: seed {seed}, {frames} frames per port (NODE_FUZZ_SEED, NODE_FUZZ_FRAMES)");
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let pids: Vec<u32> = cluster
        .nodes
        .iter()
        .map(|n| n.child.as_ref().unwrap().id())
        .collect();
    let start = Instant::now();

    specific_inputs(&mut cluster, leader, seed);

    let target = cluster.nodes[leader].id;
    let client_addr = cluster.nodes[leader].client_addr.clone();
    let peer_addr = cluster.nodes[leader].peer_addr.clone();
    let sent = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let conns = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The client port first, while the leader is undisturbed (so requests reach the
    // proposal paths), then the peer port (whose random terms depose leaders).
    let mut failed = Vec::new();
    let mut phase_secs = [0.0; 2];
    for (port, phase) in [0usize, 1].into_iter().zip(phase_secs.iter_mut()) {
        let phase_start = Instant::now();
        failed.extend(rt.block_on(async {
            let mut tasks = Vec::new();
            for w in 0..WORKERS {
                let share = frames / WORKERS + u64::from(w < frames % WORKERS);
                let (sent, conns) = (sent[port].clone(), conns[port].clone());
                tasks.push(if port == 0 {
                    let mut seq = w << 40;
                    tokio::spawn(worker(
                        client_addr.clone(),
                        seed ^ (2 * w + 1),
                        share,
                        move |rng| client_gen(rng, &mut seq),
                        sent,
                        conns,
                    ))
                } else {
                    tokio::spawn(worker(
                        peer_addr.clone(),
                        seed ^ ((2 * w + 2) << 32),
                        share,
                        move |rng| peer_gen(rng, target),
                        sent,
                        conns,
                    ))
                });
            }
            let mut failed = Vec::new();
            for t in tasks {
                if let Err(e) = t.await {
                    failed.push(e.to_string());
                }
            }
            failed
        }));
        *phase = phase_start.elapsed().as_secs_f64();
    }
    drop(rt);
    let fuzz_time = start.elapsed();
    assert!(
        failed.is_empty(),
        "seed {seed}: fuzzing workers failed: {failed:?}{}",
        cluster.log_hint()
    );

    cluster.assert_all_running();
    // Undo any clock change the fuzzing made, then the cluster must still work.
    for n in &cluster.nodes {
        let mut c = Conn::connect(&n.client_addr).expect("connect");
        let r = c.call(Operation::Clock {
            offset_ms: Some(0.0),
            rate: Some(1.0),
        });
        assert!(matches!(r, Ok(Ok(_))), "seed {seed}: clock reset: {r:?}");
    }
    let put = until(&cluster, |c| {
        matches!(
            c.call(Operation::Put(command::Put {
                key: "after".into(),
                value: 42,
                write_id: WriteId { client: 5, seq: 1 },
            })),
            Ok(Ok(Reply::Written))
        )
        .then_some(())
    });
    assert!(
        put.is_some(),
        "seed {seed}: no put committed after the fuzzing{}",
        cluster.log_hint()
    );
    let got = until(&cluster, |c| {
        match c.call(Operation::Get {
            key: "after".into(),
            mode: Some(ReadMode::ReadIndex),
        }) {
            Ok(Ok(Reply::Value { value })) => Some(value),
            _ => None,
        }
    });
    assert_eq!(
        got,
        Some(Some(Value::Int(42))),
        "seed {seed}{}",
        cluster.log_hint()
    );
    cluster.assert_all_running();

    let mut worst = 0;
    for (i, pid) in pids.iter().enumerate() {
        let (now, peak) = memory_kib(*pid);
        println!(
            "n{}: peak RSS {} MiB, now {} MiB",
            i + 1,
            peak >> 10,
            now >> 10
        );
        worst = worst.max(peak);
    }
    println!(
        "seed {seed}: sent {} client frames over {} connections and {} peer frames over {} \
         connections to n{target} in {:.1} s (client port {:.1} s, peer port {:.1} s)",
        sent[0].load(Ordering::Relaxed),
        conns[0].load(Ordering::Relaxed),
        sent[1].load(Ordering::Relaxed),
        conns[1].load(Ordering::Relaxed),
        fuzz_time.as_secs_f64(),
        phase_secs[0],
        phase_secs[1],
    );
    assert!(
        worst < 200 * 1000,
        "seed {seed}: a node's peak RSS was {} MB (limit 200 MB)",
        worst / 1000
    );
}

/// Found by the fuzzing above (seed 3): a vote request at term `u64::MAX` made the node
/// vote in that term; its next campaign could not raise the term (it saturates), voted
/// again in the same term, and storage refused the hard state: the node exited.
#[test]
fn a_peer_message_at_the_largest_term_does_not_stop_the_node() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    // Each node: a response at the largest term (it steps down to that term, with no
    // leader), then a vote request in that term from a node that does not exist.
    for n in &cluster.nodes {
        let mut p = Conn::connect(&n.peer_addr).unwrap();
        for body in [
            MessageBody::AppendResponse {
                success: false,
                index: 0,
                hint_term: 0,
                hint_index: 0,
            },
            MessageBody::RequestVote {
                pre_vote: false,
                last_index: u64::MAX,
                last_term: u64::MAX,
            },
        ] {
            let msg = Message {
                from: 99,
                to: n.id,
                term: u64::MAX,
                body,
            };
            p.write_frame(&bincode::serialize(&msg).unwrap()).unwrap();
        }
    }
    // Several election timeouts (300-600 ms) for the node to campaign.
    std::thread::sleep(Duration::from_secs(4));
    cluster.assert_all_running();
    let put = until(&cluster, |c| {
        matches!(
            c.call(Operation::Put(command::Put {
                key: "k".into(),
                value: 1,
                write_id: WriteId { client: 5, seq: 1 },
            })),
            Ok(Ok(Reply::Written))
        )
        .then_some(())
    });
    assert!(put.is_some(), "no put committed{}", cluster.log_hint());
    let s = status(&cluster.nodes[leader].client_addr).unwrap();
    assert!(s.term < 1 << 32, "the forged term was adopted: {s:?}");
    cluster.assert_all_running();
}
