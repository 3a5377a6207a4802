//! linux.resources and linux.cgroupsPath as the kernel shows them: the files of the
//! container's cgroup read on the host (v1, v2 or hybrid, found from mountinfo) and
//! from inside the container, limits that bite (pids, memory), device rules that
//! refuse an open, clear errors for keys the host cannot apply, and no cgroup left.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    alive, cgroup_dirs, cgroup_file, cgroup_mounts, code, controller, fails, inside_cgroup_file,
    ok, read_trim, text, v2_mount, wait_until, Bundle, Controller, RmDirs,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn need(name: &str) -> Controller {
    controller(name).unwrap_or_else(|| panic!("this host has no {name} cgroup controller"))
}

/// `v2` or `v1`, as the controller is mounted.
fn pick<'a>(c: &Controller, v2: &'a str, v1: &'a str) -> &'a str {
    [v1, v2][usize::from(c.v2)]
}

fn set_res(b: &Bundle, key: &str, v: Value) {
    b.config(|c| c["linux"]["resources"][key] = v);
}

/// `nook create`; returns (stdout file, stderr file) of the container.
fn create(b: &Bundle, id: &str) -> (PathBuf, PathBuf) {
    let mut s = b.spawn(b.command(&["create", id, "--bundle", b.path_str()]));
    ok(s.output_within(WAIT * 6).expect("nook create timed out"));
    (s.out.clone(), s.err.clone())
}

fn wait_status(b: &Bundle, id: &str, want: &str) {
    let ok = wait_until(WAIT, || b.status(id).as_deref() == Some(want));
    assert!(ok, "{id} never became {want}: {:?}", b.status(id));
}

/// create + start a busybox script that prints `NAME=<contents>` for each inside file
/// and the cpuset lists of /proc/self/status, then sleeps. Returns (id, those lines).
fn running_with(b: &Bundle, files: &[String]) -> (String, HashMap<String, String>) {
    let mut script = String::new();
    for f in files {
        let name = Path::new(f).file_name().unwrap().to_string_lossy();
        script += &format!("echo \"{name}=$(cat {f})\"; ");
    }
    script += "grep _allowed_list: /proc/self/status | tr -d ':\\t ' | sed 's/list/list=/'; ";
    b.sh(&format!("{script}echo ready; exec sleep 30"));
    let id = b.id();
    let (out, _) = create(b, &id);
    ok(b.nook(&["start", &id]));
    let read = || fs::read_to_string(&out).unwrap();
    assert!(wait_until(WAIT, || read().contains("ready")), "{}", read());
    let inside = read();
    let kv = inside
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (id, kv)
}

/// Check (controller, file, value) on the host and from inside; returns what the
/// script printed.
fn check_files(b: &Bundle, want: &[(&Controller, &str, String)]) -> HashMap<String, String> {
    let inside: Vec<String> = want
        .iter()
        .map(|(c, f, _)| inside_cgroup_file(c, f))
        .collect();
    let (id, seen) = running_with(b, &inside);
    for (c, f, v) in want {
        assert_eq!(&read_trim(&cgroup_file(c, &id, f)), v, "host {f}");
        assert_eq!(seen.get(*f), Some(v), "inside {f}: {seen:?}");
    }
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
    seen
}

#[test]
fn limits_are_written() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("cg-limits");
    let (mem, cpu, cpuset, pids) = (need("memory"), need("cpu"), need("cpuset"), need("pids"));
    let mut m = json!({"limit": 64 << 20, "reservation": 32 << 20});
    if !mem.v2 {
        m["swappiness"] = json!(10);
    }
    set_res(&b, "memory", m);
    let c = json!({"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"});
    set_res(&b, "cpu", c);
    set_res(&b, "pids", json!({"limit": 10}));
    let s = |v: &str| v.to_string();
    let mut want = vec![
        (&cpuset, "cpuset.cpus", s("0")),
        (&cpuset, "cpuset.mems", s("0")),
        (&pids, "pids.max", s("10")),
    ];
    if mem.v2 {
        want.push((&mem, "memory.max", s("67108864")));
        want.push((&mem, "memory.low", s("33554432")));
    } else {
        want.push((&mem, "memory.limit_in_bytes", s("67108864")));
        want.push((&mem, "memory.soft_limit_in_bytes", s("33554432")));
        want.push((&mem, "memory.swappiness", s("10")));
    }
    if cpu.v2 {
        // runc's conversion: 1 + (shares - 2) * 9999 / 262142.
        want.push((&cpu, "cpu.weight", s("20")));
        want.push((&cpu, "cpu.max", s("50000 100000")));
    } else {
        want.push((&cpu, "cpu.shares", s("512")));
        want.push((&cpu, "cpu.cfs_quota_us", s("50000")));
        want.push((&cpu, "cpu.cfs_period_us", s("100000")));
    }
    let seen = check_files(&b, &want);
    // The kernel applies the cpuset to the process itself.
    assert_eq!(seen.get("Cpus_allowed_list").map(String::as_str), Some("0"));
    assert_eq!(seen.get("Mems_allowed_list").map(String::as_str), Some("0"));
}

#[test]
fn pids_limit_bites() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("cg-pids");
    let pids = need("pids");
    set_res(&b, "pids", json!({"limit": 5}));
    // The inner shell forks until the limit stops it (init + inner + 3 sleeps = 5);
    // the outer one then sits at the limit for a while.
    b.sh("sh -c 'for i in $(seq 20); do sleep 3 & done; wait'; \
         echo inner=$?; sleep 3 & wait; echo end");
    let id = b.id();
    let (out, err) = create(&b, &id);
    ok(b.nook(&["start", &id]));
    let (mut most, end) = (0u64, Instant::now() + WAIT * 2);
    while !fs::read_to_string(&out).unwrap().contains("end") && Instant::now() < end {
        if let Ok(n) = fs::read_to_string(cgroup_file(&pids, &id, "pids.current")) {
            most = most.max(n.trim().parse().unwrap());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    wait_status(&b, &id, "stopped");
    let out = fs::read_to_string(out).unwrap();
    let err = fs::read_to_string(err).unwrap();
    assert!(out.contains("inner=2") && out.contains("end"), "{out}");
    assert!(err.contains("can't fork"), "no failed fork: {err}");
    assert_eq!(most, 5, "pids.current peaked at {most}");
    let events = read_trim(&cgroup_file(&pids, &id, "pids.events"));
    let hit: u64 = events
        .lines()
        .find_map(|l| l.strip_prefix("max ")?.parse().ok())
        .unwrap();
    assert!(hit >= 1, "pids.events: {events}");
    if let Ok(peak) = fs::read_to_string(cgroup_file(&pids, &id, "pids.peak")) {
        assert_eq!(peak.trim(), "5");
    }
    ok(b.nook(&["delete", &id]));
    b.assert_clean(&id);
}

/// The OOM-kill counter of the container's memory cgroup.
fn oom_kills(mem: &Controller, id: &str) -> u64 {
    let f = pick(mem, "memory.events", "memory.oom_control");
    let t = read_trim(&cgroup_file(mem, id, f));
    t.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.parse().ok())
        .unwrap_or_else(|| panic!("no oom_kill in {f}: {t}"))
}

#[test]
fn memory_limit_bites_and_events_report_the_oom() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("cg-oom");
    let mem = need("memory");
    let mut m = json!({"limit": 32 << 20});
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    if !mem.v2 && mem.mount.join("memory.memsw.limit_in_bytes").exists() {
        m["swap"] = json!(32 << 20);
    } else if swaps.lines().count() > 1 {
        if !mem.v2 {
            eprintln!("skipping: swap is on but this host has no swap accounting");
            return;
        }
        m["swap"] = json!(32 << 20); // memory.swap.max 0
    }
    set_res(&b, "memory", m);
    // Wait for USR1, then let busybox tail buffer an endless line of zeros.
    b.sh(
        "trap 'go=1' USR1; while [ -z \"$go\" ]; do usleep 20000; done; \
          head -c 256m /dev/zero | tail; exit $?",
    );
    let id = b.id();
    let mut run = b.spawn(b.command(&["run", "--keep", &id, "--bundle", b.path_str()]));
    wait_status(&b, &id, "running");

    let stats: Value = serde_json::from_slice(&ok(b.nook(&["events", "--stats", &id])).stdout)
        .expect("events --stats prints JSON");
    assert_eq!(stats["data"]["memory"]["usage"]["limit"], json!(32 << 20));
    let mut events = b.spawn(b.command(&["events", "--interval", "1s", &id]));
    let first = events.wait_stdout("\"type\":\"stats\"", WAIT);
    assert!(first, "no stats event");
    assert_eq!(oom_kills(&mem, &id), 0);

    ok(b.nook(&["kill", &id, "USR1"]));
    let o = run.output_within(WAIT * 6).expect("no end");
    assert_eq!(code(&o), 137, "stderr: {}", text(&o.stderr));
    assert!(oom_kills(&mem, &id) >= 1, "the kernel counted no OOM kill");
    let stopped = events.wait_within(WAIT).is_some();
    let out = events.stdout();
    let mut lines = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap());
    let oom = lines.find(|v| v["type"] == "oom").map(|v| v["id"].clone());
    assert_eq!(oom, Some(json!(id)), "no oom event for {id}: {out}");
    assert!(stopped, "events did not end with the container");
    ok(b.nook(&["delete", &id]));
    b.assert_clean(&id);
}

/// `probe write /dev/kmsg` (host's 1:11 bound in) with these device rules (None: none).
fn kmsg_write(b: &Bundle, rules: Option<Value>) -> String {
    dev_write(b, rules, "/dev/kmsg")
}

/// Bind the host's `dev` into the container and have the probe open it for writing.
fn dev_write(b: &Bundle, rules: Option<Value>, dev: &str) -> String {
    b.config(|c| {
        let r = c["linux"]["resources"].as_object_mut().unwrap();
        match &rules {
            Some(v) => r.insert("devices".into(), v.clone()),
            None => r.remove("devices"),
        };
        let m = json!({"destination": dev, "type": "bind", "source": dev,
                       "options": ["bind"]});
        let ms = c["mounts"].as_array_mut().unwrap();
        if !ms.contains(&m) {
            ms.push(m);
        }
    });
    let o = b.probe(&["write", dev]);
    text(&o.stdout).trim().to_string()
}

#[test]
fn device_rules_refuse_an_open() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("cg-devices");
    let deny = json!({"allow": false, "access": "rwm"});
    let kmsg = |a: &str| json!({"allow": true, "type": "c", "major": 1, "minor": 11, "access": a});
    // The default config denies everything but the standard devices.
    assert_eq!(kmsg_write(&b, Some(json!([deny]))), "error:EPERM");
    let (r, w) = (json!([deny, kmsg("r")]), json!([deny, kmsg("w")]));
    assert_eq!(kmsg_write(&b, Some(r)), "error:EPERM");
    assert_eq!(kmsg_write(&b, Some(w)), "ok");
    assert_eq!(kmsg_write(&b, None), "ok");
    kmsg_write(&b, Some(json!([deny])));
    // The standard devices open; /dev/full then refuses the write itself (ENOSPC).
    for dev in ["/dev/null", "/dev/zero", "/dev/full"] {
        let want = if dev == "/dev/full" { "error:28" } else { "ok" };
        assert_eq!(text(&b.probe(&["write", dev]).stdout).trim(), want, "{dev}");
    }
    // The host's console is not a standard device (runc refuses it too).
    let b2 = Bundle::new("cg-console");
    let console = dev_write(&b2, Some(json!([deny])), "/dev/console");
    assert_eq!(console, "error:EPERM");
    let Some(dev) = controller("devices").filter(|c| !c.v2) else {
        return; // v2: an eBPF program, seen only through the opens above
    };
    b.args(&["sleep", "30"]);
    let id = b.id();
    create(&b, &id);
    let list = read_trim(&cgroup_file(&dev, &id, "devices.list"));
    let mut got: Vec<&str> = list.lines().collect();
    got.sort();
    // runc's standard set: mknod of anything; null, zero, full, random, urandom, tty,
    // ptmx, pts, tun (not the host's console, 5:1).
    let want = "c 1:3,c 1:5,c 1:7,c 1:8,c 1:9,c 5:0,c 5:2,c 136:*,c 10:200";
    let mut want: Vec<String> = want.split(',').map(|d| format!("{d} rwm")).collect();
    want.extend(["c *:* m".to_string(), "b *:* m".to_string()]);
    want.sort();
    assert_eq!(got, want, "devices.list");
}

#[test]
fn hugetlb_limit() {
    if common::skip() {
        return;
    }
    let Some(h) = controller("hugetlb") else {
        eprintln!("skipping: this host has no hugetlb controller; the VM run covers it");
        return;
    };
    if !Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists() {
        eprintln!("skipping: this host has no 2 MB huge pages");
        return;
    }
    let b = Bundle::new("cg-hugetlb");
    let limit = json!([{"pageSize": "2MB", "limit": 4 << 20}]);
    set_res(&b, "hugepageLimits", limit);
    let f = pick(&h, "hugetlb.2MB.max", "hugetlb.2MB.limit_in_bytes");
    check_files(&b, &[(&h, f, (4 << 20).to_string())]);
}

#[test]
fn unified_keys() {
    if common::skip() {
        return;
    }
    let Some(v2) = v2_mount() else {
        eprintln!("skipping: this host has no cgroup v2 hierarchy; the VM run covers it");
        return;
    };
    let b = Bundle::new("cg-unified");
    let pids_v2 = controller("pids").is_some_and(|c| c.v2);
    let mut u = json!({"cgroup.max.descendants": "5"});
    if pids_v2 {
        u["pids.max"] = json!("7");
    }
    set_res(&b, "unified", u);
    b.args(&["sleep", "30"]);
    let id = b.id();
    create(&b, &id);
    let leaf = v2.join("nook").join(&id);
    assert_eq!(read_trim(&leaf.join("cgroup.max.descendants")), "5");
    if pids_v2 {
        assert_eq!(read_trim(&leaf.join("pids.max")), "7");
    }
    // The kernel enforces it: a sixth descendant is refused.
    let d = |i| leaf.join(format!("d{i}"));
    let made: Vec<_> = (0..6).map(|i| fs::create_dir(d(i))).collect();
    (0..6).for_each(|i| drop(fs::remove_dir(d(i))));
    assert!(made[..5].iter().all(Result::is_ok), "{made:?}");
    assert!(made[5].is_err(), "a sixth descendant was allowed");
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);

    set_res(&b, "unified", json!({"no.such.file": "1"}));
    let id = b.id();
    let err = fails(&b.nook(&["create", &id, "--bundle", b.path_str()]));
    let named = err.contains("linux.resources.unified") && err.contains("no.such.file");
    assert!(named, "{err}");
    b.assert_clean(&id);
}

/// Create with a key the host may lack: with `file` (controller, file, value), check
/// the file; else the create must fail naming `key`. Either way nothing is left.
fn optional_key(b: &Bundle, key: &str, file: Option<(Controller, &str, String)>, why: &str) {
    let id = b.id();
    let o = b.nook(&["create", &id, "--bundle", b.path_str()]);
    match file {
        Some((c, f, want)) => {
            ok(o);
            assert_eq!(read_trim(&cgroup_file(&c, &id, f)), want, "{f}");
            ok(b.nook(&["delete", &id]));
        }
        None => {
            let err = fails(&o);
            assert!(err.contains(key), "the error does not name {key}: {err}");
            eprintln!("skipping the {key} value check: {why}");
        }
    }
    b.assert_clean(&id);
}

#[test]
fn keys_the_host_may_lack_apply_or_fail_clearly() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("cg-optional");
    b.args(&["sleep", "30"]);
    // blkio.weight (v1, CFQ) or io.weight (v2): look at a fresh leaf.
    let probe_id = b.id();
    create(&b, &probe_id);
    let file = match controller("blkio").or_else(|| controller("io")) {
        // runc's conversion to io.weight: 1 + (500 - 10) * 9999 / 990.
        Some(c) if c.v2 => Some((c, "io.weight", "default 4950".to_string())),
        Some(c) => Some((c, "blkio.weight", "500".to_string())),
        None => None,
    }
    .filter(|(c, f, _)| cgroup_file(c, &probe_id, f).exists());
    ok(b.nook(&["delete", &probe_id]));
    set_res(&b, "blockIO", json!({"weight": 500}));
    let why = "no blkio.weight/io.weight file here; the VM run covers it";
    optional_key(&b, "linux.resources.blockIO.weight", file, why);

    b.config(|c| {
        let r = c["linux"]["resources"].as_object_mut().unwrap();
        r.remove("blockIO");
        r.insert("network".into(), json!({"classID": 1048577}));
    });
    let file = controller("net_cls")
        .filter(|c| !c.v2)
        .map(|c| (c, "net_cls.classid", "1048577".to_string()));
    let why = "no v1 net_cls hierarchy (cgroup v2 has none: the VM run checks the error too)";
    optional_key(&b, "linux.resources.network.classID", file, why);
}

fn cgroups_path_places_the_cgroup(b: &Bundle, path: &str, rel: &str) {
    b.config(|c| c["linux"]["cgroupsPath"] = json!(path));
    b.args(&["sleep", "30"]);
    let id = b.id();
    create(b, &id);
    let st: Value =
        serde_json::from_str(&fs::read_to_string(b.root.join(&id).join("state.json")).unwrap())
            .unwrap();
    let pid = st["pid"].as_i64().unwrap().to_string();
    let want: Vec<PathBuf> = cgroup_mounts().iter().map(|m| m.join(rel)).collect();
    let dirs: Vec<PathBuf> = serde_json::from_value(st["nook.cgroup"]["dirs"].clone()).unwrap();
    assert_eq!(dirs, want, "state's nook.cgroup.dirs");
    for d in &want {
        let procs = read_trim(&d.join("cgroup.procs"));
        assert!(procs.lines().any(|l| l == pid), "{pid} not in {d:?}");
    }
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let suffix = format!(":/{rel}");
    assert!(cg.lines().all(|l| l.ends_with(&suffix)), "{cg}");
    ok(b.nook(&["delete", &id]));
    let left: Vec<_> = want.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "leaves left: {left:?}");
    assert!(!alive(pid.parse().unwrap()));
}

#[test]
fn cgroups_path_absolute_and_relative() {
    if common::skip() {
        return;
    }
    let pid = std::process::id();
    let (top, rel) = (format!("nooktest-{pid}"), format!("rel-{pid}"));
    let mut dirs = vec![];
    for m in cgroup_mounts() {
        let (leaf, rel) = (m.join(&top).join("c1"), m.join("nook").join(&rel));
        dirs.extend([leaf, m.join(&top), rel]);
    }
    let _rm = RmDirs(dirs);
    let b = Bundle::new("cg-path");
    cgroups_path_places_the_cgroup(&b, &format!("/{top}/c1"), &format!("{top}/c1"));
    cgroups_path_places_the_cgroup(&b, &rel, &format!("nook/{rel}"));
}

#[test]
fn no_cgroup_left_behind() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("cg-left");
    // Refused while planning (before any write), and by the kernel mid-way.
    let swappiness = json!({"memory": {"swappiness": 101}});
    let cpus = json!({"pids": {"limit": 9}, "cpu": {"cpus": "999"}});
    let bad = [("memory.swappiness", swappiness), ("cpu.cpus", cpus)];
    for (key, v) in bad {
        let key = format!("linux.resources.{key}");
        b.config(|c| c["linux"]["resources"] = v);
        let id = b.id();
        let err = fails(&b.nook(&["create", &id, "--bundle", b.path_str()]));
        assert!(err.contains(&key), "the error does not name {key}: {err}");
        b.assert_clean(&id);
    }
    b.config(|c| c["linux"]["resources"] = json!({"pids": {"limit": 20}}));
    b.args(&["exit", "0"]);
    let id = b.id();
    create(&b, &id);
    assert!(!cgroup_dirs(&id).is_empty());
    ok(b.nook(&["start", &id]));
    wait_status(&b, &id, "stopped");
    ok(b.nook(&["delete", &id]));
    b.assert_clean(&id);

    b.args(&["sleep", "30"]);
    let id = b.id();
    create(&b, &id);
    ok(b.nook(&["start", &id]));
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}

/// A filesystem mounted over the v2 hierarchy's mount point (as hosts do to hide cgroup2
/// from old runtimes) leaves the hidden cgroup2 entry in mountinfo: nook uses only the
/// mounts visible at each path. The v2 hierarchy is shadowed by a tmpfs and mounted again
/// below it, in a private mount namespace; the container must join the v2 cgroup through
/// the visible mount (its /proc/self/cgroup, without a cgroup namespace, names nook/<id>).
#[test]
fn shadowed_cgroup_mount_is_not_used() {
    if common::skip() {
        return;
    }
    let Some(v2) = v2_mount() else {
        eprintln!("skipping: this host has no cgroup v2 hierarchy to shadow");
        return;
    };
    let b = Bundle::new("cg-shadow");
    b.config(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "cgroup");
    });
    let setup = r#"mkdir "$0/again" && mount -t cgroup2 none "$0/again""#;
    let out = b.probe_over_private_mount(&v2, setup, &["cat", "/proc/self/cgroup"]);
    let out = ok(out);
    let id = b.last_id();
    let cg = text(&out.stdout);
    let want = format!("0::/nook/{id}");
    assert!(cg.lines().any(|l| l == want), "no {want:?} in {cg}");
    // The cgroup went with the container, in the visible hierarchy as in the others.
    assert!(cgroup_dirs(&id).is_empty(), "left: {:?}", cgroup_dirs(&id));
}

/// dockerd puts `blockIO.weight: 0` and `cpu.shares: 0` (and other zeros) in every
/// config: runc reads a zero there as "not set". nook must too: the create succeeds
/// (no blkio.weight refusal) and the CPU share stays the default instead of the
/// kernel's minimum.
#[test]
fn docker_zeros_mean_not_set() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("cg-zeros");
    b.config(|c| {
        c["linux"]["resources"] = json!({
            "blockIO": {"weight": 0, "leafWeight": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
            "memory": {"limit": 0, "reservation": 0, "swap": 0},
            "pids": {"limit": 0}
        })
    });
    b.args(&["sleep", "30"]);
    let id = b.id();
    create(&b, &id);
    let cpu = need("cpu");
    let (file, default) = if cpu.v2 {
        ("cpu.weight", "100")
    } else {
        ("cpu.shares", "1024")
    };
    assert_eq!(read_trim(&cgroup_file(&cpu, &id, file)), default, "{file}");
    let mem = need("memory");
    let limit = read_trim(&cgroup_file(
        &mem,
        &id,
        pick(&mem, "memory.max", "memory.limit_in_bytes"),
    ));
    assert!(limit == "max" || limit.len() >= 15, "memory limit {limit}");
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}
