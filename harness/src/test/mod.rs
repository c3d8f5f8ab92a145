//! `harness test`: start a system, run a workload under the nemesis schedule, heal, final
//! reads, stop, check the history, write `results.json` and the report; exit with the
//! verdict's code (see `docs/spec/cli.md`).
//!
//! The run is a pipeline, one module a stage:
//! [`args`] (the options) → [`plan`] (checked and typed) → [`runner`] (one run: directory,
//! system started and stopped) → [`drive`] (workload, [`faults`], heal, recovery, final reads,
//! convergence) → [`check`] (checkers, `results.json`, report) → [`terminal`] (what is printed).

pub mod args;
pub mod check;
pub mod drive;
pub mod faults;
pub mod plan;
pub mod runner;
pub mod terminal;

use rand::Rng;

use crate::exit;
pub use args::TestArgs;
pub use plan::{plan, Failure, Plan};
pub use runner::{run_test, RunOutcome};

/// Runs `harness test` (all `--test-count` runs); returns the exit code.
pub fn run(args: &TestArgs) -> u8 {
    let plan = match plan(args) {
        Ok(p) => p,
        Err(f) => {
            eprintln!("harness test: {}", f.message);
            return f.code;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("harness test: cannot start the async runtime: {e}");
            return exit::HARNESS_FAILED;
        }
    };
    if let Err(e) = crate::interrupt::install_handler(&rt) {
        eprintln!("harness test: {e:#}");
        return exit::HARNESS_FAILED;
    }
    let mut code = exit::VALID;
    let mut rng = rand::thread_rng();
    for i in 0..plan.args.test_count {
        if crate::interrupt::token().is_cancelled() {
            break;
        }
        // With --test-count, the first run uses --seed and the next ones seed + i, so each is
        // reproducible on its own.
        let seed = match plan.args.seed {
            Some(s) => s.wrapping_add(i as u64),
            None => rng.gen::<u64>() >> 11,
        };
        let c = match rt.block_on(run_test(&plan, seed)) {
            Ok(outcome) => outcome.code,
            Err(e) => {
                eprintln!("harness test: {e:#}");
                exit::HARNESS_FAILED
            }
        };
        code = exit::worst(code, c);
    }
    code
}
