//! Clients and the workload driver against fake nodes: recorded histories follow the spec,
//! `fail` only on certainty, `info` with fresh process ids, leader hints are followed, the
//! seed fixes the intended operations, the set workload's final reads.

#[path = "clients_support.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use node::protocol::{ErrorKind, ErrorReply, ReadMode};
use support::{fake_cluster, seed, validate};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use workloads::client::{Client, ClientConfig, Outcome, ProcessIds};
use workloads::driver::{final_set_reads, run_workload, LargePut, WorkloadConfig, LARGE_PUT_KEY};
use workloads::fake_node::Behaviour;
use workloads::generator::{IntendedOp, WorkloadKind};
use workloads::history::{read_events, Event, EventType, Process};
use workloads::recorder::Recorder;

fn completions(events: &[Event]) -> impl Iterator<Item = &Event> {
    events
        .iter()
        .filter(|e| e.kind != EventType::Invoke && e.process != Process::Nemesis)
}

fn write(key: &str, value: i64) -> IntendedOp {
    IntendedOp::Write {
        key: key.into(),
        value,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_run_against_a_fake_cluster_is_a_valid_history() {
    let seed = seed(11);
    let cluster = fake_cluster(3).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let rec = Recorder::create(&path).unwrap();
    let mut modes = workloads::generator::parse_read_modes("all").unwrap();
    modes.push(ReadMode::Stale);
    let cfg = WorkloadConfig {
        concurrency: 10,
        rate: 400.0,
        keys: 3,
        read_modes: modes,
        seed,
        ..WorkloadConfig::default()
    };
    let deadline = Instant::now() + Duration::from_millis(1500);
    let summary = run_workload(
        &cfg,
        &cluster.addrs,
        &rec,
        deadline,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    println!("{summary:?}");
    drop(rec);
    validate(&path, 100);
    let events = read_events(&path).unwrap();
    assert_eq!(summary.info, 0, "seed {seed}: a healthy fake gives no info");
    for e in completions(&events) {
        match e.kind {
            EventType::Fail => assert_eq!(
                (e.f.as_str(), e.error.as_deref()),
                ("cas", Some("cas mismatch")),
                "seed {seed}: {e:?}"
            ),
            EventType::Ok if e.f != "read" => {
                assert_eq!(
                    e.node.as_deref(),
                    Some("n1"),
                    "seed {seed}: writes reach the leader"
                )
            }
            EventType::Ok => {
                let mode = e.read_mode.as_deref().unwrap();
                if mode == "follower" || mode == "stale" {
                    // Sent to the client's bound node, whichever it is.
                } else {
                    assert_eq!(e.node.as_deref(), Some("n1"), "seed {seed}: {e:?}");
                }
            }
            _ => panic!("seed {seed}: unexpected {e:?}"),
        }
    }
    let follower_nodes: HashSet<_> = completions(&events)
        .filter(|e| e.read_mode.as_deref() == Some("follower"))
        .filter_map(|e| e.node.clone())
        .collect();
    assert!(follower_nodes.len() >= 2, "seed {seed}: {follower_nodes:?}");
}

#[tokio::test]
async fn timeouts_are_info_and_each_info_retires_its_process() {
    let seed = seed(5);
    let cluster = fake_cluster(1).await;
    cluster.nodes[0].set_behaviour(Behaviour {
        delay: Duration::from_millis(400),
        ..Behaviour::default()
    });
    let rec = Recorder::in_memory();
    let cfg = WorkloadConfig {
        concurrency: 2,
        rate: 40.0,
        seed,
        client: ClientConfig {
            op_timeout: Duration::from_millis(100),
            ..ClientConfig::default()
        },
        ..WorkloadConfig::default()
    };
    let deadline = Instant::now() + Duration::from_millis(800);
    let started = Instant::now();
    let s = run_workload(
        &cfg,
        &cluster.addrs,
        &rec,
        deadline,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(800 + 100 + 1000),
        "in-flight operations end within op_timeout after the deadline"
    );
    let events = rec.events();
    assert!(s.info >= 4, "seed {seed}: {s:?}");
    assert_eq!(s.ops, s.info, "seed {seed}: every op times out: {s:?}");
    let mut retired = HashSet::new();
    for e in &events {
        let Process::Client(p) = e.process else {
            continue;
        };
        assert!(!retired.contains(&p), "seed {seed}: process {p} reused");
        if e.kind == EventType::Info {
            assert_eq!(e.error.as_deref(), Some("timeout"));
            retired.insert(p);
        }
    }
    // Jepsen's numbering: slot i continues as i + concurrency, i + 2×concurrency, ...
    let mut procs: Vec<u64> = retired.into_iter().collect();
    procs.sort_unstable();
    assert_eq!(&procs[..4], &[0, 1, 2, 3], "seed {seed}");
}

#[tokio::test]
async fn definite_errors_fail_and_doubtful_ones_are_info() {
    let cluster = fake_cluster(1).await;
    let rec = Recorder::in_memory();
    let mut c = Client::new(
        0,
        ProcessIds::Stride(1),
        cluster.addrs.clone(),
        0,
        ClientConfig::default(),
        rec.clone(),
    );
    let error = |definite| ErrorReply {
        kind: ErrorKind::Unavailable,
        definite,
        message: "busy".into(),
    };
    cluster.nodes[0].set_behaviour(Behaviour {
        error: Some(error(true)),
        ..Behaviour::default()
    });
    assert_eq!(
        c.perform(write("k0", 1)).await,
        Outcome::Fail("busy".into())
    );
    assert_eq!(c.process(), 0);
    cluster.nodes[0].set_behaviour(Behaviour {
        error: Some(error(false)),
        ..Behaviour::default()
    });
    assert_eq!(
        c.perform(write("k0", 2)).await,
        Outcome::Info("busy".into())
    );
    assert_eq!(c.process(), 1, "a fresh process after info");

    // The node applies the write and hangs up: unknown outcome, though it took effect.
    cluster.nodes[0].set_behaviour(Behaviour {
        close_after_apply: true,
        ..Behaviour::default()
    });
    let o = c.perform(write("k0", 3)).await;
    assert!(matches!(o, Outcome::Info(_)), "{o:?}");
    assert_eq!(c.process(), 2);

    // A cas that finds another value is a definite no-op.
    cluster.nodes[0].set_behaviour(Behaviour::default());
    let o = c
        .perform(IntendedOp::Cas {
            key: "k0".into(),
            expected: Some(99),
            new: 4,
        })
        .await;
    assert_eq!(o, Outcome::Fail("cas mismatch".into()));
    let o = c
        .perform(IntendedOp::Cas {
            key: "k0".into(),
            expected: Some(3),
            new: 4,
        })
        .await;
    assert_eq!(o, Outcome::Ok(serde_json::json!([3, 4])));

    let events = rec.events();
    let kinds: Vec<_> = completions(&events).map(|e| e.kind).collect();
    use EventType::*;
    assert_eq!(kinds, vec![Fail, Info, Info, Fail, Ok]);
    let mut open: HashMap<Process, &Event> = HashMap::new();
    for e in &events {
        if e.kind == Invoke {
            open.insert(e.process, e);
        } else if e.f != "read" {
            let inv = open.remove(&e.process).expect("completion without invoke");
            assert_eq!(inv.value, e.value, "completions repeat the invoke value");
        }
    }
}

#[tokio::test]
async fn writes_and_leader_reads_follow_not_leader_hints() {
    let cluster = fake_cluster(3).await;
    let rec = Recorder::in_memory();
    // Bound to n2, a follower of n1.
    let mut c = Client::new(
        0,
        ProcessIds::Stride(1),
        cluster.addrs.clone(),
        1,
        ClientConfig::default(),
        rec.clone(),
    );
    assert_eq!(
        c.perform(write("k1", 7)).await,
        Outcome::Ok(serde_json::json!(7))
    );
    let events = rec.events();
    assert_eq!(events.len(), 2, "one invoke for the whole redirected op");
    assert_eq!(events[0].node.as_deref(), Some("n2"));
    assert_eq!(events[1].node.as_deref(), Some("n1"));
    assert_eq!(
        (cluster.nodes[0].requests(), cluster.nodes[1].requests()),
        (1, 1)
    );

    // The client remembers the leader: the next leader read goes straight there.
    let read = |mode| IntendedOp::Read {
        key: "k1".into(),
        mode,
    };
    assert_eq!(
        c.perform(read(ReadMode::ReadIndex)).await,
        Outcome::Ok(serde_json::json!(7))
    );
    assert_eq!(
        (cluster.nodes[0].requests(), cluster.nodes[1].requests()),
        (2, 1)
    );
    // Follower and stale reads go to the bound node.
    assert_eq!(
        c.perform(read(ReadMode::Stale)).await,
        Outcome::Ok(serde_json::json!(7))
    );
    assert_eq!(
        (cluster.nodes[0].requests(), cluster.nodes[1].requests()),
        (2, 2)
    );
    assert_eq!(rec.events()[5].node.as_deref(), Some("n2"));

    // No leader known: definite refusal, fail.
    let mut c3 = Client::new(
        10,
        ProcessIds::Stride(1),
        cluster.addrs.clone(),
        2,
        ClientConfig::default(),
        rec.clone(),
    );
    cluster.nodes[2].set_behaviour(Behaviour {
        follower_of: Some((None, None)),
        ..Behaviour::default()
    });
    assert!(matches!(c3.perform(write("k1", 8)).await, Outcome::Fail(_)));

    // Two nodes naming each other: bounded redirects, then fail.
    let n3 = cluster.addrs[2].client_addr.to_string();
    let n2 = cluster.addrs[1].client_addr.to_string();
    cluster.nodes[1].set_behaviour(Behaviour {
        follower_of: Some((Some(3), Some(n3))),
        ..Behaviour::default()
    });
    cluster.nodes[2].set_behaviour(Behaviour {
        follower_of: Some((Some(2), Some(n2))),
        ..Behaviour::default()
    });
    let before = cluster.nodes[1].requests() + cluster.nodes[2].requests();
    let o = c3.perform(write("k1", 9)).await;
    assert!(
        matches!(o, Outcome::Fail(ref e) if e.contains("redirects")),
        "{o:?}"
    );
    let sent = cluster.nodes[1].requests() + cluster.nodes[2].requests() - before;
    assert_eq!(sent, 1 + ClientConfig::default().max_redirects as u64);

    // A leader guess that stopped answering: the client asks its bound node again.
    cluster.nodes[1].set_behaviour(Behaviour {
        follower_of: Some((Some(1), Some(cluster.addrs[0].client_addr.to_string()))),
        ..Behaviour::default()
    });
    cluster.nodes[0].stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let o = c.perform(write("k1", 10)).await;
    // n1 refuses connections: nothing was sent anywhere that could apply it.
    assert!(matches!(o, Outcome::Fail(_)), "{o:?}");
}

#[tokio::test]
async fn same_seed_gives_the_same_intended_operations() {
    let seed = seed(77);
    async fn invocations(seed: u64) -> Vec<(String, String, serde_json::Value, Option<String>)> {
        let cluster = fake_cluster(3).await;
        let rec = Recorder::in_memory();
        let cfg = WorkloadConfig {
            concurrency: 5,
            rate: 300.0,
            keys: 4,
            read_modes: workloads::generator::parse_read_modes("all").unwrap(),
            seed,
            ..WorkloadConfig::default()
        };
        let deadline = Instant::now() + Duration::from_millis(500);
        run_workload(
            &cfg,
            &cluster.addrs,
            &rec,
            deadline,
            CancellationToken::new(),
        )
        .await
        .unwrap();
        rec.events()
            .into_iter()
            .filter(|e| e.kind == EventType::Invoke)
            .map(|e| (e.f, e.key.unwrap(), e.value, e.read_mode))
            .collect()
    }
    let a = invocations(seed).await;
    let b = invocations(seed).await;
    let n = a.len().min(b.len());
    assert!(n >= 50, "seed {seed}: only {n} operations");
    assert_eq!(a[..n], b[..n], "seed {seed}");
    let c = invocations(seed + 1).await;
    let m = n.min(c.len());
    assert_ne!(a[..m], c[..m], "seed {seed} vs {}", seed + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_workload_and_final_reads_see_every_acknowledged_add() {
    let cluster = fake_cluster(3).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let rec = Recorder::create_keeping_events(&path).unwrap();
    let cfg = WorkloadConfig {
        workload: WorkloadKind::Set,
        concurrency: 6,
        rate: 300.0,
        ..WorkloadConfig::default()
    };
    let deadline = Instant::now() + Duration::from_millis(800);
    let s = run_workload(
        &cfg,
        &cluster.addrs,
        &rec,
        deadline,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(s.ok, s.ops, "{s:?}");
    let acked: HashSet<i64> = completions(&rec.events())
        .filter(|e| e.kind == EventType::Ok && e.f == "add")
        .map(|e| e.value.as_i64().unwrap())
        .collect();
    // The generator reads the whole set during the run too (through the run's read mode).
    let in_run = rec.events().len();
    let run_reads = rec.events().iter().filter(|e| e.f == "read").count();
    assert!(run_reads >= 2, "{run_reads} reads during the run");
    let reads = final_set_reads(
        &cluster.addrs,
        &rec,
        ReadMode::Follower,
        &ClientConfig::default(),
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(reads.len(), 3);
    let by_node: HashMap<_, _> = reads.iter().map(|r| (r.node.as_str(), r)).collect();
    for name in ["n1", "n2", "n3"] {
        let elements: HashSet<i64> = by_node[name]
            .elements
            .clone()
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(elements, acked, "{name}");
    }
    // Final reads use process ids no pool client used (the pool kept ids 0..concurrency, as
    // no operation ended in info).
    for e in rec.events()[in_run..].iter().filter(|e| e.f == "read") {
        let Process::Client(p) = e.process else {
            panic!()
        };
        assert!(p >= cfg.concurrency as u64, "{p}");
        assert_eq!(e.read_mode.as_deref(), Some("follower"));
    }
    drop(rec);
    validate(&path, 100);
}

#[tokio::test]
async fn final_reads_give_up_within_the_budget() {
    let cluster = fake_cluster(1).await;
    cluster.nodes[0].set_behaviour(Behaviour {
        silent: true,
        ..Behaviour::default()
    });
    let rec = Recorder::in_memory();
    let started = Instant::now();
    let reads = final_set_reads(
        &cluster.addrs,
        &rec,
        ReadMode::Log,
        &ClientConfig {
            op_timeout: Duration::from_millis(100),
            ..ClientConfig::default()
        },
        Duration::from_millis(500),
    )
    .await;
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert_eq!(reads[0].elements, None);
    let infos: Vec<u64> = completions(&rec.events())
        .map(|e| match e.process {
            Process::Client(p) => p,
            Process::Nemesis => panic!(),
        })
        .collect();
    let distinct: HashSet<_> = infos.iter().collect();
    assert!(infos.len() >= 2);
    assert_eq!(distinct.len(), infos.len(), "fresh process after each info");
}

#[tokio::test]
async fn stop_signal_ends_the_run_early() {
    let cluster = fake_cluster(1).await;
    let rec = Recorder::in_memory();
    let stop = CancellationToken::new();
    let s2 = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s2.cancel();
    });
    let started = Instant::now();
    let s = run_workload(
        &WorkloadConfig::default(),
        &cluster.addrs,
        &rec,
        Instant::now() + Duration::from_secs(30),
        stop,
    )
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(s.ops > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_going_down_mid_run_gives_a_valid_history() {
    let seed = seed(23);
    let cluster = fake_cluster(3).await;
    // Slow answers so that some requests are in flight when n2 goes away.
    for n in &cluster.nodes {
        n.set_behaviour(Behaviour {
            delay: Duration::from_millis(5),
            ..Behaviour::default()
        });
    }
    cluster.nodes[1].set_behaviour(Behaviour {
        delay: Duration::from_millis(5),
        follower_of: Some((Some(1), Some(cluster.addrs[0].client_addr.to_string()))),
        ..Behaviour::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let rec = Recorder::create_keeping_events(&path).unwrap();
    let cfg = WorkloadConfig {
        concurrency: 9,
        rate: 300.0,
        keys: 2,
        read_modes: vec![ReadMode::Follower],
        seed,
        ..WorkloadConfig::default()
    };
    let deadline = Instant::now() + Duration::from_millis(1500);
    let run = run_workload(
        &cfg,
        &cluster.addrs,
        &rec,
        deadline,
        CancellationToken::new(),
    );
    let kill = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        cluster.nodes[1].stop();
    };
    let (s, ()) = tokio::join!(run, kill);
    let s = s.unwrap();
    println!("seed {seed}: {s:?}");
    let refused = completions(&rec.events())
        .filter(|e| e.kind == EventType::Fail)
        .filter(|e| e.error.as_deref().is_some_and(|m| m.starts_with("connect")))
        .count();
    assert!(refused > 0, "seed {seed}: reads bound to n2 are refused");
    drop(rec);
    validate(&path, 100);
}

/// `key_bytes` pads the keys the nodes see while the history keeps the short names, and the
/// one large put is issued once, by client 0, after its delay; a put too large for a frame
/// is a definite `fail` with nothing sent.
#[tokio::test]
async fn keys_are_padded_on_the_wire_and_the_large_put_is_issued_once() {
    let seed = seed(11);
    let cluster = fake_cluster(1).await;
    let rec = Recorder::in_memory();
    let cfg = WorkloadConfig {
        concurrency: 2,
        rate: 100.0,
        keys: 2,
        seed,
        client: ClientConfig {
            key_bytes: 64,
            ..ClientConfig::default()
        },
        large_put: Some(LargePut {
            key_bytes: 5 << 20,
            after: Duration::from_millis(100),
        }),
        ..WorkloadConfig::default()
    };
    let deadline = Instant::now() + Duration::from_millis(500);
    run_workload(
        &cfg,
        &cluster.addrs,
        &rec,
        deadline,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let events = rec.events();
    let large: Vec<&Event> = events
        .iter()
        .filter(|e| e.key.as_deref() == Some(LARGE_PUT_KEY))
        .collect();
    assert_eq!(large.len(), 2, "seed {seed}: one invoke, one completion");
    assert_eq!(large[1].kind, EventType::Fail, "seed {seed}");
    assert!(
        large[1]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("frame limit"),
        "seed {seed}: {:?}",
        large[1].error
    );
    assert!(events
        .iter()
        .filter_map(|e| e.key.as_deref())
        .all(|k| k.len() < 8));
    let store = cluster.store.lock().unwrap();
    assert!(!store.is_empty(), "seed {seed}: nothing written");
    assert!(
        store.keys().all(|k| k.len() == 64),
        "seed {seed}: {:?}",
        store.keys().map(|k| k.len()).collect::<Vec<_>>()
    );
}
