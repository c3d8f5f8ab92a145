//! Children that die with the harness, even when the harness is killed with SIGKILL.
//!
//! Every child is started with `PR_SET_PDEATHSIG = SIGKILL`, so the kernel kills it as soon as
//! its parent is gone, whatever killed the parent. The kernel's "parent" there is the *thread*
//! that forked, not the process: a child forked from a short-lived thread (tokio's
//! `spawn_blocking` pool retires threads idle for ~10 s) would be killed when that thread
//! exits, in the middle of a run. So every fork happens on one spawner thread that is started
//! on first use and never returns: it lives exactly as long as the process.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::Mutex;

use nix::libc;

/// The exit status of a child whose parent died before it could ask to die with it.
pub const ORPHANED_AT_BIRTH: i32 = 125;

type Request = (Command, mpsc::SyncSender<io::Result<Child>>);

/// The channel to the spawner thread; `None` until the first spawn.
static SPAWNER: Mutex<Option<mpsc::Sender<Request>>> = Mutex::new(None);

/// Arranges for the child of `cmd` to receive SIGKILL when the thread that forks it exits
/// (the process's exit ends every thread, so it covers SIGKILL of the process too).
///
/// `parent` is the PID the child must see as its parent: if the parent died between the fork
/// and the request (then the child has already been reparented and no signal will ever
/// come), the child exits at once with status [`ORPHANED_AT_BIRTH`] instead of running.
pub fn die_with_parent(cmd: &mut Command, parent: libc::pid_t) {
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                libc::_exit(ORPHANED_AT_BIRTH);
            }
            Ok(())
        });
    }
}

fn gone() -> io::Error {
    io::Error::other("the process spawner thread is gone")
}

/// Starts `cmd` (with [`die_with_parent`] set up for this process) on the process-wide
/// spawner thread and returns the child. Blocks until the child has been forked and has
/// exec'd (or failed to).
///
/// Guarantees: the child is killed by the kernel when this process dies, however it dies, and
/// not before, whichever thread called this.
pub fn spawn(mut cmd: Command) -> io::Result<Child> {
    die_with_parent(&mut cmd, std::process::id() as libc::pid_t);
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    {
        // A panic elsewhere while holding the lock leaves the channel usable: ignore poisoning.
        let mut guard = SPAWNER.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let (tx, rx) = mpsc::channel::<Request>();
            std::thread::Builder::new()
                .name("nemesis-spawner".into())
                .spawn(move || serve(rx))?;
            *guard = Some(tx);
        }
        let tx = guard.as_ref().ok_or_else(gone)?;
        tx.send((cmd, reply_tx)).map_err(|_| gone())?;
    }
    reply_rx.recv().map_err(|_| gone())?
}

/// The spawner thread's loop. The sender sits in a static, so `recv` never fails and the
/// thread runs until the process exits.
fn serve(requests: mpsc::Receiver<Request>) {
    while let Ok((mut cmd, reply)) = requests.recv() {
        // The caller may have given up waiting; the child is then reaped by nobody, but it
        // still dies with the process.
        let _ = reply.send(cmd.spawn());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};

    fn sleeper() -> Command {
        let mut c = Command::new("sleep");
        c.arg("1000");
        c
    }

    /// Waits (bounded) for `child` to exit; kills it and fails if it does not.
    fn wait_exit(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what}: still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_child_whose_parent_is_already_gone_does_not_run() {
        let mut cmd = sleeper();
        // Pretend the parent is someone else: the child must see itself orphaned.
        die_with_parent(&mut cmd, 1);
        let mut child = cmd.spawn().unwrap();
        let status = wait_exit(&mut child, Duration::from_secs(5), "orphaned child");
        assert_eq!(status.code(), Some(ORPHANED_AT_BIRTH), "{status:?}");
    }

    #[test]
    fn a_child_forked_on_a_short_lived_thread_survives_it_only_through_the_spawner() {
        // On a thread that then exits: one child forked right there (the control, which the
        // kernel must kill when the thread goes) and one through the spawner (which must live).
        let (mut control, mut kept) = std::thread::spawn(|| {
            let mut c = sleeper();
            die_with_parent(&mut c, std::process::id() as libc::pid_t);
            (c.spawn().unwrap(), spawn(sleeper()).unwrap())
        })
        .join()
        .unwrap();
        // The control's death is the event that says the thread's exit has been processed.
        let status = wait_exit(&mut control, Duration::from_secs(5), "control child");
        let kept_status = kept.try_wait().unwrap();
        let _ = kept.kill();
        let _ = kept.wait();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
        assert_eq!(
            kept_status, None,
            "a child of the spawner died with the thread that asked for it"
        );
    }
}
