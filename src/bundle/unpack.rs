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
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{OFlag, RenameFlags};
use nix::sys::stat::Mode;
use sha2::{Digest, Sha256};

use super::BundleError;

#[path = "extract.rs"]
mod extract;
use extract::*;

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
    crate::fault::point("create.unpacked");
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

/// Sweep the bundle cache under a state root (`delete --force` of a killed create, whose
/// unpack may have been cut short).
pub fn sweep_cache(root: &Path) {
    sweep(&root.join("bundles"));
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
