//! `run`: create, start, and (unless detached) wait in the foreground, forwarding
//! signals to the container, relaying its sd_notify messages to systemd, and exiting
//! with the app's status.
//!
//! Signals are blocked before the clone, so an exit (SIGCHLD) or a signal that
//! arrives at any moment stays pending until the wait takes it: a container
//! whose process exits at once can never leave `run` waiting.

use nix::sys::signal::{SigSet, SigmaskHow};

use super::create::{self, Options};
use super::ready::ReadyCheck;
use super::{ops, wait};
use crate::error::{Result, SysContext};
use crate::state::StateDir;
use crate::systemd::NotifyMode;

pub fn run(o: &Options, detach: bool, keep: bool) -> Result<i32> {
    ops::clear_stale(&o.root, &o.id)?;
    let set = wait::forwarded();
    let mut old = SigSet::empty();
    if !detach {
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old))
            .sys("blocking signals")?;
    }
    let mut created = create::create(o)?;
    if let (Some(r), Some(_)) = (created.relay.as_mut(), &o.ready_cmd) {
        r.hold_ready = true;
    }
    let host = o.service.notify.as_ref();
    // Detached, the app itself becomes the unit's main process (before it can notify).
    if let (true, Some(h)) = (detach, host) {
        if let Err(e) = h.send(&format!("MAINPID={}\n", created.state.pid)) {
            cleanup(o, &created);
            return Err(e.into());
        }
    }
    let released = match &created.started {
        Some(chan) => started(chan),
        None => ops::release(&created.dir),
    };
    if let Err(e) = released {
        cleanup(o, &created);
        return Err(e);
    }
    if let (NotifyMode::Exec, Some(h)) = (o.service.mode, host) {
        // release returned: the app's execve has succeeded.
        if let Err(e) = h.send("READY=1\n") {
            eprintln!("nook: telling systemd the app is ready: {e}");
        }
    }
    let mut announcer = o.announce.as_ref().map(|a| {
        crate::discovery::announce::Announcer::new(a, &o.id, &config_digest(&created), &created.dir)
    });
    if let (NotifyMode::Exec, Some(a)) = (o.service.mode, announcer.as_mut()) {
        a.ready();
    }
    let mut ready = o
        .ready_cmd
        .clone()
        .map(|argv| ReadyCheck::new(argv, o.root.clone(), o.id.clone()));
    if let Some(h) = &created.hooks {
        ops::poststart(&created.state, h);
    }
    if detach {
        return Ok(0);
    }
    let code = match (&created.console, &created.relay, host) {
        (Some(master), relay, host) => {
            let notify = relay.as_ref().zip(host);
            let sized = created.console_sized;
            wait::proxy_terminal(created.state.pid, &set, master, sized, notify)?
        }
        (None, relay, host) if relay.is_some() || announcer.is_some() || ready.is_some() => {
            let watch = wait::Watch {
                relay: relay.as_ref(),
                host,
                announce: announcer.as_mut(),
                ready: ready.as_mut(),
            };
            wait::wait_relaying(created.state.pid, &set, watch)?
        }
        _ => wait::wait_forwarding(created.state.pid, &set)?,
    };
    crate::fault::point("run.exited");
    if !keep {
        cleanup(o, &created);
    }
    crate::fault::point("run.removed");
    Ok(code)
}

/// "sha256:<hex>" of the container's config.json (saved in its state dir): which app
/// build an announced instance runs.
fn config_digest(created: &create::Created) -> String {
    use sha2::Digest;
    let text = std::fs::read(created.dir.join(crate::state::CONFIG_FILE)).unwrap_or_default();
    let hex: String = sha2::Sha256::digest(&text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// A foreground run's init starts its process by itself once set up: wait until it
/// has exec'd (its end of the channel closes on exec) or says why it could not.
fn started(chan: &crate::linux::sync::Channel) -> Result<()> {
    use crate::linux::sync::Msg;
    loop {
        match chan.recv() {
            Ok(None) => return Ok(()),
            Ok(Some(Msg::Failed(e))) => return Err(crate::Error::Init(e)),
            Ok(Some(Msg::ExecFailed(path, errno))) => {
                return Err(crate::Error::Init(crate::linux::process::exec_failed(
                    &path, errno,
                )))
            }
            Ok(Some(_)) => continue,
            Err(nix::Error::EINTR) => continue,
            // The init died without a word: its exit status tells the rest.
            Err(nix::Error::ECONNRESET) => return Ok(()),
            Err(e) => return Err(e).sys("waiting for the container process to start"),
        }
    }
}

fn cleanup(o: &Options, created: &create::Created) {
    if let Ok(dir) = StateDir::open(&o.root, &o.id, true) {
        // The state as this run wrote it (nothing rewrites a running container's cgroup
        // or pid): no need to read it back.
        ops::destroy(&created.state);
        if let Some(h) = &created.hooks {
            ops::poststop(&created.state, h);
        }
        let _ = dir.remove();
    }
}
