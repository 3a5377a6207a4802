//! Waiting in the foreground for a container's process (`run`, `exec`): signals are
//! blocked before the fork, so an exit (SIGCHLD) or a signal that arrives at any
//! moment stays pending until taken here; every other signal is forwarded.

use std::os::fd::OwnedFd;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Result, SysContext};
use crate::linux::terminal;
use crate::systemd::notify::{HostSocket, Relay};

/// The signals `run` forwards: everything a user or a supervisor may send.
pub fn forwarded() -> SigSet {
    let mut set = SigSet::all();
    for s in [
        Signal::SIGKILL,
        Signal::SIGSTOP,
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGTRAP,
        Signal::SIGSYS,
    ] {
        set.remove(s);
    }
    set
}

/// Wait for the process to exit, forwarding every other signal to it.
pub fn wait_forwarding(pid: i32, set: &SigSet) -> Result<i32> {
    let init = Pid::from_raw(pid);
    loop {
        let sig = set.wait().sys("waiting for signals")?;
        if sig == Signal::SIGCHLD {
            if let Some(code) = reap(init, |_| {}) {
                return Ok(code);
            }
        } else {
            let _ = nix::sys::signal::kill(init, sig);
        }
    }
}

/// What a foreground `run` watches besides its process (see `wait_relaying`).
#[derive(Default)]
pub struct Watch<'a> {
    /// The app's notify socket.
    pub relay: Option<&'a Relay>,
    /// systemd's, when nook has one.
    pub host: Option<&'a HostSocket>,
    /// `--announce`.
    pub announce: Option<&'a mut crate::discovery::announce::Announcer>,
    /// `--ready-cmd`.
    pub ready: Option<&'a mut super::ready::ReadyCheck>,
}

impl Watch<'_> {
    /// The app is ready (its READY=1, or --ready-cmd passed).
    fn ready(&mut self) {
        if let Some(a) = self.announce.as_deref_mut() {
            a.ready();
        }
    }

    /// The app is stopping or gone: out of the load balancer.
    fn withdraw(&mut self) {
        if let Some(a) = self.announce.as_deref_mut() {
            a.withdraw();
        }
    }

    /// What the ready check found, told to systemd and the announcer.
    fn verdict(&mut self, v: Option<super::ready::Verdict>) {
        use super::ready::Verdict;
        let say = |msg: &str| {
            if let Some(Err(e)) = self.host.map(|h| h.send(msg)) {
                eprintln!("nook: telling systemd: {e}");
            }
        };
        match v {
            Some(Verdict::Ready) => {
                say("READY=1\nSTATUS=ready (--ready-cmd passed)\n");
                self.ready();
            }
            Some(Verdict::Failing(why)) => {
                say(&format!("STATUS=--ready-cmd failing: {why}\n"));
                if let Some(a) = self.announce.as_deref_mut() {
                    a.unready();
                }
            }
            None => {}
        }
    }

    /// When the next timed step (lease renewal, ready check) is due.
    fn due(&self) -> Option<std::time::Duration> {
        let a = self.announce.as_ref().and_then(|a| a.timeout());
        let r = self.ready.as_ref().map(|r| r.timeout());
        match (a, r) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }
}

/// As `wait_forwarding`, also watching what a foreground `run` supervises: the app's
/// notify messages, relayed to systemd when nook has its socket (nook stays the unit's
/// main process, so NotifyAccess=main hears them); the ready check (`--ready-cmd`); and
/// the announcer (`--announce`), told when the app is ready or stopping, whose lease is
/// renewed when due meanwhile.
pub fn wait_relaying(pid: i32, set: &SigSet, mut w: Watch) -> Result<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use std::os::fd::AsFd;

    let init = Pid::from_raw(pid);
    let flags = SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK;
    let sfd = SignalFd::with_flags(set, flags).sys("making a signalfd")?;
    loop {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(r) = w.relay {
            fds.push(PollFd::new(r.fd(), PollFlags::POLLIN));
        }
        let timeout = match w.due() {
            // Rounded up: waking a millisecond early would only poll again.
            Some(d) => PollTimeout::try_from(d.as_millis().min(60_000) as i32 + 1)
                .unwrap_or(PollTimeout::MAX),
            None => PollTimeout::NONE,
        };
        match poll(&mut fds, timeout) {
            Err(nix::Error::EINTR) => continue,
            r => r.sys("waiting for signals and notify messages")?,
        };
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty())
        };
        if let (true, Some(relay)) = (ready(1), w.relay) {
            let said = relay.pump(w.host);
            if said.stopping {
                w.withdraw();
            } else if said.ready {
                w.ready();
            }
        }
        if let Some(a) = w.announce.as_deref_mut() {
            a.tick();
        }
        let v = w.ready.as_deref_mut().and_then(|r| r.tick());
        w.verdict(v);
        if !ready(0) {
            continue;
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            let sig = Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGCHLD);
            if sig == Signal::SIGCHLD {
                let mut verdicts = vec![];
                let exited = reap(init, |st| {
                    if let Some(r) = w.ready.as_deref_mut() {
                        verdicts.push(r.reaped(st));
                    }
                });
                for v in verdicts {
                    w.verdict(v);
                }
                if let Some(code) = exited {
                    // Whatever the app said last (STOPPING=1, STATUS=) still reaches systemd.
                    if let Some(relay) = w.relay {
                        relay.pump(w.host);
                    }
                    if let Some(r) = w.ready.as_deref_mut() {
                        r.stop();
                    }
                    w.withdraw();
                    return Ok(code);
                }
            } else {
                // Asked to stop (systemctl stop, ^C): out of the load balancer first.
                if matches!(sig, Signal::SIGTERM | Signal::SIGINT) {
                    w.withdraw();
                }
                let _ = nix::sys::signal::kill(init, sig);
            }
        }
    }
}

/// A foreground terminal: the user's terminal in raw mode, bytes copied both ways,
/// window-size changes passed on, signals forwarded, until the process exits.
/// With `notify`, the app's sd_notify messages are relayed too (see `wait_relaying`).
pub fn proxy_terminal(
    pid: i32,
    set: &SigSet,
    master: &OwnedFd,
    sized: bool,
    notify: Option<(&Relay, &HostSocket)>,
) -> Result<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use std::os::fd::AsFd;

    let init = Pid::from_raw(pid);
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let sfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC).sys("making a signalfd")?;
    let _raw = terminal::RawMode::enter(stdin.as_fd());
    let resize = || {
        if let Some((r, c)) = terminal::size_of(stdin.as_fd()) {
            let _ = terminal::resize(master.as_fd(), r, c);
        }
    };
    if !sized {
        resize();
    }
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        let relay_at = notify.map(|(r, _)| {
            fds.push(PollFd::new(r.fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            r => r.sys("waiting on the terminal")?,
        };
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .unwrap_or(PollFlags::empty())
        };
        let stdin_ready = if stdin_open {
            ready(2)
        } else {
            PollFlags::empty()
        };
        let (sig_ready, master_ready) = (ready(0), ready(1));
        if let (Some(i), Some((relay, host))) = (relay_at, notify) {
            if !ready(i).is_empty() {
                relay.pump(Some(host));
            }
        }
        if !master_ready.is_empty() {
            // EIO once every slave is closed: the process is gone or closing.
            if let Ok(n @ 1..) = nix::unistd::read(master, &mut buf) {
                write_all(&stdout, &buf[..n]);
            }
        }
        if !stdin_ready.is_empty() {
            match nix::unistd::read(&stdin, &mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = nix::unistd::write(master, &buf[..n]);
                }
            }
        }
        if sig_ready.is_empty() {
            continue;
        }
        let Ok(Some(info)) = sfd.read_signal() else {
            continue;
        };
        let sig = Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGCHLD);
        match sig {
            Signal::SIGCHLD => {
                if let Some(code) = reap(init, |_| {}) {
                    drain(master, &stdout);
                    if let Some((relay, host)) = notify {
                        relay.pump(Some(host));
                    }
                    return Ok(code);
                }
            }
            Signal::SIGWINCH => resize(),
            s => {
                let _ = nix::sys::signal::kill(init, s);
            }
        }
    }
}

/// The init's exit code if it has exited; any other child reaped on the way goes to
/// `other` (the ready check; orphans the subreaper inherited).
fn reap(init: Pid, mut other: impl FnMut(WaitStatus)) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == init => return Some(code),
            Ok(WaitStatus::Signaled(p, s, _)) if p == init => return Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(st) => other(st),
        }
    }
}

/// Copy what the process wrote before exiting.
fn drain(master: &OwnedFd, out: &std::io::Stdout) {
    let _ = nix::fcntl::fcntl(
        master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let mut buf = [0u8; 8192];
    while let Ok(n @ 1..) = nix::unistd::read(master, &mut buf) {
        write_all(out, &buf[..n]);
    }
}

fn write_all(out: &std::io::Stdout, data: &[u8]) {
    use std::io::Write;
    let mut o = out.lock();
    let _ = o.write_all(data);
    let _ = o.flush();
}
