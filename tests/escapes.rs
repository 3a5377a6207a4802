//! Runtime escapes attempted from inside a container (issue 6), each test named after
//! the CVE class it reproduces and asserting that what it aimed at on the host is
//! unchanged. The attacks themselves are in tests/probe/escape.inc. Mount, device-node
//! and procfs redirections are in escape_mounts.rs and escape_procfs.rs.
//!
//! Needs root; skipped otherwise.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::json;

/// A private copy of nook in the test's temp dir (a writable filesystem, so nook has
/// to protect itself): the attack aims at it, so if the defence fails only the copy
/// is damaged, and the test sees it.
fn nook_copy(b: &Bundle) -> PathBuf {
    let p = b.dir.join("nook-under-attack");
    copy_exe(Path::new(NOOK), &p);
    p
}

/// An executable in the rootfs whose interpreter is /proc/self/exe: exec'ing it runs
/// whatever binary the exec'ing process came from, inside the container.
fn self_exe_script(b: &Bundle, name: &str) {
    let p = b.rootfs.join(name);
    fs::write(&p, "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

fn lines_with<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

/// Repeat `attempt` (which makes nook run inside the container) until the attacker has
/// grabbed a process and tried to write through it, then wait for that try to end.
fn until_hijack_tried(run: &Spawned, mut attempt: impl FnMut(), tries: usize) -> String {
    let tried = |out: &str| {
        let grabs = lines_with(out, "grab ").len();
        grabs > 0 && lines_with(out, "write ").len() >= grabs
    };
    for _ in 0..tries {
        attempt();
        if tried(&run.stdout()) {
            break;
        }
    }
    wait_until(Duration::from_secs(10), || {
        let out = run.stdout();
        lines_with(&out, "write ").len() >= lines_with(&out, "grab ").len()
    });
    run.stdout()
}

/// The binary is unchanged, the attacker really held nook's /proc/PID/exe (else the test
/// proved nothing), and every reopen for writing failed with EROFS.
fn assert_hijack_failed(nook: &Path, before: &[u8], out: &str) {
    assert_hijack_failed_with(nook, before, out, " EROFS");
}

/// As `assert_hijack_failed`, with every write attempt ending in `refusal`.
fn assert_hijack_failed_with(nook: &Path, before: &[u8], out: &str, refusal: &str) {
    assert!(
        fs::read(nook).unwrap() == before,
        "the runtime binary was changed from inside the container:\n{out}"
    );
    let size = format!("size={}", before.len());
    assert!(
        lines_with(out, "grab ").iter().any(|l| l.ends_with(&size)),
        "the attacker never got hold of nook's /proc/PID/exe, so the test proved nothing:\n{out}"
    );
    let writes = lines_with(out, "write ");
    assert!(!writes.is_empty(), "no write attempt: {out}");
    for w in writes {
        assert!(
            w.ends_with(refusal),
            "writing to nook through its /proc/PID/exe: {w}\n{out}"
        );
    }
}

/// CVE-2019-5736: `exec` runs a `#!/proc/self/exe` script, so nook's own binary runs
/// inside the container; a process there holds /proc/PID/exe open and, once nook has
/// exited, reopens it for writing. nook must run from a read-only view of itself, so
/// the reopen fails (EROFS) and the binary on the host is byte-for-byte unchanged.
#[test]
fn cve_2019_5736_runtime_binary_overwrite_through_proc_exe() {
    if skip() {
        return;
    }
    let b = Bundle::new("cve5736");
    let nook = nook_copy(&b);
    let before = fs::read(&nook).unwrap();
    self_exe_script(&b, "evil");
    b.args(&["esc-exe-hijack", "60"]);
    let id = b.id();
    let run = b.spawn(b.command_with(&nook, &["run", "--detach", &id, "--bundle", b.path_str()]));
    assert!(
        run.wait_stdout("hunting", Duration::from_secs(20)),
        "the attacker did not start: {}",
        run.stderr()
    );
    // Each exec makes nook run /evil, i.e. nook again, inside the container; a few
    // tries give the attacker (polling /proc) a process to grab.
    let attempt = || {
        let mut e = b.spawn(b.command_with(&nook, &["exec", &id, "/evil"]));
        e.output_within(TIMEOUT).expect("exec timed out");
    };
    let out = until_hijack_tried(&run, attempt, 30);
    ok(b.command_with(&nook, &["delete", "--force", &id])
        .output()
        .unwrap());
    assert_hijack_failed(&nook, &before, &out);
}

/// CVE-2019-5736 through a foreground `run`'s own entrypoint, where nook does not
/// re-execute itself: its init execs the app through the sealed exec trampoline
/// (linux::trampoline), so a `#!/proc/self/exe --version` entrypoint runs the
/// trampoline again, which refuses such an argv (exit 127, no output): nook never runs
/// inside. With a filter that denies execveat the trampoline cannot serve, and nook
/// re-executes from its read-only view as before: then nook itself runs inside (its
/// usage error for `--version /evil`), from a view that cannot be written; so it does
/// where the kernel refuses executable memfds. The binary is unchanged.
#[test]
fn cve_2019_5736_foreground_run_entrypoint_reaches_only_the_trampoline() {
    if skip() {
        return;
    }
    let b = Bundle::new("cve5736t");
    let nook = nook_copy(&b);
    let before = fs::read(&nook).unwrap();
    let p = b.rootfs.join("evil");
    fs::write(&p, "#!/proc/self/exe --version\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    b.config(|c| c["process"]["args"] = json!(["/evil"]));
    let run = |b: &Bundle| {
        let id = b.id();
        let mut s = b.spawn(b.command_with(&nook, &["run", &id, "--bundle", b.path_str()]));
        let out = s.output_within(TIMEOUT).expect("run timed out");
        b.assert_clean(&id);
        out
    };
    let out = run(&b);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(code(&out), 127, "stdout {stdout:?} stderr {stderr:?}");
    assert!(
        !stdout.contains("nook") && stderr.is_empty(),
        "something other than the trampoline ran: stdout {stdout:?} stderr {stderr:?}"
    );
    assert!(fs::read(&nook).unwrap() == before);

    // Where executable memfds are refused (vm.memfd_noexec = 2, set in a pid namespace
    // of the test's own: the setting is per pid namespace), the re-exec serves. The
    // setting exists from Linux 6.3 (the guest's 6.1 has none).
    if Path::new("/proc/sys/vm/memfd_noexec").exists() {
        memfd_noexec_gives_the_re_exec(&b, &nook);
    } else {
        eprintln!("skipping the memfd_noexec case: this kernel has no vm.memfd_noexec");
    }

    b.config(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]
        })
    });
    let out = run(&b);
    assert!(
        code(&out) == 2 && text(&out.stderr).contains("unrecognized subcommand '/evil'"),
        "without the trampoline, the re-executed nook should have run inside: {out:?}"
    );
    assert!(fs::read(&nook).unwrap() == before);
}

/// `run` under vm.memfd_noexec = 2 (in a pid namespace of its own): the trampoline's
/// memfd is refused, so nook re-executes, and the `#!/proc/self/exe` entrypoint runs
/// that read-only nook (its usage error).
fn memfd_noexec_gives_the_re_exec(b: &Bundle, nook: &Path) {
    let noexec = [
        "unshare",
        "--pid",
        "--fork",
        "--mount-proc",
        "sh",
        "-c",
        "echo 2 >/proc/sys/vm/memfd_noexec && exec \"$0\" \"$@\"",
    ];
    let id = b.id();
    let mut s = b.spawn(b.command_through(&noexec, nook, &["run", &id, "--bundle", b.path_str()]));
    let out = s.output_within(TIMEOUT).expect("run timed out");
    b.assert_clean(&id);
    assert!(
        code(&out) == 2 && text(&out.stderr).contains("unrecognized subcommand '/evil'"),
        "with memfd_noexec = 2, the re-executed nook should have run inside: {out:?}"
    );
}

/// Kills and reaps the process holding a user namespace open.
struct Holder(std::process::Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// CVE-2019-5736 when nook lacks CAP_SYS_ADMIN over the host's mounts (it runs in a
/// user namespace, as in rootless setups): open_tree is refused, so nook re-executes
/// from a sealed memfd copy of itself. The attacker holds that copy's /proc/PID/exe;
/// its reopen for writing works (a memfd) but the write is refused by the seal.
#[test]
fn cve_2019_5736_runtime_binary_overwrite_without_cap_sys_admin() {
    if skip() {
        return;
    }
    // A user namespace whose uid and gid 0 are the host's, so nook there is root in
    // name but has no capability over the host's mount namespace.
    let holder = Holder(
        std::process::Command::new("unshare")
            .args(["--user", "--map-root-user", "sleep", "300"])
            .spawn()
            .expect("unshare (util-linux)"),
    );
    let userns = format!("/proc/{}/ns/user", holder.0.id());
    let ours = fs::read_link("/proc/self/ns/user").unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || fs::read_link(&userns)
            .is_ok_and(|n| n != ours)),
        "unshare never made its user namespace"
    );
    let enter = format!("--user={userns}");
    let wrapper = ["nsenter", enter.as_str(), "--"];
    let b = Bundle::new("cve5736m");
    b.config(|c| {
        let linux = &mut c["linux"];
        linux["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        // The device cgroup needs CAP_SYS_ADMIN on the host, which nook lacks here.
        linux.as_object_mut().unwrap().remove("resources");
        let map = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
        linux["uidMappings"] = map.clone();
        linux["gidMappings"] = map;
        // Only id 0 is mapped: devpts cannot take gid=5.
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["type"] == "devpts" {
                let opts = m["options"].as_array_mut().unwrap();
                opts.retain(|o| !o.as_str().unwrap_or("").starts_with("gid="));
            }
        }
    });
    let nook = nook_copy(&b);
    let before = fs::read(&nook).unwrap();
    self_exe_script(&b, "evil");
    b.args(&["esc-exe-hijack", "60"]);
    let id = b.id();
    let run = b.spawn(b.command_through(
        &wrapper,
        &nook,
        &["run", "--detach", &id, "--bundle", b.path_str()],
    ));
    assert!(
        run.wait_stdout("hunting", Duration::from_secs(20)),
        "the attacker did not start: {}",
        run.stderr()
    );
    let attempt = || {
        let mut e = b.spawn(b.command_through(&wrapper, &nook, &["exec", &id, "/evil"]));
        e.output_within(TIMEOUT).expect("exec timed out");
    };
    let out = until_hijack_tried(&run, attempt, 30);
    ok(
        b.command_through(&wrapper, &nook, &["delete", "--force", &id])
            .output()
            .unwrap(),
    );
    assert!(
        lines_with(&out, "grab ")
            .iter()
            .any(|l| l.contains("via=/memfd:nook")),
        "nook did not run from its memfd copy:\n{out}"
    );
    assert_hijack_failed_with(&nook, &before, &out, " EPERM");
}

/// CVE-2019-5736, through a container's init: a second container joins the
/// attacker's pid namespace and its entrypoint is a `#!/proc/self/exe` script, so
/// the init (a fork of nook) runs nook inside; the attacker's reopen must fail.
#[test]
fn cve_2019_5736_runtime_binary_overwrite_through_init_entrypoint() {
    if skip() {
        return;
    }
    let attacker = Bundle::new("cve5736a");
    let victim = Bundle::new("cve5736v");
    let nook = nook_copy(&attacker);
    let before = fs::read(&nook).unwrap();
    attacker.args(&["esc-exe-hijack", "60"]);
    let aid = attacker.id();
    let run = attacker.spawn(attacker.command_with(
        &nook,
        &["run", "--detach", &aid, "--bundle", attacker.path_str()],
    ));
    assert!(
        run.wait_stdout("hunting", Duration::from_secs(20)),
        "the attacker did not start: {}",
        run.stderr()
    );
    let pid = attacker.state(&aid)["pid"].as_i64().unwrap();
    self_exe_script(&victim, "evil");
    victim.config(|c| {
        c["process"]["args"] = json!(["/evil"]);
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = json!(format!("/proc/{pid}/ns/pid"));
            }
        }
    });
    let attempt = || {
        let vid = victim.id();
        let mut r =
            victim.spawn(victim.command_with(&nook, &["run", &vid, "--bundle", victim.path_str()]));
        r.output_within(TIMEOUT).expect("run timed out");
    };
    let out = until_hijack_tried(&run, attempt, 20);
    ok(attacker
        .command_with(&nook, &["delete", "--force", &aid])
        .output()
        .unwrap());
    assert_hijack_failed(&nook, &before, &out);
}

/// CVE-2016-9962: a process in the container ptraces every new process while `exec`
/// enters it; the nook child (which holds host fds and full capabilities until it
/// execs) must never be attachable: every attach it gets is to the exec'd program.
#[test]
fn cve_2016_9962_ptrace_of_the_process_entering_the_container() {
    if skip() {
        return;
    }
    let b = Bundle::new("cve9962");
    b.args(&["esc-ptrace-hunt", "60"]);
    let id = b.id();
    let run = b.spawn(b.command(&["run", "--detach", &id, "--bundle", b.path_str()]));
    assert!(
        run.wait_stdout("hunting", Duration::from_secs(20)),
        "the attacker did not start: {}",
        run.stderr()
    );
    for _ in 0..20 {
        ok(b.nook(&["exec", &id, "/bin/probe", "sleep", "0.2"]));
    }
    let out = run.stdout();
    ok(b.nook(&["delete", "--force", &id]));
    let attaches = lines_with(&out, "attach ");
    for a in &attaches {
        assert!(
            a.ends_with(" exe=/bin/probe"),
            "attached to a process that was not (yet) the container's program: {a}\n{out}"
        );
    }
    // The hunter must have been able to trace something, or it proved nothing: each
    // exec'd program is fair game (unless Yama restricts ptrace to descendants).
    let yama = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").unwrap_or_default();
    if matches!(yama.trim(), "" | "0") {
        assert!(
            !attaches.is_empty(),
            "the hunter attached to nothing at all:\n{out}"
        );
    } else {
        eprintln!(
            "Yama ptrace_scope {}: attaches to exec'd programs not required",
            yama.trim()
        );
    }
}

/// CVE-2024-21626: nook's own fds (state dir, namespaces, cgroup dirs) must not reach
/// the container: process.cwd set to /proc/self/fd/N for every small N never gives the
/// process a working directory outside its root, and the process has only stdio.
#[test]
fn cve_2024_21626_leaked_fd_as_working_directory() {
    if skip() {
        return;
    }
    let b = Bundle::new("cve21626");
    b.args(&["esc-fds"]);
    for n in 3..12 {
        let cwd = format!("/proc/self/fd/{n}");
        b.config(|c| c["process"]["cwd"] = json!(cwd));
        let id = b.id();
        let out = b.nook(&["run", &id, "--bundle", b.path_str()]);
        let text_out = text(&out.stdout);
        if out.status.success() {
            // Only a cwd inside the container's root is acceptable.
            let cwd_line = lines_with(&text_out, "getcwd ");
            assert_eq!(cwd_line.len(), 1, "{text_out}");
            assert!(
                cwd_line[0].starts_with("getcwd /"),
                "cwd {cwd} gave a directory outside the root: {text_out}"
            );
        } else {
            assert!(
                text(&out.stderr).contains("process.cwd"),
                "cwd {cwd}: the error should name process.cwd: {}",
                text(&out.stderr)
            );
        }
        b.assert_clean(&id);
    }
    // And an ordinary run: stdio only, none of nook's own fds.
    b.config(|c| c["process"]["cwd"] = json!("/"));
    let out = text(&ok(b.probe(&["esc-fds"])).stdout);
    let fds: Vec<&str> = lines_with(&out, "fd ");
    assert_eq!(fds.len(), 3, "only stdio may reach the app: {out}");
}

/// CVE-2024-21626 through exec: `exec --cwd /proc/self/fd/N` must not hand the new
/// process one of nook's fds as its working directory.
#[test]
fn cve_2024_21626_leaked_fd_as_exec_cwd() {
    if skip() {
        return;
    }
    let b = Bundle::new("cve21626x");
    b.args(&["sleep", "60"]);
    let id = b.id();
    ok(b.nook(&["run", "--detach", &id, "--bundle", b.path_str()]));
    for n in 3..12 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = b.nook(&["exec", "--cwd", &cwd, &id, "/bin/probe", "esc-fds"]);
        if out.status.success() {
            let o = text(&out.stdout);
            assert!(
                lines_with(&o, "getcwd /").len() == 1,
                "exec --cwd {cwd} gave a directory outside the root: {o}"
            );
            assert_eq!(lines_with(&o, "fd ").len(), 3, "only stdio: {o}");
        }
    }
    ok(b.nook(&["delete", "--force", &id]));
}

/// Write a file capability (VFS_CAP_REVISION_2): permitted and inheritable masks.
fn set_file_caps(path: &Path, permitted: u64, inheritable: u64) {
    let mut v = Vec::new();
    v.extend_from_slice(&0x0200_0000u32.to_le_bytes());
    v.extend_from_slice(&(permitted as u32).to_le_bytes());
    v.extend_from_slice(&(inheritable as u32).to_le_bytes());
    v.extend_from_slice(&((permitted >> 32) as u32).to_le_bytes());
    v.extend_from_slice(&((inheritable >> 32) as u32).to_le_bytes());
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            c"security.capability".as_ptr(),
            v.as_ptr().cast(),
            v.len(),
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "setxattr security.capability: {}",
        std::io::Error::last_os_error()
    );
}

fn cap_hex(report: &std::collections::HashMap<String, String>, key: &str) -> u64 {
    let v = report
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing: {report:?}"));
    u64::from_str_radix(v.trim_start_matches("0x"), 16).unwrap()
}

/// CVE-2022-29162: a non-root process must not gain capabilities by exec'ing a file
/// whose inheritable file capabilities are set: nook's default config gives no
/// inheritable capabilities, so the exec'd file gets nothing.
#[test]
fn cve_2022_29162_inheritable_capabilities_across_exec() {
    if skip() {
        return;
    }
    let b = Bundle::new("cve29162");
    let fcap = b.rootfs.join("bin/fcap-probe");
    copy_exe(probe(), &fcap);
    const NET_RAW: u64 = 1 << 13;
    const SYS_ADMIN: u64 = 1 << 21;
    const DAC_OVERRIDE: u64 = 1 << 1;
    set_file_caps(&fcap, 0, NET_RAW | SYS_ADMIN | DAC_OVERRIDE);
    b.config(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["args"] = json!(["/bin/fcap-probe", "report"]);
    });
    let id = b.id();
    let r = report(&ok(b.nook(&["run", &id, "--bundle", b.path_str()])));
    assert_eq!(
        cap_hex(&r, "cap_inh"),
        0,
        "nook's default config has no inheritable caps: {r:?}"
    );
    assert_eq!(
        cap_hex(&r, "cap_prm"),
        0,
        "exec of an fI file gave permitted caps: {r:?}"
    );
    assert_eq!(
        cap_hex(&r, "cap_eff"),
        0,
        "exec of an fI file gave effective caps: {r:?}"
    );
    assert_eq!(cap_hex(&r, "cap_amb"), 0, "{r:?}");
}

/// Loading a kernel module, mounting, remounting the root, setting the hostname,
/// domain name or clock, making a block device, all without the capability for it
/// (the default config): every one is refused, and the host's name and clock are
/// untouched.
#[test]
fn privileged_operations_without_the_capability_are_refused() {
    if skip() {
        return;
    }
    let b = Bundle::new("privops");
    let host_name = nix::unistd::gethostname().unwrap();
    // Twice: with nook's default seccomp profile, and with capabilities alone.
    for seccomp in [true, false] {
        if !seccomp {
            b.config(|c| {
                c["linux"].as_object_mut().unwrap().remove("seccomp");
            });
        }
        let out = text(&ok(b.probe(&["esc-privileged"])).stdout);
        for op in [
            "init_module",
            "finit_module",
            "delete_module",
            "mount_tmpfs",
            "remount_root_rw",
            "sethostname",
            "setdomainname",
            "settimeofday",
            "clock_settime",
            "mknod_block",
            "chroot",
        ] {
            let line = lines_with(&out, &format!("{op} "));
            assert_eq!(line.len(), 1, "{op}: {out}");
            // A kernel built without module support has no such calls at all (the
            // filter answers EPERM before the kernel is asked).
            let refused =
                if !seccomp && op.contains("module") && !Path::new("/proc/modules").exists() {
                    "ENOSYS"
                } else {
                    "EPERM"
                };
            assert_eq!(
                line[0],
                format!("{op} {refused}"),
                "seccomp {seccomp}: {out}"
            );
        }
    }
    assert_eq!(nix::unistd::gethostname().unwrap(), host_name);
}

/// A device node the devices list does not allow: even with CAP_MKNOD granted, the
/// node for the host's first disk (8:0) and /dev/mem (1:1) cannot be opened.
#[test]
fn device_not_in_the_devices_list_cannot_be_opened() {
    if skip() {
        return;
    }
    let b = Bundle::new("devdeny");
    b.config(|c| {
        for set in ["bounding", "effective", "permitted"] {
            let caps = c["process"]["capabilities"][set].as_array_mut().unwrap();
            caps.push(json!("CAP_MKNOD"));
        }
    });
    for (path, kind, maj, min) in [("/dev/x-sda", "b", "8", "0"), ("/dev/x-mem", "c", "1", "1")] {
        let out = text(&ok(b.probe(&["esc-device", path, kind, maj, min])).stdout);
        assert!(
            out.lines().any(|l| l == "open EPERM"),
            "opening {kind} {maj}:{min} was not refused: {out}"
        );
    }
}
