//! What the benchmark ran on: CPU count and model, kernel, and how long one fsync of the
//! disk under the data directories takes (the floor of any durable write's latency).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;

/// A short description of the machine, from `/proc` and the standard library.
#[derive(Debug, Clone)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cpus: usize,
    /// `model name` of the first CPU in `/proc/cpuinfo` ("unknown" if absent).
    pub cpu_model: String,
    /// `/proc/sys/kernel/osrelease` ("unknown" if absent).
    pub kernel: String,
}

impl Machine {
    /// Reads the machine description; never fails (missing facts read "unknown").
    pub fn probe() -> Machine {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            cpus,
            cpu_model,
            kernel,
        }
    }
}

/// Latency of `write(4 KiB) + fdatasync` on one file, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct FsyncLatency {
    pub samples: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Appends 4 KiB and calls `fdatasync`, `samples` times, in a file inside `dir` (removed
/// afterwards), and reports the latency distribution of one such pair.
pub fn fsync_latency(dir: &Path, samples: u32) -> std::io::Result<FsyncLatency> {
    let path = dir.join("fsync-probe.bin");
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let block = [0xA5u8; 4096];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    for _ in 0..samples {
        let start = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        let us = (start.elapsed().as_micros() as u64).clamp(1, 60_000_000);
        hist.saturating_record(us);
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(FsyncLatency {
        samples: hist.len(),
        mean_us: hist.mean(),
        p50_us: hist.value_at_quantile(0.5),
        p99_us: hist.value_at_quantile(0.99),
        max_us: hist.max(),
    })
}

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// CPU time (user + system) a process has used so far, in seconds, from
/// `/proc/<pid>/stat`; `None` if the process is gone or the file is unreadable.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: fields are counted after its ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the whole line, so utime (14) and stime (15) are at
    // positions 11 and 12 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}
