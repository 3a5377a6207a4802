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
            assert_eq!(listed(b, &id).as_deref(), Some("unfinished"), "{after}");
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
    let tar = b.dir.join("app.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&b.path)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("running tar");
    assert!(st.success());
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
