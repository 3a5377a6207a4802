//! CVE-2025-52881 class: a procfs write the runtime makes (linux.sysctl, oomScoreAdj,
//! LSM attr files) redirected by a mount or symlink the container controls. The config
//! binds host stand-in files (or a directory holding a symlink) over the /proc paths
//! nook writes; each test asserts the stand-in is unchanged, that the real value
//! took effect (seen from the host, or through the container's own network namespace),
//! and that the over-mount really was in place inside (so the attack was real).
//! (AppArmor's attr file is attacked in tests/lsm.rs, where AppArmor is enabled.)

mod common;

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use common::{fails, ok, text, Bundle};
use serde_json::json;

const STANDIN: &str = "stand-in, must not change\n";

/// A host file with known content, bound over `dest` inside the container.
fn bind_standin(b: &Bundle, name: &str, dest: &str) -> std::path::PathBuf {
    let f = b.dir.join(name);
    std::fs::write(&f, STANDIN).unwrap();
    let src = f.to_str().unwrap().to_string();
    b.config(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": dest, "type": "bind", "source": src, "options": ["bind"]}));
    });
    f
}

/// `path` read by `cat` in the network namespace of process `pid` (sysctls under
/// /proc/sys/net belong to the opener's network namespace).
fn read_in_netns(pid: i32, path: &str) -> String {
    let ns = File::open(format!("/proc/{pid}/ns/net")).unwrap();
    let mut c = Command::new("cat");
    c.arg(path);
    // SAFETY: setns is async-signal-safe; the closure only calls it.
    unsafe {
        c.pre_exec(move || {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
        });
    }
    text(&ok(c.output().unwrap()).stdout).trim().to_string()
}

fn init_pid(b: &Bundle, id: &str) -> i32 {
    b.state(id)["pid"]
        .as_i64()
        .expect("state has the init's pid") as i32
}

fn exec_cat(b: &Bundle, id: &str, path: &str) -> String {
    text(&ok(b.nook(&["exec", id, "/bin/probe", "cat", path])).stdout)
}

#[test]
fn cve_2025_52881_sysctl_write_through_a_bind_mount() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("procfs-sysctl");
    b.args(&["sleep", "60"]);
    let standin = bind_standin(&b, "somaxconn", "/proc/sys/net/core/somaxconn");
    b.config(|c| {
        c["linux"]["sysctl"] = json!({
            "net.core.somaxconn": "1234",
            "net.ipv4.ip_unprivileged_port_start": "345",
        });
    });
    let id = b.id();
    b.create(&id);
    let pid = init_pid(&b, &id);
    assert_eq!(
        std::fs::read_to_string(&standin).unwrap(),
        STANDIN,
        "the bind-mounted host file was written"
    );
    assert_eq!(read_in_netns(pid, "/proc/sys/net/core/somaxconn"), "1234");
    assert_eq!(
        read_in_netns(pid, "/proc/sys/net/ipv4/ip_unprivileged_port_start"),
        "345"
    );
    // The attack was in place: inside, the path shows the stand-in.
    assert_eq!(exec_cat(&b, &id, "/proc/sys/net/core/somaxconn"), STANDIN);
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}

#[test]
fn cve_2025_52881_sysctl_write_through_a_symlink() {
    if common::skip() {
        return;
    }
    // A directory bound over /proc/sys/net/core whose "somaxconn" is a symlink to a file
    // in the rootfs (a host-visible directory): following it would write there.
    let b = Bundle::new("procfs-symlink");
    b.args(&["sleep", "60"]);
    let dir = b.dir.join("core");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::symlink("/tmp/target", dir.join("somaxconn")).unwrap();
    let target = b.rootfs.join("tmp/target");
    std::fs::write(&target, STANDIN).unwrap();
    let src = dir.to_str().unwrap().to_string();
    b.config(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/proc/sys/net/core", "type": "bind", "source": src,
            "options": ["rbind"]
        }));
        c["linux"]["sysctl"] = json!({"net.core.somaxconn": "1235"});
        c["root"]["readonly"] = json!(false);
    });
    let id = b.id();
    b.create(&id);
    let pid = init_pid(&b, &id);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        STANDIN,
        "the symlink was followed"
    );
    assert_eq!(read_in_netns(pid, "/proc/sys/net/core/somaxconn"), "1235");
    assert_eq!(
        text(
            &ok(b.nook(&[
                "exec",
                &id,
                "/bin/probe",
                "readlink",
                "/proc/sys/net/core/somaxconn"
            ]))
            .stdout
        )
        .trim(),
        "/tmp/target",
        "the symlink was in place inside"
    );
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}

#[test]
fn cve_2025_52881_oom_score_adj_write_through_a_bind_mount() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("procfs-oom");
    b.args(&["sleep", "60"]);
    // The container's init is pid 1 in its pid namespace.
    let standin = bind_standin(&b, "oom_score_adj", "/proc/1/oom_score_adj");
    b.config(|c| c["process"]["oomScoreAdj"] = json!(321));
    let id = b.id();
    b.create(&id);
    let pid = init_pid(&b, &id);
    assert_eq!(std::fs::read_to_string(&standin).unwrap(), STANDIN);
    let real = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    assert_eq!(real.trim(), "321", "oomScoreAdj did not reach the init");
    assert_eq!(exec_cat(&b, &id, "/proc/1/oom_score_adj"), STANDIN);

    // exec with its own oomScoreAdj, into the same container: its write goes to
    // the exec'd process (read by itself through its own /proc/self), not a stand-in.
    let p = json!({"cwd": "/", "user": {"uid": 0, "gid": 0}, "oomScoreAdj": 222,
               "args": ["/bin/probe", "report"], "env": ["PATH=/bin"]});
    let pf = b.dir.join("process.json");
    std::fs::write(&pf, p.to_string()).unwrap();
    let out = ok(b.nook(&["exec", "--process", pf.to_str().unwrap(), &id]));
    assert_eq!(common::report(&out)["oom_score_adj"], "222");
    assert_eq!(std::fs::read_to_string(&standin).unwrap(), STANDIN);
    let real = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    assert_eq!(real.trim(), "321", "exec's oomScoreAdj landed on the init");
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}

#[test]
fn sysctl_keys_that_leave_proc_sys_are_refused() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("procfs-keys");
    let before = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    for key in [
        "net/../../kernel/core_pattern",
        "net.core..somaxconn",
        "..",
        "kernel.core_pattern",
    ] {
        b.config(|c| c["linux"]["sysctl"] = json!({ key: "|/tmp/nook-pwned" }));
        let id = b.id();
        let err = fails(&b.nook(&["run", &id, "--bundle", b.path_str()]));
        assert!(err.contains("linux.sysctl["), "{key}: {err}");
        b.assert_clean(&id);
    }
    let after = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    assert_eq!(after, before, "the host's core_pattern changed");
    assert!(!Path::new("/tmp/nook-pwned").exists());
}

#[test]
fn cve_2025_52881_sysctl_and_oom_in_a_user_namespace() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("procfs-userns");
    b.args(&["sleep", "60"]);
    b.in_user_namespace();
    // net.core.somaxconn is not shown in a network namespace owned by a user
    // namespace on older kernels (6.1); this one is.
    let sysctl = bind_standin(
        &b,
        "port_start",
        "/proc/sys/net/ipv4/ip_unprivileged_port_start",
    );
    let oom = bind_standin(&b, "oom_score_adj", "/proc/1/oom_score_adj");
    b.config(|c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "346"});
        c["process"]["oomScoreAdj"] = json!(456);
    });
    let id = b.id();
    b.create(&id);
    let pid = init_pid(&b, &id);
    assert_eq!(std::fs::read_to_string(&sysctl).unwrap(), STANDIN);
    assert_eq!(std::fs::read_to_string(&oom).unwrap(), STANDIN);
    assert_eq!(
        read_in_netns(pid, "/proc/sys/net/ipv4/ip_unprivileged_port_start"),
        "346"
    );
    let real = std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).unwrap();
    assert_eq!(real.trim(), "456");
    assert_eq!(
        exec_cat(&b, &id, "/proc/sys/net/ipv4/ip_unprivileged_port_start"),
        STANDIN
    );
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}

/// A user namespace without its own pid namespace: the kernel refuses a new procfs
/// there (the pid namespace belongs to the host's user namespace), so nook writes
/// through the /proc it sees before any container mount, checked to be a procfs root.
#[test]
fn cve_2025_52881_sysctl_in_a_user_namespace_sharing_the_host_pids() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("procfs-userns-hostpid");
    b.args(&["sleep", "60"]);
    b.in_user_namespace();
    b.config(|c| {
        // The host's pids: /proc is bound, not mounted (a new procfs is refused).
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["type"] == "proc" {
                *m = json!({"destination": "/proc", "type": "bind", "source": "/proc",
                            "options": ["rbind"]});
            }
        }
        let linux = &mut c["linux"];
        let ns = linux["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
        linux["sysctl"] = json!({"net.ipv4.ip_unprivileged_port_start": "347"});
    });
    let sysctl = bind_standin(
        &b,
        "port_start",
        "/proc/sys/net/ipv4/ip_unprivileged_port_start",
    );
    let id = b.id();
    b.create(&id);
    let pid = init_pid(&b, &id);
    assert_eq!(std::fs::read_to_string(&sysctl).unwrap(), STANDIN);
    assert_eq!(
        read_in_netns(pid, "/proc/sys/net/ipv4/ip_unprivileged_port_start"),
        "347"
    );
    assert_eq!(
        exec_cat(&b, &id, "/proc/sys/net/ipv4/ip_unprivileged_port_start"),
        STANDIN
    );
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}
