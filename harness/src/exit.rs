//! Exit codes (Jepsen's convention; `docs/spec/cli.md`). The three verdict codes are
//! [`Verdict::exit_code`]; this module adds the codes that are not verdicts.

use workloads::checker::Verdict;

/// The history is valid.
pub const VALID: u8 = Verdict::Valid.exit_code();
/// An anomaly was found.
pub const INVALID: u8 = Verdict::Invalid.exit_code();
/// The checker gave up or the history is incomplete.
pub const UNKNOWN: u8 = Verdict::Unknown.exit_code();
/// Bad usage (unknown option, bad value).
pub const BAD_USAGE: u8 = 254;
/// The harness itself failed (could not start the cluster, I/O error, ...).
pub const HARNESS_FAILED: u8 = 255;

/// The worse of two verdict exit codes (255 > 254 > 1 > 2 > 0: an invalid verdict outranks an
/// unknown one, since it is a finding).
pub fn worst(a: u8, b: u8) -> u8 {
    fn rank(c: u8) -> u8 {
        match c {
            VALID => 0,
            UNKNOWN => 1,
            INVALID => 2,
            BAD_USAGE => 3,
            _ => 4,
        }
    }
    if rank(a) >= rank(b) {
        a
    } else {
        b
    }
}

/// An exit code as one word: the verdict's [`Verdict::label`] (`valid`, `INVALID`,
/// `unknown`), else `harness-failed`.
pub fn label(code: u8) -> &'static str {
    Verdict::from_exit_code(code).map_or("harness-failed", Verdict::label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_outranks_unknown_and_valid() {
        assert_eq!(worst(VALID, UNKNOWN), UNKNOWN);
        assert_eq!(worst(UNKNOWN, INVALID), INVALID);
        assert_eq!(worst(INVALID, VALID), INVALID);
        assert_eq!(worst(HARNESS_FAILED, INVALID), HARNESS_FAILED);
    }
}
