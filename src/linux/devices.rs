//! Device nodes in the container's /dev: the default set, `linux.devices`, and the
//! /dev symlinks. In a user namespace mknod is not allowed: host nodes are bound instead.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, makedev, mknodat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::fs;
use super::sync::InitError;

/// One node to create.
pub struct Node {
    pub path: PathBuf,
    pub kind: SFlag,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The devices every container gets (the runtime spec's list).
pub fn defaults() -> Vec<Node> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, major, minor)| Node {
        path: p.into(),
        kind: SFlag::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: None,
        gid: None,
    })
    .collect()
}

pub fn from_config(d: &LinuxDevice) -> Result<Node, InitError> {
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => SFlag::S_IFCHR,
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(InitError::msg(
                format!("linux.devices {}", d.path().display()),
                "type \"a\" is not a device node",
            ))
        }
    };
    Ok(Node {
        path: d.path().clone(),
        kind,
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666) & 0o7777,
        uid: d.uid(),
        gid: d.gid(),
    })
}

/// The directory of the node made last, kept for the next node in the same directory
/// (the default nodes all go to /dev: one lookup for all of them).
#[derive(Default)]
pub struct LastDir(Option<(std::path::PathBuf, std::os::fd::OwnedFd)>);

/// Create one node inside `root`: mknod, or a bind mount of the host's node. The
/// parent directories are resolved inside the root; the node's own name is never
/// followed: a symlink, a file or another node there is replaced (it is a name in the
/// rootfs; whatever it pointed at is left alone), a directory refused.
pub fn create(root: BorrowedFd, n: &Node, bind: bool, last: &mut LastDir) -> Result<(), InitError> {
    let path = n.path.to_string_lossy().to_string();
    let err = |step: &str, e| InitError::sys(step.to_string(), Some(&path), e);
    // Anywhere in the rootfs, as runc allows (resolved beneath the root like any path).
    if !n.path.is_absolute() {
        return Err(InitError::msg(
            format!("linux.devices {path}"),
            "a device path must be absolute",
        ));
    }
    let parent = n.path.parent().unwrap_or(Path::new("/dev"));
    let name = n
        .path
        .file_name()
        .ok_or(err("creating device", Errno::EINVAL))?;
    let dir = match last.0.take() {
        Some((p, fd)) if p == parent => fd,
        _ => fs::mkdir_all(root, parent, 0o755).map_err(|e| err("creating parent of device", e))?,
    };
    let r = create_in(dir.as_fd(), name, n, bind, &path);
    last.0 = Some((parent.to_path_buf(), dir));
    r
}

fn create_in(
    dir: BorrowedFd,
    name: &OsStr,
    n: &Node,
    bind: bool,
    path: &str,
) -> Result<(), InitError> {
    let err = |step: &str, e| InitError::sys(step.to_string(), Some(path), e);
    if bind {
        return bind_host_node(dir, name, n).map_err(|e| match e {
            Errno::ENODEV => InitError::msg(
                format!("linux.devices {path}"),
                format!(
                    "in a user namespace devices are bound from the host, and the host's \
                     {path} is not device {}:{} of that type",
                    n.major, n.minor
                ),
            ),
            e => err("bind mounting host device", e),
        });
    }
    let mode = Mode::from_bits_truncate(n.mode);
    let mknod = || mknodat(dir, name, n.kind, mode, makedev(n.major, n.minor));
    // Made at once in the common case (a fresh /dev); what is there already is looked at.
    match mknod() {
        Ok(()) => {}
        Err(Errno::EEXIST) => {
            match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if is_node(&st, n) => return Ok(()),
                Ok(st)
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR =>
                {
                    return Err(err(
                        "creating device node (a directory is there)",
                        Errno::EISDIR,
                    ))
                }
                Ok(_) => unlinkat(dir, name, UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| err("replacing what the rootfs has at device path", e))?,
                Err(e) => return Err(err("creating device node", e)),
            }
            mknod().map_err(|e| err("creating device node", e))?;
        }
        Err(e) => return Err(err("creating device node", e)),
    }
    if n.uid.is_some() || n.gid.is_some() {
        nix::unistd::fchownat(
            dir,
            name,
            n.uid.map(nix::unistd::Uid::from_raw),
            n.gid.map(nix::unistd::Gid::from_raw),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| err("setting owner of device", e))?;
    }
    Ok(())
}

/// Whether `st` is the node `n` asks for (its type and number).
fn is_node(st: &FileStat, n: &Node) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == n.kind
        && (n.kind == SFlag::S_IFIFO || st.st_rdev == makedev(n.major, n.minor))
}

/// In a user namespace: a copy of the host's node at the same path (checked to be the
/// node asked for), attached to a plain file made at `name` in `dir`.
fn bind_host_node(dir: BorrowedFd, name: &OsStr, n: &Node) -> nix::Result<()> {
    let tree = fs::clone_host_path(&n.path, false)?;
    if !is_node(&nix::sys::stat::fstat(&tree)?, n) {
        return Err(Errno::ENODEV);
    }
    let target = fs::plain_file_at(dir, name)?;
    fs::move_mount(tree.as_fd(), target.as_fd())
}

/// /dev/fd, /dev/std{in,out,err}, /dev/ptmx (when devpts is mounted) and /dev/core.
pub fn symlinks(root: BorrowedFd, with_ptmx: bool) -> Result<(), InitError> {
    let dev = fs::mkdir_all(root, Path::new("/dev"), 0o755)
        .map_err(|e| InitError::sys("opening", Some("/dev"), e))?;
    let mut links = vec![
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/proc/kcore", "core"));
    }
    if with_ptmx {
        // Replace whatever /dev/ptmx is with a link to the devpts instance's node.
        let _ = nix::unistd::unlinkat(&dev, "ptmx", nix::unistd::UnlinkatFlags::NoRemoveDir);
        links.push(("pts/ptmx", "ptmx"));
    }
    for (target, name) in links {
        match nix::unistd::symlinkat(target, &dev, name) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(InitError::sys(
                    "creating symlink",
                    Some(&format!("/dev/{name}")),
                    e,
                ))
            }
        }
    }
    Ok(())
}
