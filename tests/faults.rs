//! Fault injection: nook killed (SIGKILL, as the OOM killer or a unit's stop timeout
//! would) at each of its fault points (src/fault.rs: NOOK_FAULT_AT=N, debug builds) in
//! create, start, exec and delete. After each, `nook list` tells a half-made container
//! apart, `nook delete --force` leaves nothing (state dir, cgroup dir in any hierarchy,
//! process, host mount, abandoned bundle unpack) and the id can be used again.
//!
//! Needs root; skipped with a message otherwise.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};

use common::{ok, text, Bundle};

/// The fault points that fired (a parent and its child may reach the same count), from
/// the message nook prints before it dies, joined by "+".
fn fired(o: &Output) -> Option<String> {
    let err = text(&o.stderr);
    let names: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("nook: fault point "))
        .filter_map(|l| l.split('(').nth(1)?.split(')').next())
        .collect();
    (!names.is_empty()).then(|| names.join("+"))
}

/// The variables that pick a fault point: in nook itself, and in the child it forks.
const WALKS: [&str; 2] = ["NOOK_FAULT_AT", "NOOK_FAULT_CHILD_AT"];

/// `nook ARGS` with `var`=k.
fn nook_at(b: &Bundle, var: &str, k: usize, args: &[&str]) -> Output {
    let mut c = b.command(args);
    c.env(var, k.to_string());
    let mut s = b.spawn(c);
    s.output_within(common::TIMEOUT)
        .unwrap_or_else(|| panic!("nook {args:?} with fault {k} did not finish"))
}

/// Nothing of `id` is left: the Bundle's check (state dir, cgroup dirs, processes), no
/// host mount under the bundle's temp dir, no abandoned unpack in the bundle cache.
fn assert_nothing_left(b: &Bundle, id: &str, after: &str) {
    b.assert_clean(id);
    let mounts: Vec<String> = common::host_mount_points()
        .into_iter()
        .filter(|m| Path::new(m).starts_with(&b.dir))
        .collect();
    assert!(mounts.is_empty(), "{after}: host mounts left: {mounts:?}");
    let tmp: Vec<PathBuf> = std::fs::read_dir(b.root.join("bundles"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let tmp: Vec<_> = tmp
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .collect();
    assert!(tmp.is_empty(), "{after}: abandoned unpacks: {tmp:?}");
    let new: Vec<String> = std::fs::read_dir(&b.root)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let new: Vec<_> = new.iter().filter(|n| n.starts_with(".nook-new-")).collect();
    assert!(
        new.is_empty(),
        "{after}: temporary state dirs left: {new:?}"
    );
}

/// The status `nook list --format json` gives `id`, if it lists it.
fn listed(b: &Bundle, id: &str) -> Option<String> {
    let out = ok(b.nook(&["list", "--format", "json"]));
    let rows: Value = serde_json::from_slice(&out.stdout).expect("list prints JSON");
    rows.as_array()?
        .iter()
        .find(|r| r["id"] == json!(id))
        .map(|r| r["status"].as_str().unwrap_or_default().to_string())
}

/// A bundle whose config exercises cgroup writes (memory and pids limits) and a seccomp
/// filter, so those steps run.
fn limited_bundle(name: &str) -> Bundle {
    let b = Bundle::new(name);
    b.args(&["sleep", "60"]);
    b.config(|c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
        c["linux"]["resources"]["pids"] = json!({"limit": 64});
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}],
        });
    });
    b
}

/// Walk `create` of `bundle` over every fault point: after each, list and
/// `delete --force` (or, alternately, a new `create` of the id) must recover.
fn walk_create(b: &Bundle, bundle: &str) -> Vec<String> {
    let mut points = vec![];
    for var in WALKS {
        points.extend(walk_create_over(b, bundle, var));
    }
    points
}

fn walk_create_over(b: &Bundle, bundle: &str, var: &str) -> Vec<String> {
    let mut points = vec![];
    for k in 1..200 {
        let id = b.id();
        let out = nook_at(b, var, k, &["create", &id, "--bundle", bundle]);
        let Some(point) = fired(&out) else {
            // Past the last point: an ordinary create.
            assert!(
                out.status.success(),
                "create with no fault: {}",
                text(&out.stderr)
            );
            ok(b.nook(&["delete", "--force", &id]));
            assert_nothing_left(b, &id, "the create without a fault");
            return points;
        };
        let after = format!("create killed at point {var}={k} ({point})");
        let dir = b.root.join(&id);
        let unfinished = dir.exists() && !dir.join("state.json").exists();
        if unfinished {
            // "creating" for as long as a process of the killed create still holds the
            // state dir's lock (its child, for the moment until it closes its copy).
            let mut last = None;
            let shown = common::wait_until(std::time::Duration::from_secs(5), || {
                last = listed(b, &id);
                last.as_deref() == Some("unfinished")
            });
            assert!(shown, "{after}: list shows {last:?}");
        }
        if unfinished && k % 2 == 0 {
            // The next create of the id clears what the killed one left.
            let out = b.nook(&["create", &id, "--bundle", bundle]);
            assert!(
                out.status.success(),
                "{after}: create again: {}",
                text(&out.stderr)
            );
            assert_eq!(b.status(&id).as_deref(), Some("created"), "{after}");
        }
        let out = b.nook(&["delete", "--force", &id]);
        assert!(
            out.status.success(),
            "{after}: delete --force: {}",
            text(&out.stderr)
        );
        assert_nothing_left(b, &id, &after);
        // The id is free again.
        let out = b.nook(&["create", &id, "--bundle", bundle]);
        assert!(
            out.status.success(),
            "{after}: the id is not reusable: {}",
            text(&out.stderr)
        );
        ok(b.nook(&["delete", "--force", &id]));
        assert_nothing_left(b, &id, &after);
        points.push(point);
    }
    panic!("create never got past its fault points");
}

#[test]
fn a_create_killed_at_any_point_is_cleared_and_its_id_reusable() {
    if common::skip() {
        return;
    }
    let b = limited_bundle("fault-create");
    let points = walk_create(&b, b.path_str());
    eprintln!("create's fault points: {points:?}");
    // The walk reached the steps that matter (names in src/fault.rs's callers).
    for want in [
        "create.state-dir-new",
        "create.state-dir",
        "create.draft",
        "create.cgroup-dir",
        "create.limits",
        "create.seccomp",
        "create.cloned",
        "create.go",
        "create.attached",
        "create.ready",
        "create.state-written",
        "init.go",
        "init.root",
        "init.attached",
        "init.process",
        "init.ready",
    ] {
        let hit = points.iter().any(|p| p.split('+').any(|n| n == want));
        assert!(hit, "{want} never fired: {points:?}");
    }
}

/// A bundle tar: the create may also die while unpacking it into the cache.
#[test]
fn a_create_killed_while_unpacking_its_bundle_leaves_no_unpack_behind() {
    if common::skip() {
        return;
    }
    let b = limited_bundle("fault-tar");
    let tar = b.tar();
    // Each create finds the tar unpacked already, except the first: kill that one in
    // its unpack, then walk a fresh cache's first create only.
    let id = b.id();
    let out = nook_at(
        &b,
        WALKS[0],
        1,
        &["create", &id, "--bundle", tar.to_str().unwrap()],
    );
    assert_eq!(
        fired(&out).as_deref(),
        Some("create.unpacked"),
        "{}",
        text(&out.stderr)
    );
    let left = std::fs::read_dir(b.root.join("bundles")).unwrap().count();
    assert!(left > 0, "the killed unpack left nothing to clear");
    // No state dir yet: delete --force reports the id unknown (exit 0, as runc) and
    // sweeps the abandoned unpack.
    ok(b.nook(&["delete", "--force", &id]));
    assert_nothing_left(&b, &id, "create killed while unpacking");
    let points = walk_create(&b, tar.to_str().unwrap());
    assert!(
        points.iter().any(|p| p.contains("create.draft")),
        "{points:?}"
    );
}

/// start, exec and delete killed at each of their points: the container stays
/// manageable and `delete --force` clears it.
#[test]
fn start_exec_and_delete_killed_at_any_point_are_recoverable() {
    if common::skip() {
        return;
    }
    let b = limited_bundle("fault-ops");
    let create = |id: &str| ok(b.nook(&["create", id, "--bundle", b.path_str()]));
    let mut seen = vec![];
    let walks = [
        ("start", false, WALKS[0]),
        ("exec", true, WALKS[0]),
        ("exec", true, WALKS[1]),
        ("delete", true, WALKS[0]),
    ];
    for (cmd, ready, var) in walks {
        for k in 1..50 {
            let id = b.id();
            create(&id);
            if ready {
                ok(b.nook(&["start", &id]));
            }
            let args: Vec<&str> = match cmd {
                "start" => vec!["start", &id],
                "exec" => vec!["exec", &id, "/bin/probe", "hello"],
                _ => vec!["delete", "--force", &id],
            };
            let out = nook_at(&b, var, k, &args);
            let Some(point) = fired(&out) else {
                assert!(out.status.success(), "{cmd}: {}", text(&out.stderr));
                ok(b.nook(&["delete", "--force", &id]));
                assert_nothing_left(&b, &id, cmd);
                break;
            };
            let after = format!("{cmd} killed at point {var}={k} ({point})");
            if cmd == "exec" {
                // The container is untouched: it still runs and takes another exec.
                assert_eq!(b.status(&id).as_deref(), Some("running"), "{after}");
                let out = b.nook(&["exec", &id, "/bin/probe", "hello"]);
                assert!(text(&out.stdout).contains("hello from probe"), "{after}");
            }
            let out = b.nook(&["delete", "--force", &id]);
            assert!(
                out.status.success(),
                "{after}: delete --force: {}",
                text(&out.stderr)
            );
            assert_nothing_left(&b, &id, &after);
            seen.push(point);
        }
    }
    // A delete --force of what a killed create left, itself killed mid-way: a second
    // one finishes the job.
    let id = b.id();
    let at = |name: &str, args: &[&str]| {
        let mut c = b.command(args);
        c.env("NOOK_FAULT_AT", name);
        let out = b.spawn(c).output_within(common::TIMEOUT).unwrap();
        assert_eq!(fired(&out).as_deref(), Some(name), "{}", text(&out.stderr));
    };
    at("create.ready", &["create", &id, "--bundle", b.path_str()]);
    at("delete.unfinished-killed", &["delete", "--force", &id]);
    ok(b.nook(&["delete", "--force", &id]));
    assert_nothing_left(&b, &id, "a killed delete of an unfinished create");

    for want in [
        "start.released",
        "exec.joined",
        "exec.forked",
        "exec-init.start",
        "delete.destroyed",
    ] {
        let hit = seen.iter().any(|p| p.split('+').any(|n| n == want));
        assert!(hit, "{want} never fired: {seen:?}");
    }
}

/// A small tmpfs under the bundle's temp dir (unmounted when dropped) for a state root
/// that runs out of space or turns read-only.
struct SmallFs(PathBuf);

impl SmallFs {
    fn new(b: &Bundle) -> SmallFs {
        let p = b.dir.join("small");
        std::fs::create_dir_all(&p).unwrap();
        nix::mount::mount(
            Some("nook-test"),
            &p,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=256k,nr_inodes=64"),
        )
        .expect("mounting a small tmpfs");
        SmallFs(p)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// `nook ARGS` with the state root `root` (not the bundle's own).
fn nook_in(b: &Bundle, root: &Path, args: &[&str]) -> Output {
    let mut c = std::process::Command::new(common::NOOK);
    c.arg("--root").arg(root).args(args);
    let tag = b.tag_env();
    let (k, v) = tag.split_once('=').unwrap();
    c.env(k, v).stdin(std::process::Stdio::null());
    let mut s = b.spawn(c);
    s.output_within(common::TIMEOUT).expect("nook hung")
}

/// `nook --root ROOT create` of the bundle under `id`; the output.
fn create_in(b: &Bundle, root: &Path, id: &str) -> Output {
    nook_in(b, root, &["create", id, "--bundle", b.path_str()])
}

/// Nothing of `id` under the state root `root`, in any cgroup, or running.
fn assert_gone(b: &Bundle, root: &Path, id: &str, ctx: &str) {
    assert!(!root.join(id).exists(), "{ctx}: state dir left");
    assert!(
        common::cgroup_dirs(id).is_empty(),
        "{ctx}: cgroup dirs left"
    );
    assert!(
        b.processes().is_empty(),
        "{ctx}: processes left: {:?}",
        b.processes()
    );
}

#[test]
fn a_full_or_read_only_state_root_fails_the_create_cleanly() {
    if common::skip() {
        return;
    }
    let b = limited_bundle("fault-fs");
    let fs = SmallFs::new(&b);
    let root = fs.0.join("state");
    std::fs::create_dir_all(&root).unwrap();

    // Full: fill the tmpfs, then create.
    let fill = fs.0.join("fill");
    let _ = std::process::Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=1000"])
        .arg(format!("of={}", fill.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let id = b.id();
    let out = create_in(&b, &root, &id);
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "create on a full state root succeeded"
    );
    assert!(
        err.contains("No space left") && err.contains(root.to_str().unwrap()),
        "the error names neither the cause nor the path: {err}"
    );
    assert_gone(&b, &root, &id, "full state root");
    // Space again: the id is free.
    std::fs::remove_file(&fill).unwrap();
    ok(create_in(&b, &root, &id));
    ok(nook_in(&b, &root, &["delete", "--force", &id]));
    assert_gone(&b, &root, &id, "after the full state root");

    // Read-only: remount, then create.
    nix::mount::mount(
        None::<&str>,
        &fs.0,
        None::<&str>,
        nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .expect("remounting read-only");
    let out = create_in(&b, &root, &id);
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "create on a read-only state root succeeded"
    );
    assert!(
        err.contains("Read-only file system") && err.contains(root.to_str().unwrap()),
        "{err}"
    );
    assert_gone(&b, &root, &id, "read-only state root");
}

#[test]
fn a_cgroup_that_cannot_be_made_fails_the_create_cleanly() {
    if common::skip() {
        return;
    }
    let b = limited_bundle("fault-cgroup");
    // The kernel refuses a cgroup name with a newline (EINVAL: it would make
    // /proc/PID/cgroup unparsable), in every hierarchy.
    b.config(|c| c["linux"]["cgroupsPath"] = json!("/nook-test-a\nb"));
    let id = b.id();
    let out = b.nook(&["create", &id, "--bundle", b.path_str()]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "create succeeded");
    assert!(
        err.contains("Invalid argument") && err.contains("creating /sys/fs/cgroup/"),
        "{err}"
    );
    assert!(common::cgroup_mounts()
        .iter()
        .all(|m| !m.join("nook-test-a\nb").exists()));
    assert_gone(&b, &b.root, &id, "cgroup mkdir failed");
}

#[test]
fn a_bundle_removed_during_create_fails_or_runs_and_is_cleared() {
    if common::skip() {
        return;
    }
    let b = limited_bundle("fault-bundle");
    // A createRuntime hook (run by nook mid-create, after the namespaces exist and
    // before pivot_root) removes the bundle directory.
    let path = b.path.clone();
    b.config(|c| {
        c["hooks"]["createRuntime"] = json!([{
            "path": "/bin/rm",
            "args": ["rm", "-rf", path.to_str().unwrap()],
        }]);
    });
    let id = b.id();
    let cfg = std::fs::read_to_string(b.path.join("config.json")).unwrap();
    let out = b.nook(&["create", &id, "--bundle", b.path_str()]);
    if out.status.success() {
        // The rootfs was mounted already: the container exists without its bundle.
        assert_eq!(b.status(&id).as_deref(), Some("created"));
    } else {
        assert!(
            text(&out.stderr).contains("nook: "),
            "{}",
            text(&out.stderr)
        );
    }
    ok(b.nook(&["delete", "--force", &id]));
    // The bundle back first: the Bundle's process check knows its processes by rootfs.
    std::fs::create_dir_all(&b.rootfs).unwrap();
    std::fs::write(b.path.join("config.json"), cfg).unwrap();
    assert_gone(&b, &b.root, &id, "bundle removed mid-create");
}
