//! The container's root: propagation, the rootfs bind, mounts and devices, pivot_root,
//! then masked paths, read-only paths and a read-only root.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::Spec;

use super::sync::InitError;
use super::{devices, mounts};

fn sys(step: &str, path: &Path) -> impl FnOnce(nix::Error) -> InitError {
    let step = step.to_string();
    let path = path.to_string_lossy().to_string();
    move |e| InitError::sys(step, Some(&path), e)
}

/// Stop mount events from reaching the host, and bind the rootfs onto itself so it is
/// a mount point that pivot_root accepts. Returns a handle on the rootfs.
pub fn prepare(rootfs: &Path, propagation: Option<&str>) -> Result<OwnedFd, InitError> {
    let flags = match propagation {
        Some(p) => mounts::propagation(p).ok_or_else(|| {
            InitError::msg("linux.rootfsPropagation", format!("unknown value {p:?}"))
        })?,
        None => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    // Whatever the config says for the container, "/" is first made a recursive slave
    // (or private) so nothing done here propagates back to the host.
    let base = if flags.contains(MsFlags::MS_PRIVATE) {
        MsFlags::MS_PRIVATE
    } else {
        MsFlags::MS_SLAVE
    };
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        base | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("making mounts slave", Path::new("/")))?;
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys("binding rootfs onto itself", rootfs))?;
    let fd = nix::fcntl::open(
        rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("opening rootfs", rootfs))?;
    Ok(fd)
}

/// Mounts in config order, then the default and configured devices and /dev links.
pub fn populate(spec: &Spec, env: &mounts::Env, userns: bool) -> Result<(), InitError> {
    let ms = spec.mounts().as_deref().unwrap_or_default();
    for (i, m) in ms.iter().enumerate() {
        mounts::mount_one(env, i, m)?;
    }
    let mut nodes = devices::defaults();
    if let Some(linux) = spec.linux() {
        for d in linux.devices().iter().flatten() {
            nodes.retain(|n| n.path != *d.path());
            nodes.push(devices::from_config(d)?);
        }
    }
    for n in &nodes {
        devices::create(env.root.as_fd(), n, userns)?;
    }
    let devpts = ms
        .iter()
        .any(|m| m.destination() == Path::new("/dev/pts") && m.typ().as_deref() == Some("devpts"));
    devices::symlinks(env.root.as_fd(), devpts)
}

/// Make the rootfs "/": pivot_root(".", ".") then detach the old root stacked under it.
pub fn pivot(rootfs: &Path, no_pivot: bool) -> Result<(), InitError> {
    nix::unistd::chdir(rootfs).map_err(sys("entering rootfs", rootfs))?;
    if no_pivot {
        mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
            .map_err(sys("moving rootfs to /", rootfs))?;
        nix::unistd::chroot(".").map_err(sys("chroot", rootfs))?;
    } else {
        nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root", rootfs))?;
        // The old root is now on top of ".": make it a slave so unmounting it does not
        // propagate to the host, then detach it.
        mount(
            None::<&str>,
            ".",
            None::<&str>,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys("making old root slave", rootfs))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(sys("detaching old root", rootfs))?;
    }
    nix::unistd::chdir("/").map_err(sys("entering new root", Path::new("/")))
}

/// rootfsPropagation for the new root (after pivot, so it applies to the container's tree).
pub fn set_root_propagation(propagation: Option<&str>) -> Result<(), InitError> {
    if let Some(flags) = propagation.and_then(mounts::propagation) {
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
            .map_err(sys("setting linux.rootfsPropagation on", Path::new("/")))?;
    }
    Ok(())
}

/// maskedPaths: a directory gets an empty read-only tmpfs, anything else /dev/null.
pub fn mask(paths: &[String]) -> Result<(), InitError> {
    for p in paths {
        let path = Path::new(p);
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(InitError::sys(
                    "linux.maskedPaths",
                    Some(p),
                    nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
                ))
            }
        };
        let r = if meta.is_dir() {
            mount(
                Some("tmpfs"),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None::<&str>,
            )
        } else {
            mount(
                Some("/dev/null"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        };
        r.map_err(sys("masking linux.maskedPaths", path))?;
    }
    Ok(())
}

/// readonlyPaths: bind each onto itself and remount it read-only.
pub fn read_only(paths: &[String]) -> Result<(), InitError> {
    for p in paths {
        let path = Path::new(p);
        match mount(
            Some(path),
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ) {
            Ok(()) => {}
            Err(nix::Error::ENOENT) => continue,
            Err(e) => return Err(sys("binding linux.readonlyPaths", path)(e)),
        }
        remount_ro(path).map_err(sys("remounting read-only linux.readonlyPaths", path))?;
    }
    Ok(())
}

/// Remount a mount point read-only, keeping the flags the kernel locks.
pub fn remount_ro(path: &Path) -> nix::Result<()> {
    mounts::remount_bind_at(path, MsFlags::MS_RDONLY)
}
