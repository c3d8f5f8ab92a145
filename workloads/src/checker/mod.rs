//! Checkers: linearizability of the register model and the set checker.
