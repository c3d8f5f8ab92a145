//! The three-valued verdict: the one definition shared by every checker and by the harness's
//! `check`, `test`, `report`, `soak` and `selftest` (its label, its exit code, its JSON form).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The outcome of a check. Serializes as `true`, `false` or `"unknown"` (Jepsen's convention,
/// and the `valid` field of `results.json`). Ordered by severity: `Valid < Unknown < Invalid`,
/// so the maximum of several verdicts is [`Verdict::worst`] of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// Certainly correct.
    Valid,
    /// The checker gave up (time or memory budget, nothing to check), or no result exists;
    /// never a pass.
    Unknown,
    /// An anomaly was found.
    Invalid,
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

    /// The exit code of `harness check`, `harness test` and the other commands for this
    /// verdict (`docs/spec/cli.md`): 0 valid, 1 invalid, 2 unknown.
    pub const fn exit_code(self) -> u8 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown => 2,
        }
    }

    /// The verdict whose [`Verdict::exit_code`] is `code`; `None` for any other code (usage
    /// errors, harness failures).
    pub fn from_exit_code(code: u8) -> Option<Verdict> {
        [Verdict::Valid, Verdict::Unknown, Verdict::Invalid]
            .into_iter()
            .find(|v| v.exit_code() == code)
    }

    /// `valid`, `INVALID` or `unknown`, as printed by `harness check`, `test`, `soak` and
    /// `selftest` and shown in reports.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "INVALID",
            Verdict::Unknown => "unknown",
        }
    }

    /// `valid`, `invalid` or `unknown`: the lower-case word (the reports' CSS class).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::Invalid => "invalid",
            Verdict::Unknown => "unknown",
        }
    }

    /// Reads a `valid` field as written by [`Serialize`]: `true`, `false`, `"unknown"` (and
    /// the strings `"true"`/`"valid"`/`"false"`/`"invalid"`, any case); anything else, or
    /// nothing, is `Unknown`, never `Valid`.
    pub fn from_json(v: Option<&serde_json::Value>) -> Verdict {
        use serde_json::Value;
        match v {
            Some(Value::Bool(true)) => Verdict::Valid,
            Some(Value::Bool(false)) => Verdict::Invalid,
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "valid" => Verdict::Valid,
                "false" | "invalid" => Verdict::Invalid,
                _ => Verdict::Unknown,
            },
            _ => Verdict::Unknown,
        }
    }
}

impl Serialize for Verdict {
    /// `true`, `false` or `"unknown"`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Verdict::Valid => s.serialize_bool(true),
            Verdict::Invalid => s.serialize_bool(false),
            Verdict::Unknown => s.serialize_str("unknown"),
        }
    }
}

impl<'de> Deserialize<'de> for Verdict {
    /// Reads what [`Verdict::from_json`] reads; never fails: a value of any other shape is
    /// `Unknown` (never `Valid`), so a results file of an unexpected shape still loads.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(Verdict::from_json(Some(&v)))
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
        assert_eq!([Valid, Invalid, Unknown].into_iter().max(), Some(Invalid));
    }

    #[test]
    fn json_and_exit_codes_round_trip() {
        for v in [Verdict::Valid, Verdict::Invalid, Verdict::Unknown] {
            let j = serde_json::to_value(v).unwrap();
            assert_eq!(Verdict::from_json(Some(&j)), v);
            assert_eq!(Verdict::from_exit_code(v.exit_code()), Some(v));
        }
        assert_eq!(Verdict::from_json(None), Verdict::Unknown);
        assert_eq!(Verdict::from_exit_code(255), None);
    }

    #[test]
    fn deserializes_what_it_serializes_and_anything_else_as_unknown() {
        for v in [Verdict::Valid, Verdict::Invalid, Verdict::Unknown] {
            let back: Verdict = serde_json::from_value(serde_json::to_value(v).unwrap()).unwrap();
            assert_eq!(back, v);
        }
        let odd: Verdict = serde_json::from_value(serde_json::json!({"x": 1})).unwrap();
        assert_eq!(odd, Verdict::Unknown);
        let odd: Verdict = serde_json::from_value(serde_json::json!(1)).unwrap();
        assert_eq!(odd, Verdict::Unknown);
    }
}
