//! Writing a bundle tar's entries into the target: every path created beneath it
//! with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), each refused entry named.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use super::super::BundleError;
use super::*;

// ---- writing the tree ----

#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

pub(super) enum Node {
    /// A directory: its entry's metadata, or None when made for an entry below it.
    Dir(Option<Meta>),
    File,
    Symlink,
}

pub(super) struct Unpacker<'a> {
    archive: &'a Path,
    root: BorrowedFd<'a>,
    o: &'a UnpackOptions,
    owners: bool,
    nodes: HashMap<PathBuf, Node>,
    /// The bundle root's own entry ("./").
    root_meta: Option<Meta>,
    symlinks: Vec<(PathBuf, String)>,
    total: u64,
    buf: Vec<u8>,
    /// The last parent directory opened, reused by the entries that follow in it.
    parent: Option<(PathBuf, OwnedFd)>,
}

/// What a refused entry's error needs.
pub(super) struct Refused(String);

pub(super) fn refuse<T>(why: impl Into<String>) -> Result<T, Refused> {
    Err(Refused(why.into()))
}

impl<'a> Unpacker<'a> {
    pub(super) fn new(archive: &'a Path, root: BorrowedFd<'a>, o: &'a UnpackOptions) -> Self {
        Unpacker {
            archive,
            root,
            o,
            owners: o.owners && nix::unistd::geteuid().is_root(),
            nodes: HashMap::new(),
            root_meta: None,
            symlinks: vec![],
            total: 0,
            buf: vec![0; 1 << 18],
            parent: None,
        }
    }

    fn entry_err(&self, entry: &str, why: String) -> BundleError {
        BundleError::Entry {
            archive: self.archive.to_path_buf(),
            entry: entry.to_string(),
            why,
        }
    }

    /// Every entry of the tar stream `r`; returns `r` once the end-of-archive block and
    /// the (all-zero) rest of the stream have been read.
    pub(super) fn stream<R: Read>(&mut self, r: R) -> Result<R, BundleError> {
        let archive = self.archive;
        let corrupt = |e: io::Error| archive_err(archive, format!("corrupt or truncated: {e}"));
        let limit = Rc::new(Cell::new(MAX_META));
        let mut ar = tar::Archive::new(Counting {
            inner: r,
            pos: 0,
            limit: limit.clone(),
        });
        let mut end = 0;
        let mut count = 0u64;
        for e in ar.entries().map_err(corrupt)? {
            let mut e = e.map_err(corrupt)?;
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let size = e.size();
            end = e.raw_file_position() + size.div_ceil(512) * 512;
            // The entry's data, then the next entry's headers.
            limit.set(end.saturating_add(MAX_META));
            count += 1;
            if count > self.o.max_entries {
                let why = format!("over the limit of {} entries", self.o.max_entries);
                return Err(self.entry_err(&name, why));
            }
            match self.entry(&mut e) {
                Ok(()) => {}
                Err(Step::Refused(Refused(why))) => return Err(self.entry_err(&name, why)),
                Err(Step::Read(err)) => {
                    let why = format!("corrupt or truncated archive: {err}");
                    return Err(self.entry_err(&name, why));
                }
                Err(Step::Write(err)) => {
                    return Err(self.entry_err(&name, format!("writing: {err}")))
                }
            }
        }
        let mut c = ar.into_inner();
        limit.set(u64::MAX);
        // The tar crate stops at the first zero block, or at EOF where a header should
        // be: only the first is a whole archive.
        if c.pos < end + 512 {
            return Err(archive_err(
                self.archive,
                "truncated: no end-of-archive block",
            ));
        }
        loop {
            let n = match c.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(corrupt(e)),
            };
            if self.buf[..n].iter().any(|&b| b != 0) {
                return Err(archive_err(
                    self.archive,
                    "data after the end-of-archive block",
                ));
            }
        }
        Ok(c.inner)
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<R>) -> Result<(), Step> {
        let raw = e.path_bytes().into_owned();
        let rel = normalize(&raw)?;
        let h = e.header();
        let size = e.size();
        if size > self.o.max_entry_size {
            refuse(format!(
                "size {size} is over the limit of {} bytes per entry",
                self.o.max_entry_size
            ))?;
        }
        let mut ty = h.entry_type();
        if ty == tar::EntryType::Regular && raw.ends_with(b"/") {
            ty = tar::EntryType::Directory; // old tars' directories
        }
        let kind = match ty {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Link => Kind::Hardlink,
            tar::EntryType::XGlobalHeader => return Ok(()),
            tar::EntryType::Char | tar::EntryType::Block => refuse("a device node")?,
            tar::EntryType::Fifo => refuse("a fifo")?,
            tar::EntryType::GNUSparse => refuse("a sparse file (not supported)")?,
            t => refuse(format!("unsupported entry type {:?}", t.as_byte() as char))?,
        };
        let bad = |what: &str, err: io::Error| Refused(format!("bad {what} field: {err}"));
        let id = |v: u64, what: &str| {
            u32::try_from(v)
                .ok()
                .filter(|&v| v != u32::MAX)
                .ok_or_else(|| Refused(format!("{what} {v} out of range")))
        };
        let mut meta = Meta {
            mode: h.mode().map_err(|err| bad("mode", err))? & 0o7777,
            uid: id(h.uid().map_err(|err| bad("uid", err))?, "uid")?,
            gid: id(h.gid().map_err(|err| bad("gid", err))?, "gid")?,
            mtime: h
                .mtime()
                .map_err(|err| bad("mtime", err))?
                .min(i64::MAX as u64) as i64,
        };
        if meta.mode & 0o6000 != 0 && matches!(kind, Kind::File | Kind::Dir) {
            if !self.o.strip_setid {
                refuse(format!("setuid/setgid mode {:o} refused", meta.mode))?;
            }
            meta.mode &= !0o6000;
        }
        if rel.as_os_str().is_empty() {
            // "./": the bundle root itself.
            if !matches!(kind, Kind::Dir) {
                refuse("the bundle root must be a directory")?;
            }
            if self.root_meta.is_some() {
                refuse("duplicate entry")?;
            }
            self.root_meta = Some(meta);
            return Ok(());
        }
        self.parents(&rel)?;
        match (self.nodes.get(&rel), &kind) {
            (None, _) => {}
            (Some(Node::Dir(None)), Kind::Dir) => {
                self.nodes.insert(rel, Node::Dir(Some(meta)));
                return Ok(());
            }
            (Some(Node::Dir(None)), _) => {
                refuse("duplicate entry: a directory of that name holds earlier entries")?
            }
            (Some(_), _) => refuse("duplicate entry")?,
        }
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let name = rel.file_name().expect("a normal last component").to_owned();
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        match kind {
            Kind::Dir => {
                let p = self.parent_fd(&parent_rel)?;
                nix::sys::stat::mkdirat(p, name.as_os_str(), Mode::from_bits_truncate(0o700))
                    .map_err(werr)?;
                self.nodes.insert(rel, Node::Dir(Some(meta)));
            }
            Kind::File => {
                self.total += size;
                if self.total > self.o.max_total_size {
                    refuse(format!(
                        "the archive's entries are over the total limit of {} bytes",
                        self.o.max_total_size
                    ))?;
                }
                let p = self.parent_fd(&parent_rel)?;
                let fd = nix::fcntl::openat(
                    p,
                    name.as_os_str(),
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(werr)?;
                self.nodes.insert(rel, Node::File);
                let mut f = File::from(fd);
                let n = self.copy(e, &mut f)?;
                if n != size {
                    return Err(Step::Read(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the data of an entry ends after {n} of {size} bytes"),
                    )));
                }
                self.set_meta(f.as_fd(), &meta)?;
            }
            Kind::Hardlink => {
                let target = link.ok_or_else(|| Refused("a hard link without a target".into()))?;
                let t = normalize(&target).map_err(|Refused(why)| {
                    Refused(format!(
                        "hard link target {:?}: {why}",
                        String::from_utf8_lossy(&target)
                    ))
                })?;
                if !matches!(self.nodes.get(&t), Some(Node::File)) {
                    refuse(format!(
                        "hard link to {:?}, which is not a regular file unpacked before it",
                        String::from_utf8_lossy(&target)
                    ))?;
                }
                let tname = t.file_name().expect("a file").to_owned();
                let tparent = t.parent().unwrap_or(Path::new("")).to_path_buf();
                let tp =
                    beneath(self.root, &tparent, libc::O_PATH | libc::O_DIRECTORY).map_err(werr)?;
                let p = self.parent_fd(&parent_rel)?;
                nix::unistd::linkat(tp, tname.as_os_str(), p, name.as_os_str(), AtFlags::empty())
                    .map_err(werr)?;
                self.nodes.insert(rel, Node::File);
            }
            Kind::Symlink => {
                let target = link.ok_or_else(|| Refused("a symlink without a target".into()))?;
                if target.is_empty() {
                    refuse("a symlink with an empty target")?;
                }
                let shown = String::from_utf8_lossy(&target).into_owned();
                if !target.starts_with(b"/") && escapes(&parent_rel, &target) {
                    refuse(format!(
                        "symlink target {shown:?} points outside the bundle"
                    ))?;
                }
                let owners = self.owners;
                let p = self.parent_fd(&parent_rel)?;
                nix::unistd::symlinkat(OsStr::from_bytes(&target), p, name.as_os_str())
                    .map_err(werr)?;
                if owners {
                    nix::unistd::fchownat(
                        p,
                        name.as_os_str(),
                        Some(Uid::from_raw(meta.uid)),
                        Some(Gid::from_raw(meta.gid)),
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(werr)?;
                }
                let t = TimeSpec::new(meta.mtime, 0);
                nix::sys::stat::utimensat(
                    p,
                    name.as_os_str(),
                    &TimeSpec::UTIME_OMIT,
                    &t,
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(werr)?;
                self.nodes.insert(rel.clone(), Node::Symlink);
                self.symlinks
                    .push((rel, String::from_utf8_lossy(&raw).into_owned()));
            }
        }
        Ok(())
    }

    /// Every ancestor of `rel` must be a directory (made here when missing), never a
    /// symlink or a file.
    fn parents(&mut self, rel: &Path) -> Result<(), Step> {
        let mut anc: Vec<&Path> = rel
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
            .collect();
        anc.reverse();
        for a in anc {
            match self.nodes.get(a) {
                Some(Node::Dir(_)) => {}
                Some(Node::Symlink) => refuse(format!(
                    "reached through the symlink {:?}",
                    a.to_string_lossy()
                ))?,
                Some(Node::File) => {
                    refuse(format!("{:?} is not a directory", a.to_string_lossy()))?
                }
                None => {
                    let name = a.file_name().expect("a normal component");
                    let pr = a.parent().unwrap_or(Path::new("")).to_path_buf();
                    let p = self.parent_fd(&pr)?;
                    nix::sys::stat::mkdirat(p, name, Mode::from_bits_truncate(0o700))
                        .map_err(werr)?;
                    self.nodes.insert(a.to_path_buf(), Node::Dir(None));
                }
            }
        }
        Ok(())
    }

    fn parent_fd(&mut self, rel: &Path) -> Result<BorrowedFd<'_>, Step> {
        if self.parent.as_ref().map(|(p, _)| p.as_path()) != Some(rel) {
            let fd = beneath(self.root, rel, libc::O_PATH | libc::O_DIRECTORY).map_err(werr)?;
            self.parent = Some((rel.to_path_buf(), fd));
        }
        Ok(self.parent.as_ref().expect("just set").1.as_fd())
    }

    fn copy(&mut self, r: &mut impl Read, f: &mut File) -> Result<u64, Step> {
        let mut n = 0u64;
        loop {
            let k = match r.read(&mut self.buf) {
                Ok(0) => return Ok(n),
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Step::Read(e)),
            };
            f.write_all(&self.buf[..k]).map_err(Step::Write)?;
            n += k as u64;
        }
    }

    fn set_meta(&self, fd: BorrowedFd, m: &Meta) -> Result<(), Step> {
        if self.owners {
            nix::unistd::fchown(fd, Some(Uid::from_raw(m.uid)), Some(Gid::from_raw(m.gid)))
                .map_err(werr)?;
        }
        nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(m.mode)).map_err(werr)?;
        nix::sys::stat::futimens(fd, &TimeSpec::UTIME_OMIT, &TimeSpec::new(m.mtime, 0))
            .map_err(werr)?;
        Ok(())
    }

    /// After the last entry: the rootfs and symlink checks, then the directories'
    /// modes, owners and times (deepest first, as a mode may close a directory).
    pub(super) fn finish(mut self) -> Result<(), BundleError> {
        self.parent = None;
        let rootfs = self.rootfs()?;
        for (rel, name) in &self.symlinks {
            if !(rel.starts_with(&rootfs) && rel != &rootfs) {
                return Err(self.entry_err(
                    name,
                    format!(
                        "a symlink outside the rootfs ({:?}): nook reads the bundle's own files \
                         on the host, where a link would be followed",
                        rootfs.to_string_lossy()
                    ),
                ));
            }
        }
        let mut dirs: Vec<(&PathBuf, Option<Meta>)> = self
            .nodes
            .iter()
            .filter_map(|(p, n)| match n {
                Node::Dir(m) => Some((p, *m)),
                _ => None,
            })
            .collect();
        dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
        let root = PathBuf::new();
        dirs.push((&root, self.root_meta));
        for (p, m) in dirs {
            let shown = match p.to_string_lossy() {
                s if s.is_empty() => ".".to_string(),
                s => s.into_owned(),
            };
            let fail = |e: Step| match e {
                Step::Refused(Refused(why)) => self.entry_err(&shown, why),
                Step::Read(e) | Step::Write(e) => self.entry_err(&shown, format!("{e}")),
            };
            let fd = beneath(self.root, p, libc::O_RDONLY | libc::O_DIRECTORY)
                .map_err(werr)
                .map_err(fail)?;
            match m {
                Some(m) => self.set_meta(fd.as_fd(), &m).map_err(fail)?,
                None => nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(0o755))
                    .map_err(werr)
                    .map_err(fail)?,
            }
        }
        Ok(())
    }

    /// config.json's root.path, relative to the bundle ("rootfs" when config.json is
    /// missing or unreadable: loading it fails later with the reason).
    fn rootfs(&self) -> Result<PathBuf, BundleError> {
        let default = PathBuf::from("rootfs");
        if !matches!(self.nodes.get(Path::new("config.json")), Some(Node::File)) {
            return Ok(default);
        }
        let Ok(fd) = beneath(self.root, Path::new("config.json"), libc::O_RDONLY) else {
            return Ok(default);
        };
        let mut text = String::new();
        if File::from(fd).read_to_string(&mut text).is_err() {
            return Ok(default);
        }
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            return Ok(default);
        };
        let Some(p) = v["root"]["path"].as_str() else {
            return Ok(default);
        };
        match normalize(p.as_bytes()) {
            Ok(r) if !r.as_os_str().is_empty() => Ok(r),
            _ => Err(self.entry_err(
                "config.json",
                format!("root.path {p:?}: a bundle tar's rootfs must be a directory inside it"),
            )),
        }
    }
}

pub(super) enum Kind {
    Dir,
    File,
    Symlink,
    Hardlink,
}

/// Why an entry failed: refused, the archive could not be read, or the file system
/// said no.
pub(super) enum Step {
    Refused(Refused),
    Read(io::Error),
    Write(io::Error),
}

impl From<Refused> for Step {
    fn from(r: Refused) -> Step {
        Step::Refused(r)
    }
}

pub(super) fn werr(e: Errno) -> Step {
    Step::Write(e.into())
}

/// An entry's path, relative, without `.` or empty components; absolute paths and `..`
/// are refused.
pub(super) fn normalize(raw: &[u8]) -> Result<PathBuf, Refused> {
    if raw.starts_with(b"/") {
        return refuse("an absolute path");
    }
    let mut p = PathBuf::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return refuse("a \"..\" path component"),
            c => p.push(OsStr::from_bytes(c)),
        }
    }
    debug_assert!(p.components().all(|c| matches!(c, Component::Normal(_))));
    Ok(p)
}

/// A relative symlink target, resolved lexically from the directory `dir` (relative to
/// the bundle), climbs above the bundle.
pub(super) fn escapes(dir: &Path, target: &[u8]) -> bool {
    let mut depth = dir.components().count();
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." if depth == 0 => return true,
            b".." => depth -= 1,
            _ => depth += 1,
        }
    }
    false
}

/// openat2 below `root` that never crosses a symlink, a magic link or a mount.
pub(super) fn beneath(root: BorrowedFd, rel: &Path, flags: i32) -> nix::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let resolve = libc::RESOLVE_BENEATH
        | libc::RESOLVE_NO_SYMLINKS
        | libc::RESOLVE_NO_MAGICLINKS
        | libc::RESOLVE_NO_XDEV;
    crate::linux::fs::openat2(root, rel, flags | libc::O_NOFOLLOW, 0, resolve)
}
