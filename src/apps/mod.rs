//! `nook app`: an app's life across versions on one host (issue 18). An app is a bundle
//! tar and, optionally, a config directory (a plain directory or a git revision) rendered
//! with the template macros; each install or upgrade makes a numbered version, and the
//! app's systemd unit always runs the version the `current` link names.
//!
//! On disk, under the apps dir (default /var/lib/nook/apps):
//!
//! ```text
//! NAME/app.json         what install was given (unit dir, flags, config source)
//! NAME/lock             flock: one `nook app` command per app at a time
//! NAME/versions/N/      bundle.tar, config/ (read-only), version.json
//! NAME/current -> versions/N    the version the unit runs
//! NAME/previous -> versions/M   the one `rollback` goes back to
//! NAME/switch.json      an upgrade or rollback under way (from, to): a command that
//!                       finds it (the last one was killed) puts `current` back first
//! ```
//!
//! Every change of `current` or `previous` is a symlink made beside it and renamed over
//! it, so a crash leaves one version or the other, never a half state.

pub mod git;
pub mod life;
pub mod store;

use std::path::{Path, PathBuf};

/// Where apps live unless `--apps-dir` says otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/nook/apps";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("app {name}: {step}: {}: {source}", path.display())]
    Io {
        name: String,
        step: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Bad input, refused before anything changed.
    #[error("app {name}: {why}")]
    Refused { name: String, why: String },
    #[error("app {name}: {what}: {source}")]
    Bundle {
        name: String,
        /// What was being read ("bundle FILE", "config templates").
        what: String,
        source: crate::bundle::BundleError,
    },
    #[error("app {name}: the bundle's config.json: {source}")]
    Spec {
        name: String,
        source: crate::spec::SpecError,
    },
    #[error("app {name}: config from git {repo}: {why}")]
    Git {
        name: String,
        repo: String,
        why: String,
    },
    #[error("app {name}: systemctl {args}: {why}")]
    Systemctl {
        name: String,
        args: String,
        why: String,
    },
    #[error("app {name}: another `nook app` command is working on it (lock {}); try again once it ends", path.display())]
    Busy { name: String, path: PathBuf },
    #[error("app {name} is not installed (no {})", dir.display())]
    NotInstalled { name: String, dir: PathBuf },
    /// The new version did not become ready: the app is back on the old one.
    #[error(
        "app {name}: version {to} did not become ready ({why}); rolled back to version {back}"
    )]
    RolledBack {
        name: String,
        to: u64,
        back: u64,
        why: String,
    },
}

pub type Result<T> = std::result::Result<T, AppError>;

/// An app's name: also its unit's and its container's name, so the unit's rules.
pub fn check_name(name: &str) -> Result<()> {
    crate::systemd::unit::check_name(name).map_err(|why| AppError::Refused {
        name: name.to_string(),
        why,
    })
}

/// The paths of one app.
#[derive(Debug, Clone)]
pub struct AppDir {
    pub name: String,
    pub dir: PathBuf,
}

impl AppDir {
    pub fn new(apps: &Path, name: &str) -> Result<AppDir> {
        check_name(name)?;
        Ok(AppDir {
            name: name.to_string(),
            dir: apps.join(name),
        })
    }

    pub fn io(&self, step: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> AppError {
        let (name, path) = (self.name.clone(), path.to_path_buf());
        move |source| AppError::Io {
            name,
            step,
            path,
            source,
        }
    }

    pub fn refused(&self, why: impl Into<String>) -> AppError {
        AppError::Refused {
            name: self.name.clone(),
            why: why.into(),
        }
    }

    pub fn app_file(&self) -> PathBuf {
        self.dir.join("app.json")
    }
    pub fn versions(&self) -> PathBuf {
        self.dir.join("versions")
    }
    pub fn version(&self, n: u64) -> PathBuf {
        self.versions().join(n.to_string())
    }
    pub fn current(&self) -> PathBuf {
        self.dir.join("current")
    }
    pub fn previous(&self) -> PathBuf {
        self.dir.join("previous")
    }
    pub fn switch_file(&self) -> PathBuf {
        self.dir.join("switch.json")
    }

    /// The version a link (`current`, `previous`) names, if any.
    pub fn link(&self, link: &Path) -> Option<u64> {
        let target = std::fs::read_link(link).ok()?;
        target.file_name()?.to_str()?.parse().ok()
    }

    /// Point `link` at version `n` (None: remove it), atomically.
    pub fn set_link(&self, link: &Path, n: Option<u64>) -> Result<()> {
        let Some(n) = n else {
            return match std::fs::remove_file(link) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(self.io("removing link", link)(e))
                }
                _ => Ok(()),
            };
        };
        let tmp = link.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(format!("versions/{n}"), &tmp)
            .map_err(self.io("making link", &tmp))?;
        std::fs::rename(&tmp, link).map_err(self.io("switching link", link))?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// Hold the app's lock (fails at once when another command holds it); the lock
    /// lives as long as the returned file is open, and goes with the process.
    pub fn lock(&self) -> Result<std::fs::File> {
        use std::os::fd::AsRawFd;
        let path = self.dir.join("lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(self.io("opening lock", &path))?;
        // SAFETY: flock on an fd owned by `f`; no memory is passed.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(AppError::Busy {
                    name: self.name.clone(),
                    path,
                });
            }
            return Err(self.io("locking", &path)(e));
        }
        Ok(f)
    }
}

/// fsync a directory so a rename in it survives a crash (best effort).
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
