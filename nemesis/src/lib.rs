//! Faults: a TCP proxy for every directed pair of nodes, process control, clock skew,
//! membership changes, and the seeded schedule that applies and heals them.
//!
//! - [`link`]: the state of one direction of a link (pass, cut, delay, loss) and its handle.
//! - [`proxy`]: a frame-aware TCP proxy for one directed link.
//! - [`mesh`]: one proxy per ordered pair of nodes, driven by links and grudges.
//! - [`partition`]: seeded partition shapes, each a [`partition::Grudge`].
//! - [`partition_shape`]: the partition shapes the planner draws, by name, and what each
//!   needs (cluster size, a known leader, the clock family).
//! - [`netns`]: a packet-level partition backend (a network namespace per member, nftables
//!   drop rules per directed pair) for systems the proxy mesh cannot sit between.
//! - [`process`]: node process supervision (kill -9, restart, pause, resume) that leaves no
//!   child behind.
//! - [`targets`]: which nodes a fault hits (one, minority, majority, leader, followers, all).
//! - [`failpoint_faults`]: which node failpoint to set, to what, on which nodes.
//! - [`fault`]: the fault vocabulary (families, faults, scripts) and the overlap rules.
//! - [`schedule`]: the seeded planner of which fault comes next, and when.
//! - [`admin`]: a small client for a node's admin requests (status, clock, find the leader).

pub mod admin;
pub mod failpoint_faults;
pub mod fault;
pub mod link;
pub mod mesh;
pub mod netns;
pub mod partition;
pub mod partition_shape;
pub mod process;
pub mod proxy;
pub mod schedule;
pub mod targets;

pub use link::{Direction, LinkControl, LinkState, LinkStats};
pub use proxy::{Proxy, ProxyError};
