//! fork-like clone: the child continues on a copy of the caller's stack, in the
//! namespaces the flags ask for. nook is single-threaded when it calls this (no
//! async runtime, no logging thread), so the child is a consistent copy.

use std::os::fd::AsRawFd;

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

/// clone3 with CLONE_INTO_CGROUP: like `fork_with`, but the child starts life in the
/// cgroup v2 directory `cgroup` (no attach afterwards, so no wait for the attach lock).
///
/// # Safety
/// As `fork_with`.
unsafe fn fork_into_cgroup(flags: CloneFlags, cgroup: &impl AsRawFd) -> nix::Result<Forked> {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let mut args = CloneArgs {
        flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        cgroup: cgroup.as_raw_fd() as u64,
    };
    // SAFETY: per this function's contract; `args` is a valid clone_args (version 2
    // layout) and a zero stack makes the child continue on a copy of ours, like fork.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(r)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// How a container process is forked by `fork_placed`.
pub struct Placed {
    pub forked: nix::Result<Forked>,
    /// The child was born in the v2 cgroup given (clone3 with CLONE_INTO_CGROUP): that
    /// one needs no attach.
    pub born_in_v2: bool,
}

/// Fork a container process: into the v2 cgroup `into` when given (kernels without
/// clone3, or refusing the cgroup, get a plain clone and the caller attaches), on this
/// CPU with nook moving off it (`handoff`, pinned by the caller: the child restores it).
///
/// # Safety
/// As `fork_with`.
pub unsafe fn fork_placed(
    flags: CloneFlags,
    into: Option<&impl AsRawFd>,
    handoff: Option<&super::handoff::Handoff>,
) -> Placed {
    let forked = match into {
        // SAFETY: per this function's contract.
        Some(fd) => unsafe { fork_into_cgroup(flags, fd) },
        // SAFETY: as above.
        None => unsafe { fork_with(flags) },
    };
    let born_in_v2 = into.is_some() && forked.is_ok();
    let forked = match forked {
        // SAFETY: as above.
        Err(_) if into.is_some() => unsafe { fork_with(flags) },
        r => r,
    };
    if !matches!(forked, Ok(Forked::Child)) {
        if let Some(h) = handoff {
            h.parent();
        }
    }
    Placed { forked, born_in_v2 }
}
