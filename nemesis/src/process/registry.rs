//! A process-wide registry of live child process groups, usable from a signal handler.
//!
//! Every child a [`super::Supervisor`] starts is registered here (its PID, which is also its
//! process-group id) until it has been killed. The registry is a fixed array of atomics, so
//! [`kill_registered_children`] takes no lock and allocates nothing: it is async-signal-safe
//! and may run inside a SIGINT/SIGTERM handler while another thread holds any lock.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc;

/// How many children may be registered at once.
pub const CAPACITY: usize = 1024;

static LIVE: [AtomicI32; CAPACITY] = [const { AtomicI32::new(0) }; CAPACITY];

/// Records `pid` as a live child. Returns false when the registry is full.
pub(crate) fn register(pid: i32) -> bool {
    LIVE.iter().any(|slot| {
        slot.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    })
}

/// Forgets `pid` (after it has been sent SIGKILL, before it is reaped, so a reused PID is
/// never signalled).
pub(crate) fn unregister(pid: i32) {
    for slot in LIVE.iter() {
        if slot
            .compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

/// The PIDs registered now (for diagnostics and tests).
pub fn registered_pids() -> Vec<i32> {
    LIVE.iter()
        .map(|s| s.load(Ordering::SeqCst))
        .filter(|&p| p > 0)
        .collect()
}

/// Sends SIGCONT then SIGKILL to the process group of every registered child, then reaps each
/// one, and empties the registry. Async-signal-safe (only atomics, `kill` and `waitpid`), so it
/// may be called from a signal handler; also safe to call from ordinary code, e.g. from the
/// harness's own Ctrl-C handling. Returns how many children it signalled.
pub fn kill_registered_children() -> usize {
    let mut n = 0;
    for slot in LIVE.iter() {
        let pid = slot.swap(0, Ordering::SeqCst);
        if pid <= 0 {
            continue;
        }
        n += 1;
        // SAFETY: plain system calls on a PID we started and have not reaped (its group id
        // is its PID: it was spawned with process_group(0)). Errors (already gone) are fine.
        unsafe {
            libc::kill(-pid, libc::SIGCONT);
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
            let mut status = 0;
            // Blocks only until the kernel has torn the killed process down. ECHILD (another
            // thread reaped it first) is fine.
            libc::waitpid(pid, &mut status, 0);
        }
    }
    n
}

extern "C" fn on_fatal_signal(sig: libc::c_int) {
    kill_registered_children();
    // SAFETY: _exit is async-signal-safe; nothing else may safely run in a handler.
    unsafe { libc::_exit(128 + sig) }
}

/// Installs handlers for SIGINT, SIGTERM and SIGHUP that kill (and reap) every registered
/// child, then exit the process with status 128 + the signal number.
///
/// This replaces any earlier handler for those signals (including tokio's): a harness that
/// wants to do more on Ctrl-C (heal, flush the history) should instead call
/// [`kill_registered_children`] from its own handling, after that work.
pub fn install_signal_handlers() -> Result<(), nix::Error> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_fatal_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler is async-signal-safe (see kill_registered_children).
        unsafe { sigaction(sig, &action) }?;
    }
    Ok(())
}
