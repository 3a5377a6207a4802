//! Debian's docker (docker.io 20.10) driving nook as a runtime (`--add-runtime nook=...`,
//! `docker run --runtime nook`): a private dockerd (its own data root, exec root, socket
//! and containerd; no bridge, no iptables, so the host's network is untouched) and an
//! image imported from a local rootfs. What users do every day: run with output and exit
//! code, run -d, exec, exec -t, logs, stop, kill with a signal, pause/unpause, restart,
//! rm, --memory/--pids-limit/--cpus (seen in the cgroup files), --read-only, --user.
//!
//! NOOK_CLIENT_RUNTIME=/path/to/runc runs the same tests with another runtime, which
//! shows they test docker's path through a runtime, not nook's internals.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{text, wait_until, Bundle};

const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";
const WAIT: Duration = Duration::from_secs(60);

struct Docker {
    b: Bundle,
    sock: PathBuf,
    exec_root: PathBuf,
    daemon: Child,
    image: String,
    /// The dirs under /run/containerd (its shims' sockets and fifos) that did not exist
    /// before this daemon: removed again (when empty) after it.
    run_dirs: Vec<PathBuf>,
}

impl Docker {
    fn start(name: &str) -> Option<Docker> {
        if common::skip() || common::missing_tool("dockerd", "package docker.io") {
            return None;
        }
        let b = Bundle::new(name);
        b.sh("echo hello from docker");
        let base = b.dir.join("docker");
        // The exec root holds unix sockets (108-byte paths): short, under /run.
        let exec_root = PathBuf::from(format!("/run/nook-dk-{}-{}", std::process::id(), name));
        std::fs::create_dir_all(&base).unwrap();
        let sock = base.join("docker.sock");
        let log = std::fs::File::create(base.join("dockerd.log")).unwrap();
        let add = format!("nook={}", common::client_runtime());
        let run_dirs = common::containerd::absent_run_dirs();
        let daemon = Command::new(DOCKERD)
            .arg("--data-root")
            .arg(base.join("data"))
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(base.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args([
                "--ip-masq=false",
                "--storage-driver=vfs",
                "--userland-proxy=false",
            ])
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
            .args(["--add-runtime", &add])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dockerd");
        let d = Docker {
            b,
            sock,
            exec_root,
            daemon,
            image: format!("nook-test-{}:latest", std::process::id()),
            run_dirs,
        };
        let up = wait_until(WAIT, || d.docker(&["version"]).status.success());
        assert!(up, "dockerd never answered: {}", d.daemon_log());
        // The image: the bundle's rootfs (busybox and the probe), imported.
        let tar = d.b.dir.join("rootfs.tar");
        let t = Command::new("tar")
            .arg("-C")
            .arg(&d.b.rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .output()
            .unwrap();
        assert!(t.status.success(), "{}", text(&t.stderr));
        let o = d.docker(&["import", tar.to_str().unwrap(), &d.image]);
        assert!(o.status.success(), "docker import: {}", text(&o.stderr));
        Some(d)
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.b.dir.join("docker/dockerd.log")).unwrap_or_default()
    }

    fn docker(&self, args: &[&str]) -> Output {
        let mut c = Command::new(DOCKER);
        c.arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(args)
            .stdin(Stdio::null());
        let mut s = self.b.spawn(c);
        s.output_within(WAIT)
            .unwrap_or_else(|| panic!("docker {args:?} did not finish"))
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}{}\n--- dockerd:\n{}",
            text(&o.stdout),
            text(&o.stderr),
            tail(&self.daemon_log())
        );
        text(&o.stdout).trim().to_string()
    }

    /// `docker run --runtime nook --network none ...`: its output.
    fn run(&self, opts: &[&str], cmd: &[&str]) -> Output {
        let mut a = vec!["run", "--runtime", "nook", "--network", "none"];
        a.extend(opts);
        a.push(&self.image);
        a.extend(cmd);
        self.docker(&a)
    }

    /// A detached container running `cmd`; its id.
    fn detached(&self, opts: &[&str], cmd: &[&str]) -> String {
        let mut a = vec!["run", "-d", "--runtime", "nook", "--network", "none"];
        a.extend(opts);
        a.push(&self.image);
        a.extend(cmd);
        self.ok(&a)
    }

    fn inspect(&self, id: &str, fmt: &str) -> String {
        self.ok(&["inspect", "-f", fmt, id])
    }

    /// The container's cgroup file for a controller, found from its init's cgroup.
    fn cgroup_file(&self, id: &str, controller: &str, file: &str) -> PathBuf {
        let pid = self.inspect(id, "{{.State.Pid}}");
        let c = common::controller(controller).expect("controller");
        let lines = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let want = if c.v2 { "" } else { controller };
        let path = lines
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctl, p) = (f.next()?, f.next()?, f.next()?);
                ctl.split(',')
                    .any(|x| x == want)
                    .then(|| p.trim_start_matches('/').to_string())
            })
            .expect("the container's cgroup");
        c.mount.join(path).join(file)
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl Drop for Docker {
    fn drop(&mut self) {
        // Every container goes first, then the daemon (and its containerd).
        let ids = self.docker(&["ps", "-aq"]);
        for id in text(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        let _ = self.docker(&["rmi", "-f", &self.image]);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let gone = wait_until(WAIT, || matches!(self.daemon.try_wait(), Ok(Some(_))));
        if !gone {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
        // Mounts dockerd may leave (its exec root's netns files, shm of containers).
        for m in common::host_mount_points() {
            if Path::new(&m).starts_with(&self.exec_root) || Path::new(&m).starts_with(&self.b.dir)
            {
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _ = std::fs::remove_dir_all(&self.exec_root);
        common::containerd::remove_run_dirs(&mut self.run_dirs);
    }
}

#[test]
fn docker_runs_containers_with_nook() {
    let Some(d) = Docker::start("dk-run") else {
        return;
    };
    // Output and exit code.
    let o = d.run(
        &["--rm"],
        &["/bin/sh", "-c", "echo hello from docker; exit 3"],
    );
    assert_eq!(
        text(&o.stdout).trim(),
        "hello from docker",
        "{}",
        text(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(3));
    // --user and --read-only, as the process sees them.
    let o = d.run(
        &["--rm", "--user", "1000:1000", "--read-only"],
        &[
            "/bin/sh",
            "-c",
            "busybox id -u; busybox id -g; busybox touch /x 2>&1 || echo refused",
        ],
    );
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"1000"), "{out}{}", text(&o.stderr));
    assert_eq!(lines.get(1), Some(&"1000"), "{out}");
    assert!(
        out.contains("Read-only file system") || out.contains("refused"),
        "{out}"
    );
}

#[test]
fn docker_lifecycle_exec_logs_signals_pause_restart() {
    let Some(d) = Docker::start("dk-life") else {
        return;
    };
    let script = "trap 'echo got HUP' HUP; trap 'echo got TERM; exit 0' TERM; echo started; while true; do sleep 0.1; done";
    let id = d.detached(&[], &["/bin/sh", "-c", script]);
    assert!(wait_until(WAIT, || d
        .ok(&["logs", &id])
        .contains("started")));
    assert_eq!(d.inspect(&id, "{{.State.Running}}"), "true");
    // exec, and exec with a terminal.
    assert_eq!(
        d.ok(&["exec", &id, "/bin/sh", "-c", "echo inside"]),
        "inside"
    );
    let t = d.ok(&["exec", "-t", &id, "/bin/sh", "-c", "[ -t 1 ] && echo tty"]);
    assert_eq!(t.trim(), "tty");
    // kill with a signal reaches the process; logs show it.
    d.ok(&["kill", "-s", "HUP", &id]);
    assert!(
        wait_until(WAIT, || d.ok(&["logs", &id]).contains("got HUP")),
        "{}",
        d.ok(&["logs", &id])
    );
    // pause: the process is frozen in the kernel; unpause thaws it.
    let pid: i32 = d.inspect(&id, "{{.State.Pid}}").parse().unwrap();
    d.ok(&["pause", &id]);
    assert_eq!(d.inspect(&id, "{{.State.Status}}"), "paused");
    assert!(wait_until(WAIT, || common::pid_frozen(pid)));
    d.ok(&["unpause", &id]);
    assert!(wait_until(WAIT, || !common::pid_frozen(pid)));
    // restart: a new process, running.
    d.ok(&["restart", "-t", "5", &id]);
    let pid2: i32 = d.inspect(&id, "{{.State.Pid}}").parse().unwrap();
    assert_ne!(pid, pid2);
    assert_eq!(d.inspect(&id, "{{.State.Running}}"), "true");
    // stop: TERM, handled, exit 0.
    d.ok(&["stop", "-t", "10", &id]);
    assert_eq!(d.inspect(&id, "{{.State.ExitCode}}"), "0");
    assert!(d.ok(&["logs", &id]).contains("got TERM"));
    // SIGKILL of a paused container.
    d.ok(&["start", &id]);
    d.ok(&["pause", &id]);
    d.ok(&["kill", &id]);
    assert!(wait_until(WAIT, || d.inspect(&id, "{{.State.Running}}") == "false"));
    assert_eq!(d.inspect(&id, "{{.State.ExitCode}}"), "137");
    d.ok(&["rm", &id]);
    let left = d.docker(&["inspect", &id]);
    assert!(!left.status.success(), "the container is still there");
}

#[test]
fn docker_resource_flags_reach_the_cgroup() {
    let Some(d) = Docker::start("dk-res") else {
        return;
    };
    let id = d.detached(
        &["--memory", "64m", "--pids-limit", "33", "--cpus", "0.5"],
        &["/bin/sleep", "60"],
    );
    let mem = common::controller("memory").unwrap();
    let (mfile, mwant) = if mem.v2 {
        ("memory.max", "67108864")
    } else {
        ("memory.limit_in_bytes", "67108864")
    };
    assert_eq!(
        common::read_trim(&d.cgroup_file(&id, "memory", mfile)),
        mwant
    );
    assert_eq!(
        common::read_trim(&d.cgroup_file(&id, "pids", "pids.max")),
        "33"
    );
    let cpu = common::controller("cpu").unwrap();
    if cpu.v2 {
        assert_eq!(
            common::read_trim(&d.cgroup_file(&id, "cpu", "cpu.max")),
            "50000 100000"
        );
    } else {
        assert_eq!(
            common::read_trim(&d.cgroup_file(&id, "cpu", "cpu.cfs_quota_us")),
            "50000"
        );
        // docker's cpu.shares 0 means "not set": the default weight stays.
        assert_eq!(
            common::read_trim(&d.cgroup_file(&id, "cpu", "cpu.shares")),
            "1024"
        );
    }
    d.ok(&["rm", "-f", &id]);
}
