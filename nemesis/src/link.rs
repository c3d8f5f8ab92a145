//! The state of one direction of a proxied link, and the shared handle that changes it.
//!
//! A [`LinkControl`] is cheap to clone and may be used from any thread; every connection of
//! the proxy reads the current [`LinkState`] of its direction for each frame, so a change takes
//! effect on the next frame read (existing connections included) without restarting anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What a link does with the frames that travel one direction of it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkState {
    /// Every frame is forwarded at once.
    #[default]
    Pass,
    /// Every frame is silently dropped, as an iptables DROP rule would. While the
    /// client-to-target direction is cut, new connections are accepted but held: the proxy
    /// does not connect to the target and discards what the client sends.
    Cut,
    /// Each frame is held for `fixed` plus a uniform random extra in `[0, jitter]`, but never
    /// delivered before a frame read earlier on the same connection (order is kept), so each
    /// frame's delay stays within `fixed + jitter` of the moment the proxy read it.
    Delay {
        #[serde(with = "duration_ms")]
        fixed: Duration,
        #[serde(with = "duration_ms")]
        jitter: Duration,
    },
    /// Each frame is dropped independently with probability `p` (clamped to `[0, 1]`), drawn
    /// from the proxy's seeded generator.
    Loss { p: f64 },
}

impl LinkState {
    /// True for [`LinkState::Cut`].
    pub fn is_cut(&self) -> bool {
        matches!(self, LinkState::Cut)
    }
}

/// Durations in history events and configs are milliseconds (a float), which people read.
mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        if !ms.is_finite() || ms < 0.0 {
            return Err(serde::de::Error::custom(format!(
                "a duration must be a finite, non-negative number of milliseconds, got {ms}"
            )));
        }
        Ok(Duration::from_secs_f64(ms / 1000.0))
    }
}

/// One direction of a proxied connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Frames the connecting client sends towards the proxy's target.
    ToTarget,
    /// Frames the target sends back to the connecting client.
    ToClient,
}

impl Direction {
    /// Both directions.
    pub const BOTH: [Direction; 2] = [Direction::ToTarget, Direction::ToClient];
}

/// Counters of what one direction did with its frames (since the proxy started).
#[derive(Debug, Default)]
pub struct LinkCounters {
    forwarded: AtomicU64,
    dropped: AtomicU64,
    delayed: AtomicU64,
}

/// A snapshot of [`LinkCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    /// Frames written to the other side (delayed ones included, once written).
    pub forwarded: u64,
    /// Frames dropped by `Cut` or `Loss` (including frames a held connection discarded).
    pub dropped: u64,
    /// Frames that were scheduled under a `Delay` state.
    pub delayed: u64,
}

impl LinkCounters {
    pub(crate) fn add_forwarded(&self) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_delayed(&self) {
        self.delayed.fetch_add(1, Ordering::Relaxed);
    }
    fn snapshot(&self) -> LinkStats {
        LinkStats {
            forwarded: self.forwarded.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            delayed: self.delayed.load(Ordering::Relaxed),
        }
    }
}

/// Per-direction state and counters of one direction.
#[derive(Debug)]
pub(crate) struct DirectionControl {
    pub(crate) state: watch::Sender<LinkState>,
    pub(crate) counters: LinkCounters,
}

/// The shared, run-time-changeable state of a proxy's two directions.
///
/// Cloning gives another handle on the same state. Setting a state never blocks and never
/// fails, even after the proxy has shut down (then it has no effect).
#[derive(Clone, Debug)]
pub struct LinkControl {
    inner: Arc<[DirectionControl; 2]>,
}

impl Default for LinkControl {
    fn default() -> Self {
        Self::new()
    }
}

impl LinkControl {
    /// Both directions passing.
    pub fn new() -> Self {
        let mk = || DirectionControl {
            state: watch::Sender::new(LinkState::Pass),
            counters: LinkCounters::default(),
        };
        LinkControl {
            inner: Arc::new([mk(), mk()]),
        }
    }

    pub(crate) fn dir(&self, d: Direction) -> &DirectionControl {
        match d {
            Direction::ToTarget => &self.inner[0],
            Direction::ToClient => &self.inner[1],
        }
    }

    /// Sets the state of one direction; it applies to the next frame read in that direction
    /// and wakes connections held by a cut.
    pub fn set(&self, d: Direction, state: LinkState) {
        self.dir(d).state.send_replace(state);
    }

    /// Sets both directions to the same state.
    pub fn set_both(&self, state: LinkState) {
        for d in Direction::BOTH {
            self.set(d, state);
        }
    }

    /// Both directions back to [`LinkState::Pass`].
    pub fn heal(&self) {
        self.set_both(LinkState::Pass);
    }

    /// The current state of one direction.
    pub fn get(&self, d: Direction) -> LinkState {
        *self.dir(d).state.borrow()
    }

    /// What one direction has done with its frames so far.
    pub fn stats(&self, d: Direction) -> LinkStats {
        self.dir(d).counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialize_with_milliseconds() {
        let s = LinkState::Delay {
            fixed: Duration::from_millis(20),
            jitter: Duration::from_micros(500),
        };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(j, r#"{"state":"delay","fixed":20.0,"jitter":0.5}"#);
        assert_eq!(serde_json::from_str::<LinkState>(&j).unwrap(), s);
        assert!(
            serde_json::from_str::<LinkState>(r#"{"state":"delay","fixed":-1,"jitter":0}"#)
                .is_err()
        );
        assert_eq!(
            serde_json::to_string(&LinkState::Cut).unwrap(),
            r#"{"state":"cut"}"#
        );
    }

    #[test]
    fn control_sets_each_direction() {
        let c = LinkControl::new();
        c.set(Direction::ToClient, LinkState::Cut);
        assert_eq!(c.get(Direction::ToTarget), LinkState::Pass);
        assert!(c.get(Direction::ToClient).is_cut());
        let c2 = c.clone();
        c2.heal();
        assert_eq!(c.get(Direction::ToClient), LinkState::Pass);
    }
}
