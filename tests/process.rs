//! The container process's own attributes as the kernel reports them: names,
//! identity, umask, cwd, environment, capabilities, rlimits, no_new_privs,
//! oom_score_adj, sysctls and open file descriptors.

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;

use common::{ok, report, text, Bundle};
use serde_json::{json, Value};

fn process(b: &Bundle, f: impl FnOnce(&mut Value)) {
    b.config(|c| f(&mut c["process"]));
}

fn mask(hex: &str) -> u64 {
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{hex:?}: {e}"))
}

#[test]
fn hostname_and_domainname() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-names");
    b.config(|c| {
        c["hostname"] = json!("box1");
        c["domainname"] = json!("example.org");
    });
    let r = b.report();
    assert_eq!(r["hostname"], "box1");
    assert_eq!(r["domainname"], "example.org");
}

#[test]
fn user_groups_and_umask() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-user");
    process(&b, |p| {
        p["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o027});
    });
    let r = b.report();
    for (k, v) in [
        ("uid", "1000"),
        ("euid", "1000"),
        ("gid", "1000"),
        ("egid", "1000"),
    ] {
        assert_eq!(r[k], v, "{k}");
    }
    assert_eq!(r["groups"], "10,20");
    assert_eq!(r["umask"], "0027");
}

#[test]
fn root_has_no_extra_groups_and_default_umask() {
    if common::skip() {
        return;
    }
    let r = Bundle::new("proc-root").report();
    assert_eq!((r["uid"].as_str(), r["gid"].as_str()), ("0", "0"));
    assert_eq!(r["groups"], "", "the caller's groups leaked in");
    assert_eq!(r["umask"], "0022");
}

#[test]
fn cwd_is_entered() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-cwd");
    process(&b, |p| p["cwd"] = json!("/home/app"));
    assert_eq!(b.report()["cwd"], "/home/app");
}

#[test]
fn missing_cwd_is_created() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-newcwd");
    b.config(|c| c["root"]["readonly"] = json!(false));
    process(&b, |p| p["cwd"] = json!("/work/a/b"));
    assert_eq!(b.report()["cwd"], "/work/a/b");
    for d in ["work", "work/a", "work/a/b"] {
        let mode = std::fs::metadata(b.rootfs.join(d))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "/{d} was created with mode {mode:o}");
    }
}

#[test]
fn missing_cwd_is_created_under_a_readonly_root() {
    if common::skip() {
        return;
    }
    // The default config has a read-only root; runc makes the cwd before the remount.
    let b = Bundle::new("proc-newcwd-ro");
    process(&b, |p| p["cwd"] = json!("/work/a/b"));
    assert_eq!(b.report()["cwd"], "/work/a/b");
    assert!(b.rootfs.join("work/a/b").is_dir());
}

#[test]
fn environment_and_home() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-env");
    process(&b, |p| {
        p["env"] = json!(["PATH=/bin", "FOO=bar baz", "EMPTY="])
    });
    let r = b.report();
    assert_eq!(r["env_FOO"], "bar baz");
    assert_eq!(r["env_EMPTY"], "");
    assert_eq!(r["env_PATH"], "/bin");
    assert_eq!(r["env_HOME"], "/root", "HOME comes from /etc/passwd");
    assert!(
        !r.contains_key("env_NOOK_IT_TAG"),
        "the caller's environment leaked in"
    );
    process(&b, |p| p["user"] = json!({"uid": 1000, "gid": 1000}));
    assert_eq!(b.report()["env_HOME"], "/home/app");
    process(&b, |p| p["env"] = json!(["HOME=/custom"]));
    assert_eq!(
        b.report()["env_HOME"],
        "/custom",
        "a configured HOME is kept"
    );
}

fn caps(b: &Bundle, sets: &[(&str, &[&str])]) {
    let mut v = json!({});
    for (set, names) in sets {
        v[*set] = json!(names);
    }
    process(b, |p| p["capabilities"] = v);
}

const CAP_CHOWN: u64 = 1 << 0;
const CAP_KILL: u64 = 1 << 5;
const CAP_NET_BIND_SERVICE: u64 = 1 << 10;

#[test]
fn capabilities_are_exact_for_root() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-caps");
    let set: &[&str] = &["CAP_CHOWN", "CAP_KILL"];
    caps(
        &b,
        &[("bounding", set), ("effective", set), ("permitted", set)],
    );
    let r = b.report();
    assert_eq!(mask(&r["cap_bnd"]), CAP_CHOWN | CAP_KILL);
    assert_eq!(mask(&r["cap_eff"]), CAP_CHOWN | CAP_KILL);
    assert_eq!(mask(&r["cap_prm"]), CAP_CHOWN | CAP_KILL);
    assert_eq!(mask(&r["cap_inh"]), 0);
    assert_eq!(mask(&r["cap_amb"]), 0);
}

#[test]
fn ambient_capabilities_reach_a_non_root_user() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-ambient");
    process(&b, |p| p["user"] = json!({"uid": 1000, "gid": 1000}));
    let all: &[&str] = &["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let kill: &[&str] = &["CAP_KILL"];
    caps(
        &b,
        &[("bounding", all), ("effective", all), ("permitted", all)]
            .into_iter()
            .chain([("inheritable", kill), ("ambient", kill)])
            .collect::<Vec<_>>(),
    );
    let r = b.report();
    assert_eq!(
        mask(&r["cap_bnd"]),
        CAP_CHOWN | CAP_KILL | CAP_NET_BIND_SERVICE
    );
    assert_eq!(mask(&r["cap_amb"]), CAP_KILL);
    assert_eq!(mask(&r["cap_inh"]), CAP_KILL);
    // After exec as uid 1000 only the ambient set survives into permitted/effective.
    assert_eq!(mask(&r["cap_prm"]), CAP_KILL);
    assert_eq!(mask(&r["cap_eff"]), CAP_KILL);
}

#[test]
fn rlimits_are_set() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-rlimits");
    // Only lower or equal hard limits: this host's bounding set lacks CAP_SYS_RESOURCE.
    process(&b, |p| {
        p["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
            {"type": "RLIMIT_CPU", "soft": 100, "hard": 200},
        ]);
    });
    let r = b.report();
    assert_eq!(r["rlimit_nofile"], "512:1024");
    assert_eq!(r["rlimit_core"], "0:4096");
    assert_eq!(r["rlimit_cpu"], "100:200");
}

#[test]
fn no_new_privileges() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-nnp");
    process(&b, |p| p["noNewPrivileges"] = json!(true));
    assert_eq!(b.report()["no_new_privs"], "1");
    process(&b, |p| p["noNewPrivileges"] = json!(false));
    assert_eq!(b.report()["no_new_privs"], "0");
}

#[test]
fn oom_score_adj() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-oom");
    process(&b, |p| p["oomScoreAdj"] = json!(500));
    assert_eq!(b.report()["oom_score_adj"], "500");
}

#[test]
fn sysctls_are_visible_inside() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-sysctl");
    let host_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let want_fwd = if host_fwd.trim() == "1" { "0" } else { "1" };
    b.config(|c| {
        c["linux"]["sysctl"] = json!({
            "kernel.domainname": "sysctl.example",
            "net.ipv4.ip_forward": want_fwd,
        });
    });
    let out = |name: &str| {
        text(&ok(b.probe(&["sysctl", name])).stdout)
            .trim()
            .to_string()
    };
    assert_eq!(out("kernel.domainname"), "sysctl.example");
    assert_eq!(out("net.ipv4.ip_forward"), want_fwd);
    let after = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    assert_eq!(after, host_fwd, "the host's sysctl changed");
}

/// A pipe end without close-on-exec at `target` in nook's process.
fn run_with_fd(b: &Bundle, extra: &[&str], targets: &'static [i32]) -> std::process::Output {
    let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let raw = w.as_raw_fd();
    let id = b.id();
    let mut args = vec!["run", id.as_str(), "--bundle", b.path_str()];
    args.extend_from_slice(extra);
    let mut cmd = b.command(&args);
    // SAFETY: dup2 and fcntl are async-signal-safe; the new fd has close-on-exec clear.
    // The pipe itself may have landed on a target (dup2 onto itself would keep
    // close-on-exec, and the fd would silently not reach nook): clear the flag instead.
    unsafe {
        cmd.pre_exec(move || {
            for &t in targets {
                let r = if raw == t {
                    libc::fcntl(t, libc::F_SETFD, 0)
                } else {
                    libc::dup2(raw, t)
                };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let out = b
        .spawn(cmd)
        .output_within(common::TIMEOUT)
        .expect("run timed out");
    drop((r, w));
    out
}

#[test]
fn only_stdio_reaches_the_process() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-fds");
    let r = report(&ok(run_with_fd(&b, &[], &[3, 5])));
    assert_eq!(r["fds"], "0,1,2");
}

#[test]
fn preserve_fds_passes_fd_3() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-presfds");
    let r = report(&ok(run_with_fd(&b, &["--preserve-fds", "1"], &[3, 5])));
    assert_eq!(r["fds"], "0,1,2,3");
}

/// --preserve-fds 3 with only fd 3 open: fds 4 and 5 are numbers nook's own files
/// (the state dir's lock, the exec fifo) could take; none of them may reach the app.
#[test]
fn preserve_fds_never_passes_nooks_own_fds() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("proc-presfds-gap");
    let r = report(&ok(run_with_fd(&b, &["--preserve-fds", "3"], &[3])));
    assert_eq!(r["fds"], "0,1,2,3");
}
