//! The container's root: propagation, the rootfs bind, mounts and devices, pivot_root,
//! then masked paths, read-only paths and a read-only root.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, Mode, SFlag};
use oci_spec::runtime::Spec;

use super::sync::InitError;
use super::{devices, fs, mounts};

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
    let mut last = devices::LastDir::default();
    for n in &nodes {
        devices::create(env.root.as_fd(), n, userns, &mut last)?;
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
        // The old root, held by fd: after pivot_root it is stacked on top of ".", but a
        // mount(2) on "." would reach the new root below it (only umount looks through
        // to the top), and MS_REC there would turn every mount of the container into a
        // slave, undoing the propagation its config asked for.
        let old_root = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(sys("opening the old root", Path::new("/")))?;
        nix::unistd::pivot_root(".", ".").map_err(sys("pivot_root", rootfs))?;
        // A slave, so unmounting it does not propagate to the host; then detached.
        let slave = super::fs::MountAttr {
            propagation: MsFlags::MS_SLAVE.bits(),
            ..Default::default()
        };
        super::fs::set_attr(old_root.as_fd(), &slave, true)
            .map_err(sys("making old root slave", rootfs))?;
        drop(old_root);
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

/// The host's /dev/null as a detached, read-only mount, taken before pivot_root: the
/// source of every file mask. Nothing in the rootfs (a /dev/null that is a symlink, a
/// regular file or another device) can change what a mask shows, and read-only means a
/// chmod or chown through a mask cannot reach the host's node.
pub struct NullMount {
    tree: OwnedFd,
    /// Whether `tree` has been attached (later masks are copies of it).
    attached: bool,
}

impl NullMount {
    pub fn open() -> Result<NullMount, InitError> {
        let path = Path::new("/dev/null");
        let tree = fs::clone_host_path(path, false).map_err(sys("opening for masks", path))?;
        let st = nix::sys::stat::fstat(&tree).map_err(sys("opening for masks", path))?;
        let chr = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR;
        if !chr || st.st_rdev != makedev(1, 3) {
            return Err(InitError::msg(
                "opening /dev/null for masks",
                "the host's /dev/null is not the null device (1:3)",
            ));
        }
        let ro = fs::MountAttr {
            attr_set: fs::MOUNT_ATTR_RDONLY | fs::MOUNT_ATTR_NOSUID | fs::MOUNT_ATTR_NOEXEC,
            ..Default::default()
        };
        fs::set_attr(tree.as_fd(), &ro, false).map_err(sys("opening for masks", path))?;
        Ok(NullMount {
            tree,
            attached: false,
        })
    }

    /// Mount the null device on what `target` refers to.
    fn mount_on(&mut self, target: BorrowedFd) -> nix::Result<()> {
        if !self.attached {
            fs::move_mount(self.tree.as_fd(), target)?;
            self.attached = true;
            return Ok(());
        }
        // The first copy is now attached in our namespace, so it can be copied again.
        let copy = fs::clone_tree(self.tree.as_fd(), false)?;
        fs::move_mount(copy.as_fd(), target)
    }
}

/// A handle on the root ("/") after pivot_root.
fn new_root() -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// maskedPaths: a directory gets an empty read-only tmpfs, anything else the host's
/// /dev/null (`null`). Each path is opened inside the root and masked through its fd,
/// so what is checked is what is masked.
pub fn mask(paths: &[String], null: &mut NullMount) -> Result<(), InitError> {
    let root = new_root().map_err(sys("opening", Path::new("/")))?;
    for p in paths {
        let path = Path::new(p);
        let fd = match fs::lookup(root.as_fd(), path) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(sys("opening linux.maskedPaths", path)(e)),
        };
        let st = nix::sys::stat::fstat(&fd).map_err(sys("opening linux.maskedPaths", path))?;
        let r = if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
            fs::in_dir(fd.as_fd(), || {
                mount(
                    Some("tmpfs"),
                    ".",
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    None::<&str>,
                )
            })
        } else {
            null.mount_on(fd.as_fd())
        };
        r.map_err(sys("masking linux.maskedPaths", path))?;
    }
    Ok(())
}

/// readonlyPaths: a copy of each (with what is mounted below it) made read-only all the
/// way down, then mounted over it.
pub fn read_only(paths: &[String]) -> Result<(), InitError> {
    let root = new_root().map_err(sys("opening", Path::new("/")))?;
    let ro = fs::MountAttr {
        attr_set: fs::MOUNT_ATTR_RDONLY,
        ..Default::default()
    };
    for p in paths {
        let path = Path::new(p);
        let fd = match fs::lookup(root.as_fd(), path) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(sys("opening linux.readonlyPaths", path)(e)),
        };
        let tree =
            fs::clone_tree(fd.as_fd(), true).map_err(sys("binding linux.readonlyPaths", path))?;
        fs::set_attr(tree.as_fd(), &ro, true)
            .map_err(sys("making read-only linux.readonlyPaths", path))?;
        fs::move_mount(tree.as_fd(), fd.as_fd())
            .map_err(sys("binding linux.readonlyPaths", path))?;
    }
    Ok(())
}

/// Make the mount at `path` (its top mount) read-only, keeping its other flags.
pub fn remount_ro(path: &Path) -> nix::Result<()> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    mounts::remount_bind(&fd, MsFlags::MS_RDONLY)
}
