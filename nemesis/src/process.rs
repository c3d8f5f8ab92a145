//! Supervision of node processes: start, kill -9, restart, pause, resume, and never leave one
//! behind.
//!
//! Each child runs in its own process group (so a Ctrl-C at the terminal reaches only the
//! harness, which then decides) with stdout and stderr appended to a log file. Signals go to
//! the child's process group, whose id is the child's PID. Every live child is also recorded
//! in a process-wide [`registry`], so a signal handler ([`install_signal_handlers`]) can kill
//! them all without taking a lock. The [`Supervisor`] kills and reaps all its children when
//! dropped, which covers errors and panics (unwinding); the handler covers SIGINT, SIGTERM and
//! SIGHUP. What no code of ours can see (SIGKILL of the harness, `std::process::exit` with a
//! live supervisor) the kernel covers: every child is forked by one long-lived [`spawner`]
//! thread with `PR_SET_PDEATHSIG = SIGKILL`, so it dies when the harness process dies.
//!
//! The calls block for at most the time the kernel takes to tear a killed process down.

pub mod registry;
pub mod spawner;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

pub use registry::{install_signal_handlers, kill_registered_children, registered_pids};

/// What to run: a program, its arguments, and where its output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The program (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// stdout and stderr are appended here (created if missing), across restarts.
    pub log_path: PathBuf,
    /// The working directory (the harness's own when `None`).
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
}

impl ProcessSpec {
    /// A spec with no working directory or environment changes.
    pub fn new<I, S>(program: impl Into<PathBuf>, args: I, log_path: impl Into<PathBuf>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        ProcessSpec {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            log_path: log_path.into(),
            cwd: None,
            env: Vec::new(),
        }
    }
}

/// Why a supervision call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("no process named {0:?}")]
    Unknown(String),
    #[error("process {0:?} is already running")]
    AlreadyRunning(String),
    #[error("process {0:?} is not running")]
    NotRunning(String),
    #[error("opening log file {path}: {source}")]
    Log {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("sending {signal} to process {pid}: {source}")]
    Signal {
        pid: u32,
        signal: Signal,
        #[source]
        source: nix::Error,
    },
    #[error("waiting for process {pid}: {source}")]
    Wait {
        pid: u32,
        #[source]
        source: io::Error,
    },
    #[error("too many live children (the registry holds {})", registry::CAPACITY)]
    RegistryFull,
}

/// What a supervised process is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcState {
    /// Running (as far as we know: not exited).
    Running { pid: u32 },
    /// Stopped by [`Supervisor::pause`].
    Paused { pid: u32 },
    /// Exited on its own or was killed; the status says how.
    Exited { status: Option<ExitStatus> },
}

#[derive(Debug)]
struct Managed {
    spec: ProcessSpec,
    child: Option<Child>,
    paused: bool,
    last_status: Option<ExitStatus>,
}

/// Starts and controls named child processes; kills and reaps all of them when dropped.
///
/// Methods take `&self` (state is behind a mutex), so one supervisor can be shared by the
/// harness and the nemesis through an `Arc`.
#[derive(Debug, Default)]
pub struct Supervisor {
    procs: Mutex<BTreeMap<String, Managed>>,
}

fn signal_group(pid: u32, signal: Signal) -> Result<(), ProcessError> {
    let raw = i32::try_from(pid).map_err(|_| ProcessError::Signal {
        pid,
        signal,
        source: nix::Error::EINVAL,
    })?;
    killpg(Pid::from_raw(raw), signal).map_err(|source| ProcessError::Signal {
        pid,
        signal,
        source,
    })
}

/// Waits (at most about a second) until every thread of `pid` is stopped, as
/// `/proc/<pid>/task/*/stat` shows (state `T`). Gives up quietly when `/proc` cannot tell.
fn wait_until_stopped(pid: u32) {
    let all_stopped = || -> Option<bool> {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
        let mut any = false;
        for t in tasks.flatten() {
            let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
            // The state follows the parenthesised command name, which may contain spaces.
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            if state != 'T' && state != 't' {
                return Some(false);
            }
            any = true;
        }
        Some(any)
    };
    for _ in 0..200 {
        match all_stopped() {
            Some(true) | None => return,
            Some(false) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
}

/// Kills a child's process group (waking it first if stopped) and reaps the child.
fn kill_and_reap(child: &mut Child) -> Result<Option<ExitStatus>, ProcessError> {
    let pid = child.id();
    if let Ok(Some(status)) = child.try_wait() {
        registry::unregister(pid as i32);
        return Ok(Some(status));
    }
    // ESRCH only means it is already gone; the wait below tells how it ended.
    let _ = signal_group(pid, Signal::SIGCONT);
    let _ = signal_group(pid, Signal::SIGKILL);
    let _ = child.kill();
    // Unregistered before reaping: once reaped, the PID may be reused by a stranger.
    registry::unregister(pid as i32);
    match child.wait() {
        Ok(status) => Ok(Some(status)),
        // A signal handler may have reaped it already (ECHILD): it is gone either way.
        Err(e) if e.raw_os_error() == Some(nix::libc::ECHILD) => Ok(None),
        Err(source) => Err(ProcessError::Wait { pid, source }),
    }
}

impl Supervisor {
    /// An empty supervisor.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Managed>> {
        // A panic elsewhere must not stop us from killing children: ignore poisoning.
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start(spec: &ProcessSpec) -> Result<Child, ProcessError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log_path)
            .map_err(|source| ProcessError::Log {
                path: spec.log_path.clone(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| ProcessError::Log {
            path: spec.log_path.clone(),
            source,
        })?;
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        if let Some(dir) = &spec.cwd {
            cmd.current_dir(dir);
        }
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        // Forked on the spawner thread, whichever thread asked (restarts come from tokio's
        // short-lived blocking threads): the child then dies with the process, not the thread.
        let mut child = spawner::spawn(cmd).map_err(|source| ProcessError::Spawn {
            program: spec.program.clone(),
            source,
        })?;
        if !registry::register(child.id() as i32) {
            let _ = kill_and_reap(&mut child);
            return Err(ProcessError::RegistryFull);
        }
        // A marker line in the log so restarts are visible; failure to write it is harmless.
        if let Ok(mut f) = OpenOptions::new().append(true).open(&spec.log_path) {
            let _ = writeln!(f, "=== nemesis: started pid {}", child.id());
        }
        Ok(child)
    }

    /// Starts `spec` under `name`. A name whose previous process has exited may be reused.
    /// Returns the PID (also its process-group id).
    pub fn spawn(&self, name: &str, spec: ProcessSpec) -> Result<u32, ProcessError> {
        let mut procs = self.lock();
        if let Some(m) = procs.get_mut(name) {
            if Self::refresh(m).is_some() {
                return Err(ProcessError::AlreadyRunning(name.to_string()));
            }
        }
        let child = Self::start(&spec)?;
        let pid = child.id();
        procs.insert(
            name.to_string(),
            Managed {
                spec,
                child: Some(child),
                paused: false,
                last_status: None,
            },
        );
        Ok(pid)
    }

    /// Notices a child that exited by itself; returns its PID if still running.
    fn refresh(m: &mut Managed) -> Option<u32> {
        let child = m.child.as_mut()?;
        match child.try_wait() {
            Ok(None) => Some(child.id()),
            Ok(Some(status)) => {
                registry::unregister(child.id() as i32);
                m.last_status = Some(status);
                m.child = None;
                m.paused = false;
                None
            }
            // Cannot tell: treat as running, so a later kill still tries.
            Err(_) => Some(child.id()),
        }
    }

    /// Sends SIGKILL to `name`'s process group and reaps it. Killing a process that has
    /// already exited is not an error. Returns how it ended (`None` if unknown).
    pub fn kill(&self, name: &str) -> Result<Option<ExitStatus>, ProcessError> {
        let mut procs = self.lock();
        let m = procs
            .get_mut(name)
            .ok_or_else(|| ProcessError::Unknown(name.to_string()))?;
        let Some(mut child) = m.child.take() else {
            return Ok(m.last_status);
        };
        m.paused = false;
        let status = kill_and_reap(&mut child)?;
        m.last_status = status;
        Ok(status)
    }

    /// Kills `name` if it still runs, then starts the same command again (same arguments,
    /// same log file, so the same data directory). Returns the new PID.
    pub fn restart(&self, name: &str) -> Result<u32, ProcessError> {
        self.kill(name)?;
        let mut procs = self.lock();
        let m = procs
            .get_mut(name)
            .ok_or_else(|| ProcessError::Unknown(name.to_string()))?;
        let child = Self::start(&m.spec)?;
        let pid = child.id();
        m.child = Some(child);
        m.paused = false;
        m.last_status = None;
        Ok(pid)
    }

    fn signal_running(&self, name: &str, signal: Signal, paused: bool) -> Result<(), ProcessError> {
        let mut procs = self.lock();
        let m = procs
            .get_mut(name)
            .ok_or_else(|| ProcessError::Unknown(name.to_string()))?;
        let pid = Self::refresh(m).ok_or_else(|| ProcessError::NotRunning(name.to_string()))?;
        signal_group(pid, signal)?;
        m.paused = paused;
        Ok(())
    }

    /// Stops `name` with SIGSTOP (it keeps its sockets but answers nothing). Returns once
    /// every thread of the process is seen stopped (or after a bounded wait): the kernel
    /// only queues the signal, and on a loaded machine a thread can go on running, and
    /// answering requests, for milliseconds after `kill` returned.
    pub fn pause(&self, name: &str) -> Result<(), ProcessError> {
        self.signal_running(name, Signal::SIGSTOP, true)?;
        if let Some(pid) = self.pid(name) {
            wait_until_stopped(pid);
        }
        Ok(())
    }

    /// Resumes `name` with SIGCONT.
    pub fn resume(&self, name: &str) -> Result<(), ProcessError> {
        self.signal_running(name, Signal::SIGCONT, false)
    }

    /// The PID of `name` if it is running (or paused).
    pub fn pid(&self, name: &str) -> Option<u32> {
        let mut procs = self.lock();
        procs.get_mut(name).and_then(Self::refresh)
    }

    /// What `name` is doing now.
    pub fn state(&self, name: &str) -> Result<ProcState, ProcessError> {
        let mut procs = self.lock();
        let m = procs
            .get_mut(name)
            .ok_or_else(|| ProcessError::Unknown(name.to_string()))?;
        Ok(match Self::refresh(m) {
            Some(pid) if m.paused => ProcState::Paused { pid },
            Some(pid) => ProcState::Running { pid },
            None => ProcState::Exited {
                status: m.last_status,
            },
        })
    }

    /// The names of every process started, in order.
    pub fn names(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Wakes (SIGCONT) and kills (SIGKILL) every child still running, and reaps each. Safe to
    /// call more than once; also run on drop. Names are kept, so `restart` works afterwards.
    pub fn shutdown_all(&self) {
        let mut procs = self.lock();
        for (name, m) in procs.iter_mut() {
            if let Some(mut child) = m.child.take() {
                m.paused = false;
                match kill_and_reap(&mut child) {
                    Ok(status) => m.last_status = status,
                    Err(e) => tracing::warn!("killing {name}: {e}"),
                }
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown_all();
    }
}

/// True when `status` says the process died of `signal`.
pub fn killed_by(status: &ExitStatus, signal: Signal) -> bool {
    status.signal() == Some(signal as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// The one-letter state of a process from /proc (`None` if it does not exist).
    fn proc_state(pid: u32) -> Option<char> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The state follows the command name, which is in parentheses.
        s.rsplit_once(')')?.1.trim_start().chars().next()
    }

    fn wait_for_state(pid: u32, want: impl Fn(Option<char>) -> bool) -> Option<char> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = proc_state(pid);
            if want(s) || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn sleeper(dir: &tempfile::TempDir) -> ProcessSpec {
        ProcessSpec::new("sleep", ["1000"], dir.path().join("n.log"))
    }

    #[test]
    fn kill_pause_resume_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new();
        let pid = sup.spawn("n1", sleeper(&dir)).unwrap();
        assert!(registered_pids().contains(&(pid as i32)));
        assert!(matches!(
            sup.spawn("n1", sleeper(&dir)),
            Err(ProcessError::AlreadyRunning(_))
        ));

        sup.pause("n1").unwrap();
        // Stopped by the time pause returns, not some time later.
        assert_eq!(proc_state(pid), Some('T'));
        assert_eq!(sup.state("n1").unwrap(), ProcState::Paused { pid });
        sup.resume("n1").unwrap();
        assert_eq!(wait_for_state(pid, |s| s == Some('S')), Some('S'));

        // Kill while paused: still dies.
        sup.pause("n1").unwrap();
        let status = sup.kill("n1").unwrap().unwrap();
        assert!(killed_by(&status, Signal::SIGKILL), "{status:?}");
        assert_eq!(proc_state(pid), None, "killed child not reaped");
        assert!(!registered_pids().contains(&(pid as i32)));
        assert!(matches!(sup.pause("n1"), Err(ProcessError::NotRunning(_))));
        // Killing again is fine.
        sup.kill("n1").unwrap();

        let pid2 = sup.restart("n1").unwrap();
        assert_ne!(pid, pid2);
        assert_eq!(sup.pid("n1"), Some(pid2));
        let log = std::fs::read_to_string(dir.path().join("n.log")).unwrap();
        assert_eq!(log.matches("=== nemesis: started pid").count(), 2, "{log}");

        drop(sup);
        assert_eq!(proc_state(pid2), None, "drop left a child behind");
        assert!(!registered_pids().contains(&(pid2 as i32)));
    }

    #[test]
    fn exit_on_its_own_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new();
        let spec = ProcessSpec::new("sh", ["-c", "echo hi; exit 3"], dir.path().join("x.log"));
        sup.spawn("x", spec).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let state = loop {
            let s = sup.state("x").unwrap();
            if matches!(s, ProcState::Exited { .. }) || Instant::now() > deadline {
                break s;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let ProcState::Exited { status: Some(st) } = state else {
            panic!("{state:?}");
        };
        assert_eq!(st.code(), Some(3));
        let log = std::fs::read_to_string(dir.path().join("x.log")).unwrap();
        assert!(log.contains("hi"), "{log}");
        // The name may be reused once its process has exited.
        sup.spawn("x", sleeper(&dir)).unwrap();
        sup.shutdown_all();
        assert!(matches!(sup.state("x").unwrap(), ProcState::Exited { .. }));
    }

    #[test]
    fn bad_input_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let sup = Supervisor::new();
        assert!(matches!(sup.kill("nope"), Err(ProcessError::Unknown(_))));
        let spec = ProcessSpec::new(
            "/nonexistent/program",
            Vec::<String>::new(),
            dir.path().join("l"),
        );
        assert!(matches!(
            sup.spawn("a", spec),
            Err(ProcessError::Spawn { .. })
        ));
        let spec = ProcessSpec::new("sleep", ["1"], dir.path().join("no/such/dir/log"));
        assert!(matches!(
            sup.spawn("b", spec),
            Err(ProcessError::Log { .. })
        ));
    }
}
