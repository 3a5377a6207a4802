//! install, upgrade, rollback, remove and list: each takes the app's lock, first puts
//! back a switch a killed command left half done, and changes `current` only by an
//! atomic rename; a new version must become ready under systemd within the timeout, or
//! the app is switched back and restarted on the version it had.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::store::{self, ConfigSource, Source, Version};
use super::{AppDir, AppError, Result};
use crate::systemd::NotifyMode;

/// app.json: what install was given, for every later command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppConfig {
    pub name: String,
    /// nook's --root for the unit's `nook run`.
    pub root: PathBuf,
    pub unit_dir: PathBuf,
    pub config: ConfigSource,
    pub vars: BTreeMap<String, String>,
    pub listen: Vec<String>,
    pub notify: NotifyMode,
    pub ready_cmd: Option<String>,
    pub keep: usize,
}

/// `nook app install`'s choices.
pub struct Install {
    pub bundle: PathBuf,
    /// The git revision, with a git config source.
    pub rev: Option<String>,
    pub timeout: Duration,
    pub app: AppConfig,
}

/// switch.json: a switch under way.
#[derive(Debug, Serialize, Deserialize)]
struct Switch {
    from: u64,
    to: u64,
    /// `previous` before the switch.
    previous: Option<u64>,
}

/// Write a file and fsync it (the switch marker is on disk before a link moves).
fn write_synced(p: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(p)?;
    f.write_all(data)?;
    f.sync_all()
}

fn say(app: &AppDir, msg: &str) {
    eprintln!("nook: app {}: {msg}", app.name);
}

fn read_config(app: &AppDir) -> Result<AppConfig> {
    let p = app.app_file();
    let text = std::fs::read_to_string(&p).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => AppError::NotInstalled {
            name: app.name.clone(),
            dir: app.dir.clone(),
        },
        _ => app.io("reading", &p)(e),
    })?;
    serde_json::from_str(&text).map_err(|e| app.refused(format!("{}: {e}", p.display())))
}

/// The unit's spec: its `nook run` always names `current`'s files.
fn unit_spec(app: &AppDir, c: &AppConfig) -> Result<crate::systemd::unit::UnitSpec> {
    let cur = app.current();
    let mut flags = vec![];
    if c.config != ConfigSource::None {
        flags.extend([
            "--config-dir".to_string(),
            cur.join("config").display().to_string(),
        ]);
    }
    for (k, v) in &c.vars {
        flags.extend(["--var".to_string(), format!("{k}={v}")]);
    }
    if let Some(cmd) = &c.ready_cmd {
        flags.extend(["--ready-cmd".to_string(), cmd.clone()]);
    }
    Ok(crate::systemd::unit::UnitSpec {
        name: c.name.clone(),
        nook: std::env::current_exe()
            .map_err(app.io("finding nook's own binary", Path::new("/proc/self/exe")))?,
        root: c.root.clone(),
        bundle: cur.join("bundle.tar"),
        listen: c.listen.clone(),
        notify: c.notify,
        run_flags: flags,
    })
}

fn systemctl(app: &AppDir, args: &[&str]) -> Result<String> {
    let fail = |why: String| AppError::Systemctl {
        name: app.name.clone(),
        args: args.join(" "),
        why,
    };
    let o = Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !o.status.success() {
        return Err(fail(String::from_utf8_lossy(&o.stderr).trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn unit(c: &AppConfig) -> String {
    format!("{}.service", c.name)
}

/// Restart the unit and wait until systemd calls it active (Type=notify: after READY=1)
/// or `timeout` passes; why not, otherwise.
fn restart_and_wait(
    app: &AppDir,
    c: &AppConfig,
    timeout: Duration,
) -> std::result::Result<(), String> {
    let u = unit(c);
    // A failed version's restarts count toward the unit's start limit: cleared, so the
    // version started now is judged on its own.
    let _ = systemctl(app, &["reset-failed", &u]);
    let mut child = Command::new("systemctl")
        .args(["restart", &u])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("running systemctl: {e}"))?;
    let end = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= end => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("not ready within {} s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for systemctl: {e}")),
        }
    };
    let show = |p: &str| systemctl(app, &["show", "-p", p, "--value", &u]).unwrap_or_default();
    if status.success() && show("ActiveState") == "active" {
        return Ok(());
    }
    // ExecMainCode is a CLD_* code: 1 exited, 2 killed, 3 dumped core.
    let main = match show("ExecMainCode").as_str() {
        "1" => format!("exited with status {}", show("ExecMainStatus")),
        "2" | "3" => format!("was killed by signal {}", show("ExecMainStatus")),
        _ => "did not run".to_string(),
    };
    Err(format!(
        "its start failed (systemd's result: {}; the main process {main})",
        show("Result")
    ))
}

/// A switch a killed command left: back to where it started.
fn recover(app: &AppDir, c: &AppConfig, timeout: Duration) -> Result<()> {
    let p = app.switch_file();
    let Ok(text) = std::fs::read_to_string(&p) else {
        return Ok(());
    };
    let Ok(sw) = serde_json::from_str::<Switch>(&text) else {
        let _ = std::fs::remove_file(&p);
        return Ok(());
    };
    say(
        app,
        &format!(
            "a switch from version {} to {} was interrupted; back on version {}",
            sw.from, sw.to, sw.from
        ),
    );
    app.set_link(&app.current(), Some(sw.from))?;
    app.set_link(&app.previous(), sw.previous)?;
    let _ = Version::mark(
        app,
        sw.to,
        "interrupted",
        Some("the command switching to it was killed"),
    );
    if let Err(why) = restart_and_wait(app, c, timeout) {
        say(
            app,
            &format!("version {} after the interrupted switch: {why}", sw.from),
        );
    }
    std::fs::remove_file(&p).map_err(app.io("removing", &p))?;
    Ok(())
}

/// Make `to` current (and `previous` `new_prev`), restart, wait; switched back on failure.
fn switch(
    app: &AppDir,
    c: &AppConfig,
    to: u64,
    new_prev: Option<u64>,
    timeout: Duration,
) -> Result<()> {
    let from = app
        .link(&app.current())
        .ok_or_else(|| app.refused("no current version"))?;
    let old_prev = app.link(&app.previous());
    let sw = Switch {
        from,
        to,
        previous: old_prev,
    };
    let p = app.switch_file();
    write_synced(&p, serde_json::to_string(&sw).expect("json").as_bytes())
        .map_err(app.io("writing", &p))?;
    super::sync_dir(&app.dir);
    crate::fault::point("app.switching");
    app.set_link(&app.previous(), new_prev)?;
    app.set_link(&app.current(), Some(to))?;
    crate::fault::point("app.switched");
    match restart_and_wait(app, c, timeout) {
        Ok(()) => {
            Version::mark(app, to, "ready", None)?;
            std::fs::remove_file(&p).map_err(app.io("removing", &p))?;
            say(app, &format!("version {to} is ready"));
            Ok(())
        }
        Err(why) => {
            say(
                app,
                &format!("version {to}: {why}; switching back to version {from}"),
            );
            Version::mark(app, to, "failed", Some(&why))?;
            app.set_link(&app.current(), Some(from))?;
            app.set_link(&app.previous(), old_prev)?;
            if let Err(again) = restart_and_wait(app, c, timeout) {
                say(
                    app,
                    &format!("version {from} after switching back: {again}"),
                );
            }
            std::fs::remove_file(&p).map_err(app.io("removing", &p))?;
            Err(AppError::RolledBack {
                name: app.name.clone(),
                to,
                back: from,
                why,
            })
        }
    }
}

/// Old versions beyond `keep`, never the current or previous one.
/// Old versions beyond `keep`, never the current or previous one; then the unpacked
/// bundles of those that nothing uses any more (store::evict).
fn prune(app: &AppDir, c: &AppConfig, keep: usize) {
    let all = store::versions(app);
    let pinned = [app.link(&app.current()), app.link(&app.previous())];
    let excess = all.len().saturating_sub(keep.max(2));
    let mut digests = vec![];
    for n in all
        .into_iter()
        .filter(|n| !pinned.contains(&Some(*n)))
        .take(excess)
    {
        if let Ok(v) = Version::read(app, n) {
            digests.push(v.bundle_digest);
        }
        store::remove_tree(&app.version(n));
        say(app, &format!("pruned version {n}"));
    }
    let apps = app.dir.parent().unwrap_or(Path::new("/"));
    for dir in store::evict(apps, &c.root, &digests) {
        say(
            app,
            &format!("removed the unpacked bundle {}", dir.display()),
        );
    }
}

pub fn install(apps: &Path, name: &str, i: Install) -> Result<()> {
    let app = AppDir::new(apps, name)?;
    if app.app_file().exists() {
        return Err(app.refused(format!(
            "already installed ({}); use `nook app upgrade`",
            app.dir.display()
        )));
    }
    for u in [unit(&i.app), format!("{name}.socket")] {
        let p = i.app.unit_dir.join(&u);
        if p.exists() {
            return Err(app.refused(format!(
                "{} already exists: nook does not replace a unit it did not write",
                p.display()
            )));
        }
    }
    if app.dir.exists() {
        // An install killed before it wrote app.json, or one still at work (then the
        // lock says so).
        drop(app.lock()?);
        say(&app, "removing what an interrupted install left");
        store::remove_tree(&app.dir);
    }
    std::fs::create_dir_all(&app.dir).map_err(app.io("making", &app.dir))?;
    let _lock = app.lock()?;
    let r = install_in(&app, &i);
    if r.is_err() {
        store::remove_tree(&app.dir);
    }
    r
}

/// The install proper, under the app's lock.
fn install_in(app: &AppDir, i: &Install) -> Result<()> {
    let c = &i.app;
    store::make(
        app,
        1,
        &Source {
            bundle: &i.bundle,
            config: &c.config,
            rev: i.rev.as_deref(),
            vars: &c.vars,
            root: &c.root,
        },
    )?;
    let spec = unit_spec(app, c)?;
    spec.check().map_err(|e| app.refused(e.to_string()))?;
    let p = app.app_file();
    std::fs::write(&p, serde_json::to_string_pretty(c).expect("json"))
        .map_err(app.io("writing", &p))?;
    app.set_link(&app.current(), Some(1))?;
    std::fs::create_dir_all(&c.unit_dir).map_err(app.io("making", &c.unit_dir))?;
    let files = spec
        .write(&c.unit_dir)
        .map_err(|e| app.refused(e.to_string()))?;
    let undo = |files: &[PathBuf]| {
        for u in [unit(c), format!("{}.socket", c.name)] {
            let _ = systemctl(app, &["disable", "--now", &u]);
        }
        for f in files {
            let _ = std::fs::remove_file(f);
        }
        let _ = systemctl(app, &["daemon-reload"]);
    };
    let runtime = c.unit_dir.starts_with("/run");
    let mut enable = vec!["enable"];
    if runtime {
        enable.push("--runtime");
    }
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    enable.extend(names.iter().map(String::as_str));
    let started = systemctl(app, &["daemon-reload"])
        .and_then(|_| systemctl(app, &enable))
        .and_then(|_| match c.listen.is_empty() {
            true => restart_and_wait(app, c, i.timeout)
                .map_err(|why| app.refused(format!("version 1 did not become ready: {why}"))),
            false => systemctl(app, &["start", &format!("{}.socket", c.name)]).map(|_| ()),
        });
    if let Err(e) = started {
        undo(&files);
        return Err(e);
    }
    Version::mark(app, 1, "ready", None)?;
    say(app, "installed version 1");
    Ok(())
}

/// `nook app upgrade NAME [NEW.tar] [--config-rev REV]`.
pub fn upgrade(
    apps: &Path,
    name: &str,
    bundle: Option<&Path>,
    rev: Option<&str>,
    timeout: Duration,
) -> Result<()> {
    let app = AppDir::new(apps, name)?;
    let c = read_config(&app)?;
    let _lock = app.lock()?;
    recover(&app, &c, timeout)?;
    if bundle.is_none() && rev.is_none() {
        return Err(app.refused("nothing to upgrade to: give a bundle tar or --config-rev"));
    }
    if rev.is_some() && !matches!(c.config, ConfigSource::Git { .. }) {
        return Err(app.refused("--config-rev: the app's config is not from git (--config-git)"));
    }
    let cur = app
        .link(&app.current())
        .ok_or_else(|| app.refused("no current version"))?;
    let cur_v = Version::read(&app, cur)?;
    let cur_tar = app.version(cur).join("bundle.tar");
    // A new bundle keeps the config revision; a new revision keeps the bundle.
    let keep_rev =
        matches!(c.config, ConfigSource::Git { .. }).then_some(cur_v.config_rev.as_str());
    let n = store::versions(&app).last().copied().unwrap_or(0) + 1;
    store::make(
        &app,
        n,
        &Source {
            bundle: bundle.unwrap_or(&cur_tar),
            config: &c.config,
            rev: rev.or(keep_rev),
            vars: &c.vars,
            root: &c.root,
        },
    )?;
    switch(&app, &c, n, Some(cur), timeout)?;
    prune(&app, &c, c.keep);
    Ok(())
}

/// `nook app rollback NAME`: back to the previous version.
pub fn rollback(apps: &Path, name: &str, timeout: Duration) -> Result<()> {
    let app = AppDir::new(apps, name)?;
    let c = read_config(&app)?;
    let _lock = app.lock()?;
    recover(&app, &c, timeout)?;
    let cur = app
        .link(&app.current())
        .ok_or_else(|| app.refused("no current version"))?;
    let prev = app
        .link(&app.previous())
        .ok_or_else(|| app.refused("no previous version to roll back to"))?;
    switch(&app, &c, prev, Some(cur), timeout)
}

/// `nook app remove NAME`: the units stopped and gone, the app's files gone.
pub fn remove(apps: &Path, name: &str) -> Result<()> {
    let app = AppDir::new(apps, name)?;
    let c = match read_config(&app) {
        Ok(c) => c,
        // An install killed before it wrote app.json: no units yet, only files.
        Err(AppError::NotInstalled { .. }) if app.dir.is_dir() => {
            drop(app.lock()?);
            store::remove_tree(&app.dir);
            say(&app, "removed what an interrupted install left");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let _lock = app.lock()?;
    let units = [unit(&c), format!("{}.socket", c.name)];
    for u in &units {
        let _ = systemctl(&app, &["disable", "--now", u]);
        let _ = std::fs::remove_file(c.unit_dir.join(u));
    }
    let _ = systemctl(&app, &["daemon-reload"]);
    store::remove_tree(&app.dir);
    say(&app, "removed");
    Ok(())
}

/// `nook app list`: each app with its current and previous version and unit state.
pub fn list(apps: &Path, json: bool) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(apps)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| super::check_name(n).is_ok())
        .collect();
    names.sort();
    let mut rows = vec![];
    for name in names {
        let app = AppDir::new(apps, &name)?;
        let Ok(c) = read_config(&app) else { continue };
        let versions: Vec<Version> = store::versions(&app)
            .into_iter()
            .filter_map(|n| Version::read(&app, n).ok())
            .collect();
        let state = Command::new("systemctl")
            .args(["show", "-p", "ActiveState", "--value", &unit(&c)])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        rows.push(serde_json::json!({
            "name": name,
            "state": state,
            "current": app.link(&app.current()),
            "previous": app.link(&app.previous()),
            "switching": app.switch_file().exists(),
            "versions": versions,
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<8} {:<8} VERSIONS",
        "NAME", "STATE", "CURRENT", "PREVIOUS"
    );
    for r in &rows {
        let v = |k: &str| {
            r[k].as_u64()
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:<20} {:<10} {:<8} {:<8}",
            r["name"].as_str().unwrap_or(""),
            r["state"].as_str().unwrap_or(""),
            v("current"),
            v("previous")
        );
        for ver in r["versions"].as_array().into_iter().flatten() {
            let digest = ver["bundle_digest"].as_str().unwrap_or("");
            let rev = ver["config_rev"].as_str().unwrap_or("");
            println!(
                "  {:>3} {} {:<10} bundle {} config {} {}",
                ver["n"],
                ver["created"].as_str().unwrap_or(""),
                ver["state"].as_str().unwrap_or(""),
                digest.get(..19).unwrap_or(digest),
                rev.get(..12).unwrap_or(rev),
                ver["why"]
                    .as_str()
                    .map(|w| format!("({w})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}
