//! Namespaces: which to make, which to join, the id maps and the time offsets.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

use super::sync::InitError;

/// The namespace plan derived from `linux.namespaces`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Namespaces to make new (CLONE_NEW* bits), time and cgroup included.
    pub new: CloneFlags,
    /// Namespaces to join: (type, path), the user namespace first.
    pub join: Vec<(CloneFlags, PathBuf)>,
}

pub fn flag(t: LinuxNamespaceType) -> CloneFlags {
    match t {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

pub fn plan(linux: &Linux) -> Plan {
    let mut p = Plan {
        new: CloneFlags::empty(),
        join: vec![],
    };
    for ns in linux.namespaces().iter().flatten() {
        let f = flag(ns.typ());
        match ns.path() {
            Some(path) => p.join.push((f, path.clone())),
            None => p.new |= f,
        }
    }
    p.join
        .sort_by_key(|(f, _)| !f.contains(CloneFlags::CLONE_NEWUSER));
    p
}

impl Plan {
    pub fn new_user(&self) -> bool {
        self.new.contains(CloneFlags::CLONE_NEWUSER)
    }

    pub fn joins(&self, f: CloneFlags) -> Option<&Path> {
        self.join
            .iter()
            .find(|(g, _)| *g == f)
            .map(|(_, p)| p.as_path())
    }

    /// The single-clone start works when no namespace we join must be entered from
    /// outside a new user namespace. Otherwise: join first, then unshare, then fork.
    pub fn two_stage(&self) -> bool {
        let others_joined = self
            .join
            .iter()
            .any(|(f, _)| *f != CloneFlags::CLONE_NEWPID);
        self.joins(CloneFlags::CLONE_NEWUSER).is_some() || (self.new_user() && others_joined)
    }
}

/// Open a namespace file (checked to be one by setns itself).
pub fn open_ns(path: &Path) -> nix::Result<OwnedFd> {
    open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
}

/// setns into each joined namespace of the given kinds, user first.
pub fn join(plan: &Plan, skip: CloneFlags) -> Result<(), InitError> {
    for (f, path) in &plan.join {
        if skip.contains(*f) {
            continue;
        }
        let p = path.to_string_lossy();
        let fd = open_ns(path).map_err(|e| InitError::sys("opening namespace", Some(&p), e))?;
        setns(fd.as_fd(), *f).map_err(|e| InitError::sys("joining namespace", Some(&p), e))?;
    }
    Ok(())
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Whether nook runs rootless: as a user other than root, or as root of a user namespace
/// that is not the host's (rootless podman runs its runtime so, through conmon), where
/// the host's root-owned places (/run, the cgroup tree) are not ours either.
pub fn rootless() -> bool {
    !nix::unistd::geteuid().is_root() || in_user_namespace()
}

/// Whether this process is in a user namespace other than the initial one (whose
/// uid_map is the whole range onto itself).
pub fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        crate::linux::kfile::read(std::path::Path::new("/proc/self/uid_map")).is_ok_and(|m| {
            let f: Vec<&str> = m.split_whitespace().collect();
            f != ["0", "0", "4294967295"]
        })
    })
}

/// Write /proc/PID/uid_map and gid_map for a child in a new user namespace (through a
/// private procfs, as every /proc write of nook's: see linux::procfs).
///
/// Run by root, the maps are written as given. Run by another user (rootless), the kernel
/// lets nook write only a map of its own id, and a gid map only once setgroups is denied;
/// any other map goes through newuidmap/newgidmap (the uidmap package), which check it
/// against the user's ranges in /etc/subuid and /etc/subgid.
pub fn write_id_maps(pid: i32, linux: &Linux) -> Result<(), crate::error::Error> {
    let uids = linux.uid_mappings().as_deref().unwrap_or_default();
    let gids = linux.gid_mappings().as_deref().unwrap_or_default();
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    if euid == 0 {
        return write_maps(pid, uids, gids, false);
    }
    if own_id_only(uids, euid) {
        write_maps(pid, uids, &[], false)?;
    } else {
        map_with_helper("newuidmap", "linux.uidMappings", pid, uids)?;
    }
    if own_id_only(gids, egid) {
        write_maps(pid, &[], gids, true)
    } else {
        map_with_helper("newgidmap", "linux.gidMappings", pid, gids)
    }
}

/// A map of one id, the caller's own: what an unprivileged process may write itself.
fn own_id_only(maps: &[LinuxIdMapping], id: u32) -> bool {
    matches!(maps, [m] if m.size() == 1 && m.host_id() == id)
}

fn write_maps(
    pid: i32,
    uids: &[LinuxIdMapping],
    gids: &[LinuxIdMapping],
    deny_setgroups: bool,
) -> Result<(), crate::error::Error> {
    let procfs = super::procfs::Procfs::new(0)?;
    if !uids.is_empty() {
        procfs.write(
            "writing linux.uidMappings",
            &format!("{pid}/uid_map"),
            map_text(uids).as_bytes(),
        )?;
    }
    if !gids.is_empty() {
        if deny_setgroups {
            procfs.write(
                "denying setgroups (required before an unprivileged gid map)",
                &format!("{pid}/setgroups"),
                b"deny",
            )?;
        }
        procfs.write(
            "writing linux.gidMappings",
            &format!("{pid}/gid_map"),
            map_text(gids).as_bytes(),
        )?;
    }
    Ok(())
}

/// newuidmap/newgidmap PID INSIDE OUTSIDE COUNT...: setuid helpers that write a map the
/// caller's subordinate id ranges allow.
fn map_with_helper(
    helper: &str,
    field: &str,
    pid: i32,
    maps: &[LinuxIdMapping],
) -> Result<(), crate::error::Error> {
    if maps.is_empty() {
        return Ok(());
    }
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let fail = |why: String| {
        crate::error::Error::from(InitError::msg(
            format!("writing {field} as an unprivileged user"),
            why,
        ))
    };
    let out = cmd.output().map_err(|e| {
        fail(format!(
            "running {helper}: {e} (a map of other ids than your own needs {helper}, from the uidmap package, and ranges in /etc/subuid and /etc/subgid)"
        ))
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!(
            "{helper} refused the map ({}): {} (the ranges must be the user's in /etc/subuid and /etc/subgid)",
            map_text(maps).trim().replace('\n', ", "),
            err.trim()
        )));
    }
    Ok(())
}

/// Enter a new time namespace for our future children and set its offsets.
/// Offsets can only be written before any process is in the namespace, so the
/// parent does this just before the clone.
pub fn prepare_time_ns(linux: &Linux) -> Result<(), crate::error::Error> {
    use crate::error::SysContext;
    nix::sched::unshare(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
        .sys("unsharing the time namespace")?;
    let mut text = String::new();
    for (clock, off) in linux.time_offsets().iter().flatten() {
        text.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    if !text.is_empty() {
        let procfs = super::procfs::Procfs::new(0)?;
        let me = procfs.self_dir()?;
        procfs.write(
            "writing linux.timeOffsets",
            &format!("{me}/timens_offsets"),
            text.as_bytes(),
        )?;
    }
    Ok(())
}
