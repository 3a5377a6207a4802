//! `run`: create, start, and (unless detached) wait in the foreground, forwarding
//! signals to the container and exiting with the app's status.
//!
//! Signals are blocked before the clone, so an exit (SIGCHLD) or a signal that
//! arrives at any moment stays pending until `sigwaitinfo` takes it: a container
//! whose process exits at once can never leave `run` waiting.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::create::{self, Options};
use super::ops;
use crate::error::{Result, SysContext};
use crate::state::StateDir;

/// The signals `run` forwards: everything a user or a supervisor may send.
fn forwarded() -> SigSet {
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

pub fn run(o: &Options, detach: bool, keep: bool) -> Result<i32> {
    let set = forwarded();
    let mut old = SigSet::empty();
    if !detach {
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .sys("blocking signals")?;
    }
    let created = create::create(o)?;
    if let Err(e) = ops::release(&created.dir.join(crate::state::EXEC_FIFO)) {
        cleanup(o, &created);
        return Err(e);
    }
    if let Some(h) = &created.hooks {
        ops::poststart(&created.state, h);
    }
    if detach {
        return Ok(0);
    }
    let code = wait_forwarding(created.state.pid, &set)?;
    if !keep {
        cleanup(o, &created);
    }
    Ok(code)
}

/// Wait for the init to exit, forwarding every other signal to it.
fn wait_forwarding(pid: i32, set: &SigSet) -> Result<i32> {
    let init = Pid::from_raw(pid);
    loop {
        let sig = set.wait().sys("waiting for signals")?;
        if sig == Signal::SIGCHLD {
            loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(p, code)) if p == init => return Ok(code),
                    Ok(WaitStatus::Signaled(p, s, _)) if p == init => return Ok(128 + s as i32),
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        } else {
            let _ = nix::sys::signal::kill(init, sig);
        }
    }
}

fn cleanup(o: &Options, created: &create::Created) {
    if let Ok(dir) = StateDir::open(&o.root, &o.id, true) {
        if let Ok(st) = dir.read() {
            ops::destroy(&st);
        }
        if let Some(h) = &created.hooks {
            ops::poststop(&created.state, h);
        }
        let _ = dir.remove();
    }
}
