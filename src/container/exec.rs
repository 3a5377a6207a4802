//! `exec`, parent side: run a new process in a created or running container.
//!
//! The process is described by the config the container was created from (its
//! process with the flags applied, as runc does) or wholly by `--process FILE`.
//! nook opens the init's namespaces (checked to still be the init's through its
//! start time), joins the pid and time namespaces itself (they apply to children),
//! forks (on cgroup v2 straight into the container's cgroup), moves the child into
//! the container's other cgroups while it joins the remaining namespaces, and waits
//! for Ready and then the exec (EOF on the close-on-exec channel) or a failure.
//! Then it returns at once (`--detach`) or waits, forwarding signals, and exits
//! with the process's status.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, Process, Spec};

use super::create::write_pid_file;
use super::exec_init::{self, ExecCtx};
use crate::cgroups;
use crate::cli::ExecArgs;
use crate::error::{Error, IoContext, Result, SysContext};
use crate::linux::clone::{fork_placed, Forked, Placed};
use crate::linux::sync::{self, Channel, InitError, Msg};
use crate::linux::terminal;
use crate::linux::{capabilities, namespaces};
use crate::spec::SpecError;
use crate::state::{self, State, StateDir, Status};

/// The container's namespaces nook joins itself before the fork (they only apply to
/// children), then those the child joins, in order: user first, mnt last.
const PARENT_NS: [(&str, libc::c_int); 2] =
    [("pid", libc::CLONE_NEWPID), ("time", libc::CLONE_NEWTIME)];
const CHILD_NS: [(&str, libc::c_int); 6] = [
    ("user", libc::CLONE_NEWUSER),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
];

type Joins = Vec<(CloneFlags, &'static str, OwnedFd)>;

pub fn exec(root: &Path, a: &ExecArgs) -> Result<i32> {
    // Before nook opens anything: no fd of ours may take a preserved number.
    let placeholders = crate::linux::process::reserve_fds(a.preserve_fds)?;
    let dir = StateDir::open(root, &a.id, false)?;
    let st = dir.read()?;
    let status = state::status(&dir, &st);
    check_status(status, &a.id, a.ignore_paused)?;
    let spec = dir.config()?;
    let proc = process(a, &spec)?;
    let caps = capabilities::parse(proc.capabilities().as_ref())?;
    let placement = crate::linux::sched::plan_process(&proc).map_err(SpecError::from)?;
    // Compiled here (or taken from the cache), so the child only has to load it.
    let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => Some(crate::linux::seccomp::prepare(root, s)?),
        None => None,
    };
    let (parent_ns, mut child_ns) = open_namespaces(&st)?;
    let (parent_end, child_end) = sync::pair().sys("making the exec socketpair")?;

    // Signals stay pending from here until the wait loop takes them, so none is lost.
    let set = super::wait::forwarded();
    if !a.detach {
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .sys("blocking signals")?;
    }
    // Rootless: joining the pid namespace takes CAP_SYS_ADMIN in our own user namespace
    // too, which only the container's gives us (its owner): join that one first.
    // In a user namespace other than the host's already (rootless podman runs nook so).
    let mut in_userns = namespaces::in_user_namespace();
    if !nix::unistd::geteuid().is_root() {
        if let Some(i) = child_ns
            .iter()
            .position(|(f, _, _)| *f == CloneFlags::CLONE_NEWUSER)
        {
            let (flag, name, fd) = child_ns.remove(i);
            nix::sched::setns(fd.as_fd(), flag).map_err(|e| {
                InitError::sys(format!("joining the container's {name} namespace"), None, e)
            })?;
            in_userns = true;
        }
    }
    for (flag, name, fd) in &parent_ns {
        nix::sched::setns(fd.as_fd(), *flag).map_err(|e| {
            InitError::sys(format!("joining the container's {name} namespace"), None, e)
        })?;
    }
    drop(parent_ns);
    crate::fault::point("exec.joined");

    let mut ctx = ExecCtx {
        process: &proc,
        caps: &caps,
        namespaces: child_ns,
        chan: child_end,
        seccomp: seccomp.as_ref(),
        preserve_fds: a.preserve_fds,
        placeholders,
        placement,
        in_userns,
        handoff: None,
    };
    // On cgroup v2 the child is born in the container's cgroup (clone3 with
    // CLONE_INTO_CGROUP); v1 hierarchies are joined by the parent afterwards.
    let v2_leaf = st.cgroup.v2_leaf();
    let into = v2_leaf.as_ref().and_then(|d| {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        nix::fcntl::open(d.as_path(), flags, Mode::empty()).ok()
    });
    // The child is born on this CPU and nook leaves it (linux::handoff).
    ctx.handoff = crate::linux::handoff::Handoff::pin();
    // SAFETY: nook is single-threaded here; the child runs to exec or _exit.
    let Placed { forked, born_in_v2 } =
        unsafe { fork_placed(CloneFlags::empty(), into.as_ref(), ctx.handoff.as_ref()) };
    let pid = match forked.sys("forking the exec process")? {
        Forked::Child => {
            drop(parent_end);
            exec_init::child_main(ctx)
        }
        Forked::Parent(pid) => pid,
    };
    crate::fault::point("exec.forked");
    drop(ctx);
    drop(into);
    let attach: Vec<PathBuf> = st
        .cgroup
        .dirs
        .iter()
        .filter(|d| !(born_in_v2 && Some(*d) == v2_leaf.as_ref()))
        .cloned()
        .collect();
    let notify = seccomp.as_ref().and_then(|f| f.listener()).map(|l| {
        let status = state::status(&dir, &st).to_string();
        let state = crate::hooks::state_json(
            &st.oci_version,
            &st.id,
            &status,
            st.pid,
            &st.bundle,
            &st.annotations,
        );
        (l, state)
    });
    // Into a paused container (--ignore-paused) the process stays frozen until
    // `resume`, which must be able to take the state dir meanwhile.
    let dir = (status != Status::Paused).then_some(dir);
    let started = supervise(pid, &parent_end, &attach, notify).and_then(|console| {
        if let Some(p) = &a.pid_file {
            write_pid_file(p, pid)?;
        }
        match (&a.console_socket, console) {
            (Some(sock), Some(m)) => terminal::send_to_console_socket(sock, &m).map(|()| None),
            (_, console) => Ok(console),
        }
    });
    let console = match started {
        Ok(c) => c,
        Err(e) => {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
            return Err(e);
        }
    };
    crate::fault::point("exec.started");
    // The process runs: release the state dir so delete, kill and the rest may go on.
    drop(dir);
    if a.detach {
        return Ok(0);
    }
    match console {
        Some(m) => {
            let sized = proc.console_size().is_some();
            super::wait::proxy_terminal(pid, &set, &m, sized, None)
        }
        None => super::wait::wait_forwarding(pid, &set),
    }
}

fn check_status(status: Status, id: &str, ignore_paused: bool) -> Result<()> {
    match status {
        Status::Created | Status::Running => Ok(()),
        Status::Paused if ignore_paused => Ok(()),
        // runc's wording, which clients match.
        Status::Paused => Err(Error::Usage(
            "cannot exec in a paused container (use --ignore-paused to override)".into(),
        )),
        s => Err(Error::BadStatus {
            id: id.into(),
            status: s.to_string(),
            what: "cannot exec a process in it (it must be created or running)",
        }),
    }
}

/// The init's namespaces that differ from nook's: (for the parent, for the child).
/// Opened, then the init is checked to still be the same process, so the fds are
/// its namespaces and not those of a process that took its pid.
fn open_namespaces(st: &State) -> Result<(Joins, Joins)> {
    let open = |list: &[(&'static str, libc::c_int)]| -> Result<Joins> {
        let mut out = vec![];
        for &(name, flag) in list {
            let path = PathBuf::from(format!("/proc/{}/ns/{name}", st.pid));
            let fd = match namespaces::open_ns(&path) {
                Ok(fd) => fd,
                // A kernel without this kind of namespace (or the init is gone: checked below).
                Err(nix::Error::ENOENT) => continue,
                Err(e) => {
                    return Err(Error::Io {
                        step: "opening the container's namespace",
                        path,
                        source: e.into(),
                    })
                }
            };
            let theirs = nix::sys::stat::fstat(&fd)
                .map(|s| (s.st_dev, s.st_ino))
                .map_err(|e| Error::Io {
                    step: "reading the container's namespace",
                    path: path.clone(),
                    source: e.into(),
                })?;
            let own = format!("/proc/self/ns/{name}");
            let ours = std::fs::metadata(&own).ctx("reading nook's namespace", &own)?;
            // Joining the namespace we are in is skipped (for a user namespace it fails).
            if (ours.dev(), ours.ino()) != theirs {
                out.push((CloneFlags::from_bits_retain(flag), name, fd));
            }
        }
        Ok(out)
    };
    let parent = open(&PARENT_NS)?;
    let child = open(&CHILD_NS)?;
    if state::start_time(st.pid) != Some(st.init_start_time) {
        return Err(Error::BadStatus {
            id: st.id.clone(),
            status: Status::Stopped.to_string(),
            what: "cannot exec a process in it (it must be created or running)",
        });
    }
    Ok((parent, child))
}

/// Move the child into the container's cgroups (it joins the namespaces meanwhile),
/// tell it, then wait for Ready and the exec: EOF on the channel, whose child end
/// closes on exec. A failure, before or at the exec, arrives as Failed. A terminal
/// process sends its pty master first (Console); it is returned.
fn supervise(
    pid: i32,
    chan: &Channel,
    attach: &[PathBuf],
    notify: Option<(&crate::linux::seccomp::Listener, String)>,
) -> Result<Option<OwnedFd>> {
    cgroups::add(attach, pid)?;
    // If the child failed meanwhile this send fails; its report is read below.
    let _ = chan.send(&Msg::Attached);
    let recv = || chan.recv().sys("waiting for the exec process");
    let mut console = None;
    loop {
        match recv()? {
            Some(Msg::Ready) => break,
            Some(Msg::Console) => console = chan.take_fd(),
            // The notify fd of a filter with a listener (sent before Ready).
            Some(Msg::SeccompFd) => {
                let (l, st) = (notify.as_ref().map(|n| n.0), || {
                    notify.as_ref().map(|n| n.1.clone()).unwrap_or_default()
                });
                crate::linux::seccomp_notify::answer(chan, l, pid, st)?;
            }
            Some(Msg::Failed(e)) => return Err(e.into()),
            Some(other) => return Err(unexpected(&other)),
            None => return Err(died(pid)),
        }
    }
    match recv()? {
        None => Ok(console),
        Some(Msg::Failed(e)) => Err(e.into()),
        Some(other) => Err(unexpected(&other)),
    }
}

fn unexpected(m: &Msg) -> Error {
    InitError::msg(
        "waiting for the exec process",
        format!("unexpected message {m:?}"),
    )
    .into()
}

fn died(pid: i32) -> Error {
    let how = match waitpid(Pid::from_raw(pid), None) {
        Ok(WaitStatus::Exited(_, c)) => format!("exit status {c}"),
        Ok(WaitStatus::Signaled(_, s, _)) => format!("killed by {s}"),
        Ok(other) => format!("{other:?}"),
        Err(e) => format!("wait: {e}"),
    };
    InitError::msg("exec process", format!("exited during setup ({how})")).into()
}

/// The process to run: `--process FILE` whole, or the container's own process
/// with the command and flags applied (runc's rules).
fn process(a: &ExecArgs, spec: &Spec) -> Result<Process> {
    let p = match &a.process {
        Some(file) => {
            let shaped = !a.command.is_empty()
                || a.cwd.is_some()
                || !a.env.is_empty()
                || a.user.is_some()
                || !a.additional_gids.is_empty()
                || !a.cap.is_empty()
                || a.no_new_privs
                || a.apparmor.is_some()
                || a.process_label.is_some();
            if shaped {
                return Err(Error::Usage(
                    "--process: the process comes whole from the file; a command, --cwd, \
                     --env, --user, --additional-gids, --cap, --no-new-privs, --apparmor or \
                     --process-label cannot be added to it"
                        .into(),
                ));
            }
            let text = std::fs::read_to_string(file).ctx("reading process file", file)?;
            parse_process(file, &text)?
        }
        None => from_config(a, spec)?,
    };
    let origin = a
        .process
        .as_ref()
        .map_or("exec".into(), |f| f.display().to_string());
    let bad = |field: &str, why: String| Err(Error::Usage(format!("{origin}: {field}: {why}")));
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return bad("args", "must name the program to run".into());
    }
    if !p.cwd().is_absolute() {
        return bad("cwd", format!("{:?} is not absolute", p.cwd()));
    }
    if p.terminal() == Some(true) && a.console_socket.is_none() && a.detach {
        return bad(
            "terminal",
            "a detached terminal process needs --console-socket".into(),
        );
    }
    Ok(p)
}

/// A process JSON file; errors name the line, column and field.
pub fn parse_process(path: &Path, text: &str) -> Result<Process, SpecError> {
    crate::spec::parse_json(path, text)
}

fn from_config(a: &ExecArgs, spec: &Spec) -> Result<Process> {
    let mut p = spec
        .process()
        .clone()
        .ok_or_else(|| Error::Usage("the container's config has no process".into()))?;
    if a.command.is_empty() {
        return Err(Error::Usage(
            "exec needs a command (or --process FILE)".into(),
        ));
    }
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &a.env {
        set_env(&mut env, kv)?;
    }
    p.set_env(Some(env));
    if !a.cap.is_empty() {
        let mut c = p.capabilities().clone().unwrap_or_else(no_caps);
        for name in &a.cap {
            add_cap(&mut c, name)?;
        }
        p.set_capabilities(Some(c));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(profile) = &a.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &a.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    if let Some(u) = &a.user {
        let (uid, gid) = parse_user(u)?;
        p.user_mut().set_uid(uid);
        if let Some(g) = gid {
            p.user_mut().set_gid(g);
        }
    }
    if !a.additional_gids.is_empty() {
        let mut gids = p.user().additional_gids().clone().unwrap_or_default();
        gids.extend(&a.additional_gids);
        p.user_mut().set_additional_gids(Some(gids));
    }
    Ok(p)
}

/// Set KEY=VALUE, replacing any earlier value of KEY.
fn set_env(env: &mut Vec<String>, kv: &str) -> Result<()> {
    let key = match kv.split_once('=') {
        Some((k, _)) if !k.is_empty() => k,
        _ => return Err(Error::Usage(format!("--env {kv:?}: expected KEY=VALUE"))),
    };
    env.retain(|e| e.split_once('=').map_or(e != key, |(k, _)| k != key));
    env.push(kv.to_string());
    Ok(())
}

/// UID[:GID], numeric (there is no user database lookup, as runc).
fn parse_user(s: &str) -> Result<(u32, Option<u32>)> {
    let bad = |what: &str| Error::Usage(format!("--user {s:?}: bad {what} (expected UID[:GID])"));
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    let uid = u.parse().map_err(|_| bad("uid"))?;
    let gid = g.map(|g| g.parse().map_err(|_| bad("gid"))).transpose()?;
    Ok((uid, gid))
}

/// No capability in any set (the builder's default is runc's three in every set).
fn no_caps() -> LinuxCapabilities {
    serde_json::from_str("{}").expect("an empty capabilities object parses")
}

/// runc's `--cap`: added to the bounding, effective and permitted sets, and to the
/// ambient set only when the config lists inheritable ones (the flag adds none, and
/// the kernel keeps an ambient capability only if it is also inheritable).
fn add_cap(c: &mut LinuxCapabilities, name: &str) -> Result<()> {
    let cap: Capability = serde_json::from_value(serde_json::Value::String(name.into()))
        .map_err(|_| Error::Usage(format!("--cap {name:?}: unknown capability")))?;
    let with = |set: &Option<Capabilities>| {
        let mut s = set.clone().unwrap_or_default();
        s.insert(cap);
        Some(s)
    };
    let (b, e, p) = (with(c.bounding()), with(c.effective()), with(c.permitted()));
    c.set_bounding(b);
    c.set_effective(e);
    c.set_permitted(p);
    if c.inheritable().is_some() {
        let amb = with(c.ambient());
        c.set_ambient(amb);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides() {
        let mut env = vec!["PATH=/bin".to_string(), "FOO=old".into(), "FOOBAR=x".into()];
        set_env(&mut env, "FOO=bar").unwrap();
        set_env(&mut env, "NEW=1").unwrap();
        assert_eq!(env, ["PATH=/bin", "FOOBAR=x", "FOO=bar", "NEW=1"]);
        assert!(set_env(&mut env, "NOEQUALS").is_err());
        assert!(set_env(&mut env, "=x").is_err());
    }

    #[test]
    fn users() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("1000:100").unwrap(), (1000, Some(100)));
        assert!(parse_user("app").is_err());
        assert!(parse_user("1:x").is_err());
    }

    #[test]
    fn caps_follow_runc() {
        let mut c = no_caps();
        add_cap(&mut c, "CAP_SYS_ADMIN").unwrap();
        add_cap(&mut c, "net_admin").unwrap();
        let has = |s: &Option<Capabilities>, cap| s.as_ref().is_some_and(|s| s.contains(&cap));
        for set in [c.bounding(), c.effective(), c.permitted()] {
            assert!(has(set, Capability::SysAdmin) && has(set, Capability::NetAdmin));
        }
        assert!(c.ambient().is_none() && c.inheritable().is_none());
        assert!(add_cap(&mut c, "CAP_NOPE").is_err());
    }

    #[test]
    fn process_errors_name_the_field() {
        let e = parse_process(
            Path::new("p.json"),
            r#"{"cwd":"/","user":{"uid":"zero","gid":0},"args":["x"]}"#,
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(s.contains("user.uid"), "{s}");
    }
}
