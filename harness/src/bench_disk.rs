//! `harness bench-disk`: put throughput of a cluster whose data directories sit on the lazy
//! filesystem (what `--nemesis power` and `slow-disk` need) against the same cluster on plain
//! directories, measured in the same run with the same closed-loop client load.
//!
//! The two configurations are interleaved (plain, lazy, plain, lazy, ...), each on a fresh
//! cluster, so that a change of background load on a shared machine spreads over both.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use workloads::client::{Client, ClientConfig, Outcome, ProcessIds};
use workloads::generator::IntendedOp;
use workloads::recorder::Recorder;

use crate::cluster::{Cluster, ClusterOptions, NodeCommand};
use crate::exit;

/// Options of `harness bench-disk`.
#[derive(Args, Debug, Clone)]
pub struct BenchDiskArgs {
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Closed-loop clients (each sends its next put when the last one is answered).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Measured seconds per configuration per round.
    #[arg(long, default_value_t = 8.0)]
    pub seconds: f64,
    /// Rounds (each runs both configurations once).
    #[arg(long, default_value_t = 2)]
    pub rounds: u32,
    /// Seeds the nodes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Where the clusters' directories go (`<DIR>/bench-disk/<timestamp>/`).
    #[arg(long, default_value = "results")]
    pub results_dir: PathBuf,
    /// The binary under test (default: the `node` beside `harness`).
    #[arg(long)]
    pub node_bin: Option<PathBuf>,
}

/// Runs the benchmark and prints both figures and their ratio; exit 0, or 254/255.
pub fn run(args: &BenchDiskArgs) -> u8 {
    if args.nodes == 0
        || args.concurrency == 0
        || args.rounds == 0
        || !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 600.0)
    {
        eprintln!("harness bench-disk: need --nodes, --concurrency, --rounds >= 1 and --seconds in (0, 600]");
        return exit::BAD_USAGE;
    }
    if let Err(e) = lazyfs::mounts::check_available() {
        eprintln!("harness bench-disk: {e}");
        return exit::BAD_USAGE;
    }
    let command = match NodeCommand::resolve(args.node_bin.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("harness bench-disk: {e:#}");
            return exit::BAD_USAGE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("harness bench-disk: cannot start the async runtime: {e}");
            return exit::HARNESS_FAILED;
        }
    };
    match rt.block_on(bench(args, command)) {
        Ok(()) => exit::VALID,
        Err(e) => {
            eprintln!("harness bench-disk: {e:#}");
            exit::HARNESS_FAILED
        }
    }
}

async fn bench(args: &BenchDiskArgs, command: NodeCommand) -> anyhow::Result<()> {
    let dir = crate::run_dir::create(&args.results_dir, "bench-disk")?;
    for p in lazyfs::mounts::cleanup_stale(&args.results_dir) {
        eprintln!(
            "harness: unmounted a stale lazy filesystem at {}",
            p.display()
        );
    }
    eprintln!(
        "harness bench-disk: {} nodes, {} clients, {} s x {} rounds per configuration, seed {}; under {}",
        args.nodes,
        args.concurrency,
        args.seconds,
        args.rounds,
        args.seed,
        dir.display()
    );
    let mut totals = [(0u64, Duration::ZERO); 2];
    for round in 0..args.rounds {
        for (k, lazy) in [false, true].into_iter().enumerate() {
            let name = format!("{}-{round}", if lazy { "lazy" } else { "plain" });
            let (puts, took) = measure(args, &command, &dir.join(&name), lazy).await?;
            eprintln!(
                "harness bench-disk: round {round} {:5}: {:8.0} puts/s",
                if lazy { "lazy" } else { "plain" },
                puts as f64 / took.as_secs_f64()
            );
            totals[k].0 += puts;
            totals[k].1 += took;
        }
    }
    let rate = |(n, d): (u64, Duration)| n as f64 / d.as_secs_f64().max(1e-9);
    let (plain, lazy) = (rate(totals[0]), rate(totals[1]));
    let ratio = lazy / plain.max(1e-9);
    println!("plain directories: {plain:.0} puts/s");
    println!("lazy filesystem:   {lazy:.0} puts/s");
    println!("ratio lazy/plain:  {ratio:.2}");
    let out = json!({
        "nodes": args.nodes, "concurrency": args.concurrency, "seconds": args.seconds,
        "rounds": args.rounds, "seed": args.seed,
        "plain_puts_per_s": plain, "lazy_puts_per_s": lazy, "ratio": ratio,
    });
    std::fs::write(dir.join("bench.json"), serde_json::to_vec_pretty(&out)?)?;
    Ok(())
}

/// One configuration on a fresh cluster: ok puts over the measured time (after a second of
/// warm-up).
async fn measure(
    args: &BenchDiskArgs,
    command: &NodeCommand,
    dir: &std::path::Path,
    lazy: bool,
) -> anyhow::Result<(u64, Duration)> {
    std::fs::create_dir_all(dir)?;
    let cluster = Cluster::start(
        dir,
        &ClusterOptions {
            nodes: args.nodes,
            command: command.clone(),
            extra_args: vec![],
            seed: args.seed,
            node_env: Default::default(),
            lazy_fs: lazy,
            power_tear: false,
        },
    )
    .await?;
    let result = async {
        cluster
            .wait_for_leader(Duration::from_secs(30))
            .await
            .context("waiting for a leader")?;
        let nodes = cluster.workload_targets();
        let recorder = Recorder::in_memory();
        let warm = Instant::now() + Duration::from_secs(1);
        let end = warm + Duration::from_secs_f64(args.seconds);
        let clients = (0..args.concurrency).map(|c| {
            let mut client = Client::new(
                c as u64,
                ProcessIds::Stride(args.concurrency as u64),
                nodes.clone(),
                c % nodes.len(),
                ClientConfig::default(),
                recorder.clone(),
            );
            async move {
                let mut ok = 0u64;
                let mut i = 0i64;
                // Bounded by time: every put ends within the client's op timeout.
                while Instant::now() < end {
                    i += 1;
                    let op = IntendedOp::Write {
                        key: format!("c{c}"),
                        value: i,
                    };
                    let counted = Instant::now() >= warm;
                    if matches!(client.perform(op).await, Outcome::Ok(_)) && counted {
                        ok += 1;
                    }
                }
                ok
            }
        });
        let oks = futures::future::join_all(clients).await;
        anyhow::Ok((oks.iter().sum(), Duration::from_secs_f64(args.seconds)))
    }
    .await;
    cluster.shutdown().await;
    result
}
