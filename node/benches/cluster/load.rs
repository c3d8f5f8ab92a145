//! Closed-loop load: N clients, each with one connection and one request in flight at a
//! time, for a warm-up and then a measured window; latency of every successful request
//! completed inside the window goes into one histogram.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use node::client::Connection;
use node::protocol::{ErrorKind, Operation};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::procs::connect;

/// How long one request may take before the client counts it as an error and reconnects.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an error before the next request, so a refusing node is not hammered.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);
/// Most requests one client sends in a phase (a bound on the loop besides time).
const MAX_REQUESTS_PER_CLIENT: u64 = 10_000_000;

/// Builds client `client`'s request number `seq` (from 1).
pub type OpMaker = dyn Fn(usize, u64, &mut ChaCha8Rng) -> Operation + Send + Sync;

/// One phase's plan.
pub struct Phase {
    /// The node each client connects to (one entry per client).
    pub targets: Vec<String>,
    /// Not measured.
    pub warmup: Duration,
    /// Measured.
    pub measure: Duration,
    /// Whether a client moves to the leader named in a "not leader" error.
    pub follow_leader: bool,
    /// Seed of the clients' random choices (client `i` uses `seed + i`).
    pub seed: u64,
    pub make_op: Arc<OpMaker>,
}

/// What one phase measured.
pub struct PhaseResult {
    /// Successful requests completed inside the measured window.
    pub ok: u64,
    /// Failed requests (whole phase, warm-up included), by kind.
    pub errors: BTreeMap<String, u64>,
    /// Length of the measured window in seconds.
    pub secs: f64,
    /// Latency of the successful requests, microseconds.
    pub hist: Histogram<u64>,
}

impl PhaseResult {
    /// Successful requests per second over the measured window.
    pub fn ops_per_sec(&self) -> f64 {
        self.ok as f64 / self.secs.max(1e-9)
    }
    /// Median latency in milliseconds (0 with no samples).
    pub fn p50_ms(&self) -> f64 {
        self.hist.value_at_quantile(0.50) as f64 / 1000.0
    }
    /// 99th-percentile latency in milliseconds (0 with no samples).
    pub fn p99_ms(&self) -> f64 {
        self.hist.value_at_quantile(0.99) as f64 / 1000.0
    }
    /// Total failed requests.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
    /// An empty result, to merge phases into.
    pub fn empty() -> PhaseResult {
        PhaseResult {
            ok: 0,
            errors: BTreeMap::new(),
            secs: 0.0,
            hist: new_hist(),
        }
    }
    /// Adds another phase of the same configuration (e.g. a later round) to this one.
    pub fn merge(&mut self, other: PhaseResult) {
        self.ok += other.ok;
        self.secs += other.secs;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        // Both histograms share bounds, so adding cannot fail; a failure would only lose samples.
        let _ = self.hist.add(&other.hist);
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

fn error_name(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotLeader { .. } => "not-leader",
        ErrorKind::LeadershipLost => "leadership-lost",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Invalid => "invalid",
        ErrorKind::Unavailable => "unavailable",
    }
}

/// Runs the phase: all clients start together; each stops issuing requests at the end of
/// the measured window.
pub async fn run(phase: Phase) -> PhaseResult {
    let start = Instant::now();
    let measure_from = start + phase.warmup;
    let end = measure_from + phase.measure;
    let mut tasks = Vec::new();
    for (i, target) in phase.targets.iter().cloned().enumerate() {
        let make_op = phase.make_op.clone();
        let follow = phase.follow_leader;
        let seed = phase.seed.wrapping_add(i as u64);
        tasks.push(tokio::spawn(async move {
            client_loop(i, target, follow, seed, make_op, measure_from, end).await
        }));
    }
    let mut result = PhaseResult {
        ok: 0,
        errors: BTreeMap::new(),
        secs: phase.measure.as_secs_f64(),
        hist: new_hist(),
    };
    for t in tasks {
        match t.await {
            Ok((ok, errors, hist)) => {
                result.ok += ok;
                for (k, v) in errors {
                    *result.errors.entry(k).or_default() += v;
                }
                let _ = result.hist.add(&hist);
            }
            Err(e) => {
                *result
                    .errors
                    .entry(format!("client task: {e}"))
                    .or_default() += 1
            }
        }
    }
    result
}

async fn client_loop(
    i: usize,
    mut target: String,
    follow: bool,
    seed: u64,
    make_op: Arc<OpMaker>,
    measure_from: Instant,
    end: Instant,
) -> (u64, BTreeMap<String, u64>, Histogram<u64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut hist = new_hist();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut ok = 0u64;
    let mut conn: Option<Connection> = None;
    for seq in 1..=MAX_REQUESTS_PER_CLIENT {
        if Instant::now() >= end {
            break;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match connect(&target).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    *errors.entry("connect".into()).or_default() += 1;
                    tokio::time::sleep(ERROR_BACKOFF * 5).await;
                    continue;
                }
            },
        };
        let op = make_op(i, seq, &mut rng);
        let sent = Instant::now();
        match c.call(op, REQUEST_TIMEOUT).await {
            Ok(Ok(_)) => {
                let done = Instant::now();
                if sent >= measure_from && done <= end {
                    ok += 1;
                    let us = (done - sent).as_micros() as u64;
                    hist.saturating_record(us.clamp(1, 60_000_000));
                }
            }
            Ok(Err(e)) => {
                *errors.entry(error_name(&e.kind).into()).or_default() += 1;
                if let (
                    true,
                    ErrorKind::NotLeader {
                        leader_addr: Some(a),
                        ..
                    },
                ) = (follow, &e.kind)
                {
                    target = a.clone();
                    conn = None;
                }
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
            Err(_) => {
                *errors.entry("transport".into()).or_default() += 1;
                conn = None;
                tokio::time::sleep(ERROR_BACKOFF).await;
            }
        }
    }
    (ok, errors, hist)
}
