//! `start`, `state`, `kill`, `delete` and `list` on a created container.

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::cgroups;
use crate::error::{Error, Result};
use crate::state::{self, State, StateDir, Status};

/// Release a created container: its init is blocked reading the exec FIFO.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let dir = StateDir::open(root, id, true)?;
    let st = dir.read()?;
    match state::status(&dir, &st) {
        Status::Created => {}
        s => {
            return Err(Error::BadStatus {
                id: id.into(),
                status: s.to_string(),
                what: "only a created container can be started",
            })
        }
    }
    if let Err(e) = release(&dir.path) {
        // The init has gone: `state` says why, and delete clears the rest.
        let mut failed = st.clone();
        failed.start_error = Some(e.to_string());
        let _ = dir.write(&failed);
        return Err(e);
    }
    crate::fault::point("start.released");
    if let Some(h) = hooks_of(&dir) {
        poststart(&st, &h);
    }
    Ok(())
}

/// The saved config's hooks, if it has any.
fn hooks_of(dir: &StateDir) -> Option<oci_spec::runtime::Hooks> {
    dir.config().ok().and_then(|s| s.hooks().clone())
}

fn hook_state(st: &State, status: &str) -> String {
    crate::hooks::state_json(
        &st.oci_version,
        &st.id,
        status,
        st.pid,
        &st.bundle,
        &st.annotations,
    )
}

/// poststart hooks: after the user process started; failures are warnings.
pub fn poststart(st: &State, h: &oci_spec::runtime::Hooks) {
    let list = h.poststart().as_deref().unwrap_or_default();
    if !list.is_empty() {
        crate::hooks::run_all_logged("poststart", list, &hook_state(st, "running"));
    }
}

/// poststop hooks: after the container is deleted; failures are warnings.
pub fn poststop(st: &State, h: &oci_spec::runtime::Hooks) {
    let list = h.poststop().as_deref().unwrap_or_default();
    if !list.is_empty() {
        crate::hooks::run_all_logged("poststop", list, &hook_state(st, "stopped"));
    }
}

/// Release the init through its exec gate and wait until the process has exec'd
/// (after the startContainer hooks), so poststart runs after it, as the spec orders.
pub fn release(dir: &Path) -> Result<()> {
    use crate::linux::gate::{self, GateError};
    gate::open(dir).map_err(|e| match e {
        GateError::Sys(e) => Error::Io {
            step: "opening the exec gate (is the container init still there?)",
            path: dir.join(gate::EXEC_SOCK),
            source: e.into(),
        },
        GateError::Init(msg) => Error::Init(crate::linux::sync::InitError::msg(
            "starting the container process",
            msg,
        )),
    })
}

/// The runtime spec's state document, with the live status.
pub fn state_json(root: &Path, id: &str) -> Result<serde_json::Value> {
    let dir = StateDir::open(root, id, false)?;
    let st = dir.read()?;
    let status = state::status(&dir, &st);
    Ok(public(&st, status))
}

fn public(st: &State, status: Status) -> serde_json::Value {
    let pid = if status == Status::Stopped { 0 } else { st.pid };
    let mut v = json!({
        "ociVersion": st.oci_version,
        "id": st.id,
        "status": status.to_string(),
        "pid": pid,
        "bundle": st.bundle,
        "rootfs": st.rootfs,
        "created": st.created,
        "owner": "",
    });
    let mut annotations = st.annotations.clone();
    if let Some(e) = &st.start_error {
        annotations.insert(START_ERROR.into(), e.clone());
    }
    if !annotations.is_empty() {
        v["annotations"] = json!(annotations);
    }
    v
}

/// The annotation `state` shows a failed start's reason under.
pub const START_ERROR: &str = "io.github.nook.start-error";

/// A state dir without state.json, for `list`: "creating" while its create runs,
/// "unfinished" once that create is gone (`delete --force`, or the next create of the
/// id, clears it).
fn unfinished_json(root: &Path, id: &str) -> serde_json::Value {
    let draft: Option<state::Draft> = std::fs::read(root.join(id).join(state::DRAFT_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let status = if state::creating(root, id) {
        "creating"
    } else {
        "unfinished"
    };
    json!({
        "ociVersion": "",
        "id": id,
        "status": status,
        "pid": 0,
        "bundle": draft.as_ref().map(|d| d.bundle.clone()).unwrap_or_default(),
        "rootfs": "",
        "created": draft.map(|d| d.created).unwrap_or_default(),
        "owner": "",
    })
}

/// Parse a signal as runc does: "TERM", "SIGTERM", "15".
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || Error::Usage(format!("unknown signal {s:?}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    name.parse::<Signal>().map_err(|_| bad())
}

/// Signal the init (through a pidfd, checked against the saved start time so a reused
/// pid is never signalled), or with `all` every process in the container's cgroup.
pub fn kill(root: &Path, id: &str, sig: Signal, all: bool) -> Result<()> {
    let dir = StateDir::open(root, id, false)?;
    let st = dir.read()?;
    let status = state::status(&dir, &st);
    if status == Status::Stopped {
        return Err(Error::BadStatus {
            id: id.into(),
            status: status.to_string(),
            what: "container not running",
        });
    }
    if all {
        signal_all(&st.cgroup, sig);
        return Ok(());
    }
    signal_init(&st, sig)?;
    // A frozen process cannot die: after a SIGKILL a paused container is thawed (runc
    // does the same), or it would stay paused with the kill pending.
    if sig == Signal::SIGKILL && status == Status::Paused {
        let _ = cgroups::freezer::set(&st.cgroup, false);
    }
    Ok(())
}

fn signal_init(st: &State, sig: Signal) -> Result<()> {
    // SAFETY: pidfd_open takes a pid and flags; it returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, st.pid, 0) };
    // The init may exit (and be reaped) between the status check and here.
    let gone = || Error::BadStatus {
        id: st.id.clone(),
        status: "stopped".into(),
        what: "container not running",
    };
    let fd = match nix::errno::Errno::result(fd) {
        Err(nix::Error::ESRCH) => return Err(gone()),
        r => r.map_err(|e| Error::Sys {
            step: "opening a pidfd for the container init",
            source: e,
        })?,
    };
    // SAFETY: the kernel returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if state::start_time(st.pid) != Some(st.init_start_time) {
        return Err(gone());
    }
    // SAFETY: a valid pidfd and signal number; no siginfo is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig as i32,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    match nix::errno::Errno::result(r) {
        Ok(_) => Ok(()),
        Err(nix::Error::ESRCH) => Err(gone()),
        Err(e) => Err(Error::Sys {
            step: "signalling the container init",
            source: e,
        }),
    }
}

/// Remove a container. A created or (with `force`) running one is killed first.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = match StateDir::open(root, id, true) {
        // What a killed create left is no container yet: cleared with or without force.
        Err(Error::NotFound(_)) if clear_unfinished(root, id, true)? => return Ok(()),
        Err(e @ Error::NotFound(_)) => {
            // A create killed while unpacking its bundle, or before its state dir was
            // in place, had none yet.
            crate::bundle::unpack::sweep_cache(root);
            StateDir::sweep_new(root);
            return Err(e);
        }
        r => r?,
    };
    let st = dir.read()?;
    let status = state::status(&dir, &st);
    match status {
        Status::Stopped | Status::Created => {}
        _ if force => {}
        s => {
            return Err(Error::BadStatus {
                id: id.into(),
                status: s.to_string(),
                what: "cannot delete a container that is not stopped (use --force)",
            })
        }
    }
    let hooks = hooks_of(&dir);
    destroy(&st);
    crate::fault::point("delete.destroyed");
    if let Some(h) = hooks {
        poststop(&st, &h);
    }
    dir.remove()
}

/// Clear the state dir a killed `create` left under `id` (see state::Draft): kill what
/// runs in the cgroup its draft names, remove that cgroup, sweep the bundle cache's
/// abandoned unpacks, remove the dir. `wait`: wait for a create still running (else one
/// in progress is left alone). False when there was nothing to clear. Fails, keeping
/// the state dir for another try, if the cgroup cannot be removed.
pub fn clear_unfinished(root: &Path, id: &str, wait: bool) -> Result<bool> {
    let Some(u) = StateDir::unfinished(root, id, wait)? else {
        return Ok(false);
    };
    if let Some(d) = &u.draft {
        kill_all(&d.cgroup);
        crate::fault::point("delete.unfinished-killed");
        cgroups::discard(&d.cgroup);
        if let Some(left) = d.cgroup.dirs.iter().find(|p| p.exists()) {
            return Err(Error::Io {
                step: "removing the cgroup of an unfinished create",
                path: left.clone(),
                source: std::io::Error::from_raw_os_error(libc::EBUSY),
            });
        }
    }
    crate::bundle::unpack::sweep_cache(root);
    StateDir::sweep_new(root);
    u.dir.remove()?;
    Ok(true)
}

/// SIGKILL every process in a cgroup and wait (bounded) until it is empty.
fn kill_all(cg: &cgroups::Cgroup) {
    signal_all(cg, Signal::SIGKILL);
    for _ in 0..400 {
        if cgroups::pids(&cg.dirs).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Before `run` takes an id: what a killed earlier run left under it (a stopped
/// container, one whose foreground `nook run` is gone, or a state dir a killed create
/// never finished) is cleared, so a unit's restart never fails with "already exists".
/// A live container keeps its id.
pub fn clear_stale(root: &Path, id: &str) -> Result<()> {
    let dir = match StateDir::open(root, id, true) {
        Err(Error::NotFound(_)) => {
            if clear_unfinished(root, id, false)? {
                eprintln!("nook: cleared what an unfinished create of {id:?} left");
            }
            return Ok(());
        }
        r => r?,
    };
    let st = dir.read()?;
    let status = state::status(&dir, &st);
    if status != Status::Stopped && !st.orphaned() {
        return Err(Error::Exists(id.to_string()));
    }
    eprintln!("nook: clearing what an earlier run of {id:?} left ({status})");
    let hooks = hooks_of(&dir);
    destroy(&st);
    if let Some(h) = hooks {
        poststop(&st, &h);
    }
    dir.remove()
}

/// Signal every process in the container's cgroup. The cgroup is frozen meanwhile so
/// no process can fork past the signal; a frozen (paused) container is thawed after a
/// SIGKILL so its processes can die.
fn signal_all(cg: &cgroups::Cgroup, sig: Signal) {
    let was_frozen = cgroups::is_frozen(&cg.dirs);
    let froze = !was_frozen && cgroups::freezer::set(cg, true).is_ok();
    for pid in cgroups::pids(&cg.dirs) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
    if froze || (was_frozen && sig == Signal::SIGKILL) {
        let _ = cgroups::freezer::set(cg, false);
    }
}

/// Kill whatever is left of the container and remove its cgroup.
pub fn destroy(st: &State) {
    let init_alive = state::start_time(st.pid) == Some(st.init_start_time);
    // The common end (the init has exited, so its pid namespace is empty): an rmdir per
    // hierarchy, which fails on any cgroup that still holds a process.
    if !init_alive && st.cgroup.scope.is_none() && cgroups::remove_if_empty(&st.cgroup.dirs) {
        if let Some(g) = &st.resctrl {
            crate::linux::resctrl::remove(g);
        }
        return;
    }
    if init_alive {
        let _ = signal_init(st, Signal::SIGKILL);
    }
    signal_all(&st.cgroup, Signal::SIGKILL);
    // Wait (bounded) for the init to be gone so the cgroup can be removed.
    for _ in 0..400 {
        if state::start_time(st.pid) != Some(st.init_start_time)
            && cgroups::pids(&st.cgroup.dirs).is_empty()
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    cgroups::discard(&st.cgroup);
    if let Some(g) = &st.resctrl {
        crate::linux::resctrl::remove(g);
    }
}

/// `list`: a table, or `--format json`.
pub fn list(root: &Path, json_format: bool, quiet: bool) -> Result<()> {
    let mut rows = Vec::new();
    for id in state::list_ids(root)? {
        if root.join(&id).join(state::STATE_FILE).exists() {
            if let Ok(mut v) = state_json(root, &id) {
                // `run --announce`: what the supervisor last wrote of its etcd lease.
                let ann = root.join(&id).join(crate::discovery::announce::STATE_FILE);
                if let Some(a) = std::fs::read_to_string(ann)
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                {
                    v["announce"] = a;
                }
                rows.push(v);
            }
        } else {
            rows.push(unfinished_json(root, &id));
        }
    }
    let mut out = std::io::stdout().lock();
    let w = |e: std::io::Error| Error::Io {
        step: "writing list",
        path: "stdout".into(),
        source: e,
    };
    if quiet {
        for r in &rows {
            writeln!(out, "{}", r["id"].as_str().unwrap_or_default()).map_err(w)?;
        }
    } else if json_format {
        writeln!(out, "{}", serde_json::Value::Array(rows)).map_err(w)?;
    } else {
        writeln!(
            out,
            "{:<20} {:<8} {:<10} {:<40} {:<31} OWNER",
            "ID", "PID", "STATUS", "BUNDLE", "CREATED"
        )
        .map_err(w)?;
        for r in &rows {
            writeln!(
                out,
                "{:<20} {:<8} {:<10} {:<40} {:<31} {}",
                r["id"].as_str().unwrap_or_default(),
                r["pid"].as_i64().unwrap_or_default(),
                r["status"].as_str().unwrap_or_default(),
                r["bundle"].as_str().unwrap_or_default(),
                r["created"].as_str().unwrap_or_default(),
                if r["owner"].as_str().unwrap_or_default().is_empty() {
                    "root"
                } else {
                    r["owner"].as_str().unwrap_or_default()
                },
            )
            .map_err(w)?;
        }
    }
    Ok(())
}
