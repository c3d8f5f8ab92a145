//! Generators: seeded sources of the operations clients intend to perform.
//!
//! A generator is pure: it never looks at what the cluster answered, only at its own seeded
//! random stream and what it generated before, so the same seed gives the same sequence of
//! intended operations whatever the timing (which client performs which operation depends on
//! timing; the sequence does not). Clients pull from one shared generator.

use node::protocol::ReadMode;

use crate::register::RegisterGenerator;
use crate::set::SetGenerator;

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

/// Which workload to run, and so which checker judges its history: the one definition of the
/// register/set choice (`harness test --workload`, `harness soak --workload`, `harness check
/// --model`, and [`crate::checker::detect_model`]). Its name is [`WorkloadKind::as_str`] on the
/// command line and in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    /// Reads, writes and cas over independent keys (checked for linearizability).
    Register,
    /// Unique adds to one set with reads of the whole set now and then, then final reads
    /// (checked for lost, stale and never-read elements).
    Set,
}

impl std::str::FromStr for WorkloadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "register" => Ok(WorkloadKind::Register),
            "set" => Ok(WorkloadKind::Set),
            _ => Err(format!("unknown workload {s:?} (expected register or set)")),
        }
    }
}

impl WorkloadKind {
    /// `register` or `set`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::Set => "set",
        }
    }
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

/// Builds the generator of `kind` from `seed`. `keys` matters to the register workload only;
/// `read_modes` are the paths of both workloads' reads (the set workload cycles through them).
pub fn build(
    kind: WorkloadKind,
    seed: u64,
    keys: usize,
    read_modes: &[ReadMode],
) -> Result<Box<dyn Generator>, GeneratorError> {
    Ok(match kind {
        WorkloadKind::Register => Box::new(RegisterGenerator::new(seed, keys, read_modes)?),
        WorkloadKind::Set => Box::new(SetGenerator::with_reads(read_modes)?),
    })
}

/// Parses a `--read-mode` value: one mode, a comma-separated list, or `all` (the four
/// linearizable paths). Duplicates are removed; the order is kept.
pub fn parse_read_modes(s: &str) -> Result<Vec<ReadMode>, String> {
    if s.trim() == "all" {
        return Ok(vec![
            ReadMode::Log,
            ReadMode::ReadIndex,
            ReadMode::Lease,
            ReadMode::Follower,
        ]);
    }
    let mut modes = Vec::new();
    for part in s.split(',') {
        let m: ReadMode = part.trim().parse()?;
        if !modes.contains(&m) {
            modes.push(m);
        }
    }
    if modes.is_empty() {
        return Err("no read mode given".into());
    }
    Ok(modes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_modes_parse() {
        assert_eq!(parse_read_modes("lease").unwrap(), vec![ReadMode::Lease]);
        assert_eq!(parse_read_modes("all").unwrap().len(), 4);
        assert_eq!(
            parse_read_modes("stale, log,stale").unwrap(),
            vec![ReadMode::Stale, ReadMode::Log]
        );
        assert!(parse_read_modes("fast").is_err());
        assert!(parse_read_modes("").is_err());
    }

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

    #[test]
    fn workload_kind_parses() {
        assert_eq!("set".parse::<WorkloadKind>(), Ok(WorkloadKind::Set));
        assert!("queue".parse::<WorkloadKind>().is_err());
    }
}
