//! Where the runtime spec leaves room, runc's behaviour, which clients rely on (issue
//! 14): hooks without env, exec into a paused container, the exec'd process's group,
//! ociVersion, --log, a tmpfs over an existing directory, devices outside /dev, and a
//! mount destination that is a dangling symlink.
//!
//! Needs root; skipped with a message otherwise.

mod common;

use std::time::Duration;

use serde_json::json;

use common::{ok, text, Bundle};

#[test]
fn a_hook_without_env_gets_nooks_environment() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("hook-env");
    let out = b.dir.join("hook-env.txt");
    let script = format!("echo \"PATH=$PATH\" > {}", out.display());
    b.config(|c| {
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]});
    });
    ok(b.probe(&["hello"]));
    let seen = std::fs::read_to_string(&out).unwrap();
    let want = format!("PATH={}\n", std::env::var("PATH").unwrap());
    assert_eq!(seen, want, "the hook's PATH is not nook's");
    // With env, exactly that.
    b.config(|c| c["hooks"]["createRuntime"][0]["env"] = json!(["PATH=/x"]));
    ok(b.probe(&["hello"]));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "PATH=/x\n");
}

#[test]
fn exec_into_a_paused_container_needs_ignore_paused() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-paused");
    b.args(&["sleep", "60"]);
    let id = b.id();
    b.create(&id);
    ok(b.nook(&["start", &id]));
    ok(b.nook(&["pause", &id]));
    let out = b.nook(&["exec", &id, "/bin/probe", "hello"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr)
            .contains("cannot exec in a paused container (use --ignore-paused to override)"),
        "{}",
        text(&out.stderr)
    );
    // With the flag it goes in, frozen with the container until resume.
    let mut exec = b.spawn(b.command(&["exec", "--ignore-paused", &id, "/bin/probe", "hello"]));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        exec.child.try_wait().unwrap().is_none(),
        "the exec ran in a frozen container"
    );
    ok(b.nook(&["resume", &id]));
    let out = ok(exec
        .output_within(common::TIMEOUT)
        .expect("exec hung after resume"));
    assert!(text(&out.stdout).contains("hello from probe"));
    ok(b.nook(&["delete", "--force", &id]));
}

#[test]
fn an_exec_process_has_a_process_group_inside() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-pgrp");
    b.args(&["sleep", "60"]);
    let id = b.id();
    b.create(&id);
    ok(b.nook(&["start", &id]));
    // getpgrp() (x86_64 syscall 111): 0 would mean a group outside the pid namespace.
    let out = text(&ok(b.nook(&["exec", &id, "/bin/probe", "syscall", "111"])).stdout);
    let pgrp: i64 = out.trim().trim_start_matches("ret:").parse().unwrap();
    assert!(pgrp > 0, "getpgrp() = {pgrp}");
    ok(b.nook(&["delete", "--force", &id]));
}

#[test]
fn oci_version_must_be_semantic() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("oci-version");
    b.config(|c| c["ociVersion"] = json!("1.0"));
    let id = b.id();
    let out = b.nook(&["create", &id, "--bundle", b.path_str()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("ociVersion"),
        "{}",
        text(&out.stderr)
    );
    b.assert_clean(&id);
    // A newer version than nook's spec is fine.
    b.config(|c| c["ociVersion"] = json!("9.9.9"));
    ok(b.probe(&["hello"]));
}

#[test]
fn an_unwritable_log_fails_before_anything_runs() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("bad-log");
    let id = b.id();
    let log = b.dir.join("no/such/dir/log.json");
    let out = b.nook(&[
        "--log",
        log.to_str().unwrap(),
        "create",
        &id,
        "--bundle",
        b.path_str(),
    ]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("opening --log") && err.contains("no/such/dir"),
        "{err}"
    );
    b.assert_clean(&id);
}

#[test]
fn a_tmpfs_keeps_the_mode_of_the_directory_it_covers() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("tmpfs-mode");
    std::fs::create_dir_all(b.rootfs.join("private")).unwrap();
    std::fs::set_permissions(
        b.rootfs.join("private"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    b.config(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/private", "type": "tmpfs", "source": "tmpfs"}));
        m.push(
            json!({"destination": "/given", "type": "tmpfs", "source": "tmpfs",
                      "options": ["mode=750"]}),
        );
    });
    let out = text(&ok(b.probe(&["stat", "/private"])).stdout);
    assert!(out.contains("mode=40700") || out.contains("0700"), "{out}");
    let out = text(&ok(b.probe(&["stat", "/given"])).stdout);
    assert!(out.contains("mode=40750") || out.contains("0750"), "{out}");
}

#[test]
fn a_device_outside_dev_is_created_where_asked() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("device-path");
    b.config(|c| {
        c["linux"]["devices"] = json!([{"path": "/opt/null", "type": "c", "major": 1,
                                         "minor": 3, "fileMode": 438}]);
        let rules = c["linux"]["resources"]["devices"].as_array_mut();
        if let Some(r) = rules {
            r.push(json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}));
        }
    });
    let out = text(&ok(b.probe(&["stat", "/opt/null"])).stdout);
    assert!(out.contains("rdev=1:3") || out.contains("1:3"), "{out}");
}

#[test]
fn a_dangling_symlink_destination_is_followed_inside_the_root() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("dangling-dest");
    // /data -> /var/data, which does not exist yet; an absolute target is resolved in
    // the root, never on the host.
    std::os::unix::fs::symlink("/var/data", b.rootfs.join("data")).unwrap();
    let src = b.dir.join("vol");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("marker"), "from the volume\n").unwrap();
    b.config(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/data", "type": "bind", "source": src.to_str().unwrap(),
            "options": ["bind"]}));
    });
    let out = text(&ok(b.probe(&["cat", "/var/data/marker"])).stdout);
    assert!(out.contains("from the volume"), "{out}");
    assert!(
        !std::path::Path::new("/var/data").exists(),
        "a host path was made"
    );
}

#[test]
fn a_realtime_budget_is_given_to_the_parents_first() {
    if common::skip() {
        return;
    }
    let Some(cpu) = common::controller("cpu").filter(|c| !c.v2) else {
        eprintln!("skipping: needs a cgroup v1 cpu hierarchy (real-time group budgets)");
        return;
    };
    if !cpu.mount.join("cpu.rt_runtime_us").exists() {
        eprintln!("skipping: this kernel has no real-time group scheduling");
        return;
    }
    let parent = format!("nook-rt-{}", std::process::id());
    // Removed after the bundle (declared first): the parent outlives the container.
    let _dirs = common::RmDirs(
        common::cgroup_mounts()
            .iter()
            .map(|m| m.join(&parent))
            .collect(),
    );
    let b = Bundle::new("rt-budget");
    b.args(&["sleep", "60"]);
    b.config(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("/{parent}/leaf"));
        c["linux"]["resources"]["cpu"] =
            json!({"realtimeRuntime": 10000, "realtimePeriod": 1000000});
    });
    let id = b.id();
    b.create(&id);
    let read = |rel: &str| common::read_trim(&cpu.mount.join(rel).join("cpu.rt_runtime_us"));
    // The new parent had none; it got the container's share, and the container its own.
    assert_eq!(read(&parent), "10000");
    assert_eq!(read(&format!("{parent}/leaf")), "10000");
    ok(b.nook(&["delete", "--force", &id]));
}

#[test]
fn a_user_namespace_without_mappings_is_refused_as_root() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("userns-nomap");
    b.config(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let id = b.id();
    let out = b.nook(&["create", &id, "--bundle", b.path_str()]);
    let err = text(&out.stderr);
    assert!(
        !out.status.success() && err.contains("linux.gidMappings"),
        "{err}"
    );
    b.assert_clean(&id);
}

#[test]
fn a_failed_start_container_hook_is_reported_and_delete_clears_all() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("start-hook-fails");
    b.args(&["sleep", "60"]);
    // startContainer hooks run in the container's namespaces: the probe itself, failing.
    b.config(|c| {
        c["hooks"] =
            json!({"startContainer": [{"path": "/bin/probe", "args": ["probe", "exit", "3"]}]});
    });
    let id = b.id();
    b.create(&id);
    let out = b.nook(&["start", &id]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "start succeeded");
    assert!(err.contains("startContainer"), "{err}");
    assert!(
        common::wait_until(Duration::from_secs(10), || b.status(&id).as_deref()
            == Some("stopped")),
        "the container did not stop"
    );
    let st = b.state(&id);
    let why = st["annotations"]["io.github.nook.start-error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        why.contains("startContainer"),
        "state does not say why: {st}"
    );
    // delete without --force clears everything.
    ok(b.nook(&["delete", &id]));
    b.assert_clean(&id);
}
