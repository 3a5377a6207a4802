//! The `tmpcopyup` mount option (runc and crun have it; podman asks for it with
//! --read-only): a tmpfs mounted on a directory starts with a copy of what that
//! directory held.
//!
//! The source is the container's rootfs, so it is walked by fd only: every entry is
//! looked at without following symlinks (a symlink is copied as a symlink), only what
//! is still a regular file once opened is read (a FIFO swapped in cannot block setup),
//! and nothing outside the source directory is ever opened. Modes and owners are kept;
//! device nodes are made again (which needs CAP_MKNOD, as it did to make them); sockets
//! are skipped, as they cannot be copied.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

/// Deeper trees are refused (ELOOP) rather than risking the stack.
const MAX_DEPTH: usize = 128;

/// Copy everything under the directory `src` into the empty directory `dst`, then give
/// `dst` the mode and owner of `src` (those not fixed by the mount's options: `keep_mode`,
/// `keep_owner`).
pub fn copy_dir(
    src: BorrowedFd,
    dst: BorrowedFd,
    keep_mode: bool,
    keep_owner: bool,
) -> nix::Result<()> {
    let src = reopen_dir(src, c".")?;
    let dst = reopen_dir(dst, c".")?;
    copy_entries(src.as_fd(), dst.as_fd(), 0)?;
    let st = nix::sys::stat::fstat(&src)?;
    if !keep_owner {
        nix::unistd::fchown(&dst, Some(st.st_uid.into()), Some(st.st_gid.into()))?;
    }
    if !keep_mode {
        nix::sys::stat::fchmod(&dst, mode_of(&st))?;
    }
    Ok(())
}

fn reopen_dir(dir: BorrowedFd, name: &CStr) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    // SAFETY: `name` is a valid C string; openat returns a new fd or -1.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags.bits()) };
    // SAFETY: a new fd nothing else owns.
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn mode_of(st: &FileStat) -> Mode {
    Mode::from_bits_truncate(st.st_mode & 0o7777)
}

fn copy_entries(src: BorrowedFd, dst: BorrowedFd, depth: usize) -> nix::Result<()> {
    if depth > MAX_DEPTH {
        return Err(Errno::ELOOP);
    }
    // A Dir of its own fd: reading it moves the offset of that fd only.
    let dir = nix::dir::Dir::from_fd(reopen_dir(src, c".")?)?;
    for entry in dir {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        copy_entry(src, dst, name, depth)?;
    }
    Ok(())
}

fn copy_entry(src: BorrowedFd, dst: BorrowedFd, name: &CStr, depth: usize) -> nix::Result<()> {
    let os = OsStr::from_bytes(name.to_bytes());
    let st = nix::sys::stat::fstatat(src, os, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let mode = mode_of(&st);
    let (uid, gid) = (Some(st.st_uid.into()), Some(st.st_gid.into()));
    match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFDIR => {
            nix::sys::stat::mkdirat(dst, os, Mode::from_bits_truncate(0o700))?;
            let from = reopen_dir(src, name)?;
            let to = reopen_dir(dst, name)?;
            copy_entries(from.as_fd(), to.as_fd(), depth + 1)?;
            nix::unistd::fchown(&to, uid, gid)?;
            nix::sys::stat::fchmod(&to, mode)
        }
        SFlag::S_IFREG => {
            let ro = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
            let from = std::fs::File::from(nix::fcntl::openat(src, os, ro, Mode::empty())?);
            let now = nix::sys::stat::fstat(&from)?;
            if SFlag::from_bits_truncate(now.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
                return Err(Errno::EAGAIN); // swapped since the look: not ours to read
            }
            let wo = OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            let to = nix::fcntl::openat(dst, os, wo, Mode::from_bits_truncate(0o600))?;
            let mut to = std::fs::File::from(to);
            std::io::copy(&mut &from, &mut to)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
            nix::unistd::fchown(&to, uid, gid)?;
            nix::sys::stat::fchmod(&to, mode)
        }
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(src, os)?;
            let t = CString::new(target.as_bytes()).map_err(|_| Errno::EINVAL)?;
            // SAFETY: both are valid C strings for the call.
            Errno::result(unsafe { libc::symlinkat(t.as_ptr(), dst.as_raw_fd(), name.as_ptr()) })?;
            nix::unistd::fchownat(dst, os, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)
        }
        SFlag::S_IFSOCK => Ok(()),
        kind => {
            nix::sys::stat::mknodat(dst, os, kind, mode, st.st_rdev)?;
            nix::unistd::fchownat(dst, os, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// Files, directories, symlinks (copied, never followed) and modes arrive; a FIFO
    /// is made again rather than read.
    #[test]
    fn copies_the_tree_without_following_links() {
        let base = std::env::temp_dir().join(format!("nook-copy-up-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let (src, dst) = (base.join("src"), base.join("dst"));
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::write(src.join("a/b/file"), b"hello").unwrap();
        std::fs::set_permissions(src.join("a/b/file"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o751)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        nix::unistd::mkfifo(&src.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let s = std::fs::File::open(&src).unwrap();
        let d = std::fs::File::open(&dst).unwrap();
        copy_dir(s.as_fd(), d.as_fd(), false, false).unwrap();
        let got = std::fs::read(dst.join("a/b/file")).unwrap();
        let file_mode = std::fs::metadata(dst.join("a/b/file")).unwrap().mode() & 0o7777;
        let link = std::fs::read_link(dst.join("link")).unwrap();
        let link_is_link = std::fs::symlink_metadata(dst.join("link"))
            .unwrap()
            .file_type()
            .is_symlink();
        let fifo = std::fs::symlink_metadata(dst.join("fifo")).unwrap().mode() & libc::S_IFMT;
        let root_mode = std::fs::metadata(&dst).unwrap().mode() & 0o7777;
        std::fs::remove_dir_all(&base).unwrap();
        assert_eq!(got, b"hello");
        assert_eq!(file_mode, 0o640);
        assert!(link_is_link);
        assert_eq!(link, std::path::Path::new("/etc/passwd"));
        assert_eq!(fifo, libc::S_IFIFO);
        assert_eq!(root_mode, 0o751);
    }
}
