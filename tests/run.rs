//! `nook run`: exit codes, death by signal, signal forwarding, --detach, cleanup
//! after the process exits, and a process that exits at once never hanging `run`.

mod common;

use std::time::Duration;

use common::{alive, cgroup_dirs, code, ok, text, Bundle};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

#[test]
fn exit_code_propagates() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("run-exit");
    for n in ["0", "7", "255"] {
        assert_eq!(
            code(&b.probe(&["exit", n])).to_string(),
            n,
            "probe exit {n}"
        );
    }
}

#[test]
fn death_by_signal_is_128_plus_signal() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("run-signalled");
    // As init of a pid namespace the probe could not kill itself with a default
    // action (the kernel ignores such signals from inside), so no pid namespace here.
    b.config(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    assert_eq!(code(&b.probe(&["kill-self", "9"])), 137);
    assert_eq!(code(&b.probe(&["kill-self", "15"])), 143);
}

fn forwarded(b: &Bundle, sig: Signal) {
    b.args(&["signals"]);
    let id = b.id();
    let mut run = b.spawn(b.command(&["run", &id, "--bundle", b.path_str()]));
    assert!(
        run.wait_stdout("ready", Duration::from_secs(10)),
        "the probe never got ready: {} {}",
        run.stdout(),
        run.stderr()
    );
    kill(Pid::from_raw(run.pid()), sig).unwrap();
    let out = run
        .output_within(Duration::from_secs(10))
        .expect("run did not exit");
    let n = sig as i32;
    assert_eq!(code(&out), 100 + n, "stderr: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("got {n}")));
    b.assert_clean(&id);
}

#[test]
fn signals_are_forwarded() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("run-forward");
    forwarded(&b, Signal::SIGTERM);
    forwarded(&b, Signal::SIGUSR1);
    forwarded(&b, Signal::SIGHUP);
}

#[test]
fn run_cleans_up_after_the_process_exits() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("run-cleanup");
    b.args(&["hello"]);
    let id = b.id();
    let out = ok(b.nook(&["run", &id, "--bundle", b.path_str()]));
    assert_eq!(text(&out.stdout), "hello from probe\n");
    b.assert_clean(&id);
}

#[test]
fn run_keep_leaves_a_stopped_container() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("run-keep");
    b.args(&["exit", "3"]);
    let id = b.id();
    let out = b.nook(&["run", "--keep", &id, "--bundle", b.path_str()]);
    assert_eq!(code(&out), 3);
    assert_eq!(b.status(&id).as_deref(), Some("stopped"));
    ok(b.nook(&["delete", &id]));
    b.assert_clean(&id);
}

#[test]
fn detach_returns_while_the_container_runs() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("run-detach");
    b.args(&["sleep", "60"]);
    let id = b.id();
    let out = b.nook_within(
        &["run", "--detach", &id, "--bundle", b.path_str()],
        Duration::from_secs(10),
    );
    assert_eq!(code(&out), 0, "stderr: {}", text(&out.stderr));
    let st: Value = b.state(&id);
    assert_eq!(st["status"], "running");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(alive(pid));
    assert!(!cgroup_dirs(&id).is_empty());
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}

/// Required: a process that exits at once must never leave `run` waiting.
#[test]
fn thousand_runs_of_an_instant_exit_never_hang() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("run-loop");
    b.args(&["exit", "0"]);
    // 1000 on the host; the software-emulated test guest sets fewer (NOOK_INSTANT_RUNS).
    let n: u32 = std::env::var("NOOK_INSTANT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    for i in 0..n {
        let id = b.id();
        let mut s = b.spawn(b.command(&["run", &id, "--bundle", b.path_str()]));
        let Some(out) = s.output_within(Duration::from_secs(10)) else {
            panic!("run {i} ({id}) hung for 10 s; stderr: {}", s.stderr());
        };
        assert_eq!(code(&out), 0, "run {i}: {}", text(&out.stderr));
        let _ = std::fs::remove_file(&s.out);
        let _ = std::fs::remove_file(&s.err);
    }
}

/// Without a terminal the container's process is a session leader of its own, as with
/// runc: it never shares the caller's process group (conmon kills its own group for
/// `podman run --timeout`, which must not reach the container, nor it conmon).
#[test]
fn the_process_leads_its_own_session() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("run-setsid");
    let out = ok(b.probe(&["cat", "/proc/self/stat"]));
    let stat = text(&out.stdout);
    // pid (comm) state ppid pgrp session ...
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let pid = stat.split(' ').next().unwrap();
    assert_eq!((f[2], f[3]), (pid, pid), "pgrp and session of {stat}");
}
