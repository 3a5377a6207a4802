//! Paths resolved inside the container's rootfs: every lookup goes through
//! openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so a symlink in the rootfs
//! that points at a host path resolves inside the rootfs instead.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
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

/// mkdir -p inside `root`; returns an O_PATH handle on the last directory. A dangling
/// symlink on the way is followed inside the root (as runc does for a mount
/// destination), its target made.
pub fn mkdir_all(root: BorrowedFd, path: &Path, mode: u32) -> nix::Result<OwnedFd> {
    mkdir_all_following(root, path, mode, 0)
}

fn mkdir_all_following(
    root: BorrowedFd,
    path: &Path,
    mode: u32,
    links: u32,
) -> nix::Result<OwnedFd> {
    if links > 40 {
        return Err(Errno::ELOOP);
    }
    let comps: Vec<Component> = path.components().collect();
    if comps.contains(&Component::ParentDir) {
        return Err(Errno::EINVAL);
    }
    // Usually the whole path is there already: one lookup instead of one per component.
    let dir = libc::O_PATH | libc::O_DIRECTORY;
    match open_in_root(root, path, dir, 0) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {
            if let Some(made) = make_last(root, path, &comps, mode) {
                return made;
            }
        }
        Err(_) => {}
    }
    let mut cur = lookup(root, Path::new("/"))?;
    let mut prefix = std::path::PathBuf::from("/");
    for (i, comp) in comps.iter().enumerate() {
        let Component::Normal(name) = comp else {
            continue;
        };
        prefix.push(name);
        match open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY, 0) {
            Ok(fd) => cur = fd,
            Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(&cur, *name, Mode::from_bits_truncate(mode)) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        // Not there, yet the name exists: a dangling symlink.
                        if let Ok(target) = nix::fcntl::readlinkat(&cur, *name) {
                            let parent = prefix.parent().unwrap_or(Path::new("/"));
                            let mut next = normalize(&parent.join(Path::new(&target)));
                            next.extend(&comps[i + 1..]);
                            return mkdir_all_following(root, &next, mode, links + 1);
                        }
                    }
                    Err(e) => return Err(e),
                }
                cur = open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY, 0)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

/// Often only the last component is missing (proc, dev/pts in a bare rootfs): it is made
/// in its parent, found in one lookup (the root itself for a top-level name). None when
/// the parent is missing too or the mkdir fails: the walk in mkdir_all then handles it.
fn make_last(
    root: BorrowedFd,
    path: &Path,
    comps: &[Component],
    mode: u32,
) -> Option<nix::Result<OwnedFd>> {
    let dir = libc::O_PATH | libc::O_DIRECTORY;
    let Some(Component::Normal(name)) = comps.last() else {
        return None;
    };
    let parent = path.parent()?;
    let held = if parent
        .components()
        .any(|c| matches!(c, Component::Normal(_)))
    {
        Some(open_in_root(root, parent, dir, 0).ok()?)
    } else {
        None
    };
    let at = held.as_ref().map_or(root, |fd| fd.as_fd());
    nix::sys::stat::mkdirat(at, *name, Mode::from_bits_truncate(mode)).ok()?;
    Some(open_in_root(root, path, dir, 0))
}

/// An absolute path with "." and ".." taken out lexically, never above "/" (the root the
/// path is resolved in).
pub fn normalize(p: &Path) -> std::path::PathBuf {
    let mut out = std::path::PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
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

/// A regular file or a device node at `name` in `dir`, never following a symlink: a
/// missing name gets an empty file (mode 0644) and a symlink is replaced by one (the link
/// is a name in the rootfs; what it points at is left alone). A directory or anything
/// else is refused with EISDIR / EEXIST. Returns an O_PATH handle on the file.
pub fn plain_file_at(dir: BorrowedFd, name: &std::ffi::OsStr) -> nix::Result<OwnedFd> {
    use nix::fcntl::AtFlags;
    use nix::sys::stat::SFlag;
    let name = Path::new(name);
    match nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
            SFlag::S_IFREG | SFlag::S_IFCHR | SFlag::S_IFBLK => {}
            SFlag::S_IFLNK => {
                nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir)?;
                create_empty(dir, name)?;
            }
            SFlag::S_IFDIR => return Err(Errno::EISDIR),
            _ => return Err(Errno::EEXIST),
        },
        Err(Errno::ENOENT) => create_empty(dir, name)?,
        Err(e) => return Err(e),
    }
    beneath(dir, name, libc::O_PATH)
}

fn create_empty(dir: BorrowedFd, name: &Path) -> nix::Result<()> {
    let flags = libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW;
    match openat2(dir, name, flags, 0o644, RESOLVE_STRICT) {
        Ok(_) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// No symlink (nor magic link) followed, nothing above `dir` reached.
pub const RESOLVE_STRICT: u64 =
    libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;

/// `rel` below `dir`, following no symlink at all.
pub fn beneath(dir: BorrowedFd, rel: &Path, flags: i32) -> nix::Result<OwnedFd> {
    openat2(dir, relative(rel), flags, 0, RESOLVE_STRICT)
}

// The new mount API (Linux 5.2; mount_setattr 5.12). Every bind nook makes is a detached
// copy of a tree taken from an fd (open_tree), given its flags while still detached
// (mount_setattr) and attached to a target fd (move_mount): no path is resolved at
// mount time, so nothing in the rootfs (a symlink, an over-mounted /proc) can redirect it.
const OPEN_TREE_CLONE: u32 = 1;
const AT_EMPTY_PATH: u32 = 0x1000;
const AT_RECURSIVE: u32 = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR_ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// struct mount_attr (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

fn fd_result(r: libc::c_long) -> nix::Result<OwnedFd> {
    // SAFETY: on success the kernel returned a new fd that nothing else owns.
    Errno::result(r).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn open_tree(dir: RawFd, path: &Path, flags: u32) -> nix::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    let flags = flags | OPEN_TREE_CLONE | libc::O_CLOEXEC as u32;
    // SAFETY: `c` is a valid C string for the duration of the call.
    fd_result(unsafe { libc::syscall(libc::SYS_open_tree, dir, c.as_ptr(), flags) })
}

/// A detached copy of the mount at `fd` (with the mounts below it when `recursive`).
pub fn clone_tree(fd: BorrowedFd, recursive: bool) -> nix::Result<OwnedFd> {
    let rec = if recursive { AT_RECURSIVE } else { 0 };
    open_tree(fd.as_raw_fd(), Path::new(""), AT_EMPTY_PATH | rec)
}

/// A detached copy of the mount at a host path (before pivot_root only: the path is
/// the host's, the config's mount source).
pub fn clone_host_path(path: &Path, recursive: bool) -> nix::Result<OwnedFd> {
    let rec = if recursive { AT_RECURSIVE } else { 0 };
    open_tree(libc::AT_FDCWD, path, rec)
}

/// Attach the mount `tree` onto the entry `name` (one component, no symlink followed)
/// of the directory `dir`: for directories nook has just made in a filesystem of its
/// own, where no lookup can be redirected, without opening each one first.
pub fn move_mount_into(tree: BorrowedFd, dir: BorrowedFd, name: &OsStr) -> nix::Result<()> {
    let c = CString::new(name.as_encoded_bytes()).map_err(|_| Errno::EINVAL)?;
    if name.as_encoded_bytes().contains(&b'/') || name == ".." || name == "." || name.is_empty() {
        return Err(Errno::EINVAL);
    }
    move_mount_at(tree, dir, &c, MOVE_MOUNT_F_EMPTY_PATH)
}

/// Attach (or move) the mount `tree` onto what `target` refers to.
pub fn move_mount(tree: BorrowedFd, target: BorrowedFd) -> nix::Result<()> {
    let flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH;
    move_mount_at(tree, target, c"", flags)
}

/// move_mount(2) of the mount `tree` onto `to` (relative to `dir`).
fn move_mount_at(tree: BorrowedFd, dir: BorrowedFd, to: &CStr, flags: u32) -> nix::Result<()> {
    let empty = c"";
    // SAFETY: both paths are valid C strings; the fds are borrowed for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            dir.as_raw_fd(),
            to.as_ptr(),
            flags,
        )
    };
    Errno::result(r).map(drop)
}

/// Change the flags (and propagation) of the mount at `fd`, and of the mounts below it
/// when `recursive`. Flags not named in `attr` are left as they are.
pub fn set_attr(fd: BorrowedFd, attr: &MountAttr, recursive: bool) -> nix::Result<()> {
    if *attr == MountAttr::default() {
        return Ok(());
    }
    let rec = if recursive { AT_RECURSIVE } else { 0 };
    let empty = c"";
    // SAFETY: `attr` is a valid mount_attr of the size passed; the path is an empty C string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            AT_EMPTY_PATH | rec,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}

const FSOPEN_CLOEXEC: u32 = 0x1;
const FSCONFIG_SET_FLAG: u32 = 0;
const FSCONFIG_SET_STRING: u32 = 1;
const FSCONFIG_CMD_CREATE: u32 = 6;
const FSMOUNT_CLOEXEC: u32 = 0x1;

/// What `new_fs` makes.
pub struct NewFs<'a> {
    pub typ: &'a str,
    pub source: Option<&'a str>,
    /// The filesystem's options, each `key=value` or a bare flag, as mount(2)'s data
    /// string would have them.
    pub params: &'a [String],
    /// Superblock flags among "sync", "dirsync", "mand".
    pub sb_flags: &'a [&'a str],
    /// The mount's MOUNT_ATTR_* flags.
    pub attr: u64,
}

/// A new filesystem as a detached mount (fsopen, fsconfig, fsmount): nothing is
/// attached anywhere until the caller moves it (move_mount). ENOSYS before Linux 5.2.
pub fn new_fs(f: &NewFs) -> nix::Result<OwnedFd> {
    let NewFs {
        typ,
        source,
        params,
        sb_flags,
        attr,
    } = *f;
    let cstr = |s: &str| CString::new(s).map_err(|_| Errno::EINVAL);
    let t = cstr(typ)?;
    // SAFETY: `t` is a valid C string for the call.
    let fsfd = fd_result(unsafe { libc::syscall(libc::SYS_fsopen, t.as_ptr(), FSOPEN_CLOEXEC) })?;
    let set = |cmd: u32, key: &str, value: Option<&str>| -> nix::Result<()> {
        let k = cstr(key)?;
        let v = value.map(cstr).transpose()?;
        let vp = v.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: key and value are valid C strings (or null for a flag) for the call.
        let r =
            unsafe { libc::syscall(libc::SYS_fsconfig, fsfd.as_raw_fd(), cmd, k.as_ptr(), vp, 0) };
        Errno::result(r).map(drop)
    };
    if let Some(source) = source {
        set(FSCONFIG_SET_STRING, "source", Some(source))?;
    }
    for p in params {
        match p.split_once('=') {
            // mount(2) lets a value hold commas by quoting it (context="a,b"); fsconfig
            // takes the value as it is.
            Some((k, v)) => set(FSCONFIG_SET_STRING, k, Some(v.trim_matches('"')))?,
            None => set(FSCONFIG_SET_FLAG, p, None)?,
        }
    }
    for f in sb_flags {
        set(FSCONFIG_SET_FLAG, f, None)?;
    }
    // SAFETY: no pointers are passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fsfd.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    Errno::result(r)?;
    // SAFETY: no pointers are passed.
    fd_result(unsafe { libc::syscall(libc::SYS_fsmount, fsfd.as_raw_fd(), FSMOUNT_CLOEXEC, attr) })
}

/// Run `f` with the working directory at the directory `fd` refers to, so a mount(2)
/// on "." (a new filesystem, which open_tree cannot make) lands there without any path
/// being resolved, through /proc or otherwise. The previous working directory is restored.
pub fn in_dir<T>(fd: BorrowedFd, f: impl FnOnce() -> nix::Result<T>) -> nix::Result<T> {
    let saved = openat2(
        cwd_handle(),
        Path::new("."),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        0,
    )?;
    nix::unistd::fchdir(fd)?;
    let r = f();
    nix::unistd::fchdir(&saved)?;
    r
}

fn cwd_handle() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is a constant the *at syscalls take as "the working directory";
    // it is never closed.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
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
        // A link to a directory the root lacks is followed inside the root (runc's
        // behaviour for a mount destination), never to the host: "../../var" stops at
        // the root's "/".
        drop(mkdir_all(root.as_fd(), Path::new("/up/nook-sub"), 0o755).unwrap());
        assert!(
            dir.join("root/var/nook-sub").is_dir(),
            "made inside the root"
        );
        assert!(!Path::new("/var/nook-sub").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn plain_file_at_never_follows_the_name() {
        let dir = std::env::temp_dir().join(format!("nook-fs-plain-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("d/sub")).unwrap();
        let outside = dir.join("outside");
        std::fs::write(&outside, "host").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("d/link")).unwrap();
        std::fs::write(dir.join("d/file"), "kept").unwrap();
        let d = std::fs::File::open(dir.join("d")).unwrap();
        let name = |n: &str| std::ffi::OsString::from(n);
        // A symlink is replaced by an empty file; its target is untouched.
        plain_file_at(d.as_fd(), &name("link")).unwrap();
        let m = std::fs::symlink_metadata(dir.join("d/link")).unwrap();
        assert!(m.is_file() && m.len() == 0);
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "host");
        // A missing name is made, a file kept as it is, a directory refused.
        plain_file_at(d.as_fd(), &name("new")).unwrap();
        assert!(dir.join("d/new").is_file());
        plain_file_at(d.as_fd(), &name("file")).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("d/file")).unwrap(), "kept");
        assert_eq!(
            plain_file_at(d.as_fd(), &name("sub")).unwrap_err(),
            Errno::EISDIR
        );
        // beneath() follows no link at all.
        std::os::unix::fs::symlink("sub", dir.join("d/rel")).unwrap();
        assert_eq!(
            beneath(d.as_fd(), Path::new("rel"), libc::O_PATH).unwrap_err(),
            Errno::ELOOP
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
