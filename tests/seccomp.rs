//! linux.seccomp: the filter the container process runs under, seen from inside.

mod common;

use common::{fails, ok, report, text, Bundle};
use serde_json::json;

/// getcwd is denied with EPERM by the filter: the probe reports it cannot read its cwd,
/// while everything else (the probe's other syscalls) still works.
fn deny_getcwd(b: &Bundle, no_new_privs: bool) {
    b.config(|c| {
        c["process"]["noNewPrivileges"] = json!(no_new_privs);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["no_such_syscall_nook"], "action": "SCMP_ACT_ERRNO"}
            ]
        });
    });
}

#[test]
fn filter_applies_with_no_new_privs() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-nnp");
    deny_getcwd(&b, true);
    let r = b.report();
    assert_eq!(r["cwd"], "error", "getcwd must be denied: {r:?}");
    assert_eq!(r["no_new_privs"], "1");
}

#[test]
fn filter_applies_without_no_new_privs() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-privs");
    deny_getcwd(&b, false);
    let r = b.report();
    assert_eq!(r["cwd"], "error", "getcwd must be denied: {r:?}");
    assert_eq!(r["no_new_privs"], "0");
}

#[test]
fn without_a_filter_getcwd_works() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-none");
    let out = b.probe(&["report"]);
    let r = report(&ok(out));
    assert_eq!(r["cwd"], "/");
}

#[test]
fn a_bad_filter_fails_create_naming_the_field() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-bad");
    b.config(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        });
    });
    let id = b.id();
    let out = b.nook(&["create", &id, "--bundle", b.path_str()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("linux.seccomp.syscalls[0].args[0].index"),
        "{err}"
    );
    b.assert_clean(&id);
}

/// A profile that denies close_range (older allow-lists lack it) with no_new_privs off:
/// the filter is loaded before privileges are dropped, so nook's own fd hygiene must
/// already be done; the app still gets only stdio.
#[test]
fn filter_denying_close_range_still_gives_only_stdio() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-closerange");
    b.config(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let r = b.report();
    assert_eq!(r["fds"], "0,1,2", "{r:?}");
}

// ---- the default profile (`nook spec` writes it; every Bundle starts from it) ----

/// (call, syscall number and arguments, result under the default profile). x86_64 numbers.
const DEFAULT_CASES: &[(&str, &[&str], &str)] = &[
    // Need no capability at all: only the filter stops them.
    (
        "unshare(CLONE_NEWUSER)",
        &["272", "0x10000000"],
        "error:EPERM",
    ),
    (
        "clone(CLONE_NEWUSER|SIGCHLD)",
        &["56", "0x10000011", "0", "0", "0", "0"],
        "error:EPERM",
    ),
    (
        "keyctl(GET_KEYRING_ID, session)",
        &["250", "0", "-3", "0"],
        "error:EPERM",
    ),
    (
        "socket(AF_VSOCK, SOCK_STREAM)",
        &["41", "40", "1", "0"],
        "error:EPERM",
    ),
    (
        "socket(AF_ALG, SOCK_SEQPACKET)",
        &["41", "38", "5", "0"],
        "error:EPERM",
    ),
    ("personality(PER_BSD)", &["135", "6"], "error:EPERM"),
    ("clone3(NULL, 0)", &["435", "0", "0"], "error:ENOSYS"),
    // Without the filter these fail on their arguments (EFAULT), not with EPERM.
    (
        "mount(NULL...)",
        &["165", "0", "0", "0", "0", "0"],
        "error:EPERM",
    ),
    ("kexec_load", &["246", "0", "0", "0", "0"], "error:EPERM"),
    ("init_module", &["175", "0", "0", "0"], "error:EPERM"),
    // Allowed.
    ("personality(query)", &["135", "0xffffffff"], "ret:0"),
    (
        "socket(AF_UNIX, SOCK_STREAM)",
        &["41", "1", "1", "0"],
        "ret:",
    ),
    ("getppid", &["110"], "ret:0"),
];

fn syscall_result(b: &Bundle, args: &[&str]) -> String {
    let mut a = vec!["syscall"];
    a.extend_from_slice(args);
    let out = b.probe(&a);
    text(&out.stdout).trim().to_string()
}

/// The generated profile is loaded: namespace, keyring, vsock/AF_ALG and mount calls
/// fail with EPERM (clone3 with ENOSYS so libc falls back to clone), while the probe
/// and a busybox shell work. The same calls without the filter do not get EPERM
/// (where no capability is needed), so it is the filter that refuses them.
#[test]
fn default_profile_denies_what_docker_denies() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-default");
    let c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.path.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(c["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    for (call, args, want) in DEFAULT_CASES {
        let got = syscall_result(&b, args);
        assert!(got.starts_with(want), "{call}: {got:?}, expected {want}");
    }
    let r = b.report();
    assert_eq!(r["pid"], "1", "{r:?}");
    b.sh("grep Seccomp: /proc/self/status; echo sh works");
    let id = b.id();
    let out = ok(b.nook(&["run", &id, "--bundle", b.path_str()]));
    let s = text(&out.stdout);
    assert!(s.contains("Seccomp:\t2") && s.contains("sh works"), "{s}");

    let free = Bundle::new("seccomp-default-off");
    free.config(|c| {
        c["linux"]
            .as_object_mut()
            .unwrap()
            .remove("seccomp")
            .map(drop)
            .unwrap()
    });
    // Debian kernels can forbid user namespaces to callers without CAP_SYS_ADMIN.
    let userns_free = std::fs::read_to_string("/proc/sys/kernel/unprivileged_userns_clone")
        .map_or(true, |v| v.trim() != "0");
    for (call, args, _) in &DEFAULT_CASES[..7] {
        if call.contains("NEWUSER") && !userns_free {
            continue;
        }
        let got = syscall_result(&free, args);
        assert!(!got.contains("EPERM"), "{call} without a filter: {got:?}");
    }
    assert_eq!(
        syscall_result(&free, &["165", "0", "0", "0", "0", "0"]),
        "error:14"
    );
}

/// A profile resolved for CAP_SYS_ADMIN allows unshare and clone3 (the capability group
/// and no clone3 ENOSYS rule).
#[test]
fn default_profile_follows_the_capabilities() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-default-admin");
    b.config(|c| {
        let caps = json!(["CAP_SYS_ADMIN", "CAP_KILL"]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set] = caps.clone();
        }
        c["linux"]["seccomp"] = nook::linux::seccomp_default::profile(&["CAP_SYS_ADMIN"]);
    });
    assert_eq!(syscall_result(&b, &["272", "0x10000000"]), "ret:0");
    // The kernel sees clone3 now: a zero size is EINVAL, not the profile's ENOSYS.
    assert_eq!(syscall_result(&b, &["435", "0", "0"]), "error:EINVAL");
}

// ---- the compiled-filter cache ----

/// The first start compiles and stores `<root>/seccomp/<key>.bpf` (0600 in a 0700 dir);
/// the next start uses it (the file is not replaced). A truncated or corrupted file is
/// never loaded: the profile is compiled again, enforced, and the file rewritten.
#[test]
fn compiled_filter_is_cached_and_checked() {
    if common::skip() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let b = Bundle::new("seccomp-cache");
    let unshare = ["272", "0x10000000"];
    assert_eq!(syscall_result(&b, &unshare), "error:EPERM");
    let dir = b.root.join("seccomp");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = &files[0];
    assert!(file.extension().is_some_and(|e| e == "bpf"), "{file:?}");
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    let meta = std::fs::metadata(file).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    let good = std::fs::read(file).unwrap();
    assert_eq!((good.len() - 76) % 8, 0);

    assert_eq!(syscall_result(&b, &unshare), "error:EPERM");
    assert_eq!(
        std::fs::metadata(file).unwrap().ino(),
        meta.ino(),
        "cache not used"
    );

    // A truncated file, then one with an allow-all program under a valid-looking header
    // (its checksum no longer matches): both compiled again, never loaded.
    let mut bad = good.clone();
    bad.truncate(good.len() - 5);
    let mut allow_all = good.clone();
    allow_all.truncate(76 + 8);
    allow_all[40..44].copy_from_slice(&1u32.to_le_bytes());
    allow_all[76..84].copy_from_slice(&[0x06, 0, 0, 0, 0, 0, 0xff, 0x7f]); // ret ALLOW
    for corrupt in [bad, allow_all] {
        std::fs::write(file, &corrupt).unwrap();
        assert_eq!(syscall_result(&b, &unshare), "error:EPERM");
        assert_eq!(
            std::fs::read(file).unwrap(),
            good,
            "cache file not rewritten"
        );
    }
}

/// Compile time against a cache hit for the default profile (docker's ~300 rules):
/// `cargo test --release --test seccomp -- --ignored --nocapture cache_timing`.
#[test]
#[ignore]
fn cache_timing() {
    use nook::linux::seccomp;
    let p: oci_spec::runtime::LinuxSeccomp =
        serde_json::from_value(nook::linux::seccomp_default::profile(&[])).unwrap();
    let root = std::env::temp_dir().join(format!("nook-cache-timing-{}", std::process::id()));
    let n = 200;
    let t = std::time::Instant::now();
    for _ in 0..n {
        seccomp::compile(&p).unwrap();
    }
    let compile = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    seccomp::prepare(&root, &p).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..n {
        seccomp::prepare(&root, &p).unwrap();
    }
    let hit = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let _ = std::fs::remove_dir_all(&root);
    println!("default profile: compile {compile:.0} us, cache hit {hit:.0} us (mean of {n})");
}

// ---- SCMP_ACT_NOTIFY and the listener ----

/// What the agent saw on one connection: the container process state, and the pid of
/// every notification it answered on that fd.
#[derive(Debug, Clone)]
struct Seen {
    state: serde_json::Value,
    notified: Vec<i32>,
}

/// A seccomp agent on a unix socket: for each connection it records the state, then
/// answers notifications on the fd it got: getppid returns 4242, mkdirat fails with
/// EXDEV, anything else continues.
struct Agent {
    path: std::path::PathBuf,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>,
}

impl Agent {
    fn new(b: &Bundle) -> Agent {
        let path = b.dir.join("agent.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                let seen = s2.clone();
                std::thread::spawn(move || serve(conn, seen));
            }
        });
        Agent { path, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Wait until `n` connections came and the n-th had a notification.
    fn wait_for(&self, n: usize) -> Vec<Seen> {
        let ok = common::wait_until(std::time::Duration::from_secs(10), || {
            let s = self.seen();
            s.len() >= n && !s[n - 1].notified.is_empty()
        });
        assert!(ok, "agent saw {:?}", self.seen());
        self.seen()
    }
}

fn serve(conn: std::os::unix::net::UnixStream, seen: std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 64 * 1024];
    let (n, fd) = nook::linux::sync::recv_with_fd(conn.as_raw_fd(), &mut buf).expect("recvmsg");
    let mut body = buf[..n].to_vec();
    (&conn).read_to_end(&mut body).unwrap(); // nook closes the connection after one state
    let state: serde_json::Value = serde_json::from_slice(&body).expect("state JSON");
    let fd = fd.expect("an fd in SCM_RIGHTS");
    let idx = {
        let mut s = seen.lock().unwrap();
        s.push(Seen {
            state,
            notified: vec![],
        });
        s.len() - 1
    };
    loop {
        // SAFETY: zeroed plain-data structs the kernel fills in / reads.
        let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: RECV writes one seccomp_notif into `req`.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
        if r != 0 {
            return; // every process of the filter is gone
        }
        seen.lock().unwrap()[idx].notified.push(req.pid as i32);
        // SAFETY: as above.
        let mut resp: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
        resp.id = req.id;
        match req.data.nr as i64 {
            libc::SYS_getppid => resp.val = 4242,
            libc::SYS_mkdirat => resp.error = -libc::EXDEV,
            _ => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        }
        // SAFETY: SEND reads one seccomp_notif_resp.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    }
}

fn notify_profile(b: &Bundle, agent: &Agent, nnp: bool) {
    let path = agent.path.to_str().unwrap().to_string();
    b.config(|c| {
        c["process"]["noNewPrivileges"] = json!(nnp);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": path,
            "listenerMetadata": "agent-test",
            "syscalls": [{"names": ["getppid", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
        if nnp {
            // TSYNC with a listener needs TSYNC_ESRCH (nook adds it); WAIT_KILLABLE_RECV
            // only goes with a listener.
            c["linux"]["seccomp"]["flags"] = json!([
                "SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
            ]);
        }
    });
}

/// The listener gets the notify fd with the container process state, and its answers
/// are what the container's syscalls return (with and without no_new_privs, which
/// load the filter at different points).
#[test]
fn notify_listener_answers_the_container() {
    if common::skip() {
        return;
    }
    for nnp in [true, false] {
        let b = Bundle::new("seccomp-notify");
        let agent = Agent::new(&b);
        notify_profile(&b, &agent, nnp);
        let id = b.id();
        b.args(&["syscall", "110"]);
        let out = ok(b.nook(&["run", &id, "--bundle", b.path_str()]));
        assert_eq!(text(&out.stdout).trim(), "ret:4242", "nnp {nnp}");
        let seen = agent.wait_for(1);
        assert_eq!(seen.len(), 1, "{seen:?}");
        let s = &seen[0].state;
        assert_eq!(s["fds"], json!(["seccompFd"]));
        assert_eq!(s["metadata"], "agent-test");
        assert_eq!(s["state"]["id"], id.as_str());
        assert_eq!(s["state"]["status"], "creating");
        assert_eq!(s["state"]["bundle"], b.path_str());
        assert!(s["ociVersion"].is_string(), "{s}");
        // The fd is that process's: the kernel's notification names the same pid.
        let pid = s["pid"].as_i64().unwrap() as i32;
        assert_eq!(s["state"]["pid"], pid);
        assert_eq!(seen[0].notified, vec![pid]);
    }
}

/// Every syscall nook's init and exec make after loading the filter may go to the agent,
/// sendmsg included (the call that carries the fd: bypass4netns asks for it); with
/// TSYNC too. Setup must not deadlock, and the agent answers every one of them.
#[test]
fn notify_on_nooks_own_setup_syscalls_does_not_hang() {
    if common::skip() {
        return;
    }
    let setup = [
        "sendmsg",
        "recvmsg",
        "recvfrom",
        "sendto",
        "close",
        "close_range",
        "futex",
        "sched_yield",
        "read",
        "write",
        "openat",
        "openat2",
        "fcntl",
        "capset",
        "capget",
        "prctl",
        "setresuid",
        "setresgid",
        "setgroups",
        "fchdir",
        "rt_sigprocmask",
        "rt_sigaction",
        "munmap",
        "madvise",
        "mprotect",
        "getppid",
    ];
    for nnp in [false, true] {
        let b = Bundle::new("seccomp-notify-all");
        let agent = Agent::new(&b);
        notify_profile(&b, &agent, nnp);
        b.config(|c| {
            c["linux"]["seccomp"]["syscalls"] =
                json!([{"names": setup, "action": "SCMP_ACT_NOTIFY"}]);
            c["linux"]["seccomp"]["flags"] = json!(["SECCOMP_FILTER_FLAG_TSYNC"]);
        });
        b.args(&["sleep", "60"]);
        let id = b.id();
        let out = b.nook(&["run", "--detach", &id, "--bundle", b.path_str()]);
        assert!(out.status.success(), "nnp {nnp}: {}", text(&out.stderr));
        let out = b.nook(&["exec", &id, "/bin/probe", "syscall", "110"]);
        assert_eq!(
            text(&out.stdout).trim(),
            "ret:4242",
            "nnp {nnp}: {}",
            text(&out.stderr)
        );
        let seen = agent.wait_for(2);
        assert_eq!(seen.len(), 2, "{seen:?}");
        ok(b.nook(&["delete", "--force", &id]));
    }
}

/// With a pids limit of 1 the helper thread that sends the notify fd cannot be made:
/// the process sends it itself, and the listener still gets it.
#[test]
fn notify_listener_under_a_pids_limit_of_one() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-notify-pids");
    let agent = Agent::new(&b);
    notify_profile(&b, &agent, false);
    b.config(|c| c["linux"]["resources"]["pids"] = json!({"limit": 1}));
    let id = b.id();
    b.args(&["syscall", "110"]);
    let out = ok(b.nook(&["run", &id, "--bundle", b.path_str()]));
    assert_eq!(text(&out.stdout).trim(), "ret:4242");
    assert_eq!(agent.wait_for(1).len(), 1);
}

/// exec with a listener: the exec process's own fd and state reach the agent (the init's
/// came at create), and the agent's errno is what the process sees.
#[test]
fn notify_listener_with_exec() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-notify-exec");
    let agent = Agent::new(&b);
    notify_profile(&b, &agent, true);
    b.args(&["sleep", "60"]);
    let id = b.id();
    b.create(&id);
    ok(b.nook(&["start", &id]));
    let init = b.state(&id)["pid"].as_i64().unwrap();
    let first = agent.seen();
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].state["pid"], init);
    let out = b.nook(&["exec", &id, "/bin/probe", "syscall", "258", "0", "0", "0"]);
    assert_eq!(text(&out.stdout).trim(), "error:18"); // EXDEV, from the agent
    let seen = agent.wait_for(2);
    let s = &seen[1].state;
    let pid = s["pid"].as_i64().unwrap() as i32;
    assert_ne!(i64::from(pid), init);
    assert_eq!(s["state"]["pid"], init);
    assert_eq!(s["state"]["status"], "running");
    assert_eq!(seen[1].notified, vec![pid]);
}

/// NOTIFY without a listener, listenerMetadata alone, and an agent that is not there:
/// create fails naming the field (and the path), and leaves nothing behind.
#[test]
fn notify_errors_name_the_field() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-notify-bad");
    let missing = b.dir.join("no-agent.sock");
    let notify = json!([{"names": ["getppid"], "action": "SCMP_ACT_NOTIFY"}]);
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": notify}),
            vec!["linux.seccomp.syscalls[0].action", "listenerPath"],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}),
            vec!["linux.seccomp.listenerMetadata"],
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": notify,
                   "listenerPath": missing}),
            vec!["listenerPath", missing.to_str().unwrap()],
        ),
    ];
    for (profile, wants) in cases {
        b.config(|c| c["linux"]["seccomp"] = profile.clone());
        let id = b.id();
        let err = fails(&b.nook(&["create", &id, "--bundle", b.path_str()]));
        for w in wants {
            assert!(err.contains(w), "{profile}: {err}");
        }
        b.assert_clean(&id);
    }
}

/// An older profile that does not know openat2 (EPERM for it), loaded early because
/// no_new_privs is off: nook's own setup after the load must not need openat2 (it
/// used to read setgroups through the checked procfs there; runtime-tools' profile
/// showed it), for `run` and for `exec`.
#[test]
fn a_profile_denying_openat2_loaded_early_still_starts() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-openat2");
    b.config(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["process"]["user"]["additionalGids"] = json!([1000]);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["openat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let r = b.report();
    assert_eq!(r["no_new_privs"], "0");
    assert!(r["groups"].split(',').any(|g| g == "1000"), "{r:?}");
    b.args(&["sleep", "30"]);
    let id = b.id();
    ok(b.nook(&["run", "--detach", &id, "--bundle", b.path_str()]));
    let out = ok(b.nook(&["exec", &id, "/bin/probe", "report"]));
    let r = report(&out);
    assert!(r["groups"].split(',').any(|g| g == "1000"), "{r:?}");
    ok(b.nook(&["delete", "--force", &id]));
}
