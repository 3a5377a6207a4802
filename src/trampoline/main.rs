//! nook's exec trampoline: a libc-free static program the container's init execs (from
//! a sealed memfd) in place of the app, so that the app is exec'd by a process whose
//! /proc/self/exe is not the nook binary on the host (CVE-2019-5736; see
//! linux::self_guard and linux::trampoline). Built by build.rs with rustc alone and
//! embedded in nook; it is never installed as a file.
//!
//! argv: [REPORT, FD, PATH, ARGV0, ARGV1, ...]; the environment is the app's.
//! It marks FD (the init's channel to nook) close-on-exec and execs PATH with
//! ARGV0.. and the environment. When that fails it sends one packet on FD: REPORT
//! followed by the errno in decimal and `]}` (nook made REPORT, a JSON prefix), and
//! exits 127. Run any other way (a `#!/proc/self/exe` script in the container runs it
//! again), a malformed argv makes it exit 127 having done nothing.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const WRITEV: usize = 20;
    pub const FCNTL: usize = 72;
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const WRITEV: usize = 66;
    pub const FCNTL: usize = 25;
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;
}

// The kernel enters at _start with the stack pointer at argc; argv and envp follow.
#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov x0, sp",
    "bl {entry}",
    "brk #0",
    entry = sym entry,
);

#[cfg(target_arch = "x86_64")]
unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for syscall n.
    unsafe {
        asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b,
             in("rdx") c, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

#[cfg(target_arch = "aarch64")]
unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller passes arguments valid for syscall n.
    unsafe {
        asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret, in("x1") b,
             in("x2") c, options(nostack));
    }
    ret
}

fn exit(code: usize) -> ! {
    // SAFETY: exit_group takes a plain integer and does not return.
    unsafe { syscall3(nr::EXIT_GROUP, code, 0, 0) };
    loop {}
}

/// A NUL-terminated string's length.
unsafe fn len(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the kernel NUL-terminates every argv string. A volatile read, so the
    // loop is not turned into a call of libc's strlen, which is not linked.
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}

/// A small decimal fd number, or None.
unsafe fn fd_number(s: *const u8) -> Option<usize> {
    let mut v = 0usize;
    let mut i = 0;
    loop {
        // SAFETY: as len().
        let c = unsafe { *s.add(i) };
        match c {
            0 if i > 0 => return Some(v),
            b'0'..=b'9' if i < 6 => v = v * 10 + (c - b'0') as usize,
            _ => return None,
        }
        i += 1;
    }
}

#[repr(C)]
struct IoVec {
    base: *const u8,
    len: usize,
}

unsafe extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: the layout the kernel gives a new program: argc, argv[argc], NULL, envp.
    let argc = unsafe { *sp };
    let argv = unsafe { sp.add(1) } as *const *const u8;
    let envp = unsafe { argv.add(argc + 1) };
    if argc < 4 {
        exit(127);
    }
    let (report, path) = unsafe { (*argv, *argv.add(2)) };
    let Some(fd) = (unsafe { fd_number(*argv.add(1)) }) else {
        exit(127)
    };
    const F_SETFD: usize = 2;
    const FD_CLOEXEC: usize = 1;
    // SAFETY: fcntl and execve with pointers the kernel gave us.
    let mut ret = unsafe { syscall3(nr::FCNTL, fd, F_SETFD, FD_CLOEXEC) };
    if ret >= 0 {
        ret = unsafe {
            syscall3(
                nr::EXECVE,
                path as usize,
                argv.add(3) as usize,
                envp as usize,
            )
        };
    }
    // Only a failure gets here: send REPORT, the errno and the closing `]}`.
    let mut digits = [0u8; 8];
    let mut at = digits.len();
    let mut errno = (-ret) as usize;
    loop {
        at -= 1;
        digits[at] = b'0' + (errno % 10) as u8;
        errno /= 10;
        if errno == 0 || at == 0 {
            break;
        }
    }
    let iov = [
        IoVec {
            base: report,
            len: unsafe { len(report) },
        },
        IoVec {
            base: unsafe { digits.as_ptr().add(at) },
            len: digits.len() - at,
        },
        IoVec {
            base: b"]}".as_ptr(),
            len: 2,
        },
    ];
    // SAFETY: three valid buffers; one writev is one packet on the seqpacket socket.
    unsafe { syscall3(nr::WRITEV, fd, iov.as_ptr() as usize, iov.len()) };
    exit(127)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    exit(127)
}
