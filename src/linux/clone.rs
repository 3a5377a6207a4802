//! fork-like clone: the child continues on a copy of the caller's stack, in the
//! namespaces the flags ask for. nook is single-threaded when it calls this (no
//! async runtime, no logging thread), so the child is a consistent copy.

use nix::errno::Errno;
use nix::sched::CloneFlags;

/// Where the caller continues after `fork_with`.
pub enum Forked {
    Parent(i32),
    Child,
}

/// clone(2) with a null stack, like fork(2) but with namespace flags.
///
/// # Safety
/// The process must be single-threaded, and the child must never return into code
/// that assumes it is the parent: it runs to `execve` or `_exit`.
pub unsafe fn fork_with(flags: CloneFlags) -> nix::Result<Forked> {
    let sig = if flags.contains(CloneFlags::CLONE_PARENT) {
        0
    } else {
        libc::SIGCHLD
    };
    // SAFETY: per this function's contract; a null stack makes clone behave like fork.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags.bits() as libc::c_ulong | sig as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match Errno::result(r)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}
