//! AppArmor and SELinux. On a host without them, a config (or an exec process) that asks
//! for a profile or label is refused with an error naming the field, and nothing is left
//! behind. With AppArmor enabled (the test-vm guest: Debian's kernel, the apparmor
//! package), a profile loaded here confines the container's process and `exec`'d ones:
//! /proc/self/attr/current names it and its deny rule bites, even when the config binds
//! stand-ins over the /proc attr files nook writes (CVE-2025-52881 class).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fails, ok, text, Bundle};
use serde_json::json;

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Run a container with this config change; it must fail naming `field`, leaving nothing.
fn refused(b: &Bundle, field: &str, f: impl FnOnce(&mut serde_json::Value)) {
    b.config(f);
    let id = b.id();
    let err = fails(&b.nook(&["run", &id, "--bundle", b.path_str()]));
    assert!(
        err.contains(field),
        "the error does not name {field}: {err}"
    );
    assert!(err.contains("not enabled on this host"), "{err}");
    b.assert_clean(&id);
}

#[test]
fn apparmor_profile_without_apparmor_is_refused() {
    if common::skip() {
        return;
    }
    if apparmor_enabled() {
        eprintln!("skipping: this host has AppArmor enabled");
        return;
    }
    let b = Bundle::new("lsm-aa-missing");
    b.args(&["hello"]);
    refused(&b, "process.apparmorProfile", |c| {
        c["process"]["apparmorProfile"] = json!("nook-test")
    });
}

#[test]
fn selinux_labels_without_selinux_are_refused() {
    if common::skip() {
        return;
    }
    if selinux_enabled() {
        eprintln!("skipping: this host has SELinux enabled");
        return;
    }
    let b = Bundle::new("lsm-se-missing");
    b.args(&["hello"]);
    refused(&b, "process.selinuxLabel", |c| {
        c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0:c1,c2")
    });
    refused(&b, "linux.mountLabel", |c| {
        c["process"]["selinuxLabel"] = json!("");
        c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0:c1,c2")
    });
}

#[test]
fn exec_asking_for_a_missing_lsm_is_refused() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("lsm-exec-missing");
    b.args(&["sleep", "60"]);
    let id = b.id();
    b.create(&id);
    let pid = b.state(&id)["pid"].as_i64().unwrap() as i32;
    let mut cases = vec![];
    if !apparmor_enabled() {
        cases.push(("--apparmor", "nook-test", "process.apparmorProfile"));
    }
    if !selinux_enabled() {
        cases.push((
            "--process-label",
            "system_u:system_r:container_t:s0",
            "process.selinuxLabel",
        ));
    }
    for (flag, value, field) in cases {
        let err = fails(&b.nook(&["exec", flag, value, &id, "/bin/probe", "hello"]));
        assert!(
            err.contains(field),
            "{flag}: the error does not name {field}: {err}"
        );
        // --process: the same field, from the file.
        let key = field.trim_start_matches("process.");
        let p = json!({"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["/bin/probe", "hello"],
                       key: value});
        let pf = b.dir.join("process.json");
        std::fs::write(&pf, p.to_string()).unwrap();
        let err = fails(&b.nook(&["exec", "--process", pf.to_str().unwrap(), &id]));
        assert!(
            err.contains(field),
            "--process: the error does not name {field}: {err}"
        );
    }
    // Only the init is left in the container, still waiting for start.
    assert_eq!(b.status(&id).as_deref(), Some("created"));
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    assert_eq!(tasks, 1);
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}

fn apparmor_parser() -> Option<PathBuf> {
    ["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A profile loaded into the kernel for the test's lifetime: everything allowed except
/// writing /tmp/deny-*.
struct Profile {
    name: String,
    file: PathBuf,
    parser: PathBuf,
}

impl Profile {
    fn load(b: &Bundle, parser: PathBuf) -> Profile {
        let name = format!("nook-test-{}", std::process::id());
        let text = format!(
            "profile {name} flags=(attach_disconnected,mediate_deleted) {{\n  file,\n  \
             capability,\n  network,\n  signal,\n  ptrace,\n  unix,\n  mount,\n  umount,\n  \
             pivot_root,\n  deny /tmp/deny-* w,\n}}\n"
        );
        let file = b.dir.join("profile");
        std::fs::write(&file, text).unwrap();
        let out = Command::new(&parser).arg("-r").arg(&file).output().unwrap();
        ok(out);
        Profile { name, file, parser }
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = Command::new(&self.parser)
            .arg("-R")
            .arg(&self.file)
            .output();
    }
}

#[test]
fn apparmor_profile_confines_the_process() {
    if common::skip() {
        return;
    }
    if !apparmor_enabled() {
        eprintln!("skipping: AppArmor is not enabled on this host");
        return;
    }
    let Some(parser) = apparmor_parser() else {
        eprintln!("skipping: apparmor_parser is not installed");
        return;
    };
    let b = Bundle::new("lsm-aa");
    let profile = Profile::load(&b, parser);
    // Stand-ins bound over the attr files a runtime writes for the init (pid 1):
    // the profile must still reach the process (CVE-2025-52881 class).
    let mut standins = vec![];
    for (i, dest) in ["/proc/1/attr/apparmor/exec", "/proc/1/attr/exec"]
        .iter()
        .enumerate()
    {
        let f = b.dir.join(format!("standin-{i}"));
        std::fs::write(&f, "stand-in\n").unwrap();
        let src = f.to_str().unwrap().to_string();
        b.config(|c| {
            c["mounts"].as_array_mut().unwrap().push(
                json!({"destination": dest, "type": "bind", "source": src, "options": ["bind"]}),
            )
        });
        standins.push(f);
    }
    b.config(|c| {
        c["process"]["apparmorProfile"] = json!(profile.name);
        c["root"]["readonly"] = json!(false);
    });
    let want = format!("{} (enforce)", profile.name);
    let current = text(&ok(b.probe(&["cat", "/proc/self/attr/current"])).stdout);
    assert_eq!(current.trim_end_matches(['\n', '\0']), want);
    let err = text(&b.probe(&["write", "/tmp/deny-x"]).stderr);
    assert!(
        !b.rootfs.join("tmp/deny-x").exists(),
        "the deny rule did not bite: {err}"
    );
    ok(b.probe(&["write", "/tmp/allowed-x"]));
    assert!(b.rootfs.join("tmp/allowed-x").exists());
    for f in &standins {
        assert_eq!(
            std::fs::read_to_string(f).unwrap(),
            "stand-in\n",
            "{}",
            f.display()
        );
    }
    // The attack was in place: inside, pid 1's attr file is the stand-in.
    let inside = text(&ok(b.probe(&["cat", "/proc/1/attr/apparmor/exec"])).stdout);
    assert_eq!(inside, "stand-in\n");

    // A non-root process user: the attr file is opened after the uid change.
    b.config(|c| c["process"]["user"] = json!({"uid": 1000, "gid": 1000}));
    let current = text(&ok(b.probe(&["cat", "/proc/self/attr/current"])).stdout);
    assert_eq!(current.trim_end_matches(['\n', '\0']), want, "as uid 1000");

    // A seccomp profile without openat2 (older ones), loaded early because no_new_privs
    // is off: the attr file is opened after the load and must still be reached (from
    // here on, for init and exec).
    b.config(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["openat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let current = text(&ok(b.probe(&["cat", "/proc/self/attr/current"])).stdout);
    assert_eq!(
        current.trim_end_matches(['\n', '\0']),
        want,
        "openat2 filtered"
    );

    // exec: the container's profile, or the one --apparmor names.
    b.config(|c| c["process"]["user"] = json!({"uid": 0, "gid": 0}));
    b.args(&["sleep", "60"]);
    let id = b.id();
    b.create(&id);
    let cat = |flags: &[&str]| {
        let mut v = vec!["exec"];
        v.extend_from_slice(flags);
        v.extend_from_slice(&[&id, "/bin/probe", "cat", "/proc/self/attr/current"]);
        text(&ok(b.nook(&v)).stdout)
            .trim_end_matches(['\n', '\0'])
            .to_string()
    };
    assert_eq!(cat(&[]), want, "exec");
    assert_eq!(
        cat(&["--apparmor", "unconfined"]),
        "unconfined",
        "exec --apparmor"
    );
    let out = b.nook(&["exec", &id, "/bin/probe", "write", "/tmp/deny-y"]);
    assert!(
        !b.rootfs.join("tmp/deny-y").exists(),
        "exec: {}",
        text(&out.stderr)
    );
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);

    // A profile that is not loaded: refused at the exec, naming the field.
    b.config(|c| c["process"]["apparmorProfile"] = json!("nook-test-not-loaded"));
    b.args(&["hello"]);
    let id = b.id();
    let err = fails(&b.nook(&["run", &id, "--bundle", b.path_str()]));
    assert!(err.contains("process.apparmorProfile"), "{err}");
    assert!(err.contains("no AppArmor profile"), "{err}");
    b.assert_clean(&id);
}

#[test]
fn features_report_lsm_support() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("lsm-features");
    let out = ok(b.nook(&["features"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The runtime spec's meaning: nook can apply them (the host may still lack them).
    assert_eq!(v["linux"]["apparmor"]["enabled"], json!(true));
    assert_eq!(v["linux"]["selinux"]["enabled"], json!(true));
}

/// The first of `candidates` the loaded policy accepts as a context (the kernel checks
/// it through /sys/fs/selinux/context), other than `not`.
fn valid_context(candidates: &[&str], not: &str) -> Option<String> {
    use std::io::{Read, Write};
    candidates.iter().filter(|c| **c != not).find_map(|c| {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/sys/fs/selinux/context")
            .ok()?;
        f.write_all(c.as_bytes()).ok()?;
        let mut back = String::new();
        f.read_to_string(&mut back).ok()?;
        Some(c.to_string())
    })
}

fn context_of(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim_end_matches(['\0', '\n'])
        .to_string()
}

/// The security.selinux attribute of `path`.
fn file_context(path: &Path) -> String {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = vec![0u8; 512];
    // SAFETY: both names are valid C strings; the kernel writes at most buf.len() bytes.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"security.selinux".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert!(
        n >= 0,
        "getxattr {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    String::from_utf8_lossy(&buf[..n as usize])
        .trim_end_matches('\0')
        .to_string()
}

/// With SELinux enabled (`make test-vm` boots the guest a second time with
/// security=selinux, the policy loaded in permissive mode): process.selinuxLabel is the
/// init's context once it has exec'd, `exec --process-label` the exec'd process's, and
/// linux.mountLabel labels the container's tmpfs.
#[test]
fn selinux_labels_are_applied() {
    if common::skip() {
        return;
    }
    if !selinux_enabled() {
        eprintln!("skipping: SELinux is not enabled here (make test-vm boots a guest with it)");
        return;
    }
    let domains = [
        "system_u:system_r:kernel_t:s0",
        "system_u:system_r:initrc_t:s0",
        "system_u:system_r:unconfined_t:s0",
    ];
    let ours = context_of("/proc/self/attr/current");
    let label = valid_context(&domains, &ours).expect("a process context the policy accepts");
    let exec_label = valid_context(&domains, &label).expect("a second process context");
    let files = ["system_u:object_r:tmpfs_t:s0", "system_u:object_r:tmp_t:s0"];
    let mount_label = valid_context(&files, "").expect("a file context the policy accepts");
    let b = Bundle::new("lsm-selinux");
    b.config(|c| {
        c["process"]["selinuxLabel"] = json!(label);
        c["linux"]["mountLabel"] = json!(mount_label);
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs"}));
    });
    b.args(&["sleep", "60"]);
    let id = b.id();
    b.create(&id);
    ok(b.nook(&["start", &id]));
    let pid = b.state(&id)["pid"].as_i64().unwrap();
    let init = context_of(&format!("/proc/{pid}/attr/current"));
    let scratch = file_context(Path::new(&format!("/proc/{pid}/root/scratch")));
    let out = b.nook(&[
        "exec",
        "--process-label",
        &exec_label,
        &id,
        "/bin/probe",
        "cat",
        "/proc/self/attr/current",
    ]);
    ok(b.nook(&["delete", "--force", &id]));
    assert_eq!(init, label, "the init's context (ours: {ours})");
    assert_eq!(scratch, mount_label, "the tmpfs's context");
    let exec = text(&ok(out).stdout)
        .trim_end_matches(['\0', '\n'])
        .to_string();
    assert_eq!(exec, exec_label, "the exec'd process's context");
}
