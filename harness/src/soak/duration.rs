//! Durations on the command line: `90s`, `10m`, `1h`, `1h30m`, or plain seconds (`45`, `2.5`).

use std::time::Duration;

/// Why a duration could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DurationError {
    /// Nothing was given.
    #[error("empty duration")]
    Empty,
    /// A part is not a number followed by `h`, `m` or `s`.
    #[error("bad duration {0:?} (expected e.g. 90s, 10m, 1h30m or plain seconds)")]
    Bad(String),
    /// Zero, or larger than a week.
    #[error("duration {0:?} is out of range (more than 0 and at most 7 days)")]
    OutOfRange(String),
}

/// Parses a duration; guarantees a result above zero and at most seven days.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    let bad = || DurationError::Bad(s.to_string());
    let mut total = 0.0f64;
    if let Ok(secs) = t.parse::<f64>() {
        total = secs;
    } else {
        let mut num = String::new();
        let mut saw_unit = false;
        for c in t.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let unit = match c {
                'h' => 3600.0,
                'm' => 60.0,
                's' => 1.0,
                _ => return Err(bad()),
            };
            let v: f64 = num.parse().map_err(|_| bad())?;
            total += v * unit;
            num.clear();
            saw_unit = true;
        }
        if !num.is_empty() || !saw_unit {
            return Err(bad());
        }
    }
    if !(total.is_finite() && total > 0.0 && total <= 7.0 * 86_400.0) {
        return Err(DurationError::OutOfRange(s.to_string()));
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_plain_seconds() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration(" 45 ").unwrap(), Duration::from_secs(45));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
    }

    #[test]
    fn rejects_garbage_zero_and_huge() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(parse_duration("10x"), Err(DurationError::Bad(_))));
        assert!(matches!(parse_duration("m"), Err(DurationError::Bad(_))));
        assert!(matches!(parse_duration("5m3"), Err(DurationError::Bad(_))));
        assert!(matches!(
            parse_duration("0s"),
            Err(DurationError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_duration("-3"),
            Err(DurationError::OutOfRange(_))
        ));
        assert!(matches!(
            parse_duration("200h"),
            Err(DurationError::OutOfRange(_))
        ));
    }
}
