//! `nook spec`, `nook features` and `nook --version`.

mod common;

use std::fs;

use common::{fails, host_ns, ok, text, Bundle};
use serde_json::{json, Value};

fn read_config(b: &Bundle) -> Value {
    serde_json::from_str(&fs::read_to_string(b.path.join("config.json")).unwrap()).unwrap()
}

#[test]
fn spec_writes_a_config_nook_can_run() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("spec-default");
    fs::remove_file(b.path.join("config.json")).unwrap();
    ok(b.nook(&["spec", "--bundle", b.path_str()]));
    let c = read_config(&b);
    assert_eq!(c["process"]["args"], json!(["sh"]));
    assert_eq!(c["root"]["path"], "rootfs");
    let err = fails(&b.nook(&["spec", "--bundle", b.path_str()]));
    assert!(err.contains("already exists"), "{err}");
    // Only the program changes.
    let r = b.report();
    assert_eq!(r["pid"], "1");
    assert_eq!(r["hostname"], "nook");
    assert_eq!(r["cwd"], "/");
}

#[test]
fn rootless_spec_runs() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("spec-rootless");
    fs::remove_file(b.path.join("config.json")).unwrap();
    ok(b.nook(&["spec", "--rootless", "--bundle", b.path_str()]));
    let c = read_config(&b);
    let ns = c["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.iter().any(|n| n["type"] == "user"), "{ns:?}");
    let r = b.report();
    assert_ne!(r["ns_user"], host_ns("user"));
    assert_eq!(r["uid"], "0");
    // The caller's own uid is mapped to root inside: run by root here, 0 onto 0
    // (tests/rootless.rs runs it as another user).
    let map = text(&ok(b.probe(&["cat", "/proc/self/uid_map"])).stdout);
    assert_eq!(map.split_whitespace().collect::<Vec<_>>(), ["0", "0", "1"]);
}

#[test]
fn features_document() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("spec-features");
    let out = ok(b.nook(&["features"]));
    let v: Value = serde_json::from_slice(&out.stdout).expect("features prints JSON");
    assert!(
        v["ociVersionMax"]
            .as_str()
            .is_some_and(|s| s.starts_with("1.")),
        "{v}"
    );
    assert!(v["ociVersionMin"].is_string());
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    for want in [
        "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
    ] {
        assert!(ns.contains(&want), "{want} missing from {ns:?}");
    }
    let caps = v["linux"]["capabilities"].as_array().expect("capabilities");
    assert!(caps.contains(&json!("CAP_SYS_ADMIN")));
}

#[test]
fn version() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("spec-version");
    let out = text(&ok(b.nook(&["--version"])).stdout);
    assert!(out.lines().any(|l| l.starts_with("nook version ")), "{out}");
    let spec = out.lines().find_map(|l| l.strip_prefix("spec: "));
    assert!(spec.is_some_and(|v| v.starts_with("1.")), "{out}");
}
