//! The user process's own attributes: rlimits, user and groups, environment,
//! the program lookup, fd hygiene and the final execve.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType, User};

use super::sync::InitError;

fn resource(t: PosixRlimitType) -> (libc::__rlimit_resource_t, &'static str) {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => (libc::RLIMIT_CPU, "RLIMIT_CPU"),
        RlimitFsize => (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        RlimitData => (libc::RLIMIT_DATA, "RLIMIT_DATA"),
        RlimitStack => (libc::RLIMIT_STACK, "RLIMIT_STACK"),
        RlimitCore => (libc::RLIMIT_CORE, "RLIMIT_CORE"),
        RlimitRss => (libc::RLIMIT_RSS, "RLIMIT_RSS"),
        RlimitNproc => (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
        RlimitNofile => (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        RlimitMemlock => (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        RlimitAs => (libc::RLIMIT_AS, "RLIMIT_AS"),
        RlimitLocks => (libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        RlimitSigpending => (libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        RlimitMsgqueue => (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        RlimitNice => (libc::RLIMIT_NICE, "RLIMIT_NICE"),
        RlimitRtprio => (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        RlimitRttime => (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

pub fn set_rlimits(limits: &[PosixRlimit]) -> Result<(), InitError> {
    for l in limits {
        let (res, name) = resource(l.typ());
        let lim = libc::rlimit {
            rlim_cur: l.soft(),
            rlim_max: l.hard(),
        };
        // SAFETY: setrlimit reads one valid rlimit struct.
        let r = unsafe { libc::setrlimit(res, &lim) };
        if let Err(e) = nix::errno::Errno::result(r) {
            let mut err = InitError::sys(
                format!(
                    "setting process.rlimits {name} to soft {} hard {}",
                    l.soft(),
                    l.hard()
                ),
                None,
                e,
            );
            if e == nix::Error::EPERM {
                err.msg = Some("raising a hard limit needs CAP_SYS_RESOURCE".into());
            }
            return Err(err);
        }
    }
    Ok(())
}

/// Whether setgroups(2) is allowed here: /proc/<pid>/setgroups, read through the
/// checked `procfs` (a file mounted over it inside the container cannot answer for it).
/// Read before a seccomp filter is loaded: the container's profile may deny the lookup.
pub fn setgroups_allowed(procfs: &super::procfs::Procfs) -> Result<bool, InitError> {
    let me = procfs.self_dir()?;
    Ok(procfs
        .read("reading setgroups", &format!("{me}/setgroups"))
        .map_or(true, |s| s.trim() != "deny"))
}

/// Groups, gid, then uid; capabilities survive the uid change (PR_SET_KEEPCAPS) so
/// they can be set to exactly the configured sets afterwards.
pub fn set_user(user: &User, setgroups_allowed: bool) -> Result<(), InitError> {
    let gids: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw(*g))
        .collect();
    if setgroups_allowed {
        nix::unistd::setgroups(&gids)
            .map_err(|e| InitError::sys("setting process.user.additionalGids", None, e))?;
    } else if !gids.is_empty() {
        return Err(InitError::msg(
            "setting process.user.additionalGids",
            "setgroups is denied in this user namespace",
        ));
    }
    let gid = Gid::from_raw(user.gid());
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| InitError::sys(format!("setting process.user.gid {gid}"), None, e))?;
    nix::sys::prctl::set_keepcaps(true)
        .map_err(|e| InitError::sys("prctl(PR_SET_KEEPCAPS)", None, e))?;
    let uid = Uid::from_raw(user.uid());
    nix::unistd::setresuid(uid, uid, uid)
        .map_err(|e| InitError::sys(format!("setting process.user.uid {uid}"), None, e))?;
    nix::sys::prctl::set_keepcaps(false)
        .map_err(|e| InitError::sys("prctl(PR_SET_KEEPCAPS)", None, e))?;
    Ok(())
}

/// The process environment; HOME is added from the container's /etc/passwd (or "/")
/// when the config does not set it, as runc does.
pub fn environment(env: &[String], uid: u32) -> Vec<String> {
    let mut out = env.to_vec();
    if !out.iter().any(|e| e.starts_with("HOME=")) {
        let home = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| home_of(&p, uid))
            .unwrap_or_else(|| "/".into());
        out.push(format!("HOME={home}"));
    }
    out
}

fn home_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
    })
}

/// "no such file or directory", as Go words an errno (without Rust's "(os error 2)").
fn errno_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    s.to_lowercase()
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Find the program inside the container, with runc's wording on failure (docker
/// maps "executable file not found in $PATH" to exit code 127).
pub fn lookup(arg0: &str, env: &[String]) -> Result<PathBuf, InitError> {
    let fail = |m: String| InitError::msg("unable to start container process", m);
    if arg0.contains('/') {
        return match std::fs::metadata(arg0) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(arg0.into()),
            Ok(m) if m.is_dir() => Err(fail(format!("exec: \"{arg0}\": is a directory"))),
            Ok(_) => Err(fail(format!("exec: \"{arg0}\": permission denied"))),
            Err(e) => Err(fail(format!(
                "exec: \"{arg0}\": stat {arg0}: {}",
                errno_text(&e)
            ))),
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        if let Ok(m) = std::fs::metadata(&cand) {
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(fail(format!(
        "exec: \"{arg0}\": executable file not found in $PATH"
    )))
}

/// Mark every fd from `first` up close-on-exec: only stdio and preserved fds reach the app.
pub fn close_fds_from(first: u32) -> Result<(), InitError> {
    // SAFETY: close_range only changes fd flags; no memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    nix::errno::Errno::result(r)
        .map(drop)
        .map_err(|e| InitError::sys("marking inherited fds close-on-exec", None, e))
}

/// Clear close-on-exec on the preserved fds 3..3+n.
pub fn keep_fds(n: u32) -> Result<(), InitError> {
    for fd in 3..3 + n as i32 {
        // SAFETY: F_SETFD on an int fd touches no memory; a closed fd gives EBADF.
        let r = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        match nix::errno::Errno::result(r) {
            Ok(_) | Err(nix::Error::EBADF) => {}
            Err(e) => return Err(InitError::sys(format!("preserving fd {fd}"), None, e)),
        }
    }
    Ok(())
}

/// Exec the program; returns only on failure.
pub fn exec(path: &Path, args: &[String], env: &[String]) -> InitError {
    let cstr = |s: &str| CString::new(s).unwrap_or_default();
    let p = CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default();
    let argv: Vec<CString> = args.iter().map(|a| cstr(a)).collect();
    let envp: Vec<CString> = env.iter().map(|e| cstr(e)).collect();
    let e = nix::unistd::execve(&p, &argv, &envp).unwrap_err();
    exec_failed(&path.to_string_lossy(), e as i32)
}

/// A failed execve of the process, in runc's words (also for the exec trampoline's
/// report).
pub fn exec_failed(path: &str, errno: i32) -> InitError {
    InitError::msg(
        "unable to start container process",
        format!(
            "exec {path}: {}",
            errno_text(&std::io::Error::from_raw_os_error(errno))
        ),
    )
}

/// The program starts with no blocked signals and default dispositions (nook blocks
/// signals to forward them, and Rust ignores SIGPIPE). Used by `exec`.
pub fn reset_signals() {
    use nix::sys::signal::{self, SigHandler, SigSet, SigmaskHow, Signal};
    let _ = signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for s in Signal::iterator() {
        if s != Signal::SIGKILL && s != Signal::SIGSTOP {
            // SAFETY: restoring the default disposition installs no handler code.
            let _ = unsafe { signal::signal(s, SigHandler::SigDfl) };
        }
    }
}

/// Hold every preserved fd number (3 .. 3+n) that is not open with /dev/null, so
/// nothing nook opens (the state dir's lock, a namespace fd) can land on it and be
/// passed to the process. Returns the placeholders; the child closes them.
pub fn reserve_fds(n: u32) -> crate::error::Result<Vec<i32>> {
    use crate::error::SysContext;
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    use std::os::fd::{AsRawFd, IntoRawFd};
    let mut held = vec![];
    for fd in 3..3 + n as i32 {
        // SAFETY: F_GETFD on an int fd touches no memory; a closed fd gives EBADF.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1 {
            continue;
        }
        let null = nix::fcntl::open("/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
            .sys("opening /dev/null")?;
        // Every lower number is open, so this is normally `fd` already.
        if null.as_raw_fd() != fd {
            // SAFETY: dup3 onto a number that is free (checked above); nothing owns it yet.
            let r = unsafe { libc::dup3(null.as_raw_fd(), fd, libc::O_CLOEXEC) };
            nix::errno::Errno::result(r).sys("holding a preserved fd number")?;
        } else {
            // Kept open for the life of nook; the child closes it before the exec.
            let _ = null.into_raw_fd();
        }
        held.push(fd);
    }
    Ok(held)
}

/// Close the placeholders `reserve_fds` made (in the child, before the exec).
pub fn close_placeholders(fds: &[i32]) {
    for fd in fds {
        // SAFETY: closing an fd number this process owns (a /dev/null placeholder).
        unsafe { libc::close(*fd) };
    }
}

/// chdir to process.cwd, resolved inside the container's root (we are past
/// pivot_root or setns into its mount namespace): openat2 with RESOLVE_IN_ROOT and
/// RESOLVE_NO_MAGICLINKS, so a cwd like /proc/self/fd/N cannot make one of nook's own
/// fds (still open until the exec) the process's working directory (CVE-2024-21626).
pub fn enter_cwd(cwd: &Path) -> nix::Result<()> {
    use std::os::fd::AsFd;
    let root = nix::fcntl::open(
        "/",
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let dir =
        crate::linux::fs::open_in_root(root.as_fd(), cwd, libc::O_PATH | libc::O_DIRECTORY, 0)?;
    nix::unistd::fchdir(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_lookup() {
        let p = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/srv/app:/bin/sh\n";
        assert_eq!(home_of(p, 1000).as_deref(), Some("/srv/app"));
        assert_eq!(home_of(p, 5), None);
    }

    #[test]
    fn missing_program_uses_runc_wording() {
        let e = lookup("no-such-prog-nook", &["PATH=/bin:/usr/bin".into()]).unwrap_err();
        assert!(e
            .to_string()
            .contains("exec: \"no-such-prog-nook\": executable file not found in $PATH"));
        assert_eq!(
            lookup("sh", &["PATH=/bin".into()]).unwrap(),
            Path::new("/bin/sh")
        );
    }
}
