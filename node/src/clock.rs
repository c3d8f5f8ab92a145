//! The node's skewable clock. Every timeout, heartbeat, election timer and lease in the node
//! reads time through one [`Clock`], so the harness can slow a node down or jump it forward
//! (the clock nemesis) without touching the machine's clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::protocol::ClockState;

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
        inner.anchor_reading_ms + inner.rate * (real - inner.anchor_real).as_secs_f64() * 1000.0
    }

    /// The clock's reading in milliseconds; never decreases unless an offset is set lower.
    pub fn now_ms(&self) -> f64 {
        let inner = self.inner.lock().expect("clock lock");
        Self::reading(&inner, self.start.elapsed())
    }

    /// How much real (monotonic) time it takes for this clock to advance by `ms`.
    pub fn real_duration_for(&self, ms: f64) -> Duration {
        let rate = self.inner.lock().expect("clock lock").rate;
        Duration::from_secs_f64((ms / rate.max(1e-6)).max(0.0) / 1000.0)
    }

    /// Sets the offset and/or rate (rate must be > 0 and finite) and returns the new state.
    pub fn set(&self, offset_ms: Option<f64>, rate: Option<f64>) -> Result<ClockState, String> {
        if let Some(r) = rate {
            if !(r.is_finite() && r > 0.0 && r <= 100.0) {
                return Err(format!("clock rate must be in (0, 100], got {r}"));
            }
        }
        if let Some(o) = offset_ms {
            if !o.is_finite() {
                return Err("clock offset must be finite".into());
            }
        }
        let mut inner = self.inner.lock().expect("clock lock");
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

    /// The current offset, rate and reading.
    pub fn state(&self) -> ClockState {
        let inner = self.inner.lock().expect("clock lock");
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
}
