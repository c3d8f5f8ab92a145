//! The set workload's generator: unique integer adds to the one key [`SET_KEY`], and now and
//! then a read of the whole set.
//!
//! Elements are 0, 1, 2, ... in generation order, so every element is attempted at most once
//! and the checker can tell lost (acknowledged, missing), unexpected (never attempted) and
//! recovered (indeterminate, present) elements apart.
//!
//! Reads during the run let the checker tell when each add became stable (present in every
//! later read) and which reads were stale (see `checker::set`). The final reads of the whole
//! set from every node are still issued by the driver after the run (see
//! `driver::final_set_reads`).
//!
//! Cost: every read returns the whole set, so reads at a fixed fraction of operations would
//! make the history grow with the square of the run's length. Instead a read is issued once
//! at least [`READ_EVERY`] operations and at least (elements added) / [`READ_SPREAD`]
//! operations have passed since the previous one: 1 operation in 10 while the set holds
//! fewer than 1,000 elements, then spaced so that each read returns about 1 % more elements
//! than the last. The reads then return in total about `READ_SPREAD` (100) elements per
//! element added, plus about 50,000 for the first 1,000: linear in the run's length (about
//! 20 MB of history for 30,000 adds). The price is resolution: the stable latency of an add
//! is only known to within the gap between reads (10 operations at first, 1 % of the
//! set's size later).

use node::protocol::ReadMode;

use super::op::{Generator, GeneratorError, IntendedOp};

/// The key the set workload adds to and reads.
pub const SET_KEY: &str = "set";

/// The fewest operations from one read to the next (a read is one operation in this many
/// while the set is small).
pub const READ_EVERY: u64 = 10;

/// Once the set is large, reads are at least (elements added) / `READ_SPREAD` operations
/// apart, which bounds the history's size (see the module doc).
pub const READ_SPREAD: u64 = 100;

/// The set generator. It uses no randomness: the sequence is the same for every seed.
#[derive(Debug)]
pub struct SetGenerator {
    next: i64,
    /// Modes the reads cycle through, in order; empty: adds only.
    read_modes: Vec<ReadMode>,
    /// Operations generated since the last read.
    since_read: u64,
    /// Reads generated (which mode is next).
    reads: u64,
}

impl Default for SetGenerator {
    fn default() -> Self {
        SetGenerator::new()
    }
}

impl SetGenerator {
    /// A generator of adds only, whose first element is 0.
    pub fn new() -> SetGenerator {
        SetGenerator {
            next: 0,
            read_modes: Vec::new(),
            since_read: 0,
            reads: 0,
        }
    }

    /// A generator of adds (first element 0) and whole-set reads (see the module doc for how
    /// often), the reads cycling through `read_modes` in order.
    pub fn with_reads(read_modes: &[ReadMode]) -> Result<SetGenerator, GeneratorError> {
        if read_modes.is_empty() {
            return Err(GeneratorError::NoReadModes);
        }
        Ok(SetGenerator {
            read_modes: read_modes.to_vec(),
            ..SetGenerator::new()
        })
    }
}

impl Generator for SetGenerator {
    fn next_op(&mut self) -> IntendedOp {
        self.since_read += 1;
        let gap = READ_EVERY.max(self.next as u64 / READ_SPREAD);
        if !self.read_modes.is_empty() && self.since_read >= gap {
            self.since_read = 0;
            let mode = self.read_modes[(self.reads % self.read_modes.len() as u64) as usize];
            self.reads += 1;
            return IntendedOp::Read {
                key: SET_KEY.to_string(),
                mode,
            };
        }
        let element = self.next;
        self.next += 1;
        IntendedOp::Add {
            key: SET_KEY.to_string(),
            element,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_are_unique_and_to_the_set_key() {
        let mut g = SetGenerator::new();
        for i in 0..100 {
            assert_eq!(
                g.next_op(),
                IntendedOp::Add {
                    key: SET_KEY.into(),
                    element: i
                }
            );
        }
    }

    #[test]
    fn reads_are_one_in_ten_then_spread_and_cycle_modes() {
        let modes = [ReadMode::Lease, ReadMode::Log];
        let mut g = SetGenerator::with_reads(&modes).unwrap();
        let ops: Vec<IntendedOp> = (0..100).map(|_| g.next_op()).collect();
        let reads: Vec<usize> = (0..100)
            .filter(|&i| matches!(ops[i], IntendedOp::Read { .. }))
            .collect();
        assert_eq!(reads, vec![9, 19, 29, 39, 49, 59, 69, 79, 89, 99]);
        assert_eq!(ops[9].read_mode(), Some(ReadMode::Lease));
        assert_eq!(ops[19].read_mode(), Some(ReadMode::Log));
        assert_eq!(ops[29].read_mode(), Some(ReadMode::Lease));
        // Adds stay 0, 1, 2, ... with the reads in between.
        let adds: Vec<i64> = ops
            .iter()
            .filter_map(|o| match o {
                IntendedOp::Add { element, .. } => Some(*element),
                _ => None,
            })
            .collect();
        assert_eq!(adds, (0..90).collect::<Vec<_>>());
        // Later the reads are spread: the elements all reads return stay linear in the adds.
        let (mut added, mut read_volume) = (90u64, 0u64);
        for _ in 0..200_000 {
            match g.next_op() {
                IntendedOp::Add { .. } => added += 1,
                _ => read_volume += added,
            }
        }
        assert!(
            read_volume <= READ_SPREAD * 2 * added + 100_000,
            "{read_volume} elements read for {added} added"
        );
        assert!(SetGenerator::with_reads(&[]).is_err());
    }
}
