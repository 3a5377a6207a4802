//! Namespaces as the container process sees them: new ones, user and time
//! namespaces with their maps and offsets, and namespaces joined by path.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{host_ns, ok, readlink, text, Bundle, KillOnDrop};
use serde_json::json;

const NEW: [&str; 6] = ["mnt", "pid", "net", "ipc", "uts", "cgroup"];

#[test]
fn default_namespaces_are_new() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("ns-new");
    let r = b.report();
    assert_eq!(r["pid"], "1", "the process is init of its pid namespace");
    for ns in NEW {
        let key = format!("ns_{ns}");
        assert_ne!(r[&key], host_ns(ns), "{key} is the host's");
    }
    assert_eq!(
        r["ns_user"],
        host_ns("user"),
        "no user namespace was asked for"
    );
    assert_eq!(
        r["ns_time"],
        host_ns("time"),
        "no time namespace was asked for"
    );
}

fn with_user_and_time(b: &Bundle) {
    b.in_user_namespace();
    b.config(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "time"}));
    });
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn user_and_time_namespaces() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("ns-user");
    with_user_and_time(&b);
    let r = b.report();
    for ns in NEW.iter().chain(&["user", "time"]) {
        let key = format!("ns_{ns}");
        assert_ne!(r[&key], host_ns(ns), "{key} is the host's");
    }
    assert_eq!((r["uid"].as_str(), r["gid"].as_str()), ("0", "0"));
    let uid_map = ok(b.probe(&["cat", "/proc/self/uid_map"])).stdout;
    assert_eq!(squash(&text(&uid_map)), "0 100000 65536");
    let gid_map = ok(b.probe(&["cat", "/proc/self/gid_map"])).stdout;
    assert_eq!(squash(&text(&gid_map)), "0 100000 65536");
}

#[test]
fn time_offsets_are_applied() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("ns-timeoff");
    b.config(|c| {
        let linux = &mut c["linux"];
        linux["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        linux["timeOffsets"] = json!({"boottime": {"secs": 1000000, "nanosecs": 0}});
    });
    let out = ok(b.probe(&["cat", "/proc/self/timens_offsets"])).stdout;
    let offsets = text(&out);
    let boot = offsets
        .lines()
        .map(squash)
        .find(|l| l.starts_with("boottime"))
        .unwrap_or_else(|| panic!("no boottime line in {offsets:?}"));
    assert_eq!(boot, "boottime 1000000 0");
    let uptime = text(&ok(b.probe(&["cat", "/proc/uptime"])).stdout);
    let secs: f64 = uptime.split(' ').next().unwrap().parse().unwrap();
    assert!(secs >= 1_000_000.0, "uptime inside is {secs}");
}

fn join_net(b: &Bundle, pid: i32) {
    b.config(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!(format!("/proc/{pid}/ns/net"));
            }
        }
    });
}

#[test]
fn joins_a_host_network_namespace_by_path() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("ns-join");
    let child = Command::new("unshare")
        .args(["--net", "sleep", "60"])
        .spawn()
        .expect("unshare");
    let sleeper = KillOnDrop(child);
    let pid = sleeper.0.id() as i32;
    let link = format!("/proc/{pid}/ns/net");
    assert!(
        common::wait_until(Duration::from_secs(5), || {
            std::fs::read_link(&link).is_ok_and(|l| l.to_string_lossy() != host_ns("net"))
        }),
        "unshare --net never made its namespace"
    );
    join_net(&b, pid);
    let r = b.report();
    assert_eq!(r["ns_net"], readlink(&link));
    assert_ne!(
        r["ns_mnt"],
        host_ns("mnt"),
        "other namespaces are still new"
    );
}

#[test]
fn joins_another_containers_network_namespace() {
    if common::skip() {
        return;
    }
    let first = Bundle::new("ns-join-a");
    first.args(&["sleep", "60"]);
    let id = first.id();
    first.create(&id);
    let pid = first.state(&id)["pid"].as_i64().unwrap() as i32;
    let b = Bundle::new("ns-join-b");
    join_net(&b, pid);
    let r = b.report();
    assert_eq!(r["ns_net"], readlink(&format!("/proc/{pid}/ns/net")));
    assert_ne!(r["ns_net"], host_ns("net"));
    assert_ne!(r["ns_uts"], readlink(&format!("/proc/{pid}/ns/uts")));
}

/// A new network namespace gets its loopback interface up, as runc and crun do.
#[test]
fn loopback_is_up_in_a_new_network_namespace() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("ns-lo");
    let out = b.probe(&["cat", "/sys/class/net/lo/flags"]);
    let flags = String::from_utf8_lossy(&common::ok(out).stdout)
        .trim()
        .to_string();
    let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "IFF_UP is not set on lo: {flags:#x}");
}
