//! The runtime spec's hooks: when each kind runs (its order among the others and
//! the lifecycle), where (the host's namespaces or the container's, before or after
//! pivot_root), what it gets (the state on stdin, args with argv0, env only as
//! configured, a timeout), and what a failure does (create is undone; poststart and
//! poststop only warn).
//!
//! Every hook is a shell that appends one line to a log:
//! `KIND|mnt ns|pid ns|root of the state's pid|$0|$1|$FOO|$NOOK_IT_TAG or unset|state`.
//! Host-side hooks (and createContainer, which still sees host paths) write the log
//! directly; startContainer and the container process write it through a bind mount
//! of the same directory at /log.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{fails, host_ns, ok, parse_mountinfo, readlink, text, wait_until, Bundle};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
/// Where startContainer's shell lives: a name only the container's rootfs has.
const IN_CONTAINER_SH: &str = "/bin/nook-hook-sh";

/// One hook's line in the log.
#[derive(Debug, Clone)]
struct Line {
    kind: String,
    mnt: String,
    pid_ns: String,
    /// readlink /proc/<state pid>/root, as the hook saw it (host-side hooks only).
    init_root: String,
    arg0: String,
    arg1: String,
    foo: String,
    /// $NOOK_IT_TAG (which nook itself has) or "unset".
    tag: String,
    state: Value,
    raw: String,
}

/// A bundle whose rootfs has busybox (and an extra shell name only it has), with the
/// log directory bound at /log.
struct Hooked {
    b: Bundle,
    logdir: PathBuf,
}

impl Hooked {
    fn new(name: &str) -> Hooked {
        let b = Bundle::new(name);
        b.sh("true");
        for a in ["readlink", "sed"] {
            let l = b.rootfs.join("bin").join(a);
            if !l.exists() {
                std::os::unix::fs::symlink("busybox", l).unwrap();
            }
        }
        std::os::unix::fs::symlink("busybox", b.rootfs.join(&IN_CONTAINER_SH[1..])).unwrap();
        let logdir = b.dir.join("log");
        fs::create_dir_all(&logdir).unwrap();
        fs::create_dir_all(b.rootfs.join("log")).unwrap();
        let src = logdir.to_str().unwrap().to_string();
        b.config(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/log", "type": "bind", "source": src,
                "options": ["rbind", "rw"]
            }));
            c["annotations"] = json!({"org.nook.test": "hooks"});
        });
        Hooked { b, logdir }
    }

    fn log(&self) -> PathBuf {
        self.logdir.join("hooks.log")
    }

    /// A host-side hook that logs a line (and saves the state pid's mountinfo as
    /// `<logdir>/<kind>.mounts`), then runs `tail` (a shell snippet; its status is
    /// the hook's).
    fn host_hook(&self, kind: &str, tail: &str) -> Value {
        let dir = self.logdir.display();
        let script = format!(
            "read -r s; \
             pid=$(echo \"$s\" | sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p'); \
             cat /proc/$pid/mountinfo > {dir}/{kind}.mounts 2>/dev/null; \
             echo \"{kind}|$(readlink /proc/self/ns/mnt)|$(readlink /proc/self/ns/pid)|$(readlink /proc/$pid/root)|$0|$1|$FOO|${{NOOK_IT_TAG-unset}}|$s\" >> {dir}/hooks.log; \
             {tail}"
        );
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", script, "zero", "one"],
            "env": ["FOO=bar", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        })
    }

    /// A startContainer hook: a path that exists only in the rootfs, run as busybox's
    /// `sh` through argv0, logging through /log; `pre` runs first.
    fn container_hook(&self, pre: &str) -> Value {
        let script = format!(
            "read -r s; {pre} \
             echo \"startContainer|$(readlink /proc/self/ns/mnt)|$(readlink /proc/self/ns/pid)||$0|$1|$FOO|${{NOOK_IT_TAG-unset}}|$s\" >> /log/hooks.log"
        );
        json!({
            "path": IN_CONTAINER_SH,
            "args": ["sh", "-c", script, "zero", "one"],
            "env": ["FOO=bar", "PATH=/bin"],
        })
    }

    /// The container process: log a line through /log, then `rest`.
    fn process(&self, rest: &str) {
        self.b
            .sh(&format!("echo \"process|$$\" >> /log/hooks.log; {rest}"));
    }

    fn set_hooks(&self, hooks: Value) {
        self.b.config(|c| c["hooks"] = hooks);
    }

    fn lines(&self) -> Vec<Line> {
        let text = fs::read_to_string(self.log()).unwrap_or_default();
        text.lines().map(parse_line).collect()
    }

    fn kinds(&self) -> Vec<String> {
        self.lines().into_iter().map(|l| l.kind).collect()
    }

    fn line(&self, kind: &str) -> Line {
        let all = self.lines();
        all.iter()
            .find(|l| l.kind == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} line in the hook log: {all:#?}"))
    }

    fn wait_kind(&self, kind: &str) {
        let ok = wait_until(WAIT, || self.kinds().iter().any(|k| k == kind));
        assert!(ok, "{kind} never logged: {:?}", self.kinds());
    }

    /// The mounts the state pid had when `kind` ran.
    fn mounts_seen_by(&self, kind: &str) -> Vec<common::MountLine> {
        let p = self.logdir.join(format!("{kind}.mounts"));
        parse_mountinfo(&fs::read_to_string(&p).unwrap_or_default())
    }
}

fn parse_line(l: &str) -> Line {
    if let Some(rest) = l.strip_prefix("process|") {
        return Line {
            kind: "process".into(),
            mnt: String::new(),
            pid_ns: String::new(),
            init_root: String::new(),
            arg0: String::new(),
            arg1: String::new(),
            foo: String::new(),
            tag: String::new(),
            state: Value::Null,
            raw: rest.to_string(),
        };
    }
    let f: Vec<&str> = l.splitn(9, '|').collect();
    assert_eq!(f.len(), 9, "malformed hook log line: {l:?}");
    Line {
        kind: f[0].into(),
        mnt: f[1].into(),
        pid_ns: f[2].into(),
        init_root: f[3].into(),
        arg0: f[4].into(),
        arg1: f[5].into(),
        foo: f[6].into(),
        tag: f[7].into(),
        state: serde_json::from_str(f[8])
            .unwrap_or_else(|e| panic!("{} got no JSON state on stdin ({e}): {l:?}", f[0])),
        raw: l.to_string(),
    }
}

fn pid_of(b: &Bundle, id: &str) -> i32 {
    b.state(id)["pid"].as_i64().expect("pid in state") as i32
}

fn wait_status(b: &Bundle, id: &str, want: &str) {
    let ok = wait_until(WAIT, || b.status(id).as_deref() == Some(want));
    assert!(ok, "{id} never became {want}: {:?}", b.status(id));
}

/// What every hook line must show: its args (argv0 honoured), only its own env, and
/// the container's state.
fn check_common(l: &Line, b: &Bundle, id: &str, pid: i32, status: Option<&str>) {
    let k = &l.kind;
    assert_eq!(
        (l.arg0.as_str(), l.arg1.as_str()),
        ("zero", "one"),
        "{k}: args: {}",
        l.raw
    );
    assert_eq!(l.foo, "bar", "{k}: env FOO: {}", l.raw);
    assert_eq!(
        l.tag, "unset",
        "{k}: the hook inherited nook's environment: {}",
        l.raw
    );
    let s = &l.state;
    assert_eq!(s["id"], id, "{k}: state id: {s}");
    assert_eq!(s["bundle"], b.path_str(), "{k}: state bundle: {s}");
    assert_eq!(s["pid"].as_i64(), Some(pid as i64), "{k}: state pid: {s}");
    assert!(s["ociVersion"].is_string(), "{k}: state ociVersion: {s}");
    assert_eq!(
        s["annotations"]["org.nook.test"], "hooks",
        "{k}: state annotations: {s}"
    );
    if let Some(st) = status {
        assert_eq!(s["status"], st, "{k}: state status: {s}");
    }
}

fn all_hooks(h: &Hooked) -> Value {
    json!({
        "prestart": [h.host_hook("prestart", "true")],
        "createRuntime": [h.host_hook("createRuntime", "true")],
        "createContainer": [h.host_hook("createContainer", "true")],
        "startContainer": [h.container_hook("")],
        "poststart": [h.host_hook("poststart", "true")],
        "poststop": [h.host_hook("poststop", "true")],
    })
}

#[test]
fn hooks_run_in_order_where_and_with_what_the_spec_says() {
    if common::skip() {
        return;
    }
    let h = Hooked::new("hooks-order");
    let b = &h.b;
    h.set_hooks(all_hooks(&h));
    h.process("exec sleep 60");
    let id = b.id();
    b.create(&id);

    // create: prestart, createRuntime, createContainer, in that order, and nothing else.
    assert_eq!(
        h.kinds(),
        ["prestart", "createRuntime", "createContainer"],
        "after create: {:#?}",
        h.lines()
    );
    let pid = pid_of(b, &id);
    let (host_mnt, host_pid) = (host_ns("mnt"), host_ns("pid"));
    let init_mnt = readlink(&format!("/proc/{pid}/ns/mnt"));
    let init_pid_ns = readlink(&format!("/proc/{pid}/ns/pid"));
    assert_ne!(init_mnt, host_mnt);
    assert_ne!(init_pid_ns, host_pid);

    let rootfs_log = b.rootfs.join("log");
    let rootfs_log = rootfs_log.to_str().unwrap();
    for kind in ["prestart", "createRuntime"] {
        let l = h.line(kind);
        check_common(&l, b, &id, pid, Some("created"));
        assert_eq!(
            (l.mnt.as_str(), l.pid_ns.as_str()),
            (host_mnt.as_str(), host_pid.as_str()),
            "{kind} did not run in the runtime's namespaces"
        );
        // Before pivot_root: the init's root is still the host's /...
        assert_eq!(l.init_root, "/", "{kind} ran after pivot_root");
        // ...and after the container's mounts: the /log bind is already there.
        let ms = h.mounts_seen_by(kind);
        assert!(
            ms.iter().any(|m| m.point == rootfs_log),
            "{kind} ran before the container's mounts were made: {:#?}",
            ms.iter().map(|m| &m.point).collect::<Vec<_>>()
        );
    }
    let cc = h.line("createContainer");
    check_common(&cc, b, &id, pid, Some("created"));
    assert_eq!(
        (cc.mnt.as_str(), cc.pid_ns.as_str()),
        (init_mnt.as_str(), init_pid_ns.as_str()),
        "createContainer did not run in the container's namespaces"
    );
    assert_eq!(cc.init_root, "/", "createContainer ran after pivot_root");
    assert!(
        h.mounts_seen_by("createContainer")
            .iter()
            .any(|m| m.point == rootfs_log),
        "createContainer ran before the container's mounts were made"
    );

    // start: startContainer in the container, before the process; poststart on the
    // host by the time start returns.
    ok(b.nook(&["start", &id]));
    let ps = h.line("poststart");
    check_common(&ps, b, &id, pid, Some("running"));
    assert_eq!(
        (ps.mnt.as_str(), ps.pid_ns.as_str()),
        (host_mnt.as_str(), host_pid.as_str()),
        "poststart did not run in the runtime's namespaces"
    );
    h.wait_kind("process");
    let sc = h.line("startContainer");
    // The state's status is not checked here: see the report (runc says "created").
    check_common(&sc, b, &id, pid, None);
    assert_eq!(
        (sc.mnt.as_str(), sc.pid_ns.as_str()),
        (init_mnt.as_str(), init_pid_ns.as_str()),
        "startContainer did not run in the container's namespaces"
    );
    let kinds = h.kinds();
    let at = |k: &str| kinds.iter().position(|x| x == k).unwrap();
    assert!(
        at("createContainer") < at("startContainer") && at("startContainer") < at("process"),
        "startContainer must run after create and before the process: {kinds:?}"
    );
    assert_eq!(kinds.iter().filter(|k| *k == "startContainer").count(), 1);

    // delete: poststop, on the host, last.
    ok(b.nook(&["kill", &id, "KILL"]));
    wait_status(b, &id, "stopped");
    assert!(
        !h.kinds().iter().any(|k| k == "poststop"),
        "poststop ran before delete"
    );
    ok(b.nook(&["delete", &id]));
    let kinds = h.kinds();
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("poststop"),
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 7, "every hook runs exactly once: {kinds:?}");
    let pst = h.line("poststop");
    check_common(&pst, b, &id, pid, Some("stopped"));
    assert_eq!(
        (pst.mnt.as_str(), pst.pid_ns.as_str()),
        (host_mnt.as_str(), host_pid.as_str()),
        "poststop did not run in the runtime's namespaces"
    );
    b.assert_clean(&id);
}

/// The spec orders the lifecycle as: startContainer, the user process executed,
/// poststart (before `start` returns). A slow startContainer hook makes any race
/// between them visible.
#[test]
fn poststart_runs_after_start_container() {
    if common::skip() {
        return;
    }
    let h = Hooked::new("hooks-poststart");
    let b = &h.b;
    h.set_hooks(json!({
        "startContainer": [h.container_hook("sleep 1;")],
        "poststart": [h.host_hook("poststart", "true")],
    }));
    h.process("exec sleep 60");
    let id = b.id();
    b.create(&id);
    ok(b.nook(&["start", &id]));
    // The process may well have logged by now too; only the hooks' order matters.
    let after_start: Vec<String> = h.kinds().into_iter().filter(|k| k != "process").collect();
    h.wait_kind("process");
    let kinds = h.kinds();
    assert_eq!(
        after_start,
        ["startContainer", "poststart"],
        "when start returned, startContainer must have run, then poststart \
         (the log later became {kinds:?})"
    );
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}

#[test]
fn run_runs_every_hook() {
    if common::skip() {
        return;
    }
    let h = Hooked::new("hooks-run");
    let b = &h.b;
    h.set_hooks(all_hooks(&h));
    h.process("exit 5");
    let id = b.id();
    let out = b.nook(&["run", &id, "--bundle", b.path_str()]);
    assert_eq!(common::code(&out), 5, "stderr: {}", text(&out.stderr));
    let kinds = h.kinds();
    assert_eq!(kinds.len(), 7, "every hook runs exactly once: {kinds:?}");
    assert_eq!(
        kinds[..3],
        ["prestart", "createRuntime", "createContainer"],
        "{kinds:?}"
    );
    let mut rest = kinds[3..6].to_vec();
    rest.sort();
    assert_eq!(
        rest,
        ["poststart", "process", "startContainer"],
        "{kinds:?}"
    );
    assert_eq!(kinds[6], "poststop", "{kinds:?}");
    let at = |k: &str| kinds.iter().position(|x| x == k).unwrap();
    assert!(at("startContainer") < at("process"), "{kinds:?}");
    assert_eq!(h.line("poststart").state["status"], "running");
    assert_eq!(h.line("poststop").state["status"], "stopped");
    b.assert_clean(&id);
}

#[test]
fn failing_create_runtime_hook_aborts_create() {
    if common::skip() {
        return;
    }
    let h = Hooked::new("hooks-failrt");
    let b = &h.b;
    h.set_hooks(json!({
        "prestart": [h.host_hook("prestart", "true")],
        "createRuntime": [
            h.host_hook("createRuntime", "true"),
            h.host_hook("createRuntime", "echo boom >&2; exit 3"),
        ],
        "createContainer": [h.host_hook("createContainer", "true")],
        "poststop": [h.host_hook("poststop", "true")],
    }));
    h.process("exec sleep 60");
    let id = b.id();
    let err = fails(&b.nook(&["create", &id, "--bundle", b.path_str()]));
    assert!(
        err.contains("hooks.createRuntime[1] /bin/sh"),
        "the error does not name the hook: {err}"
    );
    assert!(
        err.contains("boom"),
        "the hook's stderr is not shown: {err}"
    );
    assert_eq!(
        h.kinds(),
        ["prestart", "createRuntime", "createRuntime"],
        "hooks after the failing one ran"
    );
    b.assert_clean(&id);
    fails(&b.nook(&["state", &id]));
    assert!(!h.kinds().iter().any(|k| k == "process"));
}

#[test]
fn failing_create_container_hook_aborts_create() {
    if common::skip() {
        return;
    }
    let h = Hooked::new("hooks-failcc");
    let b = &h.b;
    h.set_hooks(json!({
        "createContainer": [h.host_hook("createContainer", "echo inside-fail >&2; exit 2")],
        "startContainer": [h.container_hook("")],
    }));
    h.process("exec sleep 60");
    let id = b.id();
    let err = fails(&b.nook(&["create", &id, "--bundle", b.path_str()]));
    assert!(
        err.contains("hooks.createContainer[0] /bin/sh"),
        "the error does not name the hook: {err}"
    );
    assert!(err.contains("inside-fail"), "{err}");
    assert_eq!(h.kinds(), ["createContainer"]);
    b.assert_clean(&id);
}

#[test]
fn hook_timeout_aborts_create() {
    if common::skip() {
        return;
    }
    let h = Hooked::new("hooks-timeout");
    let b = &h.b;
    h.set_hooks(json!({
        "prestart": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}],
        "createRuntime": [h.host_hook("createRuntime", "true")],
    }));
    h.process("exec sleep 60");
    let id = b.id();
    let t = Instant::now();
    let out = b.nook(&["create", &id, "--bundle", b.path_str()]);
    let took = t.elapsed();
    let err = fails(&out);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "create took {took:?} with a 1 s hook timeout"
    );
    assert!(
        err.contains("hooks.prestart[0] /bin/sleep") && err.contains("timed out"),
        "{err}"
    );
    assert!(h.kinds().is_empty(), "hooks after the timed-out one ran");
    b.assert_clean(&id);
}

#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    if common::skip() {
        return;
    }
    let h = Hooked::new("hooks-warn");
    let b = &h.b;
    h.set_hooks(json!({
        "poststart": [
            h.host_hook("poststart", "echo start-nope >&2; exit 4"),
            h.host_hook("poststart", "true"),
        ],
        "poststop": [
            h.host_hook("poststop", "echo stop-nope >&2; exit 4"),
            h.host_hook("poststop", "true"),
        ],
    }));
    h.process("exec sleep 60");
    let id = b.id();
    b.create(&id);
    let out = ok(b.nook(&["start", &id]));
    let err = text(&out.stderr);
    assert!(
        err.contains("nook: warning: hooks.poststart[0] /bin/sh") && err.contains("start-nope"),
        "{err}"
    );
    assert!(!err.contains("poststart[1]"), "{err}");
    let hooks_only =
        || -> Vec<String> { h.kinds().into_iter().filter(|k| k != "process").collect() };
    assert_eq!(
        hooks_only(),
        ["poststart", "poststart"],
        "the next hook must still run"
    );
    assert_eq!(b.status(&id).as_deref(), Some("running"));

    ok(b.nook(&["kill", &id, "KILL"]));
    wait_status(b, &id, "stopped");
    let out = ok(b.nook(&["delete", &id]));
    let err = text(&out.stderr);
    assert!(
        err.contains("nook: warning: hooks.poststop[0] /bin/sh") && err.contains("stop-nope"),
        "{err}"
    );
    assert_eq!(
        hooks_only(),
        ["poststart", "poststart", "poststop", "poststop"],
        "the next hook must still run"
    );
    b.assert_clean(&id);
}
