//! Terminals (process.terminal): the pty master handed to --console-socket as runc
//! sends it, a busybox shell driven through it, process.consoleSize, the refusal of
//! a terminal with nowhere to go, and a foreground `run` in a real terminal (tmux):
//! raw mode, window-size changes passed on, and the terminal restored afterwards.

mod common;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{fails, ok, text, wait_until, Bundle, NOOK};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

/// A bundle running an interactive busybox `sh` on a terminal.
fn shell_bundle(name: &str) -> Bundle {
    let b = Bundle::new(name);
    b.sh("true");
    for a in ["tty", "stty"] {
        std::os::unix::fs::symlink("busybox", b.rootfs.join("bin").join(a)).unwrap();
    }
    b.config(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["args"] = json!(["/bin/sh"]);
        c["process"]["env"] = json!(["PATH=/bin", "TERM=xterm"]);
    });
    b
}

fn wait_status(b: &Bundle, id: &str, want: &str) {
    let ok = wait_until(WAIT, || b.status(id).as_deref() == Some(want));
    assert!(ok, "{id} never became {want}: {:?}", b.status(id));
}

/// `nook create --console-socket`: accept nook's connection, take the fd it sends.
/// Returns (the pty master, the payload, create's output).
fn create_with_console(b: &Bundle, id: &str) -> (OwnedFd, Vec<u8>, Output) {
    common::with_console_socket(b, &["create", id, "--bundle", b.path_str()])
}

/// Everything read from a pty master by a background thread, until EOF or EIO.
struct Reader {
    out: Arc<Mutex<Vec<u8>>>,
    done: Arc<Mutex<bool>>,
}

impl Reader {
    fn new(master: File) -> Reader {
        let out = Arc::new(Mutex::new(vec![]));
        let done = Arc::new(Mutex::new(false));
        let (o, d) = (out.clone(), done.clone());
        std::thread::spawn(move || {
            let mut m = master;
            let mut buf = [0u8; 4096];
            loop {
                match m.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => o.lock().unwrap().extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // EIO: every slave fd is closed.
                    Err(_) => break,
                }
            }
            *d.lock().unwrap() = true;
        });
        Reader { out, done }
    }

    fn text(&self) -> String {
        text(&self.out.lock().unwrap())
    }

    fn wait_for(&self, needle: &str) -> bool {
        wait_until(WAIT, || self.text().contains(needle))
    }

    fn wait_eof(&self) -> bool {
        wait_until(WAIT, || *self.done.lock().unwrap())
    }
}

/// Create with a console socket, start, type `input` into the shell, read until the
/// terminal closes; returns (the master's window size, everything the shell wrote).
fn drive(b: &Bundle, id: &str, input: &str) -> ((u16, u16), String) {
    let (master, payload, out) = create_with_console(b, id);
    ok(out);
    assert_eq!(
        payload,
        b"/dev/ptmx",
        "the console socket payload: {:?}",
        text(&payload)
    );
    assert_eq!(b.status(id).as_deref(), Some("created"));
    let size = winsize(&master);
    let mut w = File::from(master.try_clone().unwrap());
    let r = Reader::new(File::from(master));
    ok(b.nook(&["start", id]));
    // The prompt, before typing (not required: the line discipline keeps the input).
    r.wait_for("# ");
    w.write_all(input.as_bytes()).unwrap();
    drop(w);
    assert!(
        r.wait_eof(),
        "the terminal never closed; the shell wrote: {:?}",
        r.text()
    );
    (size, r.text())
}

/// The window size of a terminal fd.
fn winsize(fd: &OwnedFd) -> (u16, u16) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize to a valid pointer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    assert_eq!(r, 0, "TIOCGWINSZ on the received fd (not a terminal?)");
    (ws.ws_row, ws.ws_col)
}

#[test]
fn console_socket_gets_the_pty_master() {
    if common::skip() {
        return;
    }
    let b = shell_bundle("tty-socket");
    let id = b.id();
    let (_, out) = drive(&b, &id, "tty; echo ok-$((6*7)); exit 7\n");
    assert!(out.contains("/dev/pts/0"), "tty inside: {out:?}");
    assert!(out.contains("ok-42"), "the shell's output: {out:?}");
    wait_status(&b, &id, "stopped");
    ok(b.nook(&["delete", &id]));
    b.assert_clean(&id);
}

#[test]
fn console_size_is_applied() {
    if common::skip() {
        return;
    }
    let b = shell_bundle("tty-size");
    b.config(|c| c["process"]["consoleSize"] = json!({"height": 33, "width": 101}));
    let id = b.id();
    let (size, out) = drive(&b, &id, "stty size; exit 0\n");
    assert_eq!(size, (33, 101), "the master's window size after create");
    assert!(out.contains("33 101"), "stty size inside: {out:?}");
    wait_status(&b, &id, "stopped");
    ok(b.nook(&["delete", &id]));
    b.assert_clean(&id);
}

#[test]
fn terminal_without_console_socket_is_refused() {
    if common::skip() {
        return;
    }
    let b = shell_bundle("tty-nosocket");
    let id = b.id();
    let err = fails(&b.nook(&["create", &id, "--bundle", b.path_str()]));
    assert!(err.contains("--console-socket"), "{err}");
    b.assert_clean(&id);
    fails(&b.nook(&["state", &id]));
}

/// A tmux server of our own (its own socket), killed when dropped.
struct Tmux {
    sock: PathBuf,
    session: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-S").arg(&self.sock).arg("-f").arg("/dev/null");
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd().args(args).output().expect("running tmux");
        assert!(out.status.success(), "tmux {args:?}: {}", text(&out.stderr));
        out
    }

    fn send(&self, keys: &str) {
        self.run(&["send-keys", "-t", &self.session, "-l", keys]);
        self.run(&["send-keys", "-t", &self.session, "Enter"]);
    }

    fn pane(&self) -> String {
        text(
            &self
                .run(&[
                    "capture-pane",
                    "-p",
                    "-J",
                    "-S",
                    "-200",
                    "-t",
                    &self.session,
                ])
                .stdout,
        )
    }

    fn wait_pane(&self, needle: &str) -> bool {
        wait_until(WAIT, || self.pane().contains(needle))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").output();
        let _ = fs::remove_file(&self.sock);
    }
}

fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.to_str().unwrap().replace('\'', "'\\''"))
}

#[test]
fn foreground_run_in_a_real_terminal() {
    if common::skip() {
        return;
    }
    if common::missing_tool("tmux", "package tmux") {
        return;
    }
    let b = shell_bundle("tty-fg");
    let id = b.id();
    let (before, after, exit) = (
        b.dir.join("before"),
        b.dir.join("after"),
        b.dir.join("exit"),
    );
    let script = format!(
        "stty -g > {before}; NOOK_IT_TAG={tag} {nook} --root {root} run {id} --bundle {bundle}; \
         rc=$?; stty -g > {after}; echo $rc > {exit}.tmp; mv {exit}.tmp {exit}; sleep 600",
        before = sh_quote(&before),
        after = sh_quote(&after),
        exit = sh_quote(&exit),
        // The harness finds leftovers of this bundle by this tag (the temp dir).
        tag = sh_quote(&b.dir),
        nook = sh_quote(Path::new(NOOK)),
        root = sh_quote(&b.root),
        bundle = sh_quote(&b.path),
    );
    let t = Tmux {
        sock: b.dir.join("tmux.sock"),
        session: format!("nook-it-{}", id),
    };
    t.run(&[
        "new-session",
        "-d",
        "-s",
        &t.session,
        "-x",
        "100",
        "-y",
        "30",
        &script,
    ]);
    assert!(
        t.wait_pane("# "),
        "no shell prompt in the pane: {:?}",
        t.pane()
    );
    t.send("tty; stty size; echo hi-$((2*21))");
    assert!(t.wait_pane("hi-42"), "no output: {:?}", t.pane());
    t.run(&["resize-window", "-t", &t.session, "-x", "120", "-y", "40"]);
    // The shell only sees the new size once nook has passed SIGWINCH on; give it a
    // moment, then ask.
    std::thread::sleep(Duration::from_millis(300));
    t.send("stty size; exit 3");
    let done = wait_until(WAIT, || exit.exists());
    let pane = t.pane();
    assert!(done, "run never finished; the pane: {pane}");
    let at = |needle: &str| {
        pane.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in the pane:\n{pane}"))
    };
    assert!(at("/dev/pts/0") < at("30 100"), "{pane}");
    assert!(at("30 100") < at("hi-42"), "{pane}");
    assert!(
        at("hi-42") < at("40 120"),
        "the new size never reached the container:\n{pane}"
    );
    assert_eq!(
        fs::read_to_string(&exit).unwrap().trim(),
        "3",
        "run's exit code\n{pane}"
    );
    let (before, after) = (
        fs::read_to_string(&before).unwrap(),
        fs::read_to_string(&after).unwrap(),
    );
    assert_eq!(before, after, "the terminal was not restored");
    b.assert_clean(&id);
    drop(t);
}

/// `exec --tty --console-socket` into a running container: the exec'd shell gets its
/// own pty (from the container's devpts) and the master arrives on the socket.
#[test]
fn exec_tty_sends_its_pty_to_the_console_socket() {
    if common::skip() {
        return;
    }
    let b = shell_bundle("tty-exec");
    b.config(|c| {
        c["process"]["terminal"] = json!(false);
        c["process"]["args"] = json!(["/bin/busybox", "sleep", "30"]);
    });
    let id = b.id();
    b.create(&id);
    ok(b.nook(&["start", &id]));
    let (master, payload, out) =
        common::with_console_socket(&b, &["exec", "--tty", "--detach", &id, "/bin/sh"]);
    ok(out);
    assert_eq!(payload, b"/dev/ptmx");
    let mut w = File::from(master.try_clone().unwrap());
    let r = Reader::new(File::from(master));
    r.wait_for("# ");
    w.write_all(b"tty; echo exec-$((3*4)); exit\n").unwrap();
    drop(w);
    assert!(
        r.wait_eof(),
        "the exec terminal never closed: {:?}",
        r.text()
    );
    let out = r.text();
    assert!(out.contains("/dev/pts/"), "tty inside: {out:?}");
    assert!(out.contains("exec-12"), "the shell's output: {out:?}");
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}
