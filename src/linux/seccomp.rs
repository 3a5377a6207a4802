//! linux.seccomp: the OCI profile is compiled by libseccomp, in the parent, down to the
//! classic BPF program; the container's init then only hands that program to seccomp(2).
//! Loading so allocates nothing and runs no library code, which keeps it safe in a
//! child of clone/fork. The rules follow runc's (libcontainer/seccomp).
//!
//! `prepare` takes a compiled program from the cache under `<root>/seccomp`
//! (seccomp_cache.rs) before it compiles. SCMP_ACT_NOTIFY rules load with
//! SECCOMP_FILTER_FLAG_NEW_LISTENER; the notify fd goes to the parent, which passes it
//! on to `listenerPath` (seccomp_notify.rs).

use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::errno::Errno;
use nix::sys::memfd::{memfd_create, MFdFlags};
use oci_spec::runtime::LinuxSeccomp;
use oci_spec::runtime::LinuxSeccompAction as Act;
use oci_spec::runtime::LinuxSeccompFilterFlag as Flag;
use oci_spec::runtime::LinuxSeccompOperator as Op;

use super::sync::InitError;

/// The kernel's limit on a filter's length (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;

/// A compiled filter: libseccomp's BPF program and the seccomp(2) flags to load it with.
#[derive(Clone)]
pub struct Filter {
    pub(super) prog: Vec<libc::sock_filter>,
    flags: libc::c_ulong,
    /// Where the notify fd goes, when the profile has SCMP_ACT_NOTIFY rules.
    listener: Option<Listener>,
}

/// linux.seccomp.listenerPath and listenerMetadata of a profile with NOTIFY rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub path: PathBuf,
    pub metadata: Option<String>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Filter({} insns, flags {:#x})",
            self.prog.len(),
            self.flags
        )
    }
}

/// An error on the profile field `linux.seccomp.<field>`.
fn bad(field: impl std::fmt::Display, msg: impl std::fmt::Display) -> InitError {
    InitError::msg(format!("linux.seccomp.{field}"), msg.to_string())
}

fn io(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The libseccomp action for an OCI action; errnoRet (default EPERM, as runc) goes
/// with ERRNO and TRACE.
fn action(act: Act, ret: Option<u32>, ret_field: &str) -> Result<ScmpAction, InitError> {
    let ret = || {
        let v = ret.unwrap_or(libc::EPERM as u32);
        u16::try_from(v).map_err(|_| bad(ret_field, format!("{v} is out of range (0 to 65535)")))
    };
    Ok(match act {
        Act::ScmpActKill | Act::ScmpActKillThread => ScmpAction::KillThread,
        Act::ScmpActKillProcess => ScmpAction::KillProcess,
        Act::ScmpActTrap => ScmpAction::Trap,
        Act::ScmpActErrno => ScmpAction::Errno(i32::from(ret()?)),
        Act::ScmpActTrace => ScmpAction::Trace(ret()?),
        Act::ScmpActLog => ScmpAction::Log,
        Act::ScmpActAllow => ScmpAction::Allow,
        Act::ScmpActNotify => ScmpAction::Notify,
    })
}

/// The name a profile spells a value with (SCMP_ARCH_X86_64, ...).
fn name_of<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => "?".into(),
    }
}

/// Whether the profile lets syscall `name` through whatever its arguments: every rule
/// that names it allows it (SCMP_ACT_ALLOW or SCMP_ACT_LOG), and either one of them
/// tests no argument or the default action allows too.
pub fn always_allows(s: &LinuxSeccomp, name: &str) -> bool {
    let allows = |a: Act| matches!(a, Act::ScmpActAllow | Act::ScmpActLog);
    let mut plain = false;
    for call in s.syscalls().iter().flatten() {
        if !call.names().iter().any(|n| n == name) {
            continue;
        }
        if !allows(call.action()) {
            return false;
        }
        plain |= call.args().as_ref().is_none_or(|a| a.is_empty());
    }
    plain || allows(s.default_action())
}

/// The filter for a profile: from the cache under `<root>/seccomp` when this profile
/// was compiled before (by this nook, libseccomp and kernel), else compiled and cached.
pub fn prepare(root: &Path, s: &LinuxSeccomp) -> Result<Filter, InitError> {
    let listener = listener(s)?;
    let flags = load_flags(s, listener.is_some())?;
    let key = super::seccomp_cache::key(s);
    if let Some(prog) = super::seccomp_cache::load(root, &key) {
        return Ok(Filter {
            prog,
            flags,
            listener,
        });
    }
    let f = compile(s)?;
    super::seccomp_cache::store(root, &key, &f.prog);
    Ok(f)
}

/// The listener of a profile with NOTIFY rules. NOTIFY without listenerPath (nobody
/// could answer) and listenerMetadata without listenerPath are errors; a listenerPath
/// without NOTIFY rules is ignored, as the runtime spec says.
fn listener(s: &LinuxSeccomp) -> Result<Option<Listener>, InitError> {
    let path = s
        .listener_path()
        .as_ref()
        .filter(|p| !p.as_os_str().is_empty());
    if s.listener_metadata().is_some() && path.is_none() {
        return Err(bad("listenerMetadata", "is set without listenerPath"));
    }
    if s.default_action() == Act::ScmpActNotify {
        return Err(bad(
            "defaultAction",
            "SCMP_ACT_NOTIFY cannot be the default action (nook itself could not run); \
             use it in syscalls rules",
        ));
    }
    let calls = s.syscalls().as_deref().unwrap_or_default();
    let Some(i) = calls.iter().position(|c| c.action() == Act::ScmpActNotify) else {
        return Ok(None);
    };
    match path {
        Some(p) => Ok(Some(Listener {
            path: p.clone(),
            metadata: s.listener_metadata().clone(),
        })),
        None => Err(bad(
            format!("syscalls[{i}].action"),
            "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath (the agent that answers)",
        )),
    }
}

/// The seccomp(2) flags for a profile's `flags`; with NOTIFY rules, NEW_LISTENER (and
/// TSYNC_ESRCH beside TSYNC, which the kernel otherwise refuses with a listener).
fn load_flags(s: &LinuxSeccomp, notify: bool) -> Result<libc::c_ulong, InitError> {
    let mut flags = 0;
    for (i, f) in s.flags().iter().flatten().enumerate() {
        flags |= match f {
            Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            Flag::SeccompFilterFlagWaitKillableRecv if notify => {
                libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
            Flag::SeccompFilterFlagWaitKillableRecv => {
                return Err(bad(
                    format!("flags[{i}]"),
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs SCMP_ACT_NOTIFY rules",
                ))
            }
        };
    }
    if notify {
        flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        if flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    Ok(flags)
}

/// Compile a profile. Syscall names libseccomp does not know are skipped (profiles list
/// the calls of newer kernels), as are rules whose action is the default action.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter, InitError> {
    let listener = listener(s)?;
    let flags = load_flags(s, listener.is_some())?;
    let default = action(s.default_action(), s.default_errno_ret(), "defaultErrnoRet")?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| bad("defaultAction", e))?;
    // The native architecture is already in; add the others.
    for (i, a) in s.architectures().iter().flatten().enumerate() {
        let name = name_of(a);
        ScmpArch::from_str(&name)
            .and_then(|arch| ctx.add_arch(arch).map(drop))
            .map_err(|e| {
                bad(
                    format!("architectures[{i}]"),
                    format!("{name}: not in this libseccomp ({e})"),
                )
            })?;
    }
    for (i, f) in s.flags().iter().flatten().enumerate() {
        // Setting the attribute checks that libseccomp and the kernel support the flag
        // (nook loads the program itself, with `flags`).
        let r = match f {
            Flag::SeccompFilterFlagLog => ctx.set_ctl_log(true).map(drop),
            Flag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true).map(drop),
            _ => Ok(()),
        };
        r.map_err(|e| bad(format!("flags[{i}]"), format!("{}: {e}", name_of(f))))?;
    }
    let calls = s.syscalls().as_deref().unwrap_or_default();
    let mut rules = 0;
    for (i, call) in calls.iter().enumerate() {
        let rf = format!("syscalls[{i}].errnoRet");
        let act = action(call.action(), call.errno_ret(), &rf)?;
        let mut conds = Vec::new();
        let mut per_arg = [0u8; 6];
        for (j, a) in call.args().iter().flatten().enumerate() {
            let idx = a.index();
            if idx >= per_arg.len() {
                let msg = format!("{idx} is out of range (a syscall has arguments 0 to 5)");
                return Err(bad(format!("syscalls[{i}].args[{j}].index"), msg));
            }
            per_arg[idx] = per_arg[idx].saturating_add(1);
            // OCI's MASKED_EQ: value is the mask, valueTwo the datum.
            let (op, datum) = match a.op() {
                Op::ScmpCmpNe => (ScmpCompareOp::NotEqual, a.value()),
                Op::ScmpCmpLt => (ScmpCompareOp::Less, a.value()),
                Op::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, a.value()),
                Op::ScmpCmpEq => (ScmpCompareOp::Equal, a.value()),
                Op::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, a.value()),
                Op::ScmpCmpGt => (ScmpCompareOp::Greater, a.value()),
                Op::ScmpCmpMaskedEq => (
                    ScmpCompareOp::MaskedEqual(a.value()),
                    a.value_two().unwrap_or(0),
                ),
            };
            conds.push(ScmpArgCompare::new(idx as u32, op, datum));
        }
        if act == default {
            continue; // libseccomp refuses a rule that repeats the default action
        }
        // libseccomp cannot AND two tests of one argument: then each test is its own rule (runc).
        let split = per_arg.iter().any(|&n| n > 1);
        for (j, name) in call.names().iter().enumerate() {
            if name.is_empty() {
                return Err(bad(
                    format!("syscalls[{i}].names[{j}]"),
                    "empty syscall name",
                ));
            }
            let Ok(nr) = ScmpSyscall::from_name(name) else {
                continue; // unknown to libseccomp (a newer kernel's call): skipped, as runc
            };
            let r = if split {
                conds
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, nr, &[*c]).map(drop))
            } else {
                ctx.add_rule_conditional(act, nr, &conds).map(drop)
            };
            r.map_err(|e| bad(format!("syscalls[{i}].names[{j}]"), format!("{name}: {e}")))?;
            rules += 1;
        }
    }
    if rules > 32 {
        // A binary tree for long profiles, as runc (libseccomp <= 2.5.4 breaks on it with
        // no rules at all); not fatal if unsupported.
        let _ = ctx.set_ctl_optimize(2);
    }
    let prog = export(&ctx)?;
    if prog.len() > MAX_INSNS {
        let msg = format!(
            "compiles to {} BPF instructions, over the kernel's {MAX_INSNS}",
            prog.len()
        );
        return Err(bad("syscalls", msg));
    }
    Ok(Filter {
        prog,
        flags,
        listener,
    })
}

/// libseccomp's BPF for `ctx`, through a memfd (libseccomp 2.5 exports only to an fd).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, InitError> {
    let step = "compiling linux.seccomp";
    let fd = memfd_create(c"nook-seccomp", MFdFlags::MFD_CLOEXEC)
        .map_err(|e| InitError::sys(step, None, e))?;
    let mut file = File::from(fd);
    ctx.export_bpf(&file)
        .map_err(|e| InitError::msg(step, e.to_string()))?;
    let mut buf = Vec::new();
    file.rewind()
        .and_then(|_| file.read_to_end(&mut buf))
        .map_err(|e| InitError::sys(step, None, io(e)))?;
    Ok(buf
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

impl Filter {
    /// The agent the notify fd goes to, for a profile with NOTIFY rules.
    pub fn listener(&self) -> Option<&Listener> {
        self.listener.as_ref()
    }

    /// Load the filter into the calling thread (with its flags; TSYNC applies it to all
    /// threads). The caller must have set no_new_privs or hold CAP_SYS_ADMIN (EACCES
    /// otherwise). Allocates nothing and is async-signal-safe (errors aside). With NOTIFY
    /// rules, returns the notify fd (close-on-exec).
    pub fn load(&self) -> Result<Option<OwnedFd>, InitError> {
        self.load_with(self.flags)
    }

    /// As `load`, without TSYNC: for a caller that is single-threaded but for a helper
    /// thread of its own, which must stay unfiltered and is gone before execve (where
    /// TSYNC would have had nothing else to sync).
    pub fn load_unsynced(&self) -> Result<Option<OwnedFd>, InitError> {
        let tsync = libc::SECCOMP_FILTER_FLAG_TSYNC | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        self.load_with(self.flags & !tsync)
    }

    fn load_with(&self, flags: libc::c_ulong) -> Result<Option<OwnedFd>, InitError> {
        let prog = libc::sock_fprog {
            len: self.prog.len() as u16, // at most MAX_INSNS, checked by compile
            filter: self.prog.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `self.prog`, alive and unchanged for the call; the
        // kernel only reads it (and copies it) and we pass no other pointer.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            )
        };
        match Errno::result(r) {
            Ok(fd) if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 => {
                // SAFETY: with NEW_LISTENER the kernel returns a new fd that we now own.
                let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
                Ok(Some(fd))
            }
            Ok(0) => Ok(None),
            // With TSYNC, a positive return is the id of a thread that could not sync.
            Ok(tid) => Err(InitError::msg(
                "loading linux.seccomp",
                format!("thread {tid} cannot be synced (TSYNC)"),
            )),
            Err(e) => Err(InitError::sys("loading linux.seccomp", None, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, ForkResult};

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).expect("test profile parses")
    }

    /// What the exec trampoline asks of a profile (linux::trampoline::fits): a call
    /// always allowed, by the default action or by a rule without argument tests, and
    /// never by a rule that tests arguments alone or denies it.
    #[test]
    fn always_allows_needs_an_unconditional_allow() {
        let p = |default: &str, rules: &str| {
            profile(&format!(
                r#"{{"defaultAction": "{default}", "syscalls": [{rules}]}}"#
            ))
        };
        let allow = r#"{"names": ["read", "execveat"], "action": "SCMP_ACT_ALLOW"}"#;
        let deny = r#"{"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}"#;
        let tested = r#"{"names": ["execveat"], "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 4, "value": 4096, "op": "SCMP_CMP_EQ"}]}"#;
        assert!(always_allows(&p("SCMP_ACT_ALLOW", ""), "execveat"));
        assert!(always_allows(&p("SCMP_ACT_LOG", ""), "execveat"));
        assert!(always_allows(&p("SCMP_ACT_ERRNO", allow), "execveat"));
        assert!(!always_allows(&p("SCMP_ACT_ERRNO", allow), "fcntl"));
        assert!(!always_allows(&p("SCMP_ACT_ALLOW", deny), "execveat"));
        assert!(!always_allows(&p("SCMP_ACT_ERRNO", tested), "execveat"));
        assert!(always_allows(&p("SCMP_ACT_ALLOW", tested), "execveat"));
        assert!(!always_allows(&p("SCMP_ACT_KILL", ""), "execveat"));
    }

    /// Found by fuzz/fuzz_targets/seccomp.rs: argument tests on socket(2), which the
    /// x86 and x32 ABIs reach through socketcall, make libseccomp 2.5 leak a few objects
    /// (LeakSanitizer; inside libseccomp, after nook releases the context: an indirect leak
    /// of 384 bytes from its zmalloc). The profile compiles; make fuzz runs this target
    /// with -detect_leaks=0 for that reason.
    #[test]
    fn socket_argument_rules_on_three_abis_compile() {
        let r = compile(&profile(
            r#"{"architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "syscalls": [
            {"action": "SCMP_ACT_ALLOW", "names": ["writev"]},
            {"action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "op": "SCMP_CMP_LT", "value": 38}], "names": ["socket"]},
            {"action": "SCMP_ACT_ALLOW", "args": [{"index": 5, "op": "SCMP_CMP_EQ", "value": 39}], "names": ["socket"]},
            {"action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_GT", "value": 40}], "names": ["socket"]},
            {"action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "op": "SCMP_CMP_EQ", "value": 0}], "names": ["clone3"]}]}"#,
        ));
        if let Err(e) = r {
            panic!("{e}");
        }
    }

    #[test]
    fn docker_like_profile_compiles() {
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
            "flags":["SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls":[
             {"names":["accept","accept4","access","arch_prctl","brk","capget","chdir","close",
               "dup","dup3","execve","exit","exit_group","fstat","futex","getcwd","getpid","ioctl",
               "mmap","mprotect","munmap","openat","read","rt_sigaction","socketcall","write",
               "landlock_create_ruleset","nook_future_call"],"action":"SCMP_ACT_ALLOW"},
             {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]},
             {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
             {"names":["clone"],"action":"SCMP_ACT_ALLOW",
              "args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
             {"names":["kill"],"action":"SCMP_ACT_ALLOW",
              "args":[{"index":1,"value":0,"op":"SCMP_CMP_NE"},{"index":1,"value":64,"op":"SCMP_CMP_LT"}]},
             {"names":["reboot"],"action":"SCMP_ACT_KILL_PROCESS"},
             {"names":["ptrace"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
             {"names":["acct"],"action":"SCMP_ACT_ERRNO","errnoRet":38}]}"#,
        ))
        .expect("compiles");
        assert!(f.prog.len() > 40, "{f:?}");
        assert_eq!(f.flags, libc::SECCOMP_FILTER_FLAG_TSYNC);
    }

    #[test]
    fn unknown_syscall_name_is_skipped() {
        let len = |calls: &str| {
            let p = format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{calls}]}}"#);
            compile(&profile(&p)).expect("compiles").prog.len()
        };
        let none = len("");
        assert_eq!(
            len(r#"{"names":["nook_no_such_call"],"action":"SCMP_ACT_ERRNO"}"#),
            none
        );
        assert!(
            len(r#"{"names":["nook_no_such_call","getcwd"],"action":"SCMP_ACT_ERRNO"}"#) > none
        );
        // A rule repeating the default action is skipped too.
        assert_eq!(
            len(r#"{"names":["getcwd"],"action":"SCMP_ACT_ALLOW"}"#),
            none
        );
    }

    #[test]
    fn bad_fields_are_named() {
        // An unknown op never gets here: the typed spec rejects it with its JSON path.
        #[derive(serde::Deserialize)]
        struct Linux {
            #[allow(dead_code)]
            seccomp: LinuxSeccomp,
        }
        #[derive(serde::Deserialize)]
        struct Config {
            #[allow(dead_code)]
            linux: Linux,
        }
        let json = r#"{"linux":{"seccomp":{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_XX"}]}]}}}"#;
        let de = &mut serde_json::Deserializer::from_str(json);
        let err = serde_path_to_error::deserialize::<_, Config>(de)
            .err()
            .expect("bad op rejected");
        assert_eq!(
            err.path().to_string(),
            "linux.seccomp.syscalls[0].args[0].op"
        );

        let step = |json: &str| compile(&profile(json)).expect_err("rejected").step;
        assert_eq!(
            step(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_LOG"},
                {"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#
            ),
            "linux.seccomp.syscalls[1].args[0].index"
        );
        assert_eq!(
            step(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}"#
            ),
            "linux.seccomp.syscalls[0].action"
        );
        assert_eq!(
            step(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}"#),
            "linux.seccomp.defaultErrnoRet"
        );
    }

    #[test]
    fn notify_needs_a_listener_and_sets_its_flags() {
        let notify = r#"[{"names":["getppid"],"action":"SCMP_ACT_NOTIFY"}]"#;
        let f = compile(&profile(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/a.sock","listenerMetadata":"m",
                "flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                "syscalls":{notify}}}"#
        )))
        .expect("compiles");
        let want = libc::SECCOMP_FILTER_FLAG_TSYNC
            | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH
            | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
            | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
        assert_eq!(f.flags, want);
        let l = f.listener().expect("a listener");
        assert_eq!(
            (l.path.to_str(), l.metadata.as_deref()),
            (Some("/run/a.sock"), Some("m"))
        );
        // A listener without NOTIFY rules is ignored (runtime spec); the flag is refused.
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/a.sock"}"#,
        ))
        .expect("compiles");
        assert!(f.listener().is_none() && f.flags == 0);
        let step = |json: &str| compile(&profile(json)).expect_err("rejected").step;
        assert_eq!(
            step(
                r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#
            ),
            "linux.seccomp.flags[0]"
        );
        assert_eq!(
            step(r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/a"}"#),
            "linux.seccomp.defaultAction"
        );
    }

    #[test]
    fn loaded_filter_returns_errno() {
        let f = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        ))
        .expect("compiles");
        // SAFETY: the child (of a multi-threaded test process) only makes async-signal-safe
        // calls: prctl, seccomp (load allocates nothing), getcwd into a stack buffer, _exit.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                let mut buf = [0 as libc::c_char; 256];
                // SAFETY: plain syscalls; `buf` outlives the getcwd call and its length is given.
                unsafe {
                    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || f.load().is_err()
                    {
                        libc::_exit(2);
                    }
                    let failed = libc::getcwd(buf.as_mut_ptr(), buf.len()).is_null();
                    libc::_exit(if failed && Errno::last() == Errno::EPERM {
                        0
                    } else {
                        1
                    });
                }
            }
            ForkResult::Parent { child } => {
                let st = waitpid(child, None).expect("waitpid");
                assert_eq!(
                    st,
                    WaitStatus::Exited(child, 0),
                    "getcwd was not denied with EPERM"
                );
            }
        }
    }
}
