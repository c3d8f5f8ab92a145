//! The set workload's generator: unique integer adds to the one key [`SET_KEY`].
//!
//! Elements are 0, 1, 2, ... in generation order, so every element is attempted at most once
//! and the checker can tell lost (acknowledged, missing), unexpected (never attempted) and
//! recovered (indeterminate, present) elements apart. The final reads of the whole set from
//! every node are issued by the driver after the run (see `driver::final_set_reads`), not by
//! this generator.

use crate::generator::{Generator, IntendedOp};

/// The key the set workload adds to and reads.
pub const SET_KEY: &str = "set";

/// The set generator. It uses no randomness: the sequence is the same for every seed.
#[derive(Debug, Default)]
pub struct SetGenerator {
    next: i64,
}

impl SetGenerator {
    /// A generator whose first element is 0.
    pub fn new() -> SetGenerator {
        SetGenerator { next: 0 }
    }
}

impl Generator for SetGenerator {
    fn next_op(&mut self) -> IntendedOp {
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
}
