//! The node's skewable clock. Every timeout, heartbeat, election timer and lease in the node
//! reads time through one [`Clock`], so the harness can slow a node down or jump it forward
//! (the clock nemesis) without touching the machine's clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::protocol::ClockState;

/// Largest clock offset accepted, either way: one day in milliseconds. Far beyond any
/// useful skew, and small enough that the reading keeps sub-millisecond precision.
pub const MAX_OFFSET_MS: f64 = 86_400_000.0;
/// Slowest clock rate accepted.
pub const MIN_RATE: f64 = 0.01;
/// Fastest clock rate accepted.
pub const MAX_RATE: f64 = 100.0;

/// Why a clock change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClockError {
    /// The offset is not finite or beyond ±[`MAX_OFFSET_MS`].
    #[error("clock offset must be finite and within ±{MAX_OFFSET_MS} ms, got {0}")]
    Offset(f64),
    /// The rate is not finite or outside [[`MIN_RATE`], [`MAX_RATE`]].
    #[error("clock rate must be within [{MIN_RATE}, {MAX_RATE}], got {0}")]
    Rate(f64),
}

/// `reading = offset + rate × (monotonic time since start)`, changed at run time without
/// jumps: a rate change takes effect from the moment it is made (the offset absorbs the
/// difference), an offset change jumps the reading by the change.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    inner: Mutex<ClockInner>,
}

#[derive(Debug, Clone, Copy)]
struct ClockInner {
    /// Monotonic time since start at which `rate` took effect.
    anchor_real: Duration,
    /// The reading (ms) at `anchor_real`.
    anchor_reading_ms: f64,
    /// Offset the user set (ms), reported as is.
    offset_ms: f64,
    rate: f64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock reading 0 now, running at rate 1.
    pub fn new() -> Self {
        Clock {
            start: Instant::now(),
            inner: Mutex::new(ClockInner {
                anchor_real: Duration::ZERO,
                anchor_reading_ms: 0.0,
                offset_ms: 0.0,
                rate: 1.0,
            }),
        }
    }

    fn reading(inner: &ClockInner, real: Duration) -> f64 {
        let since = real.saturating_sub(inner.anchor_real).as_secs_f64();
        inner.anchor_reading_ms + inner.rate * since * 1000.0
    }

    /// The clock's reading in milliseconds; never decreases unless an offset is set lower.
    pub fn now_ms(&self) -> f64 {
        let inner = self.lock();
        Self::reading(&inner, self.start.elapsed())
    }

    /// How much real (monotonic) time it takes for this clock to advance by `ms`: zero for
    /// a negative or NaN `ms`, saturating at [`Duration::MAX`]; never panics.
    pub fn real_duration_for(&self, ms: f64) -> Duration {
        let rate = self.lock().rate.max(MIN_RATE);
        let secs = ms / rate / 1000.0;
        if secs.is_nan() || secs <= 0.0 {
            return Duration::ZERO;
        }
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }

    /// Sets the offset and/or rate and returns the new state. A value out of range (not
    /// finite, an offset beyond ±[`MAX_OFFSET_MS`], a rate outside
    /// [[`MIN_RATE`], [`MAX_RATE`]]) is refused and nothing changes.
    pub fn set(&self, offset_ms: Option<f64>, rate: Option<f64>) -> Result<ClockState, ClockError> {
        if let Some(r) = rate {
            if !(r.is_finite() && (MIN_RATE..=MAX_RATE).contains(&r)) {
                return Err(ClockError::Rate(r));
            }
        }
        if let Some(o) = offset_ms {
            if !(o.is_finite() && o.abs() <= MAX_OFFSET_MS) {
                return Err(ClockError::Offset(o));
            }
        }
        let mut inner = self.lock();
        let real = self.start.elapsed();
        let now = Self::reading(&inner, real);
        inner.anchor_real = real;
        inner.anchor_reading_ms = now;
        if let Some(o) = offset_ms {
            inner.anchor_reading_ms += o - inner.offset_ms;
            inner.offset_ms = o;
        }
        if let Some(r) = rate {
            inner.rate = r;
        }
        let state = ClockState {
            offset_ms: inner.offset_ms,
            rate: inner.rate,
            now_ms: inner.anchor_reading_ms,
        };
        Ok(state)
    }

    /// The state, also after a thread panicked while holding the lock: every update is
    /// computed before it is stored, so the state is never half-written.
    fn lock(&self) -> std::sync::MutexGuard<'_, ClockInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current offset, rate and reading.
    pub fn state(&self) -> ClockState {
        let inner = self.lock();
        ClockState {
            offset_ms: inner.offset_ms,
            rate: inner.rate,
            now_ms: Self::reading(&inner, self.start.elapsed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_change_does_not_jump_and_offset_does() {
        let c = Clock::new();
        let before = c.now_ms();
        let s = c.set(None, Some(0.5)).unwrap();
        assert!(s.now_ms >= before && s.now_ms - before < 50.0);
        let s2 = c.set(Some(10_000.0), None).unwrap();
        assert!(s2.now_ms >= s.now_ms + 9_999.0);
        assert_eq!(s2.rate, 0.5);
        assert!(c.set(None, Some(0.0)).is_err());
        assert!(c.set(None, Some(f64::NAN)).is_err());
    }

    #[test]
    fn half_rate_needs_twice_the_real_time() {
        let c = Clock::new();
        c.set(None, Some(0.5)).unwrap();
        assert_eq!(c.real_duration_for(100.0), Duration::from_millis(200));
    }

    #[test]
    fn out_of_range_values_are_refused_and_change_nothing() {
        let c = Clock::new();
        c.set(Some(5.0), Some(2.0)).unwrap();
        let day = MAX_OFFSET_MS;
        for o in [
            -2e22,
            1e300,
            -1e300,
            day + 1.0,
            -day - 1.0,
            f64::NAN,
            f64::INFINITY,
        ] {
            assert!(
                matches!(c.set(Some(o), None), Err(ClockError::Offset(_))),
                "offset {o}"
            );
        }
        for r in [0.0, -1.0, 0.009, 100.01, 1e300, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(c.set(None, Some(r)), Err(ClockError::Rate(_))),
                "rate {r}"
            );
        }
        // A bad field refuses the whole request, even with a good other field.
        assert!(c.set(Some(1.0), Some(0.0)).is_err());
        assert!(c.set(Some(1e300), Some(1.0)).is_err());
        let s = c.state();
        assert_eq!((s.offset_ms, s.rate), (5.0, 2.0));
        // The limits themselves are accepted.
        assert!(c.set(Some(day), Some(MIN_RATE)).is_ok());
        assert!(c.set(Some(-day), Some(MAX_RATE)).is_ok());
    }

    #[test]
    fn real_duration_for_never_panics() {
        let c = Clock::new();
        c.set(None, Some(MIN_RATE)).unwrap();
        assert_eq!(c.real_duration_for(f64::INFINITY), Duration::MAX);
        assert_eq!(c.real_duration_for(2e22), Duration::MAX);
        assert_eq!(c.real_duration_for(f64::NEG_INFINITY), Duration::ZERO);
        assert_eq!(c.real_duration_for(-2e22), Duration::ZERO);
        assert_eq!(c.real_duration_for(f64::NAN), Duration::ZERO);
        assert_eq!(c.real_duration_for(1.0), Duration::from_millis(100));
    }
}
