//! The container's own setup, run in the cloned child, top to bottom in the order
//! of the runtime spec. Any failure goes back to the parent as an `InitError` naming
//! the step; the child then exits.

use std::collections::HashMap;
use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid};

use crate::linux::clone::{fork_with, Forked};
use crate::linux::namespaces::{self, Plan};
use crate::linux::procfs::ProcAccess;
use crate::linux::sync::{Channel, InitError, Msg};
use crate::linux::{capabilities, lsm, mounts, process, rootfs};
use crate::spec::Config;

/// Everything the child needs, prepared by the parent before the clone.
pub struct InitCtx<'a> {
    pub cfg: &'a Config,
    pub plan: &'a Plan,
    pub chan: Channel,
    /// The exec gate's listening socket: `start` connects to it (see linux::gate). None
    /// for a foreground `run`: the process starts once set up, its failure reported on
    /// `chan`.
    pub gate: Option<OwnedFd>,
    pub cgroup: &'a crate::cgroups::Cgroup,
    /// The compiled seccomp filter, loaded just before exec (or, without
    /// no_new_privs, while we still hold CAP_SYS_ADMIN, as runc does; with a notify
    /// listener, before Ready, so nook is still there to pass the fd on).
    pub seccomp: Option<&'a crate::linux::seccomp::Filter>,
    /// /dev/null stand-ins for preserved fd numbers the caller left closed.
    pub placeholders: &'a [i32],
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// The fd of the state dir's lock, inherited with the fork: closed at once, so that a
    /// create killed while the init waits for `start` leaves the lock free (flock
    /// belongs to the open file, which the init's copy would keep locked).
    pub state_lock: i32,
    /// Scheduler, I/O priority, CPU affinity, memory policy and personality, checked.
    pub placement: &'a crate::linux::sched::Placement,
    /// A foreground `run`: the app is killed when nook dies (a unit's stop timeout
    /// SIGKILLs nook alone when the container's cgroup is outside the unit).
    pub die_with_parent: bool,
    /// Make the new network namespace here, after Go, rather than in the clone: it is
    /// the costly namespace (~0.4 ms here), and this way it is made while the parent
    /// makes and joins the cgroup, instead of before.
    pub unshare_net: bool,
    /// Whether CgroupMade has arrived.
    pub cgroup_made: std::cell::Cell<bool>,
    /// Rootless: born dumpable, and stays so until Go, so that nook (not root) may open
    /// our /proc/PID/uid_map to write the maps; no process of the container exists yet.
    pub dumpable_until_go: bool,
    /// nook itself runs in a user namespace other than the host's (rootless podman).
    pub nook_in_userns: bool,
    /// nook runs from a writable binary and did not re-execute: the process is exec'd
    /// through the exec trampoline (linux::trampoline, this sealed memfd that nook made
    /// before the clone), never by this nook image.
    pub trampoline: Option<std::os::fd::RawFd>,
    /// The one-CPU pin nook set for the clone (linux::handoff), undone first thing.
    pub handoff: Option<crate::linux::handoff::Handoff>,
}

fn sys(step: &str) -> impl FnOnce(nix::Error) -> InitError + '_ {
    move |e| InitError::sys(step, None, e)
}

/// Entry point of the cloned child. Never returns.
pub fn child_main(ctx: InitCtx) -> ! {
    let err = match run(&ctx) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    fail(&ctx, err)
}

/// Report a setup failure to the parent and exit.
fn fail(ctx: &InitCtx, err: InitError) -> ! {
    let _ = ctx.chan.send(&Msg::Failed(err));
    // SAFETY: _exit ends this process without running the parent's atexit state.
    unsafe { libc::_exit(1) }
}

/// Entry point of the intermediate child of a two-stage start: join the namespaces,
/// make the user namespace, unshare the rest, then fork the init as our parent's child.
pub fn intermediate_main(ctx: InitCtx) -> ! {
    if let Err(e) = intermediate_setup(&ctx) {
        fail(&ctx, e)
    }
    // SAFETY: single-threaded; the init child runs to exec or _exit.
    match unsafe { fork_with(CloneFlags::CLONE_PARENT) } {
        Ok(Forked::Child) => child_main_after_join(ctx),
        Ok(Forked::Parent(pid)) => {
            let _ = ctx.chan.send(&Msg::InitPid(pid));
            // SAFETY: see fail().
            unsafe { libc::_exit(0) }
        }
        Err(e) => fail(&ctx, InitError::sys("forking init", None, e)),
    }
}

fn intermediate_setup(ctx: &InitCtx) -> Result<(), InitError> {
    crate::fault::forked();
    crate::linux::handoff::unpin(ctx.handoff.as_ref())?;
    drop_state_lock(ctx);
    harden()?;
    crate::linux::sched::initial_affinity(ctx.placement)?;
    namespaces::join(ctx.plan, CloneFlags::CLONE_NEWPID)?;
    if ctx.plan.new_user() {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER).map_err(sys("unsharing user namespace"))?;
        let me = nix::unistd::getpid().as_raw();
        ctx.chan
            .send(&Msg::MapUser(me))
            .map_err(sys("asking for id maps"))?;
        wait_go(&ctx.chan)?; // the final init gets the mount sources, not us
    }
    let rest = ctx.plan.new
        - CloneFlags::CLONE_NEWUSER
        - CloneFlags::CLONE_NEWCGROUP
        - CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
    nix::sched::unshare(rest).map_err(sys("unsharing namespaces"))
}

fn child_main_after_join(ctx: InitCtx) -> ! {
    let err = match harden_until_go(&ctx).and_then(|()| setup_and_exec(&ctx)) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    fail(&ctx, err)
}

/// Close our copy of the state dir's lock fd (the parent's copy keeps the lock).
fn drop_state_lock(ctx: &InitCtx) {
    // SAFETY: the fd was inherited from the parent and nothing here uses it.
    unsafe { libc::close(ctx.state_lock) };
}

/// Non-dumpable (no ptrace, no /proc access from the container) and tied to the parent.
fn harden() -> Result<(), InitError> {
    nix::sys::prctl::set_dumpable(false).map_err(sys("prctl(PR_SET_DUMPABLE)"))?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))
}

/// Wait for Go; in a user namespace, the bind mount sources nook cloned for us
/// come first (linux::mount_sources), by mounts[] index.
fn wait_go(chan: &Channel) -> Result<HashMap<usize, OwnedFd>, InitError> {
    let mut sources = HashMap::new();
    loop {
        match chan.recv() {
            Ok(Some(Msg::MountSource(i))) => {
                let fd = chan.take_fd().ok_or_else(|| {
                    InitError::msg(
                        "waiting for the parent (Go)",
                        "a mount source without its fd",
                    )
                })?;
                sources.insert(i, fd);
            }
            Ok(Some(Msg::Go)) => return Ok(sources),
            Ok(_) => {
                return Err(InitError::msg(
                    "waiting for the parent (Go)",
                    "unexpected message",
                ))
            }
            Err(e) => return Err(InitError::sys("waiting for the parent (Go)", None, e)),
        }
    }
}

/// The next message from the parent, noting CgroupMade (which comes after Go, at a
/// moment of the parent's choosing) on the way.
fn recv(ctx: &InitCtx) -> nix::Result<Option<Msg>> {
    loop {
        match ctx.chan.recv()? {
            Some(Msg::CgroupMade) => ctx.cgroup_made.set(true),
            m => return Ok(m),
        }
    }
}

/// Wait for CgroupMade, unless it came already. Nothing else is sent before it.
fn wait_cgroup_made(ctx: &InitCtx) -> nix::Result<()> {
    if ctx.cgroup_made.get() {
        return Ok(());
    }
    match ctx.chan.recv()? {
        Some(Msg::CgroupMade) => {
            ctx.cgroup_made.set(true);
            Ok(())
        }
        Some(_) => Err(nix::Error::EPROTO),
        None => Err(nix::Error::EPIPE),
    }
}

/// Wait for Attached: the parent has moved us into our cgroup.
fn wait_attached(ctx: &InitCtx) -> Result<(), InitError> {
    let step = "waiting for the parent (Attached)";
    match recv(ctx) {
        Ok(Some(Msg::Attached)) => Ok(()),
        Ok(_) => Err(InitError::msg(step, "unexpected message")),
        Err(e) => Err(InitError::sys(step, None, e)),
    }
}

/// Single-stage: we were cloned straight into the new namespaces.
fn run(ctx: &InitCtx) -> Result<Infallible, InitError> {
    crate::fault::forked();
    crate::linux::handoff::unpin(ctx.handoff.as_ref())?;
    drop_state_lock(ctx);
    harden_until_go(ctx)?;
    crate::linux::sched::initial_affinity(ctx.placement)?;
    namespaces::join(ctx.plan, CloneFlags::CLONE_NEWPID)?;
    setup_and_exec(ctx)
}

/// harden(), or, while the init must stay dumpable until Go (rootless: see
/// InitCtx::dumpable_until_go), only the parent-death signal.
fn harden_until_go(ctx: &InitCtx) -> Result<(), InitError> {
    if ctx.dumpable_until_go {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(sys("prctl(PR_SET_PDEATHSIG)"))
    } else {
        harden()
    }
}

/// Steps common to both starts, after the namespaces exist: the runtime spec's
/// order, one call per step.
fn setup_and_exec(ctx: &InitCtx) -> Result<Infallible, InitError> {
    // 1. The parent maps our ids, then says go (and moves us into the cgroup meanwhile).
    let sources = wait_go(&ctx.chan)?;
    crate::fault::point("init.go");
    if ctx.dumpable_until_go {
        harden()?;
    }
    if ctx.unshare_net {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET)
            .map_err(sys("unsharing the network namespace"))?;
    }
    crate::fault::point("init.netns");
    let spec = &ctx.cfg.spec;
    let proc = spec.process().as_ref().expect("checked by spec::load");
    if ctx.userns() {
        become_ns_root()?;
    }
    // Every /proc access from here on goes through a procfs the container cannot have
    // touched (made now, so it shows our pid namespace; see linux::procfs): setgroups
    // in a user namespace, sysctls, LSM labels. Not made when none is needed.
    let labels = lsm::labels_for(proc)?;
    let sysctls = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    let needed = ctx.userns() || sysctls.is_some_and(|m| !m.is_empty()) || !labels.is_empty();
    let procfs = ProcAccess::new(needed, 3 + ctx.preserve_fds as i32)?;
    if !ctx.no_new_keyring {
        new_session_keyring(&procfs, lsm::selinux_label(proc))?;
    }
    if ctx.plan.new.contains(CloneFlags::CLONE_NEWNET) {
        crate::linux::net::loopback_up()?;
    }
    // process.oomScoreAdj was written by the parent (container::create).
    // Parsed before pivot_root: it reads the host's /proc/sys/kernel/cap_last_cap.
    let caps = capabilities::parse(proc.capabilities().as_ref())?;
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());

    // 2. The root filesystem, with the create-time hooks before pivot_root.
    let (hooks, mut null) = build_root(ctx, sources)?;
    crate::fault::point("init.root");
    // A terminal (on /dev/console), before the root may become read-only.
    if proc.terminal() == Some(true) {
        give_terminal(ctx, proc)?;
    } else {
        // A session of its own, as runc gives it: never the caller's process group (a
        // supervisor that signals its own group, as conmon does, must not reach it).
        nix::unistd::setsid().map_err(sys("setsid"))?;
    }
    // 3. Names, kernel parameters, then the paths made read-only or masked.
    set_names_and_sysctls(spec, &procfs)?;
    seal_root(spec, &mut null)?;
    crate::fault::point("init.sealed");
    // 4. In the cgroup now: make the cgroup namespace (its root is the container's
    // cgroup) while we still hold CAP_SYS_ADMIN.
    if !hooks.attached {
        wait_attached(ctx)?;
    }
    crate::fault::point("init.attached");
    // In the cgroup (whose cpuset may have reset it): the final CPU affinity; then the
    // scheduler, I/O priority, memory policy and personality, while we still have the
    // capabilities a real-time class or a negative nice needs.
    crate::linux::sched::final_affinity(ctx.placement)?;
    crate::linux::sched::apply(ctx.placement)?;
    if ctx.plan.new.contains(CloneFlags::CLONE_NEWCGROUP) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(sys("unsharing cgroup namespace"))?;
    }
    // 5. The process's limits, fds, identity and capabilities.
    let nnp = become_the_process(ctx, proc, &caps, &procfs)?;
    crate::fault::point("init.process");
    let mut envs =
        process::environment(proc.env().as_deref().unwrap_or_default(), proc.user().uid());
    crate::systemd::fill_own_pid(&mut envs);
    let args = proc.args().as_deref().unwrap_or_default();
    let program = process::lookup(&args[0], &envs)?;

    // 6. Tell the parent, wait for `start`, exec. A filter with a notify listener is
    // loaded now, while nook is still there to pass its fd on. The parent-death signal
    // stays only for a foreground run (set again: the identity change cleared it).
    let pdeath = ctx.die_with_parent.then_some(Signal::SIGKILL);
    nix::sys::prctl::set_pdeathsig(pdeath).map_err(sys("prctl(PR_SET_PDEATHSIG)"))?;
    let late = crate::linux::seccomp_notify::load_listener_now(ctx.seccomp, nnp, &ctx.chan)?;
    ctx.chan.send(&Msg::Ready).map_err(sys("reporting ready"))?;
    crate::fault::point("init.ready");
    let conn = match &ctx.gate {
        Some(g) => Some(
            crate::linux::gate::wait(g)
                .map_err(|e| InitError::sys("waiting for start", None, e))?,
        ),
        None => None,
    };
    // From here `start` (or `run`, on `chan`) waits: EOF at the exec, or the reason it
    // failed.
    crate::fault::point("init.released");
    let err = (|| -> Result<Infallible, InitError> {
        if let (Some(h), Some(st)) = (spec.hooks(), &hooks.state) {
            let list = h.start_container().as_deref().unwrap_or_default();
            crate::hooks::run("startContainer", list, st).map_err(hook_err)?;
        }
        let via = ctx.trampoline.map(|t| {
            // SAFETY: nook opened the memfd before the clone; it stays open until the exec.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(t) };
            (fd, ctx.chan.raw_fd())
        });
        Err(exec_program(
            &program, args, &envs, &labels, &procfs, late, via,
        ))
    })()
    .unwrap_err();
    if let Some(conn) = &conn {
        crate::linux::gate::fail(conn, &err.to_string());
    }
    Err(err)
}

/// The last steps of init and exec: default signals, the LSM exec label (written last,
/// so no fork of ours such as a hook inherits it, and opened by these final
/// credentials: the kernel takes attr writes only from the opener's), the late
/// seccomp filter, execve (through the exec trampoline when `via` names it and the
/// channel it reports on). Returns only on failure.
pub(super) fn exec_program(
    program: &Path,
    args: &[String],
    envs: &[String],
    labels: &[lsm::ExecLabel],
    procfs: &ProcAccess,
    late: Option<&crate::linux::seccomp::Filter>,
    via: Option<(std::os::fd::BorrowedFd, i32)>,
) -> InitError {
    process::reset_signals();
    let prepared = (|| {
        for l in labels {
            let (p, thread) = procfs.get("applying the LSM label")?;
            l.apply(p, thread)?;
        }
        match late {
            Some(f) => f.load(),
            None => Ok(None),
        }
    })();
    match prepared {
        Ok(_) => {
            crate::steps::mark("execve");
            match via {
                Some((t, chan)) => crate::linux::trampoline::exec(t, chan, program, args, envs),
                None => process::exec(program, args, envs),
            }
        }
        Err(e) => e,
    }
}

impl InitCtx<'_> {
    /// Whether we run in a user namespace other than the host's: a new or joined one,
    /// or the one nook itself runs in (rootless podman's).
    fn userns(&self) -> bool {
        self.plan.new_user()
            || self.plan.joins(CloneFlags::CLONE_NEWUSER).is_some()
            || self.nook_in_userns
    }
}

/// What the create-time hooks left: their state document, and whether "Attached"
/// arrived while we waited for them.
struct HookRun {
    state: Option<String>,
    attached: bool,
}

/// Propagation, the rootfs bind, mounts and devices; prestart and createRuntime (in the
/// parent) and createContainer (here) before pivot_root; then pivot_root. Also returns
/// the host's /dev/null, taken before pivot_root, for the masks.
fn build_root(
    ctx: &InitCtx,
    sources: HashMap<usize, OwnedFd>,
) -> Result<(HookRun, rootfs::NullMount), InitError> {
    let spec = &ctx.cfg.spec;
    let linux = spec.linux().as_ref().expect("checked by spec::load");
    let propagation = linux.rootfs_propagation().as_deref();
    let mut sources = sources;
    mounts::clone_shared_sources(spec, &ctx.cfg.bundle, &mut sources);
    let root = rootfs::prepare(&ctx.cfg.rootfs, propagation)?;
    let env = mounts::Env {
        root: root.as_fd(),
        bundle: &ctx.cfg.bundle,
        in_user_ns: ctx.userns(),
        // The cgroup namespace is made only once we are in our cgroup, so cgroup
        // mounts bind the container's own cgroup directories.
        new_cgroup_ns: false,
        cgroup: ctx.cgroup,
        sources: std::cell::RefCell::new(sources),
        cgroup_made: &|| wait_cgroup_made(ctx),
    };
    let labelled = with_mount_label(spec);
    let spec = labelled.as_ref().unwrap_or(spec);
    rootfs::populate(spec, &env, ctx.userns())?;
    crate::fault::point("init.mounted");
    let mut run = HookRun {
        state: None,
        attached: false,
    };
    if wants_hooks(spec) {
        let (st, attached) = hooks_in_parent(ctx)?;
        if let Some(h) = spec.hooks() {
            let list = h.create_container().as_deref().unwrap_or_default();
            crate::hooks::run("createContainer", list, &st).map_err(hook_err)?;
        }
        run = HookRun {
            state: Some(st),
            attached,
        };
    }
    drop(root);
    let null = rootfs::NullMount::open()?;
    rootfs::pivot(&ctx.cfg.rootfs, ctx.no_pivot)?;
    crate::fault::point("init.pivoted");
    rootfs::set_root_propagation(propagation)?;
    Ok((run, null))
}

/// linux.mountLabel: a copy of the config whose in-memory filesystems get a context=
/// option (None when there is no label).
fn with_mount_label(spec: &oci_spec::runtime::Spec) -> Option<oci_spec::runtime::Spec> {
    let linux = spec.linux().as_ref()?;
    let label = linux.mount_label().as_deref().filter(|l| !l.is_empty())?;
    let mut s = spec.clone();
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    s.set_mounts(Some(lsm::label_mounts(mounts, label)));
    Some(s)
}

/// hostname, domainname, linux.sysctl (through the checked procfs: a file the config or
/// the image mounts over /proc/sys/... is never written instead).
fn set_names_and_sysctls(
    spec: &oci_spec::runtime::Spec,
    procfs: &ProcAccess,
) -> Result<(), InitError> {
    if let Some(h) = spec.hostname() {
        nix::unistd::sethostname(h).map_err(sys("setting hostname"))?;
    }
    if let Some(d) = spec.domainname() {
        set_domainname(d)?;
    }
    let linux = spec.linux().as_ref().expect("checked by spec::load");
    for (k, v) in linux.sysctl().iter().flatten() {
        // Keys are checked by spec::load: dot-separated names, no "/".
        let rel = format!("sys/{}", k.replace('.', "/"));
        let step = format!("setting linux.sysctl {k}");
        procfs.get(&step)?.0.write(&step, &rel, v.as_bytes())?;
    }
    Ok(())
}

/// process.cwd made if missing, readonlyPaths, maskedPaths, a read-only root.
fn seal_root(
    spec: &oci_spec::runtime::Spec,
    null: &mut rootfs::NullMount,
) -> Result<(), InitError> {
    let linux = spec.linux().as_ref().expect("checked by spec::load");
    let proc = spec.process().as_ref().expect("checked by spec::load");
    make_cwd(proc.cwd())?;
    rootfs::read_only(linux.readonly_paths().as_deref().unwrap_or_default())?;
    rootfs::mask(linux.masked_paths().as_deref().unwrap_or_default(), null)?;
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        rootfs::remount_ro(Path::new("/")).map_err(sys("remounting root read-only"))?;
    }
    Ok(())
}

/// A pty from the container's devpts; the master goes to the parent, the slave is
/// mounted on /dev/console and becomes our controlling terminal and stdio.
fn give_terminal(ctx: &InitCtx, proc: &oci_spec::runtime::Process) -> Result<(), InitError> {
    let size = proc
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16));
    let pty = crate::linux::terminal::open(proc.user().uid(), proc.user().gid(), size)?;
    ctx.chan
        .send_fd(&Msg::Console, &pty.master)
        .map_err(sys("sending the terminal to the parent"))?;
    drop(pty.master);
    crate::linux::terminal::mount_console(&pty.slave)?;
    crate::linux::terminal::make_stdio(&pty.slave)
}

/// rlimits, fd hygiene, seccomp (early, when no_new_privs is off), bounding set, user,
/// cwd, capabilities, no_new_privs, umask. Returns whether no_new_privs is on.
fn become_the_process(
    ctx: &InitCtx,
    proc: &oci_spec::runtime::Process,
    caps: &capabilities::Sets,
    procfs: &ProcAccess,
) -> Result<bool, InitError> {
    process::set_rlimits(proc.rlimits().as_deref().unwrap_or_default())?;
    // Only stdio and preserved fds may reach the app: mark the rest close-on-exec now,
    // before a seccomp filter (loaded next when no_new_privs is off) can deny close_range.
    process::close_placeholders(ctx.placeholders);
    process::keep_fds(ctx.preserve_fds)?;
    process::close_fds_from(3 + ctx.preserve_fds)?;
    // As runc: enter the cwd while still root (and before a filter that might deny the
    // lookup); on a permission error, try again as the user.
    let cwd = proc.cwd();
    let cwd_err = |e| InitError::sys("entering process.cwd", Some(&cwd.to_string_lossy()), e);
    let retry_cwd = match process::enter_cwd(cwd) {
        Ok(()) => false,
        Err(nix::Error::EACCES) | Err(nix::Error::EPERM) => true,
        Err(e) => return Err(cwd_err(e)),
    };
    // Only a user namespace can deny setgroups.
    let setgroups =
        !ctx.userns() || process::setgroups_allowed(procfs.get("reading setgroups")?.0)?;
    let nnp = proc.no_new_privileges() == Some(true);
    if let (Some(f), false) = (ctx.seccomp, nnp) {
        crate::linux::seccomp_notify::load(f, &ctx.chan)?;
    }
    capabilities::drop_bounding(caps)?;
    process::set_user(proc.user(), setgroups)?;
    if retry_cwd {
        process::enter_cwd(cwd).map_err(cwd_err)?;
    }
    capabilities::apply(caps)?;
    if nnp {
        nix::sys::prctl::set_no_new_privs().map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    }
    let umask = proc.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    Ok(nnp)
}

fn wants_hooks(spec: &oci_spec::runtime::Spec) -> bool {
    spec.hooks().as_ref().is_some_and(|h| {
        [
            h.prestart(),
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
        ]
        .iter()
        .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
    })
}

/// Ask the parent to run prestart and createRuntime; returns the hooks' state document
/// and whether "Attached" arrived meanwhile (the parent sends it before it reads our
/// request).
fn hooks_in_parent(ctx: &InitCtx) -> Result<(String, bool), InitError> {
    ctx.chan
        .send(&Msg::RunHooks)
        .map_err(sys("asking for hooks"))?;
    let mut attached = false;
    loop {
        match recv(ctx) {
            Ok(Some(Msg::HooksDone(st))) => return Ok((st, attached)),
            Ok(Some(Msg::Attached)) => attached = true,
            Ok(_) => return Err(InitError::msg("waiting for hooks", "unexpected message")),
            Err(e) => return Err(InitError::sys("waiting for hooks", None, e)),
        }
    }
}

fn hook_err(e: crate::hooks::HookError) -> InitError {
    InitError::msg(
        format!("running hooks.{}[{}] {}", e.kind, e.index, e.path),
        e.why,
    )
}

fn io(e: std::io::Error) -> nix::Error {
    nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Create a missing process.cwd (0755, before the root may become read-only), as runc does.
fn make_cwd(cwd: &Path) -> Result<(), InitError> {
    use std::os::unix::fs::DirBuilderExt;
    if cwd.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(cwd)
        .map_err(|e| InitError::sys("creating process.cwd", Some(&cwd.to_string_lossy()), io(e)))
}

/// In a user namespace, act as its root for the setup that follows.
fn become_ns_root() -> Result<(), InitError> {
    nix::unistd::setresgid(Gid::from_raw(0), Gid::from_raw(0), Gid::from_raw(0)).map_err(sys(
        "becoming root in the user namespace (gid 0 must be mapped)",
    ))?;
    nix::unistd::setresuid(Uid::from_raw(0), Uid::from_raw(0), Uid::from_raw(0)).map_err(sys(
        "becoming root in the user namespace (uid 0 must be mapped)",
    ))
}

/// A fresh session keyring, so containers do not share the caller's keys; with
/// process.selinuxLabel, the keyring is made with that label.
fn new_session_keyring(procfs: &ProcAccess, selinux: Option<&str>) -> Result<(), InitError> {
    if let Some(label) = selinux {
        let (p, thread) = procfs.get("applying process.selinuxLabel to the session keyring")?;
        lsm::set_keycreate(p, thread, label)?;
    }
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_int = 1;
    // SAFETY: a null name asks the kernel for a new anonymous session keyring.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    match nix::errno::Errno::result(r) {
        // Keyrings may be unavailable (ENOSYS) or denied by a seccomp profile of the caller.
        Ok(_) | Err(nix::Error::ENOSYS) | Err(nix::Error::EACCES) | Err(nix::Error::EPERM) => {
            Ok(())
        }
        Err(e) => Err(InitError::sys("joining a new session keyring", None, e)),
    }
}

fn set_domainname(d: &str) -> Result<(), InitError> {
    // SAFETY: the pointer and length describe `d`'s bytes.
    let r = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
    nix::errno::Errno::result(r)
        .map(drop)
        .map_err(sys("setting domainname"))
}
