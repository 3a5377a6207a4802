//! create, start, state, kill, delete and list on containers, checked against
//! what the host shows: /proc/PID, the process's cgroups, the state and cgroup dirs.

mod common;

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use common::{alive, cgroup_dirs, fails, ok, text, wait_until, Bundle};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn pid_of(b: &Bundle, id: &str) -> i32 {
    b.state(id)["pid"].as_i64().expect("pid in state") as i32
}

fn wait_status(b: &Bundle, id: &str, want: &str) {
    let ok = wait_until(WAIT, || b.status(id).as_deref() == Some(want));
    assert!(ok, "{id} never became {want}: {:?}", b.status(id));
}

fn wait_file(p: &PathBuf, needle: &str) {
    let ok = wait_until(WAIT, || {
        fs::read_to_string(p).unwrap_or_default().contains(needle)
    });
    assert!(ok, "{needle:?} never appeared: {:?}", fs::read_to_string(p));
}

/// create + start a container running `probe ARGS`; returns (id, pid, stdout file).
fn started(b: &Bundle, args: &[&str]) -> (String, i32, PathBuf) {
    b.args(args);
    let id = b.id();
    let log = b.create(&id);
    ok(b.nook(&["start", &id]));
    let pid = pid_of(b, &id);
    (id, pid, log)
}

#[test]
fn create_start_kill_delete() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("life-full");
    b.args(&["signals"]);
    let id = b.id();
    let log = b.create(&id);
    let st = b.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], b.path_str());
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(pid > 0 && alive(pid), "init {pid} is not alive");
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.contains(&format!("/nook/{id}\n")),
        "init is not in its cgroup: {cg}"
    );
    assert!(!cgroup_dirs(&id).is_empty());
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "",
        "the process ran before start"
    );

    ok(b.nook(&["start", &id]));
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    assert_eq!(pid_of(&b, &id), pid);
    wait_file(&log, "ready");
    fails(&b.nook(&["start", &id]));

    ok(b.nook(&["kill", &id, "TERM"]));
    wait_status(&b, &id, "stopped");
    wait_file(&log, "got 15");
    assert!(!alive(pid));

    ok(b.nook(&["delete", &id]));
    assert!(!b.root.join(&id).exists(), "state dir is left");
    assert_eq!(
        cgroup_dirs(&id),
        Vec::<PathBuf>::new(),
        "cgroup dirs are left"
    );
    let err = fails(&b.nook(&["state", &id]));
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn delete_of_a_running_container_needs_force() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("life-force");
    let (id, pid, _) = started(&b, &["sleep", "60"]);
    let err = fails(&b.nook(&["delete", &id]));
    assert!(err.contains("running"), "{err}");
    assert!(alive(pid));
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    ok(b.nook(&["delete", "--force", &id]));
    assert!(
        wait_until(WAIT, || !alive(pid)),
        "init {pid} survived delete --force"
    );
    b.assert_clean(&id);
}

#[test]
fn delete_of_a_created_container_kills_it() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("life-delcreated");
    b.args(&["hello"]);
    let id = b.id();
    let log = b.create(&id);
    let pid = pid_of(&b, &id);
    ok(b.nook(&["delete", &id]));
    assert!(wait_until(WAIT, || !alive(pid)));
    b.assert_clean(&id);
    assert_eq!(fs::read_to_string(log).unwrap(), "", "the process ran");
}

#[test]
fn kill_takes_names_and_numbers() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("life-kill");
    for sig in ["KILL", "SIGKILL", "9"] {
        let (id, pid, _) = started(&b, &["sleep", "60"]);
        ok(b.nook(&["kill", &id, sig]));
        wait_status(&b, &id, "stopped");
        assert!(!alive(pid), "kill {sig} left {pid} alive");
    }
    let (id, _, log) = started(&b, &["signals"]);
    wait_file(&log, "ready");
    ok(b.nook(&["kill", &id, "usr1"]));
    wait_file(&log, "got 10");
    let err = fails(&b.nook(&["kill", &id, "NOSUCHSIG"]));
    assert!(err.contains("NOSUCHSIG"), "{err}");
}

#[test]
fn kill_all() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("life-killall");
    let (id, pid, _) = started(&b, &["sleep", "60"]);
    ok(b.nook(&["kill", "--all", &id, "KILL"]));
    wait_status(&b, &id, "stopped");
    assert!(!alive(pid));
    let err = fails(&b.nook(&["kill", &id, "KILL"]));
    assert!(
        err.contains("not running") || err.contains("stopped"),
        "{err}"
    );
}

#[test]
fn list_table_and_json() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("life-list");
    b.args(&["sleep", "60"]);
    let ids = [b.id(), b.id()];
    for id in &ids {
        b.create(id);
    }
    let table = text(&ok(b.nook(&["list"])).stdout);
    for id in &ids {
        let row = table.lines().find(|l| l.starts_with(id.as_str()));
        let row = row.unwrap_or_else(|| panic!("{id} not listed:\n{table}"));
        assert!(row.contains("created"), "{row}");
    }
    let json: Value = serde_json::from_slice(&ok(b.nook(&["list", "--format", "json"])).stdout)
        .expect("list --format json prints JSON");
    let rows = json.as_array().expect("an array");
    for id in &ids {
        let row = rows
            .iter()
            .find(|r| r["id"] == id.as_str())
            .expect("id listed");
        assert_eq!(row["status"], "created");
        assert_eq!(row["pid"].as_i64().unwrap() as i32, pid_of(&b, id));
    }
    let quiet = text(&ok(b.nook(&["list", "-q"])).stdout);
    let mut want = ids.to_vec();
    want.sort();
    assert_eq!(quiet.lines().collect::<Vec<_>>(), want);
}

#[test]
fn unknown_ids_fail() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("life-unknown");
    let id = format!("nosuch-{}", std::process::id());
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id],
        vec!["delete", &id],
    ] {
        let err = fails(&b.nook(&args));
        assert!(err.contains("does not exist"), "{args:?}: {err}");
    }
    // runc: delete --force of a container that does not exist succeeds.
    ok(b.nook(&["delete", "--force", &id]));
}

#[test]
fn create_with_an_existing_id_fails_and_leaves_the_first_alone() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("life-dup");
    b.args(&["hello"]);
    let id = b.id();
    let log = b.create(&id);
    let pid = pid_of(&b, &id);
    let err = fails(&b.nook(&["create", &id, "--bundle", b.path_str()]));
    assert!(err.contains("already exists"), "{err}");
    let err = fails(&b.nook(&["run", &id, "--bundle", b.path_str()]));
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(b.status(&id).as_deref(), Some("created"));
    assert_eq!(pid_of(&b, &id), pid);
    assert!(alive(pid));
    ok(b.nook(&["start", &id]));
    wait_file(&log, "hello from probe");
    wait_status(&b, &id, "stopped");
}

#[test]
fn pid_file_holds_the_init_pid() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("life-pidfile");
    b.args(&["sleep", "60"]);
    let id = b.id();
    let pid_file = b.dir.join("init.pid");
    let args = ["create", &id, "--bundle", b.path_str(), "--pid-file"];
    let mut args = args.to_vec();
    args.push(pid_file.to_str().unwrap());
    ok(b.nook(&args));
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, pid_of(&b, &id));
    assert!(alive(pid));
}
