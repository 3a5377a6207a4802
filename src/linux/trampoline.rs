//! The exec trampoline: how a foreground `run` keeps nook's binary out of the
//! container without re-executing nook (CVE-2019-5736; see linux::self_guard).
//!
//! The danger is the app's execve: a `#!/proc/self/exe` entrypoint makes the kernel
//! resolve /proc/self/exe in the exec'ing process, and the init is a fork of nook, so
//! nook's writable binary would run inside the container. The re-exec guard makes that
//! binary a read-only view, at the cost of a second exec and start of nook (~0.5 ms).
//! Here instead the init execs a 1.5 KB libc-free program (src/trampoline/main.rs,
//! built by build.rs) from a sealed memfd, and that program execs the app: whatever the
//! app's execve resolves /proc/self/exe to is the sealed trampoline, never nook.
//!
//! Until that exec the init is still a nook image, non-dumpable, inside the container's
//! pid namespace. That is safe only where no container process can exist yet to open
//! its /proc/PID/exe: a new pid namespace, and no exec gate (a created container
//! waiting for `start` can be entered by `exec`). `fits` says when; every other start
//! keeps the re-exec. The trampoline also runs under the container's seccomp filter,
//! capabilities and identity, which it leaves unchanged (an exec without file
//! capabilities or set-id bits changes none of them), so the filter must let its few
//! syscalls through, and an LSM exec label would be taken by its exec instead of the
//! app's: such starts keep the re-exec too.

use std::ffi::CString;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sched::CloneFlags;

use super::sync::InitError;

/// The program, as build.rs made it; empty on targets it has no entry code for.
const PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/trampoline"));

/// The syscalls the trampoline makes after the filter is loaded, nook's exec of it first.
const SYSCALLS: [&str; 5] = ["execveat", "fcntl", "execve", "writev", "exit_group"];

/// Whether the trampoline can protect this start in place of the re-exec (see the
/// module comment): a foreground `run` (no exec gate) in a new pid namespace, without
/// an LSM exec label, under no filter or one that always allows the trampoline's calls.
pub fn fits(spec: &oci_spec::runtime::Spec, plan: &super::namespaces::Plan, gate: bool) -> bool {
    let Some(proc) = spec.process() else {
        return false;
    };
    let new_pidns = plan.new.contains(CloneFlags::CLONE_NEWPID);
    let label = proc
        .apparmor_profile()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
        || proc
            .selinux_label()
            .as_deref()
            .is_some_and(|l| !l.is_empty());
    let filter_allows = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .is_none_or(|s| SYSCALLS.iter().all(|c| super::seccomp::always_allows(s, c)));
    !PROGRAM.is_empty() && !gate && new_pidns && !label && filter_allows
}

/// The trampoline in a sealed, close-on-exec memfd at an fd number >= `floor`, made by
/// nook before the clone (the init inherits it). Fails where the kernel refuses
/// executable memfds (vm.memfd_noexec = 2): nook then re-executes instead.
pub fn load(floor: RawFd) -> Result<OwnedFd, InitError> {
    let mem = super::self_guard::sealed_memfd(c"nook-exec", |fd| {
        let mut done = 0;
        while done < PROGRAM.len() {
            // SAFETY: write from a static buffer into an fd we own.
            let n =
                unsafe { libc::write(fd, PROGRAM[done..].as_ptr().cast(), PROGRAM.len() - done) };
            match Errno::result(n) {
                Ok(n) => done += n as usize,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
    .map_err(|(step, e)| InitError::sys(format!("exec trampoline: {step}"), None, e))?;
    super::fs::lift(mem, floor)
        .map_err(|e| InitError::sys("exec trampoline: moving its fd", None, e))
}

/// Exec `program` (args, env) through the trampoline. `chan` (the init's channel to
/// nook) stays open across the trampoline's exec only; the trampoline makes it
/// close-on-exec again, so nook sees end of file when the app runs, or an ExecFailed
/// message. Returns only when the trampoline itself cannot be exec'd.
pub fn exec(
    tramp: std::os::fd::BorrowedFd,
    chan: RawFd,
    program: &Path,
    args: &[String],
    env: &[String],
) -> InitError {
    let cstr = |s: &[u8]| CString::new(s).unwrap_or_default();
    let path = program.as_os_str().as_encoded_bytes();
    // The start of the message the trampoline completes with the errno and `]}`: a
    // Msg::ExecFailed, as serde_json writes it.
    let report = format!(
        "{{\"ExecFailed\":[{},",
        serde_json::to_string(&program.to_string_lossy()).expect("a string serializes")
    );
    let mut argv = vec![
        cstr(report.as_bytes()),
        cstr(chan.to_string().as_bytes()),
        cstr(path),
    ];
    argv.extend(args.iter().map(|a| cstr(a.as_bytes())));
    let envp: Vec<CString> = env.iter().map(|e| cstr(e.as_bytes())).collect();
    // SAFETY: F_SETFD on an int fd touches no memory.
    let r = unsafe { libc::fcntl(chan, libc::F_SETFD, 0) };
    if let Err(e) = Errno::result(r) {
        return InitError::sys("exec trampoline: passing the channel on", None, e);
    }
    let e = nix::unistd::execveat(tramp, c"", &argv, &envp, nix::fcntl::AtFlags::AT_EMPTY_PATH)
        .unwrap_err();
    // SAFETY: as above; the channel must not reach anything else we might start.
    unsafe { libc::fcntl(chan, libc::F_SETFD, libc::FD_CLOEXEC) };
    InitError::sys("exec of nook's exec trampoline", None, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded program is a static ELF executable with no interpreter.
    #[test]
    fn program_is_a_static_elf() {
        if PROGRAM.is_empty() {
            eprintln!("skipping: no trampoline for this target");
            return;
        }
        let elf = goblin::elf::Elf::parse(PROGRAM).unwrap();
        assert_eq!(elf.header.e_type, goblin::elf::header::ET_EXEC);
        assert!(elf.interpreter.is_none() && elf.libraries.is_empty());
        assert!(PROGRAM.len() < 8192, "{} bytes", PROGRAM.len());
    }
}
