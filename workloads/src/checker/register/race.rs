//! Racing many searches on a few threads: each worker takes the next search from a shared
//! queue, runs it for a short time slice and puts it back if undecided, so a hopeless key
//! never holds up the others. Unless every anomaly is asked for, the first invalid key of a
//! read mode cancels the rest of that mode (its verdict is already known).

use super::search::{MemBudget, Outcome, Search};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a search runs before yielding its thread to the next one.
const SLICE: Duration = Duration::from_millis(20);

/// Why a task of an already-invalid group was not (fully) checked.
pub(crate) const CANCELLED: &str = "cancelled: another key already decided the verdict";

/// The result of one task.
#[derive(Debug)]
pub(crate) struct Finished {
    pub outcome: Outcome,
    pub elapsed: Duration,
    pub steps: u64,
    pub cached: usize,
}

enum Slot {
    New(usize),
    Running(usize, Box<Search>, Duration),
}

/// Runs every task (`groups[i]` is the cancel group, e.g. the read mode, of task `i`;
/// `build(i)` makes its search) on `threads` threads until decided, `deadline`, or the memory
/// budget. With `cancel_on_invalid`, the first invalid task of a group cancels the group's
/// others. Returns one result per task, in task order.
pub(crate) fn race(
    groups: &[u32],
    build: &(dyn Fn(usize) -> Search + Sync),
    threads: usize,
    deadline: Instant,
    memory_limit: usize,
    cancel_on_invalid: bool,
) -> Vec<Finished> {
    let n = groups.len();
    let n_groups = groups.iter().map(|&g| g as usize + 1).max().unwrap_or(0);
    let cancel: Vec<AtomicBool> = (0..n_groups).map(|_| AtomicBool::new(false)).collect();
    let queue: Mutex<VecDeque<Slot>> = Mutex::new((0..n).map(Slot::New).collect());
    let results: Mutex<Vec<Option<Finished>>> = Mutex::new((0..n).map(|_| None).collect());
    let mem = MemBudget::new(memory_limit);
    let worker = || loop {
        let slot = match queue.lock() {
            Ok(mut q) => q.pop_front(),
            Err(_) => None,
        };
        let Some(slot) = slot else { break };
        let (i, mut search, spent) = match slot {
            Slot::New(i) if cancel[groups[i] as usize].load(Ordering::Relaxed) => {
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(Finished {
                        outcome: Outcome::GaveUp(CANCELLED.into()),
                        elapsed: Duration::ZERO,
                        steps: 0,
                        cached: 0,
                    });
                }
                continue;
            }
            Slot::New(i) => (i, Box::new(build(i)), Duration::ZERO),
            Slot::Running(i, s, spent) => (i, s, spent),
        };
        let flag = &cancel[groups[i] as usize];
        let started = Instant::now();
        let outcome = search.run((started + SLICE).min(deadline), deadline, flag, &mem);
        let spent = spent + started.elapsed();
        if let Outcome::Paused = outcome {
            if let Ok(mut q) = queue.lock() {
                q.push_back(Slot::Running(i, search, spent));
            }
            continue;
        }
        if cancel_on_invalid && matches!(outcome, Outcome::Invalid { .. }) {
            flag.store(true, Ordering::Relaxed);
        }
        let finished = Finished {
            outcome,
            elapsed: spent,
            steps: search.steps,
            cached: search.cache_len(),
        };
        search.finish(&mem);
        drop(search);
        if let Ok(mut r) = results.lock() {
            r[i] = Some(finished);
        }
    };
    let workers = threads.max(1).min(n.max(1));
    if workers == 1 {
        // One worker: no thread to spawn (small histories are checked in microseconds).
        worker();
    } else {
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(worker);
            }
        });
    }
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or(Finished {
                outcome: Outcome::GaveUp("not checked (a worker thread failed)".into()),
                elapsed: Duration::ZERO,
                steps: 0,
                cached: 0,
            })
        })
        .collect()
}
