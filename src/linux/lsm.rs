//! AppArmor and SELinux: whether the host has them, the check that a config asking for
//! a profile or label can be honoured (a clear error naming the field when it cannot;
//! runc silently skips an AppArmor profile on a host without AppArmor, nook refuses),
//! and the label writes, each through a checked procfs handle (see `procfs`).
//!
//! - process.apparmorProfile: "exec <profile>" to <thread>/attr/apparmor/exec (or the
//!   older attr/exec), as late as possible: the profile applies at the next execve, and
//!   a fork in between (a hook) would inherit it.
//! - process.selinuxLabel: the label to <thread>/attr/exec, as late as possible; and to
//!   attr/keycreate before the session keyring is made, so the keyring carries it.
//! - linux.mountLabel: a context="<label>" mount option (`label_mounts`), for the
//!   in-memory filesystems the container owns.

use std::path::Path;

use oci_spec::runtime::{Mount, Process};

use super::procfs::{write_once, Procfs};
use super::sync::InitError;

/// Which of the two LSMs the host has enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    pub apparmor: bool,
    pub selinux: bool,
}

impl Host {
    /// The running host, from /sys.
    pub fn detect() -> Host {
        Host::at(Path::new("/sys"))
    }

    /// The host whose sysfs is at `sys`: AppArmor when
    /// module/apparmor/parameters/enabled says "Y", SELinux when selinuxfs is mounted
    /// at fs/selinux (statfs magic) and holds an "enforce" file.
    pub fn at(sys: &Path) -> Host {
        let aa = sys.join("module/apparmor/parameters/enabled");
        let apparmor = std::fs::read_to_string(aa).is_ok_and(|s| s.trim() == "Y");
        let se = sys.join("fs/selinux");
        let selinux = nix::sys::statfs::statfs(&se)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::SELINUX_MAGIC)
            && se.join("enforce").exists();
        Host { apparmor, selinux }
    }
}

/// A config field that asks for an LSM the host does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {why}")]
pub struct Unsupported {
    /// The config field, e.g. "process.apparmorProfile".
    pub field: &'static str,
    pub why: String,
}

fn set(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// The labels `p` asks for, checked against this host (looked at only when `p` asks
/// for one).
pub fn labels_for(p: &Process) -> Result<Vec<ExecLabel>, Unsupported> {
    if set(p.apparmor_profile()).is_none() && set(p.selinux_label()).is_none() {
        return Ok(vec![]);
    }
    exec_labels(Host::detect(), p)
}

impl From<Unsupported> for InitError {
    fn from(e: Unsupported) -> InitError {
        InitError::msg(e.field, e.why)
    }
}

/// The labels a process asks for, checked against `host`. An empty string is unset.
pub fn exec_labels(host: Host, p: &Process) -> Result<Vec<ExecLabel>, Unsupported> {
    let mut out = vec![];
    if let Some(profile) = set(p.apparmor_profile()) {
        if !host.apparmor {
            return Err(Unsupported {
                field: "process.apparmorProfile",
                why: format!(
                    "AppArmor profile {profile:?} asked for, but AppArmor is not enabled on \
                     this host (/sys/module/apparmor/parameters/enabled is not \"Y\")"
                ),
            });
        }
        if profile.contains(['\n', '\0']) {
            return Err(Unsupported {
                field: "process.apparmorProfile",
                why: format!("{profile:?} is not a profile name"),
            });
        }
        out.push(ExecLabel::AppArmor(profile.to_string()));
    }
    if let Some(label) = set(p.selinux_label()) {
        selinux_field(host, "process.selinuxLabel", label)?;
        out.push(ExecLabel::SeLinux(label.to_string()));
    }
    Ok(out)
}

/// linux.mountLabel checked against the host.
pub fn check_mount_label(host: Host, label: &Option<String>) -> Result<(), Unsupported> {
    match set(label) {
        Some(l) => selinux_field(host, "linux.mountLabel", l),
        None => Ok(()),
    }
}

fn selinux_field(host: Host, field: &'static str, label: &str) -> Result<(), Unsupported> {
    if !host.selinux {
        return Err(Unsupported {
            field,
            why: format!(
                "SELinux label {label:?} asked for, but SELinux is not enabled on this host \
                 (no selinuxfs at /sys/fs/selinux)"
            ),
        });
    }
    if label.contains(['\n', '\0', '"']) {
        return Err(Unsupported {
            field,
            why: format!("{label:?} is not an SELinux context"),
        });
    }
    Ok(())
}

/// A label that takes effect at the next execve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecLabel {
    AppArmor(String),
    SeLinux(String),
}

impl ExecLabel {
    /// Write it for the thread `thread` ("<pid>/task/<tid>", from `Procfs::thread_dir`).
    /// Called just before execve: the write opens the file itself, since the kernel only
    /// takes attr writes from the credentials that opened the file.
    pub fn apply(&self, procfs: &Procfs, thread: &str) -> Result<(), InitError> {
        match self {
            ExecLabel::AppArmor(profile) => {
                let step = "applying process.apparmorProfile";
                // The per-LSM file (Linux 5.8+), else the shared attr/exec.
                let modern = format!("{thread}/attr/apparmor/exec");
                let legacy = format!("{thread}/attr/exec");
                let (fd, rel) = match procfs.open(step, &modern, libc::O_WRONLY) {
                    Err(e) if e.errno == Some(libc::ENOENT) => {
                        (procfs.open(step, &legacy, libc::O_WRONLY)?, legacy)
                    }
                    r => (r?, modern),
                };
                let data = format!("exec {profile}");
                write_once(&fd, data.as_bytes()).map_err(|e| {
                    let mut err = InitError::sys(step, Some(&format!("/proc/{rel}")), e);
                    if e == nix::errno::Errno::ENOENT {
                        err.msg = Some(format!("no AppArmor profile {profile:?} is loaded"));
                    }
                    err
                })
            }
            ExecLabel::SeLinux(label) => procfs.write(
                "applying process.selinuxLabel",
                &format!("{thread}/attr/exec"),
                label.as_bytes(),
            ),
        }
    }
}

/// SELinux: the label keys this thread creates get (the session keyring made next).
pub fn set_keycreate(procfs: &Procfs, thread: &str, label: &str) -> Result<(), InitError> {
    procfs.write(
        "applying process.selinuxLabel to the session keyring",
        &format!("{thread}/attr/keycreate"),
        label.as_bytes(),
    )
}

/// The SELinux label of process `p`, if it has one (for `set_keycreate`).
pub fn selinux_label(p: &Process) -> Option<&str> {
    set(p.selinux_label())
}

/// Filesystems a linux.mountLabel is given to as a context= option: the in-memory
/// ones the container owns. procfs, sysfs, cgroup and mqueue keep the labels the
/// policy gives them; bind mounts keep their source's.
const LABELLED_FS: &[&str] = &["tmpfs", "devpts", "ramfs"];

/// The option a mount of `fstype` gets for linux.mountLabel, if any: `context="<label>"`
/// for the filesystems in LABELLED_FS, unless `options` already set a context. The label
/// is quoted (MCS categories contain commas); the kernel's option parser drops the quotes.
pub fn mount_option(fstype: &str, options: &[String], label: Option<&str>) -> Option<String> {
    let label = label.filter(|l| !l.is_empty())?;
    if !LABELLED_FS.contains(&fstype) || options.iter().any(|o| o.starts_with("context=")) {
        return None;
    }
    Some(format!("context=\"{label}\""))
}

/// linux.mountLabel applied to a config's mounts: each mount `mount_option` names gets
/// the option appended (as fs data, which is how mounts::parse_options passes it on).
pub fn label_mounts(mounts: &[Mount], label: &str) -> Vec<Mount> {
    mounts
        .iter()
        .map(|m| {
            let typ = m.typ().as_deref().unwrap_or("");
            let opts = m.options().clone().unwrap_or_default();
            let bind = typ == "bind" || opts.iter().any(|o| o == "bind" || o == "rbind");
            match mount_option(typ, &opts, Some(label)) {
                Some(o) if !bind => {
                    let mut m = m.clone();
                    let mut opts = opts;
                    opts.push(o);
                    m.set_options(Some(opts));
                    m
                }
                _ => m.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "lsm_tests.rs"]
mod tests;
