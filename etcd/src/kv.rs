//! etcd behind the workloads' [`KvClient`]: the same operations, read-mode names and
//! ok / fail / info rules as our node.
//!
//! Mapping:
//! - write: put of the decimal string; cas: a transaction comparing the value (absent key:
//!   `create_revision == 0`), reading it on a mismatch;
//! - add to the set at `key`: put of `key/<element>`; a read of [`SET_KEY`]: a range over
//!   `set/`, the elements sorted;
//! - reads: `read-index` = linearizable range at the leader (as this client last learned it,
//!   else the bound member), `follower` = linearizable range at a member other than that
//!   leader, `log` = a transaction that reads and also writes a scratch key (so it goes
//!   through the log), `stale` = serializable range at the bound member; `lease` is refused
//!   (`fail`): etcd has no lease-based read path.
//!
//! Nothing is retried. An error is `fail` only when etcd certainly did not perform the
//! operation ([`EtcdError::definite`]), else `info`: reads too, as our node's client does, so
//! the two systems' histories and reports count alike (and a `log` read does write).

use std::collections::HashMap;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use node::protocol::ReadMode;
use tokio::time::Instant;
use workloads::client::{
    wire_key, ClientConfig, Executed, KvClient, KvClients, OpContext, Outcome,
};
use workloads::generator::IntendedOp;
use workloads::set::SET_KEY;

use crate::client::{EtcdClient, EtcdError, Member};

/// The key "log" reads write to (never read by the workloads).
pub const SCRATCH_KEY: &str = "__jepsen_scratch";

/// The least pause after the bound member refused a connection.
const MIN_BACKOFF: Duration = Duration::from_millis(10);

/// Why an operation cannot be performed on etcd at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    /// etcd has no lease-based read: its linearizable reads always confirm leadership with a
    /// quorum (ReadIndex), so a `lease` verdict would be about a path etcd does not have.
    #[error("etcd has no lease read path (its linearizable reads always use ReadIndex)")]
    LeaseRead,
}

/// Whether etcd has read path `mode` (every one but `lease`). The harness refuses a run that
/// asks for one it has not, rather than skip it.
pub fn supports(mode: ReadMode) -> Result<(), Unsupported> {
    match mode {
        ReadMode::Lease => Err(Unsupported::LeaseRead),
        ReadMode::Log | ReadMode::ReadIndex | ReadMode::Follower | ReadMode::Stale => Ok(()),
    }
}

/// The etcd key of element `element` of the set at `set_key` (already padded).
pub fn element_key(set_key: &str, element: i64) -> String {
    format!("{set_key}/{element}")
}

/// An etcd cluster as the workload driver sees it: makes [`EtcdKvClient`]s.
#[derive(Clone)]
pub struct EtcdSystem {
    members: Vec<Member>,
    connector: Option<crate::client::Connector>,
}

impl std::fmt::Debug for EtcdSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSystem")
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl EtcdSystem {
    /// The cluster of `members` (member `i` is the launcher's member `i`).
    pub fn new(members: Vec<Member>) -> EtcdSystem {
        EtcdSystem {
            members,
            connector: None,
        }
    }

    /// The same, with clients connecting through `connector` (members in namespaces).
    pub fn with_connector(
        members: Vec<Member>,
        connector: Option<crate::client::Connector>,
    ) -> EtcdSystem {
        EtcdSystem { members, connector }
    }
}

impl KvClients for EtcdSystem {
    fn members(&self) -> usize {
        self.members.len()
    }
    fn member_name(&self, i: usize) -> String {
        self.members[i].name.clone()
    }
    fn client(&self, bound: usize, config: &ClientConfig) -> Box<dyn KvClient> {
        let mut c = EtcdKvClient::new(self.members.clone(), bound, config.clone());
        c.client = EtcdClient::with_connector(self.members.clone(), self.connector.clone());
        Box::new(c)
    }
}

/// One client process's etcd client, bound to one member.
#[derive(Debug)]
pub struct EtcdKvClient {
    client: EtcdClient,
    bound: usize,
    /// The leader as this client last learned it (from the bound member's status).
    leader: Option<usize>,
    /// etcd member ids learned from member lists, to name the leader a status reports.
    ids: HashMap<u64, usize>,
    backoff: Duration,
    config: ClientConfig,
}

/// Where an operation goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Leader,
    Follower,
    Bound,
}

fn route_of(op: &IntendedOp) -> Route {
    match op.read_mode() {
        None => Route::Leader,
        Some(ReadMode::Log | ReadMode::ReadIndex | ReadMode::Lease) => Route::Leader,
        Some(ReadMode::Follower) => Route::Follower,
        Some(ReadMode::Stale) => Route::Bound,
    }
}

impl EtcdKvClient {
    /// A client of `members[bound]`. Panics if `bound` is out of range.
    pub fn new(members: Vec<Member>, bound: usize, config: ClientConfig) -> EtcdKvClient {
        assert!(bound < members.len(), "bound member {bound} out of range");
        EtcdKvClient {
            client: EtcdClient::new(members),
            bound,
            leader: None,
            ids: HashMap::new(),
            backoff: Duration::ZERO,
            config,
        }
    }

    fn n(&self) -> usize {
        self.client.members().len()
    }

    fn target(&self, route: Route) -> usize {
        match (route, self.leader) {
            (Route::Leader, Some(l)) => l,
            (Route::Follower, Some(l)) if l == self.bound => (self.bound + 1) % self.n(),
            _ => self.bound,
        }
    }

    /// Asks the bound member who leads, spending at most a quarter of the time left.
    async fn refresh_leader(&mut self, deadline: Instant) {
        let now = Instant::now();
        let budget = deadline.saturating_duration_since(now) / 4;
        let dl = now + budget;
        let Ok(s) = self.client.status(self.bound, dl).await else {
            return;
        };
        if s.leader_id == 0 {
            return;
        }
        if !self.ids.contains_key(&s.leader_id) {
            if let Ok(ids) = self.client.member_ids(self.bound, dl).await {
                self.ids = ids;
            }
        }
        self.leader = self.ids.get(&s.leader_id).copied();
    }

    async fn run(&mut self, op: &IntendedOp, ctx: OpContext) -> Executed {
        let route = route_of(op);
        if route != Route::Bound && self.leader.is_none() && self.n() > 1 {
            self.refresh_leader(ctx.deadline).await;
        }
        let m = self.target(route);
        let member = self.client.members()[m].name.clone();
        let result = self.perform(m, op, ctx).await;
        if m == self.bound {
            match &result {
                Err(EtcdError::Connect { .. }) => {
                    self.backoff = (self.backoff * 2)
                        .clamp(MIN_BACKOFF, self.config.max_backoff.max(MIN_BACKOFF));
                }
                _ => self.backoff = Duration::ZERO,
            }
        }
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                // The leader guess may be why: learn it again next time.
                if route == Route::Leader || route == Route::Follower {
                    self.leader = None;
                }
                classify_error(&e)
            }
        };
        Executed { outcome, member }
    }

    async fn perform(
        &mut self,
        m: usize,
        op: &IntendedOp,
        ctx: OpContext,
    ) -> Result<Outcome, EtcdError> {
        let dl = ctx.deadline;
        let key = wire_key(op.key(), ctx.key_bytes);
        match op {
            IntendedOp::Write { value, .. } => {
                self.client.put(m, &key, &value.to_string(), dl).await?;
                Ok(Outcome::Ok(op.invoke_value()))
            }
            IntendedOp::Add { element, .. } => {
                let k = element_key(&key, *element);
                self.client.put(m, &k, &element.to_string(), dl).await?;
                Ok(Outcome::Ok(op.invoke_value()))
            }
            IntendedOp::Cas { expected, new, .. } => {
                let exp = expected.map(|e| e.to_string());
                let r = self
                    .client
                    .cas(m, &key, exp.as_deref(), &new.to_string(), dl)
                    .await?;
                Ok(if r.swapped {
                    Outcome::Ok(op.invoke_value())
                } else {
                    Outcome::Fail("cas mismatch".into())
                })
            }
            IntendedOp::Read { mode, .. } => {
                supports(*mode).map_err(|e| EtcdError::BadRequest(e.to_string()))?;
                let serializable = *mode == ReadMode::Stale;
                if op.key() == SET_KEY {
                    let prefix = format!("{key}/");
                    let kvs = if *mode == ReadMode::Log {
                        self.client
                            .log_read_prefix(m, &prefix, SCRATCH_KEY, dl)
                            .await?
                    } else {
                        self.client
                            .range_prefix(m, &prefix, serializable, dl)
                            .await?
                    };
                    Ok(set_value(kvs.iter().map(|(_, v)| v.as_str())))
                } else {
                    let v = if *mode == ReadMode::Log {
                        self.client.log_read(m, &key, SCRATCH_KEY, dl).await?
                    } else {
                        self.client.get(m, &key, serializable, dl).await?
                    };
                    Ok(register_value(v.as_deref()))
                }
            }
        }
    }
}

/// A register read's completion value: `null` if absent, the integer, or `info` if etcd
/// holds something that is not one of our integers.
pub fn register_value(v: Option<&str>) -> Outcome {
    match v {
        None => Outcome::Ok(serde_json::Value::Null),
        Some(s) => match s.parse::<i64>() {
            Ok(i) => Outcome::Ok(i.into()),
            Err(_) => Outcome::Info(format!("value {s:?} is not an integer")),
        },
    }
}

/// A set read's completion value: the sorted elements (`[]` when none).
pub fn set_value<'a>(values: impl Iterator<Item = &'a str>) -> Outcome {
    let mut out = Vec::new();
    for s in values {
        match s.parse::<i64>() {
            Ok(i) => out.push(i),
            Err(_) => return Outcome::Info(format!("element {s:?} is not an integer")),
        }
    }
    out.sort_unstable();
    Outcome::Ok(out.into())
}

/// How an error ends an operation: `fail` only if etcd certainly did not perform it, else
/// `info`. The message is etcd's (or the transport's).
pub fn classify_error(e: &EtcdError) -> Outcome {
    if e.definite() {
        Outcome::Fail(e.to_string())
    } else {
        Outcome::Info(e.to_string())
    }
}

impl KvClient for EtcdKvClient {
    fn route(&mut self, op: &IntendedOp) -> String {
        let m = self.target(route_of(op));
        self.client.members()[m].name.clone()
    }

    fn execute<'a>(&'a mut self, op: &'a IntendedOp, ctx: OpContext) -> BoxFuture<'a, Executed> {
        self.run(op, ctx).boxed()
    }

    fn backoff(&self) -> Duration {
        self.backoff
    }

    fn reset(&mut self) {
        self.client.reset();
        self.leader = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubt_is_info_certainty_is_fail() {
        let timeout = EtcdError::Server {
            code: 14,
            message: "etcdserver: request timed out".into(),
        };
        assert_eq!(
            classify_error(&timeout),
            Outcome::Info("etcdserver: request timed out".into())
        );
        let leader_changed = EtcdError::Server {
            code: 14,
            message: "etcdserver: leader changed".into(),
        };
        assert!(matches!(classify_error(&leader_changed), Outcome::Info(_)));
        assert!(matches!(
            classify_error(&EtcdError::Timeout),
            Outcome::Info(_)
        ));
        let refused = EtcdError::Connect {
            member: "n1".into(),
            reason: "Connection refused".into(),
        };
        assert!(matches!(classify_error(&refused), Outcome::Fail(_)));
        let too_many = EtcdError::Server {
            code: 8,
            message: "etcdserver: too many requests".into(),
        };
        assert!(matches!(classify_error(&too_many), Outcome::Fail(_)));
        let lease = EtcdError::BadRequest(Unsupported::LeaseRead.to_string());
        assert!(matches!(classify_error(&lease), Outcome::Fail(_)));
    }

    #[test]
    fn values_are_decimal_strings() {
        assert_eq!(register_value(Some("-5")), Outcome::Ok((-5).into()));
        assert_eq!(register_value(None), Outcome::Ok(serde_json::Value::Null));
        assert!(matches!(register_value(Some("x")), Outcome::Info(_)));
        assert_eq!(
            set_value(["3", "1", "2"].into_iter()),
            Outcome::Ok(serde_json::json!([1, 2, 3]))
        );
        assert_eq!(element_key("set", 7), "set/7");
        assert_eq!(supports(ReadMode::Lease), Err(Unsupported::LeaseRead));
        assert!(supports(ReadMode::Follower).is_ok());
    }

    #[test]
    fn follower_reads_avoid_the_known_leader() {
        let members: Vec<Member> = (0..3)
            .map(|i| Member {
                name: format!("n{}", i + 1),
                client_addr: ([127, 0, 0, 1], 1 + i as u16).into(),
            })
            .collect();
        let mut c = EtcdKvClient::new(members, 1, ClientConfig::default());
        assert_eq!(
            c.target(Route::Leader),
            1,
            "unknown leader: the bound member"
        );
        c.leader = Some(1);
        assert_eq!(c.target(Route::Follower), 2);
        c.leader = Some(0);
        assert_eq!(c.target(Route::Follower), 1);
        assert_eq!(c.target(Route::Leader), 0);
        assert_eq!(c.target(Route::Bound), 1);
    }
}
