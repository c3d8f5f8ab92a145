//! `cargo bench -p node --bench cluster`: three real `node` processes on loopback with fsync
//! on, measured from outside through the client protocol.
//!
//! Reports what group commit and each read path cost, so that their claims are measured:
//! - put throughput and p50/p99 latency at 1, 16 and 64 closed-loop clients with group commit
//!   (`--fsync batch`) and with one fsync per entry (`--fsync per-entry`), and their ratio;
//! - read throughput and p50/p99 latency of the five read paths at 16 clients, no faults, in
//!   one cluster, with ratios to `stale`.
//!
//! Configurations being compared are interleaved: every configuration runs once per round,
//! for `BENCH_SECS / BENCH_ROUNDS` seconds, and rounds repeat. On a shared machine whose
//! background load changes, that spreads the changes over all configurations instead of
//! favouring whichever ran at a quiet moment.
//!
//! Environment: `BENCH_SECS` (measured seconds per configuration, default 8), `BENCH_ROUNDS`
//! (default 3), `BENCH_PARTS` (comma list of `puts`, `reads`; default both), `BENCH_SEED`
//! (client randomness, default 42; printed). Every node process is SIGKILLed by PID when its
//! guard drops (end, error or panic).

mod load;
mod machine;
mod procs;

use node::command;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use node::protocol::{Operation, ReadMode, WriteId};
use rand::Rng;

use load::{Phase, PhaseResult};
use procs::NodeProcs;

/// Concurrency levels of the put benchmark.
const PUT_CLIENTS: [usize; 3] = [1, 16, 64];
/// Clients of the read benchmark.
const READ_CLIENTS: usize = 16;
/// Keys written before the read phases; reads pick among them.
const READ_KEYS: usize = 1000;
/// How long a fresh cluster may take to elect a leader.
const ELECTION_DEADLINE: Duration = Duration::from_secs(20);
/// Samples of the disk's fsync latency probe.
const FSYNC_SAMPLES: u32 = 200;

struct Settings {
    /// Measured time per configuration, summed over rounds.
    measure: Duration,
    rounds: u32,
    puts: bool,
    reads: bool,
    seed: u64,
}

impl Settings {
    fn from_env() -> anyhow::Result<Settings> {
        let secs: f64 = match std::env::var("BENCH_SECS") {
            Ok(s) => s
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite() && *v > 0.0 && *v <= 600.0)
                .with_context(|| format!("BENCH_SECS={s:?}: expected seconds in (0, 600]"))?,
            Err(_) => 8.0,
        };
        let rounds: u32 = match std::env::var("BENCH_ROUNDS") {
            Ok(s) => s
                .parse()
                .ok()
                .filter(|r| (1..=100).contains(r))
                .with_context(|| format!("BENCH_ROUNDS={s:?}: expected 1..=100"))?,
            Err(_) => 3,
        };
        let parts = std::env::var("BENCH_PARTS").unwrap_or_else(|_| "puts,reads".into());
        let seed = match std::env::var("BENCH_SEED") {
            Ok(s) => s
                .parse()
                .with_context(|| format!("BENCH_SEED={s:?}: expected an integer"))?,
            Err(_) => 42,
        };
        Ok(Settings {
            measure: Duration::from_secs_f64(secs),
            rounds,
            puts: parts.split(',').any(|p| p.trim() == "puts"),
            reads: parts.split(',').any(|p| p.trim() == "reads"),
            seed,
        })
    }

    /// Measured time of one configuration in one round.
    fn slice(&self) -> Duration {
        self.measure / self.rounds
    }

    /// Unmeasured time before each slice (connections, batching reaching steady state).
    fn warmup(&self) -> Duration {
        (self.slice() / 4).min(Duration::from_millis(300))
    }
}

/// What the clients of a configuration send.
#[derive(Clone, Copy)]
enum Workload {
    /// Puts of unique keys.
    Put,
    /// Gets of preloaded keys through one read path.
    Read(ReadMode),
}

/// One configuration to measure: a workload against one cluster from some clients.
struct Spec {
    label: String,
    cluster: usize,
    targets: Vec<String>,
    follow_leader: bool,
    workload: Workload,
}

/// A configuration's merged results over all rounds.
struct Row {
    label: String,
    result: PhaseResult,
    /// Terms that passed during its slices (0: no election disturbed it).
    elections: u64,
    /// CPU seconds used by the three node processes during its slices.
    node_cpu: f64,
    /// CPU seconds used by this (client) process during its slices.
    client_cpu: f64,
    /// Wall-clock seconds of its slices, warm-ups included.
    wall: f64,
}

impl Row {
    /// CPU use of the nodes as a percentage of one core (200 = both cores of a 2-CPU box).
    fn node_cpu_pct(&self) -> f64 {
        100.0 * self.node_cpu / self.wall.max(1e-9)
    }
    /// CPU use of the benchmark's clients, percentage of one core.
    fn client_cpu_pct(&self) -> f64 {
        100.0 * self.client_cpu / self.wall.max(1e-9)
    }
}

/// Builds the requests of one slice. `phase` must differ between slices on one cluster:
/// the node de-duplicates writes by (client, seq) and every slice restarts seq at 1.
fn op_maker(workload: Workload, phase: u64) -> Arc<load::OpMaker> {
    match workload {
        Workload::Put => Arc::new(move |client, seq, _rng| {
            Operation::Put(command::Put {
                key: format!("p{phase}-c{client}-{seq}"),
                value: seq as i64,
                write_id: WriteId {
                    client: phase * 100_000 + client as u64 + 1,
                    seq,
                },
            })
        }),
        Workload::Read(mode) => Arc::new(move |_client, _seq, rng| Operation::Get {
            key: format!("pre-{}", rng.gen_range(0..READ_KEYS)),
            mode: Some(mode),
        }),
    }
}

/// The highest term any node of the cluster reports (0 if none answers).
async fn max_term(procs: &NodeProcs) -> u64 {
    let mut term = 0;
    for i in 0..procs.client_addrs.len() {
        if let Ok(s) = procs.status(i).await {
            term = term.max(s.term);
        }
    }
    term
}

/// Runs every spec once per round, in order, and merges each spec's slices.
async fn run_interleaved(
    name: &str,
    probe_dir: &Path,
    clusters: &mut [NodeProcs],
    specs: &[Spec],
    s: &Settings,
    phase_base: u64,
) -> anyhow::Result<Vec<Row>> {
    let mut rows: Vec<Row> = specs
        .iter()
        .map(|spec| Row {
            label: spec.label.clone(),
            result: PhaseResult::empty(),
            elections: 0,
            node_cpu: 0.0,
            client_cpu: 0.0,
            wall: 0.0,
        })
        .collect();
    let me = std::process::id();
    for round in 0..s.rounds {
        // Other work on the machine changes the disk's latency; note it at every round.
        let line = fsync_line(probe_dir, &format!("before {name} round {}", round + 1), 50);
        println!("{line}");
        for (k, spec) in specs.iter().enumerate() {
            let procs = &mut clusters[spec.cluster];
            let before = max_term(procs).await;
            let phase = Phase {
                targets: spec.targets.clone(),
                warmup: s.warmup(),
                measure: s.slice(),
                follow_leader: spec.follow_leader,
                seed: s.seed.wrapping_add(1000 * round as u64),
                make_op: op_maker(spec.workload, phase_base + 1000 * round as u64 + k as u64),
            };
            let (cpu0, me0, t0) = (
                procs.cpu_seconds(),
                machine::process_cpu_seconds(me).unwrap_or(0.0),
                std::time::Instant::now(),
            );
            let result = load::run(phase).await;
            let wall = t0.elapsed().as_secs_f64();
            rows[k].node_cpu += procs.cpu_seconds() - cpu0;
            rows[k].client_cpu += machine::process_cpu_seconds(me).unwrap_or(0.0) - me0;
            rows[k].wall += wall;
            procs.check_alive()?;
            let after = max_term(procs).await;
            eprintln!(
                "  round {} {:<34} {:>8.0} ops/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {:?}",
                round + 1,
                spec.label,
                result.ops_per_sec(),
                result.p50_ms(),
                result.p99_ms(),
                result.errors
            );
            rows[k].result.merge(result);
            rows[k].elections += after.saturating_sub(before);
        }
    }
    Ok(rows)
}

/// The read paths in the order each round runs them: `BENCH_READ_ORDER` (comma list of
/// path names, e.g. `stale,lease,log`) or all five in the protocol's order.
fn read_order() -> anyhow::Result<Vec<ReadMode>> {
    match std::env::var("BENCH_READ_ORDER") {
        Ok(s) => s
            .split(',')
            .map(|m| m.trim().parse::<ReadMode>().map_err(anyhow::Error::msg))
            .collect(),
        Err(_) => Ok(ReadMode::ALL.to_vec()),
    }
}

/// Writes the keys the read phases pick from: 16 writers, all acknowledged.
async fn preload(leader_addr: &str) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for w in 0..READ_CLIENTS {
        let addr = leader_addr.to_string();
        tasks.push(tokio::spawn(async move {
            let mut c = procs::connect(&addr).await?;
            for k in (w..READ_KEYS).step_by(READ_CLIENTS) {
                let op = Operation::Put(command::Put {
                    key: format!("pre-{k}"),
                    value: k as i64,
                    write_id: WriteId {
                        client: 9_000_000 + w as u64,
                        seq: k as u64 + 1,
                    },
                });
                if let Err(e) = c.call(op, Duration::from_secs(10)).await? {
                    anyhow::bail!("preload of pre-{k} failed: {e:?}");
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("preload task")??;
    }
    Ok(())
}

/// Starts a cluster with `--fsync fsync` and waits for its leader; returns it with the
/// leader's position.
async fn start_cluster(
    root: &Path,
    label: &str,
    fsync: &str,
) -> anyhow::Result<(NodeProcs, usize)> {
    let mut procs = NodeProcs::start(3, root, label, &["--fsync", fsync])?;
    let leader = procs.wait_for_leader(ELECTION_DEADLINE).await?;
    Ok((procs, leader))
}

/// The put benchmark: batch and per-entry clusters, slices interleaved.
async fn put_bench(root: &Path, s: &Settings) -> anyhow::Result<Vec<Row>> {
    eprintln!("puts: starting a --fsync batch and a --fsync per-entry cluster");
    let (batch, lb) = start_cluster(root, "puts-batch", "batch").await?;
    let (per_entry, lp) = start_cluster(root, "puts-per-entry", "per-entry").await?;
    let leaders = [
        batch.client_addrs[lb].clone(),
        per_entry.client_addrs[lp].clone(),
    ];
    let mut clusters = [batch, per_entry];
    let mut specs = Vec::new();
    for n in PUT_CLIENTS {
        for (c, name) in ["batch", "per-entry"].iter().enumerate() {
            specs.push(Spec {
                label: format!("put {name} x{n}"),
                cluster: c,
                targets: vec![leaders[c].clone(); n],
                follow_leader: true,
                workload: Workload::Put,
            });
        }
    }
    run_interleaved("puts", root, &mut clusters, &specs, s, 1).await
}

/// The read benchmark: one `--fsync batch` cluster, five read paths and a put for
/// comparison, slices interleaved.
async fn read_bench(root: &Path, s: &Settings) -> anyhow::Result<Vec<Row>> {
    eprintln!("reads: starting a --fsync batch cluster and preloading {READ_KEYS} keys");
    let (procs, leader) = start_cluster(root, "reads", "batch").await?;
    let laddr = procs.client_addrs[leader].clone();
    preload(&laddr).await?;
    let followers: Vec<String> = (0..procs.client_addrs.len())
        .filter(|&i| i != leader)
        .map(|i| procs.client_addrs[i].clone())
        .collect();
    let mut specs: Vec<Spec> = read_order()?
        .into_iter()
        .map(|mode| Spec {
            label: match mode {
                ReadMode::Follower => "follower (clients on followers)".to_string(),
                m => m.as_str().to_string(),
            },
            cluster: 0,
            targets: (0..READ_CLIENTS)
                .map(|i| match mode {
                    ReadMode::Follower => followers[i % followers.len()].clone(),
                    _ => laddr.clone(),
                })
                .collect(),
            follow_leader: mode != ReadMode::Follower,
            workload: Workload::Read(mode),
        })
        .collect();
    specs.push(Spec {
        label: "(put, for comparison)".into(),
        cluster: 0,
        targets: vec![laddr.clone(); READ_CLIENTS],
        follow_leader: true,
        workload: Workload::Put,
    });
    run_interleaved("reads", root, &mut [procs], &specs, s, 500_000).await
}

fn row_cells(r: &Row) -> String {
    format!(
        "| {} | {:.0} | {:.2} | {:.2} | {} | {} | {:.0} | {:.0} |",
        r.label,
        r.result.ops_per_sec(),
        r.result.p50_ms(),
        r.result.p99_ms(),
        r.result.error_count(),
        r.elections,
        r.node_cpu_pct(),
        r.client_cpu_pct(),
    )
}

/// Column headings matching [`row_cells`].
const ROW_HEAD: &str =
    "| ops/s | p50 ms | p99 ms | errors | elections | nodes CPU % | client CPU % |";
const ROW_SEP: &str = "|---|---|---|---|---|---|---|";

fn fsync_line(root: &Path, when: &str, samples: u32) -> String {
    match machine::fsync_latency(root, samples) {
        Ok(f) => format!(
            "- disk fsync {when} (write 4 KiB + fdatasync x{} in {}): mean {:.0} us, p50 {} us, p99 {} us, max {} us",
            f.samples,
            root.display(),
            f.mean_us,
            f.p50_us,
            f.p99_us,
            f.max_us
        ),
        Err(e) => format!("- disk fsync {when}: could not measure: {e}"),
    }
}

fn print_puts(rows: &[Row]) {
    println!("### Puts (closed loop, unique keys, one connection per client, --fsync on)");
    println!();
    println!("| configuration {ROW_HEAD}");
    println!("|---{ROW_SEP}");
    for r in rows {
        println!("{}", row_cells(r));
    }
    println!();
    println!("| clients | batch ops/s | per-entry ops/s | batch / per-entry |");
    println!("|---|---|---|---|");
    for pair in rows.chunks(2) {
        if let [b, p] = pair {
            let n = b.label.rsplit('x').next().unwrap_or("?");
            println!(
                "| {n} | {:.0} | {:.0} | {:.2}x |",
                b.result.ops_per_sec(),
                p.result.ops_per_sec(),
                b.result.ops_per_sec() / p.result.ops_per_sec().max(1e-9)
            );
        }
    }
    println!();
}

fn print_reads(rows: &[Row]) {
    let stale = rows
        .iter()
        .find(|r| r.label == "stale")
        .map(|r| (r.result.ops_per_sec(), r.result.p50_ms()))
        .unwrap_or((0.0, 0.0));
    println!("### Reads ({READ_CLIENTS} clients, no faults, --fsync batch)");
    println!();
    println!("| path {ROW_HEAD} ops/s vs stale | p50 vs stale |");
    println!("|---{ROW_SEP}---|---|");
    for r in rows {
        println!(
            "{} {:.2} | {:.2} |",
            row_cells(r),
            r.result.ops_per_sec() / stale.0.max(1e-9),
            r.result.p50_ms() / stale.1.max(1e-9)
        );
    }
    println!();
}

fn main() -> anyhow::Result<()> {
    let s = Settings::from_env()?;
    let m = machine::Machine::probe();
    let root = tempfile::tempdir().context("creating the temp dir")?;
    println!("## node cluster benchmark");
    println!();
    println!(
        "- machine: {} CPUs, {}, kernel {}",
        m.cpus, m.cpu_model, m.kernel
    );
    println!("{}", fsync_line(root.path(), "at start", FSYNC_SAMPLES));
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("- load average at start: {}", load_avg.trim());
    println!(
        "- {:.1} s measured per configuration in {} interleaved rounds ({:.2} s slices, {:.2} s warm-up each); \
         3 nodes, real processes, loopback; client seed {}",
        s.measure.as_secs_f64(),
        s.rounds,
        s.slice().as_secs_f64(),
        s.warmup().as_secs_f64(),
        s.seed
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the client runtime")?;
    let (puts, reads) = rt.block_on(async {
        let puts = if s.puts {
            put_bench(root.path(), &s).await?
        } else {
            Vec::new()
        };
        let reads = if s.reads {
            read_bench(root.path(), &s).await?
        } else {
            Vec::new()
        };
        anyhow::Ok((puts, reads))
    })?;
    println!("{}", fsync_line(root.path(), "at end", FSYNC_SAMPLES));
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("- load average at end: {}", load_avg.trim());
    println!();
    if !puts.is_empty() {
        print_puts(&puts);
    }
    if !reads.is_empty() {
        print_reads(&reads);
    }
    Ok(())
}
