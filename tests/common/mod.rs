//! Harness shared by nook's integration tests: the probe binary, throwaway bundles
//! with their own state root, a runner with a timeout, and checks that a container
//! left nothing behind (state dir, cgroup dirs, processes, host mounts).
//!
//! Every test asserts what the kernel shows (from inside, through the probe, or on
//! the host through /proc and /sys), never what nook says it did.
#![allow(dead_code)]

pub mod containerd;
pub mod etcd;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const NOOK: &str = env!("CARGO_BIN_EXE_nook");
/// Set on every nook we start, so a leftover init (a fork of nook) can be found.
const TAG_VAR: &str = "NOOK_IT_TAG";
/// How long any single nook command may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(60);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn next() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// True (after saying so) when the tests cannot run: they need root.
/// Copy an executable with cp(1), not in this process: a write fd open here could be
/// inherited by another test thread's fork (until its exec) and make the container's
/// execve of the copy fail with ETXTBSY.
pub fn copy_exe(src: &Path, dst: &Path) {
    let st = Command::new("cp")
        .arg(src)
        .arg(dst)
        .status()
        .expect("running cp");
    assert!(st.success(), "cp {} {}", src.display(), dst.display());
}

pub fn skip() -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    eprintln!("skipping: needs root");
    true
}

/// The runtime the client tests (docker, podman, containerd) hand to their client: nook,
/// or NOOK_CLIENT_RUNTIME (say, runc's path) to show they test the client's path through
/// a runtime rather than nook's internals.
pub fn client_runtime() -> String {
    std::env::var("NOOK_CLIENT_RUNTIME").unwrap_or_else(|_| NOOK.to_string())
}

/// A test's tool (a program on PATH) is missing: say so and skip, unless the run is
/// strict (`make test` sets NOOK_TEST_STRICT after integration/deps.sh has installed the
/// test packages, so a missing tool there means that list lacks it: a failure).
pub fn missing_tool(tool: &str, why: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return false;
    }
    let msg = format!("{tool} is not installed ({why}); integration/deps.sh lists the packages");
    if std::env::var_os("NOOK_TEST_STRICT").is_some() {
        panic!("{msg}");
    }
    eprintln!("skipping: {msg}");
    true
}

/// The static probe, built once per test binary (into a temp name, then renamed, so
/// test binaries building at the same time never see a half-written file).
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        // test-vm (integration/vm/): the guest has no compiler, so the host builds the
        // probe once and names it in NOOK_PROBE; use it when it is an existing file.
        if let Some(p) = std::env::var_os("NOOK_PROBE").map(PathBuf::from) {
            if p.is_file() {
                return p;
            }
        }
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe/probe.c");
        let tmp = dir.join(format!("probe.{}.tmp", std::process::id()));
        let out = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&tmp)
            .arg(&src)
            .output()
            .expect("running cc");
        assert!(
            out.status.success(),
            "building the probe failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dst = dir.join("probe");
        fs::rename(&tmp, &dst).expect("renaming the probe");
        dst
    })
}

/// A bundle (config.json + rootfs holding the probe) in its own temp dir, with its
/// own `--root`. Dropping it deletes every container it made and checks that
/// nothing remains, even when the test panicked.
pub struct Bundle {
    pub name: String,
    /// The temp dir holding everything below.
    pub dir: PathBuf,
    pub path: PathBuf,
    pub rootfs: PathBuf,
    /// The state root passed as `--root`.
    pub root: PathBuf,
    tag: String,
    ids: Mutex<Vec<String>>,
}

impl Bundle {
    pub fn new(name: &str) -> Bundle {
        let pid = std::process::id();
        let dir = std::env::temp_dir().join(format!("nook-it-{name}-{pid}-{}", next()));
        let _ = fs::remove_dir_all(&dir);
        let path = dir.join("bundle");
        let b = Bundle {
            name: name.to_string(),
            rootfs: path.join("rootfs"),
            root: dir.join("state"),
            tag: dir.to_string_lossy().into_owned(),
            path,
            dir,
            ids: Mutex::new(vec![]),
        };
        b.make_rootfs();
        ok(b.nook(&["spec", "--bundle", b.path_str()]));
        b.args(&["report"]);
        b
    }

    fn make_rootfs(&self) {
        for d in [
            "bin", "etc", "proc", "dev", "sys", "tmp", "root", "home/app",
        ] {
            fs::create_dir_all(self.rootfs.join(d)).expect("creating rootfs");
        }
        let bin = self.rootfs.join("bin/probe");
        copy_exe(probe(), &bin);
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let passwd = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n";
        fs::write(self.rootfs.join("etc/passwd"), passwd).unwrap();
        fs::write(self.rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        std::os::unix::fs::chown(self.rootfs.join("home/app"), Some(1000), Some(1000)).unwrap();
    }

    pub fn path_str(&self) -> &str {
        self.path.to_str().expect("utf-8 temp path")
    }

    /// The bundle (config.json and rootfs) as a plain tar, `<dir>/app.tar`, written by
    /// GNU tar: what `--bundle app.tar` takes.
    pub fn tar(&self) -> PathBuf {
        let tar = self.dir.join("app.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&self.path)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("running tar");
        assert!(st.success(), "tar of the bundle failed");
        tar
    }

    /// Edit config.json as JSON.
    pub fn config(&self, f: impl FnOnce(&mut Value)) {
        let p = self.path.join("config.json");
        let mut v: Value = serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        f(&mut v);
        // Replaced whole (a rename), never seen half-written by a nook still reading it.
        let tmp = self.path.join(".config.json.tmp");
        fs::write(&tmp, serde_json::to_string_pretty(&v).unwrap()).unwrap();
        fs::rename(&tmp, &p).unwrap();
    }

    /// Set process.args to the probe with these arguments.
    pub fn args(&self, probe_args: &[&str]) {
        let mut a = vec!["/bin/probe"];
        a.extend_from_slice(probe_args);
        self.config(|c| c["process"]["args"] = json!(a));
    }

    /// A fresh container id, deleted again when the bundle is dropped.
    pub fn id(&self) -> String {
        let id = format!("{}-{}-{}", self.name, std::process::id(), next());
        self.ids.lock().unwrap().push(id.clone());
        id
    }

    /// `NAME=VALUE` of the variable that marks processes as this bundle's (for a nook
    /// started elsewhere, such as by systemd, to be found and cleaned up like ours).
    pub fn tag_env(&self) -> String {
        format!("{TAG_VAR}={}", self.tag)
    }

    /// The id `id` gave last (for helpers that pick their own).
    pub fn last_id(&self) -> String {
        self.ids
            .lock()
            .unwrap()
            .last()
            .expect("no id given yet")
            .clone()
    }

    /// `nook --root <root> ARGS`, not yet started (stdin is /dev/null).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(NOOK);
        c.arg("--root").arg(&self.root).args(args);
        c.env(TAG_VAR, &self.tag).stdin(Stdio::null());
        c
    }

    /// Start a command with stdout and stderr going to files in the temp dir (a
    /// container keeps them open, so pipes would never reach EOF).
    pub fn spawn(&self, cmd: Command) -> Spawned {
        Spawned::new(cmd, &self.dir)
    }

    /// Run nook to completion (failing the test if it takes longer than TIMEOUT).
    pub fn nook(&self, args: &[&str]) -> Output {
        self.nook_within(args, TIMEOUT)
    }

    pub fn nook_within(&self, args: &[&str], t: Duration) -> Output {
        let mut s = self.spawn(self.command(args));
        s.output_within(t)
            .unwrap_or_else(|| panic!("nook {args:?} did not finish within {t:?}"))
    }

    /// `nook run` a new container with the probe and these arguments.
    pub fn probe(&self, probe_args: &[&str]) -> Output {
        self.args(probe_args);
        let id = self.id();
        self.nook(&["run", &id, "--bundle", self.path_str()])
    }

    /// `probe report` in a new container, parsed; the run must succeed.
    pub fn report(&self) -> HashMap<String, String> {
        report(&ok(self.probe(&["report"])))
    }

    /// `nook create` (which must succeed); returns the file the container's stdout goes to.
    pub fn create(&self, id: &str) -> PathBuf {
        let mut s = self.spawn(self.command(&["create", id, "--bundle", self.path_str()]));
        ok(s.output_within(TIMEOUT).expect("nook create timed out"));
        s.out.clone()
    }

    /// `nook state`, which must succeed and print JSON.
    pub fn state(&self, id: &str) -> Value {
        let out = ok(self.nook(&["state", id]));
        serde_json::from_slice(&out.stdout).expect("state prints JSON")
    }

    /// The status `nook state` reports, or None when it fails.
    pub fn status(&self, id: &str) -> Option<String> {
        let out = self.nook(&["state", id]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["status"].as_str().map(str::to_string)
    }

    /// Fail the test unless nothing of container `id` remains: no state dir, no
    /// cgroup dir in any hierarchy, no process.
    pub fn assert_clean(&self, id: &str) {
        let problems = self.leftovers(&[id.to_string()]);
        assert!(problems.is_empty(), "left behind: {problems:#?}");
    }

    fn leftovers(&self, ids: &[String]) -> Vec<String> {
        let mut out = vec![];
        for id in ids {
            if self.root.join(id).exists() {
                out.push(format!("state dir {}", self.root.join(id).display()));
            }
            for d in cgroup_dirs(id) {
                out.push(format!("cgroup dir {}", d.display()));
            }
        }
        for pid in self.processes() {
            out.push(format!("process {pid}: {}", cmdline(pid)));
        }
        out
    }

    /// Live processes that belong to this bundle: a nook (or a fork of one) we
    /// started, or anything whose root is the rootfs.
    pub fn processes(&self) -> Vec<i32> {
        let needle = format!("{TAG_VAR}={}\0", self.tag);
        let root = fs::metadata(&self.rootfs).ok().map(|m| (m.dev(), m.ino()));
        all_pids()
            .into_iter()
            .filter(|&p| p != std::process::id() as i32 && alive(p))
            .filter(|&p| {
                let env = fs::read(format!("/proc/{p}/environ")).unwrap_or_default();
                let r = fs::metadata(format!("/proc/{p}/root")).ok();
                contains(&env, needle.as_bytes()) || r.map(|m| (m.dev(), m.ino())) == root
            })
            .collect()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let ids = self.ids.lock().unwrap().clone();
        let mut problems = vec![];
        for id in &ids {
            // A container whose state dir is gone cannot be deleted (delete --force
            // of an unknown id is a no-op); anything else it left is reported below.
            if !self.root.join(id).exists() {
                continue;
            }
            let mut s = self.spawn(self.command(&["delete", "--force", id]));
            match s.output_within(TIMEOUT) {
                Some(o) if o.status.success() => {}
                Some(o) => problems.push(format!("delete --force {id}: {}", text(&o.stderr))),
                None => problems.push(format!("delete --force {id} hung")),
            }
        }
        let left = self.leftovers(&ids);
        for pid in self.processes() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        problems.extend(left);
        for m in host_mount_points() {
            if Path::new(&m).starts_with(&self.dir) {
                problems.push(format!("host mount {m}"));
                let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
        if problems.is_empty() {
            return;
        }
        if std::thread::panicking() {
            eprintln!("cleanup of {} found: {problems:#?}", self.name);
        } else {
            panic!("cleanup of {} found: {problems:#?}", self.name);
        }
    }
}

/// A started command whose output goes to files.
pub struct Spawned {
    pub child: Child,
    pub out: PathBuf,
    pub err: PathBuf,
}

impl Spawned {
    pub fn new(mut cmd: Command, dir: &Path) -> Spawned {
        let n = next();
        let out = dir.join(format!("out-{n}"));
        let err = dir.join(format!("err-{n}"));
        fs::create_dir_all(dir).unwrap();
        cmd.stdout(File::create(&out).unwrap());
        cmd.stderr(File::create(&err).unwrap());
        let child = cmd.spawn().expect("spawning");
        Spawned { child, out, err }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Wait for the exit, or None after `t`.
    pub fn wait_within(&mut self, t: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + t;
        let mut nap = Duration::from_micros(100);
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    /// Wait for the exit and collect the output, or None after `t`.
    pub fn output_within(&mut self, t: Duration) -> Option<Output> {
        let status = self.wait_within(t)?;
        Some(Output {
            status,
            stdout: fs::read(&self.out).unwrap_or_default(),
            stderr: fs::read(&self.err).unwrap_or_default(),
        })
    }

    /// Wait until stdout contains `needle`.
    pub fn wait_stdout(&self, needle: &str, t: Duration) -> bool {
        wait_until(t, || self.stdout().contains(needle))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Kills (and reaps) a helper process when dropped.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Assert success; return the output for chaining.
pub fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "expected success, got {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    o
}

/// Assert failure; return stderr.
pub fn fails(o: &Output) -> String {
    assert!(
        !o.status.success(),
        "expected failure, got success\nstdout:\n{}\nstderr:\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stderr)
}

/// The exit code as a shell reports it (128 + signal for a killed process).
pub fn code(o: &Output) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    o.status
        .code()
        .or_else(|| o.status.signal().map(|s| 128 + s))
        .expect("exit code or signal")
}

/// The key=value lines of `probe report` (and similar output).
pub fn report(o: &Output) -> HashMap<String, String> {
    text(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Poll `f` until it holds or `t` passes.
pub fn wait_until(t: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + t;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The host's (this test process's) namespace link, e.g. "net:[4026531833]".
/// Wait until `fd` is readable or `t` passes (false). A poll interrupted by a signal,
/// or by a stop and continue of the whole test process (which makes a socket read with
/// a timeout fail with EINTR, see signal(7)), is simply polled again.
pub fn wait_readable(fd: std::os::fd::BorrowedFd, t: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let end = Instant::now() + t;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32).unwrap();
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) if left.is_zero() => return false,
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => return true,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

/// Detach every mount under `base` (deepest first): what a client such as podman left
/// under its storage in the test's temp dir (its overlay home, a container's shm).
pub fn unmount_under(base: &Path) {
    let base = base.to_string_lossy().into_owned();
    if let Ok(info) = fs::read_to_string("/proc/self/mountinfo") {
        for point in info.lines().filter_map(|l| l.split(' ').nth(4)).rev() {
            if point.starts_with(&base) {
                let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

pub fn host_ns(ns: &str) -> String {
    readlink(&format!("/proc/self/ns/{ns}"))
}

pub fn readlink(p: &str) -> String {
    fs::read_link(p)
        .unwrap_or_else(|e| panic!("readlink {p}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// Whether a process exists and is not a zombie (this host's pid 1 does not reap).
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 2..].split(' ').next());
    !matches!(state, None | Some("Z") | Some("X"))
}

pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn cmdline(pid: i32) -> String {
    let c = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    text(&c).replace('\0', " ")
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// One line of a mountinfo file.
#[derive(Debug, Clone)]
pub struct MountLine {
    pub point: String,
    /// Per-mount options (ro, nosuid, ...).
    pub opts: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// Superblock options (size=, mode=, ...).
    pub super_opts: Vec<String>,
}

pub fn parse_mountinfo(text: &str) -> Vec<MountLine> {
    let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(MountLine {
                point: unescape(pre.get(4)?),
                opts: split(pre.get(5)?),
                fstype: post.first()?.to_string(),
                source: post.get(1)?.to_string(),
                super_opts: split(post.get(2).unwrap_or(&"")),
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

pub fn host_mounts() -> Vec<MountLine> {
    parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap())
}

pub fn host_mount_points() -> HashSet<String> {
    host_mounts().into_iter().map(|m| m.point).collect()
}

/// The mount points of the host's cgroup hierarchies (v1 controllers and v2).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    host_mounts()
        .into_iter()
        .filter(|m| m.fstype == "cgroup" || m.fstype == "cgroup2")
        .map(|m| PathBuf::from(m.point))
        .collect()
}

/// The existing `<hierarchy>/nook/<id>` directories.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .map(|m| m.join("nook").join(id))
        .filter(|d| d.exists())
        .collect()
}

/// Where one cgroup controller lives on this host, found as nook places it: a v1
/// hierarchy naming it, else the v2 hierarchy whose root lists it in cgroup.controllers.
#[derive(Debug, Clone)]
pub struct Controller {
    pub mount: PathBuf,
    pub v2: bool,
}

pub fn controller(name: &str) -> Option<Controller> {
    let ms = host_mounts();
    let v1 = ms
        .iter()
        .find(|m| m.fstype == "cgroup" && m.super_opts.iter().any(|o| o == name));
    let v2 = || {
        ms.iter().find(|m| {
            let c = fs::read_to_string(Path::new(&m.point).join("cgroup.controllers"));
            m.fstype == "cgroup2" && c.unwrap_or_default().split_whitespace().any(|c| c == name)
        })
    };
    match v1 {
        Some(m) => Some(Controller {
            mount: PathBuf::from(&m.point),
            v2: false,
        }),
        None => v2().map(|m| Controller {
            mount: PathBuf::from(&m.point),
            v2: true,
        }),
    }
}

/// The host directory of process `pid`'s cgroup for controller `name` (its v1 hierarchy,
/// else the v2 one), found through /proc/PID/cgroup: for containers a client placed,
/// whatever cgroup path it chose.
pub fn pid_cgroup_dir(pid: i32, name: &str) -> Option<PathBuf> {
    let lines = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = |want: &str| {
        lines.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctls, p) = (f.next()?, f.next()?, f.next()?);
            let hit = if want.is_empty() {
                ctls.is_empty()
            } else {
                ctls.split(',').any(|c| c == want)
            };
            hit.then(|| p.trim_start_matches('/').to_string())
        })
    };
    let c = controller(name)?;
    let p = if c.v2 { path("") } else { path(name) }?;
    Some(c.mount.join(p))
}

/// Whether the kernel has frozen the cgroup of process `pid` (v1 freezer.state FROZEN,
/// or v2 cgroup.events "frozen 1").
pub fn pid_frozen(pid: i32) -> bool {
    if let Some(d) = pid_cgroup_dir(pid, "freezer") {
        return fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN");
    }
    let lines = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let v2 = lines.lines().find_map(|l| l.strip_prefix("0::/"));
    match (v2_mount(), v2) {
        (Some(m), Some(p)) => fs::read_to_string(m.join(p).join("cgroup.events"))
            .is_ok_and(|s| s.lines().any(|l| l == "frozen 1")),
        _ => false,
    }
}

/// The host's cgroup v2 mount, if any.
pub fn v2_mount() -> Option<PathBuf> {
    host_mounts()
        .into_iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| PathBuf::from(m.point))
}

/// A file of a container's cgroup (default path nook/<id>) for a controller.
pub fn cgroup_file(c: &Controller, id: &str, file: &str) -> PathBuf {
    c.mount.join("nook").join(id).join(file)
}

/// The same file as the container sees it under its /sys/fs/cgroup mount (the
/// hierarchy itself on a v2-only host, else a directory per hierarchy).
pub fn inside_cgroup_file(c: &Controller, file: &str) -> String {
    if cgroup_mounts().len() == 1 {
        format!("/sys/fs/cgroup/{file}")
    } else {
        let name = c.mount.file_name().unwrap().to_string_lossy();
        format!("/sys/fs/cgroup/{name}/{file}")
    }
}

/// Read a (cgroup) file, trimmed; panics naming the file when it cannot.
pub fn read_trim(p: &Path) -> String {
    fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// A static busybox for `sh -c` scripts in containers: NOOK_BUSYBOX, else the host's
/// (busybox-static), else target/nook-busybox (a VM guest without busybox).
pub fn busybox() -> &'static Path {
    static BB: OnceLock<PathBuf> = OnceLock::new();
    BB.get_or_init(|| {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/nook-busybox");
        let found = std::env::var_os("NOOK_BUSYBOX")
            .map(PathBuf::from)
            .into_iter()
            .chain(["/usr/bin/busybox", "/bin/busybox"].map(PathBuf::from))
            .chain([target])
            .find(|p| p.is_file());
        let p = found.expect("no busybox: install busybox-static or set NOOK_BUSYBOX");
        assert!(is_static(&p), "{} is not statically linked", p.display());
        p
    })
}

/// An ELF file without a PT_INTERP program header (so it needs no loader).
fn is_static(p: &Path) -> bool {
    let b = fs::read(p).unwrap_or_default();
    let u = |o: usize, n: usize| -> usize {
        b.get(o..o + n)
            .map_or(0, |s| s.iter().rev().fold(0, |a, &x| (a << 8) | x as usize))
    };
    if !b.starts_with(b"\x7fELF\x02") {
        return false; // not a 64-bit ELF
    }
    let (phoff, phentsize, phnum) = (u(0x20, 8), u(0x36, 2), u(0x38, 2));
    !(0..phnum).any(|i| u(phoff + i * phentsize, 4) == 3)
}

impl Bundle {
    /// Put a static busybox in the rootfs as /bin/busybox (with /bin/sh and applet
    /// links) and make process.args `sh -c SCRIPT`.
    pub fn sh(&self, script: &str) {
        let bb = self.rootfs.join("bin/busybox");
        if !bb.exists() {
            copy_exe(busybox(), &bb);
            for a in [
                "sh", "sleep", "usleep", "seq", "head", "tail", "cat", "echo", "tr", "grep", "sed",
                "true", "wc",
            ] {
                std::os::unix::fs::symlink("busybox", self.rootfs.join("bin").join(a)).unwrap();
            }
        }
        self.config(|c| c["process"]["args"] = json!(["/bin/busybox", "sh", "-c", script]));
    }
}

/// Removes cgroup dirs a test made itself, in order, when dropped (declare it before
/// the Bundle so it runs after the Bundle's cleanup); a dir whose last process is
/// still exiting is retried for a moment.
pub struct RmDirs(pub Vec<PathBuf>);

impl Drop for RmDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            wait_until(Duration::from_secs(2), || {
                fs::remove_dir(d).is_ok() || !d.exists()
            });
        }
    }
}

impl Bundle {
    /// Like `command`, but running another nook binary (tests/escapes.rs aims attacks
    /// at a private copy, so a failed defence damages only the copy).
    pub fn command_with(&self, exe: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(exe);
        c.arg("--root").arg(&self.root).args(args);
        c.env(TAG_VAR, &self.tag).stdin(Stdio::null());
        c
    }

    /// `nook run` of the probe from a private mount namespace of its own, in which a
    /// small tmpfs is mounted at `at` and `setup` (shell, `$0` being `at`) runs first:
    /// a host mount for the container to see that the host's mount table, which other
    /// tests watch, never shows.
    pub fn probe_over_private_mount(&self, at: &Path, setup: &str, probe_args: &[&str]) -> Output {
        self.args(probe_args);
        self.run_over_private_mount(at, setup, None)
    }

    /// As `probe_over_private_mount`, for the bundle's process as configured; `after`
    /// (shell, `$0` being `at`) runs in that namespace once nook has succeeded, to look
    /// at what the container left there.
    pub fn run_over_private_mount(&self, at: &Path, setup: &str, after: Option<&str>) -> Output {
        let mount = r#"mount -t tmpfs -o size=1m nook-test "$0""#;
        let script = match after {
            None => format!(r#"{mount} && {setup} && exec "$@""#),
            Some(after) => format!(r#"{mount} && {setup} && "$@" && {after}"#),
        };
        let at = at.to_str().unwrap();
        let wrapper = [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            at,
        ];
        let id = self.id();
        let cmd = self.command_through(
            &wrapper,
            Path::new(NOOK),
            &["run", &id, "--bundle", self.path_str()],
        );
        self.spawn(cmd)
            .output_within(TIMEOUT)
            .expect("nook run timed out")
    }

    /// As `command_with`, started through `wrapper` (a program and its arguments, such
    /// as nsenter), which runs `exe` with nook's arguments.
    pub fn command_through(&self, wrapper: &[&str], exe: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(wrapper[0]);
        c.args(&wrapper[1..]).arg(exe);
        c.arg("--root").arg(&self.root).args(args);
        c.env(TAG_VAR, &self.tag).stdin(Stdio::null());
        c
    }
}

/// Run a nook command with `--console-socket` (placed right after the subcommand):
/// accept nook's connection and take the one fd it sends. Returns (the pty master,
/// the payload, the command's output).
pub fn with_console_socket(b: &Bundle, args: &[&str]) -> (std::os::fd::OwnedFd, Vec<u8>, Output) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    let sock = b.dir.join(format!("console-{}-{}.sock", args[0], next()));
    let listener =
        std::os::unix::net::UnixListener::bind(&sock).expect("binding the console socket");
    listener.set_nonblocking(true).unwrap();
    let mut full = vec![args[0], "--console-socket", sock.to_str().unwrap()];
    full.extend(&args[1..]);
    let mut cmd = b.spawn(b.command(&full));
    let end = Instant::now() + TIMEOUT;
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("accept: {e}"),
        }
        if let Ok(Some(st)) = cmd.child.try_wait() {
            // It may have connected (and exited) since our last accept.
            if let Ok((s, _)) = listener.accept() {
                break s;
            }
            panic!(
                "{args:?} exited ({st}) without using the console socket: {}",
                cmd.stderr()
            );
        }
        assert!(
            Instant::now() < end,
            "{args:?} never connected to the console socket"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    use std::os::fd::AsFd;
    assert!(
        wait_readable(stream.as_fd(), TIMEOUT),
        "{args:?} sent nothing on the console socket"
    );
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .expect("recvmsg on the console socket");
    let n = msg.bytes;
    let mut fds = vec![];
    for c in msg.cmsgs().expect("control messages") {
        if let ControlMessageOwned::ScmRights(f) = c {
            fds.extend(f);
        }
    }
    assert_eq!(fds.len(), 1, "expected exactly one fd in SCM_RIGHTS");
    // SAFETY: the kernel installed this fd for us; nothing else owns it.
    let master = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    let out = cmd
        .output_within(TIMEOUT)
        .expect("the command did not finish");
    (master, buf[..n].to_vec(), out)
}

/// Everything a pty master yields until every slave is closed (EIO) or `t` passes.
pub fn read_pty_until_closed(master: std::os::fd::OwnedFd, t: Duration) -> String {
    use std::io::Read;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut f = File::from(master);
        let mut out = vec![];
        let mut buf = [0u8; 4096];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        let _ = tx.send(out);
    });
    let out = rx.recv_timeout(t).expect("the terminal never closed");
    text(&out)
}

/// lchown a whole tree to `uid`:`uid` (symlinks themselves, not their targets).
pub fn chown_tree(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
    if p.is_symlink() || !p.is_dir() {
        return;
    }
    for e in fs::read_dir(p).unwrap() {
        chown_tree(&e.unwrap().path(), uid);
    }
}

impl Bundle {
    /// A new user namespace whose ids 0-65535 are host ids 100000-165535, with the
    /// rootfs owned by its root.
    pub fn in_user_namespace(&self) {
        chown_tree(&self.rootfs, 100_000);
        self.config(|c| {
            let linux = &mut c["linux"];
            let ns = linux["namespaces"].as_array_mut().unwrap();
            ns.push(json!({"type": "user"}));
            let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            linux["uidMappings"] = map.clone();
            linux["gidMappings"] = map;
        });
    }
}
