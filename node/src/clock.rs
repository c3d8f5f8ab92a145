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

/// A node's clock as a pure function of real (monotonic) time, so that the runtime and the
/// simulation turn time into ticks with the same code.
///
/// Two readings: the *monotonic* reading advances at `rate` and never jumps (a rate change
/// takes effect from the moment it is made); the *wall* reading is the monotonic reading
/// plus the offset the user set, so an offset change jumps it. Timers and leases follow the
/// monotonic reading, as real systems run them on `CLOCK_MONOTONIC`: the clock nemesis's
/// rate skew reaches them, an offset bump (an NTP step) does not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockModel {
    /// Real time (ms) at which `rate` took effect.
    anchor_real_ms: f64,
    /// The monotonic reading (ms) at `anchor_real_ms`.
    anchor_mono_ms: f64,
    /// Offset the user set (ms), added to the monotonic reading for the wall reading.
    offset_ms: f64,
    rate: f64,
}

impl Default for ClockModel {
    fn default() -> Self {
        Self::new()
    }
}

impl ClockModel {
    /// Reads 0 (both readings) at real time 0 and runs at rate 1.
    pub fn new() -> Self {
        ClockModel {
            anchor_real_ms: 0.0,
            anchor_mono_ms: 0.0,
            offset_ms: 0.0,
            rate: 1.0,
        }
    }

    /// The monotonic reading at real time `real_ms`: continuous, never decreasing while real
    /// time does not, unaffected by offset changes.
    pub fn mono_ms(&self, real_ms: f64) -> f64 {
        let since = (real_ms - self.anchor_real_ms).max(0.0);
        self.anchor_mono_ms + self.rate * since
    }

    /// The wall reading at real time `real_ms`: the monotonic reading plus the offset.
    pub fn wall_ms(&self, real_ms: f64) -> f64 {
        self.mono_ms(real_ms) + self.offset_ms
    }

    /// The rate the clock runs at, relative to real time.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Real milliseconds it takes the clock (either reading) to advance by `clock_ms`: 0 for
    /// a negative or NaN `clock_ms`, possibly infinite; never panics.
    pub fn real_ms_for(&self, clock_ms: f64) -> f64 {
        let real = clock_ms / self.rate.max(MIN_RATE);
        if real.is_nan() || real <= 0.0 {
            0.0
        } else {
            real
        }
    }

    /// Sets the offset and/or rate at real time `real_ms` and returns the new state. A value
    /// out of range (not finite, an offset beyond ±[`MAX_OFFSET_MS`], a rate outside
    /// [[`MIN_RATE`], [`MAX_RATE`]]) is refused and nothing changes.
    pub fn set(
        &mut self,
        real_ms: f64,
        offset_ms: Option<f64>,
        rate: Option<f64>,
    ) -> Result<ClockState, ClockError> {
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
        self.anchor_mono_ms = self.mono_ms(real_ms);
        self.anchor_real_ms = real_ms.max(self.anchor_real_ms);
        if let Some(o) = offset_ms {
            self.offset_ms = o;
        }
        if let Some(r) = rate {
            self.rate = r;
        }
        Ok(self.state(real_ms))
    }

    /// The offset, rate and wall reading at real time `real_ms`.
    pub fn state(&self, real_ms: f64) -> ClockState {
        ClockState {
            offset_ms: self.offset_ms,
            rate: self.rate,
            now_ms: self.wall_ms(real_ms),
        }
    }
}

/// A [`ClockModel`] over the process's monotonic clock, shared by the Raft thread (which
/// reads it) and the admin request handler (which sets it).
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    model: Mutex<ClockModel>,
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
            model: Mutex::new(ClockModel::new()),
        }
    }

    fn real_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    /// The wall reading in milliseconds: jumps when the offset is changed.
    pub fn now_ms(&self) -> f64 {
        self.lock().wall_ms(self.real_ms())
    }

    /// The monotonic reading in milliseconds: runs at the clock's rate and never jumps; what
    /// timers and leases follow.
    pub fn mono_ms(&self) -> f64 {
        self.lock().mono_ms(self.real_ms())
    }

    /// How much real (monotonic) time it takes for this clock to advance by `ms`: zero for
    /// a negative or NaN `ms`, saturating at [`Duration::MAX`]; never panics.
    pub fn real_duration_for(&self, ms: f64) -> Duration {
        let real_ms = self.lock().real_ms_for(ms);
        Duration::try_from_secs_f64(real_ms / 1000.0).unwrap_or(Duration::MAX)
    }

    /// Sets the offset and/or rate and returns the new state; see [`ClockModel::set`].
    pub fn set(&self, offset_ms: Option<f64>, rate: Option<f64>) -> Result<ClockState, ClockError> {
        let real = self.real_ms();
        self.lock().set(real, offset_ms, rate)
    }

    /// The model, also after a thread panicked while holding the lock: every update is
    /// validated before anything is stored, so the model is never half-written.
    fn lock(&self) -> std::sync::MutexGuard<'_, ClockModel> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current offset, rate and wall reading.
    pub fn state(&self) -> ClockState {
        let real = self.real_ms();
        self.lock().state(real)
    }
}

/// Most ticks [`Ticker::due`] delivers at once: after a long stall (a paused process, a rate
/// change) more would only spin; the rest are skipped.
pub const MAX_CATCHUP_TICKS: u32 = 200;

/// Turns a clock's monotonic readings into Raft ticks, one every `tick_ms` of clock time.
/// Fed the monotonic reading, an offset bump cannot fast-forward election timers or leases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ticker {
    tick_ms: f64,
    next_ms: f64,
}

impl Ticker {
    /// A ticker whose first tick falls `tick_ms` after `now_ms`. `tick_ms` must be positive.
    pub fn new(tick_ms: f64, now_ms: f64) -> Ticker {
        let tick_ms = if tick_ms > 0.0 { tick_ms } else { 1.0 };
        Ticker {
            tick_ms,
            next_ms: now_ms + tick_ms,
        }
    }

    /// How many ticks are due at reading `now_ms` (at most [`MAX_CATCHUP_TICKS`]); the
    /// caller delivers exactly that many. Ticks beyond the cap are dropped, not owed.
    pub fn due(&mut self, now_ms: f64) -> u32 {
        let mut n = 0;
        while now_ms >= self.next_ms && n < MAX_CATCHUP_TICKS {
            self.next_ms += self.tick_ms;
            n += 1;
        }
        if now_ms >= self.next_ms {
            self.next_ms = now_ms + self.tick_ms;
        }
        n
    }

    /// The reading at which the next tick falls.
    pub fn next_tick_at(&self) -> f64 {
        self.next_ms
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
    fn an_offset_moves_the_wall_reading_only_and_a_rate_both() {
        let mut m = ClockModel::new();
        assert_eq!((m.mono_ms(100.0), m.wall_ms(100.0)), (100.0, 100.0));
        m.set(100.0, Some(-5_000.0), None).unwrap();
        assert_eq!((m.mono_ms(150.0), m.wall_ms(150.0)), (150.0, -4_850.0));
        m.set(200.0, None, Some(2.0)).unwrap();
        assert_eq!((m.mono_ms(300.0), m.wall_ms(300.0)), (400.0, -4_600.0));
        assert_eq!(m.state(300.0).offset_ms, -5_000.0);
        assert_eq!(m.real_ms_for(100.0), 50.0);
        // Refused values change nothing.
        let before = m;
        assert!(m.set(300.0, Some(f64::NAN), Some(1.0)).is_err());
        assert_eq!(m, before);
    }

    #[test]
    fn the_ticker_follows_its_reading_and_caps_catch_up() {
        let mut t = Ticker::new(10.0, 0.0);
        assert_eq!(t.due(9.9), 0);
        assert_eq!(t.due(10.0), 1);
        assert_eq!(t.due(35.0), 2);
        assert_eq!(t.next_tick_at(), 40.0);
        // A long stall delivers at most the cap and resumes a tick after the reading.
        assert_eq!(t.due(1_000_000.0), MAX_CATCHUP_TICKS);
        assert_eq!(t.next_tick_at(), 1_000_010.0);
        // Fed a monotonic reading, an offset bump of the clock adds no ticks.
        let mut m = ClockModel::new();
        let mut t = Ticker::new(10.0, m.mono_ms(0.0));
        m.set(5.0, Some(250.0), None).unwrap();
        assert_eq!(t.due(m.mono_ms(12.0)), 1);
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
