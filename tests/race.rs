//! Concurrent commands on one container id: exactly one create wins, and state,
//! kill and delete racing each other never corrupt or leak anything.

mod common;

use std::process::Output;
use std::sync::Barrier;
use std::time::Duration;

use common::{alive, ok, text, wait_until, Bundle};
use serde_json::Value;

/// Run `f` on `n` threads released at the same moment; collect what they return.
fn at_once<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let gate = Barrier::new(n);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let (gate, f) = (&gate, &f);
                s.spawn(move || {
                    gate.wait();
                    f(i)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn concurrent_creates_of_one_id_have_one_winner() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("race-create");
    b.args(&["sleep", "60"]);
    let id = b.id();
    let outs: Vec<Output> = at_once(8, |_| b.nook(&["create", &id, "--bundle", b.path_str()]));
    let winners = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(winners, 1, "{} creates succeeded", winners);
    for o in outs.iter().filter(|o| !o.status.success()) {
        let err = text(&o.stderr);
        assert!(err.contains("already exists"), "loser said: {err}");
    }
    let st = b.state(&id);
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap() as i32;
    assert!(alive(pid));
    assert_eq!(
        b.processes(),
        vec![pid],
        "more than the winner's init is left"
    );
    for d in common::cgroup_dirs(&id) {
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap();
        assert_eq!(procs.trim(), pid.to_string(), "{}", d.display());
    }
}

/// What one racing thread may see from `args`: success, or one of the expected errors.
fn acceptable(args: &[&str], o: &Output) {
    if o.status.success() {
        if args[0] == "state" {
            let v: Value = serde_json::from_slice(&o.stdout)
                .unwrap_or_else(|e| panic!("state printed bad JSON ({e}): {}", text(&o.stdout)));
            let s = v["status"].as_str().unwrap_or_default();
            assert!(["running", "stopped"].contains(&s), "status {s}");
        }
        return;
    }
    let err = text(&o.stderr);
    let fine = ["does not exist", "not running", "stopped"];
    assert!(fine.iter().any(|f| err.contains(f)), "{args:?}: {err}");
}

#[test]
fn concurrent_state_kill_delete_do_not_corrupt() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("race-ops");
    b.args(&["sleep", "60"]);
    for _round in 0..3 {
        let id = b.id();
        b.create(&id);
        ok(b.nook(&["start", &id]));
        let pid = b.state(&id)["pid"].as_i64().unwrap() as i32;
        at_once(8, |i| {
            let args: &[&str] = match i {
                0 | 1 => &["kill", &id, "KILL"],
                2 | 3 => &["delete", "--force", &id],
                _ => &["state", &id],
            };
            for _ in 0..10 {
                acceptable(args, &b.nook(args));
            }
        });
        let err = text(&b.nook(&["state", &id]).stderr);
        assert!(err.contains("does not exist"), "state after delete: {err}");
        assert!(wait_until(Duration::from_secs(5), || !alive(pid)));
        b.assert_clean(&id);
    }
}

#[test]
fn concurrent_runs_with_distinct_ids() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("race-runs");
    b.args(&["exit", "4"]);
    let ids: Vec<String> = (0..8).map(|_| b.id()).collect();
    let outs = at_once(8, |i| b.nook(&["run", &ids[i], "--bundle", b.path_str()]));
    for (id, o) in ids.iter().zip(&outs) {
        assert_eq!(common::code(o), 4, "{id}: {}", text(&o.stderr));
        b.assert_clean(id);
    }
}
