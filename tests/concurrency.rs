//! Concurrency: many nook commands racing on one container never corrupt its state or
//! report success for something that did not happen; many runs of one new bundle tar
//! unpack it once and all start.
//!
//! Needs root; skipped with a message otherwise.

mod common;

use std::process::Output;

use serde_json::Value;

use common::{ok, text, Bundle};

/// 50 commands at once on one created container: start, state, pause, resume, kill
/// (SIGCONT, harmless) and delete, 5 rounds.
#[test]
fn fifty_racing_commands_on_one_id_keep_its_state_whole() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("race-ops");
    b.args(&["sleep", "60"]);
    for round in 0..5 {
        let id = b.id();
        b.create(&id);
        let mut cmds: Vec<Vec<&str>> = vec![];
        for i in 0..50 {
            cmds.push(match i % 10 {
                0 | 1 => vec!["start", &id],
                2..=4 => vec!["state", &id],
                5 => vec!["pause", &id],
                6 => vec!["resume", &id],
                7 | 8 => vec!["kill", &id, "CONT"],
                _ => vec!["delete", &id],
            });
        }
        let spawned: Vec<_> = cmds
            .iter()
            .map(|args| (args.clone(), b.spawn(b.command(args))))
            .collect();
        let outs: Vec<(Vec<&str>, Output)> = spawned
            .into_iter()
            .map(|(args, mut s)| {
                let o = s.output_within(common::TIMEOUT);
                (args.clone(), o.unwrap_or_else(|| panic!("{args:?} hung")))
            })
            .collect();
        let won = |cmd: &str| {
            outs.iter()
                .filter(|(a, o)| a[0] == cmd && o.status.success())
                .count()
        };
        let ctx = format!("round {round}");
        assert!(won("start") <= 1, "{ctx}: two starts succeeded");
        assert!(won("delete") <= 1, "{ctx}: two deletes succeeded");
        for (args, o) in &outs {
            let err = text(&o.stderr);
            // No command panics, and every failure says why in a line of nook's.
            assert!(!err.contains("panicked"), "{ctx}: {args:?}: {err}");
            if !o.status.success() {
                assert!(
                    err.contains("nook: "),
                    "{ctx}: {args:?} failed silently: {err}"
                );
            }
            if args[0] == "state" && o.status.success() {
                let v: Value = serde_json::from_slice(&o.stdout)
                    .unwrap_or_else(|e| panic!("{ctx}: state printed no JSON ({e})"));
                let s = v["status"].as_str().unwrap_or_default();
                assert!(
                    ["created", "running", "paused", "stopped"].contains(&s),
                    "{ctx}: status {s:?}"
                );
            }
        }
        if won("delete") == 1 {
            // A successful delete took everything; a later command on the id found nothing.
            b.assert_clean(&id);
        } else {
            // The state is whole and agrees with what succeeded.
            let v = b.state(&id);
            let s = v["status"].as_str().unwrap();
            if won("start") == 1 {
                assert!(
                    ["running", "paused"].contains(&s),
                    "{ctx}: started, but {s}"
                );
            } else {
                assert_eq!(s, "created", "{ctx}: no start succeeded, but {s}");
            }
            ok(b.nook(&["delete", "--force", &id]));
            b.assert_clean(&id);
        }
    }
}

/// 10 creates of one id at once: one gets it, the others are told it exists, and the
/// winner's container is whole.
#[test]
fn racing_creates_of_one_id_give_it_to_one() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("race-create");
    b.args(&["sleep", "60"]);
    for round in 0..5 {
        let id = b.id();
        let spawned: Vec<_> = (0..10)
            .map(|_| b.spawn(b.command(&["create", &id, "--bundle", b.path_str()])))
            .collect();
        let outs: Vec<Output> = spawned
            .into_iter()
            .map(|mut s| s.output_within(common::TIMEOUT).expect("create hung"))
            .collect();
        let won = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(won, 1, "round {round}: {won} creates of one id succeeded");
        for o in outs.iter().filter(|o| !o.status.success()) {
            let err = text(&o.stderr);
            assert!(err.contains("already exists"), "round {round}: {err}");
        }
        assert_eq!(b.status(&id).as_deref(), Some("created"), "round {round}");
        ok(b.nook(&["delete", "--force", &id]));
        b.assert_clean(&id);
    }
}

/// 20 runs at once of one bundle tar nook has never seen: one unpack, 20 containers.
#[test]
fn twenty_runs_of_one_new_tar_unpack_it_once_and_all_start() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("race-tar");
    b.args(&["hello"]);
    let tar = b.tar();
    let runs: Vec<_> = (0..20)
        .map(|_| {
            let id = b.id();
            b.spawn(b.command(&["run", &id, "--bundle", tar.to_str().unwrap()]))
        })
        .collect();
    for mut r in runs {
        let out = ok(r.output_within(common::TIMEOUT).expect("run timed out"));
        assert!(text(&out.stdout).contains("hello from probe"));
    }
    let mut entries: Vec<String> = std::fs::read_dir(b.root.join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    // One unpacked bundle, the index; no temp dir of a racer left.
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(entries.contains(&"index".to_string()), "{entries:?}");
}
