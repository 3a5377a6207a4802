//! Bind mount sources for a container in a user namespace (new, or joined by path as a
//! Kubernetes pod's containers join the pod's), cloned by nook itself.
//!
//! The init of such a container is root only inside its namespace: on the host it is
//! an unprivileged uid, which may not even reach a source. podman, for one, keeps the
//! files it binds (hosts, resolv.conf, .containerenv) under 0700 directories of its
//! own. So the parent, still the host's root, enters the init's mount namespace (setns)
//! and clones each source there (open_tree, OPEN_TREE_CLONE), then hands the detached
//! trees to the init over the sync channel (`Msg::MountSource`), which attaches them
//! as it would its own clones (mounts.rs). runc opens sources for its init the same way.
//!
//! The clones are taken inside the container's mount namespace, not the host's: there
//! the kernel has locked the host's mounts (the namespace belongs to a less privileged
//! user namespace), and a clone keeps those locks, so the container cannot unmount a
//! submount of an rbind to see what it covers.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::Mount;

use super::fs;
use super::mounts::{host_source, is_bind, parse_options};
use super::sync::{Channel, InitError, Msg};

/// The bind mounts among `mounts`: (index, absolute source, recursive).
pub fn binds(mounts: &[Mount], bundle: &Path) -> Vec<(usize, PathBuf, bool)> {
    let mut out = vec![];
    for (i, m) in mounts.iter().enumerate() {
        let Ok(opts) = parse_options(m.options().as_deref().unwrap_or_default()) else {
            continue; // the init reports the bad option, naming it
        };
        let typ = m.typ().as_deref().unwrap_or("");
        match m.source() {
            Some(source) if is_bind(typ, &opts) => {
                let rec = opts.flags.contains(nix::mount::MsFlags::MS_REC);
                out.push((i, host_source(source, bundle), rec));
            }
            _ => {}
        }
    }
    out
}

/// In nook: clone the bind sources inside the mount namespace of `pid` and send each
/// to it. Returns with nook back in its own mount namespace, root and working directory.
pub fn send(pid: i32, binds: &[(usize, PathBuf, bool)], chan: &Channel) -> Result<(), InitError> {
    if binds.is_empty() {
        return Ok(());
    }
    let open = |p: &str| {
        nix::fcntl::open(
            p,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| InitError::sys("opening a mount namespace", Some(p), e))
    };
    let own = open("/proc/self/ns/mnt")?;
    let theirs = open(&format!("/proc/{pid}/ns/mnt"))?;
    let dir = |p: &str| {
        nix::fcntl::open(
            p,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| InitError::sys("opening a directory to come back to", Some(p), e))
    };
    // setns resets both to the namespace's root: nook may itself run chrooted.
    let (root, cwd) = (dir("/")?, dir(".")?);
    nix::sched::setns(theirs.as_fd(), CloneFlags::CLONE_NEWNS)
        .map_err(|e| InitError::sys("entering the container's mount namespace", None, e))?;
    let sent = clone_and_send(binds, chan);
    // Back home before anything else, whatever happened: nothing else nook does may
    // run in the container's namespace.
    if let Err(e) = nix::sched::setns(own.as_fd(), CloneFlags::CLONE_NEWNS)
        .and_then(|()| nix::unistd::fchdir(&root))
        .and_then(|()| nix::unistd::chroot("."))
        .and_then(|()| nix::unistd::fchdir(&cwd))
    {
        // Not recoverable: every later path would resolve in the container's view.
        eprintln!("nook: leaving the container's mount namespace: {e}");
        std::process::abort();
    }
    sent
}

fn clone_and_send(binds: &[(usize, PathBuf, bool)], chan: &Channel) -> Result<(), InitError> {
    for (i, source, rec) in binds {
        let tree: OwnedFd = fs::clone_host_path(source, *rec).map_err(|e| {
            InitError::sys(
                format!("mounts[{i}].source"),
                Some(&source.to_string_lossy()),
                e,
            )
        })?;
        chan.send_fd(&Msg::MountSource(*i), &tree)
            .map_err(|e| InitError::sys("sending a mount source to the init", None, e))?;
    }
    Ok(())
}
