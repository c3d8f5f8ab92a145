//! Free loopback ports for processes that a test or the harness starts and that bind later.
//!
//! Binding port 0, reading the port and releasing it leaves a window until the new process
//! binds: a port from the kernel's ephemeral range can be taken in that window by any outgoing
//! connection on the machine (every client socket draws its local port from that range), and
//! on a busy 2-core CI machine it was (a node exited "Address already in use"). Ports here are
//! drawn at random from below the ephemeral range, which outgoing connections never use, and
//! a process never hands out the same port twice while it has others left, so two nodes
//! started by one test cannot be given one port.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

use rand::Rng;

/// The lowest port drawn; below it live well-known and registered services.
const LOWEST: u16 = 10_000;

/// Ports this process has handed out already (cleared when the range is used up).
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// The first port of the kernel's ephemeral range (`ip_local_port_range`), 32768 when it
/// cannot be read.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A loopback port that was free a moment ago and that no outgoing connection can take
/// before the caller's process binds it: random from `10000` up to the start of the kernel's
/// ephemeral range, never one this process has handed out before (until the range runs
/// out), so concurrent tests and concurrent harness runs rarely meet. When the range below
/// the ephemeral one is too small or crowded, the kernel picks (the old, racy way).
pub fn free_port() -> std::io::Result<u16> {
    let top = ephemeral_start();
    if top > LOWEST + 1_000 {
        let mut rng = rand::thread_rng();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if handed_out.len() > usize::from(top - LOWEST) / 2 {
            handed_out.clear();
        }
        for _ in 0..200 {
            let port = rng.gen_range(LOWEST..top);
            if handed_out.contains(&port) {
                continue;
            }
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                handed_out.insert(port);
                return Ok(port);
            }
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `n` distinct ports from [`free_port`] (distinct even when its memory was just cleared or
/// the kernel picked); an error if they cannot be found in `10 n` draws.
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let mut ports = Vec::with_capacity(n);
    for _ in 0..10 * n.max(1) {
        if ports.len() == n {
            break;
        }
        let p = free_port()?;
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    if ports.len() < n {
        return Err(std::io::Error::other(format!(
            "found only {} distinct free loopback ports of {n}",
            ports.len()
        )));
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_distinct_and_bindable() {
        let top = ephemeral_start();
        let ports = free_ports(500).unwrap();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "a port handed out twice");
        for p in &ports {
            if top > LOWEST + 1_000 {
                assert!(
                    (LOWEST..top).contains(p),
                    "port {p} outside {LOWEST}..{top}"
                );
            }
        }
        // Each can be bound right now (nobody else took it in this instant).
        let bound = ports
            .iter()
            .filter(|p| TcpListener::bind(("127.0.0.1", **p)).is_ok())
            .count();
        assert!(
            bound >= ports.len() - 5,
            "only {bound} of {} bindable",
            ports.len()
        );
    }
}
