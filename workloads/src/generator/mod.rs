//! Generators: seeded sources of the operations clients intend to perform.
//!
//! A generator is pure: it never looks at what the cluster answered, only at its own seeded
//! random stream and what it generated before, so the same seed gives the same sequence of
//! intended operations whatever the timing (which client performs which operation depends on
//! timing; the sequence does not). Clients pull from one shared generator.
//!
//! - `op` (re-exported here): what every generator produces and how it fails
//!   ([`IntendedOp`], [`Generator`], [`GeneratorError`]); the concrete generators import
//!   only that, never this module.
//! - [`register`]: reads, writes and cas over independent keys.
//! - [`set`]: unique adds to one set, with reads of the whole set now and then.
//!
//! This module alone names the concrete generators ([`build`]).

use node::protocol::ReadMode;

mod op;
pub mod register;
pub mod set;

pub use op::{Generator, GeneratorError, IntendedOp};
use register::RegisterGenerator;
use set::SetGenerator;

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
    fn workload_kind_parses() {
        assert_eq!("set".parse::<WorkloadKind>(), Ok(WorkloadKind::Set));
        assert!("queue".parse::<WorkloadKind>().is_err());
    }
}
