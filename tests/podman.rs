//! podman driving nook as its OCI runtime (`podman --runtime nook`), the way users will:
//! podman writes the config (its own seccomp profile, masks, tmpfs mounts, rlimits) and
//! calls create, start, exec, state, kill, pause, resume and delete through conmon. A
//! container runs from a local rootfs (`--rootfs`: no image, no network needed) holding
//! the probe, with its own podman storage in the test's temp dir.
//!
//! Needs root and podman; skipped with a message otherwise (.ci/run installs podman).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{ok, report, text, Bundle};

/// A podman whose storage, run state and temp files all live in one temp dir.
struct Podman {
    b: Bundle,
    base: PathBuf,
    /// The test's own parent cgroup for its containers (conmon gets none: no-conmon),
    /// so nothing is left in a shared one; removed when the test ends.
    cgroup: String,
}

impl Podman {
    fn new(name: &str) -> Option<Podman> {
        if common::skip() {
            return None;
        }
        if common::missing_tool("podman", "package podman") {
            return None;
        }
        let b = Bundle::new(name);
        let base = b.dir.join("podman");
        let cgroup = b.id();
        Some(Podman { b, base, cgroup })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.base.join("root"))
            .arg("--runroot")
            .arg(self.base.join("run"))
            .arg("--tmpdir")
            .arg(self.base.join("tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(["--runtime", &common::client_runtime()])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn cgroup_parent(&self) -> String {
        format!("/{}", self.cgroup)
    }

    fn podman(&self, args: &[&str]) -> Output {
        let mut s = self.b.spawn(self.command(args));
        s.output_within(common::TIMEOUT)
            .unwrap_or_else(|| panic!("podman {args:?} did not finish"))
    }

    /// `podman run --rm` of the probe with `extra` podman options.
    fn run(&self, extra: &[&str], probe_args: &[&str]) -> Output {
        let rootfs = self.b.rootfs.to_str().unwrap().to_string();
        let limits = ulimits();
        let parent = self.cgroup_parent();
        let mut args = vec!["run", "--rm", "--network", "none", "--cgroups", "no-conmon"];
        args.extend(["--cgroup-parent", &parent]);
        args.extend(limits.iter().map(String::as_str));
        args.extend_from_slice(extra);
        args.extend(["--rootfs", &rootfs, "/bin/probe"]);
        args.extend_from_slice(probe_args);
        self.podman(&args)
    }
}

/// podman asks for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576, which needs
/// CAP_SYS_RESOURCE where the hard limits are lower (as here): ask for the current open
/// files limit, and few processes (conmon runs the runtime with at most 32768).
fn ulimits() -> Vec<String> {
    use nix::sys::resource::{getrlimit, Resource};
    let nofile = getrlimit(Resource::RLIMIT_NOFILE).unwrap().1;
    let nproc = getrlimit(Resource::RLIMIT_NPROC).unwrap().1.min(4096);
    vec![
        "--ulimit".into(),
        format!("nofile={nofile}:{nofile}"),
        "--ulimit".into(),
        format!("nproc={nproc}:{nproc}"),
    ]
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .command(&["rm", "--all", "--force", "--time", "0"])
            .output();
        for d in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(d.path().join(&self.cgroup));
        }
        let _ = std::fs::remove_dir(PathBuf::from("/sys/fs/cgroup").join(&self.cgroup));
        // podman's own mounts (a container's shm) under its storage, if any remain.
        common::unmount_under(&self.base);
    }
}

/// podman's config runs: its default seccomp profile is loaded (mode 2), the process
/// has podman's default capabilities and no more, and is root in its own pid namespace.
#[test]
fn podman_runs_a_container_with_its_seccomp_profile() {
    let Some(p) = Podman::new("podman-run") else {
        return;
    };
    let out = ok(p.run(&[], &["cat", "/proc/self/status"]));
    let status = text(&out.stdout);
    assert!(status.contains("Seccomp:\t2"), "{status}");
    let r = report(&ok(p.run(&[], &["report"])));
    assert_eq!(r["uid"], "0");
    assert_eq!(r["pid"], "1");
    // podman's default set has CAP_CHOWN (bit 0) but not CAP_SYS_ADMIN (bit 21).
    let eff = u64::from_str_radix(&r["cap_eff"], 16).unwrap();
    assert!(eff & 1 != 0 && eff & (1 << 21) == 0, "{eff:#x}");
}

/// --read-only: the root refuses writes, and podman's tmpfs mounts with tmpcopyup start
/// with what the rootfs held there and take writes.
#[test]
fn podman_read_only_with_tmpcopyup() {
    let Some(p) = Podman::new("podman-ro") else {
        return;
    };
    std::fs::create_dir_all(p.b.rootfs.join("var/tmp")).unwrap();
    std::fs::write(p.b.rootfs.join("var/tmp/seed"), "seeded\n").unwrap();
    assert_eq!(
        text(&p.run(&["--read-only"], &["write", "/x"]).stdout).trim(),
        "error:EROFS"
    );
    assert_eq!(
        text(&ok(p.run(&["--read-only"], &["cat", "/var/tmp/seed"])).stdout).trim(),
        "seeded"
    );
    assert_eq!(
        text(&ok(p.run(&["--read-only"], &["write", "/var/tmp/new"])).stdout).trim(),
        "ok"
    );
    assert!(!p.b.rootfs.join("var/tmp/new").exists());
    assert!(!p.b.rootfs.join("x").exists());
}

/// A detached container through its life: exec (as another user too), pause and
/// unpause, stop, rm.
#[test]
fn podman_exec_pause_stop_rm() {
    let Some(p) = Podman::new("podman-life") else {
        return;
    };
    let rootfs = p.b.rootfs.to_str().unwrap().to_string();
    let name = p.b.id();
    let limits = ulimits();
    let parent = p.cgroup_parent();
    let mut args = vec!["run", "-d", "--name", &name, "--network", "none"];
    args.extend(["--cgroups", "no-conmon", "--cgroup-parent", &parent]);
    args.extend(limits.iter().map(String::as_str));
    args.extend(["--rootfs", &rootfs, "/bin/probe", "sleep", "60"]);
    ok(p.podman(&args));
    let r = report(&ok(p.podman(&["exec", &name, "/bin/probe", "report"])));
    assert_eq!(r["uid"], "0");
    assert_ne!(r["pid"], "1", "exec'd process is not the init");
    let r = report(&ok(p.podman(&[
        "exec",
        "--user",
        "1000:1000",
        &name,
        "/bin/probe",
        "report",
    ])));
    assert_eq!((r["uid"].as_str(), r["gid"].as_str()), ("1000", "1000"));
    let pid = text(&ok(p.podman(&["inspect", "--format", "{{.State.Pid}}", &name])).stdout);
    let pid: i32 = pid.trim().parse().unwrap();
    ok(p.podman(&["pause", &name]));
    let state = text(&ok(p.podman(&["inspect", "--format", "{{.State.Status}}", &name])).stdout);
    assert_eq!(state.trim(), "paused");
    assert!(common::pid_frozen(pid), "the kernel did not freeze {pid}");
    ok(p.podman(&["unpause", &name]));
    assert!(!common::pid_frozen(pid), "{pid} is still frozen");
    ok(p.podman(&["stop", "--time", "1", &name]));
    let state = text(&ok(p.podman(&["inspect", "--format", "{{.State.Status}}", &name])).stdout);
    assert_eq!(state.trim(), "exited");
    // podman kill of a paused container kills it (nook thaws after SIGKILL).
    ok(p.podman(&["start", &name]));
    ok(p.podman(&["pause", &name]));
    ok(p.podman(&["kill", &name]));
    let inspect = |f: &str| {
        let o = ok(p.podman(&["inspect", "--format", f, &name]));
        text(&o.stdout).trim().to_string()
    };
    assert!(
        common::wait_until(Duration::from_secs(10), || inspect("{{.State.Status}}")
            == "exited"),
        "{}",
        inspect("{{.State.Status}}")
    );
    assert_eq!(inspect("{{.State.ExitCode}}"), "137");
    ok(p.podman(&["rm", &name]));
}

/// --uidmap: the container runs in its own user namespace, and podman binds files from
/// its 0700 run directory (hostname, .containerenv), which the container's host uid
/// cannot reach: nook clones them for the init (runc does too).
#[test]
fn podman_user_namespace() {
    let Some(p) = Podman::new("podman-userns") else {
        return;
    };
    common::chown_tree(&p.b.rootfs, 100_000);
    let map = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"];
    let uid_map = text(&ok(p.run(&map, &["cat", "/proc/self/uid_map"])).stdout);
    assert_eq!(
        uid_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    let hostname = text(&ok(p.run(&map, &["cat", "/etc/hostname"])).stdout);
    assert!(!hostname.trim().is_empty());
    let r = report(&ok(p.run(&map, &["report"])));
    assert_eq!(r["uid"], "0");
}

/// `podman run --timeout`: conmon kills its own process group when the time is up. The
/// container's process leads its own session, so conmon records the exit and podman
/// returns at once (255) with nothing left; when it shared conmon's group, conmon died
/// with it, podman waited ~24 s, returned 127 and the container stayed "Up".
#[test]
fn podman_run_timeout_ends_cleanly() {
    let Some(p) = Podman::new("podman-timeout") else {
        return;
    };
    let out = p.run(&["--timeout", "2"], &["sleep", "60"]);
    assert_eq!(common::code(&out), 255, "{}", text(&out.stderr));
    let left = text(&ok(p.podman(&["ps", "-a", "-q"])).stdout);
    assert!(left.trim().is_empty(), "containers left: {left}");
}
