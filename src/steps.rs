//! Per-step timing of a start, for `make bench`'s breakdown (issue 15).
//!
//! With `NOOK_STEP_TIMES=FILE` in its environment, nook appends one line per step it
//! passes to FILE: `RUN ROLE STEP NS`, where RUN is the pid of the nook command (the same
//! across its re-exec and in its children), ROLE `nook` for the command itself and
//! `child` for a process it forked (the container's init, an exec's process), STEP the
//! name of the fault point there (`create.cloned`, `init.root`, ...; see `fault`) and NS
//! CLOCK_MONOTONIC in nanoseconds. The steps are the fault points, so the breakdown and
//! the fault-injection walk name the same places.
//!
//! Without the variable a step costs one relaxed atomic load (after a first lookup of
//! the variable). The file is opened once per process image, moved to a high fd number
//! (close-on-exec, so neither the app nor a hook inherits it) and written with one
//! write(2) per line (O_APPEND: lines of concurrent runs do not interleave). A child
//! writes through the fd it inherited, so its lines get out after pivot_root too.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The variable that turns the timing on.
pub const VAR: &str = "NOOK_STEP_TIMES";
/// Where the fd is moved (above any fd a caller plausibly preserves).
const FD_FLOOR: i32 = 900;

/// -2: not looked up yet; -1: off; else the fd.
static FD: AtomicI32 = AtomicI32::new(-2);
static RUN: AtomicI32 = AtomicI32::new(0);
static CHILD: AtomicBool = AtomicBool::new(false);

/// Record that this process reached `step`.
#[inline]
pub fn mark(step: &str) {
    let mut fd = FD.load(Ordering::Relaxed);
    if fd == -2 {
        fd = open();
        FD.store(fd, Ordering::Relaxed);
    }
    if fd >= 0 {
        write(fd, step);
    }
}

/// In a process nook forked: its lines say `child`.
pub fn forked() {
    CHILD.store(true, Ordering::Relaxed);
}

#[cold]
fn open() -> i32 {
    let Some(path) = std::env::var_os(VAR).filter(|p| !p.is_empty()) else {
        return -1;
    };
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_bytes()) else {
        return -1;
    };
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC;
    // SAFETY: a valid C string; the fds are ours.
    unsafe {
        let fd = libc::open(c.as_ptr(), flags, 0o600);
        if fd < 0 {
            return -1;
        }
        let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, FD_FLOOR);
        libc::close(fd);
        // The pid the command was started with (execve keeps it across the re-exec; a
        // child inherits the value).
        RUN.store(libc::getpid(), Ordering::Relaxed);
        high.max(-1)
    }
}

#[cold]
fn write(fd: i32, step: &str) {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    let role = if CHILD.load(Ordering::Relaxed) {
        "child"
    } else {
        "nook"
    };
    let line = format!("{} {role} {step} {ns}\n", RUN.load(Ordering::Relaxed));
    // SAFETY: writing a buffer we own to our fd. A short or failed write loses a line
    // of timing, nothing else.
    unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
}
