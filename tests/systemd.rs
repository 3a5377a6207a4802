//! What systemd gives a unit's `nook run`, as the app sees it (these tests play
//! systemd's part with sockets of their own, so they run on any host; tests/units.rs
//! drives real units where systemd is PID 1): the notify socket relayed (only the
//! service's keys, sent by nook itself so NotifyAccess=main hears them), `--notify=exec`,
//! the watchdog variables, socket-activated fds and their LISTEN_PID, clear errors for a
//! stale NOTIFY_SOCKET or a LISTEN_FDS that lies, the app killed with a killed foreground
//! nook, and a restart after that.

mod common;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{alive, fails, report, text, wait_until, Bundle, NOOK, TIMEOUT};

const WAIT: Duration = Duration::from_secs(20);

/// A datagram socket standing in for systemd's, with SO_PASSCRED so each message's
/// sender pid is known.
struct FakeSystemd {
    sock: UnixDatagram,
    path: PathBuf,
}

impl FakeSystemd {
    fn new(b: &Bundle) -> FakeSystemd {
        let path = b.dir.join("systemd-notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true).unwrap();
        sock.set_read_timeout(Some(WAIT)).unwrap();
        FakeSystemd { sock, path }
    }

    /// The next message and its sender's pid.
    fn recv(&self) -> (String, i32) {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixCredentials};
        let mut buf = [0u8; 8192];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!(UnixCredentials);
        use std::os::fd::AsFd;
        assert!(
            common::wait_readable(self.sock.as_fd(), WAIT),
            "no notify message arrived in {WAIT:?}"
        );
        let msg = recvmsg::<()>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .expect("no notify message arrived");
        let mut pid = 0;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmCredentials(cr) = c {
                pid = cr.pid();
            }
        }
        let n = msg.bytes;
        (String::from_utf8_lossy(&buf[..n]).into_owned(), pid)
    }
}

/// `nook run` in the foreground with systemd's variables.
fn run_cmd(b: &Bundle, id: &str, env: &[(&str, &str)], extra: &[&str]) -> Command {
    let mut args = vec!["run", id, "--bundle", b.path_str()];
    args.extend(extra);
    let mut c = b.command(&args);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

#[test]
fn notify_messages_are_relayed_by_nook() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("sd-relay");
    let sd = FakeSystemd::new(&b);
    b.args(&[
        "notify",
        "STATUS=starting",
        "MAINPID=1\\nREADY=1\\nFDSTORE=1",
        "sleep:0.3",
        "WATCHDOG=1\\nSTATUS=serving",
        "STOPPING=1",
    ]);
    let id = b.id();
    let env = [("NOTIFY_SOCKET", sd.path.to_str().unwrap())];
    let mut s = b.spawn(run_cmd(&b, &id, &env, &[]));
    let nook_pid = s.pid();
    let want = [
        "STATUS=starting\n",
        "READY=1\n",
        "WATCHDOG=1\nSTATUS=serving\n",
        "STOPPING=1\n",
    ];
    for w in want {
        let (m, pid) = sd.recv();
        assert_eq!(m, w);
        // Sent by nook, the unit's main process: NotifyAccess=main hears it.
        assert_eq!(pid, nook_pid, "sender of {m:?}");
    }
    let out = s.output_within(TIMEOUT).expect("nook run timed out");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("notified"));
}

#[test]
fn the_app_sees_its_notify_socket_and_watchdog() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("sd-env");
    let sd = FakeSystemd::new(&b);
    let id = b.id();
    // WATCHDOG_PID is left out here (the test cannot know nook's pid before it starts):
    // libsystemd then takes the variables as meant for the receiver.
    let env = [
        ("NOTIFY_SOCKET", sd.path.to_str().unwrap()),
        ("WATCHDOG_USEC", "3000000"),
    ];
    let out = b
        .spawn(run_cmd(&b, &id, &env, &[]))
        .output_within(TIMEOUT)
        .unwrap();
    let r = report(&out);
    for (k, v) in [
        ("env_NOTIFY_SOCKET", "/run/notify/notify.sock"),
        ("env_WATCHDOG_USEC", "3000000"),
        ("env_WATCHDOG_PID", "1"),
    ] {
        assert_eq!(r.get(k).map(String::as_str), Some(v), "{r:?}");
    }
    // Another process's watchdog is not passed on.
    let id = b.id();
    let env = [
        ("NOTIFY_SOCKET", sd.path.to_str().unwrap()),
        ("WATCHDOG_USEC", "3000000"),
        ("WATCHDOG_PID", "1"),
    ];
    let out = b
        .spawn(run_cmd(&b, &id, &env, &[]))
        .output_within(TIMEOUT)
        .unwrap();
    let r = report(&out);
    assert!(r.contains_key("env_NOTIFY_SOCKET"), "{r:?}");
    assert!(!r.keys().any(|k| k.starts_with("env_WATCHDOG_")), "{r:?}");
}

#[test]
fn notify_exec_sends_ready_once_the_app_runs() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("sd-exec");
    let sd = FakeSystemd::new(&b);
    b.args(&["sleep", "30"]);
    let id = b.id();
    let env = [("NOTIFY_SOCKET", sd.path.to_str().unwrap())];
    let mut s = b.spawn(run_cmd(&b, &id, &env, &["--notify=exec"]));
    let (m, pid) = sd.recv();
    assert_eq!((m.as_str(), pid), ("READY=1\n", s.pid()));
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    // What the kernel shows at READY=1: the init is the app already, not nook's fork.
    let init = b.state(&id)["pid"].as_i64().unwrap();
    let exe = common::readlink(&format!("/proc/{init}/exe"));
    assert!(exe.ends_with("/bin/probe"), "the init runs {exe}");
    common::ok(b.nook(&["kill", &id, "KILL"]));
    let out = s.output_within(TIMEOUT).unwrap();
    assert_eq!(common::code(&out), 137);
    // The app did not get a notify socket it was not meant to use.
    let b2 = Bundle::new("sd-exec-env");
    let id = b2.id();
    let out = b2
        .spawn(run_cmd(&b2, &id, &env, &["--notify=exec"]))
        .output_within(TIMEOUT)
        .unwrap();
    let r = report(&out);
    assert!(
        r.contains_key("env_PATH") && !r.contains_key("env_NOTIFY_SOCKET"),
        "{r:?}"
    );
}

#[test]
fn socket_activated_fds_reach_the_app_as_fd_3() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("sd-listen");
    b.args(&["serve-fd3"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let raw = listener.as_raw_fd();
    let id = b.id();
    // LISTEN_PID must be nook's own pid: set by a shell that then execs nook.
    let script = r#"LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec "$@""#;
    let mut cmd = b.command_through(
        &["sh", "-c", script, "sh"],
        std::path::Path::new(NOOK),
        &["run", &id, "--bundle", b.path_str()],
    );
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let r = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut s = b.spawn(cmd);
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "served by pid 1 LISTEN_PID=1 LISTEN_FDS=1\n");
    let out = s.output_within(TIMEOUT).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn bad_systemd_variables_are_refused_clearly() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("sd-bad");
    let id = b.id();
    let env = [("NOTIFY_SOCKET", "/run/nook-no-such-notify.sock")];
    let err = fails(
        &b.spawn(run_cmd(&b, &id, &env, &[]))
            .output_within(TIMEOUT)
            .unwrap(),
    );
    assert!(
        err.contains("NOTIFY_SOCKET") && err.contains("no such socket"),
        "{err}"
    );
    b.assert_clean(&id);
    // LISTEN_FDS naming fds nook does not hold (fd 3 closed).
    let id = b.id();
    let mut cmd = b.command_through(
        &[
            "sh",
            "-c",
            r#"exec 3>&-; LISTEN_PID=$$ LISTEN_FDS=1 exec "$@""#,
            "sh",
        ],
        std::path::Path::new(NOOK),
        &["run", &id, "--bundle", b.path_str()],
    );
    cmd.env_remove("NOTIFY_SOCKET");
    let err = fails(&b.spawn(cmd).output_within(TIMEOUT).unwrap());
    assert!(err.contains("LISTEN_FDS") && err.contains("fd 3"), "{err}");
    b.assert_clean(&id);
}

#[test]
fn a_run_after_nook_was_killed_clears_the_leftovers() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("sd-restart");
    b.args(&["sleep", "60"]);
    let id = b.id();
    let mut s = b.spawn(b.command(&["run", &id, "--bundle", b.path_str()]));
    assert!(wait_until(WAIT, || b.status(&id).as_deref() == Some("running")));
    let init = b.state(&id)["pid"].as_i64().unwrap() as i32;
    // As systemd's stop timeout would: SIGKILL to nook alone.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    s.wait_within(TIMEOUT).unwrap();
    // The app dies with its foreground nook (the parent-death signal)...
    assert!(
        wait_until(WAIT, || !alive(init)),
        "the app {init} outlived nook"
    );
    // ...and the next run of the id clears the state and cgroup it left.
    b.args(&["hello"]);
    let out = b.nook(&["run", &id, "--bundle", b.path_str()]);
    let out = common::ok(out);
    assert!(text(&out.stdout).contains("hello from probe"));
    assert!(
        text(&out.stderr).contains("clearing what an earlier run"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        wait_until(WAIT, || !alive(init)),
        "the old init {init} lives on"
    );
    // A container that is running under a live owner is not taken over.
    b.args(&["sleep", "60"]);
    let id2 = b.id();
    let mut s2 = b.spawn(b.command(&["run", &id2, "--bundle", b.path_str()]));
    assert!(wait_until(WAIT, || b.status(&id2).as_deref() == Some("running")));
    let err = fails(&b.nook(&["run", &id2, "--bundle", b.path_str()]));
    assert!(err.contains("already exists"), "{err}");
    common::ok(b.nook(&["kill", &id2, "KILL"]));
    s2.wait_within(TIMEOUT).unwrap();
}

#[test]
fn systemd_cgroup_without_systemd_is_refused() {
    if common::skip() {
        return;
    }
    if std::path::Path::new("/run/systemd/system").exists() {
        eprintln!("skipping: systemd runs here (tests/units.rs covers the driver)");
        return;
    }
    let b = Bundle::new("sd-nocgroup");
    b.config(|c| c["linux"]["cgroupsPath"] = serde_json::json!("machine.slice:libpod:abc"));
    let id = b.id();
    let err = fails(&b.nook(&["--systemd-cgroup", "create", &id, "--bundle", b.path_str()]));
    assert!(err.contains("systemd is not running"), "{err}");
    b.assert_clean(&id);
    assert!(!std::path::Path::new("/sys/fs/cgroup/unified/machine.slice").exists());
}

#[test]
fn notify_is_relayed_for_a_terminal_container_too() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("sd-tty");
    let sd = FakeSystemd::new(&b);
    b.config(|c| c["process"]["terminal"] = serde_json::json!(true));
    b.args(&["notify", "READY=1\\nSTATUS=on a tty"]);
    let id = b.id();
    let env = [("NOTIFY_SOCKET", sd.path.to_str().unwrap())];
    let mut s = b.spawn(run_cmd(&b, &id, &env, &[]));
    let (m, pid) = sd.recv();
    assert_eq!((m.as_str(), pid), ("READY=1\nSTATUS=on a tty\n", s.pid()));
    let out = s.output_within(TIMEOUT).expect("nook run timed out");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("notified"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn ready_cmd_says_ready_and_holds_the_apps_own_ready() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("sd-readycmd");
    let sd = FakeSystemd::new(&b);
    // The app says READY=1 at once; the check passes only once the test says so.
    b.sh("/bin/probe notify 'READY=1\\nSTATUS=app up'; exec /bin/probe signals");
    let id = b.id();
    let env = [("NOTIFY_SOCKET", sd.path.to_str().unwrap())];
    let check = ["--ready-cmd", "/bin/busybox test -e /dev/shm/go"];
    let mut s = b.spawn(run_cmd(&b, &id, &env, &check));
    let (m, pid) = sd.recv();
    assert_eq!(
        (m.as_str(), pid),
        ("STATUS=app up\n", s.pid()),
        "READY=1 passed on"
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        s.stderr().contains("failed: exit status 1"),
        "{}",
        s.stderr()
    );
    let o = b.nook(&["exec", &id, "--", "/bin/busybox", "touch", "/dev/shm/go"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (m, pid) = sd.recv();
    assert_eq!(
        (m.as_str(), pid),
        ("READY=1\nSTATUS=ready (--ready-cmd passed)\n", s.pid())
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid()),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let out = s.output_within(TIMEOUT).expect("nook run timed out");
    assert_eq!(common::code(&out), 115, "{}", text(&out.stderr));
    b.assert_clean(&id);
}
