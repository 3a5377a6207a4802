//! Service discovery (issue 17) against a real etcd (Debian's etcd-server, started by
//! each test on 127.0.0.1 with a temporary data dir, killed after): `run --announce`
//! puts the instance's key only once the app is ready, keeps it under a lease, takes it
//! away when the app stops (or within the TTL when nook dies), puts it back when etcd
//! comes back; `nook watch` follows the set.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::etcd::{free_port, Etcd};
use common::{fails, ok, text, wait_until, Bundle, Spawned, NOOK};

/// `nook run --announce` in the foreground, spawned (the bundle's process as set).
fn announced(b: &Bundle, e: &Etcd, id: &str, extra: &[&str]) -> Spawned {
    let mut args = vec![
        "run",
        id,
        "--bundle",
        b.path_str(),
        "--announce",
        &e.url,
        "--service",
        "web",
        "--port",
        "8080",
    ];
    args.extend_from_slice(extra);
    b.spawn(b.command(&args))
}

/// The container's row in `nook list --format json`.
fn listed(b: &Bundle, id: &str) -> serde_json::Value {
    let list: serde_json::Value =
        serde_json::from_slice(&ok(b.nook(&["list", "--format", "json"])).stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .expect("the container in list")
        .clone()
}

/// The app gets ready 2 s after `started`: nothing in etcd at 1 s (when the machine is
/// not so slow that 1 s came late), then its one instance.
fn announced_only_once_ready(e: &Etcd, started: Instant, run: &Spawned) {
    std::thread::sleep(Duration::from_millis(1000));
    if started.elapsed() < Duration::from_millis(1800) {
        assert!(e.instances("web").is_empty(), "announced before ready");
    }
    assert!(
        wait_until(Duration::from_secs(15), || e.instances("web").len() == 1),
        "never announced: {}",
        run.stderr()
    );
}

fn key(id: &str) -> String {
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    format!("/nook/services/web/{host}/{id}")
}

#[test]
fn the_key_appears_once_ready_and_goes_when_the_app_stops() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("disc-ready");
    let Some(e) = Etcd::start(&b) else { return };
    let id = b.id();
    let started = Instant::now();
    b.args(&["notify", "sleep:2", "READY=1", "wait-signal"]);
    let mut run = announced(&b, &e, &id, &[]);
    announced_only_once_ready(&e, started, &run);
    let inst = e.instances("web");
    assert_eq!(inst.len(), 1);
    assert_eq!(inst[0].0, key(&id));
    let v = &inst[0].1;
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["ports"], serde_json::json!([8080]));
    assert_eq!(v["service"], "web");
    assert!(v["bundle_digest"].as_str().unwrap().starts_with("sha256:"));
    // nook list --format json shows the announce state.
    let row = listed(&b, &id);
    assert_eq!(row["announce"]["state"], "announced", "{row}");
    assert_eq!(row["announce"]["key"], key(&id).as_str());
    assert!(row["announce"]["lease"].is_string(), "{row}");
    // systemctl stop: SIGTERM to nook. The key goes at once (revoked), well before the
    // 10 s TTL.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.pid()),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    let t = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || e.instances("web").is_empty()),
        "still announced after stop"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    run.wait_within(common::TIMEOUT).expect("run ended");
    b.assert_clean(&id);
}

#[test]
fn a_dead_instance_goes_within_the_ttl_and_etcd_coming_back_gets_it_again() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("disc-ttl");
    let Some(mut e) = Etcd::start(&b) else { return };
    let id = b.id();
    b.args(&["sleep", "60"]);
    let mut run = announced(&b, &e, &id, &["--ttl", "3", "--notify", "exec"]);
    assert!(
        wait_until(Duration::from_secs(10), || !e.instances("web").is_empty()),
        "never announced: {}",
        run.stderr()
    );
    // etcd replaced by an empty one: the lease is unknown there; nook puts the key back.
    e.restart(true);
    assert!(
        wait_until(Duration::from_secs(15), || !e.instances("web").is_empty()),
        "not announced again after etcd came back: {}",
        run.stderr()
    );
    // nook and the app killed outright: nobody revokes; the lease runs out.
    let pid = b.state(&id)["pid"].as_i64().unwrap() as i32;
    for p in [run.pid(), pid] {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), nix::sys::signal::SIGKILL);
    }
    let t = Instant::now();
    assert!(
        wait_until(Duration::from_secs(8), || e.instances("web").is_empty()),
        "the key outlived its TTL"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "gone too soon: revoked?"
    );
    run.wait_within(common::TIMEOUT);
    ok(b.nook(&["delete", "--force", &id]));
}

#[test]
fn watch_follows_the_instances_and_runs_its_hook() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("disc-watch");
    let Some(e) = Etcd::start(&b) else { return };
    let seen = b.dir.join("hook.out");
    // The upstream example of rootfs-examples, rendered for each set; the hook keeps a
    // copy of each rendering next to the set it was given.
    let tmpl =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-examples/upstream/upstream.conf.tmpl");
    let conf = b.dir.join("upstream.conf");
    let renders = b.dir.join("renders.out");
    let mut watch = b.spawn({
        let mut c = Command::new(NOOK);
        c.args(["watch", &e.url, "web", "--render"])
            .arg(&tmpl)
            .arg("--output")
            .arg(&conf)
            .args(["--each", "    server ${ADDRESS}:${PORT}; # ${ID}", "--exec"])
            .arg(format!(
                "cat >> {}; cat {} >> {}",
                seen.display(),
                conf.display(),
                renders.display()
            ))
            .stdin(Stdio::null());
        c
    });
    assert!(
        watch.wait_stdout("[]", Duration::from_secs(10)),
        "no empty set first"
    );
    let (a, c) = (b.id(), b.id());
    // Apps that handle SIGTERM (a pid namespace's init ignores it otherwise); the
    // config is written once, before either run reads it.
    b.args(&["notify", "READY=1", "wait-signal"]);
    let mut ra = announced(&b, &e, &a, &[]);
    let mut rc = announced(&b, &e, &c, &[]);
    let two = |out: &str| {
        out.lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.as_array().map(|a| a.len()))
                == Some(2)
        })
    };
    assert!(
        wait_until(Duration::from_secs(15), || two(&watch.stdout())),
        "watch never showed both: {}",
        watch.stdout()
    );
    // The hook ran after the file for that set was in place.
    let both = |t: &str| {
        t.contains("upstream web {\n")
            && t.contains(&format!(":8080; # {a}\n"))
            && t.contains(&format!(":8080; # {c}\n"))
    };
    assert!(
        wait_until(Duration::from_secs(10), || both(
            &std::fs::read_to_string(&renders).unwrap_or_default()
        )),
        "{:?}",
        std::fs::read_to_string(&renders)
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ra.pid()),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    ra.wait_within(common::TIMEOUT);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let out = watch.stdout();
            let last = out.lines().last().unwrap_or("");
            last.contains(&c) && !last.contains(&a)
        }),
        "watch did not follow the stop: {}",
        watch.stdout()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(rc.pid()),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    rc.wait_within(common::TIMEOUT);
    assert!(wait_until(Duration::from_secs(10), || watch
        .stdout()
        .lines()
        .last()
        == Some("[]")));
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(&conf)
            .unwrap_or_default()
            .contains("0 instance(s).\n# A load")),
        "{:?}",
        std::fs::read_to_string(&conf)
    );
    // Each set is printed, then handed to the hook: the hook's copy follows shortly.
    let same = || {
        let hook = std::fs::read_to_string(&seen).unwrap_or_default();
        hook.lines().eq(watch.stdout().lines())
    };
    assert!(
        wait_until(Duration::from_secs(10), same),
        "the hook did not see every set: {:?} vs {:?}",
        std::fs::read_to_string(&seen),
        watch.stdout()
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watch.pid()),
        nix::sys::signal::SIGKILL,
    );
    watch.wait_within(common::TIMEOUT);
}

#[test]
fn bad_announce_input_is_refused_before_anything_is_made() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("disc-bad");
    b.args(&["exit", "0"]);
    for (args, want) in [
        (
            vec!["--announce", "http://127.0.0.1:2379", "--service", "a/b"],
            "no '/'",
        ),
        (
            vec![
                "--announce",
                "http://127.0.0.1:2379",
                "--service",
                "web",
                "--ttl",
                "1",
            ],
            "at least 2",
        ),
        (
            vec!["--announce", "127.0.0.1:2379", "--service", "web"],
            "not http://HOST:PORT",
        ),
        (
            vec![
                "--announce",
                "http://127.0.0.1:2379",
                "--service",
                "web",
                "-d",
            ],
            "drop -d",
        ),
        (
            vec!["--ready-cmd", "test -e '/x"],
            "single quote is not closed",
        ),
        (vec!["--ready-cmd", "  "], "no command"),
        (
            vec!["--ready-cmd", "true", "--notify", "exec"],
            "--ready-cmd with --notify=exec",
        ),
        (vec!["--ready-cmd", "true", "-d"], "drop -d"),
    ] {
        let id = b.id();
        let mut all = vec!["run", id.as_str(), "--bundle", b.path_str()];
        all.extend(args.iter().copied());
        let err = fails(&b.nook(&all));
        assert!(err.contains(want), "{args:?}: {err}");
        b.assert_clean(&id);
    }
}

#[test]
fn an_unreachable_etcd_never_stops_the_app() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("disc-down");
    b.args(&["sleep", "2"]);
    let id = b.id();
    let port = free_port();
    let o = b.nook(&[
        "run",
        &id,
        "--bundle",
        b.path_str(),
        "--announce",
        &format!("http://127.0.0.1:{port}"),
        "--service",
        "web",
        "--notify",
        "exec",
    ]);
    let err = text(&o.stderr);
    assert!(o.status.success(), "the app's run failed: {err}");
    assert!(
        err.contains("retrying") && err.contains(&port.to_string()),
        "{err}"
    );
    b.assert_clean(&id);
}

#[test]
fn the_ready_cmd_gates_the_key_and_a_failing_check_withdraws_it() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("disc-readycmd");
    let Some(e) = Etcd::start(&b) else { return };
    let id = b.id();
    // Ready (for the check) 2 s after the start; the shell, pid 1, is ended with KILL.
    b.sh("sleep 2; echo > /dev/shm/ready; exec sleep 1000");
    let started = Instant::now();
    let check = ["--ready-cmd", "/bin/busybox test -e /dev/shm/ready"];
    let mut run = announced(&b, &e, &id, &check);
    announced_only_once_ready(&e, started, &run);
    // The check starts failing: out of etcd (within its 5 s period), and listed so.
    ok(b.nook(&["exec", &id, "--", "/bin/busybox", "rm", "/dev/shm/ready"]));
    assert!(
        wait_until(Duration::from_secs(15), || e.instances("web").is_empty()),
        "still announced with a failing check: {}",
        run.stderr()
    );
    let row = listed(&b, &id);
    assert_eq!(row["announce"]["state"], "waiting", "{row}");
    assert!(
        run.stderr().contains("failed: exit status 1"),
        "{}",
        run.stderr()
    );
    // Passing again: back in.
    ok(b.nook(&["exec", &id, "--", "/bin/busybox", "touch", "/dev/shm/ready"]));
    assert!(
        wait_until(Duration::from_secs(15), || e.instances("web").len() == 1),
        "not announced again: {}",
        run.stderr()
    );
    ok(b.nook(&["kill", &id, "KILL"]));
    run.wait_within(common::TIMEOUT).expect("run ended");
    assert!(
        e.instances("web").is_empty(),
        "announced after the app died"
    );
    b.assert_clean(&id);
}

#[test]
fn an_etcd_that_refuses_the_lease_is_reported_and_the_app_runs_on() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("disc-refused");
    let Some(e) = Etcd::start(&b) else { return };
    b.args(&["sleep", "2"]);
    let id = b.id();
    // Past etcd's longest lease (9e9 s): it answers, with a refusal.
    let flags = ["--ttl", "9000000001", "--notify", "exec"];
    let o = announced(&b, &e, &id, &flags)
        .output_within(common::TIMEOUT)
        .expect("nook run timed out");
    let err = text(&o.stderr);
    assert!(o.status.success(), "the app's run failed: {err}");
    assert!(err.contains("too large lease TTL"), "{err}");
    assert!(e.instances("web").is_empty());
    b.assert_clean(&id);
}

#[test]
fn stopping_1_withdraws_the_key_while_the_app_still_runs() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("disc-stopping");
    let Some(e) = Etcd::start(&b) else { return };
    let id = b.id();
    b.args(&["notify", "READY=1", "sleep:3", "STOPPING=1", "wait-signal"]);
    let mut run = announced(&b, &e, &id, &[]);
    assert!(
        wait_until(Duration::from_secs(15), || e.instances("web").len() == 1),
        "never announced: {}",
        run.stderr()
    );
    // STOPPING=1 (3 s after READY=1): out of etcd, the app still running.
    assert!(
        wait_until(Duration::from_secs(15), || e.instances("web").is_empty()),
        "still announced after STOPPING=1: {}",
        run.stderr()
    );
    let pid = b.state(&id)["pid"].as_i64().unwrap() as i32;
    assert!(common::alive(pid), "the app is gone: the key went with it");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(run.pid()),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    run.wait_within(common::TIMEOUT).expect("run ended");
    b.assert_clean(&id);
}
