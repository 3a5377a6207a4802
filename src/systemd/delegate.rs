//! The container's cgroup inside the calling unit's: run from a unit with `Delegate=yes`
//! on a cgroup v2 host, nook moves itself into a leaf of the unit's cgroup (the "no
//! internal processes" rule) and makes the container's cgroup beside it, so systemd's
//! accounting, limits and stop cover the app.

use std::path::{Path, PathBuf};

use super::SystemdError;
use crate::cgroups::Hierarchy;

/// Where nook itself goes inside the delegated cgroup.
pub const SUPERVISOR: &str = "supervisor";

/// The unit's cgroup path (relative to the v2 root) when nook runs in a unit that
/// delegates it; None, with a note on stderr saying where the container goes instead,
/// when it does not.
pub fn unit_cgroup(hs: &[Hierarchy], id: &str) -> Result<Option<PathBuf>, SystemdError> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let Some(rel) = v2_path(&own) else {
        return Ok(None);
    };
    let v2: Vec<&Hierarchy> = hs.iter().filter(|h| h.v2).collect();
    if hs.len() != 1 || v2.len() != 1 {
        eprintln!(
            "nook: not a cgroup v2-only host: the container's cgroup is nook/{id} in each hierarchy, outside the unit's"
        );
        return Ok(None);
    }
    let unit = v2[0].mount_point.join(&rel);
    if !delegated(&unit) {
        eprintln!(
            "nook: the unit does not delegate its cgroup (Delegate=yes): the container's cgroup is /nook/{id}, outside the unit's ({}); the unit's accounting and limits do not cover the app, and journald does not tag its output with the unit",
            Path::new("/").join(&rel).display()
        );
        return Ok(None);
    }
    enter_leaf(&unit)?;
    Ok(Some(rel))
}

/// The `0::` line of /proc/self/cgroup, without its leading slash (None at the root).
pub fn v2_path(proc_cgroup: &str) -> Option<PathBuf> {
    let p = proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let p = p.trim().trim_start_matches('/');
    (!p.is_empty()).then(|| PathBuf::from(p))
}

/// systemd marks a delegated cgroup with the trusted.delegate (or, for user managers,
/// user.delegate) extended attribute.
fn delegated(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(p) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    ["trusted.delegate", "user.delegate"].iter().any(|name| {
        let n = std::ffi::CString::new(*name).expect("no NUL");
        let mut buf = [0u8; 8];
        // SAFETY: both strings are NUL-terminated; buf is writable for its length.
        let r =
            unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        r > 0 && buf[0] == b'1'
    })
}

/// Move nook into `<unit>/supervisor`.
fn enter_leaf(unit: &Path) -> Result<(), SystemdError> {
    let leaf = unit.join(SUPERVISOR);
    let io = |step: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| SystemdError::Io { step, path, source }
    };
    match std::fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("making nook's leaf cgroup", &leaf)(e)),
    }
    let procs = leaf.join("cgroup.procs");
    std::fs::write(&procs, std::process::id().to_string())
        .map_err(io("moving nook into its leaf cgroup", &procs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_v2_path() {
        let hybrid = "12:pids:/user.slice\n1:name=systemd:/system.slice/a.service\n0::/system.slice/a.service\n";
        assert_eq!(
            v2_path(hybrid),
            Some(PathBuf::from("system.slice/a.service"))
        );
        assert_eq!(v2_path("0::/\n"), None);
        assert_eq!(v2_path("3:cpu:/x\n"), None);
    }
}
