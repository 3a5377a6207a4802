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
            if let Some(code) = reap(init) {
                return Ok(code);
            }
        } else {
            let _ = nix::sys::signal::kill(init, sig);
        }
    }
}

/// As `wait_forwarding`, also reading the app's notify messages as they come: relayed to
/// systemd when nook has its socket (nook stays the unit's main process, so
/// NotifyAccess=main hears them), and telling the announcer (`--announce`) when the app
/// is ready or stopping, whose lease is renewed when due meanwhile.
pub fn wait_relaying(
    pid: i32,
    set: &SigSet,
    relay: Option<&Relay>,
    host: Option<&HostSocket>,
    mut announce: Option<&mut crate::discovery::announce::Announcer>,
) -> Result<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use std::os::fd::AsFd;

    let init = Pid::from_raw(pid);
    let flags = SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK;
    let sfd = SignalFd::with_flags(set, flags).sys("making a signalfd")?;
    loop {
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(r) = relay {
            fds.push(PollFd::new(r.fd(), PollFlags::POLLIN));
        }
        let due = announce.as_ref().and_then(|a| a.timeout());
        let timeout = match due {
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
        if let (true, Some(relay)) = (ready(1), relay) {
            let said = relay.pump(host);
            if let Some(a) = announce.as_deref_mut() {
                if said.stopping {
                    a.withdraw();
                } else if said.ready {
                    a.ready();
                }
            }
        }
        if let Some(a) = announce.as_deref_mut() {
            a.tick();
        }
        if !ready(0) {
            continue;
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            let sig = Signal::try_from(info.ssi_signo as i32).unwrap_or(Signal::SIGCHLD);
            if sig == Signal::SIGCHLD {
                if let Some(code) = reap(init) {
                    // Whatever the app said last (STOPPING=1, STATUS=) still reaches systemd.
                    if let Some(relay) = relay {
                        relay.pump(host);
                    }
                    if let Some(a) = announce.as_deref_mut() {
                        a.withdraw();
                    }
                    return Ok(code);
                }
            } else {
                // Asked to stop (systemctl stop, ^C): out of the load balancer first.
                if matches!(sig, Signal::SIGTERM | Signal::SIGINT) {
                    if let Some(a) = announce.as_deref_mut() {
                        a.withdraw();
                    }
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
                if let Some(code) = reap(init) {
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

/// The init's exit code if it has exited (reaping any other child on the way).
fn reap(init: Pid) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == init => return Some(code),
            Ok(WaitStatus::Signaled(p, s, _)) if p == init => return Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(_) => continue,
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
