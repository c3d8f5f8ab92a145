//! The three-valued verdict shared by every checker.

use serde::{Serialize, Serializer};

/// The outcome of a check. Serializes as `true`, `false` or `"unknown"` (Jepsen's convention,
/// and the `valid` field of `results.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Certainly correct.
    Valid,
    /// An anomaly was found.
    Invalid,
    /// The checker gave up (time or memory budget, nothing to check); never a pass.
    Unknown,
}

impl Verdict {
    /// The worse of two verdicts: `Invalid` over `Unknown` over `Valid`.
    pub fn worst(self, other: Verdict) -> Verdict {
        use Verdict::*;
        match (self, other) {
            (Invalid, _) | (_, Invalid) => Invalid,
            (Unknown, _) | (_, Unknown) => Unknown,
            _ => Valid,
        }
    }

    /// The exit code of `harness check` for this verdict: 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown => 2,
        }
    }

    /// `valid`, `INVALID` or `unknown`, as printed by `harness check`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "INVALID",
            Verdict::Unknown => "unknown",
        }
    }
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Verdict::Valid => s.serialize_bool(true),
            Verdict::Invalid => s.serialize_bool(false),
            Verdict::Unknown => s.serialize_str("unknown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_jepsen_does() {
        assert_eq!(serde_json::to_string(&Verdict::Valid).unwrap(), "true");
        assert_eq!(serde_json::to_string(&Verdict::Invalid).unwrap(), "false");
        assert_eq!(
            serde_json::to_string(&Verdict::Unknown).unwrap(),
            "\"unknown\""
        );
    }

    #[test]
    fn worst_orders_invalid_over_unknown_over_valid() {
        use Verdict::*;
        assert_eq!(Valid.worst(Unknown), Unknown);
        assert_eq!(Unknown.worst(Invalid), Invalid);
        assert_eq!(Valid.worst(Valid), Valid);
        assert_eq!(Invalid.exit_code(), 1);
    }
}
