//! The config's mounts, in order, each destination resolved inside the rootfs and each
//! mount made onto the destination's fd through the new mount API: binds are detached
//! copies of their source (open_tree), new filesystems detached mounts of their own
//! (fsopen, fsconfig, fsmount); either gets its flags (mount_setattr) before it is
//! attached (move_mount), and its propagation after, through the same fd. No path is
//! resolved through /proc, and no mount is looked up again by path once made. Kernels
//! without fsopen (before 5.2) get mount(2) on "." with the working directory at the
//! destination instead.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{Mode, SFlag};
use oci_spec::runtime::Mount;

use super::fs;
use super::sync::InitError;

/// Parsed `options` of one mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub flags: MsFlags,
    pub propagation: MsFlags,
    pub data: Vec<String>,
    /// "rro", "rnosuid" and the like: attributes for the mount and every mount below it.
    pub recursive: fs::MountAttr,
    /// "tmpcopyup": a tmpfs starts with a copy of the directory it covers.
    pub tmpcopyup: bool,
}

/// A recursive option ("rro", "rnoatime", ...) as (attributes set, attributes cleared).
fn recursive_option(opt: &str) -> Option<(u64, u64)> {
    let atime = fs::MOUNT_ATTR_ATIME;
    Some(match opt {
        "rro" => (fs::MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, fs::MOUNT_ATTR_RDONLY),
        "rnosuid" => (fs::MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, fs::MOUNT_ATTR_NOSUID),
        "rnodev" => (fs::MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, fs::MOUNT_ATTR_NODEV),
        "rnoexec" => (fs::MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, fs::MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (fs::MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, fs::MOUNT_ATTR_NODIRATIME),
        // An access-time mode replaces the old one (the kernel wants the whole field
        // cleared); turning one off falls back to the default, relatime.
        "rnosymfollow" => (fs::MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, fs::MOUNT_ATTR_NOSYMFOLLOW),
        "rnoatime" => (fs::MOUNT_ATTR_NOATIME, atime),
        "rstrictatime" => (fs::MOUNT_ATTR_STRICTATIME, atime),
        "rrelatime" | "ratime" | "rnorelatime" | "rnostrictatime" => {
            (fs::MOUNT_ATTR_RELATIME, atime)
        }
        _ => return None,
    })
}

/// MS_NOSYMFOLLOW (Linux 5.10): symlinks on the mount are not followed.
const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(0x100);

/// Turn an OCI options list into mount flags, propagation flags and fs data.
pub fn parse_options(opts: &[String]) -> Result<Options, String> {
    let mut o = Options {
        flags: MsFlags::empty(),
        propagation: MsFlags::empty(),
        data: vec![],
        recursive: fs::MountAttr::default(),
        tmpcopyup: false,
    };
    for opt in opts {
        if let Some((set, clr)) = recursive_option(opt) {
            let r = &mut o.recursive;
            if clr & fs::MOUNT_ATTR_ATIME != 0 {
                r.attr_set &= !fs::MOUNT_ATTR_ATIME;
            }
            r.attr_set = (r.attr_set & !clr) | set;
            r.attr_clr = (r.attr_clr & !set) | clr;
            continue;
        }
        let (set, clear) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "nosymfollow" => (MS_NOSYMFOLLOW, MsFlags::empty()),
            "symfollow" => (MsFlags::empty(), MS_NOSYMFOLLOW),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT),
            p @ ("private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "unbindable" | "runbindable") => {
                o.propagation |= propagation(p).expect("listed above");
                continue;
            }
            "tmpcopyup" => {
                o.tmpcopyup = true;
                continue;
            }
            "idmap" | "ridmap" => return Err(format!("option {opt:?} is not supported")),
            data => {
                o.data.push(data.to_string());
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
    }
    Ok(o)
}

/// A propagation name as mount flags (`rootfsPropagation` uses the same names).
pub fn propagation(name: &str) -> Option<MsFlags> {
    Some(match name {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// Whether a mount is a bind: its type says so, or a bind/rbind option.
pub fn is_bind(typ: &str, opts: &Options) -> bool {
    typ == "bind" || opts.flags.contains(MsFlags::MS_BIND)
}

/// A mount source as a host path: a relative one is the bundle's.
pub fn host_source(source: &Path, bundle: &Path) -> PathBuf {
    if source.is_absolute() {
        source.to_path_buf()
    } else {
        bundle.join(source)
    }
}

/// What a mount needs besides its config entry.
pub struct Env<'a> {
    pub root: BorrowedFd<'a>,
    pub bundle: &'a Path,
    pub in_user_ns: bool,
    pub new_cgroup_ns: bool,
    /// The container's cgroup (hierarchies read by the parent, before any mount).
    pub cgroup: &'a crate::cgroups::Cgroup,
    /// Bind sources nook cloned for us (a new user namespace), by mounts[] index.
    pub sources: std::cell::RefCell<std::collections::HashMap<usize, OwnedFd>>,
    /// Waits until the parent has made the container's cgroup directories (it makes
    /// them while we set up, on a host with v1 hierarchies).
    pub cgroup_made: &'a dyn Fn() -> nix::Result<()>,
}

/// Bind mounts marked shared or rshared must stay peers of their source, so a mount the
/// container makes under one reaches the host (runc's behaviour): their sources are
/// cloned now, while this new mount namespace's copies are still the host's peers,
/// before "/" is made a slave (rootfs::prepare). A source that cannot be cloned here is
/// left to mount_one, which reports it.
pub fn clone_shared_sources(
    spec: &oci_spec::runtime::Spec,
    bundle: &Path,
    sources: &mut std::collections::HashMap<usize, OwnedFd>,
) {
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let Ok(opts) = parse_options(m.options().as_deref().unwrap_or_default()) else {
            continue;
        };
        let typ = m.typ().as_deref().unwrap_or("");
        let shared = opts.propagation.contains(MsFlags::MS_SHARED);
        if !shared || !is_bind(typ, &opts) || sources.contains_key(&i) {
            continue;
        }
        let Some(src) = m.source() else { continue };
        let rec = opts.flags.contains(MsFlags::MS_REC);
        if let Ok(tree) = fs::clone_host_path(&host_source(src, bundle), rec) {
            sources.insert(i, tree);
        }
    }
}

/// Perform `mounts[idx]`.
pub fn mount_one(env: &Env, idx: usize, m: &Mount) -> Result<(), InitError> {
    let dest = m.destination();
    let typ = m.typ().as_deref().unwrap_or("");
    let step = format!("mounts[{idx}] ({typ}) on {}", dest.display());
    let opts = parse_options(m.options().as_deref().unwrap_or_default())
        .map_err(|e| InitError::msg(format!("mounts[{idx}].options"), e))?;
    let err = |what: &str, e: nix::Error| InitError::sys(format!("{what} {step}"), None, e);
    let bind = is_bind(typ, &opts);
    let refuse = |why: &str| Err(InitError::msg(format!("mounts[{idx}].options"), why));
    if opts.tmpcopyup && (bind || typ != "tmpfs") {
        return refuse("tmpcopyup is only for tmpfs mounts");
    }
    if typ == "cgroup" && !bind {
        if opts.recursive != fs::MountAttr::default() {
            return refuse(
                "recursive options (rro, rnosuid, ...) are not supported on cgroup mounts",
            );
        }
        return cgroup_mount(env, dest, &opts).map_err(|e| err("mounting", e));
    }
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    // The mount just made, attached: we hold it, except after the mount(2) fallback,
    // which leaves it to be looked up again.
    let top = if bind {
        let source = host_source(&source, env.bundle);
        Some(bind_mount(env, idx, &source, dest, &opts, &err)?)
    } else {
        new_mount(env, &source, typ, dest, &opts, &err)?
    };
    if !opts.propagation.is_empty() {
        let top = match top {
            Some(t) => t,
            None => fs::lookup(env.root, dest).map_err(|e| err("reopening", e))?,
        };
        let (attr, rec) = propagation_attr(opts.propagation);
        fs::set_attr(top.as_fd(), &attr, rec).map_err(|e| err("setting propagation of", e))?;
    }
    Ok(())
}

/// A bind mount: a detached copy of the source (taken from the host path, before
/// pivot_root) given its flags, then attached to the destination's fd inside the root.
/// Returns the attached mount.
fn bind_mount(
    env: &Env,
    idx: usize,
    source: &Path,
    dest: &Path,
    opts: &Options,
    err: &dyn Fn(&str, nix::Error) -> InitError,
) -> Result<OwnedFd, InitError> {
    let src_err = |e| {
        InitError::sys(
            format!("mounts[{idx}].source"),
            Some(&source.to_string_lossy()),
            e,
        )
    };
    let rec = opts.flags.contains(MsFlags::MS_REC);
    let given = env.sources.borrow_mut().remove(&idx);
    let tree = match given {
        Some(tree) => tree,
        None => fs::clone_host_path(source, rec).map_err(src_err)?,
    };
    let st = nix::sys::stat::fstat(&tree).map_err(src_err)?;
    let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    let target = if is_dir {
        fs::mkdir_all(env.root, dest, 0o755)
    } else {
        fs::touch(env.root, dest)
    }
    .map_err(|e| err("creating destination of", e))?;
    // Flags apply to the top mount (as a remount would); "rro" and the like to all.
    fs::set_attr(tree.as_fd(), &attrs(opts.flags), false)
        .map_err(|e| err("setting flags of", e))?;
    fs::set_attr(tree.as_fd(), &opts.recursive, true)
        .map_err(|e| err("setting recursive flags of", e))?;
    fs::move_mount(tree.as_fd(), target.as_fd()).map_err(|e| err("bind mounting", e))?;
    Ok(tree)
}

/// A new filesystem (tmpfs, proc, sysfs, ...) made detached, given its flags (and, with
/// tmpcopyup, the destination's contents), then attached to the destination's fd.
/// Returns the attached mount, or None after the mount(2) fallback.
fn new_mount(
    env: &Env,
    source: &Path,
    typ: &str,
    dest: &Path,
    opts: &Options,
    err: &dyn Fn(&str, nix::Error) -> InitError,
) -> Result<Option<OwnedFd>, InitError> {
    // A tmpfs on a directory the rootfs has keeps that directory's mode unless `mode=`
    // says otherwise (runc copies it too): /tmp stays 1777, a private dir 0700.
    let kept;
    let opts = match existing_dir_mode(env, typ, dest, opts) {
        Some(mode) => {
            let mut o = opts.clone();
            o.data.push(format!("mode={mode:o}"));
            kept = o;
            &kept
        }
        None => opts,
    };
    let target =
        fs::mkdir_all(env.root, dest, 0o755).map_err(|e| err("creating destination of", e))?;
    let name = source.to_string_lossy();
    let sb = sb_flags(opts.flags);
    // With tmpcopyup the mount must take the copy first: its flags come after.
    let flags = attrs(opts.flags);
    let made = fs::new_fs(&fs::NewFs {
        typ,
        source: Some(&name),
        params: &opts.data,
        sb_flags: &sb,
        attr: if opts.tmpcopyup { 0 } else { flags.attr_set },
    });
    let mnt = match made {
        Ok(mnt) => mnt,
        Err(nix::Error::ENOSYS) if !opts.tmpcopyup => {
            legacy_mount(source, typ, &target, opts).map_err(|e| err("mounting", e))?;
            return Ok(None);
        }
        // In a user namespace without its own network namespace sysfs cannot be
        // mounted: bind the host's, as runc does (read-only all the way down when asked).
        Err(nix::Error::EPERM) if typ == "sysfs" && env.in_user_ns => {
            let tree = fs::clone_host_path(Path::new("/sys"), true)
                .map_err(|e| err("bind mounting /sys for", e))?;
            fs::set_attr(tree.as_fd(), &attrs(opts.flags), true)
                .map_err(|e| err("setting flags of", e))?;
            fs::set_attr(tree.as_fd(), &opts.recursive, true)
                .map_err(|e| err("setting recursive flags of", e))?;
            fs::move_mount(tree.as_fd(), target.as_fd())
                .map_err(|e| err("bind mounting /sys for", e))?;
            return Ok(Some(tree));
        }
        Err(e) => return Err(err("mounting", e)),
    };
    if opts.tmpcopyup {
        let has = |k: &str| opts.data.iter().any(|d| d.starts_with(k));
        crate::linux::copy_up::copy_dir(
            target.as_fd(),
            mnt.as_fd(),
            has("mode="),
            has("uid=") || has("gid="),
        )
        .map_err(|e| err("copying the destination's contents (tmpcopyup) for", e))?;
        fs::set_attr(mnt.as_fd(), &flags, false).map_err(|e| err("setting flags of", e))?;
    }
    fs::set_attr(mnt.as_fd(), &opts.recursive, true)
        .map_err(|e| err("setting recursive flags of", e))?;
    fs::move_mount(mnt.as_fd(), target.as_fd()).map_err(|e| err("mounting", e))?;
    Ok(Some(mnt))
}

/// For a tmpfs without `mode=` over an existing directory: that directory's mode.
fn existing_dir_mode(env: &Env, typ: &str, dest: &Path, opts: &Options) -> Option<u32> {
    if typ != "tmpfs" || opts.data.iter().any(|d| d.starts_with("mode=")) {
        return None;
    }
    let fd = fs::lookup(env.root, dest).ok()?;
    let st = nix::sys::stat::fstat(&fd).ok()?;
    let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    is_dir.then_some(st.st_mode & 0o7777)
}

/// The superblock flags among MS_* (the rest are the mount's own attributes).
fn sb_flags(flags: MsFlags) -> Vec<&'static str> {
    [
        (MsFlags::MS_SYNCHRONOUS, "sync"),
        (MsFlags::MS_DIRSYNC, "dirsync"),
        (MsFlags::MS_MANDLOCK, "mand"),
    ]
    .into_iter()
    .filter(|(f, _)| flags.contains(*f))
    .map(|(_, name)| name)
    .collect()
}

/// mount(2) on "." with the working directory at `target` (kernels before fsopen).
fn legacy_mount(source: &Path, typ: &str, target: &OwnedFd, opts: &Options) -> nix::Result<()> {
    let data = opts.data.join(",");
    let data = Some(data.as_str()).filter(|d| !d.is_empty());
    let mut flags = opts.flags;
    let r = &opts.recursive;
    // A new filesystem has nothing below it: recursive options are its own flags.
    for (attr, ms) in [
        (fs::MOUNT_ATTR_RDONLY, MsFlags::MS_RDONLY),
        (fs::MOUNT_ATTR_NOSUID, MsFlags::MS_NOSUID),
        (fs::MOUNT_ATTR_NODEV, MsFlags::MS_NODEV),
        (fs::MOUNT_ATTR_NOEXEC, MsFlags::MS_NOEXEC),
        (fs::MOUNT_ATTR_NOSYMFOLLOW, MS_NOSYMFOLLOW),
    ] {
        if r.attr_set & attr != 0 {
            flags.insert(ms);
        }
        if r.attr_clr & attr != 0 {
            flags.remove(ms);
        }
    }
    fs::in_dir(target.as_fd(), || {
        mount(Some(source), ".", Some(typ), flags, data)
    })
}

/// The mount attributes (mount_setattr) that MS_* flags of a bind ask for. Flags not
/// asked for are left as they are, so flags the kernel locks are kept.
pub fn attrs(flags: MsFlags) -> fs::MountAttr {
    let mut a = fs::MountAttr::default();
    for (ms, attr) in [
        (MsFlags::MS_RDONLY, fs::MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, fs::MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, fs::MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, fs::MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, fs::MOUNT_ATTR_NODIRATIME),
        (MS_NOSYMFOLLOW, fs::MOUNT_ATTR_NOSYMFOLLOW),
    ] {
        if flags.contains(ms) {
            a.attr_set |= attr;
        }
    }
    let atime = if flags.contains(MsFlags::MS_NOATIME) {
        Some(fs::MOUNT_ATTR_NOATIME)
    } else if flags.contains(MsFlags::MS_STRICTATIME) {
        Some(fs::MOUNT_ATTR_STRICTATIME)
    } else if flags.contains(MsFlags::MS_RELATIME) {
        Some(fs::MOUNT_ATTR_RELATIME)
    } else {
        None
    };
    if let Some(t) = atime {
        a.attr_clr |= fs::MOUNT_ATTR_ATIME;
        a.attr_set |= t;
    }
    a
}

/// Propagation flags as mount_setattr takes them, and whether they are recursive.
fn propagation_attr(p: MsFlags) -> (fs::MountAttr, bool) {
    let attr = fs::MountAttr {
        propagation: (p - MsFlags::MS_REC).bits(),
        ..Default::default()
    };
    (attr, p.contains(MsFlags::MS_REC))
}

/// Set the flags of the mount `fd` refers to (its root), leaving the others (and the
/// ones the kernel locks) as they are.
pub fn remount_bind(fd: &OwnedFd, flags: MsFlags) -> nix::Result<()> {
    fs::set_attr(fd.as_fd(), &attrs(flags), false)
}

/// A `cgroup` mount: cgroup2 on a pure v2 host; otherwise a tmpfs holding each
/// hierarchy (mounted afresh in a new cgroup namespace, else bound from the host).
fn cgroup_mount(env: &Env, dest: &Path, opts: &Options) -> nix::Result<()> {
    crate::steps::mark("init.at-cgroup-mount");
    (env.cgroup_made)()?;
    crate::steps::mark("init.cgroup-made");
    let hs = &env.cgroup.hierarchies;
    let flags = opts.flags - MsFlags::MS_RDONLY;
    let target = fs::mkdir_all(env.root, dest, 0o755)?;
    if hs.len() == 1 && hs[0].v2 {
        let at = Target::Fd(target.as_fd());
        return mount_or_bind(env, at, "cgroup2", "", &hs[0].mount_point, opts.flags);
    }
    // Held, so it can be made read-only once the hierarchies are in without being
    // looked up again (only the mount(2) fallback has to).
    let made = fs::new_fs(&fs::NewFs {
        typ: "tmpfs",
        source: Some("tmpfs"),
        params: &["mode=755".to_string()],
        sb_flags: &[],
        attr: attrs(flags).attr_set,
    });
    let tmpfs = match made {
        Ok(mnt) => {
            fs::move_mount(mnt.as_fd(), target.as_fd())?;
            Some(mnt)
        }
        Err(nix::Error::ENOSYS) => {
            fs::in_dir(target.as_fd(), || {
                mount(Some("tmpfs"), ".", Some("tmpfs"), flags, Some("mode=755"))
            })?;
            None
        }
        Err(e) => return Err(e),
    };
    drop(target);
    // The tmpfs is new and ours (nothing in the container can have put a link in it
    // yet): each hierarchy's directory is made and opened right in it.
    let top = match tmpfs {
        Some(t) => t,
        None => fs::lookup(env.root, dest)?,
    };
    for h in hs {
        let Some(name) = h.mount_point.file_name() else {
            continue;
        };
        match nix::sys::stat::mkdirat(&top, name, Mode::from_bits_truncate(0o555)) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(e),
        }
        let (typ, data) = if h.v2 {
            ("cgroup2", String::new())
        } else {
            ("cgroup", h.controllers.join(","))
        };
        let at = Target::Entry(top.as_fd(), name);
        mount_or_bind(env, at, typ, &data, &h.mount_point, opts.flags)?;
    }
    // One recursive mount_setattr gives the tmpfs and every hierarchy in it the mount's
    // flags (read-only included, now that the hierarchies' directories are made).
    fs::set_attr(top.as_fd(), &attrs(opts.flags), true)
}

/// Where a cgroup mount goes: an opened directory, or an entry of one (a directory just
/// made in nook's own tmpfs, attached by name without opening it).
#[derive(Clone, Copy)]
enum Target<'a> {
    Fd(BorrowedFd<'a>),
    Entry(BorrowedFd<'a>, &'a std::ffi::OsStr),
}

impl Target<'_> {
    fn attach(self, tree: BorrowedFd) -> nix::Result<()> {
        match self {
            Target::Fd(fd) => fs::move_mount(tree, fd),
            Target::Entry(dir, name) => fs::move_mount_into(tree, dir, name),
        }
    }

    /// The mount(2) fallback (no new mount API) needs the directory itself.
    fn in_dir(self, f: impl FnOnce() -> nix::Result<()>) -> nix::Result<()> {
        match self {
            Target::Fd(fd) => fs::in_dir(fd, f),
            Target::Entry(dir, name) => {
                let sub = fs::beneath(dir, Path::new(name), libc::O_PATH | libc::O_DIRECTORY)?;
                fs::in_dir(sub.as_fd(), f)
            }
        }
    }
}

/// A fresh cgroup filesystem in a new cgroup namespace, else a bind of the container's
/// directory of the host's hierarchy.
fn mount_or_bind(
    env: &Env,
    target: Target,
    typ: &str,
    data: &str,
    host_mount: &Path,
    flags: MsFlags,
) -> nix::Result<()> {
    if env.new_cgroup_ns {
        let params: Vec<String> = data
            .split(',')
            .filter(|d| !d.is_empty())
            .map(str::to_string)
            .collect();
        let made = fs::new_fs(&fs::NewFs {
            typ,
            source: Some(typ),
            params: &params,
            sb_flags: &[],
            attr: attrs(flags).attr_set,
        });
        let r = match made {
            Ok(mnt) => target.attach(mnt.as_fd()),
            Err(nix::Error::ENOSYS) => {
                target.in_dir(|| mount(Some(typ), ".", Some(typ), flags, Some(data)))
            }
            Err(e) => Err(e),
        };
        if r != Err(nix::Error::EPERM) {
            return r;
        }
    }
    let tree = fs::clone_host_path(&host_mount.join(&env.cgroup.rel), true)?;
    if let Target::Fd(_) = target {
        // A lone cgroup2 mount gets its flags here; a tmpfs of hierarchies gets them
        // for all at once when they are in.
        fs::set_attr(tree.as_fd(), &attrs(flags), false)?;
    }
    target.attach(tree.as_fd())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn options() {
        let o = parse_options(&v(&[
            "rbind", "ro", "nosuid", "rslave", "mode=755", "size=1k",
        ]))
        .unwrap();
        assert_eq!(
            o.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        );
        assert_eq!(o.propagation, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(o.data, v(&["mode=755", "size=1k"]));
        let o = parse_options(&v(&["ro", "rw", "noexec", "exec"])).unwrap();
        assert!(o.flags.is_empty());
        assert!(parse_options(&v(&["idmap"])).is_err());
    }

    /// `nook features` lists only options nook takes.
    #[test]
    fn every_advertised_option_parses() {
        for o in crate::features::MOUNT_OPTIONS {
            assert!(parse_options(&v(&[o])).is_ok(), "{o}");
        }
    }

    #[test]
    fn recursive_options_and_tmpcopyup() {
        let o = parse_options(&v(&["rro", "rnosuid", "rnoatime", "tmpcopyup"])).unwrap();
        assert!(o.tmpcopyup);
        assert!(o.flags.is_empty());
        let r = o.recursive;
        assert_eq!(
            r.attr_set,
            fs::MOUNT_ATTR_RDONLY | fs::MOUNT_ATTR_NOSUID | fs::MOUNT_ATTR_NOATIME
        );
        assert_eq!(r.attr_clr, fs::MOUNT_ATTR_ATIME);
        // A later option undoes an earlier one; a later access-time mode replaces one.
        let r = parse_options(&v(&["rro", "rrw", "rnoatime", "rstrictatime"]))
            .unwrap()
            .recursive;
        assert_eq!(r.attr_set, fs::MOUNT_ATTR_STRICTATIME);
        assert_eq!(r.attr_clr, fs::MOUNT_ATTR_RDONLY | fs::MOUNT_ATTR_ATIME);
    }

    #[test]
    fn bind_flags_as_mount_attributes() {
        let a = attrs(MsFlags::MS_BIND | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(a.attr_set, fs::MOUNT_ATTR_RDONLY | fs::MOUNT_ATTR_NOSUID);
        assert_eq!(a.attr_clr, 0, "nothing is cleared, so locked flags stay");
        let a = attrs(MsFlags::MS_NOATIME | MsFlags::MS_NODEV);
        assert_eq!(a.attr_set, fs::MOUNT_ATTR_NOATIME | fs::MOUNT_ATTR_NODEV);
        assert_eq!(a.attr_clr, fs::MOUNT_ATTR_ATIME);
        assert_eq!(
            attrs(MsFlags::MS_BIND | MsFlags::MS_REC),
            fs::MountAttr::default()
        );
        let (p, rec) = propagation_attr(MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!((p.propagation, rec), (MsFlags::MS_SLAVE.bits(), true));
    }
}
