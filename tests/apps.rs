//! `nook app` (issue 18): versions of an app under systemd. Bad input is refused before
//! anything exists (any root host); the life of an app (install, upgrade, a version
//! that never becomes ready rolled back, a config change from a git commit, rollback by
//! hand, a killed upgrade recovered, a busy app, remove) needs systemd as PID 1: the
//! guest of `make test-vm`.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{fails, text, Bundle, NOOK};

/// `nook --root R app --apps-dir A ARGS`.
fn app(b: &Bundle, apps: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(NOOK);
    c.arg("--root")
        .arg(&b.root)
        .args(["app", "--apps-dir"])
        .arg(apps)
        .args(args);
    c.output().expect("running nook app")
}

fn git(repo: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.email=t@nook", "-c", "user.name=t"])
        .args(args)
        .output()
        .expect("running git");
    assert!(o.status.success(), "git {args:?}: {}", text(&o.stderr));
    text(&o.stdout).trim().to_string()
}

/// A git repository whose one file is etc/httpd/greeting, committed; its path.
fn config_repo(dir: &Path, greeting: &str) -> PathBuf {
    let repo = dir.join("config.git");
    if !repo.exists() {
        std::fs::create_dir_all(repo.join("etc/httpd")).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
    }
    std::fs::write(repo.join("etc/httpd/greeting"), greeting).unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", greeting]);
    repo
}

#[test]
fn bad_input_is_refused_before_anything_exists() {
    if common::skip() || common::missing_tool("git", "package git") {
        return;
    }
    let b = Bundle::new("app-bad");
    let apps = b.dir.join("apps");
    let units = b.dir.join("units");
    let u = units.to_str().unwrap();
    let tar = b.tar();
    let t = tar.to_str().unwrap();
    let junk = b.dir.join("junk.tar");
    std::fs::write(&junk, "not a tar").unwrap();
    let repo = config_repo(&b.dir, "hi from ${HOSTNAME}\n");
    let r = repo.to_str().unwrap();
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(
        units.join("taken.service"),
        "[Service]\nExecStart=/bin/true\n",
    )
    .unwrap();
    let typo = b.dir.join("typo");
    std::fs::create_dir_all(typo.join("etc")).unwrap();
    std::fs::write(typo.join("etc/a.conf"), "ok\nport=${PORT\n").unwrap();
    for (args, want) in [
        (vec!["install", "web", junk.to_str().unwrap()], "junk.tar"),
        (vec!["install", "a/b", t], "a unit and container name"),
        (
            vec!["install", "web", t, "--var", "1X=2"],
            "template variable \"1X\"",
        ),
        (
            vec![
                "install",
                "web",
                t,
                "--config-git",
                r,
                "--config-rev",
                "nope",
            ],
            "revision \"nope\"",
        ),
        (
            vec!["install", "web", t, "--config-dir", typo.to_str().unwrap()],
            "a.conf:2",
        ),
        (
            vec!["install", "web", t, "--ready-cmd", "'open"],
            "single quote",
        ),
        (vec!["install", "taken", t], "taken.service already exists"),
        (vec!["upgrade", "web", t], "not installed"),
        (vec!["rollback", "web"], "not installed"),
    ] {
        let mut all = args.clone();
        all.extend(["--unit-dir", u]);
        if args[0] != "install" {
            all.truncate(args.len());
        }
        let err = fails(&app(&b, &apps, &all));
        assert!(err.contains(want), "{args:?}: {err}");
        let left: Vec<_> = std::fs::read_dir(&apps)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{args:?} left {left:?}");
        assert!(!units.join("web.service").exists(), "{args:?} wrote a unit");
        assert_eq!(
            std::fs::read_to_string(units.join("taken.service")).unwrap(),
            "[Service]\nExecStart=/bin/true\n"
        );
    }
}

#[test]
fn what_an_interrupted_install_left_is_removed_unless_it_is_at_work() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("app-half");
    let apps = b.dir.join("apps");
    // An install killed after it made the app's dir, before app.json.
    let dir = apps.join("web");
    std::fs::create_dir_all(dir.join("versions/1.tmp")).unwrap();
    {
        use std::os::fd::AsRawFd;
        let lock = std::fs::File::create(dir.join("lock")).unwrap();
        // SAFETY: flock on an fd owned by `lock`.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        let err = fails(&app(&b, &apps, &["remove", "web"]));
        assert!(err.contains("another `nook app` command"), "{err}");
        assert!(dir.join("versions/1.tmp").exists());
    }
    let o = app(&b, &apps, &["remove", "web"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!dir.exists());
}

fn systemd_runs() -> bool {
    if common::skip() {
        return false;
    }
    let pid1 = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    if pid1.trim() != "systemd" {
        eprintln!("skipping: systemd is not PID 1 here (make test-vm runs these in a guest)");
        return false;
    }
    !common::missing_tool("cc", "package gcc: builds the example httpd")
        && !common::missing_tool("git", "package git")
}

/// The example httpd's bundle tar with this hostname (`hostname`) and process.
fn httpd_tar(b: &Bundle, name: &str, hostname: &str, args: &[&str]) -> PathBuf {
    let httpd = b.rootfs.join("bin/httpd");
    if !httpd.exists() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("rootfs-examples/httpd/httpd.c");
        let o = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&httpd)
            .arg(&src)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    b.config(|c| {
        c["hostname"] = serde_json::json!(hostname);
        c["process"]["args"] = serde_json::json!(args);
    });
    let tar = b.tar();
    let named = b.dir.join(format!("{name}.tar"));
    std::fs::rename(tar, &named).unwrap();
    named
}

fn get(addr: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        match std::net::TcpStream::connect(addr) {
            Ok(mut c) => {
                c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
                let mut answer = String::new();
                let _ = c.read_to_string(&mut answer);
                return answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{addr}: {last}");
}

fn listing(b: &Bundle, apps: &Path) -> serde_json::Value {
    let o = app(b, apps, &["list", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0].clone()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    text(&o.stderr)
}

/// Removes the app (units and files) even when the test fails.
struct Installed<'a> {
    b: &'a Bundle,
    apps: PathBuf,
    name: String,
}

impl Drop for Installed<'_> {
    fn drop(&mut self) {
        let _ = app(self.b, &self.apps, &["remove", &self.name]);
    }
}

#[test]
fn an_app_is_upgraded_rolled_back_and_recovered() {
    if !systemd_runs() {
        return;
    }
    let b = Bundle::new("app-life");
    let apps = b.dir.join("apps");
    let name = format!("nook-app-{}", std::process::id());
    let one = httpd_tar(&b, "one", "one", &["/bin/httpd"]);
    let two = httpd_tar(&b, "two", "two", &["/bin/httpd"]);
    let broken = httpd_tar(&b, "broken", "three", &["/bin/no-such-httpd"]);
    let repo = config_repo(&b.dir, "A from ${HOSTNAME}\n");
    let port = common::etcd::free_port();
    let addr = format!("127.0.0.1:{port}");
    let _installed = Installed {
        b: &b,
        apps: apps.clone(),
        name: name.clone(),
    };
    ok(app(
        &b,
        &apps,
        &[
            "install",
            &name,
            one.to_str().unwrap(),
            "--config-git",
            &format!("file://{}", repo.display()),
            "--listen",
            &addr,
            "--unit-dir",
            "/run/systemd/system",
        ],
    ));
    assert_eq!(get(&addr), "A from one\n");
    let l = listing(&b, &apps);
    assert_eq!(
        (l["current"].as_u64(), l["state"].as_str()),
        (Some(1), Some("active")),
        "{l}"
    );

    // A new bundle: the new answer.
    ok(app(&b, &apps, &["upgrade", &name, two.to_str().unwrap()]));
    assert_eq!(get(&addr), "A from two\n");
    let l = listing(&b, &apps);
    assert_eq!(
        (l["current"].as_u64(), l["previous"].as_u64()),
        (Some(2), Some(1)),
        "{l}"
    );

    // A version that never becomes ready: rolled back, the old answer, and why.
    let err = fails(&app(
        &b,
        &apps,
        &[
            "upgrade",
            &name,
            broken.to_str().unwrap(),
            "--timeout",
            "20",
        ],
    ));
    assert!(
        err.contains("did not become ready") && err.contains("rolled back to version 2"),
        "{err}"
    );
    assert_eq!(get(&addr), "A from two\n");
    let l = listing(&b, &apps);
    assert_eq!(l["current"].as_u64(), Some(2), "{l}");
    let v3 = &l["versions"][2];
    assert_eq!(
        (v3["n"].as_u64(), v3["state"].as_str()),
        (Some(3), Some("failed")),
        "{l}"
    );
    assert!(v3["why"].as_str().unwrap().contains("start failed"), "{l}");

    // Bad input to an upgrade: refused before anything changes (no new version, the
    // running one untouched).
    let junk = b.dir.join("junk.tar");
    std::fs::write(&junk, "not a tar").unwrap();
    let before = listing(&b, &apps)["versions"].as_array().unwrap().len();
    for (args, want) in [
        (vec!["upgrade", &name, junk.to_str().unwrap()], "junk.tar"),
        (
            vec!["upgrade", &name, "--config-rev", "no-such-rev"],
            "no-such-rev",
        ),
    ] {
        let err = fails(&app(&b, &apps, &args));
        assert!(err.contains(want), "{args:?}: {err}");
        let l = listing(&b, &apps);
        assert_eq!(
            l["versions"].as_array().unwrap().len(),
            before,
            "{args:?}: {l}"
        );
        assert_eq!(l["current"].as_u64(), Some(2), "{args:?}: {l}");
        assert_eq!(get(&addr), "A from two\n", "{args:?}");
    }

    // A config change: a new commit, ${HOSTNAME} expanded.
    config_repo(&b.dir, "B from ${HOSTNAME}\n");
    let head = git(&repo, &["rev-parse", "HEAD"]);
    ok(app(&b, &apps, &["upgrade", &name, "--config-rev", &head]));
    assert_eq!(get(&addr), "B from two\n");
    let l = listing(&b, &apps);
    assert_eq!(
        l["versions"].as_array().unwrap().last().unwrap()["config_rev"],
        head.as_str()
    );

    // Rollback by hand: the version before (A, two).
    ok(app(&b, &apps, &["rollback", &name]));
    assert_eq!(get(&addr), "A from two\n");

    // Another command holds the app: refused at once, naming why.
    {
        use std::os::fd::AsRawFd;
        let lock = std::fs::File::open(apps.join(&name).join("lock")).unwrap();
        // SAFETY: flock on an fd owned by `lock`.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        let err = fails(&app(&b, &apps, &["rollback", &name]));
        assert!(err.contains("another `nook app` command"), "{err}");
    }

    // nook killed before and just after switching `current`: the running version is
    // untouched, and the next command puts the app back on the version it ran, then
    // does its own work.
    let mut before = "A from two\n";
    for (fault, tar, after) in [
        ("app.switching", &one, "A from one\n"),
        ("app.switched", &two, "A from two\n"),
    ] {
        let mut c = Command::new(NOOK);
        c.arg("--root")
            .arg(&b.root)
            .args(["app", "--apps-dir"])
            .arg(&apps);
        c.args(["upgrade", &name, tar.to_str().unwrap()]);
        c.env("NOOK_FAULT_AT", fault);
        let o = c.output().unwrap();
        assert!(
            !o.status.success(),
            "{fault} did not fire: {}",
            text(&o.stderr)
        );
        assert!(apps.join(&name).join("switch.json").exists(), "{fault}");
        assert_eq!(get(&addr), before, "{fault}: the running version changed");
        let out = ok(app(&b, &apps, &["upgrade", &name, tar.to_str().unwrap()]));
        assert!(out.contains("was interrupted"), "{fault}: {out}");
        assert_eq!(get(&addr), after, "{fault}");
        before = after;
    }
    let l = listing(&b, &apps);
    assert_eq!(l["switching"], false, "{l}");
    assert!(
        l["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["state"] == "interrupted"),
        "{l}"
    );
    // The never-ready version (3) was pruned, and with it its unpacked bundle, which no
    // other version uses; the current version's stays.
    let cache = |tar: &Path| {
        use sha2::Digest;
        let hex: String = sha2::Sha256::digest(std::fs::read(tar).unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        b.root.join("bundles").join(hex)
    };
    assert!(!cache(&broken).exists(), "{}", cache(&broken).display());
    assert!(cache(&two).is_dir(), "{}", cache(&two).display());
    // --keep 3: never more than three versions, and never the current or previous one.
    let kept: Vec<u64> = l["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["n"].as_u64())
        .collect();
    assert!(kept.len() <= 3, "{l}");
    for k in ["current", "previous"] {
        assert!(kept.contains(&l[k].as_u64().unwrap()), "{l}");
    }

    ok(app(&b, &apps, &["remove", &name]));
    assert!(!apps.join(&name).exists());
    assert!(!Path::new("/run/systemd/system")
        .join(format!("{name}.service"))
        .exists());
}
