//! /proc files nook writes (or reads to decide something) in the container's init
//! and in `exec`, opened so that nothing the container controls can redirect them
//! (the CVE-2025-52881 class: a file or symlink mounted over /proc/sys/..., or over
//! /proc/<pid>/attr/..., turning a sysctl or LSM write into a write somewhere else).
//!
//! The root is a private procfs instance: fsopen("proc") + fsmount(), a detached
//! mount that no path in any mount tree reaches, so nothing can be mounted on or
//! below it. It shows the pid namespace of its maker, so it is made once that
//! namespace is the container's. Where the kernel refuses a new procfs (a user
//! namespace without a fully visible /proc, or a pid namespace owned by another user
//! namespace), the caller's /proc is used instead, accepted only if it is the root of
//! a procfs (statfs magic and inode).
//!
//! Every file is opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//! RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS) below that root: no symlink is followed
//! (`self` and `thread-self` are resolved by reading the links of this instance, so
//! the pid is the one this instance shows), no mount is crossed (a file bound over a
//! /proc path is refused with EXDEV), and the opened fd is checked with fstatfs to be
//! on procfs before anything is written.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;

use super::sync::InitError;

/// The inode number of a procfs root (PROC_ROOT_INO).
const PROC_ROOT_INO: u64 = 1;
/// fsconfig(2) command: create the superblock.
const MOUNT_ATTR_NOSUID: u64 = 0x02;
const MOUNT_ATTR_NODEV: u64 = 0x04;
const MOUNT_ATTR_NOEXEC: u64 = 0x08;
/// How files below the root are resolved: beneath it, no symlink, no magic link,
/// no mount crossed.
const RESOLVE: u64 = libc::RESOLVE_BENEATH
    | libc::RESOLVE_NO_SYMLINKS
    | libc::RESOLVE_NO_XDEV
    | libc::RESOLVE_NO_MAGICLINKS;

/// A checked procfs root. Its fd closes on exec; it is held above the preserved fds.
pub struct Procfs {
    root: OwnedFd,
    /// Made with fsmount (true) or the caller's /proc, checked (false).
    private: bool,
}

impl Procfs {
    /// A private procfs for the caller's pid namespace, else the caller's /proc once
    /// checked. `floor`: the lowest fd number the handle may take (3 + preserved fds).
    pub fn new(floor: RawFd) -> Result<Procfs, InitError> {
        let (root, private) = match private_instance() {
            Ok(fd) => (fd, true),
            Err(first) => {
                let fd = open_existing(Path::new("/proc")).map_err(|e| {
                    let mut err = InitError::sys("opening a checked procfs", Some("/proc"), e);
                    err.msg = Some(format!("a private procfs was refused too ({first})"));
                    err
                })?;
                (fd, false)
            }
        };
        let root = super::fs::lift(root, floor)
            .map_err(|e| InitError::sys("moving the procfs handle above preserved fds", None, e))?;
        Ok(Procfs { root, private })
    }

    /// The procfs mounted at `path`, checked to be the root of a procfs.
    pub fn at(path: &Path) -> Result<Procfs, InitError> {
        let root = open_existing(path).map_err(|e| {
            InitError::sys("opening a checked procfs", Some(&path.to_string_lossy()), e)
        })?;
        Ok(Procfs {
            root,
            private: false,
        })
    }

    /// Whether this is a private instance (fsmount) rather than an existing /proc.
    #[cfg(test)]
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Open `rel` (no leading slash, no symlinks: "sys/net/core/somaxconn",
    /// "12/oom_score_adj") below the root, checked to be a procfs file.
    pub fn open(&self, step: &str, rel: &str, flags: i32) -> Result<OwnedFd, InitError> {
        let shown = format!("/proc/{rel}");
        let fail = |e: Errno| {
            let mut err = InitError::sys(step, Some(&shown), e);
            err.msg = why(e).map(str::to_string);
            err
        };
        let fd = match super::fs::openat2(self.root.as_fd(), Path::new(rel), flags, 0, RESOLVE) {
            // openat2 refused by the container's seccomp profile (loaded early when
            // no_new_privs is off; older profiles do not list it) or unknown to the
            // kernel: on a private instance, which nothing else can reach or mount on,
            // a plain openat of a symlink-free path is as safe.
            Err(Errno::EPERM | Errno::ENOSYS) if self.private => nix::fcntl::openat(
                &self.root,
                rel,
                nix::fcntl::OFlag::from_bits_retain(flags)
                    | nix::fcntl::OFlag::O_NOFOLLOW
                    | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(fail)?,
            r => r.map_err(fail)?,
        };
        match fs_magic(fd.as_fd()) {
            Ok(m) if m == libc::PROC_SUPER_MAGIC => Ok(fd),
            Ok(m) => Err(InitError {
                step: step.into(),
                path: Some(shown.clone()),
                errno: None,
                msg: Some(format!(
                    "not a procfs file (filesystem magic {m:#x}); refusing to use it"
                )),
            }),
            Err(e) => Err(fail(e)),
        }
    }

    /// Write `data` to `rel` in one write(2), as procfs files expect.
    pub fn write(&self, step: &str, rel: &str, data: &[u8]) -> Result<(), InitError> {
        let fd = self.open(step, rel, libc::O_WRONLY)?;
        write_once(&fd, data).map_err(|e| InitError::sys(step, Some(&format!("/proc/{rel}")), e))
    }

    /// Read `rel` whole.
    pub fn read(&self, step: &str, rel: &str) -> Result<String, InitError> {
        use std::io::Read;
        let fd = self.open(step, rel, libc::O_RDONLY)?;
        let mut s = String::new();
        std::fs::File::from(fd)
            .read_to_string(&mut s)
            .map_err(|e| InitError::sys(step, Some(&format!("/proc/{rel}")), io_errno(&e)))?;
        Ok(s)
    }

    /// "<pid>": this process's directory as this instance names it (its `self` link).
    pub fn self_dir(&self) -> Result<String, InitError> {
        let t = self.link("self")?;
        if is_number(&t) {
            Ok(t)
        } else {
            Err(bad_link("self", &t))
        }
    }

    /// "<pid>/task/<tid>": this thread's directory (its `thread-self` link).
    pub fn thread_dir(&self) -> Result<String, InitError> {
        let t = self.link("thread-self")?;
        match t.split('/').collect::<Vec<_>>()[..] {
            [p, "task", t2] if is_number(p) && is_number(t2) => Ok(t),
            _ => Err(bad_link("thread-self", &t)),
        }
    }

    /// The target of a symlink in the root, read through an O_PATH handle on the link
    /// itself (opened without crossing a mount).
    fn link(&self, name: &str) -> Result<String, InitError> {
        let step = "resolving a procfs link";
        let shown = format!("/proc/{name}");
        let flags = libc::O_PATH | libc::O_NOFOLLOW;
        let fd = super::fs::openat2(self.root.as_fd(), Path::new(name), flags, 0, RESOLVE)
            .map_err(|e| InitError::sys(step, Some(&shown), e))?;
        let mut buf = [0u8; 64];
        let empty = CString::default();
        // SAFETY: readlinkat writes at most buf.len() bytes into buf; "" with an O_PATH
        // fd of a symlink reads that link.
        let n = unsafe {
            libc::readlinkat(
                fd.as_raw_fd(),
                empty.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        let n = Errno::result(n).map_err(|e| InitError::sys(step, Some(&shown), e))?;
        Ok(String::from_utf8_lossy(&buf[..n as usize]).into_owned())
    }
}

impl AsFd for Procfs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }
}

/// A container process's checked procfs and its thread's directory ("<pid>/task/<tid>"),
/// made only when this start will touch /proc: most starts write nothing there, and a
/// private instance costs ~50 µs. Made early, in the process's pid namespace and before
/// any seccomp filter could deny fsopen.
pub struct ProcAccess(Option<(Procfs, String)>);

impl ProcAccess {
    pub fn new(needed: bool, floor: RawFd) -> Result<ProcAccess, InitError> {
        if !needed {
            return Ok(ProcAccess(None));
        }
        let procfs = Procfs::new(floor)?;
        let thread = procfs.thread_dir()?;
        Ok(ProcAccess(Some((procfs, thread))))
    }

    /// The procfs and the thread directory; an error naming `step` if the start was
    /// judged not to need them (a bug, never a config problem).
    pub fn get(&self, step: &str) -> Result<(&Procfs, &str), InitError> {
        match &self.0 {
            Some((p, t)) => Ok((p, t)),
            None => Err(InitError::msg(step, "internal: no procfs handle was made")),
        }
    }
}

/// One write(2) of all of `data` (procfs files take a value in one write), retried on
/// EINTR; a short write is EIO.
pub fn write_once(fd: &OwnedFd, data: &[u8]) -> nix::Result<()> {
    loop {
        match nix::unistd::write(fd, data) {
            Ok(n) if n == data.len() => return Ok(()),
            Ok(_) => return Err(Errno::EIO),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// What an openat2 refusal means here, for the error message.
fn why(e: Errno) -> Option<&'static str> {
    match e {
        Errno::EXDEV => Some("a mount covers this /proc path; refusing to go through it"),
        Errno::ELOOP => Some("a symlink in this /proc path; refusing to follow it"),
        _ => None,
    }
}

fn bad_link(name: &str, target: &str) -> InitError {
    InitError::msg(
        "resolving a procfs link",
        format!("/proc/{name} points at {target:?}, not a process of this procfs"),
    )
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// A new procfs superblock, mounted nowhere: fsopen, fsconfig(CREATE), fsmount.
fn private_instance() -> nix::Result<OwnedFd> {
    let root = super::fs::new_fs(&super::fs::NewFs {
        typ: "proc",
        source: None,
        params: &[],
        sb_flags: &[],
        attr: MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
    })?;
    check_root(root.as_fd())?;
    Ok(root)
}

/// An existing procfs mount, accepted only if `path` is the root of a procfs.
fn open_existing(path: &Path) -> nix::Result<OwnedFd> {
    let flags = nix::fcntl::OFlag::O_PATH
        | nix::fcntl::OFlag::O_DIRECTORY
        | nix::fcntl::OFlag::O_NOFOLLOW
        | nix::fcntl::OFlag::O_CLOEXEC;
    let fd = nix::fcntl::open(path, flags, nix::sys::stat::Mode::empty())?;
    check_root(fd.as_fd())?;
    Ok(fd)
}

/// `fd` must be the root directory of a procfs: a bind of a procfs subdirectory, or
/// any other filesystem, is refused (EXDEV).
fn check_root(fd: BorrowedFd) -> nix::Result<()> {
    let st = nix::sys::stat::fstat(fd)?;
    if fs_magic(fd)? != libc::PROC_SUPER_MAGIC || st.st_ino != PROC_ROOT_INO {
        return Err(Errno::EXDEV);
    }
    Ok(())
}

fn fs_magic(fd: BorrowedFd) -> nix::Result<libc::c_long> {
    // SAFETY: statfs is plain data; fstatfs fills it in.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `s` is a valid statfs buffer for the duration of the call.
    Errno::result(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut s) })?;
    Ok(s.f_type)
}

#[cfg(test)]
#[path = "procfs_tests.rs"]
mod tests;
