//! An async client of etcd's v3 JSON gateway (`POST /v3/...` with base64 keys and values,
//! 64-bit integers as decimal strings), over plain HTTP/1.1 on loopback.
//!
//! Why the gateway and hyper rather than gRPC: etcd 3.4 serves the gateway on the client
//! port, so no protoc and no generated code is needed; and driving hyper's connection
//! ourselves (we open the TCP connection, hyper only speaks HTTP on it) tells us exactly
//! whether a request can have left this process, which is what separates `fail` from `info`.
//! There is no pool that could re-send a request behind our back, and writes are never
//! retried here.
//!
//! Every call takes the member to ask (an index into the client's member list) and a
//! deadline; it returns by the deadline (plus scheduling noise).

use std::collections::HashMap;
use std::net::SocketAddr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value as Json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A member as clients see it: its name (`n1`, ...) and its client address (loopback).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The member's name, as given to `etcd --name` and recorded in histories.
    pub name: String,
    /// Its client URL's address (`http://{client_addr}`).
    pub client_addr: SocketAddr,
}

/// Why an etcd request did not succeed. [`EtcdError::definite`] says whether the request
/// certainly had no effect.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    /// No connection could be made (refused, or the connect timed out): nothing was sent.
    #[error("connect to {member}: {reason}")]
    Connect { member: String, reason: String },
    /// The deadline passed after the request may have been sent.
    #[error("timeout")]
    Timeout,
    /// The connection failed after the request may have been sent.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// etcd answered with an error: its gRPC `code` and message (e.g.
    /// `etcdserver: request timed out`).
    #[error("{message}")]
    Server {
        /// The gRPC status code (14 unavailable, 4 deadline exceeded, ...).
        code: i32,
        /// etcd's message.
        message: String,
    },
    /// An answer that could not be understood (so its effect is unknown).
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The request could not be built (nothing was sent).
    #[error("bad request: {0}")]
    BadRequest(String),
}

impl EtcdError {
    /// True only when the request certainly had no effect: nothing was sent, or etcd
    /// refused it for a reason that is decided before a proposal (invalid argument, not
    /// found, failed precondition, too many requests, ...). Timeouts, lost connections and
    /// etcd's own doubt (`request timed out`, `leader changed`, `server stopped`: gRPC
    /// unavailable, deadline exceeded, unknown, internal, aborted, cancelled) are not.
    pub fn definite(&self) -> bool {
        match self {
            EtcdError::Connect { .. } | EtcdError::BadRequest(_) => true,
            EtcdError::Timeout | EtcdError::ConnectionLost(_) | EtcdError::Malformed(_) => false,
            EtcdError::Server { code, message } => {
                grpc_code_is_definite(*code) || REFUSED_BEFORE_PROPOSAL.contains(&message.as_str())
            }
        }
    }
}

/// Messages etcd sends with gRPC code 14 (unavailable) for requests it refused before
/// proposing them: a member change that would leave fewer than a quorum of members that
/// have been connected for etcd's health interval (5 s).
pub const REFUSED_BEFORE_PROPOSAL: &[&str] = &["etcdserver: unhealthy cluster"];

/// gRPC codes that etcd returns only for requests it rejected before proposing them.
/// 3 invalid argument, 5 not found, 6 already exists, 7 permission denied, 8 resource
/// exhausted (`too many requests`: refused before the proposal), 9 failed precondition,
/// 11 out of range, 12 unimplemented, 16 unauthenticated. Everything else (1 cancelled,
/// 2 unknown, 4 deadline exceeded, 10 aborted, 13 internal, 14 unavailable, ...) may
/// follow a proposal.
pub fn grpc_code_is_definite(code: i32) -> bool {
    matches!(code, 3 | 5 | 6 | 7 | 8 | 9 | 11 | 12 | 16)
}

/// A member's view of the cluster (`/v3/maintenance/status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The answering member's id.
    pub member_id: u64,
    /// The leader's member id as it knows it; 0 when it knows none.
    pub leader_id: u64,
    /// Its Raft term.
    pub raft_term: u64,
    /// Its last Raft log index.
    pub raft_index: u64,
    /// Its applied index (0 if etcd did not say).
    pub raft_applied_index: u64,
}

/// One member of the cluster's configuration (`/v3/cluster/member/list`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    /// etcd's member id.
    pub id: u64,
    /// Its name; empty for a member added but not started yet.
    pub name: String,
    /// Its peer URLs.
    pub peer_urls: Vec<String>,
    /// Its client URLs; empty until it has started.
    pub client_urls: Vec<String>,
    /// True for a learner (a non-voting member).
    pub is_learner: bool,
}

/// The answer to a compare-and-set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasResult {
    /// True if the value matched and the new value was written.
    pub swapped: bool,
    /// On a mismatch, the value found (`None`: absent); on a swap, the new value.
    pub current: Option<String>,
}

/// A client of one etcd cluster: at most one HTTP connection per member (so its state is
/// bounded by the cluster size), no retries.
pub struct EtcdClient {
    members: Vec<Member>,
    conns: HashMap<usize, SendRequest<Full<Bytes>>>,
    connector: Option<Connector>,
}

/// Opens a TCP connection to a member's address within a timeout, blocking: for members
/// that live in network namespaces, whose sockets must be created inside the namespace that
/// reaches them (see `nemesis::netns::NetnsCluster::run_in_controller`).
pub type Connector = std::sync::Arc<
    dyn Fn(std::net::SocketAddr, Duration) -> std::io::Result<std::net::TcpStream> + Send + Sync,
>;

impl std::fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClient")
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

/// The key range of every key starting with `prefix`: `[prefix, range_end)`, where
/// `range_end` is `prefix` with its last byte below 0xff incremented (etcd's convention;
/// `"\0"`, i.e. everything, if `prefix` is empty or all 0xff).
pub fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            *end.last_mut().expect("non-empty") += 1;
            return end;
        }
        end.pop();
    }
    vec![0]
}

/// Base64 of `s`, as the gateway wants keys and values.
pub fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

/// The JSON of a range of one key, or with `prefix` of every key under it (`key` and, with
/// `prefix`, `range_end`, both base64).
fn key_range(key: &str, prefix: bool) -> Json {
    let mut range = json!({ "key": b64(key.as_bytes()) });
    if prefix {
        range["range_end"] = json!(b64(&prefix_range_end(key.as_bytes())));
    }
    range
}

/// The JSON of a linearizable (`serializable: false`) or serializable range of one key, or
/// of every key under a prefix.
pub fn range_body(key: &str, prefix: bool, serializable: bool) -> Json {
    let mut body = key_range(key, prefix);
    body["serializable"] = json!(serializable);
    body
}

/// The JSON of a transaction that puts `new` at `key` if it holds `expected` (`None`: the key
/// is absent, i.e. its `create_revision` is 0), and otherwise reads it.
pub fn cas_body(key: &str, expected: Option<&str>, new: &str) -> Json {
    let k = b64(key.as_bytes());
    let compare = match expected {
        Some(v) => json!({
            "key": k, "target": "VALUE", "result": "EQUAL", "value": b64(v.as_bytes())
        }),
        None => json!({
            "key": k, "target": "CREATE", "result": "EQUAL", "create_revision": "0"
        }),
    };
    json!({
        "compare": [compare],
        "success": [{ "request_put": { "key": k, "value": b64(new.as_bytes()) } }],
        "failure": [{ "request_range": { "key": k } }],
    })
}

/// The JSON of a "log read": a transaction that reads `key` and writes `scratch_key`, so
/// that etcd must replicate and apply it like any write (its read is evaluated at apply
/// time) instead of serving it through ReadIndex.
/// With `prefix`, the read covers every key under `key`.
pub fn log_read_body(key: &str, prefix: bool, scratch_key: &str) -> Json {
    json!({
        "success": [
            { "request_range": key_range(key, prefix) },
            { "request_put": { "key": b64(scratch_key.as_bytes()), "value": b64(b"1") } },
        ],
    })
}

/// etcd's JSON key-value pair (only what we use).
#[derive(Debug, Deserialize)]
struct Kv {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Deserialize, Default)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<Kv>,
}

/// Decodes a base64 field to a UTF-8 string.
fn unb64(s: &str) -> Result<String, EtcdError> {
    let bytes = B64
        .decode(s)
        .map_err(|e| EtcdError::Malformed(format!("bad base64 {s:?}: {e}")))?;
    String::from_utf8(bytes).map_err(|e| EtcdError::Malformed(format!("not UTF-8: {e}")))
}

/// A 64-bit integer field: the gateway writes them as decimal strings (and omits zeros).
fn u64_field(v: &Json, name: &str) -> Result<u64, EtcdError> {
    match v.get(name) {
        None | Some(Json::Null) => Ok(0),
        Some(Json::String(s)) => s
            .parse()
            .map_err(|_| EtcdError::Malformed(format!("{name}: {s:?} is not an integer"))),
        Some(Json::Number(n)) => n
            .as_u64()
            .ok_or_else(|| EtcdError::Malformed(format!("{name}: {n} is not a u64"))),
        Some(other) => Err(EtcdError::Malformed(format!("{name}: {other}"))),
    }
}

/// The first value of a range answer (`None`: absent).
fn first_value(resp: &Json) -> Result<Option<String>, EtcdError> {
    let r: RangeResponse = serde_json::from_value(resp.clone())
        .map_err(|e| EtcdError::Malformed(format!("range: {e}")))?;
    r.kvs.first().map(|kv| unb64(&kv.value)).transpose()
}

/// Every `(key, value)` of a range answer.
fn all_pairs(resp: Json) -> Result<Vec<(String, String)>, EtcdError> {
    let r: RangeResponse =
        serde_json::from_value(resp).map_err(|e| EtcdError::Malformed(format!("range: {e}")))?;
    r.kvs
        .iter()
        .map(|kv| Ok((unb64(&kv.key)?, unb64(&kv.value)?)))
        .collect()
}

/// The range answer that is a transaction's first response; `what` names the transaction in
/// the error when there is none.
fn txn_range<'a>(resp: &'a Json, what: &str) -> Result<&'a Json, EtcdError> {
    resp.get("responses")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("response_range"))
        .ok_or_else(|| EtcdError::Malformed(format!("{what} without a range: {resp}")))
}

/// Parses a status answer.
pub fn parse_status(resp: &Json) -> Result<Status, EtcdError> {
    let header = resp
        .get("header")
        .ok_or_else(|| EtcdError::Malformed("status without header".into()))?;
    // The gateway uses the JSON names (camelCase) for this message; accept both spellings.
    let either = |a: &str, b: &str| -> Result<u64, EtcdError> {
        let x = u64_field(resp, a)?;
        if x != 0 {
            Ok(x)
        } else {
            u64_field(resp, b)
        }
    };
    Ok(Status {
        member_id: u64_field(header, "member_id")?,
        leader_id: u64_field(resp, "leader")?,
        raft_term: either("raftTerm", "raft_term")?,
        raft_index: either("raftIndex", "raft_index")?,
        raft_applied_index: either("raftAppliedIndex", "raft_applied_index")?,
    })
}

/// Parses one member of a member list or add answer.
fn parse_member(m: &Json) -> Result<MemberInfo, EtcdError> {
    let strings = |name: &str| -> Vec<String> {
        m.get(name)
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(MemberInfo {
        id: u64_field(m, "ID")?,
        name: m
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string(),
        peer_urls: strings("peerURLs"),
        client_urls: strings("clientURLs"),
        is_learner: m.get("isLearner").and_then(Json::as_bool).unwrap_or(false),
    })
}

/// Turns an HTTP answer into the JSON body or etcd's error. The gateway answers errors as
/// `{"error": ..., "message": ..., "code": <gRPC code>}` with a non-2xx status.
pub fn parse_answer(status: u16, body: &[u8]) -> Result<Json, EtcdError> {
    let v: Json = serde_json::from_slice(body).map_err(|e| {
        EtcdError::Malformed(format!(
            "HTTP {status}: {e}: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    })?;
    if let Some(code) = v.get("code").and_then(Json::as_i64) {
        if code != 0 || !(200..300).contains(&status) {
            let message = v
                .get("message")
                .or_else(|| v.get("error"))
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string();
            return Err(EtcdError::Server {
                code: code as i32,
                message,
            });
        }
    }
    if !(200..300).contains(&status) {
        return Err(EtcdError::Malformed(format!(
            "HTTP {status} without an error code"
        )));
    }
    Ok(v)
}

impl EtcdClient {
    /// A client of `members`; connects lazily.
    pub fn new(members: Vec<Member>) -> EtcdClient {
        EtcdClient {
            members,
            conns: HashMap::new(),
            connector: None,
        }
    }

    /// A client of `members` that opens its connections through `connector` (`None`: this
    /// process's own network namespace).
    pub fn with_connector(members: Vec<Member>, connector: Option<Connector>) -> EtcdClient {
        EtcdClient {
            connector,
            ..EtcdClient::new(members)
        }
    }

    /// The members this client knows, by index.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Drops every connection (a fresh process must not reuse them).
    pub fn reset(&mut self) {
        self.conns.clear();
    }

    /// A connection to member `m` that is ready to send: the cached one if it is still open
    /// and ready, else a new one. Nothing is sent here, so every error is definite.
    async fn ready_conn(
        &mut self,
        m: usize,
        deadline: Instant,
    ) -> Result<&mut SendRequest<Full<Bytes>>, EtcdError> {
        let member = self
            .members
            .get(m)
            .ok_or_else(|| EtcdError::BadRequest(format!("no member {m}")))?
            .clone();
        let connect_err = |reason: String| EtcdError::Connect {
            member: member.name.clone(),
            reason,
        };
        // A cached connection the server closed (restart, idle timeout) is replaced before
        // anything is sent on it: `ready` fails, rather than the request, when it is closed.
        let reusable = match self.conns.get_mut(&m) {
            Some(s) if !s.is_closed() => {
                matches!(
                    tokio::time::timeout_at(deadline, s.ready()).await,
                    Ok(Ok(()))
                )
            }
            _ => false,
        };
        if !reusable {
            self.conns.remove(&m);
            let stream = match &self.connector {
                None => tokio::time::timeout_at(deadline, TcpStream::connect(member.client_addr))
                    .await
                    .map_err(|_| connect_err("connect timed out".into()))?
                    .map_err(|e| connect_err(e.to_string()))?,
                Some(connect) => {
                    let connect = connect.clone();
                    let addr = member.client_addr;
                    let timeout = deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1));
                    let std_stream = tokio::task::spawn_blocking(move || connect(addr, timeout))
                        .await
                        .map_err(|e| connect_err(e.to_string()))?
                        .map_err(|e| connect_err(e.to_string()))?;
                    std_stream
                        .set_nonblocking(true)
                        .map_err(|e| connect_err(e.to_string()))?;
                    TcpStream::from_std(std_stream).map_err(|e| connect_err(e.to_string()))?
                }
            };
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| connect_err(format!("handshake: {e}")))?;
            // The connection task ends when the connection closes or the sender is dropped.
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.conns.insert(m, sender);
        }
        Ok(self.conns.get_mut(&m).expect("inserted above"))
    }

    /// POSTs `body` to `path` at member `m`. Once the request may have been sent, any
    /// failure is indefinite and the connection is dropped.
    pub async fn call(
        &mut self,
        m: usize,
        path: &str,
        body: &Json,
        deadline: Instant,
    ) -> Result<Json, EtcdError> {
        let addr = self
            .members
            .get(m)
            .ok_or_else(|| EtcdError::BadRequest(format!("no member {m}")))?
            .client_addr;
        let req = hyper::Request::post(format!("http://{addr}{path}"))
            .header(hyper::header::HOST, addr.to_string())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| EtcdError::BadRequest(e.to_string()))?;
        let sender = self.ready_conn(m, deadline).await?;
        let exchange = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| EtcdError::ConnectionLost(e.to_string()))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| EtcdError::ConnectionLost(e.to_string()))?
                .to_bytes();
            Ok::<_, EtcdError>((status, body))
        };
        let result = match tokio::time::timeout_at(deadline, exchange).await {
            Err(_) => Err(EtcdError::Timeout),
            Ok(r) => r,
        };
        let (status, body) = match result {
            Ok(x) => x,
            Err(e) => {
                // A late answer must never meet a later request.
                self.conns.remove(&m);
                return Err(e);
            }
        };
        parse_answer(status, &body)
    }

    /// Puts `value` at `key`.
    pub async fn put(
        &mut self,
        m: usize,
        key: &str,
        value: &str,
        deadline: Instant,
    ) -> Result<(), EtcdError> {
        let body = json!({ "key": b64(key.as_bytes()), "value": b64(value.as_bytes()) });
        self.call(m, "/v3/kv/put", &body, deadline).await.map(drop)
    }

    /// Reads `key`: linearizable unless `serializable` (then member `m` answers from its
    /// local state, possibly stale).
    pub async fn get(
        &mut self,
        m: usize,
        key: &str,
        serializable: bool,
        deadline: Instant,
    ) -> Result<Option<String>, EtcdError> {
        first_value(&self.range(m, key, false, serializable, deadline).await?)
    }

    /// Every `(key, value)` under `prefix`, in key order.
    pub async fn range_prefix(
        &mut self,
        m: usize,
        prefix: &str,
        serializable: bool,
        deadline: Instant,
    ) -> Result<Vec<(String, String)>, EtcdError> {
        all_pairs(self.range(m, prefix, true, serializable, deadline).await?)
    }

    /// The range answer of [`range_body`] (`key`, or every key under it with `prefix`).
    async fn range(
        &mut self,
        m: usize,
        key: &str,
        prefix: bool,
        serializable: bool,
        deadline: Instant,
    ) -> Result<Json, EtcdError> {
        let body = range_body(key, prefix, serializable);
        self.call(m, "/v3/kv/range", &body, deadline).await
    }

    /// Compare-and-set in one transaction (see [`cas_body`]).
    pub async fn cas(
        &mut self,
        m: usize,
        key: &str,
        expected: Option<&str>,
        new: &str,
        deadline: Instant,
    ) -> Result<CasResult, EtcdError> {
        let resp = self
            .call(m, "/v3/kv/txn", &cas_body(key, expected, new), deadline)
            .await?;
        parse_cas(&resp, new)
    }

    /// Reads `key` through the log (see [`log_read_body`]).
    pub async fn log_read(
        &mut self,
        m: usize,
        key: &str,
        scratch_key: &str,
        deadline: Instant,
    ) -> Result<Option<String>, EtcdError> {
        first_value(&self.log_range(m, key, false, scratch_key, deadline).await?)
    }

    /// Reads every `(key, value)` under `prefix` through the log (see [`log_read_body`]).
    pub async fn log_read_prefix(
        &mut self,
        m: usize,
        prefix: &str,
        scratch_key: &str,
        deadline: Instant,
    ) -> Result<Vec<(String, String)>, EtcdError> {
        all_pairs(
            self.log_range(m, prefix, true, scratch_key, deadline)
                .await?,
        )
    }

    /// The range answer inside the answer to [`log_read_body`] (`key`, or every key under it
    /// with `prefix`).
    async fn log_range(
        &mut self,
        m: usize,
        key: &str,
        prefix: bool,
        scratch_key: &str,
        deadline: Instant,
    ) -> Result<Json, EtcdError> {
        let body = log_read_body(key, prefix, scratch_key);
        let resp = self.call(m, "/v3/kv/txn", &body, deadline).await?;
        txn_range(&resp, "transaction").cloned()
    }

    /// Member `m`'s status.
    pub async fn status(&mut self, m: usize, deadline: Instant) -> Result<Status, EtcdError> {
        let resp = self
            .call(m, "/v3/maintenance/status", &json!({}), deadline)
            .await?;
        parse_status(&resp)
    }

    /// The cluster's members, as member `m` knows them.
    pub async fn member_list(
        &mut self,
        m: usize,
        deadline: Instant,
    ) -> Result<Vec<MemberInfo>, EtcdError> {
        let resp = self
            .call(m, "/v3/cluster/member/list", &json!({}), deadline)
            .await?;
        resp.get("members")
            .and_then(Json::as_array)
            .map(|a| a.iter().map(parse_member).collect())
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    /// etcd member id → index into this client's members, for the members in member `m`'s
    /// member list whose name is one of ours (a learner that has not started yet has no name
    /// and is left out). Ids change when a member is removed and added back, so callers
    /// refresh this after membership changes.
    pub async fn member_ids(
        &mut self,
        m: usize,
        deadline: Instant,
    ) -> Result<HashMap<u64, usize>, EtcdError> {
        let list = self.member_list(m, deadline).await?;
        Ok(list
            .iter()
            .filter_map(|info| {
                let i = self.members.iter().position(|x| x.name == info.name)?;
                Some((info.id, i))
            })
            .collect())
    }

    /// Removes member `id` from the cluster (asking member `m`).
    pub async fn member_remove(
        &mut self,
        m: usize,
        id: u64,
        deadline: Instant,
    ) -> Result<(), EtcdError> {
        self.member_call(m, "/v3/cluster/member/remove", id, deadline)
            .await
    }

    /// Adds a learner with `peer_url` (asking member `m`); returns it (its id is what
    /// [`EtcdClient::member_promote`] takes).
    pub async fn member_add_learner(
        &mut self,
        m: usize,
        peer_url: &str,
        deadline: Instant,
    ) -> Result<MemberInfo, EtcdError> {
        let body = json!({ "peerURLs": [peer_url], "isLearner": true });
        let resp = self
            .call(m, "/v3/cluster/member/add", &body, deadline)
            .await?;
        parse_member(
            resp.get("member")
                .ok_or_else(|| EtcdError::Malformed(format!("add without member: {resp}")))?,
        )
    }

    /// Promotes learner `id` to a voting member (asking member `m`). etcd refuses (gRPC 9,
    /// `etcdserver: can only promote a learner member which is in sync with leader`) until
    /// the learner has caught up: callers retry within their own deadline.
    pub async fn member_promote(
        &mut self,
        m: usize,
        id: u64,
        deadline: Instant,
    ) -> Result<(), EtcdError> {
        self.member_call(m, "/v3/cluster/member/promote", id, deadline)
            .await
    }

    /// POSTs `{"ID": id}` (a member id, as a decimal string) to `path` at member `m`,
    /// dropping the answer.
    async fn member_call(
        &mut self,
        m: usize,
        path: &str,
        id: u64,
        deadline: Instant,
    ) -> Result<(), EtcdError> {
        let body = json!({ "ID": id.to_string() });
        self.call(m, path, &body, deadline).await.map(drop)
    }
}

/// Reads a cas transaction's answer: `succeeded` (omitted when false) and, on a mismatch,
/// the value the failure branch read.
pub fn parse_cas(resp: &Json, new: &str) -> Result<CasResult, EtcdError> {
    let swapped = resp
        .get("succeeded")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    if swapped {
        return Ok(CasResult {
            swapped,
            current: Some(new.to_string()),
        });
    }
    Ok(CasResult {
        swapped,
        current: first_value(txn_range(resp, "cas failure")?)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_base64_with_string_integers() {
        assert_eq!(
            range_body("k1", false, true),
            json!({"key": "azE=", "serializable": true})
        );
        // "set/" .. "set0": every key under the prefix and nothing else.
        assert_eq!(
            range_body("set/", true, false),
            json!({"key": b64(b"set/"), "serializable": false, "range_end": b64(b"set0")})
        );
        assert_eq!(prefix_range_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_range_end(b""), vec![0]);
        let c = cas_body("k1", None, "7");
        assert_eq!(c["compare"][0]["target"], "CREATE");
        assert_eq!(c["compare"][0]["create_revision"], "0");
        assert_eq!(c["success"][0]["request_put"]["value"], b64(b"7"));
        let c = cas_body("k1", Some("5"), "7");
        assert_eq!(c["compare"][0]["value"], "NQ==");
        let l = log_read_body("k1", false, "scratch");
        assert_eq!(l["success"][0]["request_range"]["key"], "azE=");
        assert_eq!(l["success"][1]["request_put"]["key"], b64(b"scratch"));
    }

    #[test]
    fn answers_parse_as_etcd_3_4_writes_them() {
        // Captured from etcd 3.4.23.
        let st = json!({"header":{"cluster_id":"1","member_id":"13668033151171901709",
            "revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"20480",
            "leader":"13668033151171901709","raftIndex":"4","raftTerm":"2",
            "raftAppliedIndex":"4","dbSizeInUse":"16384"});
        assert_eq!(
            parse_status(&st).unwrap(),
            Status {
                member_id: 13668033151171901709,
                leader_id: 13668033151171901709,
                raft_term: 2,
                raft_index: 4,
                raft_applied_index: 4
            }
        );
        let miss = json!({"header":{"revision":"3"},"responses":[{"response_range":{
            "header":{"revision":"3"},"kvs":[{"key":"azE=","create_revision":"2",
            "mod_revision":"3","version":"2","value":"Ng=="}],"count":"1"}}]});
        assert_eq!(
            parse_cas(&miss, "9").unwrap(),
            CasResult {
                swapped: false,
                current: Some("6".into())
            }
        );
        let absent = json!({"header":{},"responses":[{"response_range":{"header":{}}}]});
        assert_eq!(parse_cas(&absent, "9").unwrap().current, None);
        let hit = json!({"header":{},"succeeded":true,"responses":[{"response_put":{}}]});
        assert!(parse_cas(&hit, "9").unwrap().swapped);
        let m = parse_member(
            &json!({"ID":"42","name":"n1","peerURLs":["http://127.0.0.1:1"],
            "isLearner":true}),
        )
        .unwrap();
        assert_eq!(m.id, 42);
        assert!(m.is_learner && m.client_urls.is_empty());
    }

    #[test]
    fn errors_are_classified_by_certainty() {
        let e = parse_answer(
            503,
            br#"{"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "etcdserver: request timed out");
        assert!(!e.definite());
        let e = parse_answer(
            404,
            br#"{"error":"etcdserver: member not found","message":"etcdserver: member not found","code":5}"#,
        )
        .unwrap_err();
        assert!(e.definite());
        let e = parse_answer(400, b"{\"code\":3,\"message\":\"illegal base64\"}").unwrap_err();
        assert!(e.definite());
        assert!(!parse_answer(502, b"<html>").unwrap_err().definite());
        assert!(parse_answer(200, b"{\"header\":{}}").is_ok());
        assert!(EtcdError::Connect {
            member: "n1".into(),
            reason: "refused".into()
        }
        .definite());
        assert!(!EtcdError::Timeout.definite());
        assert!(!EtcdError::ConnectionLost("reset".into()).definite());
        let unhealthy = parse_answer(
            503,
            br#"{"error":"etcdserver: unhealthy cluster","message":"etcdserver: unhealthy cluster","code":14}"#,
        )
        .unwrap_err();
        assert!(unhealthy.definite());
        for code in [1, 2, 4, 10, 13, 14] {
            assert!(!grpc_code_is_definite(code), "{code}");
        }
    }

    #[tokio::test]
    async fn refused_connection_is_definite() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let mut c = EtcdClient::new(vec![Member {
            name: "n1".into(),
            client_addr: addr,
        }]);
        let dl = Instant::now() + std::time::Duration::from_secs(1);
        let e = c.put(0, "k", "1", dl).await.unwrap_err();
        assert!(
            matches!(e, EtcdError::Connect { .. }) && e.definite(),
            "{e:?}"
        );
    }
}
