//! End to end against real etcd processes on loopback: three members, every operation and
//! read mode through the workloads' client, a leader kill, and a member removed, re-added as
//! a learner with a fresh data directory and promoted. Skipped (with a message) when `etcd`
//! is not on PATH.

use std::path::Path;
use std::time::Duration;

use etcd_system::client::{EtcdClient, EtcdError};
use etcd_system::kv::EtcdSystem;
use etcd_system::launcher::{self, EtcdCluster, EtcdConfig};
use futures::future::{BoxFuture, FutureExt};
use node::protocol::ReadMode;
use tokio::time::Instant;
use workloads::client::{Client, ClientConfig, KvClients, Outcome, ProcessIds};
use workloads::generator::IntendedOp;
use workloads::recorder::Recorder;
use workloads::set::SET_KEY;

/// Calls `call` until etcd accepts it, for 20 s at most: etcd refuses a membership change
/// ("etcdserver: unhealthy cluster", a definite refusal) while the members that would remain
/// have not all been connected for its 5-second health interval, as after a restart or a
/// removal. Panics, naming `what`, on any other error or when time runs out.
async fn retry_refused<T, F>(ec: &mut EtcdClient, what: &str, mut call: F) -> T
where
    F: for<'a> FnMut(&'a mut EtcdClient) -> BoxFuture<'a, Result<T, EtcdError>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match call(ec).await {
            Ok(v) => return v,
            Err(e) if e.definite() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

fn client_of(system: &EtcdSystem, bound: usize, rec: &Recorder) -> Client {
    Client::with_kv(
        rec.reserve_process(),
        ProcessIds::Reserve,
        system.client(bound, &ClientConfig::default()),
        ClientConfig::default(),
        rec.clone(),
    )
}

fn read(key: &str, mode: ReadMode) -> IntendedOp {
    IntendedOp::Read {
        key: key.into(),
        mode,
    }
}

fn write(key: &str, value: i64) -> IntendedOp {
    IntendedOp::Write {
        key: key.into(),
        value,
    }
}

/// Performs `op` until it is `ok` (at most `within`); returns the last outcome.
async fn until_ok(c: &mut Client, op: IntendedOp, within: Duration) -> Outcome {
    let deadline = Instant::now() + within;
    loop {
        let o = c.perform(op.clone()).await;
        if matches!(o, Outcome::Ok(_)) || Instant::now() >= deadline {
            return o;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_serve_every_operation_and_survive_faults() {
    if !launcher::available(Path::new("etcd")) {
        eprintln!("SKIPPED: etcd not on PATH (apt-get install etcd-server)");
        return;
    }
    let t0 = std::time::Instant::now();
    eprintln!("etcd {}", launcher::version(Path::new("etcd")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let ports = node::loopback::free_ports(6).expect("free loopback ports");
    let config = EtcdConfig::new(
        dir.path().to_path_buf(),
        ports[..3].to_vec(),
        ports[3..].to_vec(),
    );
    let mut cluster = EtcdCluster::start(config.clone()).unwrap();
    let mut ec: EtcdClient = cluster.client();
    let (leader, term) = cluster
        .wait_for_leader(&mut ec, Duration::from_secs(20))
        .await
        .unwrap();
    eprintln!(
        "leader n{} term {term} after {:?}",
        leader + 1,
        t0.elapsed()
    );

    let system = EtcdSystem::new(config.members());
    let rec = Recorder::in_memory();
    let mut c = client_of(&system, leader, &rec);
    assert_eq!(c.perform(write("k1", 1)).await, Outcome::Ok(1.into()));
    for mode in [
        ReadMode::ReadIndex,
        ReadMode::Follower,
        ReadMode::Log,
        ReadMode::Stale,
    ] {
        assert_eq!(
            until_ok(&mut c, read("k1", mode), Duration::from_secs(5)).await,
            Outcome::Ok(1.into()),
            "{mode}"
        );
    }
    // The follower read went to another member than the leader.
    let evs = rec.events();
    let follower = evs
        .iter()
        .rev()
        .find(|e| e.read_mode.as_deref() == Some("follower"))
        .unwrap();
    assert_ne!(
        follower.node.as_deref(),
        Some(format!("n{}", leader + 1).as_str())
    );
    assert!(
        matches!(c.perform(read("k1", ReadMode::Lease)).await, Outcome::Fail(ref e) if e.contains("lease")),
        "lease is refused"
    );
    assert_eq!(
        c.perform(read("nothing", ReadMode::ReadIndex)).await,
        Outcome::Ok(serde_json::Value::Null)
    );
    let cas = |expected, new| IntendedOp::Cas {
        key: "k1".into(),
        expected,
        new,
    };
    assert_eq!(
        c.perform(cas(Some(1), 2)).await,
        Outcome::Ok(serde_json::json!([1, 2]))
    );
    assert_eq!(
        c.perform(cas(Some(1), 3)).await,
        Outcome::Fail("cas mismatch".into())
    );
    assert_eq!(
        c.perform(cas(None, 3)).await,
        Outcome::Fail("cas mismatch".into())
    );
    assert_eq!(
        c.perform(IntendedOp::Cas {
            key: "k2".into(),
            expected: None,
            new: 5
        })
        .await,
        Outcome::Ok(serde_json::json!([null, 5]))
    );
    let dl = || Instant::now() + Duration::from_secs(2);
    let r = ec.cas(leader, "k1", Some("7"), "8", dl()).await.unwrap();
    assert!(!r.swapped);
    assert_eq!(r.current.as_deref(), Some("2"));
    for e in [5, 3, 4] {
        let add = IntendedOp::Add {
            key: SET_KEY.into(),
            element: e,
        };
        assert_eq!(c.perform(add).await, Outcome::Ok(e.into()));
    }
    for mode in [ReadMode::ReadIndex, ReadMode::Log, ReadMode::Follower] {
        assert_eq!(
            c.perform(read(SET_KEY, mode)).await,
            Outcome::Ok(serde_json::json!([3, 4, 5])),
            "{mode}"
        );
    }
    // The set's elements are keys of their own; the register key "set" is untouched.
    assert_eq!(ec.get(leader, SET_KEY, false, dl()).await.unwrap(), None);
    eprintln!("operations done at {:?}", t0.elapsed());

    // Kill the leader: another member leads, writes go on.
    let killed_at = Instant::now();
    cluster.kill(leader).unwrap();
    let (new_leader, new_term) = cluster
        .wait_for_leader(&mut ec, Duration::from_secs(15))
        .await
        .unwrap();
    assert_ne!(new_leader, leader);
    // etcd's status reports the term of the last *applied* entry, which lags a new leader's
    // term until its first entry is applied: the term is checked after a write below.
    assert!(new_term >= term);
    eprintln!(
        "n{} leads (term {new_term}) {:?} after killing n{}",
        new_leader + 1,
        killed_at.elapsed(),
        leader + 1
    );
    let mut c2 = client_of(&system, new_leader, &rec);
    assert_eq!(
        until_ok(&mut c2, write("k1", 10), Duration::from_secs(10)).await,
        Outcome::Ok(10.into())
    );
    let applied_term = ec.status(new_leader, dl()).await.unwrap().raft_term;
    assert!(
        applied_term > term,
        "term {applied_term} after n{} led term {term}",
        leader + 1
    );
    // A write to the dead member cannot have been sent: fail, not info.
    let mut dead = client_of(&system, leader, &rec);
    assert!(matches!(
        dead.perform(IntendedOp::Read { key: "k1".into(), mode: ReadMode::Stale }).await,
        Outcome::Fail(ref e) if e.starts_with("connect")
    ));
    assert!(dead.backoff() > Duration::ZERO);
    cluster.restart(leader).unwrap();
    let mut back = client_of(&system, leader, &rec);
    assert_eq!(
        until_ok(
            &mut back,
            read("k1", ReadMode::ReadIndex),
            Duration::from_secs(15)
        )
        .await,
        Outcome::Ok(10.into()),
        "the restarted member serves the latest value"
    );

    // Pause a follower and resume it; the cluster keeps serving meanwhile.
    let (leader, _) = cluster
        .wait_for_leader(&mut ec, Duration::from_secs(15))
        .await
        .unwrap();
    let follower = (leader + 1) % 3;
    cluster.pause(follower).unwrap();
    let mut c3 = client_of(&system, leader, &rec);
    assert_eq!(
        until_ok(&mut c3, write("k1", 11), Duration::from_secs(10)).await,
        Outcome::Ok(11.into())
    );
    cluster.resume(follower).unwrap();

    // Remove a follower, add it back as a learner with a fresh data dir, promote it.
    let t_member = Instant::now();
    let list = ec.member_list(leader, dl()).await.unwrap();
    let name = EtcdConfig::name(follower);
    let id = list.iter().find(|m| m.name == name).unwrap().id;
    let what = format!("remove n{}", follower + 1);
    retry_refused(&mut ec, &what, |ec| {
        ec.member_remove(leader, id, dl()).boxed()
    })
    .await;
    eprintln!("n{} removed after {:?}", follower + 1, t_member.elapsed());
    cluster.kill(follower).unwrap();
    let peer_url = config.peer_url(follower);
    let what = format!("add n{} back", follower + 1);
    let added = retry_refused(&mut ec, &what, |ec| {
        let (url, d) = (peer_url.clone(), dl());
        async move { ec.member_add_learner(leader, &url, d).await }.boxed()
    })
    .await;
    assert!(added.is_learner);
    assert_ne!(added.id, id, "a re-added member gets a new id");
    cluster.rejoin_fresh(follower).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attempts = 0;
    let promoted = loop {
        attempts += 1;
        match ec.member_promote(leader, added.id, dl()).await {
            Ok(()) => break Ok(()),
            Err(e) if Instant::now() < deadline => {
                if attempts == 1 {
                    eprintln!("promote refused at first: {e} (definite: {})", e.definite());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => break Err(e),
        }
    };
    promoted.unwrap();
    eprintln!(
        "n{} removed, re-added as learner and promoted after {attempts} attempts in {:?}",
        follower + 1,
        t_member.elapsed()
    );
    let list = ec.member_list(leader, dl()).await.unwrap();
    let m = list.iter().find(|m| m.id == added.id).unwrap();
    assert!(!m.is_learner && m.name == name, "{m:?}");
    assert_eq!(list.len(), 3);
    let mut c4 = client_of(&system, follower, &rec);
    assert_eq!(
        until_ok(
            &mut c4,
            read("k1", ReadMode::Stale),
            Duration::from_secs(10)
        )
        .await,
        Outcome::Ok(11.into()),
        "the rejoined member has the data"
    );
    let st = ec.status(follower, dl()).await.unwrap();
    assert_eq!(st.member_id, added.id);
    // Member ids map to our indexes by name, the re-added member's new id included.
    let ids = ec.member_ids(leader, dl()).await.unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids.get(&added.id), Some(&follower));
    assert_eq!(ids.get(&st.leader_id), Some(&leader));
    drop(cluster);
    eprintln!("total {:?}", t0.elapsed());
}
