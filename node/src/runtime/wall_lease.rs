//! The deliberate bug `lease-wall-clock`: the leader's lease measured on the wall clock.
//!
//! A correct node measures its lease in ticks of the monotonic clock (see
//! [`crate::clock::Ticker`]), so an NTP-style step of the wall clock cannot lengthen it.
//! With this bug the runtime remembers the wall reading at which each tick fell and judges
//! the lease as `wall_now < wall(start tick) + length × tick_ms`: a backward jump of the
//! leader's wall clock keeps the lease "valid" for as long as the jump, after the followers
//! have stopped refusing votes and elected someone else.

use std::collections::VecDeque;

/// Most ticks whose wall reading is remembered: a lease older than that counts as expired.
const REMEMBERED_TICKS: usize = 4096;

/// Wall readings of recent ticks, and the buggy lease judgement over them.
#[derive(Debug, Default)]
pub struct WallLease {
    ticks: VecDeque<(u64, f64)>,
}

impl WallLease {
    /// Remembers that tick number `tick` fell at wall reading `wall_ms` (ticks in order).
    pub fn on_tick(&mut self, tick: u64, wall_ms: f64) {
        if self.ticks.len() == REMEMBERED_TICKS {
            self.ticks.pop_front();
        }
        self.ticks.push_back((tick, wall_ms));
    }

    /// Whether `lease` ((start tick, length in ticks), from [`crate::raft::Raft::lease`])
    /// looks valid at wall reading `wall_now`, each tick counted as `tick_ms` of wall time.
    /// False without a lease or when the start tick is no longer remembered.
    pub fn holds(&self, lease: Option<(u64, u64)>, tick_ms: f64, wall_now: f64) -> bool {
        let Some((start, length)) = lease else {
            return false;
        };
        let Some(&(_, wall_start)) = self.ticks.iter().rev().find(|(t, _)| *t == start) else {
            return false;
        };
        wall_now < wall_start + length as f64 * tick_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backward_wall_jump_lengthens_the_lease() {
        let mut w = WallLease::default();
        for t in 0..=10 {
            w.on_tick(t, t as f64 * 10.0);
        }
        // Lease from tick 2 for 5 ticks: until wall 70.
        assert!(w.holds(Some((2, 5)), 10.0, 69.0));
        assert!(!w.holds(Some((2, 5)), 10.0, 70.0));
        // The wall clock stepped back by a second: still "valid" at real time 100.
        assert!(w.holds(Some((2, 5)), 10.0, 100.0 - 1000.0));
        assert!(!w.holds(None, 10.0, 0.0));
        assert!(!w.holds(Some((99, 5)), 10.0, 0.0));
    }
}
