//! The register workload's generator: reads, writes and cas over independent keys.
//!
//! Written values are unique per key (a per-key counter from 1; cas's `new` comes from the
//! same counter), so a read's value names the one write it saw, which keeps the
//! linearizability check cheap and its explanations clear. A cas expects one of the last few
//! values generated for its key (or "no value" before any), so cas succeeds often enough to
//! matter while it also fails sometimes.

use std::collections::VecDeque;

use node::protocol::ReadMode;
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::op::{Generator, GeneratorError, IntendedOp};

/// How many recent values per key a cas may expect (bounds the generator's memory).
pub const RECENT_VALUES: usize = 4;

/// Percentages of reads and writes (the rest are cas).
const READ_PERCENT: u32 = 50;
const WRITE_PERCENT: u32 = 25;

/// The name of key `i`: `k0`, `k1`, ...
pub fn key_name(i: usize) -> String {
    format!("k{i}")
}

/// Seeded register generator; the same seed, keys and modes give the same operations.
#[derive(Debug)]
pub struct RegisterGenerator {
    rng: ChaCha8Rng,
    read_modes: Vec<ReadMode>,
    /// Per key: the next unique value to write.
    next_value: Vec<i64>,
    /// Per key: the most recent values generated (writes and cas `new`), newest last.
    recent: Vec<VecDeque<i64>>,
}

impl RegisterGenerator {
    /// A generator over `keys` keys (`k0`..`k{keys-1}`) whose reads use `read_modes` (one drawn
    /// uniformly per read when there are several).
    pub fn new(
        seed: u64,
        keys: usize,
        read_modes: &[ReadMode],
    ) -> Result<RegisterGenerator, GeneratorError> {
        if keys == 0 {
            return Err(GeneratorError::NoKeys);
        }
        if read_modes.is_empty() {
            return Err(GeneratorError::NoReadModes);
        }
        Ok(RegisterGenerator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            read_modes: read_modes.to_vec(),
            next_value: vec![1; keys],
            recent: vec![VecDeque::with_capacity(RECENT_VALUES); keys],
        })
    }

    fn fresh_value(&mut self, k: usize) -> i64 {
        let v = self.next_value[k];
        self.next_value[k] += 1;
        let recent = &mut self.recent[k];
        if recent.len() == RECENT_VALUES {
            recent.pop_front();
        }
        recent.push_back(v);
        v
    }
}

impl Generator for RegisterGenerator {
    fn next_op(&mut self) -> IntendedOp {
        let k = self.rng.gen_range(0..self.next_value.len());
        let key = key_name(k);
        let roll = self.rng.gen_range(0..100u32);
        if roll < READ_PERCENT {
            let mode = self.read_modes[self.rng.gen_range(0..self.read_modes.len())];
            IntendedOp::Read { key, mode }
        } else if roll < READ_PERCENT + WRITE_PERCENT {
            let value = self.fresh_value(k);
            IntendedOp::Write { key, value }
        } else {
            let recent = &self.recent[k];
            let expected = if recent.is_empty() {
                None
            } else {
                Some(recent[self.rng.gen_range(0..recent.len())])
            };
            let new = self.fresh_value(k);
            IntendedOp::Cas { key, expected, new }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn take(seed: u64, n: usize, modes: &[ReadMode]) -> Vec<IntendedOp> {
        let mut g = RegisterGenerator::new(seed, 3, modes).unwrap();
        (0..n).map(|_| g.next_op()).collect()
    }

    #[test]
    fn same_seed_same_operations() {
        for seed in [0u64, 1, 42, 0xdead_beef] {
            let a = take(seed, 500, &[ReadMode::Lease, ReadMode::Log]);
            let b = take(seed, 500, &[ReadMode::Lease, ReadMode::Log]);
            assert_eq!(a, b, "seed {seed}");
        }
        assert_ne!(
            take(1, 100, &[ReadMode::Log]),
            take(2, 100, &[ReadMode::Log])
        );
    }

    #[test]
    fn written_values_are_unique_per_key_and_cas_expects_a_generated_value() {
        let seed = 7;
        let ops = take(seed, 2000, &[ReadMode::ReadIndex]);
        let mut written: HashSet<(String, i64)> = HashSet::new();
        let (mut reads, mut writes, mut cas) = (0, 0, 0);
        for op in &ops {
            match op {
                IntendedOp::Write { key, value } => {
                    writes += 1;
                    assert!(
                        written.insert((key.clone(), *value)),
                        "seed {seed}: dup {op:?}"
                    );
                }
                IntendedOp::Cas { key, expected, new } => {
                    cas += 1;
                    if let Some(e) = expected {
                        assert!(written.contains(&(key.clone(), *e)), "seed {seed}: {op:?}");
                    }
                    assert!(
                        written.insert((key.clone(), *new)),
                        "seed {seed}: dup {op:?}"
                    );
                }
                IntendedOp::Read { key, mode } => {
                    reads += 1;
                    assert_eq!(*mode, ReadMode::ReadIndex);
                    assert!(["k0", "k1", "k2"].contains(&key.as_str()));
                }
                IntendedOp::Add { .. } => panic!("seed {seed}: add in register workload"),
            }
        }
        assert!(
            reads > 800 && writes > 350 && cas > 350,
            "seed {seed}: {reads} {writes} {cas}"
        );
    }

    #[test]
    fn several_modes_are_all_drawn() {
        let modes = [ReadMode::Log, ReadMode::Lease, ReadMode::Stale];
        let seen: HashSet<ReadMode> = take(3, 500, &modes)
            .iter()
            .filter_map(IntendedOp::read_mode)
            .collect();
        assert_eq!(seen.len(), 3, "seed 3");
    }

    #[test]
    fn bad_configuration_is_an_error() {
        assert_eq!(
            RegisterGenerator::new(0, 0, &[ReadMode::Log]).unwrap_err(),
            GeneratorError::NoKeys
        );
        assert_eq!(
            RegisterGenerator::new(0, 2, &[]).unwrap_err(),
            GeneratorError::NoReadModes
        );
    }
}
