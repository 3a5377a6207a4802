//! `<root>/<id>/`: the container's state directory, its lock, `state.json` (written
//! atomically) and the live status derived from the init process.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

pub const STATE_FILE: &str = "state.json";
/// The config the container was created from (exec and hooks read it, not the bundle's,
/// which may have changed since).
pub const CONFIG_FILE: &str = "config.json";

/// What `state.json` holds: the runtime spec's state plus nook's private fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// Filled in live when read; stored as the status at write time.
    pub status: String,
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// Private: init's start time (field 22 of /proc/PID/stat), so a reused pid is never taken for it.
    #[serde(rename = "nook.initStartTime")]
    pub init_start_time: u64,
    /// Private: RFC 3339 creation time.
    #[serde(rename = "nook.created")]
    pub created: String,
    /// Private: the container's cgroup (hierarchies, relative path, leaf dirs).
    #[serde(rename = "nook.cgroup")]
    pub cgroup: crate::cgroups::Cgroup,
    /// Private: the rootfs path.
    #[serde(rename = "nook.rootfs", default)]
    pub rootfs: PathBuf,
    /// Private: the foreground `nook run` waiting on the container (pid, start time).
    /// Once it is gone the container is a leftover that the next `run` of the id clears.
    #[serde(
        rename = "nook.owner",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub owner: Option<(i32, u64)>,
    /// Private: why `start` failed (a startContainer hook, the exec), for `state` to say.
    #[serde(
        rename = "nook.startError",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub start_error: Option<String>,
    /// Private: the resctrl groups of linux.intelRdt, removed at delete.
    #[serde(
        rename = "nook.resctrl",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub resctrl: Option<crate::linux::resctrl::Groups>,
}

impl State {
    /// A foreground `nook run` owned this container and is gone (killed, say, by a unit's
    /// stop timeout).
    pub fn orphaned(&self) -> bool {
        self.owner
            .is_some_and(|(pid, start)| start_time(pid) != Some(start))
    }
}

/// What a create in progress has decided, written (`draft.json`) before it makes anything
/// outside the state dir: a create killed at any later moment leaves a state dir whose
/// draft names the cgroup to empty and remove.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Draft {
    pub cgroup: crate::cgroups::Cgroup,
    pub bundle: PathBuf,
    pub created: String,
}

pub const DRAFT_FILE: &str = "draft.json";

/// A state dir without state.json whose create is gone (no live process holds its lock):
/// held locked, with the draft if the create got as far as writing it.
pub struct Unfinished {
    pub dir: StateDir,
    pub draft: Option<Draft>,
}

/// Status as the runtime spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// Names under `<root>` that are nook's caches (unpacked bundles, compiled seccomp
/// filters), never containers.
const RESERVED_IDS: [&str; 2] = ["bundles", "seccomp"];

/// The temporary name of a state dir being made (`<root>/.nook-new-<pid>`); no id
/// starts so.
const NEW_PREFIX: &str = ".nook-new-";

/// Refuse ids that could name something outside `<root>` or confuse a client.
pub fn check_id(id: &str) -> Result<()> {
    let bad = |why| {
        Err(Error::InvalidId {
            id: id.to_string(),
            why,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id == "." || id == ".." || id.contains("..") {
        return bad("contains \"..\"");
    }
    if id.contains('/') {
        return bad("contains \"/\"");
    }
    if RESERVED_IDS.contains(&id) {
        return bad("the name of one of nook's caches under --root");
    }
    if id.starts_with(NEW_PREFIX) {
        return bad("starts like nook's temporary state dirs (\".nook-new-\")");
    }
    if id.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
    {
        return bad("only letters, digits and _ + - . are allowed");
    }
    Ok(())
}

/// A container's state directory, held under an flock for as long as this value lives.
pub struct StateDir {
    pub id: String,
    pub path: PathBuf,
    _lock: Flock<File>,
}

impl StateDir {
    /// Make `<root>/<id>` (an existing one is refused) and lock it. The dir is made and
    /// locked under a temporary name, then renamed into place: `<root>/<id>` never
    /// exists unlocked, so a racing create of the same id cannot take it for one a
    /// killed create left (and clear it).
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        check_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .ctx("creating state root", root)?;
        let path = root.join(id);
        if path.exists() {
            return Err(Error::Exists(id.to_string()));
        }
        let tmp = root.join(format!("{NEW_PREFIX}{}", std::process::id()));
        let mkdir = || std::fs::DirBuilder::new().mode(0o700).create(&tmp);
        match mkdir() {
            // A dead create's of the same pid (empty or nearly): cleared, only then.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_dir_all(&tmp);
                mkdir()
            }
            r => r,
        }
        .ctx("creating state dir", &tmp)?;
        let placed = lock(&tmp, true).and_then(|lock| {
            crate::fault::point("create.state-dir-new");
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &tmp,
                nix::fcntl::AT_FDCWD,
                &path,
                nix::fcntl::RenameFlags::RENAME_NOREPLACE,
            )
            .map_err(|e| match e {
                nix::errno::Errno::EEXIST | nix::errno::Errno::ENOTEMPTY => {
                    Error::Exists(id.to_string())
                }
                e => Error::Io {
                    step: "creating state dir",
                    path: path.clone(),
                    source: e.into(),
                },
            })
            .map(|()| lock)
        });
        match placed {
            Ok(lock) => Ok(StateDir {
                id: id.to_string(),
                path,
                _lock: lock,
            }),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    /// Remove the temporary dirs of creates killed before their state dir was in place
    /// (unlocked `.nook-new-*`).
    pub fn sweep_new(root: &Path) {
        let Ok(rd) = std::fs::read_dir(root) else {
            return;
        };
        for e in rd.flatten() {
            if !e.file_name().to_string_lossy().starts_with(NEW_PREFIX) {
                continue;
            }
            let Ok(f) = File::open(e.path()) else {
                continue;
            };
            if let Ok(_lock) = Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Lock an existing container's state dir (exclusive for changes, shared for reads).
    pub fn open(root: &Path, id: &str, exclusive: bool) -> Result<StateDir> {
        check_id(id)?;
        let path = root.join(id);
        let lock = lock(&path, exclusive).map_err(|e| match e {
            Error::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::NotFound(id.to_string())
            }
            e => e,
        })?;
        // A delete that held the lock before us may have removed the directory.
        if !path.join(STATE_FILE).exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        Ok(StateDir {
            id: id.to_string(),
            path,
            _lock: lock,
        })
    }

    /// The state dir of `id` if a killed `create` left it unfinished (no state.json),
    /// locked. `wait`: a create still running is waited for (it then finishes or
    /// removes its dir); else a dir in use is not unfinished.
    pub fn unfinished(root: &Path, id: &str, wait: bool) -> Result<Option<Unfinished>> {
        check_id(id)?;
        let path = root.join(id);
        let Ok(f) = File::open(&path) else {
            return Ok(None);
        };
        let arg = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        let Ok(lock) = Flock::lock(f, arg) else {
            return Ok(None);
        };
        // Gone meanwhile (a failed create removes its dir), or finished.
        if !path.is_dir() || path.join(STATE_FILE).exists() {
            return Ok(None);
        }
        let draft = std::fs::read(path.join(DRAFT_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        Ok(Some(Unfinished {
            dir: StateDir {
                id: id.to_string(),
                path,
                _lock: lock,
            },
            draft,
        }))
    }

    /// Record the create's draft (atomically: a reader sees all of it or none).
    pub fn write_draft(&self, draft: &Draft) -> Result<()> {
        let tmp = self.path.join(".draft.json.tmp");
        let dst = self.path.join(DRAFT_FILE);
        let body = serde_json::to_vec(draft).expect("draft serializes");
        std::fs::write(&tmp, body).ctx("writing the create's draft", &tmp)?;
        std::fs::rename(&tmp, &dst).ctx("writing the create's draft", &dst)
    }

    pub fn read(&self) -> Result<State> {
        let p = self.path.join(STATE_FILE);
        let text = std::fs::read(&p).ctx("reading state", &p)?;
        serde_json::from_slice(&text).map_err(|e| Error::State {
            id: self.id.clone(),
            path: p,
            why: e.to_string(),
        })
    }

    /// Write state.json through a temporary file and a rename, so a reader never sees half of it.
    pub fn write(&self, state: &State) -> Result<()> {
        let tmp = self.path.join(".state.json.tmp");
        let dst = self.path.join(STATE_FILE);
        let body = serde_json::to_vec(state).expect("state serializes");
        let mut f = File::create(&tmp).ctx("writing state", &tmp)?;
        f.write_all(&body).ctx("writing state", &tmp)?;
        std::fs::rename(&tmp, &dst).ctx("writing state", &dst)
    }

    /// Keep the config the container was created from.
    pub fn save_config(&self, text: &str) -> Result<()> {
        let p = self.path.join(CONFIG_FILE);
        std::fs::write(&p, text).ctx("saving config", &p)
    }

    /// The config the container was created from.
    pub fn config(&self) -> Result<oci_spec::runtime::Spec> {
        let p = self.path.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&p).ctx("reading saved config", &p)?;
        Ok(crate::spec::parse(&p, &text)?)
    }

    /// The fd that holds the lock (a forked child closes its copy).
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        self._lock.as_raw_fd()
    }

    /// Remove the directory (the lock goes with it).
    pub fn remove(self) -> Result<()> {
        use nix::unistd::{unlinkat, UnlinkatFlags};
        // The files nook puts there, by name through the held directory, then the
        // directory; a walk only if something else is left.
        for name in [
            STATE_FILE,
            CONFIG_FILE,
            DRAFT_FILE,
            crate::linux::gate::EXEC_SOCK,
        ] {
            let _ = unlinkat(&*self._lock, name, UnlinkatFlags::NoRemoveDir);
        }
        match std::fs::remove_dir(&self.path) {
            Ok(()) => Ok(()),
            Err(_) => std::fs::remove_dir_all(&self.path).ctx("removing state dir", &self.path),
        }
    }
}

fn lock(path: &Path, exclusive: bool) -> Result<Flock<File>> {
    let f = File::open(path).ctx("opening state dir", path)?;
    let arg = if exclusive {
        FlockArg::LockExclusive
    } else {
        FlockArg::LockShared
    };
    Flock::lock(f, arg).map_err(|(_, e)| Error::Io {
        step: "locking state dir",
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// The start time of a process (clock ticks since boot), or None if it is gone or a zombie.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = crate::linux::kfile::read(Path::new(&format!("/proc/{pid}/stat"))).ok()?;
    // The command name may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // rest starts at field 3 (state); start time is field 22.
    fields.nth(18)?.parse().ok()
}

/// The live status of a container from its saved state.
pub fn status(dir: &StateDir, st: &State) -> Status {
    if st.pid <= 0 || start_time(st.pid) != Some(st.init_start_time) {
        return Status::Stopped;
    }
    if crate::cgroups::is_frozen(&st.cgroup.dirs) {
        return Status::Paused;
    }
    if dir.path.join(crate::linux::gate::EXEC_SOCK).exists() {
        Status::Created
    } else {
        Status::Running
    }
}

/// All ids under `<root>` (an absent root has none): containers, and the state dirs of
/// creates in progress or killed (`list` shows those as creating or unfinished).
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).ctx("listing containers", root),
    };
    let mut ids: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| check_id(id).is_ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// A state dir without state.json: its create is still running (it holds the lock) or
/// was killed. Checked without waiting.
pub fn creating(root: &Path, id: &str) -> bool {
    let Ok(f) = File::open(root.join(id)) else {
        return false;
    };
    Flock::lock(f, FlockArg::LockSharedNonblock).is_err()
}

/// Now as RFC 3339 with nanoseconds, in UTC, without a date crate.
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, sod) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("web-1.a_b").is_ok());
        for bad in [
            "",
            "..",
            "a/b",
            "../x",
            "a..b",
            "a b",
            "bundles",
            "seccomp",
            ".nook-new-1",
        ] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn own_start_time_is_read() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
        assert_eq!(start_time(me), start_time(me));
    }

    #[test]
    fn rfc3339_shape() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 30, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'));
    }
}
