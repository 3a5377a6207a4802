//! The config's mounts, in order, each destination resolved inside the rootfs.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use oci_spec::runtime::Mount;

use super::fs;
use super::sync::InitError;

/// Parsed `options` of one mount.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub flags: MsFlags,
    pub propagation: MsFlags,
    pub data: Vec<String>,
}

/// Turn an OCI options list into mount flags, propagation flags and fs data.
pub fn parse_options(opts: &[String]) -> Result<Options, String> {
    let mut o = Options {
        flags: MsFlags::empty(),
        propagation: MsFlags::empty(),
        data: vec![],
    };
    for opt in opts {
        let (set, clear) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "unbindable" | "runbindable") => {
                o.propagation |= propagation(p).expect("listed above");
                continue;
            }
            "tmpcopyup" | "idmap" | "ridmap" | "rro" | "rrw" | "rnosuid" | "rsuid" | "rnodev"
            | "rdev" | "rnoexec" | "rexec" => {
                return Err(format!("option {opt:?} is not supported"))
            }
            data => {
                o.data.push(data.to_string());
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
    }
    Ok(o)
}

/// A propagation name as mount flags (`rootfsPropagation` uses the same names).
pub fn propagation(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// What a mount needs besides its config entry.
pub struct Env<'a> {
    pub root: BorrowedFd<'a>,
    pub bundle: &'a Path,
    pub in_user_ns: bool,
    pub new_cgroup_ns: bool,
    /// The container's cgroup (hierarchies read by the parent, before any mount).
    pub cgroup: &'a crate::cgroups::Cgroup,
}

/// Perform `mounts[idx]`.
pub fn mount_one(env: &Env, idx: usize, m: &Mount) -> Result<(), InitError> {
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("");
    let step = format!("mounts[{idx}] ({typ}) on {}", dest.display());
    let opts = parse_options(m.options().as_deref().unwrap_or_default())
        .map_err(|e| InitError::msg(format!("mounts[{idx}].options"), e))?;
    let err = |what: &str, e: nix::Error| InitError::sys(format!("{what} {step}"), None, e);
    let bind = typ == "bind" || opts.flags.contains(MsFlags::MS_BIND);
    if typ == "cgroup" && !bind {
        return cgroup_mount(env, dest, &opts).map_err(|e| err("mounting", e));
    }
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let target = if bind {
        let source = if source.is_absolute() {
            source
        } else {
            env.bundle.join(source)
        };
        let meta = std::fs::metadata(&source).map_err(|e| {
            InitError::sys(
                format!("mounts[{idx}].source"),
                Some(&source.to_string_lossy()),
                nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EINVAL)),
            )
        })?;
        let target = if meta.is_dir() {
            fs::mkdir_all(env.root, dest, 0o755)
        } else {
            fs::touch(env.root, dest)
        }
        .map_err(|e| err("creating destination of", e))?;
        let rec = opts.flags & MsFlags::MS_REC;
        mount(
            Some(&source),
            fs::fd_path(&target).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | rec,
            None::<&str>,
        )
        .map_err(|e| err("bind mounting", e))?;
        let extra = opts.flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
        if !extra.is_empty() {
            let top = fs::lookup(env.root, dest).map_err(|e| err("reopening", e))?;
            remount_bind(&top, opts.flags).map_err(|e| err("remounting", e))?;
        }
        target
    } else {
        let target =
            fs::mkdir_all(env.root, dest, 0o755).map_err(|e| err("creating destination of", e))?;
        let data = opts.data.join(",");
        let res = mount(
            Some(&source),
            fs::fd_path(&target).as_str(),
            Some(typ),
            opts.flags,
            Some(data.as_str()).filter(|d| !d.is_empty()),
        );
        match res {
            // In a user namespace without its own network namespace sysfs cannot be
            // mounted: bind the host's, as runc does.
            Err(nix::Error::EPERM) if typ == "sysfs" && env.in_user_ns => {
                mount(
                    Some("/sys"),
                    fs::fd_path(&target).as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )
                .map_err(|e| err("bind mounting /sys for", e))?;
                let top = fs::lookup(env.root, dest).map_err(|e| err("reopening", e))?;
                remount_bind(&top, opts.flags).map_err(|e| err("remounting", e))?;
            }
            r => r.map_err(|e| err("mounting", e))?,
        }
        target
    };
    drop(target);
    if !opts.propagation.is_empty() {
        let top = fs::lookup(env.root, dest).map_err(|e| err("reopening", e))?;
        mount(
            None::<&str>,
            fs::fd_path(&top).as_str(),
            None::<&str>,
            opts.propagation,
            None::<&str>,
        )
        .map_err(|e| err("setting propagation of", e))?;
    }
    Ok(())
}

/// Remount a bind mount with its flags, keeping the ones the kernel locks
/// (nosuid, nodev, noexec, atime flags) that are already set on it.
pub fn remount_bind(fd: &OwnedFd, flags: MsFlags) -> nix::Result<()> {
    remount_bind_at(Path::new(&fs::fd_path(fd)), flags)
}

/// As `remount_bind`, by path (after pivot_root, where paths are the container's own).
pub fn remount_bind_at(path: &Path, flags: MsFlags) -> nix::Result<()> {
    let locked = locked_flags(path)?;
    let flags = flags | locked | MsFlags::MS_BIND | MsFlags::MS_REMOUNT;
    let flags = flags - MsFlags::MS_REC;
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

fn locked_flags(path: &Path) -> nix::Result<MsFlags> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let st = statvfs(path)?;
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (s, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(s) {
            out |= m;
        }
    }
    Ok(out)
}

/// A `cgroup` mount: cgroup2 on a pure v2 host; otherwise a tmpfs holding each
/// hierarchy (mounted afresh in a new cgroup namespace, else bound from the host).
fn cgroup_mount(env: &Env, dest: &Path, opts: &Options) -> nix::Result<()> {
    let hs = &env.cgroup.hierarchies;
    let flags = opts.flags - MsFlags::MS_RDONLY;
    let target = fs::mkdir_all(env.root, dest, 0o755)?;
    if hs.len() == 1 && hs[0].v2 {
        drop(target);
        return mount_or_bind(env, dest, "cgroup2", "", &hs[0].mount_point, opts.flags);
    }
    mount(
        Some("tmpfs"),
        fs::fd_path(&target).as_str(),
        Some("tmpfs"),
        flags,
        Some("mode=755"),
    )?;
    drop(target);
    for h in hs {
        let Some(name) = h.mount_point.file_name() else {
            continue;
        };
        let sub = dest.join(name);
        fs::mkdir_all(env.root, &sub, 0o555)?;
        let (typ, data) = if h.v2 {
            ("cgroup2", String::new())
        } else {
            ("cgroup", h.controllers.join(","))
        };
        mount_or_bind(env, &sub, typ, &data, &h.mount_point, opts.flags)?;
    }
    if opts.flags.contains(MsFlags::MS_RDONLY) {
        let top = fs::lookup(env.root, dest)?;
        remount_bind(&top, opts.flags)?;
    }
    Ok(())
}

fn mount_or_bind(
    env: &Env,
    dest: &Path,
    typ: &str,
    data: &str,
    host_mount: &Path,
    flags: MsFlags,
) -> nix::Result<()> {
    let target = fs::lookup(env.root, dest)?;
    let t = fs::fd_path(&target);
    if env.new_cgroup_ns {
        let r = mount(Some(typ), t.as_str(), Some(typ), flags, Some(data));
        if r != Err(nix::Error::EPERM) {
            return r;
        }
    }
    let src = host_mount.join(&env.cgroup.rel);
    mount(
        Some(&src),
        t.as_str(),
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    let top = fs::lookup(env.root, dest)?;
    remount_bind(&top, flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options() {
        let o = parse_options(&v(&[
            "rbind", "ro", "nosuid", "rslave", "mode=755", "size=1k",
        ]))
        .unwrap();
        assert_eq!(
            o.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        );
        assert_eq!(o.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(o.data, v(&["mode=755", "size=1k"]));
        let o = parse_options(&v(&["ro", "rw", "noexec", "exec"])).unwrap();
        assert!(o.flags.is_empty());
        assert!(parse_options(&v(&["idmap"])).is_err());
    }
}
