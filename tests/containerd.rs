//! containerd driving nook through its runc shim (containerd-shim-runc-v2, the path
//! Kubernetes takes), with `ctr`: a private containerd daemon (its own root, state and
//! socket in the test's temp dir) runs the probe from a local rootfs (`--rootfs`: no
//! image, no network), detached and in the foreground, with containerd's default
//! seccomp profile, exec, pause, resume, kill and delete.
//!
//! Needs root, containerd and ctr; skipped with a message otherwise (.ci/run installs
//! containerd).

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::containerd::Daemon;
use common::{ok, report, text, Bundle};

/// A containerd daemon of the test's own (CRI off), with the bundle it runs.
struct Containerd {
    b: Bundle,
    d: Daemon,
}

impl Containerd {
    fn start(name: &str) -> Option<Containerd> {
        if common::skip() {
            return None;
        }
        if common::missing_tool("containerd", "package containerd")
            || common::missing_tool("ctr", "package containerd")
            || common::missing_tool("containerd-shim-runc-v2", "package containerd")
        {
            return None;
        }
        let b = Bundle::new(name);
        let d = Daemon::start(
            &b,
            "[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable = true\n",
        );
        Some(Containerd { b, d })
    }

    fn log(&self) -> String {
        self.d.log()
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.d.ctr(&self.b, args)
    }

    /// `ctr run` with nook as the runtime, its state and fifos in the temp dir and a
    /// one-level cgroup (nook removes it at delete; a deeper path would leave parents).
    fn run(&self, extra: &[&str], id: &str, probe_args: &[&str]) -> Output {
        let root = self.d.path("runc-root");
        let fifo = self.d.path("fifo");
        let cgroup = format!("/{id}");
        let rootfs = self.b.rootfs.to_str().unwrap();
        let runtime = common::client_runtime();
        let mut args = vec!["run", "--runc-binary", &runtime];
        args.extend(["--runc-root", root.to_str().unwrap()]);
        args.extend(["--fifo-dir", fifo.to_str().unwrap(), "--cgroup", &cgroup]);
        args.extend_from_slice(extra);
        args.extend(["--rootfs", rootfs, id, "/bin/probe"]);
        args.extend_from_slice(probe_args);
        self.ctr(&args)
    }

    /// The task's (pid, status) as `ctr task ls` shows them.
    fn task(&self, id: &str) -> (i32, String) {
        let ls = text(&ok(self.ctr(&["task", "ls"])).stdout);
        let line = ls.lines().find(|l| l.split_whitespace().next() == Some(id));
        let field = |i| line.and_then(|l| l.split_whitespace().nth(i)).unwrap_or("");
        (field(1).parse().unwrap_or(0), field(2).to_string())
    }

    fn task_status(&self, id: &str) -> String {
        self.task(id).1
    }
}

/// One containerd, one test (containers of parallel tests would share its state).
#[test]
fn containerd_runs_nook_through_its_runc_shim() {
    let Some(c) = Containerd::start("containerd") else {
        return;
    };
    // Foreground, removed afterwards: the probe is root, the init of its pid namespace.
    let id1 = c.b.id();
    let r = report(&ok(c.run(&["--rm"], &id1, &["report"])));
    assert_eq!((r["uid"].as_str(), r["pid"].as_str()), ("0", "1"));

    // Detached, with containerd's default seccomp profile; exec, pause, resume, kill.
    let id2 = c.b.id();
    ok(c.run(&["-d", "--seccomp"], &id2, &["sleep", "60"]));
    assert_eq!(c.task_status(&id2), "RUNNING");
    let status = text(
        &ok(c.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "e1",
            &id2,
            "/bin/probe",
            "cat",
            "/proc/self/status",
        ]))
        .stdout,
    );
    assert!(status.contains("Seccomp:\t2"), "{status}");
    // What containerd reports, and what the kernel shows: the init's cgroup frozen and
    // thawed, the init gone after the kill.
    let pid = c.task(&id2).0;
    assert!(pid > 0);
    ok(c.ctr(&["task", "pause", &id2]));
    assert_eq!(c.task_status(&id2), "PAUSED");
    assert!(common::pid_frozen(pid), "the kernel did not freeze {pid}");
    ok(c.ctr(&["task", "resume", &id2]));
    assert_eq!(c.task_status(&id2), "RUNNING");
    assert!(!common::pid_frozen(pid), "{pid} is still frozen");
    // SIGKILL of the paused task kills it (nook thaws after the signal, as runc does).
    ok(c.ctr(&["task", "pause", &id2]));
    ok(c.ctr(&["task", "kill", "--signal", "SIGKILL", &id2]));
    let stopped = common::wait_until(Duration::from_secs(10), || c.task_status(&id2) == "STOPPED");
    assert!(stopped, "the task did not stop: {}", c.log());
    let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None);
    assert_eq!(gone, Err(nix::errno::Errno::ESRCH), "{pid} still exists");
    ok(c.ctr(&["task", "delete", &id2]));
    ok(c.ctr(&["container", "delete", &id2]));
    // nook removed the container's cgroup with it.
    assert!(
        !Path::new("/sys/fs/cgroup/memory").join(&id2).exists()
            && !Path::new("/sys/fs/cgroup").join(&id2).exists(),
        "the container's cgroup is still there"
    );
}
