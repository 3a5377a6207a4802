//! Bad input: each case must fail with a non-zero exit, a message naming the
//! problem, and nothing left behind (state dir, cgroup dirs, processes).

mod common;

use std::fs;

use common::{cgroup_mounts, fails, Bundle};
use serde_json::json;

/// `nook VERB ID --bundle B` must fail, mention every needle, and leave nothing.
fn refused(b: &Bundle, verb: &str, needles: &[&str]) -> String {
    let id = b.id();
    let err = fails(&b.nook(&[verb, &id, "--bundle", b.path_str()]));
    for n in needles {
        assert!(err.contains(n), "{verb}: message lacks {n:?}: {err}");
    }
    b.assert_clean(&id);
    eprintln!("{verb}: {}", err.trim_end());
    err
}

fn push_mount(b: &Bundle, m: serde_json::Value) -> usize {
    let mut idx = 0;
    b.config(|c| {
        let ms = c["mounts"].as_array_mut().unwrap();
        idx = ms.len();
        ms.push(m);
    });
    idx
}

#[test]
fn no_config_json() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("err-noconfig");
    fs::remove_file(b.path.join("config.json")).unwrap();
    refused(&b, "create", &["config.json"]);
    refused(&b, "run", &["config.json"]);
}

#[test]
fn malformed_json_names_the_line() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("err-badjson");
    let bad =
        "{\n  \"ociVersion\": \"1.0.2\",\n  \"process\": {\"args\": [\"/bin/probe\"],, }\n}\n";
    fs::write(b.path.join("config.json"), bad).unwrap();
    refused(&b, "create", &["config.json", "line 3"]);
}

#[test]
fn wrong_type_names_the_field() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("err-type");
    b.config(|c| c["process"]["args"] = json!("notalist"));
    refused(&b, "create", &["process.args"]);
}

#[test]
fn unknown_namespace_type() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("err-nstype");
    b.config(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "bogus"}));
    });
    refused(&b, "create", &["linux.namespaces", "bogus"]);
}

#[test]
fn missing_rootfs() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("err-rootfs");
    b.config(|c| c["root"]["path"] = json!("no-such-rootfs"));
    refused(&b, "create", &["no-such-rootfs"]);
}

#[test]
fn bad_ids_are_refused_and_touch_nothing() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("err-ids");
    let tag = format!("esc{}", std::process::id());
    let bad = [
        format!("a/{tag}"),
        "..".to_string(),
        format!("../{tag}"),
        format!("x..{tag}"),
        String::new(),
    ];
    for id in &bad {
        let err = fails(&b.nook(&["create", id, "--bundle", b.path_str()]));
        assert!(err.contains("invalid container id"), "{id:?}: {err}");
    }
    let left = fs::read_dir(&b.root).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "entries were made under --root");
    assert!(!b.dir.join(&tag).exists(), "a dir was made next to --root");
    for m in cgroup_mounts() {
        assert!(
            !m.join(&tag).exists() && !m.join("nook/a").exists(),
            "cgroup dir in {m:?}"
        );
    }
    assert_eq!(b.processes(), Vec::<i32>::new());
}

#[test]
fn relative_mount_destination() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("err-reldest");
    let i = push_mount(
        &b,
        json!({"destination": "tmp/rel", "type": "tmpfs", "source": "tmpfs"}),
    );
    refused(
        &b,
        "create",
        &[&format!("mounts[{i}].destination"), "tmp/rel"],
    );
}

#[test]
fn failing_mount_names_index_destination_and_errno() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("err-mount");
    let i = push_mount(
        &b,
        json!({"destination": "/mnt/fail", "type": "nosuchfs", "source": "x"}),
    );
    let err = refused(&b, "create", &[&format!("mounts[{i}]"), "/mnt/fail"]);
    assert!(
        err.contains("ENODEV") || err.contains("No such device"),
        "{err}"
    );
    refused(&b, "run", &[&format!("mounts[{i}]"), "/mnt/fail"]);
}

#[test]
fn missing_bind_source() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("err-bindsrc");
    let src = b.dir.join("no-such-source");
    let m = json!({"destination": "/mnt/b", "type": "bind", "source": src, "options": ["rbind"]});
    let i = push_mount(&b, m);
    let err = refused(&b, "create", &[&format!("mounts[{i}]"), "no-such-source"]);
    assert!(
        err.contains("ENOENT") || err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn missing_program() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("err-noprog");
    b.config(|c| c["process"]["args"] = json!(["nosuchprog"]));
    let want = r#"exec: "nosuchprog": executable file not found in $PATH"#;
    refused(&b, "create", &[want]);
    refused(&b, "run", &[want]);
    b.config(|c| c["process"]["args"] = json!(["/bin/nosuchprog"]));
    refused(&b, "create", &["/bin/nosuchprog", "no such file"]);
}

/// An execve that fails after every check nook makes first (here ENOEXEC: executable
/// bits, but neither ELF nor `#!`). A foreground run execs the app from its exec
/// trampoline, which reports the errno back to nook: the same message as the direct
/// exec of `start` gives.
#[test]
fn failed_execve_is_reported_by_run_and_start() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("err-noexec");
    let p = b.rootfs.join("bin/garbage");
    fs::write(&p, "neither ELF nor a script\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    b.config(|c| c["process"]["args"] = json!(["/bin/garbage"]));
    let want = [
        "unable to start container process",
        "exec /bin/garbage: exec format error",
    ];
    refused(&b, "run", &want);
    let id = b.id();
    b.create(&id);
    let err = fails(&b.nook(&["start", &id]));
    for w in want {
        assert!(err.contains(w), "start: message lacks {w:?}: {err}");
    }
    common::ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}

/// A setup failure is reported with its own message every time, also under load
/// (never as a broken channel to the init).
#[test]
fn setup_failure_is_reported_every_time() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("err-stress");
    let i = push_mount(
        &b,
        json!({"destination": "/mnt/fail", "type": "nosuchfs", "source": "x"}),
    );
    let want = format!("mounting mounts[{i}] (nosuchfs) on /mnt/fail");
    let bad: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..50)
                        .map(|_| {
                            let id = b.id();
                            fails(&b.nook(&["create", &id, "--bundle", b.path_str()]))
                        })
                        .filter(|err| !err.contains(&want))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(
        bad.is_empty(),
        "{} of 200 creates said something else: {bad:#?}",
        bad.len()
    );
}
