//! Commands that act on a running container's cgroup: pause and resume (the kernel's
//! freezer), ps, update, events --stats, kill --all, delete --force of a paused one.
//! Checked against the cgroup files on the host and the processes' progress.

mod common;

use std::fs::{self, File};
use std::path::PathBuf;
use std::time::Duration;

use common::{
    alive, cgroup_file, controller, fails, ok, read_trim, text, v2_mount, wait_until, Bundle,
    Controller, RmDirs,
};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn need(name: &str) -> Controller {
    controller(name).unwrap_or_else(|| panic!("this host has no {name} cgroup controller"))
}

fn pid_of(b: &Bundle, id: &str) -> i32 {
    b.state(id)["pid"].as_i64().expect("pid in state") as i32
}

fn wait_status(b: &Bundle, id: &str, want: &str) {
    let ok = wait_until(WAIT, || b.status(id).as_deref() == Some(want));
    assert!(ok, "{id} never became {want}: {:?}", b.status(id));
}

/// create + start the bundle's process; returns (id, init pid, stdout file).
fn started(b: &Bundle) -> (String, i32, PathBuf) {
    let id = b.id();
    let out = b.create(&id);
    ok(b.nook(&["start", &id]));
    let pid = pid_of(b, &id);
    (id, pid, out)
}

/// The container's leaf in every hierarchy, from its state.
fn dirs(b: &Bundle, id: &str) -> Vec<PathBuf> {
    let st: Value =
        serde_json::from_str(&fs::read_to_string(b.root.join(id).join("state.json")).unwrap())
            .unwrap();
    serde_json::from_value(st["nook.cgroup"]["dirs"].clone()).expect("nook.cgroup.dirs")
}

/// The sorted pids of a cgroup.procs file.
fn procs(dir: &std::path::Path) -> Vec<i32> {
    let mut p: Vec<i32> = read_trim(&dir.join("cgroup.procs"))
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    p.sort();
    p
}

/// Wait until the container's cgroup holds `n` processes; returns them.
fn wait_procs(b: &Bundle, id: &str, n: usize) -> Vec<i32> {
    let d = dirs(b, id)[0].clone();
    assert!(
        wait_until(WAIT, || procs(&d).len() == n),
        "{} never held {n} processes: {:?}",
        d.display(),
        procs(&d)
    );
    procs(&d)
}

/// The kernel's freezer state: Some(true) frozen, Some(false) thawed, None in between.
fn frozen(id: &str) -> Option<bool> {
    match controller("freezer") {
        Some(c) if !c.v2 => match read_trim(&cgroup_file(&c, id, "freezer.state")).as_str() {
            "FROZEN" => Some(true),
            "THAWED" => Some(false),
            _ => None,
        },
        _ => {
            let leaf = v2_mount().expect("no freezer at all").join("nook").join(id);
            let freeze = read_trim(&leaf.join("cgroup.freeze"));
            let events = read_trim(&leaf.join("cgroup.events"));
            let settled = events.lines().any(|l| l == format!("frozen {freeze}"));
            settled.then_some(freeze == "1")
        }
    }
}

fn size(p: &PathBuf) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn pause_and_resume() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("ctl-pause");
    b.sh("while :; do echo tick; usleep 20000; done");
    let (id, _, out) = started(&b);
    assert!(wait_until(WAIT, || size(&out) > 0), "no progress at all");
    assert_eq!(frozen(&id), Some(false));

    ok(b.nook(&["pause", &id]));
    assert_eq!(b.status(&id).as_deref(), Some("paused"));
    assert_eq!(frozen(&id), Some(true));
    let before = size(&out);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        size(&out),
        before,
        "the container made progress while paused"
    );
    let err = fails(&b.nook(&["pause", &id]));
    assert!(err.contains("is paused"), "{err}");
    assert_eq!(frozen(&id), Some(true));

    ok(b.nook(&["resume", &id]));
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    assert_eq!(frozen(&id), Some(false));
    assert!(
        wait_until(WAIT, || size(&out) > before),
        "no progress after resume"
    );
    let err = fails(&b.nook(&["resume", &id]));
    assert!(err.contains("is running"), "{err}");
    assert_eq!(b.status(&id).as_deref(), Some("running"));

    ok(b.nook(&["kill", &id, "KILL"]));
    wait_status(&b, &id, "stopped");
    for cmd in ["pause", "resume"] {
        let err = fails(&b.nook(&[cmd, &id]));
        assert!(err.contains("is stopped"), "{cmd}: {err}");
    }
    ok(b.nook(&["delete", &id]));
    b.assert_clean(&id);
}

#[test]
fn ps_lists_the_cgroup() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("ctl-ps");
    b.sh("sleep 30 & sleep 30 & exec sleep 30");
    let (id, pid, _) = started(&b);
    let all = wait_procs(&b, &id, 3);
    assert!(all.contains(&pid), "init {pid} not in cgroup.procs {all:?}");

    let table = text(&ok(b.nook(&["ps", &id])).stdout);
    let mut rows = table.lines();
    assert!(rows.next().unwrap_or("").starts_with("PID"), "{table}");
    let listed: Vec<i32> = rows
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(listed.contains(&pid), "init {pid} not listed:\n{table}");
    assert_eq!(listed.len(), 3, "{table}");

    let out = ok(b.nook(&["ps", "--format", "json", &id])).stdout;
    let mut json: Vec<i32> = serde_json::from_slice(&out).expect("a JSON array of pids");
    json.sort();
    assert!(json.contains(&pid));
    for d in dirs(&b, &id) {
        assert_eq!(json, procs(&d), "{}", d.display());
    }
    ok(b.nook(&["delete", "--force", &id]));
    fails(&b.nook(&["ps", &id]));
}

/// The container's memory limit file, as bytes.
fn memory_limit(mem: &Controller, id: &str) -> String {
    let f = if mem.v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    read_trim(&cgroup_file(mem, id, f))
}

/// `nook update` with a file on stdin.
fn update_stdin(b: &Bundle, json: &Value, args: &[&str]) -> std::process::Output {
    let f = b.dir.join(format!("resources-{}.json", args.len()));
    fs::write(&f, json.to_string()).unwrap();
    let mut c = b.command(args);
    c.stdin(File::open(&f).unwrap());
    b.spawn(c)
        .output_within(WAIT * 6)
        .expect("nook update timed out")
}

#[test]
fn update_changes_the_limits() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("ctl-update");
    let (mem, pids) = (need("memory"), need("pids"));
    b.config(|c| {
        let r = &mut c["linux"]["resources"];
        r["pids"] = json!({"limit": 20});
        r["memory"] = json!({"limit": 128 << 20});
    });
    b.args(&["sleep", "30"]);
    let (id, _, _) = started(&b);
    let pids_max = || read_trim(&cgroup_file(&pids, &id, "pids.max"));
    assert_eq!(pids_max(), "20");
    assert_eq!(memory_limit(&mem, &id), (128 << 20).to_string());

    ok(b.nook(&["update", "--pids-limit", "9", "--memory", "64m", &id]));
    assert_eq!(pids_max(), "9");
    assert_eq!(memory_limit(&mem, &id), (64 << 20).to_string());

    let args = ["update", "--resources", "-", &id];
    ok(update_stdin(&b, &json!({"pids": {"limit": 11}}), &args));
    assert_eq!(pids_max(), "11");
    assert_eq!(memory_limit(&mem, &id), (64 << 20).to_string());

    let f = b.dir.join("res.json");
    fs::write(&f, json!({"memory": {"limit": 96 << 20}}).to_string()).unwrap();
    ok(b.nook(&["update", "--resources", f.to_str().unwrap(), &id]));
    assert_eq!(memory_limit(&mem, &id), (96 << 20).to_string());
    assert_eq!(pids_max(), "11");

    // Memory and memory+swap together, shrinking then growing (the two limits must
    // be written in an order the kernel accepts).
    let swap = if mem.v2 {
        "memory.swap.max"
    } else {
        "memory.memsw.limit_in_bytes"
    };
    if cgroup_file(&mem, &id, swap).exists() {
        for mib in [32u64, 160] {
            let m = format!("{mib}m");
            ok(b.nook(&["update", "--memory", &m, "--memory-swap", &m, &id]));
            let want = (mib << 20).to_string();
            assert_eq!(memory_limit(&mem, &id), want);
            let got = read_trim(&cgroup_file(&mem, &id, swap));
            // v2's swap.max is swap alone: memory+swap minus memory.
            assert_eq!(got, if mem.v2 { "0" } else { &want }, "{swap}");
        }
    }

    // The kernel refuses a cpuset this host lacks: the error names the key.
    let err = fails(&b.nook(&["update", "--cpuset-cpus", "999", &id]));
    assert!(err.contains("linux.resources.cpu.cpus"), "{err}");
    let err = fails(&b.nook(&["update", "--pids-limit", "3", "nosuch-ctl"]));
    assert!(err.contains("does not exist"), "{err}");

    ok(b.nook(&["kill", &id, "KILL"]));
    wait_status(&b, &id, "stopped");
    fails(&b.nook(&["update", "--pids-limit", "3", &id]));
}

#[test]
fn events_stats() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("ctl-events");
    let pids = need("pids");
    b.sh("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo ready; exec sleep 30");
    let (id, _, out) = started(&b);
    let ready = wait_until(WAIT, || fs::read_to_string(&out).unwrap().contains("ready"));
    assert!(ready, "the script never got ready");
    wait_procs(&b, &id, 1);

    let o = ok(b.nook(&["events", "--stats", &id]));
    let lines: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let v: Value = serde_json::from_str(lines[0]).expect("a JSON line");
    assert_eq!(v["type"], "stats");
    assert_eq!(v["id"], id.as_str());
    let d = &v["data"];
    let host = read_trim(&cgroup_file(&pids, &id, "pids.current"));
    assert_eq!(d["pids"]["current"], json!(1), "{d}");
    assert_eq!(host, "1");
    assert!(d["memory"]["usage"]["usage"].as_u64() > Some(0), "{d}");
    assert!(d["cpu"]["usage"]["total"].as_u64() > Some(0), "{d}");
    ok(b.nook(&["delete", "--force", &id]));
    fails(&b.nook(&["events", "--stats", &id]));
}

/// kill --all KILL takes every process of the cgroup, init or not.
fn kill_all(b: &Bundle) {
    b.sh("sleep 60 & sleep 60 & sleep 60 & exec sleep 60");
    let (id, pid, _) = started(b);
    let all = wait_procs(b, &id, 4);
    assert!(all.contains(&pid));
    ok(b.nook(&["kill", "--all", &id, "KILL"]));
    wait_status(b, &id, "stopped");
    for d in dirs(b, &id) {
        let ok = wait_until(WAIT, || procs(&d).is_empty());
        assert!(ok, "{} still holds {:?}", d.display(), procs(&d));
    }
    let left: Vec<_> = all.iter().filter(|p| alive(**p)).collect();
    assert!(left.is_empty(), "survivors: {left:?}");
    ok(b.nook(&["delete", &id]));
    b.assert_clean(&id);
}

#[test]
fn kill_all_in_a_pid_namespace() {
    if common::skip() {
        return;
    }
    kill_all(&Bundle::new("ctl-killall-ns"));
}

#[test]
fn kill_all_without_a_pid_namespace() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("ctl-killall-nons");
    b.config(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    kill_all(&b);
}

#[test]
fn delete_force_of_a_paused_container() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("ctl-delpaused");
    b.sh("sleep 60 & sleep 60 & exec sleep 60");
    let (id, _, _) = started(&b);
    let all = wait_procs(&b, &id, 3);
    ok(b.nook(&["pause", &id]));
    assert_eq!(b.status(&id).as_deref(), Some("paused"));
    assert_eq!(frozen(&id), Some(true));
    ok(b.nook(&["delete", "--force", &id]));
    let gone = wait_until(WAIT, || all.iter().all(|p| !alive(*p)));
    assert!(
        gone,
        "survivors: {:?}",
        all.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    b.assert_clean(&id);
}

#[test]
fn kill_all_and_delete_reach_nested_cgroups() {
    if common::skip() {
        return;
    }
    // What a container with a writable cgroup mount (systemd, docker-in-docker) does:
    // make cgroups below its own and move processes there. Without a pid namespace
    // only the cgroup tree holds them.
    let mut rm = RmDirs(vec![]);
    let b = Bundle::new("ctl-nested");
    b.config(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "pid");
    });
    b.sh("sleep 60 & exec sleep 60");
    let (id, pid, _) = started(&b);
    let child = *wait_procs(&b, &id, 2).iter().find(|p| **p != pid).unwrap();
    let leaves = dirs(&b, &id);
    let subs: Vec<PathBuf> = leaves.iter().map(|d| d.join("sub")).collect();
    rm.0 = subs.iter().chain(&leaves).cloned().collect();
    for (s, leaf) in subs.iter().zip(&leaves) {
        fs::create_dir(s).unwrap();
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let v = fs::read_to_string(leaf.join(f)).unwrap_or_default();
            if !v.trim().is_empty() && controller("cpuset").is_some_and(|c| !c.v2) {
                fs::write(s.join(f), v.trim()).unwrap(); // v1: no task joins without them
            }
        }
        fs::write(s.join("cgroup.procs"), child.to_string()).unwrap();
    }
    ok(b.nook(&["kill", "--all", &id, "KILL"]));
    let survived_kill_all = !wait_until(WAIT / 5, || !alive(child));
    ok(b.nook(&["delete", "--force", &id]));
    let survived_delete = !wait_until(WAIT / 5, || !alive(child));
    let left: Vec<_> = leaves.iter().filter(|d| d.exists()).collect();
    assert!(
        !survived_kill_all && !survived_delete && left.is_empty(),
        "process {child} in a nested cgroup survived kill --all: {survived_kill_all}, \
         delete --force: {survived_delete}; cgroups left: {left:?}"
    );
}

/// SIGKILL to a paused container's init kills it: nook thaws the cgroup after the
/// signal, as runc does (a frozen process cannot die; podman kill and ctr kill of a
/// paused container hung on it).
#[test]
fn sigkill_of_a_paused_container_kills_it() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("ctl-killpaused");
    b.args(&["sleep", "60"]);
    let (id, pid, _) = started(&b);
    ok(b.nook(&["pause", &id]));
    assert_eq!(b.status(&id).as_deref(), Some("paused"));
    ok(b.nook(&["kill", &id, "KILL"]));
    assert!(
        wait_until(WAIT, || !alive(pid)),
        "the paused init {pid} survived SIGKILL"
    );
    wait_status(&b, &id, "stopped");
    ok(b.nook(&["delete", &id]));
    b.assert_clean(&id);
}
