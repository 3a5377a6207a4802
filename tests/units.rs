//! `nook run` as the ExecStart of real systemd units (needs systemd as PID 1: the guest
//! of `make test-vm`; skipped elsewhere). Each test starts its own units with
//! systemd-run or from `nook unit`, and stops and forgets them even when it fails:
//! readiness only after the app's READY=1, its STATUS, watchdog pings kept and missed
//! (a restart of the same id), the journal, ExecMainStatus, signals to the main process,
//! a stop that leaves nothing, the container's cgroup inside a delegating unit, and a
//! socket unit that activates the example httpd.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{alive, text, wait_until, Bundle, NOOK};

const WAIT: Duration = Duration::from_secs(60);

fn systemd_runs() -> bool {
    if common::skip() {
        return false;
    }
    let pid1 = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    if pid1.trim() != "systemd" || !Path::new("/run/systemd/system").is_dir() {
        eprintln!("skipping: systemd is not PID 1 here (make test-vm runs these in a guest)");
        return false;
    }
    true
}

fn sh(cmd: &[&str]) -> Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn ok(cmd: &[&str]) -> String {
    let o = sh(cmd);
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// A unit of this test, stopped and forgotten when dropped (declare it after the Bundle,
/// so it goes first). Files it names are removed, with a daemon-reload.
struct Unit {
    name: String,
    files: Vec<PathBuf>,
}

impl Unit {
    fn new(kind: &str) -> Unit {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Unit {
            name: format!("nook-t-{kind}-{}-{n}", std::process::id()),
            files: vec![],
        }
    }

    fn service(&self) -> String {
        format!("{}.service", self.name)
    }

    fn show(&self, prop: &str) -> String {
        ok(&["systemctl", "show", "-p", prop, "--value", &self.service()])
            .trim()
            .to_string()
    }

    fn wait_for(&self, prop: &str, want: &str) -> bool {
        wait_until(WAIT, || self.show(prop) == want)
    }

    fn journal(&self) -> String {
        ok(&[
            "journalctl",
            "--no-pager",
            "-o",
            "cat",
            "-u",
            &self.service(),
        ])
    }

    /// `nook unit` for bundle `b` with these flags, into /run/systemd/system: the files
    /// it wrote are this unit's (removed when dropped).
    fn write_with_nook_unit(&mut self, b: &Bundle, flags: &[&str]) {
        let root = b.root.to_str().unwrap();
        let mut args = vec![NOOK, "--root", root, "unit", "--bundle", b.path_str()];
        args.extend(flags);
        args.extend(["--output-dir", "/run/systemd/system", &self.name]);
        let written = ok(&args);
        self.files = written.lines().map(PathBuf::from).collect();
    }

    /// systemd-run of `nook run` for bundle `b` as this unit, with properties.
    fn run(&self, b: &Bundle, id: &str, props: &[&str], extra: &[&str], block: bool) -> Output {
        let unit = format!("--unit={}", self.service());
        let tag = b.tag_env();
        let mut args = vec!["systemd-run", "--quiet", &unit, "-E", &tag];
        if !block {
            args.push("--no-block");
        }
        for p in props {
            args.extend(["-p", p]);
        }
        let root = b.root.to_str().unwrap();
        args.extend(["--", NOOK, "--root", root, "run", "--bundle", b.path_str()]);
        args.extend(extra);
        args.push(id);
        sh(&args)
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        let units: Vec<String> = [".service", ".socket"]
            .iter()
            .map(|s| format!("{}{s}", self.name))
            .collect();
        for u in &units {
            let _ = sh(&["systemctl", "stop", u]);
            let _ = sh(&["systemctl", "reset-failed", u]);
        }
        if !self.files.is_empty() {
            for f in &self.files {
                let _ = std::fs::remove_file(f);
            }
            let _ = sh(&["systemctl", "daemon-reload"]);
        }
    }
}

/// `ExecStopPost=` that deletes the container, as `nook unit` writes it.
fn delete_on_stop(b: &Bundle, id: &str) -> String {
    format!(
        "ExecStopPost={NOOK} --root {} delete --force {id}",
        b.root.display()
    )
}

/// The v2 cgroup path of a process (the `0::` line).
fn cgroup_of(pid: i32) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("")
        .to_string()
}

#[test]
fn notify_unit_is_ready_only_after_the_app_says_so() {
    if !systemd_runs() {
        return;
    }
    let b = Bundle::new("unit-ready");
    b.args(&[
        "notify",
        "STATUS=warming up",
        "sleep:2",
        "READY=1\\nSTATUS=serving",
        "wait-signal",
    ]);
    let id = b.id();
    let u = Unit::new("ready");
    let props = [
        "Type=notify",
        "Delegate=yes",
        "SuccessExitStatus=115",
        "TimeoutStopSec=20",
    ];
    let o = u.run(&b, &id, &props, &[], false);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(u.wait_for("StatusText", "warming up"), "{}", u.journal());
    let warming = Instant::now();
    assert_eq!(u.show("ActiveState"), "activating");
    assert!(u.wait_for("ActiveState", "active"), "{}", u.journal());
    let took = warming.elapsed();
    assert!(took >= Duration::from_millis(1500), "active after {took:?}");
    assert_eq!(u.show("StatusText"), "serving");
    eprintln!("READY=1 relayed: active {took:?} after the app's first STATUS");

    // The container's cgroup is inside the delegating unit's; nook sits in a leaf.
    let unit_cg = u.show("ControlGroup");
    let init = b.state(&id)["pid"].as_i64().unwrap() as i32;
    assert_eq!(cgroup_of(init), format!("{unit_cg}/{id}"));
    let main = u.show("MainPID").parse::<i32>().unwrap();
    assert_eq!(cgroup_of(main), format!("{unit_cg}/supervisor"));

    // stop: TERM to nook, forwarded to the app, which exits; nothing is left.
    ok(&["systemctl", "stop", &u.service()]);
    assert!(u.journal().contains("got 15"), "{}", u.journal());
    assert!(!alive(init));
    b.assert_clean(&id);
    assert!(!Path::new(&format!("/sys/fs/cgroup{unit_cg}")).exists());
}

#[test]
fn watchdog_pings_are_relayed_and_a_silent_app_is_restarted() {
    if !systemd_runs() {
        return;
    }
    let b = Bundle::new("unit-watchdog");
    // Pings every 0.5 s for 8 s against WatchdogSec=2: four periods.
    let mut steps = vec!["notify".to_string(), "READY=1".to_string()];
    for _ in 0..16 {
        steps.extend(["sleep:0.5".to_string(), "WATCHDOG=1".to_string()]);
    }
    steps.push("wait-signal".into());
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    b.args(&steps);
    let id = b.id();
    let u = Unit::new("wd-ok");
    let props = [
        "Type=notify",
        "WatchdogSec=2",
        "SuccessExitStatus=115",
        "TimeoutStopSec=20",
    ];
    let o = u.run(&b, &id, &props, &[], true);
    assert!(o.status.success(), "{}", text(&o.stderr));
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(u.show("ActiveState"), "active", "{}", u.journal());
    assert_eq!(u.show("NRestarts"), "0");
    ok(&["systemctl", "stop", &u.service()]);

    // Silent after READY=1: the watchdog fires, nook and the app are killed, and the
    // restart runs the same id again (nothing "already exists").
    let b2 = Bundle::new("unit-watchdog2");
    b2.args(&["notify", "READY=1", "wait-signal"]);
    let id2 = b2.id();
    let u2 = Unit::new("wd-silent");
    let props = [
        "Type=notify",
        "WatchdogSec=2",
        "Restart=on-failure",
        "RestartSec=1",
        "TimeoutStopSec=3",
        "SuccessExitStatus=115",
    ];
    let o = u2.run(&b2, &id2, &props, &[], true);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        wait_until(WAIT, || u2.show("NRestarts").parse::<u32>().unwrap_or(0)
            >= 1),
        "never restarted: {}",
        u2.journal()
    );
    assert!(u2.wait_for("ActiveState", "active"), "{}", u2.journal());
    let journal = u2.journal();
    assert!(!journal.contains("already exists"), "{journal}");
    ok(&["systemctl", "stop", &u2.service()]);
    b2.assert_clean(&id2);
}

#[test]
fn journal_exit_status_and_signals_to_the_main_process() {
    if !systemd_runs() {
        return;
    }
    // The app's stdout is the unit's journal: journald tags each line with the unit of
    // its writer's cgroup, so the app's lines are the unit's when its cgroup is inside
    // the unit's (Delegate=yes; without it nook says so).
    let b = Bundle::new("unit-exit");
    b.args(&["signals"]);
    let id = b.id();
    let u = Unit::new("journal");
    let o = u.run(&b, &id, &["Type=exec", "Delegate=yes"], &[], true);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        wait_until(WAIT, || u.journal().contains("ready")),
        "{}",
        u.journal()
    );
    drop(u);
    b.assert_clean(&id);

    // Its exit code is ExecMainStatus.
    b.args(&["exit", "7"]);
    let id = b.id();
    let u = Unit::new("exit7");
    u.run(&b, &id, &["Type=exec"], &[], true);
    assert!(u.wait_for("ActiveState", "failed"), "{}", u.journal());
    assert_eq!(u.show("ExecMainStatus"), "7");
    assert_eq!(u.show("Result"), "exit-code");
    b.assert_clean(&id);

    // Signals sent to the main process (nook) reach the app.
    for (sig, num) in [("HUP", 1), ("USR1", 10), ("INT", 2)] {
        b.args(&["signals"]);
        let id = b.id();
        let u = Unit::new("sig");
        let ok_status = format!("SuccessExitStatus={}", 100 + num);
        let props = ["RemainAfterExit=yes", "Delegate=yes", ok_status.as_str()];
        u.run(&b, &id, &props, &[], true);
        assert!(
            wait_until(WAIT, || u.journal().contains("ready")),
            "{}",
            u.journal()
        );
        ok(&[
            "systemctl",
            "kill",
            "-s",
            sig,
            "--kill-whom=main",
            &u.service(),
        ]);
        assert!(u.wait_for("SubState", "exited"), "{}", u.journal());
        assert_eq!(u.show("ExecMainStatus"), (100 + num).to_string());
        b.assert_clean(&id);
    }
}

#[test]
fn a_stop_that_kills_nook_leaves_nothing() {
    if !systemd_runs() {
        return;
    }
    // The app ignores TERM (pid 1 without a handler) and the unit does not delegate:
    // at the stop timeout only nook is killed; the app dies with it and ExecStopPost's
    // delete --force clears the state and cgroup.
    let b = Bundle::new("unit-kill");
    b.args(&["notify", "READY=1", "sleep:300"]);
    let id = b.id();
    let u = Unit::new("kill");
    let post = delete_on_stop(&b, &id);
    let props = ["Type=notify", "KillMode=mixed", "TimeoutStopSec=2", &post];
    let o = u.run(&b, &id, &props, &[], true);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let init = b.state(&id)["pid"].as_i64().unwrap() as i32;
    let journal = u.journal();
    assert!(
        journal.contains("does not delegate its cgroup"),
        "{journal}"
    );
    ok(&["systemctl", "stop", &u.service()]);
    assert!(wait_until(WAIT, || !alive(init)));
    b.assert_clean(&id);
}

#[test]
fn socket_unit_from_nook_unit_activates_httpd() {
    if !systemd_runs() {
        return;
    }
    if common::missing_tool("cc", "package gcc: builds the example httpd") {
        return;
    }
    let b = Bundle::new("unit-httpd");
    let httpd = b.rootfs.join("bin/httpd");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-examples/httpd/httpd.c");
    let out = sh(&[
        "cc",
        "-static",
        "-O2",
        "-o",
        httpd.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    b.config(|c| c["process"]["args"] = serde_json::json!(["/bin/httpd"]));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut u = Unit::new("httpd");
    let addr = format!("127.0.0.1:{port}");
    u.write_with_nook_unit(&b, &["--listen", &addr]);
    assert_eq!(u.files.len(), 2, "{:?}", u.files);
    let files: Vec<&str> = u.files.iter().map(|f| f.to_str().unwrap()).collect();
    let mut verify = vec!["systemd-analyze", "verify"];
    verify.extend(&files);
    let v = sh(&verify);
    let said = format!("{}{}", text(&v.stdout), text(&v.stderr));
    assert!(
        v.status.success() && !said.contains(&u.name),
        "verify: {said}"
    );
    ok(&["systemctl", "daemon-reload"]);
    ok(&["systemctl", "start", &format!("{}.socket", u.name)]);
    assert_eq!(
        u.show("ActiveState"),
        "inactive",
        "started before any client"
    );

    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.0 200 OK") && answer.contains("hello from"),
        "{answer}"
    );
    // httpd's READY=1 came through nook's relay.
    assert!(u.wait_for("ActiveState", "active"), "{}", u.journal());
    assert!(
        u.journal().contains("serving the socket systemd passed"),
        "{}",
        u.journal()
    );
    let id = u.name.clone();
    drop(u);
    b.assert_clean(&id);
}

#[test]
fn systemd_cgroup_driver_makes_a_scope_with_the_limits() {
    if !systemd_runs() {
        return;
    }
    let b = Bundle::new("unit-scope");
    b.args(&["sleep", "120"]);
    let id = b.id();
    let unit = format!("nook-t-{id}.scope");
    b.config(|c| {
        c["linux"]["cgroupsPath"] = serde_json::json!(format!("system.slice:nook-t:{id}"));
        c["linux"]["resources"] = serde_json::json!({
            "memory": {"limit": 67108864},
            "pids": {"limit": 50},
            "cpu": {"quota": 50000, "period": 100000}
        });
    });
    let show = |p: &str| {
        ok(&["systemctl", "show", "-p", p, "--value", &unit])
            .trim()
            .to_string()
    };
    common::ok(b.nook(&[
        "--systemd-cgroup",
        "run",
        "--detach",
        &id,
        "--bundle",
        b.path_str(),
    ]));
    assert_eq!(show("ActiveState"), "active");
    assert_eq!(show("MemoryMax"), "67108864");
    assert_eq!(show("TasksMax"), "50");
    assert_eq!(show("CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(show("Delegate"), "yes");
    let init = b.state(&id)["pid"].as_i64().unwrap() as i32;
    let cg = format!("/system.slice/{unit}");
    assert_eq!(cgroup_of(init), cg);
    let dir = PathBuf::from(format!("/sys/fs/cgroup{cg}"));
    assert_eq!(common::read_trim(&dir.join("pids.max")), "50");

    // The name is taken while the scope lives.
    let b2 = Bundle::new("unit-scope2");
    b2.args(&["sleep", "120"]);
    b2.config(|c| {
        c["linux"]["cgroupsPath"] = serde_json::json!(format!("system.slice:nook-t:{id}"))
    });
    let id2 = b2.id();
    let err = common::fails(&b2.nook(&[
        "--systemd-cgroup",
        "run",
        "--detach",
        &id2,
        "--bundle",
        b2.path_str(),
    ]));
    assert!(
        err.contains(&unit) && err.contains("already exists"),
        "{err}"
    );
    b2.assert_clean(&id2);

    // update sets the scope's properties and the files.
    common::ok(b.nook(&["update", &id, "--memory", "128m"]));
    assert_eq!(show("MemoryMax"), "134217728");
    assert_eq!(common::read_trim(&dir.join("memory.max")), "134217728");

    // delete stops the scope; its cgroup goes.
    common::ok(b.nook(&["delete", "--force", &id]));
    assert!(
        wait_until(WAIT, || show("ActiveState") == "inactive"),
        "{}",
        show("ActiveState")
    );
    assert!(!dir.exists());
    assert!(!alive(init));

    // A cgroupsPath the driver cannot read is refused, naming it; nothing is left.
    b.config(|c| c["linux"]["cgroupsPath"] = serde_json::json!("/not/slice/form"));
    let id = b.id();
    let err = common::fails(&b.nook(&[
        "--systemd-cgroup",
        "run",
        "--detach",
        &id,
        "--bundle",
        b.path_str(),
    ]));
    assert!(
        err.contains("linux.cgroupsPath") && err.contains("slice:prefix:name"),
        "{err}"
    );
    b.assert_clean(&id);
}

#[test]
fn detached_run_hands_the_unit_to_the_app() {
    if !systemd_runs() {
        return;
    }
    // `run --detach` returns at once: the app gets systemd's own notify socket and nook
    // sends MAINPID= with the app's host pid first, so the app's READY=1 counts.
    let b = Bundle::new("unit-detach");
    b.args(&[
        "notify",
        "sleep:1",
        "READY=1\\nSTATUS=detached and ready",
        "wait-signal",
    ]);
    let id = b.id();
    let u = Unit::new("detach");
    let post = delete_on_stop(&b, &id);
    let props = [
        "Type=notify",
        "Delegate=yes",
        "SuccessExitStatus=115",
        &post,
    ];
    let o = u.run(&b, &id, &props, &["--detach"], true);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(u.show("ActiveState"), "active", "{}", u.journal());
    assert_eq!(u.show("StatusText"), "detached and ready");
    let init = b.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(u.show("MainPID"), init.to_string());
    ok(&["systemctl", "stop", &u.service()]);
    assert!(wait_until(WAIT, || !alive(init as i32)));
    b.assert_clean(&id);
}

/// podman with its default cgroup manager on a systemd host (systemd: it passes
/// --systemd-cgroup and a `machine.slice:libpod:<id>` cgroupsPath) runs containers with
/// nook, which makes the scope with podman's limits; `rm -f` takes the scope away.
#[test]
fn podman_with_the_systemd_cgroup_manager() {
    if !systemd_runs() || common::missing_tool("podman", "package podman") {
        return;
    }
    let b = Bundle::new("unit-podman");
    let base = b.dir.join("podman");
    // Dropped before the bundle checks for leftovers: podman's containers, then its own
    // mounts under its storage (the overlay driver's home, bound on itself).
    struct PodmanStorage(PathBuf);
    impl Drop for PodmanStorage {
        fn drop(&mut self) {
            let root = self.0.join("root");
            let run = self.0.join("run");
            let _ = Command::new("podman")
                .arg("--root")
                .arg(&root)
                .arg("--runroot")
                .arg(&run)
                .args(["--runtime", NOOK, "rm", "--all", "--force", "--time", "0"])
                .output();
            common::unmount_under(&self.0);
        }
    }
    let _storage = PodmanStorage(base.clone());
    let rootfs = b.rootfs.to_str().unwrap().to_string();
    let name = format!("nook-t-podman-{}", std::process::id());
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(base.join("root"))
            .arg("--runroot")
            .arg(base.join("run"))
            .arg("--tmpdir")
            .arg(base.join("tmp"))
            .args(["--cgroup-manager", "systemd", "--runtime", NOOK])
            .args(args)
            .stdin(std::process::Stdio::null());
        let mut s = b.spawn(c);
        s.output_within(WAIT).expect("podman timed out")
    };
    let run = [
        "run",
        "--rm",
        "--network",
        "none",
        "--rootfs",
        &rootfs,
        "/bin/probe",
        "hello",
    ];
    let out = podman(&run);
    assert!(
        out.status.success(),
        "podman run: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("hello from probe"));
    let detached = [
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--pids-limit",
        "33",
        "--rootfs",
        &rootfs,
        "/bin/probe",
        "sleep",
        "120",
    ];
    let out = podman(&detached);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cid = text(&out.stdout).trim().to_string();
    let unit = format!("libpod-{cid}.scope");
    let show = |p: &str| {
        ok(&["systemctl", "show", "-p", p, "--value", &unit])
            .trim()
            .to_string()
    };
    assert_eq!(show("ActiveState"), "active");
    assert_eq!(show("TasksMax"), "33");
    let cg = show("ControlGroup");
    let pids = PathBuf::from(format!("/sys/fs/cgroup{cg}/pids.max"));
    assert_eq!(common::read_trim(&pids), "33");
    let out = podman(&["rm", "-f", "-t", "0", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(wait_until(WAIT, || show("ActiveState") == "inactive"));
    assert!(!Path::new(&format!("/sys/fs/cgroup{cg}")).exists());
}

#[test]
fn unit_with_ready_cmd_and_announce_is_in_etcd_while_ready() {
    if !systemd_runs() {
        return;
    }
    let b = Bundle::new("unit-announce");
    let Some(e) = common::etcd::Etcd::start(&b) else {
        return;
    };
    // Ready for the check 2 s after the start; ends on SIGTERM (as pid 1 a shell would
    // ignore it).
    b.sh("sleep 2; echo > /dev/shm/ready; exec /bin/probe signals");
    let mut u = Unit::new("announce");
    u.write_with_nook_unit(
        &b,
        &[
            "--ready-cmd",
            "/bin/busybox test -e /dev/shm/ready",
            "--announce",
            &e.url,
            "--service",
            "web",
            "--port",
            "8080",
            "--ttl",
            "5",
        ],
    );
    ok(&["systemctl", "daemon-reload"]);
    let t = Instant::now();
    // Type=notify: start returns once nook said READY=1, after the check passed.
    ok(&["systemctl", "start", &u.service()]);
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "ready before the check could pass: {}",
        u.journal()
    );
    assert_eq!(u.show("ActiveState"), "active");
    assert!(
        wait_until(Duration::from_secs(10), || e.instances("web").len() == 1),
        "never announced: {}",
        u.journal()
    );
    let inst = e.instances("web");
    assert!(inst[0].0.ends_with(&format!("/{}", u.name)), "{inst:?}");
    assert_eq!(inst[0].1["ports"], serde_json::json!([8080]));
    // systemctl stop: nook withdraws the key at once (well inside the 5 s TTL).
    let t = Instant::now();
    ok(&["systemctl", "stop", &u.service()]);
    assert!(
        wait_until(Duration::from_secs(4), || e.instances("web").is_empty()),
        "still announced after stop: {}",
        u.journal()
    );
    assert!(t.elapsed() < Duration::from_secs(4));
    assert!(u.journal().contains("withdrew"), "{}", u.journal());
}
