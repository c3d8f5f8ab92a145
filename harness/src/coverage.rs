//! Fault coverage: what the faults of a run did to the cluster, computed from the history
//! (client operations and nemesis events) and the cluster's observed states (`cluster.jsonl`,
//! see [`crate::observer`]). A verdict of "valid" is only as good as this: a run whose faults
//! never cost the cluster its leader proves little, and the warnings say so.
//!
//! Everything here is a pure function of its inputs ([`compute`]); times are seconds since
//! the test started, on the history's clock, rounded to the millisecond.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use nemesis::schedule::FaultFamily;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use workloads::history::{Event, EventType, Process};

use crate::observer::Observation;

/// A fault healed less than this long before the workload ended left the cluster no time to
/// show it recovers under load: the run counts as ending inside that fault's window.
pub const MIN_LOAD_AFTER_HEAL_NS: u64 = 1_000_000_000;

/// A window that cut the leader off must last at least this long before a missing leader
/// change is suspicious: three times the node's default largest election timeout (600 ms),
/// time for a follower to notice, pre-vote, and win. Shorter windows (a script's steps) are
/// healed before any election could finish. Delayed links lengthen it (two round trips at
/// the delay in force).
pub const MIN_WINDOW_FOR_ELECTION_NS: u64 = 1_800_000_000;

/// What [`compute`] needs beside the history and the observations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoverageInput {
    /// The fault families enabled by `--nemesis`.
    pub families: Vec<FaultFamily>,
    /// The read modes the workload used (`log`, `read-index`, ...).
    pub read_modes: Vec<String>,
    /// Every member, by name (`n1`, ...): a leader needs a majority of these.
    pub nodes: Vec<String>,
    /// When the workload ended (ns since t0); `None`: the last client event's time.
    pub workload_end_ns: Option<u64>,
    /// When the final heal-all happened (ns since t0), if it is not in the history; closes
    /// every window still open then.
    pub final_heal_ns: Option<u64>,
}

/// ok / fail / info counts (an invocation never completed counts as info).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    /// Certainly took effect.
    pub ok: u64,
    /// Certainly did not take effect.
    pub fail: u64,
    /// Unknown outcome.
    pub info: u64,
}

impl OpCounts {
    fn add(&mut self, kind: EventType) {
        match kind {
            EventType::Ok => self.ok += 1,
            EventType::Fail => self.fail += 1,
            EventType::Info | EventType::Invoke => self.info += 1,
        }
    }
}

/// One fault window: a nemesis `start` and its matching `stop`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// The fault's kind (`partition`, `kill`, ...).
    pub fault: String,
    /// The partition's shape, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
    /// The nodes the fault targets, when it names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// The fault's full description, as in the history.
    #[serde(default)]
    pub detail: Value,
    /// When it was applied.
    pub start_s: f64,
    /// When it was healed; `None` if never.
    pub end_s: Option<f64>,
    /// True when it was healed by the final heal-all rather than its own stop.
    #[serde(default)]
    pub healed_by_final: bool,
    /// Why applying it failed (then it did nothing and counts as not applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the heal reported the fault did (a failpoint's fires per node and the nodes that
    /// crashed there); null when the stop says nothing.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub outcome: Value,
    /// New leaders first seen inside the window; `None` without observations.
    pub leader_changes: Option<u64>,
    /// Seconds of the window without a leader followed by a majority.
    pub leaderless_s: Option<f64>,
    /// Client operations completed inside the window.
    pub ok: u64,
    /// See `ok`.
    pub fail: u64,
    /// See `ok`.
    pub info: u64,
    /// The same per operation (`read:<mode>`, `write`, `cas`, `add`).
    #[serde(default)]
    pub by_op: BTreeMap<String, OpCounts>,
    /// From the heal to the first ok write (write, cas or add) completed after it; `None`
    /// if none came (or never healed).
    pub recovery_s: Option<f64>,
    /// The leader when the window opened, per the observations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_at_start: Option<String>,
    /// Whether the fault cut that leader off from a majority (partitioned it away, killed,
    /// paused or removed it); `None` when the leader at start is unknown.
    pub cut_leader: Option<bool>,
}

/// Two windows of different kinds that were open at the same time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Overlap {
    /// The earlier window's kind.
    pub a: String,
    /// The later window's kind.
    pub b: String,
    /// When both were open: from.
    pub start_s: f64,
    /// When both were open: to.
    pub end_s: f64,
}

/// A new leader, first seen at `time_s`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Election {
    /// When a node was first seen leading in this term.
    pub time_s: f64,
    /// The node.
    pub leader: String,
    /// Its term.
    pub term: u64,
}

/// A span of time without a leader followed by a majority.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// From.
    pub start_s: f64,
    /// To.
    pub end_s: f64,
}

/// What the faults did: `results.json`'s `"coverage"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Whether any observation of the cluster was available; without, every leader figure
    /// is `None` (unknown), never 0.
    pub observed: bool,
    /// New leaders after the first one seen.
    pub leader_changes: Option<u64>,
    /// Seconds, between the first observation and the end of the run, without a leader
    /// followed by a majority of the nodes (unreachable nodes follow no one).
    pub leaderless_s: Option<f64>,
    /// The highest term seen.
    pub max_term: Option<u64>,
    /// Seconds under at least one (applied) partition.
    pub partition_s: f64,
    /// Of those, seconds without a majority leader.
    pub partition_leaderless_s: Option<f64>,
    /// From the final heal-all to the first ok write after it.
    #[serde(default)]
    pub final_recovery_s: Option<f64>,
    /// Every fault window, in start order.
    pub windows: Vec<Window>,
    /// Windows of different kinds open at the same time.
    #[serde(default)]
    pub overlaps: Vec<Overlap>,
    /// Every client operation by outcome, per operation (`read:<mode>`, `write`, ...).
    #[serde(default)]
    pub by_op: BTreeMap<String, OpCounts>,
    /// Every new leader seen, in time order (for charts).
    #[serde(default)]
    pub elections: Vec<Election>,
    /// The leaderless spans (for charts).
    #[serde(default)]
    pub leaderless: Vec<Span>,
    /// Per failpoint set by the failpoint nemesis: how often, and what it did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failpoints: Vec<FailpointUse>,
    /// Why the run may prove less than its verdict says, for people.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One failpoint over a run: the windows that set it, and what it did in them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailpointUse {
    /// The failpoint's name.
    pub point: String,
    /// Windows that set it (applied without error).
    pub windows: u64,
    /// Fires counted by the nodes over those windows; `None` when no heal reported them.
    pub fired: Option<u64>,
    /// Crashes there (a node found exited at the heal).
    pub crashed: u64,
}

/// The failpoints of the failpoint windows, in first-use order.
fn failpoint_uses(windows: &[Window]) -> Vec<FailpointUse> {
    let mut out: Vec<FailpointUse> = Vec::new();
    for w in windows
        .iter()
        .filter(|w| w.fault == "failpoint" && w.error.is_none())
    {
        let Some(point) = w.detail.get("point").and_then(Value::as_str) else {
            continue;
        };
        let i = match out.iter().position(|u| u.point == point) {
            Some(i) => i,
            None => {
                out.push(FailpointUse {
                    point: point.to_string(),
                    windows: 0,
                    fired: None,
                    crashed: 0,
                });
                out.len() - 1
            }
        };
        let u = &mut out[i];
        u.windows += 1;
        if !w.outcome.is_null() {
            let live: u64 = match w.outcome.get("fired") {
                Some(Value::Object(per_node)) => per_node.values().filter_map(Value::as_u64).sum(),
                _ => 0,
            };
            // A crashed process took its count with it; the crash was its fire.
            let crashed = names(w.outcome.get("crashed")).len() as u64;
            u.fired = Some(u.fired.unwrap_or(0) + live + crashed);
            u.crashed += crashed;
        }
    }
    out
}

impl Coverage {
    /// The share of the time under partition that had no majority leader (0 to 1); `None`
    /// without partitions or observations.
    pub fn partition_leaderless_share(&self) -> Option<f64> {
        let l = self.partition_leaderless_s?;
        (self.partition_s > 0.0).then(|| l / self.partition_s)
    }
}

fn secs(ns: u64) -> f64 {
    (ns as f64 / 1e6).round() / 1e3
}

/// The operation key of a client event: `read:<mode>` (or `read`), else `f`.
fn op_key(f: &str, read_mode: Option<&str>) -> String {
    match (f, read_mode) {
        ("read", Some(m)) => format!("read:{m}"),
        _ => f.to_string(),
    }
}

/// A client completion: time, operation key, outcome.
struct Completion {
    time: u64,
    key: String,
    kind: EventType,
    write: bool,
}

/// Pairs client events by process; invocations never completed are info at `end`.
fn completions(events: &[Event], end: u64) -> Vec<Completion> {
    let mut open: HashMap<u64, (String, bool)> = HashMap::new();
    let mut out = Vec::new();
    for e in events {
        let Process::Client(p) = e.process else {
            continue;
        };
        let key = op_key(&e.f, e.read_mode.as_deref());
        if e.kind == EventType::Invoke {
            open.insert(p, (key, e.is_write()));
        } else {
            let (key, write) = open.remove(&p).unwrap_or((key, e.is_write()));
            out.push(Completion {
                time: e.time,
                key,
                kind: e.kind,
                write,
            });
        }
    }
    let mut pending: Vec<(u64, (String, bool))> = open.into_iter().collect();
    pending.sort_by_key(|(p, _)| *p);
    for (_, (key, write)) in pending {
        out.push(Completion {
            time: end,
            key,
            kind: EventType::Info,
            write,
        });
    }
    out
}

/// A window under construction, in ns.
struct RawWindow {
    desc: Value,
    key: Value,
    start: u64,
    end: Option<u64>,
    healed_by_final: bool,
    error: Option<String>,
    outcome: Value,
}

fn fault_kind(v: &Value) -> String {
    match v.get("fault") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "unknown".to_string(),
    }
}

/// The description without what only a stop carries, to match a stop with its start.
fn match_key(v: &Value) -> Value {
    let mut k = v.clone();
    if let Value::Object(m) = &mut k {
        m.remove("error");
        m.remove("outcome");
    }
    k
}

/// Pairs nemesis starts and stops into windows, by description (a stop closes the oldest
/// open window with the same description, else the oldest of the same kind); `heal-all`
/// closes every open window. Returns the windows and the time of the last heal-all.
fn raw_windows(events: &[Event], final_heal: Option<u64>) -> (Vec<RawWindow>, Option<u64>) {
    let nemesis: Vec<&Event> = events
        .iter()
        .filter(|e| e.process == Process::Nemesis)
        .collect();
    // A Jepsen-style nemesis logs an invoke and a completion per action: the completion is
    // when the fault took hold.
    let has_completions = nemesis.iter().any(|e| e.kind != EventType::Invoke);
    let mut windows: Vec<RawWindow> = Vec::new();
    let mut heal_all = None;
    for e in nemesis {
        if has_completions && e.kind == EventType::Invoke {
            continue;
        }
        let kind = fault_kind(&e.value);
        match e.f.as_str() {
            "start" => windows.push(RawWindow {
                desc: e.value.clone(),
                key: match_key(&e.value),
                start: e.time,
                end: None,
                healed_by_final: false,
                error: None,
                outcome: Value::Null,
            }),
            "stop" if kind == "heal-all" => {
                heal_all = Some(e.time);
                for w in windows.iter_mut().filter(|w| w.end.is_none()) {
                    w.end = Some(e.time.max(w.start));
                    w.healed_by_final = true;
                }
            }
            "stop" => {
                let key = match_key(&e.value);
                let i = windows
                    .iter()
                    .position(|w| w.end.is_none() && w.key == key)
                    .or_else(|| {
                        windows
                            .iter()
                            .position(|w| w.end.is_none() && fault_kind(&w.desc) == kind)
                    });
                if let Some(w) = i.map(|i| &mut windows[i]) {
                    w.end = Some(e.time.max(w.start));
                    w.error = e.value.get("error").map(|x| match x {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    });
                    w.outcome = e.value.get("outcome").cloned().unwrap_or(Value::Null);
                }
            }
            _ => {}
        }
    }
    if let Some(t) = final_heal {
        for w in windows
            .iter_mut()
            .filter(|w| w.end.is_none() && w.start <= t)
        {
            w.end = Some(t);
            w.healed_by_final = true;
        }
    }
    (windows, final_heal.or(heal_all))
}

/// The cluster's state replayed from the observations.
struct Replay<'a> {
    obs: Vec<&'a Observation>,
    majority: usize,
}

impl<'a> Replay<'a> {
    fn new(obs: &'a [Observation], nodes: &[String]) -> Self {
        let mut sorted: Vec<&Observation> = obs.iter().collect();
        sorted.sort_by_key(|o| o.time);
        let n = if nodes.is_empty() {
            sorted
                .iter()
                .map(|o| &o.node)
                .collect::<BTreeSet<_>>()
                .len()
        } else {
            nodes.len()
        };
        Replay {
            obs: sorted,
            majority: n / 2 + 1,
        }
    }

    /// The leader followed by a majority in this state, if any.
    fn majority_leader(&self, state: &BTreeMap<&str, &Observation>) -> Option<String> {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for o in state.values() {
            if let Some(l) = o.follows() {
                *votes.entry(l).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .find(|(_, n)| *n >= self.majority)
            .map(|(l, _)| l.to_string())
    }

    /// The state after every observation at or before `t`.
    fn state_at(&self, t: u64) -> BTreeMap<&str, &Observation> {
        let mut state = BTreeMap::new();
        for o in self.obs.iter().take_while(|o| o.time <= t) {
            state.insert(o.node.as_str(), *o);
        }
        state
    }

    /// The leader at `t`: the majority's, else the self-declared leader of highest term.
    fn leader_at(&self, t: u64) -> Option<String> {
        let state = self.state_at(t);
        self.majority_leader(&state).or_else(|| {
            state
                .values()
                .filter(|o| o.is_leader())
                .max_by_key(|o| o.term)
                .map(|o| o.node.clone())
        })
    }

    /// Leaderless spans (ns) within `[from, end]`, from the first observation on.
    fn leaderless(&self, end: u64) -> Vec<(u64, u64)> {
        let Some(first) = self.obs.first() else {
            return Vec::new();
        };
        let mut spans: Vec<(u64, u64)> = Vec::new();
        let mut state: BTreeMap<&str, &Observation> = BTreeMap::new();
        let mut i = 0;
        let mut t = first.time;
        while t < end {
            while i < self.obs.len() && self.obs[i].time <= t {
                state.insert(self.obs[i].node.as_str(), self.obs[i]);
                i += 1;
            }
            let next = self.obs.get(i).map_or(end, |o| o.time.min(end));
            if self.majority_leader(&state).is_none() && next > t {
                match spans.last_mut() {
                    Some(s) if s.1 == t => s.1 = next,
                    _ => spans.push((t, next)),
                }
            }
            if next <= t {
                break;
            }
            t = next;
        }
        spans
    }

    /// Every (leader, term) first seen, in time order.
    fn elections(&self) -> Vec<(u64, String, u64)> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for o in &self.obs {
            if o.is_leader() {
                let term = o.term.unwrap_or(0);
                if seen.insert((o.node.clone(), term)) {
                    out.push((o.time, o.node.clone(), term));
                }
            }
        }
        out
    }
}

/// Length of the overlap of `[a0, a1)` with a set of disjoint spans.
fn overlap_ns(a0: u64, a1: u64, spans: &[(u64, u64)]) -> u64 {
    spans
        .iter()
        .map(|&(s, e)| e.min(a1).saturating_sub(s.max(a0)))
        .sum()
}

/// Merges spans into disjoint ones, sorted.
fn union(mut spans: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    spans.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in spans {
        match out.last_mut() {
            Some(l) if s <= l.1 => l.1 = l.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

fn names(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(xs)) => xs
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether the fault described by `desc` leaves `leader` unable to exchange messages both
/// ways with a majority (itself included), among `n` nodes. A grudge maps each node to the
/// nodes whose traffic it drops (`to: [from, ...]` cuts `from -> to`). Kill, pause, power and
/// membership removal of the leader cut it off too; other faults do not.
fn cuts_leader(desc: &Value, leader: &str, nodes: &[String]) -> bool {
    match fault_kind(desc).as_str() {
        "partition" => {
            let grudge = desc.get("grudge");
            let drops = |to: &str, from: &str| {
                names(grudge.and_then(|g| g.get(to)))
                    .iter()
                    .any(|f| f == from)
            };
            let mut all: BTreeSet<&str> = nodes.iter().map(String::as_str).collect();
            if let Some(Value::Object(g)) = grudge {
                all.extend(g.keys().map(String::as_str));
                for v in g.values() {
                    if let Value::Array(xs) = v {
                        all.extend(xs.iter().filter_map(Value::as_str));
                    }
                }
            }
            all.insert(leader);
            let n = if nodes.is_empty() {
                all.len()
            } else {
                nodes.len()
            };
            let connected = all
                .iter()
                .filter(|&&p| p == leader || (!drops(p, leader) && !drops(leader, p)))
                .count();
            connected < n / 2 + 1
        }
        "kill" | "pause" | "power" => names(desc.get("nodes")).iter().any(|x| x == leader),
        "membership" => desc.get("removed").and_then(Value::as_str) == Some(leader),
        _ => false,
    }
}

/// Whether, under the faults described by `active` (all in force at once), some node other
/// than `leader` can still win an election: it is up and exchanges messages both ways with
/// enough up nodes to make a majority with itself. Kill, pause and power hold their nodes
/// down; partitions drop traffic by their grudges (`to: [from, ...]` cuts `from -> to`);
/// other faults change neither. A 3-node majorities ring, where every link is cut one way,
/// leaves nobody able to; so does a partition whose majority side has a member killed. A
/// cut-off leader is then expected to stay without a successor, and that is no sign of a
/// weak fault or a stuck election.
fn others_can_elect(active: &[&Value], leader: &str, nodes: &[String]) -> bool {
    let majority = nodes.len() / 2 + 1;
    let mut down = BTreeSet::new();
    let mut grudges = Vec::new();
    for desc in active {
        match fault_kind(desc).as_str() {
            "kill" | "pause" | "power" => down.extend(names(desc.get("nodes"))),
            "partition" => grudges.extend(desc.get("grudge")),
            _ => {}
        }
    }
    let up = |n: &String| !down.contains(n);
    let drops = |to: &str, from: &str| {
        grudges
            .iter()
            .any(|g| names(g.get(to)).iter().any(|f| f == from))
    };
    nodes
        .iter()
        .filter(|c| c.as_str() != leader && up(c))
        .any(|c| {
            let reach = nodes
                .iter()
                .filter(|p| up(p) && (*p == c || (!drops(p, c) && !drops(c, p))))
                .count();
            reach >= majority
        })
}

/// Whether some stretch of `[start, end]` at least [`MIN_WINDOW_FOR_ELECTION_NS`] long lets
/// a node other than `leader` win an election under `desc` together with whichever of the
/// other applied windows (`others`: start, end, description) are in force during it.
fn others_can_elect_during(
    desc: &Value,
    leader: &str,
    nodes: &[String],
    (start, end): (u64, u64),
    others: &[(u64, u64, &Value)],
) -> bool {
    let mut cuts: Vec<u64> = vec![start, end];
    for (s, e, _) in others {
        cuts.extend([*s, *e].into_iter().filter(|t| *t > start && *t < end));
    }
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2).any(|pair| {
        let (a, b) = (pair[0], pair[1]);
        let mut active = vec![desc];
        active.extend(
            others
                .iter()
                .filter(|(s, e, _)| *s <= a && *e >= b)
                .map(|(_, _, d)| *d),
        );
        b - a >= election_time_ns(&active) && others_can_elect(&active, leader, nodes)
    })
}

/// How long a stretch must last before a missing election is suspicious under the faults
/// `active`: [`MIN_WINDOW_FOR_ELECTION_NS`], plus, when links are delayed, two round trips
/// (pre-vote and vote) at the largest delay in force.
fn election_time_ns(active: &[&Value]) -> u64 {
    let ms = |d: &Value, f: &str| d.get(f).and_then(Value::as_f64).unwrap_or(0.0);
    let delay_ms = active
        .iter()
        .filter(|d| fault_kind(d) == "delay")
        .map(|d| ms(d, "fixed_ms") + ms(d, "jitter_ms"))
        .fold(0.0, f64::max);
    MIN_WINDOW_FOR_ELECTION_NS + (4.0 * delay_ms * 1e6) as u64
}

fn family_of(kind: &str) -> Option<FaultFamily> {
    match kind {
        "script" => Some(FaultFamily::Partition),
        k => FaultFamily::from_name(k),
    }
}

/// Computes the coverage of a run from its history `events` (in file order), the cluster
/// `observations` (any order; empty if none were made) and `input`. Never fails: what cannot
/// be known is `None` and, where it matters, a warning.
pub fn compute(events: &[Event], observations: &[Observation], input: &CoverageInput) -> Coverage {
    let last_event = events.iter().map(|e| e.time).max().unwrap_or(0);
    let last_obs = observations.iter().map(|o| o.time).max().unwrap_or(0);
    let last_client = events
        .iter()
        .filter(|e| matches!(e.process, Process::Client(_)))
        .map(|e| e.time)
        .max();
    let workload_end = input.workload_end_ns.or(last_client).unwrap_or(last_event);
    let end = last_event
        .max(last_obs)
        .max(input.workload_end_ns.unwrap_or(0))
        .max(input.final_heal_ns.unwrap_or(0));

    let ops = completions(events, end);
    let mut by_op: BTreeMap<String, OpCounts> = BTreeMap::new();
    for c in &ops {
        by_op.entry(c.key.clone()).or_default().add(c.kind);
    }
    let first_ok_write_after = |t: u64| {
        ops.iter()
            .filter(|c| c.write && c.kind == EventType::Ok && c.time >= t)
            .map(|c| c.time)
            .min()
            .map(|w| secs(w - t))
    };

    let replay = Replay::new(observations, &input.nodes);
    let observed = !replay.obs.is_empty();
    let leaderless = replay.leaderless(end);
    let elections = replay.elections();

    let (raw, final_heal) = raw_windows(events, input.final_heal_ns);
    let mut windows = Vec::with_capacity(raw.len());
    let mut warnings = Vec::new();
    for w in &raw {
        let w_end = w.end.unwrap_or(end);
        let mut counts = OpCounts::default();
        let mut w_by_op: BTreeMap<String, OpCounts> = BTreeMap::new();
        for c in ops.iter().filter(|c| c.time >= w.start && c.time <= w_end) {
            counts.add(c.kind);
            w_by_op.entry(c.key.clone()).or_default().add(c.kind);
        }
        let changes = elections
            .iter()
            .filter(|(t, _, _)| *t >= w.start && *t <= w_end)
            .count() as u64;
        let leader = replay.leader_at(w.start);
        let cut = if w.error.is_some() {
            Some(false)
        } else {
            leader
                .as_ref()
                .map(|l| cuts_leader(&w.desc, l, &input.nodes))
        };
        let fault = fault_kind(&w.desc);
        let win = Window {
            shape: window_shape(&w.desc),
            nodes: names(w.desc.get("nodes")),
            detail: w.desc.clone(),
            start_s: secs(w.start),
            end_s: w.end.map(secs),
            healed_by_final: w.healed_by_final,
            error: w.error.clone(),
            outcome: w.outcome.clone(),
            leader_changes: observed.then_some(changes),
            leaderless_s: observed.then_some(secs(overlap_ns(w.start, w_end, &leaderless))),
            ok: counts.ok,
            fail: counts.fail,
            info: counts.info,
            by_op: w_by_op,
            recovery_s: w.end.and_then(first_ok_write_after),
            leader_at_start: leader.clone(),
            cut_leader: cut,
            fault,
        };
        let span = match win.end_s {
            Some(e) => format!("{:.1}–{:.1} s", win.start_s, e),
            None => format!("{:.1} s, never healed", win.start_s),
        };
        // The other windows in force meanwhile: a partition's majority side with a member
        // killed cannot elect, and no leader change is then expected.
        let others: Vec<(u64, u64, &Value)> = raw
            .iter()
            .filter(|o| !std::ptr::eq(*o, w) && o.error.is_none())
            .map(|o| (o.start, o.end.unwrap_or(end), &o.desc))
            .collect();
        let electable = leader.as_ref().is_some_and(|l| {
            others_can_elect_during(&w.desc, l, &input.nodes, (w.start, w_end), &others)
        });
        if win.cut_leader == Some(true) && electable && changes == 0 {
            warnings.push(format!(
                "{} window at {span} cut leader {} off from a majority but no leader change was observed",
                win.fault,
                leader.as_deref().unwrap_or("?")
            ));
        }
        if win.error.is_none()
            && w.end
                .is_none_or(|e| e.saturating_add(MIN_LOAD_AFTER_HEAL_NS) > workload_end)
        {
            warnings.push(format!(
                "the run ended inside a {} window ({span}): no time under load after its heal",
                win.fault
            ));
        }
        windows.push(win);
    }

    let applied: Vec<(usize, &RawWindow)> = raw
        .iter()
        .enumerate()
        .filter(|(_, w)| w.error.is_none())
        .collect();
    let mut overlaps = Vec::new();
    for (i, &(_, a)) in applied.iter().enumerate() {
        for &(_, b) in &applied[i + 1..] {
            let (ka, kb) = (fault_kind(&a.desc), fault_kind(&b.desc));
            let s = a.start.max(b.start);
            let e = a.end.unwrap_or(end).min(b.end.unwrap_or(end));
            if ka != kb && s < e {
                overlaps.push(Overlap {
                    a: ka,
                    b: kb,
                    start_s: secs(s),
                    end_s: secs(e),
                });
            }
        }
    }

    let partitions = union(
        applied
            .iter()
            .filter(|(_, w)| family_of(&fault_kind(&w.desc)) == Some(FaultFamily::Partition))
            .map(|(_, w)| (w.start, w.end.unwrap_or(end)))
            .collect(),
    );
    let partition_ns: u64 = partitions.iter().map(|(s, e)| e - s).sum();
    let partition_leaderless_ns: u64 = partitions
        .iter()
        .map(|&(s, e)| overlap_ns(s, e, &leaderless))
        .sum();

    for fam in &input.families {
        let tried: Vec<&RawWindow> = raw
            .iter()
            .filter(|w| family_of(&fault_kind(&w.desc)) == Some(*fam))
            .collect();
        if !tried.iter().any(|w| w.error.is_none()) {
            let failed = if tried.is_empty() {
                String::new()
            } else {
                format!(" ({} attempts failed)", tried.len())
            };
            warnings.push(format!(
                "family {} enabled but never applied{failed}",
                fam.as_str()
            ));
        }
    }
    for mode in &input.read_modes {
        if by_op.get(&format!("read:{mode}")).is_none_or(|c| c.ok == 0) {
            warnings.push(format!("read mode {mode}: no ok read"));
        }
    }
    if !observed {
        warnings.push(
            "no observations of the cluster (cluster.jsonl missing or empty): leader changes and leaderless time are unknown"
                .to_string(),
        );
    }

    let failpoints = failpoint_uses(&windows);
    for u in failpoints.iter().filter(|u| u.fired == Some(0)) {
        warnings.push(format!(
            "failpoint {} was set in {} window(s) but never fired: the run never took its code path there",
            u.point, u.windows
        ));
    }
    Coverage {
        observed,
        leader_changes: observed.then_some(elections.len().saturating_sub(1) as u64),
        leaderless_s: observed.then_some(secs(leaderless.iter().map(|(s, e)| e - s).sum())),
        max_term: replay.obs.iter().filter_map(|o| o.term).max(),
        partition_s: secs(partition_ns),
        partition_leaderless_s: observed.then_some(secs(partition_leaderless_ns)),
        final_recovery_s: final_heal.and_then(first_ok_write_after),
        windows,
        overlaps,
        by_op,
        elections: elections
            .into_iter()
            .map(|(t, leader, term)| Election {
                time_s: secs(t),
                leader,
                term,
            })
            .collect(),
        leaderless: leaderless
            .into_iter()
            .map(|(s, e)| Span {
                start_s: secs(s),
                end_s: secs(e),
            })
            .collect(),
        failpoints,
        warnings,
    }
}

/// A window's shape: a partition's shape, or a failpoint's point and action.
fn window_shape(desc: &Value) -> Option<String> {
    if let Some(s) = desc.get("shape").and_then(Value::as_str) {
        return Some(s.to_string());
    }
    let point = desc.get("point").and_then(Value::as_str)?;
    let action = desc.get("action").and_then(Value::as_str).unwrap_or("");
    Some(format!("{point} {action}").trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use node::raft::Role;
    use serde_json::json;

    const S: u64 = 1_000_000_000;

    /// One history row: time s, client process (`None`: nemesis), type, f, read mode, value.
    type Row<'a> = (f64, Option<u64>, EventType, &'a str, Option<&'a str>, Value);

    /// Builds a history from rows; indexes in order.
    fn history(rows: &[Row]) -> Vec<Event> {
        rows.iter()
            .enumerate()
            .map(|(i, (t, p, kind, f, mode, value))| Event {
                index: i as u64,
                time: (t * 1e9) as u64,
                process: p.map_or(Process::Nemesis, Process::Client),
                kind: *kind,
                f: f.to_string(),
                key: p.map(|_| "k1".to_string()),
                value: value.clone(),
                node: None,
                read_mode: mode.map(str::to_string),
                error: None,
            })
            .collect()
    }

    fn obs(t: f64, node: &str, role: Role, term: u64, leader: Option<&str>) -> Observation {
        Observation::sample(t, node, role, term, leader)
    }

    fn down(t: f64, node: &str) -> Observation {
        Observation::unreachable((t * 1e9) as u64, node)
    }

    fn nodes3() -> Vec<String> {
        vec!["n1".into(), "n2".into(), "n3".into()]
    }

    fn nodes5() -> Vec<String> {
        (1..=5).map(|i| format!("n{i}")).collect()
    }

    /// One observation at 0 s per node of `nodes`: `leader` leads `term`, the others follow.
    fn led_by(nodes: &[String], leader: &str, term: u64) -> Vec<Observation> {
        nodes
            .iter()
            .map(|n| {
                let role = if n == leader {
                    Role::Leader
                } else {
                    Role::Follower
                };
                obs(0.0, n, role, term, Some(leader))
            })
            .collect()
    }

    fn isolate_n1() -> Value {
        json!({"fault": "partition", "shape": "isolate-leader",
               "grudge": {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}})
    }

    use EventType::{Fail, Info, Invoke, Ok as Okk};

    /// n1 leads from 0 s; at 2 s n1 is isolated; n2 wins term 2 at 3 s; heal at 5 s; n1
    /// follows n2 at 5.5 s. Writes before, during and after.
    fn isolate_run() -> (Vec<Event>, Vec<Observation>) {
        let h = history(&[
            (0.5, Some(0), Invoke, "write", None, json!(1)),
            (0.6, Some(0), Okk, "write", None, json!(1)),
            (1.0, Some(1), Invoke, "read", Some("lease"), Value::Null),
            (1.1, Some(1), Okk, "read", Some("lease"), json!(1)),
            (2.0, None, Info, "start", None, isolate_n1()),
            (2.5, Some(0), Invoke, "write", None, json!(2)),
            (3.5, Some(0), Info, "write", None, json!(2)),
            (4.0, Some(2), Invoke, "cas", None, json!([1, 3])),
            (4.1, Some(2), Fail, "cas", None, json!([1, 3])),
            (5.0, None, Info, "stop", None, isolate_n1()),
            (5.2, Some(2), Invoke, "write", None, json!(4)),
            (5.4, Some(2), Okk, "write", None, json!(4)),
            (8.0, Some(5), Invoke, "read", Some("lease"), Value::Null),
            (8.1, Some(5), Okk, "read", Some("lease"), json!(4)),
            (9.0, None, Info, "stop", None, json!({"fault": "heal-all"})),
        ]);
        let o = vec![
            obs(0.0, "n1", Role::Leader, 1, Some("n1")),
            obs(0.0, "n2", Role::Follower, 1, Some("n1")),
            obs(0.0, "n3", Role::Follower, 1, Some("n1")),
            // Cut off: n2 and n3 lose the leader at 2.4 s, n2 leads at 3.0 s.
            obs(2.4, "n2", Role::Candidate, 2, None),
            obs(2.4, "n3", Role::Follower, 2, None),
            obs(3.0, "n2", Role::Leader, 2, Some("n2")),
            obs(3.0, "n3", Role::Follower, 2, Some("n2")),
            obs(3.2, "n1", Role::Follower, 1, None),
            obs(5.5, "n1", Role::Follower, 2, Some("n2")),
        ];
        (h, o)
    }

    fn input(families: &[FaultFamily], modes: &[&str]) -> CoverageInput {
        CoverageInput {
            families: families.to_vec(),
            read_modes: modes.iter().map(|m| m.to_string()).collect(),
            nodes: nodes3(),
            workload_end_ns: Some(8 * S + S / 5),
            final_heal_ns: None,
        }
    }

    #[test]
    fn isolate_leader_window_has_its_change_leaderless_time_and_recovery() {
        let (h, o) = isolate_run();
        let c = compute(&h, &o, &input(&[FaultFamily::Partition], &["lease"]));
        assert!(c.observed);
        assert_eq!(c.leader_changes, Some(1));
        assert_eq!(c.max_term, Some(2));
        assert_eq!(c.leaderless_s, Some(0.6), "2.4 s to 3.0 s");
        assert_eq!(c.windows.len(), 1);
        let w = &c.windows[0];
        assert_eq!(w.fault, "partition");
        assert_eq!(w.shape.as_deref(), Some("isolate-leader"));
        assert_eq!((w.start_s, w.end_s), (2.0, Some(5.0)));
        assert!(!w.healed_by_final);
        assert_eq!(w.leader_changes, Some(1));
        assert_eq!(w.leaderless_s, Some(0.6));
        assert_eq!((w.ok, w.fail, w.info), (0, 1, 1));
        assert_eq!(w.by_op["cas"].fail, 1);
        assert_eq!(w.by_op["write"].info, 1);
        assert_eq!(w.recovery_s, Some(0.4));
        assert_eq!(w.leader_at_start.as_deref(), Some("n1"));
        assert_eq!(w.cut_leader, Some(true));
        assert_eq!(c.partition_s, 3.0);
        assert_eq!(c.partition_leaderless_s, Some(0.6));
        assert!((c.partition_leaderless_share().unwrap() - 0.2).abs() < 1e-9);
        assert_eq!(c.by_op["read:lease"].ok, 2);
        assert_eq!(
            c.by_op["write"],
            OpCounts {
                ok: 2,
                fail: 0,
                info: 1
            }
        );
        assert_eq!(c.final_recovery_s, None, "no write after the final heal");
        assert_eq!(c.elections.len(), 2);
        assert_eq!(c.elections[1].leader, "n2");
        assert_eq!(
            c.leaderless,
            vec![Span {
                start_s: 2.4,
                end_s: 3.0
            }]
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // The JSON has the documented shape.
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["windows"][0]["recovery_s"], json!(0.4));
        assert_eq!(v["windows"][0]["cut_leader"], json!(true));
        let back: Coverage = serde_json::from_value(v).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn a_cut_leader_without_a_leader_change_is_a_warning_with_the_whole_window_leaderless() {
        let (h, _) = isolate_run();
        // The majority never elects: n2 and n3 stay leaderless after losing n1.
        let o = vec![
            obs(0.0, "n1", Role::Leader, 1, Some("n1")),
            obs(0.0, "n2", Role::Follower, 1, Some("n1")),
            obs(0.0, "n3", Role::Follower, 1, Some("n1")),
            obs(2.2, "n2", Role::Candidate, 2, None),
            obs(2.2, "n3", Role::Candidate, 3, None),
            obs(6.0, "n2", Role::Follower, 4, Some("n1")),
            obs(6.0, "n3", Role::Follower, 4, Some("n1")),
            obs(6.0, "n1", Role::Leader, 4, Some("n1")),
        ];
        let c = compute(&h, &o, &input(&[FaultFamily::Partition], &["lease"]));
        let w = &c.windows[0];
        assert_eq!(w.cut_leader, Some(true));
        assert_eq!(w.leader_changes, Some(0));
        assert_eq!(w.leaderless_s, Some(2.8));
        assert_eq!(
            c.leader_changes,
            Some(1),
            "n1 again in term 4, after the window"
        );
        assert_eq!(c.leaderless_s, Some(3.8));
        assert_eq!(c.partition_leaderless_s, Some(2.8));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("cut leader n1 off from a majority but no leader change"),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn unreachable_nodes_follow_no_one() {
        // A leader with one of two followers reachable keeps a majority; with none, not.
        let o = vec![
            obs(0.0, "n1", Role::Leader, 1, Some("n1")),
            obs(0.0, "n2", Role::Follower, 1, Some("n1")),
            obs(0.0, "n3", Role::Follower, 1, Some("n1")),
            down(1.0, "n2"),
            down(2.0, "n3"),
            obs(3.0, "n2", Role::Follower, 1, Some("n1")),
        ];
        let h = history(&[(4.0, Some(0), Invoke, "write", None, json!(1))]);
        let c = compute(
            &h,
            &o,
            &CoverageInput {
                nodes: nodes3(),
                ..Default::default()
            },
        );
        assert_eq!(c.leaderless_s, Some(1.0));
        assert_eq!(c.leader_changes, Some(0));
        assert_eq!(
            c.by_op["write"].info, 1,
            "a pending invocation counts as info"
        );
    }

    #[test]
    fn grudges_decide_whether_the_leader_is_cut_off() {
        let n5 = nodes5();
        // Majorities-ring style: n1 still exchanges both ways with n2 and n3: not cut.
        let ring = json!({"fault": "partition", "grudge": {"n1": ["n4", "n5"], "n4": ["n1"], "n5": ["n1"]}});
        assert!(!cuts_leader(&ring, "n1", &n5));
        // n1 hears everyone but nobody hears n1 (one way): cut.
        let deaf = json!({"fault": "partition", "grudge": {"n2": ["n1"], "n3": ["n1"], "n4": ["n1"], "n5": ["n1"]}});
        assert!(cuts_leader(&deaf, "n1", &n5));
        // n1 with n2 in a minority of two: cut. The leader in the majority: not cut.
        let halves = json!({"fault": "partition", "grudge": {
            "n1": ["n3", "n4", "n5"], "n2": ["n3", "n4", "n5"],
            "n3": ["n1", "n2"], "n4": ["n1", "n2"], "n5": ["n1", "n2"]}});
        assert!(cuts_leader(&halves, "n1", &n5));
        assert!(!cuts_leader(&halves, "n3", &n5));
        let kill = json!({"fault": "kill", "target": "leader", "nodes": ["n2"]});
        assert!(cuts_leader(&kill, "n2", &n5));
        assert!(!cuts_leader(&kill, "n1", &n5));
        let pause = json!({"fault": "pause", "nodes": ["n1", "n3"]});
        assert!(cuts_leader(&pause, "n3", &n5));
        let power = json!({"fault": "power", "target": "one", "nodes": ["n3"]});
        assert!(cuts_leader(&power, "n3", &n5));
        assert!(!cuts_leader(&power, "n1", &n5));
        assert_eq!(family_of("power"), Some(FaultFamily::Power));
        assert_eq!(family_of("slow-disk"), Some(FaultFamily::SlowDisk));
        let member = json!({"fault": "membership", "removed": "n4", "was_leader": true});
        assert!(cuts_leader(&member, "n4", &n5));
        assert!(!cuts_leader(
            &json!({"fault": "delay", "fixed_ms": 50}),
            "n1",
            &n5
        ));
    }

    #[test]
    fn a_one_way_ring_of_three_leaves_nobody_able_to_win_an_election() {
        let n3 = nodes3();
        // Every link cut one way: no pair exchanges both ways, nobody can be elected, so a
        // cut-off leader without a successor is expected.
        let ring =
            json!({"fault": "partition", "grudge": {"n1": ["n2"], "n2": ["n3"], "n3": ["n1"]}});
        assert!(cuts_leader(&ring, "n1", &n3));
        assert!(!others_can_elect(&[&ring], "n1", &n3));
        // The leader isolated: n2 and n3 still make a majority.
        let iso = json!({"fault": "partition", "grudge": {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}});
        assert!(others_can_elect(&[&iso], "n1", &n3));
        // A majority killed: nobody left to elect; one killed: the others can.
        let two = json!({"fault": "kill", "nodes": ["n1", "n2"]});
        assert!(!others_can_elect(&[&two], "n1", &n3));
        let one = json!({"fault": "kill", "nodes": ["n1"]});
        assert!(others_can_elect(&[&one], "n1", &n3));
    }

    /// Seed 7 of a 5-node partition+kill+pause run: n5 leads; n2 is killed (6.9–13.9 s); a
    /// leader-in-minority partition ({n3, n5} | {n1, n2, n4}) lasts 9.3–15.4 s; n1 and n5 are
    /// paused from 12.1 s. The majority side never has three live members, so no leader
    /// change is expected and no warning is given; without the kill, the same run warns.
    #[test]
    fn a_partition_whose_majority_side_is_held_down_by_other_faults_expects_no_election() {
        let n5 = nodes5();
        let part = json!({"fault": "partition", "shape": "leader-in-minority", "grudge": {
            "n1": ["n3", "n5"], "n2": ["n3", "n5"], "n3": ["n1", "n2", "n4"],
            "n4": ["n3", "n5"], "n5": ["n1", "n2", "n4"]}});
        let kill = json!({"fault": "kill", "target": "leader", "nodes": ["n2"]});
        let pause = json!({"fault": "pause", "target": "minority", "nodes": ["n1", "n5"]});
        let o = led_by(&n5, "n5", 3);
        let coverage_of = |with_kill: bool| {
            let mut rows: Vec<Row> = Vec::new();
            if with_kill {
                rows.push((6.9, None, Info, "start", None, kill.clone()));
            }
            rows.push((9.3, None, Info, "start", None, part.clone()));
            rows.push((12.1, None, Info, "start", None, pause.clone()));
            if with_kill {
                rows.push((13.9, None, Info, "stop", None, kill.clone()));
            }
            rows.push((15.4, None, Info, "stop", None, part.clone()));
            rows.push((16.5, None, Info, "stop", None, pause.clone()));
            let input = CoverageInput {
                families: vec![
                    FaultFamily::Partition,
                    FaultFamily::Kill,
                    FaultFamily::Pause,
                ],
                nodes: n5.clone(),
                workload_end_ns: Some(30 * S),
                ..Default::default()
            };
            compute(&history(&rows), &o, &input)
        };
        let c = coverage_of(true);
        let part_window = c.windows.iter().find(|w| w.fault == "partition").unwrap();
        assert_eq!(part_window.cut_leader, Some(true));
        assert!(
            !c.warnings.iter().any(|w| w.contains("no leader change")),
            "{:?}",
            c.warnings
        );
        // Without the kill, {n1, n2, n4} could elect during 9.3–12.1 s (2.8 s): a warning.
        let c = coverage_of(false);
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("partition window at 9.3–15.4 s cut leader n5")),
            "{:?}",
            c.warnings
        );
    }

    /// A figure-8 script step (seed 7 again): n1 cut off for 1.84 s while the links n2 must
    /// campaign over are delayed by 250 ms; n2 wins 70 ms after the step ends. Two round trips
    /// at 250 ms do not fit in the step, so no warning; without the delay, a warning.
    #[test]
    fn delayed_links_lengthen_the_time_an_election_needs() {
        let n5 = nodes5();
        let part = json!({"fault": "partition", "shape": "figure-8 (b)", "grudge": {
            "n1": ["n2", "n3", "n4", "n5"], "n2": ["n1", "n4"], "n3": ["n1", "n4", "n5"],
            "n4": ["n1", "n2", "n3", "n5"], "n5": ["n1", "n3", "n4"]}});
        let delay = json!({"fault": "delay", "fixed_ms": 250, "jitter_ms": 0,
            "links": [["n2", "n3"], ["n2", "n5"]]});
        let mut o = led_by(&n5, "n1", 7);
        o.push(obs(55.17, "n2", Role::Leader, 8, Some("n2")));
        let coverage_of = |with_delay: bool| {
            let mut rows: Vec<Row> = vec![(53.26, None, Info, "start", None, part.clone())];
            if with_delay {
                rows.push((53.26, None, Info, "start", None, delay.clone()));
                rows.push((55.1, None, Info, "stop", None, delay.clone()));
            }
            rows.push((55.1, None, Info, "stop", None, part.clone()));
            let input = CoverageInput {
                families: vec![FaultFamily::Partition],
                nodes: n5.clone(),
                workload_end_ns: Some(60 * S),
                ..Default::default()
            };
            compute(&history(&rows), &o, &input)
        };
        let no_change = |c: &Coverage| c.warnings.iter().any(|w| w.contains("no leader change"));
        assert!(
            !no_change(&coverage_of(true)),
            "{:?}",
            coverage_of(true).warnings
        );
        assert!(
            no_change(&coverage_of(false)),
            "{:?}",
            coverage_of(false).warnings
        );
    }

    #[test]
    fn combined_parts_overlap_and_stops_match_by_description() {
        let p = json!({"fault": "partition", "shape": "isolate-leader",
                       "grudge": {"n1": ["n2", "n3"], "n2": ["n1"], "n3": ["n1"]}});
        let k1 = json!({"fault": "kill", "target": "random", "nodes": ["n3"]});
        let k2 = json!({"fault": "kill", "target": "random", "nodes": ["n2"]});
        let clock = json!({"fault": "clock", "nodes": {"n1": {"offset_ms": 0.0, "rate": 0.5}}});
        let h = history(&[
            (1.0, None, Info, "start", None, p.clone()),
            (1.0, None, Info, "start", None, clock.clone()),
            (2.0, None, Info, "start", None, k1.clone()),
            (2.5, None, Info, "start", None, k2.clone()),
            // Healed in reverse, and the second kill first: matched by description.
            (3.0, None, Info, "stop", None, k2.clone()),
            (3.5, None, Info, "stop", None, k1.clone()),
            (4.0, None, Info, "stop", None, clock.clone()),
            (4.0, None, Info, "stop", None, p.clone()),
            (4.5, Some(0), Invoke, "write", None, json!(1)),
            (4.7, Some(0), Okk, "write", None, json!(1)),
            (9.0, Some(0), Invoke, "write", None, json!(2)),
            (9.1, Some(0), Okk, "write", None, json!(2)),
        ]);
        let c = compute(
            &h,
            &[],
            &CoverageInput {
                nodes: nodes3(),
                ..Default::default()
            },
        );
        let ends: Vec<_> = c
            .windows
            .iter()
            .map(|w| (w.fault.as_str(), w.end_s))
            .collect();
        assert_eq!(
            ends,
            [
                ("partition", Some(4.0)),
                ("clock", Some(4.0)),
                ("kill", Some(3.5)),
                ("kill", Some(3.0))
            ]
        );
        assert_eq!(c.windows[2].nodes, ["n3"]);
        assert_eq!(c.windows[3].recovery_s, Some(1.7));
        assert_eq!(c.windows[0].recovery_s, Some(0.7));
        let pairs: Vec<_> = c
            .overlaps
            .iter()
            .map(|o| (o.a.as_str(), o.b.as_str(), o.start_s, o.end_s))
            .collect();
        assert_eq!(
            pairs,
            [
                ("partition", "clock", 1.0, 4.0),
                ("partition", "kill", 2.0, 3.5),
                ("partition", "kill", 2.5, 3.0),
                ("clock", "kill", 2.0, 3.5),
                ("clock", "kill", 2.5, 3.0),
            ]
        );
        // Without observations: leader figures unknown, and a warning says so.
        assert!(!c.observed);
        assert_eq!(c.leader_changes, None);
        assert_eq!(c.windows[0].cut_leader, None);
        assert_eq!(c.partition_s, 3.0);
        assert_eq!(c.partition_leaderless_s, None);
        assert!(
            c.warnings.iter().any(|w| w.contains("no observations")),
            "{:?}",
            c.warnings
        );
    }

    #[test]
    fn warnings_for_unapplied_families_failed_faults_silent_read_modes_and_open_windows() {
        let pause = json!({"fault": "pause", "target": "random", "nodes": ["n2"]});
        let mut failed = pause.clone();
        failed["error"] = json!("no such process");
        let kill = json!({"fault": "kill", "target": "leader", "nodes": ["n1"]});
        let h = history(&[
            (0.5, Some(0), Invoke, "read", Some("log"), Value::Null),
            (0.6, Some(0), Okk, "read", Some("log"), json!(1)),
            (0.7, Some(1), Invoke, "read", Some("stale"), Value::Null),
            (0.8, Some(1), Fail, "read", Some("stale"), Value::Null),
            (1.0, None, Info, "start", None, pause.clone()),
            (1.0, None, Info, "stop", None, failed),
            (1.4, None, Info, "start", None, kill.clone()),
            (2.9, Some(0), Invoke, "write", None, json!(1)),
            (3.0, Some(0), Okk, "write", None, json!(1)),
            (3.5, None, Info, "stop", None, json!({"fault": "heal-all"})),
            (3.6, Some(0), Invoke, "write", None, json!(2)),
            (3.8, Some(0), Okk, "write", None, json!(2)),
        ]);
        let o = vec![
            obs(0.0, "n1", Role::Leader, 1, Some("n1")),
            obs(0.0, "n2", Role::Follower, 1, Some("n1")),
            obs(0.0, "n3", Role::Follower, 1, Some("n1")),
        ];
        let inp = CoverageInput {
            families: vec![FaultFamily::Kill, FaultFamily::Pause, FaultFamily::Loss],
            read_modes: vec!["log".into(), "stale".into()],
            nodes: nodes3(),
            workload_end_ns: Some(3 * S),
            final_heal_ns: None,
        };
        let c = compute(&h, &o, &inp);
        assert_eq!(c.windows.len(), 2);
        assert_eq!(c.windows[0].error.as_deref(), Some("no such process"));
        assert_eq!(c.windows[0].cut_leader, Some(false));
        let k = &c.windows[1];
        assert!(k.healed_by_final);
        assert_eq!(k.end_s, Some(3.5));
        assert_eq!(k.cut_leader, Some(true));
        assert_eq!(c.final_recovery_s, Some(0.3));
        let w = c.warnings.join("\n");
        for needed in [
            "family pause enabled but never applied (1 attempts failed)",
            "family loss enabled but never applied",
            "read mode stale: no ok read",
            "the run ended inside a kill window (1.4–3.5 s)",
            "kill window at 1.4–3.5 s cut leader n1 off from a majority but no leader change",
        ] {
            assert!(w.contains(needed), "missing {needed:?} in:\n{w}");
        }
        assert!(!w.contains("family kill"), "{w}");
        assert!(!w.contains("read mode log"), "{w}");
        assert_eq!(c.warnings.len(), 5, "{w}");
    }

    #[test]
    fn a_window_never_stopped_is_open_to_the_end() {
        let h = history(&[
            (
                1.0,
                None,
                Info,
                "start",
                None,
                json!({"fault": "loss", "p": 0.1}),
            ),
            (2.0, Some(0), Invoke, "write", None, json!(1)),
            (2.5, Some(0), Okk, "write", None, json!(1)),
        ]);
        let c = compute(&h, &[], &CoverageInput::default());
        assert_eq!(c.windows[0].end_s, None);
        assert_eq!(c.windows[0].ok, 1);
        assert_eq!(c.windows[0].recovery_s, None);
        assert!(
            c.warnings.iter().any(|w| w.contains("never healed")),
            "{:?}",
            c.warnings
        );
    }
}
