//! `run --ready-cmd CMD`: the app is ready once CMD, run inside the container (as
//! `nook exec` runs a process), exits 0. The foreground `run` tries it every
//! half second until it first succeeds, then keeps running it every few seconds as a
//! health check: readiness goes to systemd (READY=1) and to the announcer, and a check
//! that starts failing takes the instance out of etcd until it passes again.
//!
//! The check is a child process of the supervisor (`nook exec`), reaped in its wait
//! loop: a slow or hung command never holds up signal forwarding or the lease.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

/// How often the command runs until it first succeeds.
pub const UNTIL_READY: Duration = Duration::from_millis(500);
/// How often it runs once the app is ready (the health check).
pub const WHILE_READY: Duration = Duration::from_secs(5);
/// How long one run may take before it is killed and counted as a failure.
pub const RUN_LIMIT: Duration = Duration::from_secs(10);

/// The command's words: split like a shell would split them (blanks; '...' and "..."
/// quote; a backslash escapes the next character outside single quotes), with no shell
/// involved, so it needs nothing in the container but the program itself.
pub fn parse(cmd: &str) -> Result<Vec<String>, String> {
    let bad = |why: &str| format!("--ready-cmd {cmd:?}: {why}");
    let mut words = vec![];
    let mut word: Option<String> = None;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(bad("a single quote is not closed")),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => w.push(c),
                            None => return Err(bad("a double quote is not closed")),
                        },
                        Some(c) => w.push(c),
                        None => return Err(bad("a double quote is not closed")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(bad("it ends with a backslash")),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    if words.is_empty() {
        return Err(bad("no command"));
    }
    if words.iter().any(|w| w.contains('\0')) {
        return Err(bad("a word holds a NUL byte"));
    }
    Ok(words)
}

/// What a finished check changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It succeeded for the first time (or again after failing).
    Ready,
    /// It failed after having succeeded: the app is no longer ready.
    Failing(String),
}

pub struct ReadyCheck {
    argv: Vec<String>,
    /// `nook --root ROOT exec ID`.
    nook: PathBuf,
    root: PathBuf,
    id: String,
    running: Option<(Pid, Instant)>,
    /// The running check's stderr, read when it fails.
    stderr: Option<std::os::fd::OwnedFd>,
    overran: bool,
    next: Instant,
    ready: bool,
    /// The last failure's reason, logged once until it changes.
    last_why: Option<String>,
}

fn log(msg: &str) {
    eprintln!("nook: ready-cmd: {msg}");
}

impl ReadyCheck {
    pub fn new(argv: Vec<String>, root: PathBuf, id: String) -> ReadyCheck {
        ReadyCheck {
            argv,
            // This very binary: nook runs from a read-only view of itself (self_guard),
            // whose path is no path on the host.
            nook: "/proc/self/exe".into(),
            root,
            id,
            running: None,
            stderr: None,
            overran: false,
            next: Instant::now(),
            ready: false,
            last_why: None,
        }
    }

    /// How long the supervisor may sleep before `tick` is due.
    pub fn timeout(&self) -> Duration {
        let at = match self.running {
            Some((_, started)) if !self.overran => started + RUN_LIMIT,
            // Killed: its exit (SIGCHLD) wakes the supervisor.
            Some(_) => return RUN_LIMIT,
            None => self.next,
        };
        at.saturating_duration_since(Instant::now())
    }

    /// Start the command when due; kill a run that takes too long.
    pub fn tick(&mut self) -> Option<Verdict> {
        let now = Instant::now();
        match self.running {
            Some((pid, started)) => {
                if !self.overran && now >= started + RUN_LIMIT {
                    self.overran = true;
                    let _ = kill(pid, Signal::SIGKILL);
                }
                None
            }
            None if now >= self.next => match self.spawn() {
                Ok((pid, stderr)) => {
                    self.running = Some((pid, now));
                    self.stderr = stderr;
                    self.overran = false;
                    None
                }
                Err(why) => self.finished(Err(why)),
            },
            None => None,
        }
    }

    fn spawn(&self) -> Result<(Pid, Option<std::os::fd::OwnedFd>), String> {
        let child = Command::new(&self.nook)
            .arg("--root")
            .arg(&self.root)
            .arg("exec")
            .arg(&self.id)
            .arg("--")
            .args(&self.argv)
            // What systemd gave the supervisor is not the check's.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("WATCHDOG_PID")
            .env_remove("WATCHDOG_USEC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.nook.display()))?;
        // Reaped by the supervisor's wait loop (`reaped`), not by std; its stderr (a
        // pipe the few lines of an error fit in) is read once it has exited.
        let pid = Pid::from_raw(child.id() as i32);
        let stderr = child.stderr.map(std::os::fd::OwnedFd::from);
        if let Some(fd) = &stderr {
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
        }
        Ok((pid, stderr))
    }

    /// A child of the supervisor exited: if it was the check, what it means.
    pub fn reaped(&mut self, status: WaitStatus) -> Option<Verdict> {
        let (pid, _) = self.running?;
        if status.pid() != Some(pid) {
            return None;
        }
        self.running = None;
        let stderr = self.stderr.take().map(read_some);
        let result = match status {
            WaitStatus::Exited(_, 0) => Ok(()),
            _ if self.overran => Err(format!("still running after {RUN_LIMIT:?}; killed")),
            WaitStatus::Exited(_, code) => Err(format!("exit status {code}")),
            WaitStatus::Signaled(_, s, _) => Err(format!("killed by {s}")),
            other => Err(format!("{other:?}")),
        };
        self.finished(
            result.map_err(|why| match stderr.filter(|s| !s.is_empty()) {
                Some(err) => format!("{why}: {err}"),
                None => why,
            }),
        )
    }

    fn finished(&mut self, result: Result<(), String>) -> Option<Verdict> {
        let now = Instant::now();
        match result {
            Ok(()) => {
                self.next = now + WHILE_READY;
                self.last_why = None;
                if self.ready {
                    return None;
                }
                self.ready = true;
                log(&format!("{:?} succeeded: the app is ready", self.argv));
                Some(Verdict::Ready)
            }
            Err(why) => {
                self.next = now + UNTIL_READY;
                if self.last_why.as_deref() != Some(why.as_str()) {
                    log(&format!("{:?} failed: {why}", self.argv));
                    self.last_why = Some(why.clone());
                }
                if !self.ready {
                    return None;
                }
                self.ready = false;
                Some(Verdict::Failing(why))
            }
        }
    }

    /// The app is gone: stop a check still running.
    pub fn stop(&mut self) {
        self.stderr = None;
        if let Some((pid, _)) = self.running.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
        }
    }
}

impl Drop for ReadyCheck {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The first line of what the check wrote on stderr (it has exited: no blocking).
fn read_some(fd: std::os::fd::OwnedFd) -> String {
    let mut buf = [0u8; 1024];
    let n = nix::unistd::read(&fd, &mut buf).unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]);
    text.lines().next().unwrap_or("").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_like_a_shell() {
        assert_eq!(parse("/bin/true").unwrap(), ["/bin/true"]);
        assert_eq!(
            parse(r#"  wget -q -O- 'http://127.0.0.1:80/a b' "x\"y" c\ d "" "#).unwrap(),
            [
                "wget",
                "-q",
                "-O-",
                "http://127.0.0.1:80/a b",
                "x\"y",
                "c d",
                ""
            ]
        );
        for bad in ["", "   ", "'open", "\"open", "end\\"] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with("--ready-cmd"), "{bad:?}: {e}");
        }
    }
}
