//! `create`, parent side: check the config, take the id, make the cgroup, clone the
//! init, map its ids, move it into the cgroup, and wait until it is set up and
//! waiting on the exec FIFO. Any failure undoes all of it.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::init::{self, InitCtx};
use crate::cgroups;
use crate::error::{Error, IoContext, Result, SysContext};
use crate::fault;
use crate::linux::clone::{fork_placed, Forked, Placed};
use crate::linux::fs::lift;
use crate::linux::namespaces::{self, Plan};
use crate::linux::sync::{self, Channel, Msg};
use crate::spec::{self, Config};
use crate::state::{Draft, State, StateDir};

/// The flags `create` and `run` take.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// Where to send the pty master of a `terminal: true` process.
    pub console_socket: Option<PathBuf>,
    /// `run` in the foreground: a terminal is proxied by nook itself.
    pub foreground: bool,
    /// Host files and templates to give the container.
    pub inject: crate::bundle::inject::InjectOptions,
    /// What systemd gave nook (notify socket, watchdog, activated fds), for the app.
    pub service: crate::systemd::Service,
    /// `--systemd-cgroup`: the cgroup is a transient systemd scope.
    pub systemd_cgroup: bool,
    /// `--debug`: say what nook chose where it had a choice.
    pub debug: bool,
    /// `run --announce`: the instance to put into etcd once the app is ready.
    pub announce: Option<crate::discovery::announce::Options>,
    /// `run --ready-cmd`: the command (its words) whose success makes the app ready.
    pub ready_cmd: Option<Vec<String>>,
}

/// A created container: its state (the lock is released).
pub struct Created {
    pub state: State,
    pub dir: PathBuf,
    /// The hooks still to run (poststart, poststop), from the config as created.
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The pty master, for a foreground `run` of a terminal process.
    pub console: Option<std::os::fd::OwnedFd>,
    /// process.consoleSize was given (a foreground run then keeps it).
    pub console_sized: bool,
    /// The app's notify socket, for a foreground `run` to relay.
    pub relay: Option<crate::systemd::notify::Relay>,
    /// A foreground `run`: the init does not wait for `start` (it has no exec gate);
    /// this channel ends at its exec (close-on-exec), or carries why it failed.
    pub started: Option<Channel>,
}

pub fn create(o: &Options) -> Result<Created> {
    crate::state::check_id(&o.id)?;
    // Before nook opens anything (the state dir's lock, namespace fds), hold the
    // preserved fd numbers the caller left closed, so none of ours is passed on.
    let placeholders = crate::linux::process::reserve_fds(o.preserve_fds)?;
    let bundle = std::path::absolute(&o.bundle).ctx("resolving bundle", &o.bundle)?;
    // A bundle tar is unpacked (or found unpacked) in the cache under --root. A cached
    // bundle is shared by every container made from it: its root is always read-only.
    let prepared = crate::bundle::unpack::prepare_bundle(&o.root, &bundle, &Default::default())?;
    fault::point("create.bundle");
    let mut cfg = spec::load(&prepared.dir)?;
    // A foreground `run` from a writable binary protects nook here, now that the config
    // is known (linux::trampoline): the exec trampoline where it fits, else the re-exec.
    let linux = cfg.spec.linux().as_ref().expect("checked by spec::load");
    let plan = namespaces::plan(linux);
    let trampoline = crate::linux::self_guard::settle(|| {
        let fits = crate::linux::trampoline::fits(&cfg.spec, &plan, !o.foreground);
        fits.then(|| crate::linux::trampoline::load(3 + o.preserve_fds as i32).ok())
            .flatten()
    })?;
    if prepared.read_only {
        if let Some(mut r) = cfg.spec.root().clone() {
            r.set_readonly(Some(true));
            cfg.spec.set_root(Some(r));
        }
    }
    let terminal = cfg.spec.process().as_ref().and_then(|p| p.terminal()) == Some(true);
    for (given, flag) in [
        (o.announce.is_some(), "--announce"),
        (o.ready_cmd.is_some(), "--ready-cmd"),
    ] {
        if terminal && given {
            return Err(Error::Usage(format!(
                "{flag} with process.terminal is not supported yet (a terminal run does not watch the app's readiness)"
            )));
        }
    }
    if terminal && o.console_socket.is_none() && !o.foreground {
        return Err(Error::Usage(
            "process.terminal is true: pass --console-socket, or use run in the foreground".into(),
        ));
    }
    let dir = take_id(&o.root, &o.id)?;
    fault::point("create.state-dir");
    if let Err(e) = inject(&mut cfg, o, &dir) {
        let _ = dir.remove();
        return Err(e);
    }
    let relay = match service(&mut cfg, o, &dir) {
        Ok(r) => r,
        Err(e) => {
            let _ = dir.remove();
            return Err(e);
        }
    };
    let linux = cfg.spec.linux().as_ref().expect("checked by spec::load");
    let proc = cfg.spec.process().as_ref().expect("checked by spec::load");
    let made = place_cgroup(o, linux).and_then(|cg| {
        // Recorded before it is made: a create killed from here on leaves a draft that
        // names what `delete --force` (or the next create of the id) must clear.
        dir.write_draft(&Draft {
            cgroup: cg.clone(),
            bundle: cfg.bundle.clone(),
            created: crate::state::now_rfc3339(),
        })?;
        fault::point("create.draft");
        // The systemd driver's scope exists only once the init is in it: its limits are
        // written then (spawn), not before. Where the init must be attached to v1
        // hierarchies anyway, the cgroup is made after the clone too, while the init
        // sets up (supervise_setup); on a pure v2 host it is made first, so the init
        // is born in it.
        let limited = if cg.scope.is_some() || made_after_clone(&cg) {
            Ok(())
        } else {
            let r = cgroups::make(&cg)
                .map_err(Error::from)
                .and_then(|()| limit(&cg, linux));
            fault::point("create.limits");
            r
        };
        limited
            .and_then(|()| {
                spawn(
                    o,
                    &cfg,
                    &plan,
                    &dir,
                    &cg,
                    &placeholders,
                    trampoline.as_ref(),
                )
            })
            .inspect_err(|_| cgroups::discard(&cg))
    });
    let made = made.and_then(
        |(state, console, chan)| match (&o.console_socket, console) {
            (Some(sock), Some(master)) => {
                let r = crate::linux::terminal::send_to_console_socket(sock, &master);
                if r.is_err() {
                    let _ = nix::sys::signal::kill(Pid::from_raw(state.pid), Signal::SIGKILL);
                    cgroups::discard(&state.cgroup);
                }
                r.map(|()| (state, None, chan))
            }
            (_, console) => Ok((state, console, chan)),
        },
    );
    match made {
        Ok((state, console, chan)) => {
            let path = dir.path.clone();
            drop(dir);
            Ok(Created {
                state,
                dir: path,
                hooks: cfg.spec.hooks().clone(),
                console,
                console_sized: proc.console_size().is_some(),
                relay,
                started: o.foreground.then_some(chan),
            })
        }
        Err(e) => {
            let _ = dir.remove();
            Err(e)
        }
    }
}

/// Host files, generated files and rendered templates the container is given: read-only
/// bind mounts appended to the config's mounts (files live in the state dir).
fn inject(cfg: &mut Config, o: &Options, dir: &StateDir) -> Result<()> {
    let extra = crate::bundle::inject::plan(&cfg.spec, &cfg.bundle, &dir.path, &o.id, &o.inject)?;
    if !extra.is_empty() {
        let mut ms = cfg.spec.mounts().clone().unwrap_or_default();
        ms.extend(extra);
        cfg.spec.set_mounts(Some(ms));
    }
    Ok(())
}

/// The container's cgroup: a systemd scope (`--systemd-cgroup`, made when the init
/// exists), or directories in every hierarchy (planned here, made once recorded).
fn place_cgroup(o: &Options, linux: &oci_spec::runtime::Linux) -> Result<cgroups::Cgroup> {
    let hs = cgroups::visible_hierarchies()?;
    if o.systemd_cgroup {
        let path = linux.cgroups_path().as_deref().map(|p| p.to_string_lossy());
        let scope = cgroups::systemd::Scope::parse(path.as_deref(), &o.id)?;
        return Ok(cgroups::for_scope(hs, scope)?);
    }
    let rel = cgroup_path(o, linux, &hs)?;
    let cg = cgroups::plan(hs, &rel);
    if !crate::linux::namespaces::rootless() || cgroups::writable(&cg) {
        return Ok(cg);
    }
    // Rootless with no cgroup of the user's: fine when nothing is asked of one.
    let asked = linux
        .resources()
        .as_ref()
        .and_then(cgroups::resources::first_requested);
    match asked {
        None => {
            if o.debug {
                eprintln!(
                    "nook: debug: no cgroup writable by uid {} under {}: the container runs in nook's own cgroup (no linux.resources asked)",
                    nix::unistd::geteuid(),
                    cg.dirs.first().map(|d| d.display().to_string()).unwrap_or_default()
                );
            }
            Ok(cgroups::none())
        }
        Some(field) => Err(cgroups::CgroupError::Unsupported {
            key: field.into(),
            why: format!(
                "needs a cgroup, and uid {} can write none where it would be made ({}); run as root, give the user a delegated cgroup (linux.cgroupsPath inside it), or use --systemd-cgroup with a user systemd",
                nix::unistd::geteuid(),
                cg.dirs.first().map(|d| d.display().to_string()).unwrap_or_default()
            ),
        }
        .into()),
    }
}

/// Take the id: make its state dir. One a killed create left (no state.json, its lock
/// free) is cleared first, as `delete --force` would clear it.
fn take_id(root: &Path, id: &str) -> Result<StateDir> {
    match StateDir::create(root, id) {
        Err(Error::Exists(_)) if super::ops::clear_unfinished(root, id, false)? => {
            StateDir::create(root, id)
        }
        r => r,
    }
}

/// The container's cgroup path: linux.cgroupsPath, else (run from a unit that delegates
/// its cgroup) `<unit's cgroup>/<id>`, else `nook/<id>`.
fn cgroup_path(
    o: &Options,
    linux: &oci_spec::runtime::Linux,
    hs: &[cgroups::Hierarchy],
) -> Result<PathBuf> {
    let given = linux.cgroups_path().as_deref();
    if o.service.in_unit && given.is_none_or(|p| p.as_os_str().is_empty()) {
        if let Some(unit) = crate::systemd::delegate::unit_cgroup(hs, &o.id)? {
            return Ok(unit.join(&o.id));
        }
    }
    Ok(cgroups::relative_path(given, &o.id)?)
}

/// What systemd gave nook, passed to the app: its environment (NOTIFY_SOCKET, WATCHDOG_*,
/// LISTEN_*) and its notify socket at /run/notify/notify.sock: one nook relays (in the
/// foreground), or systemd's own (detached: the app is then the unit's MAINPID).
fn service(
    cfg: &mut Config,
    o: &Options,
    dir: &StateDir,
) -> Result<Option<crate::systemd::notify::Relay>> {
    use crate::systemd::notify::{self, Relay};
    let s = &o.service;
    let env = s.app_env();
    if env.is_empty() {
        return Ok(None);
    }
    let mut proc = cfg.spec.process().clone().expect("checked by spec::load");
    let mut penv = proc.env().clone().unwrap_or_default();
    crate::systemd::merge_env(&mut penv, &env);
    proc.set_env(Some(penv));
    cfg.spec.set_process(Some(proc));
    if !s.relays() {
        return Ok(None);
    }
    let dest = Path::new(notify::CONTAINER_DIR).join(notify::SOCKET_NAME);
    let (src, relay) = if o.foreground {
        let r = Relay::bind(&dir.path)?;
        (r.dir.join(notify::SOCKET_NAME), Some(r))
    } else {
        let host = s.notify.as_ref().expect("relays() checked it");
        if host.name.starts_with('@') {
            return Err(crate::systemd::SystemdError::NotifySocket {
                path: host.name.clone(),
                why: "an abstract socket cannot be given to a detached container; run it in the foreground (nook relays) or use --notify=exec".into(),
            }
            .into());
        }
        (PathBuf::from(&host.name), None)
    };
    let mut ms = cfg.spec.mounts().clone().unwrap_or_default();
    ms.push(crate::bundle::inject::bind(&src, dest, true));
    cfg.spec.set_mounts(Some(ms));
    Ok(relay)
}

/// Whether the cgroup is made (and its limits written) after the clone, while the init
/// builds its root: when the init must be attached to v1 hierarchies anyway, rather than
/// born in its (v2) cgroup.
fn made_after_clone(cg: &cgroups::Cgroup) -> bool {
    cg.scope.is_none() && cg.hierarchies.iter().any(|h| !h.v2)
}

/// linux.resources, written before the init joins the cgroup.
fn limit(cg: &cgroups::Cgroup, linux: &oci_spec::runtime::Linux) -> Result<()> {
    if let Some(res) = linux.resources() {
        cgroups::resources::apply(&cgroups::resources::plan(cg, res)?)?;
        let created = linux.devices().as_deref().unwrap_or_default();
        cgroups::devices::apply(cg, res.devices().as_deref().unwrap_or_default(), created)?;
    }
    Ok(())
}

fn spawn(
    o: &Options,
    cfg: &Config,
    plan: &Plan,
    dir: &StateDir,
    cg: &cgroups::Cgroup,
    placeholders: &[i32],
    trampoline: Option<&std::os::fd::OwnedFd>,
) -> Result<(State, Option<std::os::fd::OwnedFd>, Channel)> {
    let linux = cfg.spec.linux().as_ref().expect("checked by spec::load");
    // Internal fds sit above the preserved ones so they can never collide.
    let floor = 3 + o.preserve_fds as i32;
    // A foreground `run` starts the process as soon as it is set up: no gate.
    let gate = if o.foreground {
        None
    } else {
        let gate = crate::linux::gate::listen(&dir.path).map_err(|e| Error::Io {
            step: "making the exec gate",
            path: dir.path.join(crate::linux::gate::EXEC_SOCK),
            source: e.into(),
        })?;
        Some(lift(gate, floor).sys("moving the exec gate fd")?)
    };
    fault::point("create.gate");
    let (parent_end, child_end) = sync::pair().sys("making the init socketpair")?;

    if plan
        .new
        .contains(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
    {
        namespaces::prepare_time_ns(linux)?;
    }
    if let Some(p) = plan.joins(CloneFlags::CLONE_NEWPID) {
        let fd = namespaces::open_ns(p).map_err(|e| Error::Io {
            step: "opening pid namespace",
            path: p.to_path_buf(),
            source: e.into(),
        })?;
        nix::sched::setns(fd.as_fd(), CloneFlags::CLONE_NEWPID).sys("joining the pid namespace")?;
    }
    // The filter is compiled here (or taken from the cache), so the child only has to
    // load it.
    let seccomp = match linux.seccomp() {
        Some(s) => Some(crate::linux::seccomp::prepare(&o.root, s)?),
        None => None,
    };
    fault::point("create.seccomp");
    let placement = crate::linux::sched::plan(&cfg.spec).map_err(crate::spec::SpecError::from)?;
    let two_stage = plan.two_stage();
    // A new network namespace costs ~0.4 ms to make: the init makes it itself, while
    // the parent makes and joins the cgroup, unless a user namespace must own it (made
    // in the clone with it) or netDevices are moved into it before the init goes on.
    let unshare_net = !two_stage
        && plan.new.contains(CloneFlags::CLONE_NEWNET)
        && !plan.new_user()
        && linux.net_devices().as_ref().is_none_or(|d| d.is_empty());
    let flags = if two_stage {
        CloneFlags::empty()
    } else {
        let mut f = plan.new
            - CloneFlags::CLONE_NEWCGROUP
            - CloneFlags::from_bits_retain(libc::CLONE_NEWTIME);
        if unshare_net {
            f -= CloneFlags::CLONE_NEWNET;
        }
        f
    };
    // Rootless: the init is born dumpable (see InitCtx::dumpable_until_go).
    let rootless_maps = !two_stage && plan.new_user() && !nix::unistd::geteuid().is_root();
    if rootless_maps {
        nix::sys::prctl::set_dumpable(true).sys("prctl(PR_SET_DUMPABLE)")?;
    }
    let mut ctx = InitCtx {
        cfg,
        plan,
        chan: child_end.lifted(floor).sys("moving init socket fd")?,
        gate,
        cgroup: cg,
        seccomp: seccomp.as_ref(),
        placeholders,
        no_pivot: o.no_pivot,
        no_new_keyring: o.no_new_keyring,
        preserve_fds: o.preserve_fds,
        // The init's parent is nook in both starts (the two-stage one forks it with
        // CLONE_PARENT).
        die_with_parent: o.foreground,
        state_lock: dir.lock_fd(),
        placement: &placement,
        unshare_net,
        cgroup_made: std::cell::Cell::new(false),
        dumpable_until_go: rootless_maps,
        nook_in_userns: namespaces::in_user_namespace(),
        trampoline: trampoline.map(std::os::fd::AsRawFd::as_raw_fd),
        handoff: None,
    };
    // On cgroup v2 the init is born in its cgroup (clone3 with CLONE_INTO_CGROUP): no
    // attach, no wait. v1 hierarchies are joined by the parent afterwards.
    let late = made_after_clone(cg);
    let v2_leaf = if two_stage || cg.scope.is_some() || late {
        None
    } else {
        cg.v2_leaf()
    };
    let into = v2_leaf.as_ref().and_then(|d| {
        let flags = nix::fcntl::OFlag::O_PATH
            | nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_CLOEXEC;
        nix::fcntl::open(d.as_path(), flags, Mode::empty()).ok()
    });
    // The init is born on this CPU and nook leaves it (linux::handoff).
    ctx.handoff = crate::linux::handoff::Handoff::pin();
    // SAFETY: nook is single-threaded here; the child runs to exec or _exit.
    let Placed { forked, born_in_v2 } =
        unsafe { fork_placed(flags, into.as_ref(), ctx.handoff.as_ref()) };
    // The systemd driver's scope is joined through systemd (supervise_setup).
    let attach: Vec<PathBuf> = cg
        .dirs
        .iter()
        .filter(|d| !(born_in_v2 && Some(*d) == v2_leaf.as_ref()) && cg.scope.is_none())
        .cloned()
        .collect();
    let first = match forked.sys("cloning the container init")? {
        Forked::Child => {
            drop(parent_end);
            if two_stage {
                init::intermediate_main(ctx)
            } else {
                init::child_main(ctx)
            }
        }
        Forked::Parent(pid) => pid,
    };
    if rootless_maps {
        nix::sys::prctl::set_dumpable(false).sys("prctl(PR_SET_DUMPABLE)")?;
    }
    fault::point("create.cloned");
    drop(ctx);
    drop(into);
    let listener = seccomp.as_ref().and_then(|f| f.listener());
    let joins = Joins {
        dirs: &attach,
        cg,
        make: late,
        dir,
    };
    match supervise_setup(first, plan, &parent_end, cfg, &o.id, &joins, listener) {
        Ok((pid, console)) => {
            fault::point("create.ready");
            finish(o, cfg, dir, cg, pid).map(|st| (st, console, parent_end))
        }
        Err((pid, e)) => {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
            if pid != first {
                let _ = waitpid(Pid::from_raw(first), None);
            }
            Err(e)
        }
    }
}

/// How the init joins its cgroup: the directories to write its pid into, and (systemd
/// driver) the cgroup whose scope is started with it, its limits written then. And the
/// state dir, which gets config.json while the init sets up.
struct Joins<'a> {
    dirs: &'a [PathBuf],
    cg: &'a cgroups::Cgroup,
    /// The cgroup is made (and limited) here, after Go (`made_after_clone`).
    make: bool,
    dir: &'a StateDir,
}

/// Drive the init through setup: map its ids, tell it to go on, then move it into
/// its cgroup while it sets up its root (on cgroup v1 an attach waits for an RCU
/// grace period, several milliseconds, so it runs beside the child's work instead
/// of before it), tell it it is attached, and wait for Ready or an error.
/// Returns the init's pid, or (pid to kill, error).
fn supervise_setup(
    first: i32,
    plan: &Plan,
    chan: &Channel,
    cfg: &Config,
    id: &str,
    joins: &Joins,
    listener: Option<&crate::linux::seccomp::Listener>,
) -> std::result::Result<(i32, Option<std::os::fd::OwnedFd>), (i32, Error)> {
    let linux = cfg.spec.linux().as_ref().expect("checked by spec::load");
    let mut pid = first;
    let mut console = None;
    let oom = cfg.spec.process().as_ref().and_then(|p| p.oom_score_adj());
    let two_stage = plan.two_stage();
    let userns = plan.new_user();
    // In a user namespace, new or joined, the init's host uid may not reach a source.
    // Rootless, it is nook's own uid: it reaches what nook reaches (and nook could not
    // enter the init's mount namespace to clone them: no CAP_SYS_CHROOT on the host).
    let cloned = nix::unistd::geteuid().is_root();
    let binds = if cloned && (userns || plan.joins(CloneFlags::CLONE_NEWUSER).is_some()) {
        let mounts = cfg.spec.mounts().as_deref().unwrap_or_default();
        crate::linux::mount_sources::binds(mounts, &cfg.bundle)
    } else {
        vec![]
    };
    let go_and_attach = |pid: i32| -> Result<()> {
        if let Some(adj) = oom {
            set_oom_score_adj(pid, adj)?;
        }
        fault::point("create.oom-score");
        crate::linux::mount_sources::send(pid, &binds, chan)?;
        // A systemd scope must exist before the init goes on (it binds its cgroup into
        // the container's /sys/fs/cgroup), so it is started, holding the init, first.
        if let Some(scope) = &joins.cg.scope {
            let dir = joins
                .cg
                .v2_leaf()
                .expect("a scope lives in the v2 hierarchy");
            cgroups::systemd::start(scope, &dir, id, pid, linux.resources().as_ref())?;
            limit(joins.cg, linux)?;
            fault::point("create.scope");
        }
        // linux.netDevices: into the init's network namespace before it goes on.
        for (host, d) in linux.net_devices().iter().flatten() {
            let name = d.name().as_deref().unwrap_or(host);
            crate::linux::netdev::move_into(host, name, pid)?;
        }
        chan.send(&Msg::Go).sys("telling init to go on")?;
        fault::point("create.go");
        if joins.make {
            cgroups::make(joins.cg)?;
            limit(joins.cg, linux)?;
            fault::point("create.limits");
        }
        // If the child failed meanwhile this send fails; its report is read below.
        let _ = chan.send(&Msg::CgroupMade);
        cgroups::add(joins.dirs, pid)?;
        fault::point("create.attached");
        // If the child failed meanwhile this send fails; its report is read below.
        let _ = chan.send(&Msg::Attached);
        // Exec and the hooks read the config later; saved while the init still works.
        joins.dir.save_config(&cfg.text)?;
        fault::point("create.config-saved");
        Ok(())
    };
    if !two_stage {
        if userns {
            namespaces::write_id_maps(pid, linux).map_err(|e| (pid, e))?;
        }
        go_and_attach(pid).map_err(|e| (pid, e))?;
    }
    loop {
        let msg = chan
            .recv()
            .sys("waiting for the container init")
            .map_err(|e| (pid, e))?;
        match msg {
            Some(Msg::Ready) => return Ok((pid, console)),
            Some(Msg::Console) => console = chan.take_fd(),
            Some(Msg::MapUser(p)) => {
                namespaces::write_id_maps(p, linux).map_err(|e| (pid, e))?;
                chan.send(&Msg::Go)
                    .sys("telling init to go on")
                    .map_err(|e| (pid, e))?;
            }
            Some(Msg::InitPid(p)) => {
                let _ = waitpid(Pid::from_raw(first), None);
                pid = p;
                go_and_attach(pid).map_err(|e| (pid, e))?;
            }
            Some(Msg::RunHooks) => {
                // "created", as runc and crun pass it (runtime-tools checks it for prestart).
                let st = hook_state(cfg, id, "created", pid);
                let h = cfg.spec.hooks().clone().unwrap_or_default();
                let run = |kind, list: &Option<Vec<oci_spec::runtime::Hook>>| {
                    crate::hooks::run(kind, list.as_deref().unwrap_or_default(), &st)
                };
                run("prestart", h.prestart())
                    .and_then(|()| run("createRuntime", h.create_runtime()))
                    .map_err(|e| (pid, e.into()))?;
                chan.send(&Msg::HooksDone(st))
                    .sys("telling init the hooks ran")
                    .map_err(|e| (pid, e))?;
            }
            Some(Msg::SeccompFd) => {
                let st = || hook_state(cfg, id, "creating", pid);
                crate::linux::seccomp_notify::answer(chan, listener, pid, st)
                    .map_err(|e| (pid, e.into()))?;
            }
            Some(Msg::Failed(e)) => return Err((pid, e.into())),
            Some(Msg::ExecFailed(path, errno)) => {
                return Err((pid, crate::linux::process::exec_failed(&path, errno).into()))
            }
            Some(Msg::Go) | Some(Msg::Attached) | Some(Msg::CgroupMade) => {}
            Some(Msg::HooksDone(_)) => {}
            Some(Msg::SeccompDone) | Some(Msg::MountSource(_)) => {}
            None => return Err((pid, Error::InitDied(describe_exit(pid)))),
        }
    }
}

/// process.oomScoreAdj, written here before the init goes on: inside a new user
/// namespace the init cannot open its own oom_score_adj (it is not dumpable, so the
/// file belongs to the host's root). Through a private procfs (linux::procfs).
fn set_oom_score_adj(pid: i32, adj: i32) -> Result<()> {
    let procfs = crate::linux::procfs::Procfs::new(0)?;
    let rel = format!("{pid}/oom_score_adj");
    Ok(procfs.write(
        "setting process.oomScoreAdj",
        &rel,
        adj.to_string().as_bytes(),
    )?)
}

/// The state document hooks read, for a container being created.
pub fn hook_state(cfg: &Config, id: &str, status: &str, pid: i32) -> String {
    crate::hooks::state_json(
        cfg.spec.version(),
        id,
        status,
        pid,
        &cfg.bundle,
        &cfg.spec.annotations().clone().unwrap_or_default(),
    )
}

fn describe_exit(pid: i32) -> String {
    match waitpid(Pid::from_raw(pid), None) {
        Ok(WaitStatus::Exited(_, c)) => format!("exit status {c}"),
        Ok(WaitStatus::Signaled(_, s, _)) => format!("killed by {s}"),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("wait: {e}"),
    }
}

/// Record the state (atomically) and the pid file.
fn finish(
    o: &Options,
    cfg: &Config,
    dir: &StateDir,
    cg: &cgroups::Cgroup,
    pid: i32,
) -> Result<State> {
    let state = State {
        oci_version: cfg.spec.version().clone(),
        id: o.id.clone(),
        status: "created".into(),
        pid,
        bundle: cfg.bundle.clone(),
        annotations: cfg.spec.annotations().clone().unwrap_or_default(),
        init_start_time: crate::state::start_time(pid).unwrap_or(0),
        created: crate::state::now_rfc3339(),
        cgroup: cg.clone(),
        rootfs: cfg.rootfs.clone(),
        owner: o.foreground.then(|| {
            let me = std::process::id() as i32;
            (me, crate::state::start_time(me).unwrap_or(0))
        }),
        start_error: None,
        resctrl: None,
    };
    // linux.intelRdt: the init joins its resctrl group before the app can run.
    let rdt = cfg
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.intel_rdt().as_ref());
    let mut state = state;
    if let Some(rdt) = rdt {
        let joined = crate::linux::resctrl::mount_point()
            .ok_or_else(|| crate::linux::resctrl::RdtError("resctrl is not mounted".into()))
            .and_then(|root| crate::linux::resctrl::join(&root, rdt, &o.id, pid));
        match joined {
            Ok(g) => state.resctrl = Some(g),
            Err(e) => {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                let _ = waitpid(Pid::from_raw(pid), None);
                return Err(e.into());
            }
        }
    }
    let r = dir
        .write(&state)
        .inspect(|()| fault::point("create.state-written"))
        .and_then(|()| match &o.pid_file {
            Some(p) => write_pid_file(p, pid),
            None => Ok(()),
        });
    if let Err(e) = r {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = waitpid(Pid::from_raw(pid), None);
        if let Some(g) = &state.resctrl {
            crate::linux::resctrl::remove(g);
        }
        return Err(e);
    }
    Ok(state)
}

/// The pid file is written whole through a rename, as runc does.
pub fn write_pid_file(p: &Path, pid: i32) -> Result<()> {
    let abs = std::path::absolute(p).ctx("resolving pid file", p)?;
    let tmp = abs.with_file_name(format!(
        ".{}.tmp",
        abs.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).ctx("writing pid file", &tmp)?;
    std::fs::rename(&tmp, &abs).ctx("writing pid file", &abs)
}
