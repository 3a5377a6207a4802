//! An etcd of a test's own (Debian's etcd-server on 127.0.0.1, a data dir in the test's
//! temporary dir, killed when dropped), for the service discovery tests.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{text, wait_until, Bundle};

/// An etcd of the test's own.
pub struct Etcd {
    child: Child,
    pub url: String,
    data: PathBuf,
    port: u16,
    peer: u16,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Etcd {
    pub fn start(b: &Bundle) -> Option<Etcd> {
        if super::missing_tool("etcd", "package etcd-server")
            || super::missing_tool("etcdctl", "package etcd-client")
        {
            return None;
        }
        let (port, peer) = (free_port(), free_port());
        let data = b.dir.join("etcd");
        Some(Etcd::launch(data, port, peer))
    }

    fn launch(data: PathBuf, port: u16, peer: u16) -> Etcd {
        let url = format!("http://127.0.0.1:{port}");
        let child = Command::new("etcd")
            .args(["--name", "nook-test", "--data-dir"])
            .arg(&data)
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args([
                "--initial-cluster",
                &format!("nook-test=http://127.0.0.1:{peer}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting etcd");
        let e = Etcd {
            child,
            url,
            data,
            port,
            peer,
        };
        assert!(
            wait_until(Duration::from_secs(30), || e
                .ctl(&["endpoint", "health"])
                .status
                .success()),
            "etcd never became healthy"
        );
        e
    }

    pub fn ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url, "--dial-timeout", "2s"])
            .args(args)
            .output()
            .expect("running etcdctl")
    }

    /// The values under the service's prefix, as JSON.
    pub fn instances(&self, service: &str) -> Vec<(String, serde_json::Value)> {
        let o = self.ctl(&["get", "--prefix", &format!("/nook/services/{service}/")]);
        let out = text(&o.stdout);
        let lines: Vec<&str> = out.lines().collect();
        lines
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0].to_string(), serde_json::from_str(c[1]).unwrap()))
            .collect()
    }

    /// Kill it; a new one on the same ports with an empty data dir (`fresh`) or the
    /// same.
    pub fn restart(&mut self, fresh: bool) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if fresh {
            let _ = std::fs::remove_dir_all(&self.data);
        }
        let again = Etcd::launch(self.data.clone(), self.port, self.peer);
        let old = std::mem::replace(self, again);
        std::mem::forget(old);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
