//! Making a version: the bundle tar copied in and checked (the safe unpack, into the
//! same cache `nook run` uses, and its config.json), the config taken from a directory
//! or a git revision, its templates rendered once as a check, all of it read-only, and
//! `version.json`. Made in `versions/N.tmp` and renamed into place: a version that
//! fails any check leaves nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AppDir, AppError, Result};

/// Where an app's config comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ConfigSource {
    None,
    Dir { path: PathBuf },
    Git { repo: String },
}

/// version.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version {
    pub n: u64,
    pub bundle_digest: String,
    /// The git commit of the config, or "dir" / "none".
    pub config_rev: String,
    pub created: String,
    /// new, ready, failed, interrupted.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl Version {
    pub fn read(app: &AppDir, n: u64) -> Result<Version> {
        let p = app.version(n).join("version.json");
        let text = std::fs::read_to_string(&p).map_err(app.io("reading", &p))?;
        serde_json::from_str(&text).map_err(|e| app.refused(format!("{}: {e}", p.display())))
    }

    /// Record a new state (and why) of version n.
    pub fn mark(app: &AppDir, n: u64, state: &str, why: Option<&str>) -> Result<()> {
        let mut v = Version::read(app, n)?;
        v.state = state.to_string();
        v.why = why.map(str::to_string);
        v.write(app, &app.version(n))
    }

    fn write(&self, app: &AppDir, dir: &Path) -> Result<()> {
        let p = dir.join("version.json");
        let tmp = dir.join("version.json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(self).expect("json"))
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(app.io("writing", &p))
    }
}

/// What a new version is made from.
pub struct Source<'a> {
    pub bundle: &'a Path,
    pub config: &'a ConfigSource,
    /// The git revision (with a git config source).
    pub rev: Option<&'a str>,
    pub vars: &'a BTreeMap<String, String>,
    /// nook's --root, whose bundle cache the unit's `nook run` uses.
    pub root: &'a Path,
}

/// The versions there are, oldest first.
pub fn versions(app: &AppDir) -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir(app.versions())
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

/// Make version `n` from `src`.
pub fn make(app: &AppDir, n: u64, src: &Source) -> Result<Version> {
    let versions = app.versions();
    std::fs::create_dir_all(&versions).map_err(app.io("making", &versions))?;
    let tmp = versions.join(format!("{n}.tmp"));
    remove_tree(&tmp);
    let made = fill(app, n, src, &tmp);
    if made.is_err() {
        remove_tree(&tmp);
        return made;
    }
    let dir = app.version(n);
    std::fs::rename(&tmp, &dir).map_err(|e| {
        remove_tree(&tmp);
        app.io("moving into place", &dir)(e)
    })?;
    super::sync_dir(&versions);
    made
}

fn fill(app: &AppDir, n: u64, src: &Source, tmp: &Path) -> Result<Version> {
    std::fs::create_dir(tmp).map_err(app.io("making", tmp))?;
    let tar = tmp.join("bundle.tar");
    std::fs::copy(src.bundle, &tar).map_err(app.io("copying the bundle", src.bundle))?;
    let bundle = |source| AppError::Bundle {
        name: app.name.clone(),
        what: format!("bundle {}", src.bundle.display()),
        source,
    };
    let prepared = crate::bundle::unpack::prepare_bundle(src.root, &tar, &Default::default())
        .map_err(bundle)?;
    let digest = prepared.digest.clone().ok_or_else(|| {
        app.refused(format!(
            "{}: a bundle tar is needed, not a directory",
            src.bundle.display()
        ))
    })?;
    let cfg = crate::spec::load(&prepared.dir).map_err(|source| AppError::Spec {
        name: app.name.clone(),
        source,
    })?;
    let config = tmp.join("config");
    let rev = match src.config {
        ConfigSource::None => "none".to_string(),
        ConfigSource::Dir { path } => {
            copy_config(app, path, &config)?;
            "dir".to_string()
        }
        ConfigSource::Git { repo } => {
            super::git::checkout(repo, src.rev, &config).map_err(|why| AppError::Git {
                name: app.name.clone(),
                repo: repo.clone(),
                why,
            })?
        }
    };
    if config.exists() {
        check_templates(app, &config, &cfg, src.vars)?;
        read_only(&config);
    }
    let v = Version {
        n,
        bundle_digest: format!("sha256:{digest}"),
        config_rev: rev,
        created: crate::state::now_rfc3339(),
        state: "new".into(),
        why: None,
    };
    v.write(app, tmp)?;
    Ok(v)
}

/// A config directory's files, copied (the template reader refuses links and devices).
fn copy_config(app: &AppDir, from: &Path, to: &Path) -> Result<()> {
    let bundle = |source| AppError::Bundle {
        name: app.name.clone(),
        what: format!("--config-dir {}", from.display()),
        source,
    };
    let templates = crate::bundle::template::read_dir(from, true).map_err(bundle)?;
    std::fs::create_dir(to).map_err(app.io("making", to))?;
    for t in templates {
        let dst = to.join(&t.rel);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(app.io("making", parent))?;
        }
        std::fs::write(&dst, &t.text).map_err(app.io("writing", &dst))?;
    }
    Ok(())
}

/// Render every template once, as the app's `nook run` will: an unknown macro is an
/// error now (naming the file and line), not at the unit's next start.
fn check_templates(
    app: &AppDir,
    config: &Path,
    cfg: &crate::spec::Config,
    vars: &BTreeMap<String, String>,
) -> Result<()> {
    let hostname = cfg
        .spec
        .hostname()
        .clone()
        .unwrap_or_else(super::super::discovery::hostname);
    let v = crate::bundle::template::Vars::new(&hostname, &app.name, vars);
    let err = |source| AppError::Bundle {
        name: app.name.clone(),
        what: "config templates".into(),
        source,
    };
    for t in crate::bundle::template::read_dir(config, true).map_err(err)? {
        crate::bundle::template::render(&t, &v).map_err(err)?;
    }
    Ok(())
}

/// Files 0444 and directories 0555: a version's config is never edited in place.
fn read_only(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => read_only(&p),
            Ok(t) if t.is_file() => {
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o444));
            }
            _ => {}
        }
    }
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555));
}

/// Remove from the bundle cache under `root` the unpacked bundles of these digests
/// ("sha256:<hex>") that no version of any app under `apps` names and no container under
/// `root` runs from (its state's bundle); the dirs removed. A cache entry is only ever
/// a copy: a later `nook run` of the same tar unpacks it again.
pub fn evict(apps: &Path, root: &Path, digests: &[String]) -> Vec<PathBuf> {
    let mut named = std::collections::HashSet::new();
    for app in std::fs::read_dir(apps).into_iter().flatten().flatten() {
        let Ok(a) = AppDir::new(apps, &app.file_name().to_string_lossy()) else {
            continue;
        };
        for n in versions(&a) {
            if let Ok(v) = Version::read(&a, n) {
                named.insert(v.bundle_digest);
            }
        }
    }
    let mut running = std::collections::HashSet::new();
    for c in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let state = std::fs::read_to_string(c.path().join("state.json")).unwrap_or_default();
        if let Some(b) = serde_json::from_str::<serde_json::Value>(&state)
            .ok()
            .and_then(|v| v["bundle"].as_str().map(PathBuf::from))
        {
            running.insert(b);
        }
    }
    let mut removed = vec![];
    for d in digests {
        let Some(hex) = d.strip_prefix("sha256:") else {
            continue;
        };
        let dir = root.join("bundles").join(hex);
        if named.contains(d) || running.contains(&dir) || !dir.is_dir() {
            continue;
        }
        remove_tree(&dir);
        removed.push(dir);
    }
    removed
}

/// Remove a version's tree (its read-only directories made writable first).
pub fn remove_tree(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fn writable(dir: &Path) {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                writable(&e.path());
            }
        }
    }
    if dir.is_dir() {
        writable(dir);
        let _ = std::fs::remove_dir_all(dir);
    }
}
