//! Stand-in for `crate::clock::{ClockModel, Ticker}` (being added on main) with the same
//! interface, so that the timed simulation can be written now and switched to the node's
//! own clock model by changing one `use`.

/// A node clock over injected real time: `mono_ms` is rate-scaled and never jumps;
/// `wall_ms` is `mono_ms` plus an offset that may jump.
#[derive(Clone, Debug)]
pub struct ClockModel {
    anchor_real_ms: f64,
    anchor_mono_ms: f64,
    rate: f64,
    offset_ms: f64,
}

impl ClockModel {
    /// A clock reading 0 at real time `real_ms`, rate 1, no offset.
    pub fn new(real_ms: f64) -> ClockModel {
        ClockModel {
            anchor_real_ms: real_ms,
            anchor_mono_ms: 0.0,
            rate: 1.0,
            offset_ms: 0.0,
        }
    }

    /// The monotonic reading at real time `real_ms`.
    pub fn mono_ms(&self, real_ms: f64) -> f64 {
        self.anchor_mono_ms + self.rate * (real_ms - self.anchor_real_ms)
    }

    /// The wall reading at real time `real_ms`.
    pub fn wall_ms(&self, real_ms: f64) -> f64 {
        self.mono_ms(real_ms) + self.offset_ms
    }

    /// Sets the offset and/or the rate from `real_ms` on.
    pub fn set(
        &mut self,
        real_ms: f64,
        offset_ms: Option<f64>,
        rate: Option<f64>,
    ) -> Result<(), String> {
        self.anchor_mono_ms = self.mono_ms(real_ms);
        self.anchor_real_ms = real_ms;
        if let Some(o) = offset_ms {
            self.offset_ms = o;
        }
        if let Some(r) = rate {
            self.rate = r;
        }
        Ok(())
    }
}

/// Turns clock readings into ticks: one every `tick_ms` of the reading.
#[derive(Clone, Debug)]
pub struct Ticker {
    tick_ms: f64,
    next: f64,
}

impl Ticker {
    /// The first tick is due one tick after `now_ms`.
    pub fn new(tick_ms: f64, now_ms: f64) -> Ticker {
        Ticker {
            tick_ms,
            next: now_ms + tick_ms,
        }
    }

    /// Ticks due at reading `now_ms` (at most 200, as the runtime's catch-up bound).
    pub fn due(&mut self, now_ms: f64) -> u32 {
        let mut n = 0;
        while now_ms >= self.next && n < 200 {
            self.next += self.tick_ms;
            n += 1;
        }
        if now_ms >= self.next {
            self.next = now_ms + self.tick_ms;
        }
        n
    }

    /// The reading at which the next tick is due.
    pub fn next_tick_at(&self) -> f64 {
        self.next
    }
}
