//! The workload driver: runs `concurrency` client processes against the cluster at a total
//! target rate until a deadline or a stop signal, and the set workload's final reads.
//!
//! Pacing is open-loop per client: client `i` of `c` owns the time slots
//! `start + (i/c + k) × c/rate`; it issues one operation per slot, and when an operation
//! overruns later slots those slots are skipped, never caught up in a burst (a slow cluster
//! should see the offered load, not a thundering herd after every stall).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use node::protocol::ReadMode;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{Client, ClientConfig, KvClients, NodeAddr, Outcome, ProcessIds};
use crate::generator::{self, Generator, GeneratorError, IntendedOp, WorkloadKind};
use crate::recorder::Recorder;
use crate::set::SET_KEY;

/// What to run.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadConfig {
    /// Register or set.
    pub workload: WorkloadKind,
    /// Client processes (each bound to node `i mod nodes`).
    pub concurrency: usize,
    /// Target operations per second over all clients.
    pub rate: f64,
    /// Keys of the register workload.
    pub keys: usize,
    /// Read paths of the register workload's reads (one drawn per read when several).
    pub read_modes: Vec<ReadMode>,
    /// Seeds the generator.
    pub seed: u64,
    /// Timeouts, leader-hint following, back-off.
    pub client: ClientConfig,
    /// Register workload only: one put among normal traffic whose key is padded on the wire
    /// (key [`LARGE_PUT_KEY`] in the history), e.g. one too large for a log entry.
    pub large_put: Option<LargePut>,
}

/// One oversized put (see [`WorkloadConfig::large_put`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LargePut {
    /// The key's length on the wire.
    pub key_bytes: usize,
    /// When client 0 issues it, from the start of the run (or at its next slot after that).
    pub after: Duration,
}

/// The history key of the one large put (see [`WorkloadConfig::large_put_bytes`]).
pub const LARGE_PUT_KEY: &str = "large";

impl Default for WorkloadConfig {
    /// The defaults of `harness test` (cli.md).
    fn default() -> Self {
        WorkloadConfig {
            workload: WorkloadKind::Register,
            concurrency: 10,
            rate: 100.0,
            keys: 8,
            read_modes: vec![ReadMode::ReadIndex],
            seed: 0,
            client: ClientConfig::default(),
            large_put: None,
        }
    }
}

/// Why a workload could not run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WorkloadError {
    /// The generator rejected the configuration.
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    /// No node to talk to.
    #[error("no nodes to run the workload against")]
    NoNodes,
    /// Zero clients.
    #[error("concurrency must be at least 1")]
    NoClients,
    /// The rate is not a positive finite number.
    #[error("rate must be a positive number of operations per second, got {0}")]
    BadRate(f64),
    /// A client task panicked (a bug in this crate).
    #[error("a client task failed: {0}")]
    ClientTask(String),
}

/// What a run did, as its clients saw it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadSummary {
    /// Operations invoked.
    pub ops: u64,
    /// Completed `ok`.
    pub ok: u64,
    /// Completed `fail`.
    pub fail: u64,
    /// Completed `info`.
    pub info: u64,
    /// Pacing slots skipped because an operation overran them.
    pub skipped_slots: u64,
    /// From the start of the run until the last client finished.
    pub elapsed: Duration,
}

impl WorkloadSummary {
    fn add(&mut self, other: &WorkloadSummary) {
        self.ops += other.ops;
        self.ok += other.ok;
        self.fail += other.fail;
        self.info += other.info;
        self.skipped_slots += other.skipped_slots;
    }
}

/// Runs the workload: `config.concurrency` clients, client `i` bound to `nodes[i % n]` with
/// process id `i`, paced to `config.rate` in total. Clients stop issuing at `deadline` or
/// when `stop` is cancelled; operations in flight then finish within their `op_timeout`
/// (as `info` if the node does not answer), so this returns at most about `op_timeout` after
/// the deadline. Every operation is recorded through `recorder`.
pub async fn run_workload(
    config: &WorkloadConfig,
    nodes: &[NodeAddr],
    recorder: &Recorder,
    deadline: Instant,
    stop: CancellationToken,
) -> Result<WorkloadSummary, WorkloadError> {
    run_workload_on(config, &nodes.to_vec(), recorder, deadline, stop).await
}

/// [`run_workload`] against any system under test: client `i` is `system.client(i mod n)`.
pub async fn run_workload_on(
    config: &WorkloadConfig,
    system: &dyn KvClients,
    recorder: &Recorder,
    deadline: Instant,
    stop: CancellationToken,
) -> Result<WorkloadSummary, WorkloadError> {
    let members = system.members();
    if members == 0 {
        return Err(WorkloadError::NoNodes);
    }
    if config.concurrency == 0 {
        return Err(WorkloadError::NoClients);
    }
    if !(config.rate.is_finite() && config.rate > 0.0) {
        return Err(WorkloadError::BadRate(config.rate));
    }
    let generator: Arc<Mutex<Box<dyn Generator>>> = Arc::new(Mutex::new(generator::build(
        config.workload,
        config.seed,
        config.keys,
        &config.read_modes,
    )?));
    let start = Instant::now();
    let c = config.concurrency;
    // At least 1 µs so that slot arithmetic stays finite for absurd rates.
    let interval = Duration::from_secs_f64(c as f64 / config.rate).max(Duration::from_micros(1));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..c {
        let client = Client::with_kv(
            i as u64,
            ProcessIds::Stride(c as u64),
            system.client(i % members, &config.client),
            config.client.clone(),
            recorder.clone(),
        );
        let first_slot = start + interval.mul_f64(i as f64 / c as f64);
        let large_put = config
            .large_put
            .filter(|_| i == 0)
            .map(|l| (start + l.after, l.key_bytes));
        tasks.spawn(client_loop(
            client,
            generator.clone(),
            first_slot,
            interval,
            deadline,
            stop.clone(),
            large_put,
        ));
    }
    let mut summary = WorkloadSummary::default();
    let mut failure = None;
    while let Some(res) = tasks.join_next().await {
        match res {
            Ok(s) => summary.add(&s),
            Err(e) => failure = Some(e.to_string()),
        }
    }
    summary.elapsed = start.elapsed();
    match failure {
        Some(e) => Err(WorkloadError::ClientTask(e)),
        None => Ok(summary),
    }
}

/// One client's paced loop. Ends at the deadline or on stop; the loop's count is bounded by
/// the deadline because every iteration waits for a slot strictly later than the last.
async fn client_loop(
    mut client: Client,
    generator: Arc<Mutex<Box<dyn Generator>>>,
    first_slot: Instant,
    interval: Duration,
    deadline: Instant,
    stop: CancellationToken,
    mut large_put: Option<(Instant, usize)>,
) -> WorkloadSummary {
    let mut s = WorkloadSummary::default();
    let mut slot = first_slot;
    loop {
        let wake = slot.max(Instant::now() + client.backoff());
        if wake >= deadline {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = stop.cancelled() => break,
        }
        if stop.is_cancelled() || Instant::now() >= deadline {
            break;
        }
        // Draw and invoke under the generator's lock so the history's invocations follow the
        // generator's order (same seed, same sequence of invocations).
        let large_due = large_put.filter(|(at, _)| Instant::now() >= *at);
        let pending = if let Some((_, bytes)) = large_due {
            large_put = None;
            let op = IntendedOp::Write {
                key: LARGE_PUT_KEY.into(),
                value: 1,
            };
            client.begin_with_key_bytes(op, bytes)
        } else {
            let mut g = generator.lock().unwrap_or_else(|p| p.into_inner());
            let op = g.next_op();
            client.begin(op)
        };
        s.ops += 1;
        match client.finish(pending).await {
            Outcome::Ok(_) => s.ok += 1,
            Outcome::Fail(_) => s.fail += 1,
            Outcome::Info(_) => s.info += 1,
        }
        // Next slot after the one just used; skip (count) the ones the operation overran.
        slot += interval;
        let now = Instant::now();
        if slot < now {
            let behind = (now - slot).as_secs_f64() / interval.as_secs_f64();
            let skip = behind.ceil() as u32;
            slot += interval * skip;
            s.skipped_slots += u64::from(skip);
        }
    }
    s
}

/// One node's answer to the final read of the set workload.
#[derive(Clone, Debug, PartialEq)]
pub struct FinalRead {
    /// The node the client was bound to (the read may have been redirected to the leader).
    pub node: String,
    /// The sorted elements read, or `None` if no read succeeded within the budget.
    pub elements: Option<Vec<i64>>,
}

/// The pause between final-read attempts on one node.
const FINAL_READ_RETRY: Duration = Duration::from_millis(200);

/// The set workload's final reads: asks every node (concurrently) for the whole set through
/// `mode` (the `log`, `read-index` and `lease` modes follow leader hints), retrying each node
/// until one read is `ok` or `budget` has passed. Each attempt is an operation in the
/// history under a process id reserved from `recorder`. Call after healing the cluster.
pub async fn final_set_reads(
    nodes: &[NodeAddr],
    recorder: &Recorder,
    mode: ReadMode,
    client: &ClientConfig,
    budget: Duration,
) -> Vec<FinalRead> {
    final_set_reads_on(&nodes.to_vec(), recorder, mode, client, budget).await
}

/// [`final_set_reads`] against any system under test: one read per member of `system`.
pub async fn final_set_reads_on(
    system: &dyn KvClients,
    recorder: &Recorder,
    mode: ReadMode,
    client: &ClientConfig,
    budget: Duration,
) -> Vec<FinalRead> {
    let deadline = Instant::now() + budget;
    let reads = (0..system.members()).map(|i| {
        let mut c = Client::with_kv(
            recorder.reserve_process(),
            ProcessIds::Reserve,
            system.client(i, client),
            client.clone(),
            recorder.clone(),
        );
        let name = system.member_name(i);
        async move {
            let max_attempts = (budget.as_millis() / FINAL_READ_RETRY.as_millis()).max(1) + 1;
            for attempt in 0..max_attempts {
                if attempt > 0 {
                    if Instant::now() + FINAL_READ_RETRY >= deadline {
                        break;
                    }
                    tokio::time::sleep(FINAL_READ_RETRY).await;
                }
                let op = IntendedOp::Read {
                    key: SET_KEY.to_string(),
                    mode,
                };
                if let Outcome::Ok(v) = c.perform(op).await {
                    let elements = match v {
                        serde_json::Value::Null => Some(Vec::new()),
                        serde_json::Value::Array(a) => {
                            a.iter().map(serde_json::Value::as_i64).collect()
                        }
                        _ => None,
                    };
                    if elements.is_some() {
                        return FinalRead {
                            node: name,
                            elements,
                        };
                    }
                }
            }
            FinalRead {
                node: name,
                elements: None,
            }
        }
    });
    futures::future::join_all(reads).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_configurations_are_errors() {
        let rec = Recorder::in_memory();
        let node = NodeAddr {
            name: "n1".into(),
            client_addr: "127.0.0.1:1".parse().unwrap(),
        };
        let dl = Instant::now();
        let cfg = WorkloadConfig::default();
        let stop = CancellationToken::new();
        assert_eq!(
            run_workload(&cfg, &[], &rec, dl, stop.clone()).await,
            Err(WorkloadError::NoNodes)
        );
        let bad_rate = WorkloadConfig {
            rate: 0.0,
            ..cfg.clone()
        };
        assert_eq!(
            run_workload(
                &bad_rate,
                std::slice::from_ref(&node),
                &rec,
                dl,
                stop.clone()
            )
            .await,
            Err(WorkloadError::BadRate(0.0))
        );
        let no_keys = WorkloadConfig { keys: 0, ..cfg };
        assert_eq!(
            run_workload(&no_keys, &[node], &rec, dl, stop).await,
            Err(WorkloadError::Generator(GeneratorError::NoKeys))
        );
        assert!(rec.events().is_empty());
    }
}
