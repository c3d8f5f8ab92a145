//! `cargo bench -p workloads --bench checker`: times the register checker on generated
//! histories and on the Knossos corpus, with peak memory.
//!
//! Each case runs in a child process (this binary with `--case NAME`) so that its peak
//! resident memory (`VmHWM` of `/proc/self/status`) is its own. A child is killed (by its
//! PID) if it runs longer than 300 s. Generated histories: concurrency 10 to 50, 1% `info`,
//! 2% `fail`, unique written values, fixed seeds (printed).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use workloads::checker::gen::{corrupt_read, generate, GenConfig};
use workloads::checker::{check_register, CheckOptions, Verdict};
use workloads::history::read_events;

struct Case {
    name: &'static str,
    /// Change one read to an impossible value (`gen::corrupt_read`): time to find the anomaly.
    corrupt: bool,
    ops: usize,
    keys: usize,
    concurrency: usize,
}

const CASES: &[Case] = &[
    Case {
        name: "100k-ops-10-keys-c30",
        corrupt: false,
        ops: 100_000,
        keys: 10,
        concurrency: 30,
    },
    Case {
        name: "1m-ops-100-keys-c50",
        corrupt: false,
        ops: 1_000_000,
        keys: 100,
        concurrency: 50,
    },
    Case {
        name: "10k-ops-1-key-c10",
        corrupt: false,
        ops: 10_000,
        keys: 1,
        concurrency: 10,
    },
    Case {
        name: "10k-ops-1-key-c50",
        corrupt: false,
        ops: 10_000,
        keys: 1,
        concurrency: 50,
    },
    Case {
        name: "1m-ops-100-keys-c50-bad",
        corrupt: true,
        ops: 1_000_000,
        keys: 100,
        concurrency: 50,
    },
];

const SEED: u64 = 42;
const CHILD_LIMIT: Duration = Duration::from_secs(300);

/// Peak resident set size of this process so far, in MiB.
fn vm_hwm_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn verdict(v: Verdict) -> &'static str {
    v.label()
}

fn run_generated(c: &Case) {
    let t = Instant::now();
    let mut events = generate(&GenConfig {
        ops: c.ops,
        keys: c.keys,
        concurrency: c.concurrency,
        info_rate: 0.01,
        fail_rate: 0.02,
        read_modes: Vec::new(),
        seed: SEED,
    });
    if c.corrupt {
        corrupt_read(&mut events, SEED);
    }
    let gen_s = t.elapsed().as_secs_f64();
    let hwm_gen = vm_hwm_mib();
    let t = Instant::now();
    let r = check_register(&events, &CheckOptions::default())
        .expect("generated history is well-formed");
    let check_s = t.elapsed().as_secs_f64();
    let steps: u64 = r
        .read_modes
        .values()
        .flat_map(|m| m.keys.values())
        .map(|k| k.steps)
        .sum();
    println!(
        "{:<24} seed {SEED}: {} ops ({} info) check {:.3} s  verdict {}  steps {}  | generate {:.2} s, peak RSS {:.0} MiB after generating, {:.0} MiB after checking",
        c.name,
        r.stats.ops,
        r.stats.info + r.stats.pending,
        check_s,
        verdict(r.valid),
        steps,
        gen_s,
        hwm_gen,
        vm_hwm_mib()
    );
}

fn run_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/histories/knossos");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("knossos corpus directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    let t = Instant::now();
    let histories: Vec<_> = files
        .iter()
        .map(|f| read_events(f).expect("corpus file"))
        .collect();
    let parse_s = t.elapsed().as_secs_f64();
    let opts = CheckOptions {
        threads: 1,
        ..CheckOptions::default()
    };
    let mut best = f64::MAX;
    let mut worst_file = (0.0, String::new());
    let (mut valid, mut invalid, mut unknown) = (0, 0, 0);
    for round in 0..5 {
        let t = Instant::now();
        for (f, h) in files.iter().zip(&histories) {
            let t1 = Instant::now();
            let r = check_register(h, &opts).expect("corpus file is well-formed");
            let dt = t1.elapsed().as_secs_f64();
            if round == 0 {
                match r.valid {
                    Verdict::Valid => valid += 1,
                    Verdict::Invalid => invalid += 1,
                    Verdict::Unknown => unknown += 1,
                }
            }
            if dt > worst_file.0 {
                worst_file = (
                    dt,
                    f.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                );
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{:<24} {} files: check {:.4} s (best of 5, 1 thread; parse {:.3} s)  {valid} valid, {invalid} invalid, {unknown} unknown; slowest file {} {:.2} ms; peak RSS {:.0} MiB",
        "knossos-corpus",
        files.len(),
        best,
        parse_s,
        worst_file.1,
        worst_file.0 * 1e3,
        vm_hwm_mib()
    );
}

fn run_case(name: &str) {
    if name == "knossos-corpus" {
        return run_corpus();
    }
    match CASES.iter().find(|c| c.name == name) {
        Some(c) => run_generated(c),
        None => eprintln!("unknown case {name}"),
    }
}

/// `--gen OPS,KEYS,CONCURRENCY,INFO,FAIL,SEED`: one custom generated case, in this process.
fn run_custom(spec: &str) {
    let f: Vec<&str> = spec.split(',').collect();
    let num = |i: usize, d: f64| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(d);
    let cfg = GenConfig {
        ops: num(0, 10_000.0) as usize,
        keys: num(1, 1.0) as usize,
        concurrency: num(2, 10.0) as usize,
        info_rate: num(3, 0.01),
        fail_rate: num(4, 0.02),
        read_modes: Vec::new(),
        seed: num(5, SEED as f64) as u64,
    };
    let events = generate(&cfg);
    let t = Instant::now();
    let r = check_register(
        &events,
        &CheckOptions {
            timeout: Duration::from_secs(20),
            ..CheckOptions::default()
        },
    )
    .expect("generated history is well-formed");
    let keys: Vec<_> = r
        .read_modes
        .values()
        .flat_map(|m| m.keys.values())
        .collect();
    println!(
        "{cfg:?}: {} in {:.3} s, steps {}, cached {}, reasons {:?}, peak RSS {:.0} MiB",
        verdict(r.valid),
        t.elapsed().as_secs_f64(),
        keys.iter().map(|k| k.steps).sum::<u64>(),
        keys.iter().map(|k| k.cached_states).sum::<usize>(),
        keys.iter()
            .filter_map(|k| k.reason.clone())
            .take(1)
            .collect::<Vec<_>>(),
        vm_hwm_mib()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--gen") {
        if let Some(spec) = args.get(i + 1) {
            run_custom(spec);
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--case") {
        if let Some(name) = args.get(i + 1) {
            run_case(name);
        }
        return;
    }
    // Optional filter: `cargo bench -p workloads --bench checker -- 1m` runs matching cases.
    let filter = args.iter().skip(1).find(|a| !a.starts_with('-')).cloned();
    let exe = std::env::current_exe().expect("own path");
    let names = std::iter::once("knossos-corpus").chain(CASES.iter().map(|c| c.name));
    for name in names {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let mut child = match Command::new(&exe)
            .args(["--case", name])
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{name}: cannot start child: {e}");
                continue;
            }
        };
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    if !status.success() {
                        eprintln!("{name}: child failed: {status}");
                    }
                    break;
                }
                Ok(None) if started.elapsed() > CHILD_LIMIT => {
                    eprintln!("{name}: over {CHILD_LIMIT:?}, killing child {}", child.id());
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    eprintln!("{name}: wait failed: {e}");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
}
