//! SIGINT and SIGTERM during a run: the first signal asks the run to stop issuing
//! operations, heal, stop its nodes and write what it recorded; the run then remembers which
//! signal came and when, so its verdict can never be `valid` (a CI job killed by its timeout
//! must not read green). A second signal kills every node at once and exits 130.

use std::sync::OnceLock;
use std::time::Instant;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

static TOKEN: OnceLock<CancellationToken> = OnceLock::new();
static RECEIVED: OnceLock<(&'static str, Instant)> = OnceLock::new();

/// Cancelled on the first SIGINT/SIGTERM.
pub fn token() -> CancellationToken {
    TOKEN.get_or_init(CancellationToken::new).clone()
}

/// The first signal received (`SIGINT` or `SIGTERM`) and when, if any.
pub fn received() -> Option<(&'static str, Instant)> {
    RECEIVED.get().copied()
}

/// Records `signal` as received now (the first one wins) and cancels [`token`]. The signal
/// handler calls it; tests may too.
pub fn interrupt(signal: &'static str) {
    let _ = RECEIVED.set((signal, Instant::now()));
    token().cancel();
}

/// Registers SIGINT and SIGTERM handlers on `rt` (registered before this returns, so no
/// signal between here and the cluster's start can bypass them).
pub fn install_handler(rt: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let _guard = rt.enter();
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    rt.spawn(async move {
        let name = tokio::select! { _ = int.recv() => "SIGINT", _ = term.recv() => "SIGTERM" };
        eprintln!("harness: {name}: healing, stopping and checking what was recorded (again to abort at once)");
        interrupt(name);
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        nemesis::process::kill_registered_children();
        lazyfs::mounts::unmount_registered();
        std::process::exit(130);
    });
    Ok(())
}
