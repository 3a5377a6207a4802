//! The container's own cgroup, in every hierarchy /proc/self/mountinfo shows mounted
//! (v1 controllers, v2, or both on a hybrid host), its limits, freezer and stats.

pub mod devices;
pub mod freezer;
pub mod resources;
pub mod stats;
pub mod systemd;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup: {step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Systemd(String),
    #[error("linux.cgroupsPath {0:?}: must name a cgroup below the hierarchies' roots (no \"..\", not the root itself)")]
    BadPath(String),
    #[error("{key}: {why}")]
    Unsupported { key: String, why: String },
    #[error("{key}: writing {value:?} to {path}: {source}")]
    Write {
        key: String,
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("cgroup v2: cannot enable controllers in {path}: it holds processes (the \"no internal processes\" rule); give linux.cgroupsPath a parent without processes, or move the caller into a leaf cgroup first")]
    InternalProcess { path: PathBuf },
}

fn io(step: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { step, path, source }
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hierarchy {
    pub mount_point: PathBuf,
    /// v1 controllers (and `name=` options); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// The cgroup hierarchies in a mountinfo file (a parameter so tests can feed fixtures).
/// Only mounts still visible count: a later entry on the same mount point, or on one of
/// its ancestors, hides an earlier one (a tmpfs over /sys/fs/cgroup/unified, as hosts do
/// to hide cgroup2 from old runtimes, leaves that cgroup2 entry in mountinfo).
pub fn hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut seen: Vec<(PathBuf, Option<Hierarchy>)> = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mount_point) = pre.split(' ').nth(4) else {
            continue;
        };
        let mount_point = PathBuf::from(unescape(mount_point));
        seen.retain(|(p, _)| !p.starts_with(&mount_point));
        let h = hierarchy(&mount_point, post);
        seen.push((mount_point, h));
    }
    seen.into_iter().filter_map(|(_, h)| h).collect()
}

/// The hierarchy one mountinfo line describes (`post` is what follows " - "), if it is
/// a cgroup mount.
fn hierarchy(mount_point: &Path, post: &str) -> Option<Hierarchy> {
    let mut post = post.split(' ');
    let fstype = post.next().unwrap_or("");
    let _source = post.next();
    let super_opts = post.next().unwrap_or("");
    match fstype {
        "cgroup2" => Some(Hierarchy {
            mount_point: mount_point.to_path_buf(),
            controllers: vec![],
            v2: true,
        }),
        "cgroup" => {
            let controllers = super_opts
                .split(',')
                .filter(|o| {
                    !matches!(
                        *o,
                        "rw" | "ro" | "xattr" | "clone_children" | "noprefix" | "cpuset_v2_mode"
                    )
                })
                .filter(|o| !o.contains('=') || o.starts_with("name="))
                .map(str::to_string)
                .collect();
            Some(Hierarchy {
                mount_point: mount_point.to_path_buf(),
                controllers,
                v2: false,
            })
        }
        _ => None,
    }
}

/// Whether the filesystem at a hierarchy's mount point is the one mountinfo named
/// (mountinfo's order is a good guide, statfs on the path is the proof).
fn visible(h: &Hierarchy) -> bool {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC};
    let want = if h.v2 {
        CGROUP2_SUPER_MAGIC
    } else {
        CGROUP_SUPER_MAGIC
    };
    statfs(&h.mount_point).is_ok_and(|s| s.filesystem_type() == want)
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The relative cgroup path for a container: `linux.cgroupsPath` or `/nook/<id>`.
pub fn relative_path(cgroups_path: Option<&Path>, id: &str) -> Result<PathBuf, CgroupError> {
    let p = match cgroups_path {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("/nook").join(id),
    };
    let s = p.to_string_lossy().to_string();
    if p.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(CgroupError::BadPath(s));
    }
    // Only the names: "." and repeated slashes say nothing (the fuzzer found "//./a"
    // kept as "./a").
    let rel: PathBuf = p
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    // "/" (or "/./") would be each hierarchy's root: the host's own cgroup, whose
    // processes a kill or delete of the container would signal.
    if rel.as_os_str().is_empty() {
        return Err(CgroupError::BadPath(s));
    }
    // A relative path is placed under nook's parent, as runc places it under its own.
    if p.is_absolute() {
        Ok(rel)
    } else {
        Ok(PathBuf::from("nook").join(rel))
    }
}

/// A container's cgroup: where it is in each hierarchy mounted on the host.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Cgroup {
    pub hierarchies: Vec<Hierarchy>,
    /// The path relative to each hierarchy's root.
    pub rel: PathBuf,
    /// The leaf directory in each hierarchy, in the same order.
    pub dirs: Vec<PathBuf>,
    /// The systemd scope that owns it (the systemd driver), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<systemd::Scope>,
}

impl Cgroup {
    /// The container's directory in the v2 hierarchy, if the host has one.
    pub fn v2_leaf(&self) -> Option<PathBuf> {
        self.hierarchies
            .iter()
            .zip(&self.dirs)
            .find(|(h, _)| h.v2)
            .map(|(_, d)| d.clone())
    }
}

/// No cgroup of the container's own (rootless, where no cgroup is writable and no
/// resources are asked, as runc and crun run it): it stays in nook's cgroup; nothing is
/// made, joined or removed, and its `cgroup` mount is an empty tmpfs.
pub fn none() -> Cgroup {
    Cgroup {
        hierarchies: vec![],
        rel: PathBuf::new(),
        dirs: vec![],
        scope: None,
    }
}

/// Whether this (unprivileged) process can make the planned cgroup: the nearest
/// existing ancestor of each leaf is writable by it (a delegated subtree). An empty
/// plan (no hierarchy) counts as not writable.
pub fn writable(cg: &Cgroup) -> bool {
    use nix::unistd::{access, AccessFlags};
    !cg.dirs.is_empty()
        && cg.dirs.iter().all(|d| {
            let mut p = d.as_path();
            while !p.exists() {
                match p.parent() {
                    Some(parent) => p = parent,
                    None => return false,
                }
            }
            access(p, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
        })
}

/// The cgroup hierarchies mounted and visible here.
pub fn visible_hierarchies() -> Result<Vec<Hierarchy>, CgroupError> {
    let mi = crate::linux::kfile::read(Path::new("/proc/self/mountinfo"))
        .map_err(io("reading", Path::new("/proc/self/mountinfo")))?;
    Ok(hierarchies(&mi).into_iter().filter(visible).collect())
}

/// Make the container's cgroup in every hierarchy.
/// On error, whatever was made is removed again.
pub fn create(hs: Vec<Hierarchy>, rel: &Path) -> Result<Cgroup, CgroupError> {
    let cg = plan(hs, rel);
    make(&cg)?;
    Ok(cg)
}

/// Where the container's cgroup goes in every hierarchy, nothing made yet (create
/// records it first, so a create killed while making it leaves a known path).
pub fn plan(hs: Vec<Hierarchy>, rel: &Path) -> Cgroup {
    let dirs = hs.iter().map(|h| h.mount_point.join(rel)).collect();
    Cgroup {
        hierarchies: hs,
        rel: rel.to_path_buf(),
        dirs,
        scope: None,
    }
}

/// Make a planned cgroup's directories. On error, whatever was made is removed again.
pub fn make(cg: &Cgroup) -> Result<(), CgroupError> {
    let mut made: Vec<PathBuf> = Vec::new();
    for h in &cg.hierarchies {
        let r = if h.v2 {
            make_dirs_v2(h, &cg.rel, &mut made)
        } else {
            make_dirs(h, &cg.rel, &mut made)
        };
        crate::fault::point("create.cgroup-dir");
        if let Err(e) = r {
            remove(&made);
            return Err(e);
        }
    }
    Ok(())
}

/// The systemd driver's cgroup: made by systemd when the scope starts (a cgroup v2
/// host only; nothing is made here).
pub fn for_scope(hs: Vec<Hierarchy>, scope: systemd::Scope) -> Result<Cgroup, CgroupError> {
    systemd::check_running()?;
    let scope = systemd::Scope {
        base: systemd::manager_cgroup()?,
        ..scope
    };
    let hs: Vec<Hierarchy> = hs.into_iter().filter(|h| h.v2).collect();
    if hs.is_empty() {
        return Err(CgroupError::Systemd(
            "--systemd-cgroup: this host has no cgroup v2 hierarchy for systemd's scopes".into(),
        ));
    }
    let rel = scope.rel();
    let dirs = hs.iter().map(|h| h.mount_point.join(&rel)).collect();
    Ok(Cgroup {
        hierarchies: hs,
        rel,
        dirs,
        scope: Some(scope),
    })
}

/// mkdir -p inside one hierarchy; v1 cpuset children get their parent's cpus and mems,
/// without which no task can join them.
fn make_dirs(h: &Hierarchy, rel: &Path, made: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    let cpuset = !h.v2 && h.controllers.iter().any(|c| c == "cpuset");
    let made_one = |dir: &Path, made: &mut Vec<PathBuf>| -> Result<(), CgroupError> {
        made.push(dir.to_path_buf());
        if cpuset {
            let parent = dir.parent().unwrap_or(&h.mount_point);
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let v = crate::linux::kfile::read(&parent.join(f))
                    .map_err(io("reading", &parent.join(f)))?;
                std::fs::write(dir.join(f), v.trim()).map_err(io("writing", &dir.join(f)))?;
            }
        }
        Ok(())
    };
    // Usually only the leaf is new (nook/ is there after the first container): one mkdir.
    let leaf = h.mount_point.join(rel);
    match std::fs::create_dir(&leaf) {
        Ok(()) => return made_one(&leaf, made),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io("creating", &leaf)(e)),
    }
    let mut dir = h.mount_point.clone();
    for comp in rel.components() {
        dir.push(comp);
        match std::fs::create_dir(&dir) {
            Ok(()) => made_one(&dir, made)?,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("creating", &dir)(e)),
        }
    }
    Ok(())
}

/// mkdir -p in a v2 hierarchy, enabling every available controller in each parent's
/// cgroup.subtree_control on the way down so the leaf gets the controller files.
fn make_dirs_v2(h: &Hierarchy, rel: &Path, made: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    let wanted: Vec<String> = resources::v2_controllers(h);
    // Usually the parent is there with every controller on for its children (nook/ after
    // the first container): one read and one mkdir, not a walk from the root.
    let leaf = h.mount_point.join(rel);
    if let Some(parent) = leaf.parent() {
        let on = crate::linux::kfile::read(&parent.join("cgroup.subtree_control"));
        if on.is_ok_and(|on| wanted.iter().all(|c| on.split_whitespace().any(|o| o == c))) {
            return match std::fs::create_dir(&leaf) {
                Ok(()) => {
                    made.push(leaf);
                    Ok(())
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
                Err(e) => Err(io("creating", &leaf)(e)),
            };
        }
    }
    let mut dir = h.mount_point.clone();
    for comp in rel.components() {
        enable_controllers(&dir, &wanted)?;
        dir.push(comp);
        match std::fs::create_dir(&dir) {
            Ok(()) => made.push(dir.clone()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("creating", &dir)(e)),
        }
    }
    Ok(())
}

fn enable_controllers(dir: &Path, wanted: &[String]) -> Result<(), CgroupError> {
    let ctl = dir.join("cgroup.subtree_control");
    let on = crate::linux::kfile::read(&ctl).map_err(io("reading", &ctl))?;
    let available = crate::linux::kfile::read(&dir.join("cgroup.controllers")).unwrap_or_default();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|c| !on.split_whitespace().any(|o| o == *c))
        .filter(|c| available.split_whitespace().any(|a| a == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    match std::fs::write(&ctl, missing.join(" ")) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Err(CgroupError::InternalProcess {
            path: dir.to_path_buf(),
        }),
        // Rootless, above the subtree delegated to us: what is enabled there is what
        // we get (a limit on a controller that is not reaches us is refused naming it).
        Err(e)
            if e.kind() == ErrorKind::PermissionDenied && crate::linux::namespaces::rootless() =>
        {
            Ok(())
        }
        Err(e) => Err(io("enabling controllers in", &ctl)(e)),
    }
}

/// Move a process into every leaf.
pub fn add(dirs: &[PathBuf], pid: i32) -> Result<(), CgroupError> {
    for d in dirs {
        let p = d.join("cgroup.procs");
        std::fs::write(&p, pid.to_string()).map_err(io("joining", &p))?;
    }
    Ok(())
}

/// The pids in the container's cgroup and every cgroup below it (a container with a
/// writable cgroup mount may make its own), from the first hierarchy that answers.
pub fn pids(dirs: &[PathBuf]) -> Vec<i32> {
    for d in dirs {
        if d.join("cgroup.procs").exists() {
            let mut out = vec![];
            collect_pids(d, &mut out);
            return out;
        }
    }
    vec![]
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    for sub in subdirs(dir) {
        collect_pids(&sub, out);
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the container's cgroup is frozen (v1 freezer or v2 cgroup.freeze).
pub fn is_frozen(dirs: &[PathBuf]) -> bool {
    dirs.iter().any(|d| {
        std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
            || std::fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
    })
}

/// Remove the leaves (and nothing above them); a cgroup whose last task is still
/// exiting is busy for a moment, so retry briefly.
pub fn remove(dirs: &[PathBuf]) {
    for d in dirs.iter().rev() {
        remove_tree(d);
    }
}

/// Remove the container's cgroup directories if they are empty: one rmdir each, no
/// listing, no freezing. False at the first that is busy (a process is still in it, or
/// the container made cgroups below it); `discard` then does the full work.
pub fn remove_if_empty(dirs: &[PathBuf]) -> bool {
    dirs.iter().rev().all(|d| match std::fs::remove_dir(d) {
        Ok(()) => true,
        Err(e) => e.kind() == ErrorKind::NotFound,
    })
}

/// Remove the container's cgroup: its leaves, or (systemd driver) its scope, whose
/// cgroup systemd removes.
pub fn discard(cg: &Cgroup) {
    if let Some(s) = &cg.scope {
        // Sub-cgroups the container made go first: systemd leaves a busy tree.
        for d in &cg.dirs {
            for sub in subdirs(d) {
                remove_tree(&sub);
            }
        }
        systemd::stop(&s.unit);
    }
    remove(&cg.dirs);
}

/// Remove a cgroup and those the container made below it, deepest first.
fn remove_tree(d: &Path) {
    for sub in subdirs(d) {
        remove_tree(&sub);
    }
    for attempt in 0..200 {
        match std::fs::remove_dir(d) {
            Ok(()) => break,
            Err(e) if e.kind() == ErrorKind::NotFound => break,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 199 => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_mountinfo() {
        let h = hierarchies(HYBRID);
        assert_eq!(h.len(), 4);
        assert_eq!(h[0].controllers, vec!["cpu"]);
        assert_eq!(h[1].controllers, vec!["cpuset"]);
        assert_eq!(h[2].controllers, vec!["name=systemd"]);
        assert!(h[3].v2 && h[3].mount_point == Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn shadowed_mounts_are_skipped() {
        let mi = format!(
            "{HYBRID}\
50 41 0:60 / /sys/fs/cgroup/unified rw - tmpfs hide rw
51 50 0:38 / /sys/fs/cgroup/unified/again rw - cgroup2 cgroup2 rw
52 31 0:61 / /sys/fs/cgroup/cpu rw - tmpfs hide rw
"
        );
        let h = hierarchies(&mi);
        let points: Vec<_> = h.iter().map(|h| h.mount_point.to_str().unwrap()).collect();
        assert_eq!(
            points,
            [
                "/sys/fs/cgroup/cpuset",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/unified/again"
            ]
        );
        // A mount over the parent hides every hierarchy below it.
        let all = format!("{HYBRID}60 23 0:62 / /sys/fs/cgroup rw - tmpfs hide rw\n");
        assert!(hierarchies(&all).is_empty());
    }

    #[test]
    fn paths() {
        assert_eq!(relative_path(None, "a").unwrap(), Path::new("nook/a"));
        assert_eq!(
            relative_path(Some(Path::new("/x/y")), "a").unwrap(),
            Path::new("x/y")
        );
        assert_eq!(
            relative_path(Some(Path::new("x")), "a").unwrap(),
            Path::new("nook/x")
        );
        assert!(relative_path(Some(Path::new("/x/../../etc")), "a").is_err());
    }

    /// Found by fuzz/fuzz_targets/cgroups_path.rs: "//./x" came out as "./x".
    #[test]
    fn paths_are_normalised() {
        let rel = relative_path(Some(Path::new("//./se/llsicely")), "a").unwrap();
        assert_eq!(rel, Path::new("se/llsicely"));
        assert_eq!(
            relative_path(Some(Path::new("x/./y//")), "a").unwrap(),
            Path::new("nook/x/y")
        );
    }

    /// The hierarchies' roots (the host's own cgroup) are never a container's: a kill of
    /// its cgroup would signal every process on the host.
    #[test]
    fn the_root_cgroup_is_refused() {
        for p in ["/", "//", "/./", ".", "./"] {
            assert!(
                relative_path(Some(Path::new(p)), "a").is_err(),
                "{p:?} accepted"
            );
        }
    }
}
