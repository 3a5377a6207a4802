//! `exec`, child side: the forked copy of nook that becomes a new process in an
//! existing container. It is already in the container's pid (and time) namespace;
//! it joins the others (user first, mount last), waits until the parent has moved
//! it into the container's cgroup, sets up the process like the init does, and
//! execs. Any failure goes back to the parent as an `InitError`; the child then exits.

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use oci_spec::runtime::Process;

use crate::linux::capabilities::{self, Sets};
use crate::linux::procfs::{ProcAccess, Procfs};
use crate::linux::seccomp::Filter;
use crate::linux::sync::{Channel, InitError, Msg};
use crate::linux::{lsm, process};

/// Everything the child needs, prepared by the parent before the fork.
pub struct ExecCtx<'a> {
    /// The process to run (from the saved config and the flags, or from --process).
    pub process: &'a Process,
    /// Its capability sets, parsed by the parent.
    pub caps: &'a Sets,
    /// The container's namespaces that differ from nook's, in joining order (user
    /// first, mnt last): (kind, name, fd of /proc/<init>/ns/<name>).
    pub namespaces: Vec<(CloneFlags, &'static str, OwnedFd)>,
    pub chan: Channel,
    /// The container's compiled seccomp filter, if it has one.
    pub seccomp: Option<&'a Filter>,
    pub preserve_fds: u32,
    /// Preserved fd numbers that were not open in nook: the parent held them with
    /// /dev/null so nothing of its own could land there. Closed before the exec.
    pub placeholders: Vec<i32>,
    /// The process's scheduler, I/O priority and CPU affinity, checked.
    pub placement: crate::linux::sched::Placement,
    /// We are in a user namespace other than the host's already: the container's, joined
    /// by the parent (rootless), or the one nook runs in (rootless podman's).
    pub in_userns: bool,
    /// The one-CPU pin nook set for the fork (linux::handoff), undone first thing.
    pub handoff: Option<crate::linux::handoff::Handoff>,
}

fn sys(step: &str) -> impl FnOnce(nix::Error) -> InitError + '_ {
    move |e| InitError::sys(step, None, e)
}

/// Entry point of the forked child. Never returns.
pub fn child_main(mut ctx: ExecCtx) -> ! {
    let err = match run(&mut ctx) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = ctx.chan.send(&Msg::Failed(err));
    // SAFETY: _exit ends this forked copy without running the parent's atexit state
    // or destructors (dropping nook's state-dir lock here would unlock the parent's).
    unsafe { libc::_exit(1) }
}

fn run(ctx: &mut ExecCtx) -> Result<Infallible, InitError> {
    crate::fault::forked();
    // Non-dumpable until exec: the container must not ptrace us or open our fds
    // (the namespace fds, the state dir's lock) through /proc while we are nook.
    nix::sys::prctl::set_dumpable(false).map_err(sys("prctl(PR_SET_DUMPABLE)"))?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    crate::fault::point("exec-init.start");
    crate::linux::handoff::unpin(ctx.handoff.as_ref())?;
    crate::linux::sched::initial_affinity(&ctx.placement)?;
    let p = ctx.process;
    // Every /proc access from here on goes through a procfs that nothing in the
    // container can have mounted over (we are in its pid namespace already, so the
    // instance shows it; see linux::procfs). The labels are checked against the host.
    let labels = lsm::labels_for(p)?;
    let userns = ctx.in_userns
        || ctx
            .namespaces
            .iter()
            .any(|(flag, _, _)| *flag == CloneFlags::CLONE_NEWUSER);
    let needed = userns || p.oom_score_adj().is_some() || !labels.is_empty();
    let procfs = ProcAccess::new(needed, 3 + ctx.preserve_fds as i32)?;

    // Before joining a user namespace: raising a hard limit or lowering
    // oom_score_adj needs capabilities in the initial user namespace.
    process::set_rlimits(p.rlimits().as_deref().unwrap_or_default())?;
    if let Some(adj) = p.oom_score_adj() {
        set_oom_score_adj(procfs.get("setting process.oomScoreAdj")?.0, adj)?;
    }

    // The namespaces, user first (it gives us the capabilities the others need in
    // it), mnt last (it changes our root and cwd to the container's root).
    for (flag, name, fd) in ctx.namespaces.drain(..) {
        nix::sched::setns(fd.as_fd(), flag).map_err(|e| {
            InitError::sys(format!("joining the container's {name} namespace"), None, e)
        })?;
    }
    // As runc: enter the cwd while still root (the user may not reach it, yet the
    // process may start there); on a permission error, try again as the user.
    let cwd = p.cwd();
    let cwd_err = |e| InitError::sys("entering process.cwd", Some(&cwd.to_string_lossy()), e);
    let retry_cwd = match process::enter_cwd(cwd) {
        Ok(()) => false,
        Err(nix::Error::EACCES) | Err(nix::Error::EPERM) => true,
        Err(e) => return Err(cwd_err(e)),
    };

    // A terminal: a pty from the container's devpts (we are in its mount namespace
    // now); the master goes to the parent, the slave becomes our stdio.
    if p.terminal() == Some(true) {
        let size = p
            .console_size()
            .map(|b| (b.height() as u16, b.width() as u16));
        let pty = crate::linux::terminal::open(p.user().uid(), p.user().gid(), size)?;
        ctx.chan
            .send_fd(&Msg::Console, &pty.master)
            .map_err(sys("sending the terminal to the parent"))?;
        drop(pty.master);
        crate::linux::terminal::make_stdio(&pty.slave)?;
    } else {
        // A process group of its own, inside the container's pid namespace: nook's
        // group is outside it, where getpgrp() would answer 0. (nook forwards signals
        // to it; a terminal gets a session of its own instead, just above.)
        nix::unistd::setpgid(nix::unistd::Pid::from_raw(0), nix::unistd::Pid::from_raw(0))
            .map_err(sys("setpgid"))?;
    }

    // The parent moves us into the container's cgroup meanwhile.
    match ctx.chan.recv() {
        Ok(Some(Msg::Attached)) => {}
        Ok(_) => {
            return Err(InitError::msg(
                "waiting for the parent (Attached)",
                "unexpected message",
            ))
        }
        Err(e) => return Err(InitError::sys("waiting for the parent (Attached)", None, e)),
    }
    crate::linux::sched::final_affinity(&ctx.placement)?;
    crate::linux::sched::apply(&ctx.placement)?;

    // Only stdio and preserved fds may reach the process: done before an early
    // seccomp filter can deny close_range.
    process::keep_fds(ctx.preserve_fds)?;
    for fd in &ctx.placeholders {
        // SAFETY: closing an fd number this process owns (a /dev/null placeholder).
        unsafe { libc::close(*fd) };
    }
    process::close_fds_from(3 + ctx.preserve_fds)?;
    // Read before an early filter, which may deny the lookup.
    // Only a user namespace can deny setgroups.
    let setgroups = !userns || process::setgroups_allowed(procfs.get("reading setgroups")?.0)?;
    let nnp = p.no_new_privileges() == Some(true);
    if let (Some(f), false) = (ctx.seccomp, nnp) {
        // Loading needs CAP_SYS_ADMIN when no_new_privs is off: before the drop.
        crate::linux::seccomp_notify::load(f, &ctx.chan)?;
    }
    capabilities::drop_bounding(ctx.caps)?;
    process::set_user(p.user(), setgroups)?;
    if retry_cwd {
        process::enter_cwd(cwd).map_err(cwd_err)?;
    }
    capabilities::apply(ctx.caps)?;
    if nnp {
        nix::sys::prctl::set_no_new_privs().map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    }
    let umask = p.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    let envs = process::environment(p.env().as_deref().unwrap_or_default(), p.user().uid());
    let args = p.args().as_deref().unwrap_or_default();
    let program = process::lookup(&args[0], &envs)?;

    // The process outlives nook (detached, or nook killed): no parent-death signal.
    nix::sys::prctl::set_pdeathsig(None).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    // Ready, then exec: the parent reads EOF (our end closes on exec) or Failed. A
    // filter with a notify listener is loaded first: its fd goes through the parent.
    let late = crate::linux::seccomp_notify::load_listener_now(ctx.seccomp, nnp, &ctx.chan)?;
    ctx.chan.send(&Msg::Ready).map_err(sys("reporting ready"))?;
    Err(super::init::exec_program(
        &program, args, &envs, &labels, &procfs, late, None,
    ))
}

fn set_oom_score_adj(procfs: &Procfs, adj: i32) -> Result<(), InitError> {
    let rel = format!("{}/oom_score_adj", procfs.self_dir()?);
    procfs.write(
        "setting process.oomScoreAdj",
        &rel,
        adj.to_string().as_bytes(),
    )
}
