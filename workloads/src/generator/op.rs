//! What every workload generator produces ([`IntendedOp`]), the trait they implement
//! ([`Generator`]) and why building one fails ([`GeneratorError`]). The concrete generators
//! (`register`, `set`) depend on this module only; `generator` (the parent) names them.

use node::protocol::ReadMode;

/// One operation a client intends to perform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntendedOp {
    /// Read `key` through `mode`.
    Read { key: String, mode: ReadMode },
    /// Set `key` to `value`.
    Write { key: String, value: i64 },
    /// Set `key` to `new` if it holds `expected` (`None`: no value).
    Cas {
        key: String,
        expected: Option<i64>,
        new: i64,
    },
    /// Add `element` to the set at `key`.
    Add { key: String, element: i64 },
}

impl IntendedOp {
    /// The history's `f`: `read`, `write`, `cas` or `add`.
    pub fn f(&self) -> &'static str {
        match self {
            IntendedOp::Read { .. } => "read",
            IntendedOp::Write { .. } => "write",
            IntendedOp::Cas { .. } => "cas",
            IntendedOp::Add { .. } => "add",
        }
    }

    /// The key the operation is about.
    pub fn key(&self) -> &str {
        match self {
            IntendedOp::Read { key, .. }
            | IntendedOp::Write { key, .. }
            | IntendedOp::Cas { key, .. }
            | IntendedOp::Add { key, .. } => key,
        }
    }

    /// The read path, for reads.
    pub fn read_mode(&self) -> Option<ReadMode> {
        match self {
            IntendedOp::Read { mode, .. } => Some(*mode),
            _ => None,
        }
    }

    /// The invocation's `value` in the history (spec: `null` for reads, the integer for writes
    /// and adds, `[expected, new]` for cas).
    pub fn invoke_value(&self) -> serde_json::Value {
        match self {
            IntendedOp::Read { .. } => serde_json::Value::Null,
            IntendedOp::Write { value, .. } => (*value).into(),
            IntendedOp::Cas { expected, new, .. } => serde_json::json!([expected, new]),
            IntendedOp::Add { element, .. } => (*element).into(),
        }
    }

    /// True for operations that may change state (they carry a write id and, when refused
    /// by a follower, are retried at the leader).
    pub fn is_write(&self) -> bool {
        !matches!(self, IntendedOp::Read { .. })
    }
}

/// A source of intended operations. Infinite: `next_op` always has one more.
pub trait Generator: Send {
    /// The next intended operation.
    fn next_op(&mut self) -> IntendedOp;
}

/// Why a generator could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GeneratorError {
    /// The register workload needs at least one key.
    #[error("the register workload needs at least one key (--keys)")]
    NoKeys,
    /// Reads need at least one read mode.
    #[error("at least one read mode is needed")]
    NoReadModes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_values_follow_the_spec() {
        let cas = IntendedOp::Cas {
            key: "k0".into(),
            expected: None,
            new: 2,
        };
        assert_eq!(cas.invoke_value(), serde_json::json!([null, 2]));
        let r = IntendedOp::Read {
            key: "k0".into(),
            mode: ReadMode::Lease,
        };
        assert_eq!(r.invoke_value(), serde_json::Value::Null);
        assert!(!r.is_write());
        assert_eq!(r.f(), "read");
    }
}
