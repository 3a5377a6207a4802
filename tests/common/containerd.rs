//! A private containerd daemon for the client tests (tests/containerd.rs, tests/cri.rs):
//! its root, state, socket and log in the test's temp dir, stopped when dropped, and the
//! dirs under /run/containerd the shim uses whatever the config says removed again when
//! they did not exist before.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::Bundle;

/// The dirs under /run/containerd a containerd's shims use whatever its config says,
/// those that do not exist yet (a daemon that makes them removes them again after it).
pub fn absent_run_dirs() -> Vec<PathBuf> {
    [
        "/run/containerd",
        "/run/containerd/s",
        "/run/containerd/fifo",
    ]
    .iter()
    .map(PathBuf::from)
    .filter(|p| !p.exists())
    .collect()
}

/// Remove those dirs, deepest first, when empty (the shims are gone).
pub fn remove_run_dirs(dirs: &mut Vec<PathBuf>) {
    for d in dirs.drain(..).rev() {
        let _ = std::fs::remove_dir(&d);
    }
}

pub struct Daemon {
    /// `<bundle dir>/containerd`: config.toml, containerd.sock, containerd.log, root, state.
    pub base: PathBuf,
    child: Option<Child>,
    run_dirs: Vec<PathBuf>,
}

impl Daemon {
    /// Start containerd under `b`'s temp dir with this config (TOML, `{base}` standing for
    /// the daemon's dir; root, state and the socket's address are set here) and wait
    /// until `ctr version` answers.
    pub fn start(b: &Bundle, config: &str) -> Daemon {
        let base = b.dir.join("containerd");
        std::fs::create_dir_all(&base).unwrap();
        let run_dirs = absent_run_dirs();
        let b_ = base.display().to_string();
        let head = format!(
            "version = 2\nroot = \"{b_}/root\"\nstate = \"{b_}/state\"\n\
             [grpc]\n  address = \"{b_}/containerd.sock\"\n"
        );
        let text = head + &config.replace("{base}", &b_);
        std::fs::write(base.join("config.toml"), text).unwrap();
        let log = std::fs::File::create(base.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(base.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let d = Daemon {
            base,
            child: Some(child),
            run_dirs,
        };
        let up = super::wait_until(Duration::from_secs(30), || {
            d.sock().exists() && d.ctr(b, &["version"]).status.success()
        });
        assert!(up, "containerd did not come up: {}", d.log());
        d
    }

    pub fn sock(&self) -> PathBuf {
        self.base.join("containerd.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("containerd.log")).unwrap_or_default()
    }

    /// Whether the daemon is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `ctr ARGS` against this daemon (run through `b`, output to files).
    pub fn ctr(&self, b: &Bundle, args: &[&str]) -> Output {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.sock())
            .args(args)
            .stdin(Stdio::null());
        let mut s = b.spawn(c);
        s.output_within(super::TIMEOUT)
            .unwrap_or_else(|| panic!("ctr {args:?} did not finish"))
    }

    /// SIGTERM, then SIGKILL after 10 s. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let stopped = super::wait_until(Duration::from_secs(10), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !stopped {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Remove the /run dirs this daemon made (when empty: its shims are gone).
    pub fn tidy(&mut self) {
        remove_run_dirs(&mut self.run_dirs);
    }

    /// The daemon's own path for `rel` (under its dir).
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.base.join(rel)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        self.tidy();
    }
}
