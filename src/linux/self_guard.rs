//! Protecting the nook process itself before it makes or enters a container.
//!
//! CVE-2016-9962 class: a process nook forks into a container's pid namespace must not
//! be ptrace-able or have its /proc files opened by the container before it has
//! dropped what it holds (host fds, capabilities). `protect` makes nook non-dumpable,
//! so every child is born non-dumpable (fork copies the flag) rather than making
//! itself so a few instructions after it became visible in the container.
//!
//! CVE-2019-5736 class: a process that nook starts inside a container begins as a
//! fork of nook, so its /proc/PID/exe is the nook binary. If the container makes that
//! process execve `/proc/self/exe` (a `#!/proc/self/exe` script, or an ELF whose
//! interpreter is that path), nook itself runs inside the container, and the container
//! can hold /proc/PID/exe open and, once it exits, reopen it for writing: the host's
//! runtime binary would be overwritten.
//!
//! The defence: before nook makes or enters a container, it runs from a read-only view
//! of its own binary. It takes a private, detached clone of the mount holding the
//! binary (open_tree), marks that clone read-only (mount_setattr) and re-executes
//! itself through it (execveat). The detached mount is in no mount namespace, so
//! nothing can make it writable again without CAP_SYS_ADMIN, and a reopen through
//! /proc/PID/exe fails with EROFS. Where open_tree is not allowed (no CAP_SYS_ADMIN),
//! nook copies itself into a sealed memfd instead, as a fallback.
//!
//! Nothing is done when the binary already sits on a read-only mount or is a sealed
//! memfd: installing nook on a read-only filesystem makes the re-exec (about one
//! fork-less execve, ~0.3 ms) unnecessary.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;

/// Set across the re-exec, so a view that is still writable ends in an error, not a loop.
const GUARD_VAR: &str = "_NOOK_SEALED_EXE";

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("protecting nook from the container (CVE-2019-5736, CVE-2016-9962): {step}: {source}")]
    Sys { step: &'static str, source: Errno },
    #[error("protecting the nook binary against overwrite from a container (CVE-2019-5736): re-executed nook still runs from a writable binary")]
    StillWritable,
}

fn sys(step: &'static str) -> impl FnOnce(Errno) -> SealError {
    move |source| SealError::Sys { step, source }
}

/// Both protections; may re-execute nook (same argv and environment).
pub fn protect() -> Result<(), SealError> {
    protect_deferred()?;
    settle(|| None).map(drop)
}

/// Set by `protect_deferred` when the binary is writable and the choice between the
/// re-exec and the trampoline waits for the config (`settle`).
static DEFERRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For a foreground `run`: nook is made non-dumpable now, but a writable binary is not
/// re-executed yet. Once the config is read, `settle` decides: the exec trampoline
/// (linux::trampoline) where it protects the start, the re-exec otherwise.
pub fn protect_deferred() -> Result<(), SealError> {
    let again = std::env::var_os(GUARD_VAR).is_some();
    let sealed = is_sealed(&open_self()?)?;
    if again {
        if !sealed {
            return Err(SealError::StillWritable);
        }
        std::env::remove_var(GUARD_VAR);
    }
    DEFERRED.store(!sealed, std::sync::atomic::Ordering::Relaxed);
    nix::sys::prctl::set_dumpable(false).map_err(sys("prctl(PR_SET_DUMPABLE)"))
}

/// After `protect_deferred`, with the config known: the exec trampoline the container's
/// init must exec its process through, when nook runs from a writable binary and
/// `trampoline` can make one for this start (linux::trampoline). When it cannot, nook
/// re-executes itself from a read-only view now (same argv and environment), as
/// `protect` does, and this returns only if that fails. None when nook already runs
/// from a binary the container cannot write.
pub fn settle(trampoline: impl FnOnce() -> Option<OwnedFd>) -> Result<Option<OwnedFd>, SealError> {
    if !DEFERRED.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(None);
    }
    if let Some(fd) = trampoline() {
        return Ok(Some(fd));
    }
    Err(reexec_from_view())
}

/// Re-execute nook (same argv and environment) from a view of its binary the container
/// cannot write; returns only on failure. The guard variable makes a view that is still
/// writable an error in the new image (`protect_deferred`), not a loop.
fn reexec_from_view() -> SealError {
    let exe = match open_self() {
        Ok(exe) => exe,
        Err(e) => return e,
    };
    let view = match read_only_clone(&exe) {
        Ok(fd) => fd,
        Err(Errno::EPERM) | Err(Errno::ENOSYS) | Err(Errno::EINVAL) => match sealed_copy(&exe) {
            Ok(fd) => fd,
            Err(e) => return e,
        },
        Err(e) => return sys("open_tree(OPEN_TREE_CLONE) of /proc/self/exe")(e),
    };
    std::env::set_var(GUARD_VAR, "1");
    reexec(&view)
}

fn open_self() -> Result<OwnedFd, SealError> {
    nix::fcntl::open(
        "/proc/self/exe",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("opening /proc/self/exe"))
}

/// On a read-only mount, or a memfd sealed against writes.
fn is_sealed(exe: &OwnedFd) -> Result<bool, SealError> {
    let st = nix::sys::statfs::fstatfs(exe).map_err(sys("statfs of /proc/self/exe"))?;
    if st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Ok(true);
    }
    // Only a memfd (on the kernel's tmpfs) can carry seals: anything else is writable,
    // with no second open on every start.
    if st.filesystem_type() != nix::sys::statfs::TMPFS_MAGIC {
        return Ok(false);
    }
    // F_GET_SEALS fails (EBADF) on an O_PATH fd: ask a real open of the same file.
    let file = nix::fcntl::open(
        format!("/proc/self/fd/{}", exe.as_raw_fd()).as_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("opening /proc/self/exe to read its seals"))?;
    // SAFETY: plain fcntl on an fd we own; F_GET_SEALS fails (EINVAL) for non-memfds.
    let seals = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GET_SEALS) };
    Ok(seals >= 0 && seals & libc::F_SEAL_WRITE != 0)
}

/// A detached, read-only clone of the mount of our own binary, opened at the binary.
fn read_only_clone(exe: &OwnedFd) -> Result<OwnedFd, Errno> {
    use super::fs;
    let tree = fs::clone_tree(exe.as_fd(), false)?;
    let attr = fs::MountAttr {
        attr_set: fs::MOUNT_ATTR_RDONLY | fs::MOUNT_ATTR_NOSUID | fs::MOUNT_ATTR_NODEV,
        ..Default::default()
    };
    fs::set_attr(tree.as_fd(), &attr, false)?;
    Ok(tree)
}

/// Fallback: a copy of the binary in a memfd, sealed against any change.
fn sealed_copy(exe: &OwnedFd) -> Result<OwnedFd, SealError> {
    let src = nix::fcntl::open(
        format!("/proc/self/fd/{}", exe.as_raw_fd()).as_str(),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys("opening the nook binary for a sealed copy"))?;
    sealed_memfd(c"nook", |mem| loop {
        // SAFETY: sendfile between two fds we own, no offset pointer.
        let n = unsafe { libc::sendfile(mem, src.as_raw_fd(), std::ptr::null_mut(), 1 << 20) };
        match Errno::result(n) {
            Ok(0) => return Ok(()),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    })
    .map_err(|(step, e)| sys(step)(e))
}

/// An executable memfd (close-on-exec) that `fill` writes, then sealed against any
/// change. Also what the exec trampoline runs from (linux::trampoline). Errors name the
/// step.
pub(crate) fn sealed_memfd(
    name: &CStr,
    fill: impl FnOnce(i32) -> Result<(), Errno>,
) -> Result<OwnedFd, (&'static str, Errno)> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create with a valid name; returns a new fd or -1. MFD_EXEC is
    // unknown before Linux 6.3 (EINVAL): then try without it. Where vm.memfd_noexec
    // forbids executable memfds it fails with EACCES, and so does this.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if fd < 0 && Errno::last() == Errno::EINVAL {
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    let fd = Errno::result(fd).map_err(|e| ("memfd_create for a sealed executable", e))?;
    // SAFETY: memfd_create returned a new fd we own.
    let mem = unsafe { OwnedFd::from_raw_fd(fd) };
    fill(mem.as_raw_fd()).map_err(|e| ("writing the sealed executable", e))?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: adding seals to a memfd we own.
    let r = unsafe { libc::fcntl(mem.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    Errno::result(r).map_err(|e| ("sealing the memfd", e))?;
    Ok(mem)
}

/// execveat(view, "", argv, environ, AT_EMPTY_PATH); returns only on failure.
fn reexec(view: &OwnedFd) -> SealError {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let envs: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).unwrap_or_default()
        })
        .collect();
    let empty: &CStr = c"";
    match nix::unistd::execveat(
        view,
        empty,
        &args,
        &envs,
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    ) {
        Ok(never) => match never {},
        Err(e) => SealError::Sys {
            step: "re-executing nook from its read-only view",
            source: e,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fallback copy (used without CAP_SYS_ADMIN) is the whole binary, sealed
    /// against writes, and counts as sealed for the check after the re-exec.
    #[test]
    fn sealed_copy_is_the_binary_and_cannot_be_written() {
        let exe = open_self().unwrap();
        let mem = sealed_copy(&exe).unwrap();
        // SAFETY: fcntl on an fd we own.
        let seals = unsafe { libc::fcntl(mem.as_raw_fd(), libc::F_GET_SEALS) };
        assert!(seals & libc::F_SEAL_WRITE != 0, "seals {seals:#x}");
        assert!(is_sealed(&mem).unwrap());
        // After the re-exec, the check sees the memfd through an O_PATH open of
        // /proc/self/exe, on which F_GET_SEALS itself fails: it must still say sealed.
        let path = nix::fcntl::open(
            format!("/proc/self/fd/{}", mem.as_raw_fd()).as_str(),
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        assert!(
            is_sealed(&path).unwrap(),
            "an O_PATH fd of the sealed memfd"
        );
        let copy = std::fs::read(format!("/proc/self/fd/{}", mem.as_raw_fd())).unwrap();
        assert!(copy == std::fs::read("/proc/self/exe").unwrap());
        // Opening for writing works on a memfd; every write is refused.
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", mem.as_raw_fd()))
            .unwrap();
        let e = w.write(b"PWNED").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    }

    /// The read-only clone (root only: open_tree needs CAP_SYS_ADMIN) counts as sealed
    /// and refuses a reopen for writing with EROFS. Made of a copy of the test binary
    /// that is not running (a running one answers ETXTBSY first).
    #[test]
    fn read_only_clone_refuses_writes() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root");
            return;
        }
        let copy = std::env::temp_dir().join(format!("self-guard-{}", std::process::id()));
        std::fs::copy("/proc/self/exe", &copy).unwrap();
        let file = nix::fcntl::open(
            &copy,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        let was_sealed = is_sealed(&file).unwrap();
        let view = read_only_clone(&file).unwrap();
        let now_sealed = is_sealed(&view).unwrap();
        let e = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", view.as_raw_fd()))
            .unwrap_err();
        std::fs::remove_file(&copy).unwrap();
        assert!(!was_sealed && now_sealed);
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    }
}
