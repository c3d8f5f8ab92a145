//! Seeded property tests: histories of random concurrent clients against a real sequential
//! register are always linearizable; changing one read to a value that was never current
//! during it always makes them not.

use workloads::checker::gen::{corrupt_read, generate, GenConfig};
use workloads::checker::{check_register, CheckOptions, Verdict};

/// Base seed; override with `CHECKER_SEED` to reproduce a failure.
fn base_seed() -> u64 {
    std::env::var("CHECKER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_127)
}

fn config(seed: u64) -> GenConfig {
    // Derive the shape from the seed so that runs cover several.
    GenConfig {
        ops: 200 + (seed % 7) as usize * 150,
        keys: 1 + (seed % 3) as usize,
        concurrency: 2 + (seed % 49) as usize,
        info_rate: [0.0, 0.02, 0.1][(seed % 3) as usize],
        fail_rate: 0.05,
        read_modes: if seed.is_multiple_of(2) {
            vec![]
        } else {
            vec!["lease".into(), "read-index".into()]
        },
        seed,
    }
}

#[test]
fn real_register_histories_are_valid() {
    let base = base_seed();
    for i in 0..150 {
        let seed = base.wrapping_add(i);
        let cfg = config(seed);
        let events = generate(&cfg);
        let r = check_register(&events, &CheckOptions::default())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(r.valid, Verdict::Valid, "seed {seed} ({cfg:?})");
    }
}

#[test]
fn one_impossible_read_is_invalid() {
    let base = base_seed();
    for i in 0..150 {
        let seed = base.wrapping_add(i);
        let cfg = config(seed);
        let mut events = generate(&cfg);
        let Some((pos, v)) = corrupt_read(&mut events, seed) else {
            continue;
        };
        let r = check_register(&events, &CheckOptions::default())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(
            r.valid,
            Verdict::Invalid,
            "seed {seed}: read at line {pos} changed to {v} ({cfg:?})"
        );
        let a = r.anomalies().next().expect("an anomaly");
        assert!(!a.explanation.is_empty(), "seed {seed}");
    }
}
