//! Bundles given as tar files (plain, gzip or zstd, told apart by their magic bytes, not
//! their names): unpacked safely into a cache under `<root>/bundles/<digest>`, shared
//! read-only between containers, never half-written.
//!
//! Safety. Every file is made by an *at() call (O_CREAT|O_EXCL|O_NOFOLLOW, mkdirat,
//! symlinkat, linkat) on a directory fd opened with openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV) from the unpack directory: nothing is written
//! outside it, and no link is ever followed while unpacking. Refused, with an error
//! naming the entry (`BundleError::Entry`):
//! - an absolute path, a `..` component; a path through an earlier symlink or file;
//! - a duplicate (`a` and `./a` are one path); a directory entry after entries below it
//!   is fine;
//! - a hard link to anything but a regular file unpacked before it (by its path in the
//!   archive: absolute or `..` targets are refused like entry paths);
//! - a relative symlink whose target, resolved lexically from the link's directory in
//!   the bundle, climbs above the bundle root (`rootfs/l -> ../../..`);
//! - any symlink outside the rootfs (config.json's root.path, default `rootfs`, which
//!   must be a relative path inside the bundle): nook and its hooks read config.json,
//!   the templates and root.path on the host, where a link would be followed. Inside the
//!   rootfs an absolute target (`bin/sh -> /bin/busybox`) is fine: it means a path in the
//!   rootfs, which is how the container and nook's own lookups (RESOLVE_IN_ROOT) see it;
//! - device, fifo and sparse entries; setuid/setgid bits (or `strip_setid` clears them);
//! - an entry over `max_entry_size` or a sum over `max_total_size`, by the sizes the
//!   headers claim, before anything of it is written; more than `max_entries` entries;
//!   over 1 MiB of long-name/PAX headers before one entry (they are read into memory);
//! - a truncated or corrupt archive: short data, a cut header, no end-of-archive block,
//!   non-zero data after it, a broken gzip/zstd stream.
//!
//! Numeric owners are kept (as root), with modes and mtimes; names and xattrs are not.
//!
//! Cache. `<root>/bundles/<sha256 of the archive file's bytes, hashed while streaming>/`.
//! An unpack goes to `<root>/bundles/.tmp-<pid>-<n>` (flock'd while it runs), is synced
//! (syncfs) and renamed into place with RENAME_NOREPLACE: a racer that loses removes its
//! copy and uses the winner's. A failed unpack removes its directory; a crashed one's
//! (unlocked, its pid gone) is removed by the next unpack (the digest is only known at
//! the end, so tmp names carry the pid, not the digest). `bundles/` is root-only (0700,
//! like the state root): a host user owning files of a bundle cannot reach them there.
//! nook never writes into a cached bundle, and all containers of one archive share it,
//! so the caller must mount its rootfs read-only whatever root.readonly says
//! ([`Prepared::read_only`]). Options other than the defaults `prepare` uses get their
//! own entries (`<digest>-s1o1-<max entry>-<max total>-<max entries>`). No entry is ever removed: `rm -rf <root>/bundles` (with
//! no container running from it) clears the cache.
//!
//! Index. `<root>/bundles/index/<dev>-<ino>-<size>-<mtime_ns>-<ctime_ns>` holds the
//! digest of the tar file last seen with that identity, so a start from a cached tar
//! costs a stat and a 64-byte read instead of hashing the archive (tens of
//! microseconds). ctime, which no user can set, catches a file rewritten in place with
//! its size and mtime put back. A stale or missing index entry only costs a hash.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use sha2::{Digest, Sha256};

use super::BundleError;

/// Limits and choices of the unpacker.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Largest size of one entry (default 1 GiB).
    pub max_entry_size: u64,
    /// Largest sum of entry sizes (default 4 GiB).
    pub max_total_size: u64,
    /// Most entries (default 1,000,000).
    pub max_entries: u64,
    /// Clear setuid/setgid bits instead of refusing the entry.
    pub strip_setid: bool,
    /// Keep the entries' numeric owners (only when running as root).
    pub owners: bool,
    /// syncfs before the rename, so a cache entry survives a power loss whole.
    pub sync: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            max_entry_size: 1 << 30,
            max_total_size: 4 << 30,
            max_entries: 1_000_000,
            strip_setid: false,
            owners: true,
            sync: true,
        }
    }
}

impl UnpackOptions {
    /// The cache name suffix of these options: none for the defaults (what `prepare`
    /// uses), else one naming them, so an entry unpacked with looser options is never
    /// handed to a caller with stricter ones.
    fn variant(&self) -> String {
        let key = |o: &UnpackOptions| {
            let (s, w) = (o.strip_setid as u8, o.owners as u8);
            let (e, t, n) = (o.max_entry_size, o.max_total_size, o.max_entries);
            format!("-s{s}o{w}-{e}-{t}-{n}")
        };
        if key(self) == key(&UnpackOptions::default()) {
            return String::new();
        }
        key(self)
    }
}

/// A bundle ready to create a container from.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub dir: PathBuf,
    /// A cached bundle shared by containers: its rootfs must be mounted read-only
    /// whatever root.readonly says.
    pub read_only: bool,
    /// The archive's sha256 (hex), for a tar.
    pub digest: Option<String>,
    /// This call unpacked the archive (false: a directory, or found in the cache).
    pub unpacked: bool,
}

/// The bundle directory for `--bundle`: a directory as it is, or a tar unpacked (or
/// found already unpacked) in the cache under `root`.
pub fn prepare(root: &Path, bundle: &Path) -> Result<PathBuf, BundleError> {
    prepare_bundle(root, bundle, &UnpackOptions::default()).map(|p| p.dir)
}

/// [`prepare`], with options, saying whether the bundle is a shared cached one.
pub fn prepare_bundle(
    root: &Path,
    bundle: &Path,
    o: &UnpackOptions,
) -> Result<Prepared, BundleError> {
    let meta = std::fs::metadata(bundle).map_err(io_err("reading bundle", bundle))?;
    if meta.is_dir() {
        return Ok(Prepared {
            dir: bundle.to_path_buf(),
            read_only: false,
            digest: None,
            unpacked: false,
        });
    }
    if !meta.is_file() {
        return Err(archive_err(bundle, "not a directory nor a regular file"));
    }
    let cache = root.join("bundles");
    // The fast path: this very file was unpacked before.
    let variant = o.variant();
    if let Some(d) = indexed(&cache, &meta, &variant) {
        let dir = cache.join(format!("{d}{variant}"));
        if dir.is_dir() {
            return Ok(cached(dir, d, false));
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(io_err("creating state root", root))?;
    // Root only, like the state root: a host user owning files in a bundle must not
    // reach them in the cache, where other containers of the same digest use them.
    match std::fs::DirBuilder::new().mode(0o700).create(&cache) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err("creating bundle cache", &cache)(e)),
    }
    sweep(&cache);
    let file = open_archive(bundle)?;
    let meta = file.metadata().map_err(io_err("reading bundle", bundle))?;
    let tmp = TmpDir::new(&cache)?;
    let digest = unpack_into(bundle, &file, tmp.fd.as_fd(), o).inspect_err(|_| tmp.remove())?;
    let dir = cache.join(format!("{digest}{variant}"));
    let moved = nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &tmp.path,
        nix::fcntl::AT_FDCWD,
        &dir,
        RenameFlags::RENAME_NOREPLACE,
    );
    let unpacked = match moved {
        Ok(()) => true,
        // A racer (or an earlier copy of the same bytes) got there first: use it.
        Err(Errno::EEXIST) | Err(Errno::ENOTEMPTY) if dir.is_dir() => {
            tmp.remove();
            false
        }
        Err(e) => {
            tmp.remove();
            return Err(io_err("moving unpacked bundle into the cache", &dir)(
                e.into(),
            ));
        }
    };
    write_index(&cache, &meta, &variant, &digest);
    Ok(cached(dir, digest, unpacked))
}

/// Unpack `archive` (plain, gzip or zstd tar) into `dest`, which must not exist (it is
/// made, and removed again on failure); returns the archive's sha256.
pub fn unpack(archive: &Path, dest: &Path, o: &UnpackOptions) -> Result<String, BundleError> {
    let file = open_archive(archive)?;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dest)
        .map_err(io_err("creating", dest))?;
    let r = open_dir(dest).and_then(|fd| unpack_into(archive, &file, fd.as_fd(), o));
    if r.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    r
}

/// Open a bundle tar (O_NONBLOCK: a fifo swapped in since the stat cannot block us).
fn open_archive(p: &Path) -> Result<File, BundleError> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)
        .map_err(io_err("opening bundle", p))?;
    match f.metadata() {
        Ok(m) if m.is_file() => Ok(f),
        Ok(_) => Err(archive_err(p, "not a directory nor a regular file")),
        Err(e) => Err(io_err("reading bundle", p)(e)),
    }
}

fn cached(dir: PathBuf, digest: String, unpacked: bool) -> Prepared {
    Prepared {
        dir,
        read_only: true,
        digest: Some(digest),
        unpacked,
    }
}

fn io_err(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BundleError {
    let path = path.to_path_buf();
    move |source| BundleError::Io { step, path, source }
}

fn archive_err(archive: &Path, why: impl Into<String>) -> BundleError {
    BundleError::Archive {
        archive: archive.to_path_buf(),
        why: why.into(),
    }
}

fn open_dir(p: &Path) -> Result<OwnedFd, BundleError> {
    nix::fcntl::open(
        p,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err("opening", p)(e.into()))
}

// ---- the cache index and leftovers ----

fn index_key(m: &std::fs::Metadata) -> String {
    let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
    format!(
        "{}-{}-{}-{}-{}",
        m.dev(),
        m.ino(),
        m.size(),
        ns(m.mtime(), m.mtime_nsec()),
        ns(m.ctime(), m.ctime_nsec())
    )
}

fn indexed(cache: &Path, m: &std::fs::Metadata, variant: &str) -> Option<String> {
    let key = format!("{}{variant}", index_key(m));
    let mut f = File::open(cache.join("index").join(key)).ok()?;
    let mut buf = [0u8; 65];
    let n = f.read(&mut buf).ok()?;
    let d = std::str::from_utf8(&buf[..n]).ok()?;
    (d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())).then(|| d.to_string())
}

/// Best effort: a missing index entry only costs a hash at the next start.
fn write_index(cache: &Path, m: &std::fs::Metadata, variant: &str, digest: &str) {
    let dir = cache.join("index");
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    let key = format!("{}{variant}", index_key(m));
    let tmp = dir.join(format!(".{key}.{}", std::process::id()));
    if std::fs::write(&tmp, digest).is_ok() && std::fs::rename(&tmp, dir.join(&key)).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// An unpack directory, flock'd while this process works in it.
struct TmpDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl TmpDir {
    fn new(cache: &Path) -> Result<TmpDir, BundleError> {
        let pid = std::process::id();
        for n in 0.. {
            let path = cache.join(format!(".tmp-{pid}-{n}"));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => continue,
                Err(e) => return Err(io_err("creating", &path)(e)),
            }
            let fd = open_dir(&path)?;
            // SAFETY: flock on an fd we own; no memory is involved.
            let r = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            Errno::result(r).map_err(|e| io_err("locking", &path)(e.into()))?;
            return Ok(TmpDir { path, fd });
        }
        unreachable!()
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Remove what crashed unpacks left: `.tmp-<pid>-<n>` dirs nobody holds locked whose
/// pid is gone (a live unpacker holds its lock from just after its mkdir; a pid still
/// alive may be that moment, so it waits for a later sweep).
fn sweep(cache: &Path) {
    let Ok(rd) = std::fs::read_dir(cache) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(".tmp-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        let path = e.path();
        let Ok(fd) = open_dir(&path) else { continue };
        // SAFETY: flock on an fd we own.
        let free = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        let gone =
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(Errno::ESRCH);
        if free && gone {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

// ---- reading the archive ----

/// Hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: Read> Hashing<R> {
    /// Read to the end (so the digest covers every byte of the file) and finish.
    fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        let d = self.hash.finalize();
        Ok(d.iter().map(|b| format!("{b:02x}")).collect())
    }
}

/// Counts the bytes of the tar stream the tar crate reads, and stops it at `limit`: the
/// crate reads GNU long names and PAX headers into memory, which a compressed archive
/// could make huge.
struct Counting<R> {
    inner: R,
    pos: u64,
    limit: Rc<Cell<u64>>,
}

/// The most extension-header bytes (long names, PAX records) before one entry.
const MAX_META: u64 = 1 << 20;

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.limit.get().saturating_sub(self.pos);
        if room == 0 && !buf.is_empty() {
            return Err(io::Error::other(format!(
                "over {MAX_META} bytes of long-name or PAX headers before an entry"
            )));
        }
        let k = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..k])?;
        self.pos += n as u64;
        Ok(n)
    }
}

enum Format {
    Tar,
    Gzip,
    Zstd,
}

fn detect(archive: &Path, file: &File) -> Result<Format, BundleError> {
    let mut b = [0u8; 512];
    let mut n = 0;
    while n < b.len() {
        match file.read_at(&mut b[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err("reading bundle", archive)(e)),
        }
    }
    let b = &b[..n];
    if b.starts_with(&[0x1f, 0x8b]) {
        return Ok(Format::Gzip);
    }
    if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Ok(Format::Zstd);
    }
    if n == 512 && (&b[257..262] == b"ustar" || b.iter().all(|&x| x == 0) || v7_checksum_ok(b)) {
        return Ok(Format::Tar);
    }
    Err(archive_err(
        archive,
        "not a bundle: neither a directory nor a tar, gzip or zstd file",
    ))
}

fn v7_checksum_ok(h: &[u8]) -> bool {
    let field = std::str::from_utf8(&h[148..156]).unwrap_or("");
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == ' ' || c == '\0'), 8)
    else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if (148..156).contains(&i) {
                32
            } else {
                x as u32
            }
        })
        .sum();
    sum == want
}

/// Unpack the archive in `file` into the empty directory `dest`; returns its digest.
fn unpack_into(
    archive: &Path,
    file: &File,
    dest: BorrowedFd,
    o: &UnpackOptions,
) -> Result<String, BundleError> {
    let format = detect(archive, file)?;
    let mut u = Unpacker::new(archive, dest, o);
    let corrupt = |e: io::Error| archive_err(archive, format!("corrupt or truncated: {e}"));
    let hashing = Hashing {
        inner: file,
        hash: Sha256::new(),
    };
    let hashing = match format {
        Format::Tar => u
            .stream(io::BufReader::with_capacity(1 << 18, hashing))?
            .into_inner(),
        Format::Gzip => u
            .stream(flate2::read::MultiGzDecoder::new(hashing))?
            .into_inner(),
        Format::Zstd => {
            let d = zstd::stream::read::Decoder::new(hashing).map_err(corrupt)?;
            u.stream(d)?.finish().into_inner()
        }
    };
    let digest = hashing
        .finish()
        .map_err(io_err("reading bundle", archive))?;
    u.finish()?;
    if o.sync {
        // SAFETY: syncfs on an fd we borrow.
        let r = unsafe { libc::syncfs(dest.as_raw_fd()) };
        Errno::result(r).map_err(|e| io_err("syncing unpacked bundle", archive)(e.into()))?;
    }
    Ok(digest)
}

// ---- writing the tree ----

#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

enum Node {
    /// A directory: its entry's metadata, or None when made for an entry below it.
    Dir(Option<Meta>),
    File,
    Symlink,
}

struct Unpacker<'a> {
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
struct Refused(String);

fn refuse<T>(why: impl Into<String>) -> Result<T, Refused> {
    Err(Refused(why.into()))
}

impl<'a> Unpacker<'a> {
    fn new(archive: &'a Path, root: BorrowedFd<'a>, o: &'a UnpackOptions) -> Self {
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
    fn stream<R: Read>(&mut self, r: R) -> Result<R, BundleError> {
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
    fn finish(mut self) -> Result<(), BundleError> {
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

enum Kind {
    Dir,
    File,
    Symlink,
    Hardlink,
}

/// Why an entry failed: refused, the archive could not be read, or the file system
/// said no.
enum Step {
    Refused(Refused),
    Read(io::Error),
    Write(io::Error),
}

impl From<Refused> for Step {
    fn from(r: Refused) -> Step {
        Step::Refused(r)
    }
}

fn werr(e: Errno) -> Step {
    Step::Write(e.into())
}

/// An entry's path, relative, without `.` or empty components; absolute paths and `..`
/// are refused.
fn normalize(raw: &[u8]) -> Result<PathBuf, Refused> {
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
fn escapes(dir: &Path, target: &[u8]) -> bool {
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
fn beneath(root: BorrowedFd, rel: &Path, flags: i32) -> nix::Result<OwnedFd> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(normalize(b"./a//b/./c/").ok(), Some(PathBuf::from("a/b/c")));
        assert!(normalize(b"/etc/x").is_err());
        assert!(normalize(b"a/../../x").is_err());
        assert_eq!(normalize(b"./").ok(), Some(PathBuf::new()));
    }

    #[test]
    fn symlink_escape() {
        assert!(!escapes(Path::new("rootfs/bin"), b"busybox"));
        assert!(!escapes(Path::new("rootfs/usr/bin"), b"../../bin/sh"));
        assert!(escapes(Path::new("rootfs"), b"../../.."));
        assert!(escapes(Path::new(""), b".."));
        assert!(!escapes(Path::new("rootfs"), b"../config.json"));
    }
}
