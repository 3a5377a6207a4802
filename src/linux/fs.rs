//! Paths resolved inside the container's rootfs: every lookup goes through
//! openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so a symlink in the rootfs
//! that points at a host path resolves inside the rootfs instead.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::sys::stat::Mode;

/// openat2 with resolution scoped to `root`.
pub fn open_in_root(root: BorrowedFd, path: &Path, flags: i32, mode: u32) -> nix::Result<OwnedFd> {
    let resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    openat2(root, relative(path), flags, mode, resolve)
}

/// openat2(2): `rel` below `dir` with the given RESOLVE_* flags (and O_CLOEXEC),
/// retried on EAGAIN and EINTR.
pub fn openat2(
    dir: BorrowedFd,
    rel: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> nix::Result<OwnedFd> {
    let c = CString::new(rel.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: open_how is plain data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    if flags & libc::O_CREAT != 0 {
        how.mode = mode as u64;
    }
    how.resolve = resolve;
    let root = dir;
    loop {
        // SAFETY: `c` is a valid C string and `how` a valid open_how for the duration of the call.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match Errno::result(fd) {
            // SAFETY: the kernel returned a new fd that nothing else owns.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// An O_PATH handle on `path` inside `root`.
pub fn lookup(root: BorrowedFd, path: &Path) -> nix::Result<OwnedFd> {
    open_in_root(root, path, libc::O_PATH, 0)
}

/// `path` with its root and `.` components dropped (and "." for the root itself).
fn relative(path: &Path) -> &Path {
    let rel = path.strip_prefix("/").unwrap_or(path);
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// mkdir -p inside `root`; returns an O_PATH handle on the last directory.
pub fn mkdir_all(root: BorrowedFd, path: &Path, mode: u32) -> nix::Result<OwnedFd> {
    let mut cur = lookup(root, Path::new("/"))?;
    let mut prefix = std::path::PathBuf::from("/");
    for comp in path.components() {
        let Component::Normal(name) = comp else {
            if comp == Component::ParentDir {
                return Err(Errno::EINVAL);
            }
            continue;
        };
        prefix.push(name);
        match open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY, 0) {
            Ok(fd) => cur = fd,
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(&cur, name, Mode::from_bits_truncate(mode)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                cur = open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY, 0)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

/// Make sure a regular file exists at `path` inside `root` (parents included), for a
/// file bind mount; returns an O_PATH handle on it.
pub fn touch(root: BorrowedFd, path: &Path) -> nix::Result<OwnedFd> {
    if let Some(parent) = path.parent() {
        mkdir_all(root, parent, 0o755)?;
    }
    match lookup(root, path) {
        Ok(fd) => Ok(fd),
        Err(Errno::ENOENT) => {
            let f = open_in_root(root, path, libc::O_CREAT | libc::O_WRONLY, 0o644)?;
            drop(f);
            lookup(root, path)
        }
        Err(e) => Err(e),
    }
}

/// The path through which a syscall that takes a path acts on what `fd` refers to.
pub fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Raise an fd to at least `floor` (close-on-exec), so it cannot collide with preserved fds.
pub fn lift(fd: OwnedFd, floor: RawFd) -> nix::Result<OwnedFd> {
    if fd.as_raw_fd() >= floor {
        return Ok(fd);
    }
    let new = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(floor))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn symlink_out_of_root_stays_inside() {
        let dir = std::env::temp_dir().join(format!("nook-fs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root/etc")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("root/evil")).unwrap();
        std::os::unix::fs::symlink("../../../../../../var", dir.join("root/up")).unwrap();
        let root = std::fs::File::open(dir.join("root")).unwrap();
        let fd = mkdir_all(root.as_fd(), Path::new("/evil/nook-sub"), 0o755).unwrap();
        drop(fd);
        assert!(
            dir.join("root/etc/nook-sub").is_dir(),
            "created inside the root"
        );
        assert!(!Path::new("/etc/nook-sub").exists());
        // A link to a directory the root lacks is refused, never followed to the host.
        assert!(mkdir_all(root.as_fd(), Path::new("/up/nook-sub"), 0o755).is_err());
        assert!(!Path::new("/var/nook-sub").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
