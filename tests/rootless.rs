//! Rootless (issue 16): nook run by a user other than root, as podman's rootless mode and
//! `runc spec --rootless` users run it. The tests are root (to own the host and to check
//! it afterwards) and run nook as uid 65534 (nobody) through setpriv, with a bundle and a
//! state dir that user owns, as a user's own would be.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use common::{cgroup_dirs, fails, ok, text, wait_until, Bundle, NOOK, TIMEOUT};

const USER: u32 = 65534;

/// A bundle of the user's: `nook spec --rootless` written by the user, rootfs and state
/// owned by the user, and an XDG_RUNTIME_DIR of its own.
struct Rootless {
    b: Bundle,
    xdg: PathBuf,
}

fn setup(name: &str) -> Option<Rootless> {
    if common::skip() || common::missing_tool("setpriv", "running nook as another user") {
        return None;
    }
    let b = Bundle::new(name);
    fs::remove_file(b.path.join("config.json")).unwrap();
    let xdg = b.dir.join("xdg");
    fs::create_dir_all(&xdg).unwrap();
    fs::create_dir_all(&b.root).unwrap();
    let st = Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(&b.dir)
        .status()
        .unwrap();
    assert!(st.success(), "chown of the bundle failed");
    let r = Rootless { b, xdg };
    ok(r.nook(&["spec", "--rootless", "--bundle", r.b.path_str()]));
    Some(r)
}

impl Rootless {
    /// nook as the user, with no --root (the default applies).
    fn command_no_root(&self, args: &[&str]) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={USER}"),
            &format!("--regid={USER}"),
            "--clear-groups",
            "--",
            NOOK,
        ])
        .args(args)
        .env("XDG_RUNTIME_DIR", &self.xdg)
        .stdin(Stdio::null());
        // The harness's tag, so a leftover of ours is found and reported.
        let tag = self.b.tag_env();
        if let Some((k, v)) = tag.split_once('=') {
            c.env(k, v);
        }
        c
    }

    fn run_no_root(&self, args: &[&str]) -> Output {
        let mut s = self.b.spawn(self.command_no_root(args));
        s.output_within(TIMEOUT)
            .unwrap_or_else(|| panic!("nook {args:?} did not finish"))
    }

    /// nook as the user with the bundle's --root.
    fn nook(&self, args: &[&str]) -> Output {
        let root = self.b.root.to_string_lossy().into_owned();
        let mut all = vec!["--root", root.as_str()];
        all.extend_from_slice(args);
        self.run_no_root(&all)
    }

    /// nook as the user with the bundle's --root, started from the cgroup `cgroup` (root
    /// moves the shell there first: a process may only be moved between cgroups whose
    /// common ancestor its user can write) with XDG_RUNTIME_DIR `xdg`.
    fn nook_from_cgroup(&self, cgroup: &Path, xdg: &Path, args: &str) -> Output {
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec setpriv --reuid={USER} --regid={USER} --clear-groups -- {NOOK} --root {} {args}",
            cgroup.display(),
            self.b.root.display(),
        );
        let mut c = Command::new("sh");
        c.args(["-c", &script])
            .env("XDG_RUNTIME_DIR", xdg)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdin(Stdio::null());
        let mut s = self.b.spawn(c);
        s.output_within(TIMEOUT)
            .unwrap_or_else(|| panic!("nook {args} did not finish"))
    }

    /// SIGKILL the container, wait until it is stopped, delete it, check nothing is left.
    fn kill_and_delete(&self, id: &str) {
        ok(self.nook(&["kill", id, "KILL"]));
        assert!(wait_until(Duration::from_secs(10), || self
            .b
            .status(id)
            .as_deref()
            == Some("stopped")));
        ok(self.nook(&["delete", id]));
        self.b.assert_clean(id);
    }

    /// `nook run` of the probe as the user.
    fn probe(&self, probe_args: &[&str]) -> Output {
        self.b.args(probe_args);
        let id = self.b.id();
        self.nook(&["run", &id, "--bundle", self.b.path_str()])
    }
}

/// The Cpus_allowed_list line of a /proc/PID/status.
fn cpus(status: &str) -> Option<String> {
    status
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .map(str::to_string)
}

/// The test's own Cpus_allowed_list line (nook's, as nook starts with it).
fn host_cpus() -> Option<String> {
    let line = cpus(&fs::read_to_string("/proc/self/status").unwrap());
    assert!(line.is_some(), "no Cpus_allowed_list in /proc/self/status");
    line
}

#[test]
fn the_user_is_root_inside_and_itself_outside() {
    let Some(r) = setup("rl-run") else { return };
    let rep = common::report(&ok(r.probe(&["report"])));
    assert_eq!(rep["uid"], "0", "{rep:?}");
    assert_eq!(rep["gid"], "0", "{rep:?}");
    assert_ne!(rep["ns_user"], common::host_ns("user"), "no user namespace");
    let map = text(&ok(r.probe(&["cat", "/proc/self/uid_map"])).stdout);
    let fields: Vec<&str> = map.split_whitespace().collect();
    assert_eq!(fields, ["0", &USER.to_string(), "1"], "uid_map: {map:?}");
    let gmap = text(&ok(r.probe(&["cat", "/proc/self/gid_map"])).stdout);
    let fields: Vec<&str> = gmap.split_whitespace().collect();
    assert_eq!(fields, ["0", &USER.to_string(), "1"], "gid_map: {gmap:?}");
    // Setgroups is denied (the kernel's condition for an unprivileged gid map).
    let sg = text(&ok(r.probe(&["cat", "/proc/self/setgroups"])).stdout);
    assert_eq!(sg.trim(), "deny");
    // nook pins itself to one CPU for the clone (linux::handoff); with no cgroup of its
    // own here to reset it, the init must give the pin back: its CPUs are the host's.
    let status = text(&ok(r.probe(&["cat", "/proc/self/status"])).stdout);
    assert_eq!(cpus(&status), host_cpus(), "{status}");
    // The container's capabilities are in its own user namespace only: the host sees
    // the process as the user, with nothing in its effective set.
    r.b.args(&["sleep", "30"]);
    let id = r.b.id();
    ok(r.nook(&["run", "-d", &id, "--bundle", r.b.path_str()]));
    let st: serde_json::Value =
        serde_json::from_slice(&ok(r.nook(&["state", &id])).stdout).unwrap();
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert_host_uids_are_the_user(pid);
    assert_eq!(
        fs::metadata(r.b.root.join(&id)).unwrap().uid(),
        USER,
        "the state dir belongs to the user"
    );
    // No cgroup of its own here (no cgroup is writable by the user on this host, and
    // the rootless spec asks for no resources): none was made.
    assert!(cgroup_dirs(&id).is_empty(), "{:?}", cgroup_dirs(&id));
    r.kill_and_delete(&id);
}

#[test]
fn create_start_exec_kill_delete_as_the_user() {
    let Some(r) = setup("rl-life") else { return };
    r.b.args(&["sleep", "30"]);
    let id = r.b.id();
    let mut c = r.b.spawn(r.command_no_root(&[
        "--root",
        &r.b.root.to_string_lossy(),
        "create",
        &id,
        "--bundle",
        r.b.path_str(),
    ]));
    let o = c.output_within(TIMEOUT).expect("create finished");
    ok(o);
    assert_eq!(r.b.status(&id).as_deref(), Some("created"));
    ok(r.nook(&["start", &id]));
    assert_eq!(r.b.status(&id).as_deref(), Some("running"));
    // exec joins the container's user namespace first (nook has no CAP_SYS_ADMIN of its
    // own for the others), and is root inside too.
    let o = ok(r.nook(&["exec", &id, "/bin/probe", "report"]));
    let rep = common::report(&o);
    assert_eq!(rep["uid"], "0");
    let init: serde_json::Value =
        serde_json::from_slice(&ok(r.nook(&["state", &id])).stdout).unwrap();
    let pid = init["pid"].as_i64().unwrap();
    assert_eq!(
        rep["ns_user"],
        common::readlink(&format!("/proc/{pid}/ns/user")),
        "exec is not in the container's user namespace"
    );
    assert_eq!(
        rep["ns_pid"],
        common::readlink(&format!("/proc/{pid}/ns/pid"))
    );
    // The exec'd process gets nook's pin for the fork back too (linux::handoff).
    let status = text(&ok(r.nook(&["exec", &id, "/bin/probe", "cat", "/proc/self/status"])).stdout);
    assert_eq!(cpus(&status), host_cpus(), "{status}");
    let list = text(&ok(r.nook(&["list", "-q"])).stdout);
    assert!(list.lines().any(|l| l == id), "list: {list}");
    // Without a freezer cgroup of its own, pause says why.
    let err = fails(&r.nook(&["pause", &id]));
    assert!(err.contains("freezer"), "{err}");
    r.kill_and_delete(&id);
}

#[test]
fn state_defaults_to_xdg_runtime_dir() {
    let Some(r) = setup("rl-xdg") else { return };
    r.b.args(&["sleep", "30"]);
    let id = r.b.id();
    ok(r.run_no_root(&["run", "-d", &id, "--bundle", r.b.path_str()]));
    let dir = r.xdg.join("nook").join(&id);
    assert!(
        dir.join("state.json").is_file(),
        "no state under $XDG_RUNTIME_DIR/nook"
    );
    ok(r.run_no_root(&["delete", "--force", &id]));
    assert!(!dir.exists(), "{} left", dir.display());
    assert!(r.b.processes().is_empty(), "{:?}", r.b.processes());
}

#[test]
fn resources_without_a_writable_cgroup_are_refused_naming_the_field() {
    let Some(r) = setup("rl-res") else { return };
    r.b.config(|c| c["linux"]["resources"] = serde_json::json!({"pids": {"limit": 10}}));
    let o = r.probe(&["report"]);
    let err = fails(&o);
    assert!(err.contains("linux.resources.pids"), "{err}");
    assert!(err.contains(&format!("uid {USER}")), "{err}");
    r.b.assert_clean(&r.b.last_id());
}

#[test]
fn ids_the_user_does_not_own_cannot_be_mapped() {
    let Some(r) = setup("rl-map") else { return };
    r.b.config(|c| {
        c["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 0, "size": 1}]);
    });
    let err = fails(&r.probe(&["report"]));
    assert!(err.contains("linux.uidMappings"), "{err}");
    assert!(err.contains("newuidmap"), "{err}");
    r.b.assert_clean(&r.b.last_id());
}

#[test]
fn root_inside_cannot_write_what_the_user_cannot() {
    let Some(r) = setup("rl-esc") else { return };
    // A host file of root's, bound read-write into the container: root inside is the
    // user outside, so the write is refused by the host's permissions.
    let secret = r.b.dir.join("root-owned");
    fs::write(&secret, "host\n").unwrap();
    std::os::unix::fs::chown(&secret, Some(0), Some(0)).unwrap();
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let src = secret.to_string_lossy().into_owned();
    r.b.config(|c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/secret", "type": "bind", "source": src, "options": ["rbind", "rw"]
        }))
    });
    let o = r.probe(&["write", "/secret"]);
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert!(!o.status.success(), "the write succeeded: {out}");
    assert!(
        text(&o.stdout).contains("error:EACCES"),
        "not refused by the host: {out}"
    );
    assert_eq!(fs::read_to_string(&secret).unwrap(), "host\n");
    assert!(Path::new(&secret).exists());
}

/// Held by a test while /etc/subuid and /etc/subgid must not change under it: by
/// `SubIds` while it has a range granted, and by the podman test, since rootless podman
/// reads the files and later has newuidmap/newgidmap check them again (a range removed in
/// between fails podman's start).
static SUBID_FILES: Mutex<()> = Mutex::new(());

fn lock_subid_files() -> MutexGuard<'static, ()> {
    SUBID_FILES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// /etc/subuid and /etc/subgid with a range for the test user, put back as they were
/// when dropped (even after a failed assertion). Holds `SUBID_FILES` until then.
struct SubIds {
    saved: Vec<(PathBuf, Option<String>)>,
    _lock: MutexGuard<'static, ()>,
}

impl SubIds {
    fn grant(start: u32, count: u32) -> SubIds {
        let lock = lock_subid_files();
        let mut saved = vec![];
        for f in ["/etc/subuid", "/etc/subgid"] {
            let p = PathBuf::from(f);
            let old = fs::read_to_string(&p).ok();
            let mut text = old.clone().unwrap_or_default();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("{USER}:{start}:{count}\n"));
            fs::write(&p, text).unwrap();
            saved.push((p, old));
        }
        SubIds { saved, _lock: lock }
    }
}

impl Drop for SubIds {
    fn drop(&mut self) {
        for (p, old) in &self.saved {
            match old {
                Some(t) => fs::write(p, t).unwrap(),
                None => fs::remove_file(p).unwrap(),
            }
        }
    }
}

#[test]
fn many_ids_through_newuidmap_and_the_users_subordinate_ranges() {
    if common::skip() || common::missing_tool("newuidmap", "mapping subordinate ids") {
        return;
    }
    let Some(r) = setup("rl-subid") else { return };
    let _granted = SubIds::grant(300_000, 65_536);
    r.b.config(|c| {
        for key in ["uidMappings", "gidMappings"] {
            c["linux"][key] = serde_json::json!([
                {"containerID": 0, "hostID": USER, "size": 1},
                {"containerID": 1, "hostID": 300_000, "size": 65_536}
            ]);
        }
        // The process is uid 1000 inside: host uid 300999.
        c["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
        c["root"]["readonly"] = serde_json::json!(false);
    });
    fs::set_permissions(
        r.b.rootfs.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let map = text(&ok(r.probe(&["cat", "/proc/self/uid_map"])).stdout);
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [vec!["0", "65534", "1"], vec!["1", "300000", "65536"]],
        "uid_map: {map:?}"
    );
    let rep = common::report(&ok(r.probe(&["report"])));
    assert_eq!(rep["uid"], "1000");
    // What uid 1000 inside makes is owned by 300999 on the host.
    let out = r.b.rootfs.join("tmp/made");
    let o = ok(r.probe(&["write", "/tmp/made"]));
    assert!(text(&o.stdout).contains("ok"), "{}", text(&o.stdout));
    assert_eq!(fs::metadata(&out).unwrap().uid(), 300_999);
    assert_eq!(fs::metadata(&out).unwrap().gid(), 300_999);
    // Beyond the user's range: newuidmap refuses, and nook says so naming the field.
    r.b.config(|c| {
        c["linux"]["uidMappings"][1]["size"] = serde_json::json!(70_000);
    });
    let err = fails(&r.probe(&["report"]));
    assert!(
        err.contains("linux.uidMappings") && err.contains("newuidmap"),
        "{err}"
    );
    r.b.assert_clean(&r.b.last_id());
}

/// The kernel's view of a container process from the host: every uid (real,
/// effective, saved, fs) is the unprivileged user.
fn assert_host_uids_are_the_user(pid: i32) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == USER.to_string()),
        "host view of the container's uids: {uid_line}"
    );
}

/// podman as the user, with its storage, run state and temp files in `base`.
fn podman_command(base: &Path, home: &Path, xdg: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        &format!("--reuid={USER}"),
        &format!("--regid={USER}"),
        "--clear-groups",
        "--",
        "podman",
    ])
    .arg("--root")
    .arg(base.join("root"))
    .arg("--runroot")
    .arg(base.join("run"))
    .arg("--tmpdir")
    .arg(base.join("tmp"))
    .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
    .args(["--runtime", NOOK])
    .args(args)
    .env("HOME", home)
    .env("XDG_RUNTIME_DIR", xdg)
    .stdin(Stdio::null());
    c
}

/// Removes the user's podman containers and podman's pause process (rootless podman
/// keeps one holding its user namespace) when the test ends, passed or not.
struct PodmanCleanup {
    base: PathBuf,
    home: PathBuf,
    xdg: PathBuf,
}

impl Drop for PodmanCleanup {
    fn drop(&mut self) {
        let _ = podman_command(&self.base, &self.home, &self.xdg, &["rm", "-af", "-t", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Ok(p) = fs::read_to_string(self.base.join("tmp/pause.pid")) {
            if let Ok(pid) = p.trim().parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::SIGKILL,
                );
            }
        }
    }
}

/// Rootless podman: podman runs as the user, re-executes itself in a user namespace of
/// its own and calls nook there (as root of that namespace) through conmon.
#[test]
fn rootless_podman_runs_execs_and_stops_a_container() {
    if common::skip() || common::missing_tool("podman", "package podman") {
        return;
    }
    let Some(r) = setup("rl-podman") else { return };
    // The user's subordinate ids stay as they are for the whole of podman's use.
    let _subids = lock_subid_files();
    let home = r.b.dir.join("home");
    fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(USER), Some(USER)).unwrap();
    let guard = PodmanCleanup {
        base: r.b.dir.join("podman"),
        home,
        xdg: r.xdg.clone(),
    };
    let podman = |args: &[&str]| -> Output {
        let mut s =
            r.b.spawn(podman_command(&guard.base, &guard.home, &guard.xdg, args));
        s.output_within(TIMEOUT)
            .unwrap_or_else(|| panic!("podman {args:?} did not finish"))
    };
    let rootfs = r.b.rootfs.to_string_lossy().into_owned();
    let run = ["--network", "none", "--rootfs", rootfs.as_str()];

    let mut a = vec!["run", "--rm"];
    a.extend(run);
    a.extend(["/bin/probe", "report"]);
    let rep = common::report(&ok(podman(&a)));
    assert_eq!(rep["uid"], "0", "{rep:?}");
    assert_ne!(rep["ns_user"], common::host_ns("user"));

    let mut a = vec!["run", "-d"];
    a.extend(run);
    a.extend(["/bin/probe", "sleep", "60"]);
    let id = text(&ok(podman(&a)).stdout).trim().to_string();
    let o = ok(podman(&[
        "exec",
        &id,
        "/bin/probe",
        "cat",
        "/proc/1/cmdline",
    ]));
    assert!(text(&o.stdout).contains("probe"), "{}", text(&o.stdout));
    let o = ok(podman(&["inspect", "-f", "{{.State.Pid}}", &id]));
    let pid: i32 = text(&o.stdout).trim().parse().unwrap();
    // The container's process is the user on the host.
    assert_host_uids_are_the_user(pid);
    ok(podman(&["stop", "-t", "1", &id]));
    assert!(!common::alive(pid), "the container's process outlived stop");
    ok(podman(&["rm", &id]));
    let left: Vec<_> = fs::read_dir(r.xdg.join("nook"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.iter().all(|n| n == "seccomp"),
        "nook state left under $XDG_RUNTIME_DIR/nook: {left:?}"
    );
}

/// A cgroup v2 subtree delegated to the user (root made it and handed it over, as
/// systemd's Delegate= does), removed again when dropped.
struct Delegated {
    dir: PathBuf,
}

impl Drop for Delegated {
    fn drop(&mut self) {
        for d in [self.dir.join("runner"), self.dir.clone()] {
            let _ = fs::remove_dir(&d);
        }
    }
}

/// With a cgroup the user owns (cgroup v2: the guest), the container's cgroup is made in
/// it and its limits apply, as for root.
#[test]
fn a_delegated_cgroup_gets_the_container_and_its_limits() {
    let mounts = common::cgroup_mounts();
    let Some(v2) = common::v2_mount().filter(|_| mounts.len() == 1) else {
        eprintln!("skipping: needs a pure cgroup v2 host (make test-vm runs it)");
        return;
    };
    let Some(r) = setup("rl-deleg") else { return };
    let name = format!("nook-rl-{}", std::process::id());
    let deleg = Delegated {
        dir: v2.join(&name),
    };
    fs::create_dir(&deleg.dir).unwrap();
    fs::write(deleg.dir.join("cgroup.subtree_control"), "+pids").unwrap();
    fs::create_dir(deleg.dir.join("runner")).unwrap();
    let st = Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(&deleg.dir)
        .status()
        .unwrap();
    assert!(st.success());
    let id = r.b.id();
    let cg_path = format!("/{name}/{id}");
    r.b.config(|c| {
        c["linux"]["cgroupsPath"] = serde_json::json!(cg_path);
        c["linux"]["resources"] = serde_json::json!({"pids": {"limit": 10}});
    });
    r.b.args(&["cat", "/sys/fs/cgroup/pids.max"]);
    // nook runs as the user inside the delegated subtree.
    let o = ok(r.nook_from_cgroup(
        &deleg.dir.join("runner"),
        &r.xdg,
        &format!("run {id} --bundle {}", r.b.path_str()),
    ));
    assert_eq!(text(&o.stdout).trim(), "10", "pids.max inside");
    assert!(
        !deleg.dir.join(&id).exists(),
        "the container's cgroup is left in the delegated subtree"
    );
    r.b.assert_clean(&id);
}

/// The user's systemd (`systemd --user`, lingering) for the test user, and a cgroup of
/// ours inside its tree for nook to run from; both undone when dropped.
struct UserSystemd {
    runner: PathBuf,
}

impl Drop for UserSystemd {
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.runner);
        let _ = Command::new("loginctl")
            .args(["disable-linger", &USER.to_string()])
            .status();
        let _ = Command::new("systemctl")
            .args(["stop", &format!("user@{USER}.service")])
            .status();
    }
}

/// `--systemd-cgroup` rootless: the scope comes from the user's own systemd (on its
/// session bus), below its delegated cgroup, and the limits apply (cgroup v2 with
/// systemd: the guest).
#[test]
fn systemd_cgroup_rootless_gets_a_scope_from_the_users_systemd() {
    let mounts = common::cgroup_mounts();
    let Some(v2) = common::v2_mount().filter(|_| mounts.len() == 1) else {
        eprintln!("skipping: needs a pure cgroup v2 host with systemd (make test-vm runs it)");
        return;
    };
    if !Path::new("/run/systemd/system").is_dir() {
        eprintln!("skipping: systemd is not running (make test-vm runs it)");
        return;
    }
    let Some(r) = setup("rl-sd") else { return };
    let manager = v2.join(format!("user.slice/user-{USER}.slice/user@{USER}.service"));
    let us = UserSystemd {
        runner: manager.join(format!("nook-test-{}", std::process::id())),
    };
    ok(Command::new("loginctl")
        .args(["enable-linger", &USER.to_string()])
        .output()
        .unwrap());
    let xdg = PathBuf::from(format!("/run/user/{USER}"));
    assert!(
        wait_until(Duration::from_secs(30), || xdg.join("bus").exists()),
        "the user's systemd never offered its bus"
    );
    fs::create_dir(&us.runner).unwrap();
    std::os::unix::fs::chown(&us.runner, Some(USER), Some(USER)).unwrap();
    let id = r.b.id();
    r.b.config(|c| c["linux"]["resources"] = serde_json::json!({"pids": {"limit": 10}}));
    r.b.args(&["cat", "/sys/fs/cgroup/pids.max"]);
    let as_user =
        |args: &str| r.nook_from_cgroup(&us.runner, &xdg, &format!("--systemd-cgroup {args}"));
    let o = ok(as_user(&format!("run {id} --bundle {}", r.b.path_str())));
    assert_eq!(text(&o.stdout).trim(), "10", "pids.max inside");
    let scope = manager.join(format!("user.slice/nook-{id}.scope"));
    assert!(
        wait_until(Duration::from_secs(10), || !scope.exists()),
        "the scope's cgroup {} is left",
        scope.display()
    );
    r.b.assert_clean(&id);

    // A cgroup of its own makes pause possible rootless: the scope's cgroup.freeze.
    r.b.args(&["sleep", "60"]);
    let id = r.b.id();

    ok(as_user(&format!("run -d {id} --bundle {}", r.b.path_str())));
    let scope = manager.join(format!("user.slice/nook-{id}.scope"));
    ok(as_user(&format!("pause {id}")));
    assert_eq!(r.b.status(&id).as_deref(), Some("paused"));
    assert_eq!(
        fs::read_to_string(scope.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "1"
    );
    ok(as_user(&format!("resume {id}")));
    assert_eq!(
        fs::read_to_string(scope.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "0"
    );
    ok(as_user(&format!("delete --force {id}")));
    assert!(
        wait_until(Duration::from_secs(10), || !scope.exists()),
        "the scope's cgroup {} is left",
        scope.display()
    );
    r.b.assert_clean(&id);
}

#[test]
fn sysctls_of_a_namespace_not_the_containers_own_are_refused() {
    let Some(r) = setup("rl-sysctl") else { return };
    r.b.config(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "network", "path": "/proc/1/ns/net"}));
        c["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
    });
    let err = fails(&r.probe(&["report"]));
    assert!(
        err.contains("linux.sysctl[\"net.ipv4.ip_forward\"]") && err.contains("joined"),
        "{err}"
    );
    r.b.assert_clean(&r.b.last_id());
    assert!(!r.b.root.join(r.b.last_id()).exists());
    // With a network namespace of its own (owned by its user namespace), the user may.
    r.b.config(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
        ns.push(serde_json::json!({"type": "network"}));
        c["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ping_group_range": "0 0"});
    });
    let out = text(&ok(r.probe(&["cat", "/proc/sys/net/ipv4/ping_group_range"])).stdout);
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["0", "0"]);
}
