//! Failpoints: named places in the node's own code where the harness can widen a race window
//! on purpose, by delaying the node there or crashing it there.
//!
//! Some of the most damaging Raft bugs live in windows a network or process fault almost never
//! hits (between commit and apply, between winning an election and committing the first entry,
//! between persisting and sending). etcd's robustness tests reach them with gofail, TiKV with
//! the `fail` crate. This module is the same idea, written for this node rather than taken from
//! `fail`, for three reasons:
//! - **Per node, not per process.** `fail` keeps one registry per process; the runtime's unit
//!   tests run several nodes in one test binary, and a configuration for one would leak to all.
//! - **A delay need not stall the node.** `fail`'s `sleep` blocks the calling thread. At
//!   `after-commit-before-apply` and `after-election-before-first-append` a blocked Raft thread
//!   would hide the window (nothing else happens while it sleeps); there the runtime instead
//!   defers the apply, or holds the new leader's messages, while it goes on serving requests.
//!   A point's doc says which it does.
//! - **A closed vocabulary.** An unknown name is refused (`fail` accepts any), so a typo in a
//!   nemesis schedule fails loudly instead of testing nothing.
//!
//! The action syntax is `fail`'s, restricted to what the harness needs:
//! `[P%][N*]sleep(MS)`, `[P%][N*]panic`, `off`. `P%` fires with probability P, `N*` at most N
//! times (then the point turns itself off). Every point is inert until configured; an
//! unconfigured point costs one relaxed atomic load.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The longest delay a failpoint may be set to: longer ones are refused, so a typo cannot
/// freeze a node for the rest of a run.
pub const MAX_SLEEP_MS: u64 = 60_000;

/// A named place in the node's code where order matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failpoint {
    /// Before a batch (hard state, entries) is written to the log. Blocking.
    BeforePersist,
    /// After the batch is written, before its fsync: a power loss here drops it. Blocking.
    AfterWriteBeforeFsync,
    /// After the batch is durable, before the messages that acknowledge it are sent: a crash
    /// here leaves entries on disk that nobody heard of. Blocking.
    AfterPersistBeforeSend,
    /// After the commit index advances, before the entries are applied to the store. A delay
    /// defers the apply while the node goes on serving (reads that do not wait for apply see
    /// old data; writes are acknowledged late).
    AfterCommitBeforeApply,
    /// After a write is applied, before its reply leaves for the client: a crash here is an
    /// applied write whose client never hears. A delay holds only that reply.
    AfterApplyBeforeReply,
    /// After winning an election, before the first append goes out. A delay holds the new
    /// leader's outgoing messages while it keeps accepting requests, so it serves clients
    /// before any entry of its term commits.
    AfterElectionBeforeFirstAppend,
    /// Before a log read's command is applied (the read's value is taken there). Blocking.
    BeforeReadLog,
    /// Before a confirmed read-index read takes its value. Blocking.
    BeforeReadReadIndex,
    /// Before a lease read takes its value, after the lease was checked. Blocking: the lease
    /// may run out meanwhile, which the node must notice before answering.
    BeforeReadLease,
    /// Before a follower read takes its value, after the leader confirmed its index. Blocking.
    BeforeReadFollower,
    /// Before a stale (local) read takes its value. Blocking.
    BeforeReadStale,
    /// Before a snapshot from the leader is decoded and saved. Blocking.
    BeforeInstallSnapshot,
    /// After a snapshot from the leader is durable and swapped in, before the rest of the
    /// batch (entries after it) is handled. Blocking.
    AfterInstallSnapshot,
    /// Before a committed configuration entry is applied (the membership change answered).
    /// Blocking.
    BeforeApplyConfigChange,
}

impl Failpoint {
    /// Every failpoint, in the order the README lists them.
    pub const ALL: [Failpoint; 14] = [
        Failpoint::BeforePersist,
        Failpoint::AfterWriteBeforeFsync,
        Failpoint::AfterPersistBeforeSend,
        Failpoint::AfterCommitBeforeApply,
        Failpoint::AfterApplyBeforeReply,
        Failpoint::AfterElectionBeforeFirstAppend,
        Failpoint::BeforeReadLog,
        Failpoint::BeforeReadReadIndex,
        Failpoint::BeforeReadLease,
        Failpoint::BeforeReadFollower,
        Failpoint::BeforeReadStale,
        Failpoint::BeforeInstallSnapshot,
        Failpoint::AfterInstallSnapshot,
        Failpoint::BeforeApplyConfigChange,
    ];

    /// The name used on the wire and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Failpoint::BeforePersist => "before-persist",
            Failpoint::AfterWriteBeforeFsync => "after-write-before-fsync",
            Failpoint::AfterPersistBeforeSend => "after-persist-before-send",
            Failpoint::AfterCommitBeforeApply => "after-commit-before-apply",
            Failpoint::AfterApplyBeforeReply => "after-apply-before-reply",
            Failpoint::AfterElectionBeforeFirstAppend => "after-election-before-first-append",
            Failpoint::BeforeReadLog => "before-read-log",
            Failpoint::BeforeReadReadIndex => "before-read-read-index",
            Failpoint::BeforeReadLease => "before-read-lease",
            Failpoint::BeforeReadFollower => "before-read-follower",
            Failpoint::BeforeReadStale => "before-read-stale",
            Failpoint::BeforeInstallSnapshot => "before-install-snapshot",
            Failpoint::AfterInstallSnapshot => "after-install-snapshot",
            Failpoint::BeforeApplyConfigChange => "before-apply-config-change",
        }
    }

    /// What the window is for: the mistake a delay or crash there would expose.
    pub fn window(self) -> &'static str {
        match self {
            Failpoint::BeforePersist => {
                "a stalled disk write: the leader's batch is late to every follower"
            }
            Failpoint::AfterWriteBeforeFsync => {
                "written but not durable: a power loss drops what was written"
            }
            Failpoint::AfterPersistBeforeSend => {
                "durable but unsent: a crash leaves entries nobody acknowledged"
            }
            Failpoint::AfterCommitBeforeApply => {
                "committed but not applied: a read must wait for apply"
            }
            Failpoint::AfterApplyBeforeReply => {
                "applied but unanswered: the client must be told `info`, the write kept"
            }
            Failpoint::AfterElectionBeforeFirstAppend => {
                "a leader whose term has no committed entry yet: reads must wait"
            }
            Failpoint::BeforeReadLog => "a log read's value taken late",
            Failpoint::BeforeReadReadIndex => "a confirmed read index, value taken late",
            Failpoint::BeforeReadLease => {
                "a lease checked, value taken late: the lease must still hold"
            }
            Failpoint::BeforeReadFollower => "a follower's confirmed index, value taken late",
            Failpoint::BeforeReadStale => "a local read taken late (not linearizable anyway)",
            Failpoint::BeforeInstallSnapshot => {
                "a follower about to replace its log by the leader's snapshot"
            }
            Failpoint::AfterInstallSnapshot => "a snapshot installed, the entries after it not yet",
            Failpoint::BeforeApplyConfigChange => "a committed membership change not yet applied",
        }
    }

    /// The failpoint for a read path named as in [`crate::protocol::ReadMode`].
    pub fn before_read(mode: crate::protocol::ReadMode) -> Failpoint {
        use crate::protocol::ReadMode;
        match mode {
            ReadMode::Log => Failpoint::BeforeReadLog,
            ReadMode::ReadIndex => Failpoint::BeforeReadReadIndex,
            ReadMode::Lease => Failpoint::BeforeReadLease,
            ReadMode::Follower => Failpoint::BeforeReadFollower,
            ReadMode::Stale => Failpoint::BeforeReadStale,
        }
    }

    fn slot(self) -> usize {
        Failpoint::ALL
            .iter()
            .position(|&f| f == self)
            .expect("ALL lists every failpoint")
    }
}

impl fmt::Display for Failpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Failpoint {
    type Err = FailpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Failpoint::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| FailpointError::UnknownName(s.to_string()))
    }
}

/// What a failpoint does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Wait this long there (blocking, or deferring, as the point's doc says).
    Sleep(Duration),
    /// Crash the node there (the process aborts; the harness restarts it on its data dir).
    Panic,
}

/// A failpoint's configuration: an effect, how likely it fires, and how many more times.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Action {
    /// `None`: off.
    pub effect: Option<Effect>,
    /// Probability in percent (0–100] that a pass through the point fires.
    pub percent: f64,
    /// Fires left; `None`: unbounded.
    pub remaining: Option<u64>,
}

impl Action {
    /// The action that never fires.
    pub const OFF: Action = Action {
        effect: None,
        percent: 100.0,
        remaining: None,
    };
}

impl FromStr for Action {
    type Err = FailpointError;

    /// Parses `off`, or `[P%][N*]sleep(MS)` / `[P%][N*]panic`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| FailpointError::BadAction(s.to_string(), why.to_string());
        let s = s.trim();
        if s == "off" {
            return Ok(Action::OFF);
        }
        let mut rest = s;
        let mut percent = 100.0;
        if let Some((p, r)) = rest.split_once('%') {
            percent = p
                .parse::<f64>()
                .ok()
                .filter(|p| p.is_finite() && *p > 0.0 && *p <= 100.0)
                .ok_or_else(|| bad("the probability must be a number in (0, 100]"))?;
            rest = r;
        }
        let mut remaining = None;
        if let Some((n, r)) = rest.split_once('*') {
            let n = n
                .parse::<u64>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| bad("the count must be a positive integer"))?;
            remaining = Some(n);
            rest = r;
        }
        let effect = if rest == "panic" {
            Effect::Panic
        } else if let Some(ms) = rest
            .strip_prefix("sleep(")
            .and_then(|r| r.strip_suffix(')'))
        {
            let ms = ms
                .parse::<u64>()
                .map_err(|_| bad("sleep takes whole milliseconds"))?;
            if ms > MAX_SLEEP_MS {
                return Err(bad(&format!("sleep is at most {MAX_SLEEP_MS} ms")));
            }
            Effect::Sleep(Duration::from_millis(ms))
        } else {
            return Err(bad(
                "expected off, sleep(MS) or panic, optionally after P% and N*",
            ));
        };
        Ok(Action {
            effect: Some(effect),
            percent,
            remaining,
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(effect) = self.effect else {
            return f.write_str("off");
        };
        if self.percent < 100.0 {
            write!(f, "{}%", self.percent)?;
        }
        if let Some(n) = self.remaining {
            write!(f, "{n}*")?;
        }
        match effect {
            Effect::Sleep(d) => write!(f, "sleep({})", d.as_millis()),
            Effect::Panic => f.write_str("panic"),
        }
    }
}

/// Why a failpoint request was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FailpointError {
    #[error("unknown failpoint {0:?}; known: {known}", known = known_names())]
    UnknownName(String),
    #[error("bad failpoint action {0:?}: {1}")]
    BadAction(String, String),
}

fn known_names() -> String {
    Failpoint::ALL.map(Failpoint::name).join(", ")
}

/// One failpoint as reported to the admin: its name, what it is for, its action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailpointState {
    pub name: String,
    pub window: String,
    /// `off`, or the action as configured (counts as they are now).
    pub action: String,
    /// How often it fired since the node started.
    #[serde(default)]
    pub fired: u64,
}

/// The node's failpoints: every one off until configured. Shared by the Raft loop and the
/// client port; safe to use from any thread.
pub struct Failpoints {
    /// True when any point is on: the fast path when none is.
    any_on: AtomicBool,
    state: Mutex<State>,
}

struct State {
    actions: [Action; Failpoint::ALL.len()],
    fired: [u64; Failpoint::ALL.len()],
    rng: StdRng,
}

impl Default for Failpoints {
    fn default() -> Self {
        Failpoints::new()
    }
}

impl fmt::Debug for Failpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.states()).finish()
    }
}

impl Failpoints {
    /// Every point off. The probabilities draw from the operating system's randomness: a
    /// failpoint is a fault, and faults are the harness's to seed and record.
    pub fn new() -> Failpoints {
        Failpoints {
            any_on: AtomicBool::new(false),
            state: Mutex::new(State {
                actions: [Action::OFF; Failpoint::ALL.len()],
                fired: [0; Failpoint::ALL.len()],
                rng: StdRng::from_entropy(),
            }),
        }
    }

    /// Sets the point named `name` to `action` (syntax in the module doc); an unknown name or
    /// a malformed action changes nothing.
    pub fn configure(&self, name: &str, action: &str) -> Result<(), FailpointError> {
        let point: Failpoint = name.parse()?;
        let action: Action = action.parse()?;
        let mut st = self.lock();
        st.actions[point.slot()] = action;
        let on = st.actions.iter().any(|a| a.effect.is_some());
        self.any_on.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Every point with its action, in [`Failpoint::ALL`] order.
    pub fn states(&self) -> Vec<FailpointState> {
        let st = self.lock();
        Failpoint::ALL
            .iter()
            .map(|p| FailpointState {
                name: p.name().to_string(),
                window: p.window().to_string(),
                action: st.actions[p.slot()].to_string(),
                fired: st.fired[p.slot()],
            })
            .collect()
    }

    /// A pass through `point`: the effect to carry out, if it fires now. A fire counts
    /// against the point's count; the last one turns it off.
    pub fn eval(&self, point: Failpoint) -> Option<Effect> {
        if !self.any_on.load(Ordering::Relaxed) {
            return None;
        }
        let mut st = self.lock();
        let State {
            actions,
            fired,
            rng,
        } = &mut *st;
        let action = &mut actions[point.slot()];
        let effect = action.effect?;
        if action.percent < 100.0 && rng.gen_range(0.0..100.0) >= action.percent {
            return None;
        }
        if let Some(n) = &mut action.remaining {
            *n -= 1;
            if *n == 0 {
                *action = Action::OFF;
            }
        }
        fired[point.slot()] += 1;
        tracing::warn!(failpoint = point.name(), ?effect, "failpoint fired");
        Some(effect)
    }

    /// A pass through a point where a delay blocks the calling thread: sleeps or crashes
    /// there when the point fires.
    pub fn block(&self, point: Failpoint) {
        match self.eval(point) {
            Some(Effect::Sleep(d)) => std::thread::sleep(d),
            Some(Effect::Panic) => crash(point),
            None => {}
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the table inconsistent (plain values).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Crashes the node at `point`, as a failpoint's `panic` does: the process aborts at once, so
/// nothing after the point runs (no destructor, no flush, no reply), as in a real crash.
/// Unit tests of the runtime run in one process, so under `cfg(test)` it unwinds instead.
pub fn crash(point: Failpoint) -> ! {
    tracing::error!(
        failpoint = point.name(),
        "failpoint: crashing the node here"
    );
    if cfg!(test) {
        panic!("failpoint {point}: crash");
    }
    eprintln!("failpoint {point}: crashing the node here");
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for p in Failpoint::ALL {
            assert_eq!(p.name().parse::<Failpoint>(), Ok(p));
        }
        let err = "after-comit".parse::<Failpoint>().unwrap_err();
        assert!(
            err.to_string().contains("after-commit-before-apply"),
            "{err}"
        );
        let fps = Failpoints::new();
        assert!(fps.configure("nope", "panic").is_err());
        assert!(fps.states().iter().all(|s| s.action == "off"));
    }

    #[test]
    fn actions_parse_and_print_in_the_fail_crate_syntax() {
        for s in [
            "off",
            "panic",
            "sleep(250)",
            "25%sleep(10)",
            "3*panic",
            "50%2*sleep(0)",
        ] {
            let a: Action = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        for bad in [
            "",
            "sleep",
            "sleep(-1)",
            "sleep(1.5)",
            "sleep(60001)",
            "0%panic",
            "101%panic",
            "NaN%panic",
            "0*panic",
            "x*panic",
            "return(1)",
            "panic ",
        ] {
            // (A trailing space is trimmed, so "panic " is fine; everything else is refused.)
            if bad == "panic " {
                assert!(bad.parse::<Action>().is_ok());
                continue;
            }
            assert!(bad.parse::<Action>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn an_unconfigured_point_never_fires_and_off_turns_one_off() {
        let fps = Failpoints::new();
        for p in Failpoint::ALL {
            assert_eq!(fps.eval(p), None);
        }
        fps.configure("before-persist", "sleep(5)").unwrap();
        assert_eq!(
            fps.eval(Failpoint::BeforePersist),
            Some(Effect::Sleep(Duration::from_millis(5)))
        );
        assert_eq!(fps.eval(Failpoint::AfterPersistBeforeSend), None);
        fps.configure("before-persist", "off").unwrap();
        assert_eq!(fps.eval(Failpoint::BeforePersist), None);
    }

    #[test]
    fn a_count_fires_that_many_times_then_the_point_is_off() {
        let fps = Failpoints::new();
        fps.configure("after-persist-before-send", "2*panic")
            .unwrap();
        assert_eq!(
            fps.eval(Failpoint::AfterPersistBeforeSend),
            Some(Effect::Panic)
        );
        let state = |fps: &Failpoints| {
            fps.states()
                .into_iter()
                .find(|s| s.name == "after-persist-before-send")
                .unwrap()
                .action
        };
        assert_eq!(state(&fps), "1*panic");
        assert_eq!(
            fps.eval(Failpoint::AfterPersistBeforeSend),
            Some(Effect::Panic)
        );
        assert_eq!(fps.eval(Failpoint::AfterPersistBeforeSend), None);
        assert_eq!(state(&fps), "off");
        let fired = fps
            .states()
            .into_iter()
            .find(|s| s.name == "after-persist-before-send");
        assert_eq!(fired.unwrap().fired, 2);
    }

    #[test]
    fn a_probability_fires_about_that_often() {
        let fps = Failpoints::new();
        fps.configure("before-read-stale", "20%sleep(0)").unwrap();
        let fired = (0..10_000)
            .filter(|_| fps.eval(Failpoint::BeforeReadStale).is_some())
            .count();
        // Binomial(10000, 0.2): mean 2000, sd 40; ±10 sd cannot fail by chance.
        assert!((1600..=2400).contains(&fired), "fired {fired} of 10000");
    }

    #[test]
    fn a_blocking_sleep_blocks_for_its_time() {
        let fps = Failpoints::new();
        fps.configure("before-persist", "1*sleep(30)").unwrap();
        let t = std::time::Instant::now();
        fps.block(Failpoint::BeforePersist);
        assert!(t.elapsed() >= Duration::from_millis(30));
        // The count was 1: the second pass does not fire (counted, not timed, so a loaded
        // machine cannot fail it).
        fps.block(Failpoint::BeforePersist);
        let st = &fps.states()[Failpoint::BeforePersist.slot()];
        assert_eq!((st.fired, st.action.as_str()), (1, "off"));
    }
}
