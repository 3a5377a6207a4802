//! The compiled-filter cache: `<root>/seccomp/<key>.bpf`, so a profile is compiled by
//! libseccomp once, not at every start (docker's default profile takes milliseconds).
//!
//! The key is the sha256 of everything the program depends on: the profile section as
//! nook reads it (listenerPath and listenerMetadata left out: they do not change the
//! program), the machine's architecture, the libseccomp version, the kernel release and
//! nook's own format version. A file holds a header and the program:
//!
//!     magic "NOOKBPF1" | key (32) | instruction count (u32 LE) | sha256 of the program (32)
//!     | program (8 bytes per instruction)
//!
//! A file whose size, magic, key or checksum does not match is never loaded: the
//! profile is compiled again and the file replaced. Files are written to a temporary
//! name (0600) and renamed into place, so a reader sees a whole file or none; the
//! directory is root's, 0700, and a file not owned by us or writable by others is
//! ignored. `rm -rf <root>/seccomp` is always safe.
//!
//! The cache is bounded: after a new file is stored, all but the newest `KEEP` programs
//! are removed, oldest first (by mtime: a profile still in use is compiled once more
//! and comes back), and so are temporary files a crashed writer left over an hour ago.
//! Keys change with the kernel release and libseccomp, so without this, every upgrade
//! would leave a generation of dead files behind.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"NOOKBPF1";
const HEADER: usize = 8 + 32 + 4 + 32;
/// Raised whenever compile() changes what it makes of a profile.
const FORMAT: &str = "nook-seccomp-1";
/// The kernel's limit on a filter's length (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;
/// How many compiled programs the cache keeps (a program is at most 32 KiB).
const KEEP: usize = 64;

pub type Key = [u8; 32];

/// The cache key of a profile on this machine.
pub fn key(s: &LinuxSeccomp) -> Key {
    let mut s = s.clone();
    s.set_listener_path(None);
    s.set_listener_metadata(None);
    let mut h = Sha256::new();
    let v = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    for part in [FORMAT, std::env::consts::ARCH, &v, &release] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    h.update(serde_json::to_vec(&s).expect("a profile serializes"));
    h.finalize().into()
}

fn hex(k: &Key) -> String {
    k.iter().map(|b| format!("{b:02x}")).collect()
}

fn dir(root: &Path) -> PathBuf {
    root.join("seccomp")
}

/// The cached program for `key`, if a whole, matching file is there.
pub fn load(root: &Path, key: &Key) -> Option<Vec<libc::sock_filter>> {
    let path = dir(root).join(format!("{}.bpf", hex(key)));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = f.metadata().ok()?;
    let euid = nix::unistd::geteuid().as_raw();
    if !meta.is_file() || meta.uid() != euid || meta.mode() & 0o022 != 0 {
        return None;
    }
    let mut buf = Vec::with_capacity(meta.len().min(1 << 20) as usize);
    f.read_to_end(&mut buf).ok()?;
    decode(&buf, key)
}

/// The program in a cache file's bytes, when header, length and checksum all match.
pub fn decode(buf: &[u8], key: &Key) -> Option<Vec<libc::sock_filter>> {
    if buf.len() < HEADER || &buf[..8] != MAGIC || &buf[8..40] != key {
        return None;
    }
    let n = u32::from_le_bytes(buf[40..44].try_into().ok()?) as usize;
    let prog = &buf[HEADER..];
    if n == 0 || n > MAX_INSNS || prog.len() != n * 8 {
        return None;
    }
    if Sha256::digest(prog)[..] != buf[44..76] {
        return None;
    }
    Some(
        prog.chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// A cache file's bytes for `prog`.
pub fn encode(key: &Key, prog: &[libc::sock_filter]) -> Vec<u8> {
    let mut body = Vec::with_capacity(prog.len() * 8);
    for i in prog {
        body.extend_from_slice(&i.code.to_le_bytes());
        body.extend_from_slice(&[i.jt, i.jf]);
        body.extend_from_slice(&i.k.to_le_bytes());
    }
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(key);
    out.extend_from_slice(&(prog.len() as u32).to_le_bytes());
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    out
}

/// Store a program; a failure only means the next start compiles again.
pub fn store(root: &Path, key: &Key, prog: &[libc::sock_filter]) {
    let _ = try_store(root, key, prog);
}

fn try_store(root: &Path, key: &Key, prog: &[libc::sock_filter]) -> std::io::Result<()> {
    let d = dir(root);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)?;
    // Only a directory of ours that nobody else may write into.
    let meta = std::fs::symlink_metadata(&d)?;
    if !meta.is_dir() || meta.uid() != nix::unistd::geteuid().as_raw() || meta.mode() & 0o022 != 0 {
        return Err(std::io::ErrorKind::PermissionDenied.into());
    }
    let name = hex(key);
    let tmp = d.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        f.write_all(&encode(key, prog))?;
        // Readers check the checksum, so no fsync: a torn file after a crash is only
        // compiled again.
        std::fs::rename(&tmp, d.join(format!("{name}.bpf")))
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    prune(&d, KEEP);
    r
}

/// Remove all but the `keep` newest programs in `d`, and temporary files older than an
/// hour. Only called after a store (a cache miss), so a start that hits pays nothing.
fn prune(d: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(d) else {
        return;
    };
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let mut progs = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Ok(meta) = e.metadata() else { continue };
        let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        if name.ends_with(".bpf") {
            progs.push((mtime, e.path()));
        } else if name.starts_with('.') && name.ends_with(".tmp") && mtime < hour_ago {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if progs.len() > keep {
        progs.sort();
        for (_, p) in &progs[..progs.len() - keep] {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prog() -> Vec<libc::sock_filter> {
        (0..10)
            .map(|i| libc::sock_filter {
                code: 0x15,
                jt: i as u8,
                jf: 1,
                k: 0xdead_0000 + i,
            })
            .collect()
    }

    fn same(a: &[libc::sock_filter], b: &[libc::sock_filter]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k))
    }

    #[test]
    fn round_trip_and_corruption_is_refused() {
        let key = [7u8; 32];
        let bytes = encode(&key, &prog());
        assert!(same(&decode(&bytes, &key).unwrap(), &prog()));
        // Another key, a truncated file, a flipped bit, a trailing byte: all refused.
        assert!(decode(&bytes, &[8u8; 32]).is_none());
        assert!(decode(&bytes[..bytes.len() - 8], &key).is_none());
        assert!(decode(&bytes[..bytes.len() - 3], &key).is_none());
        let mut flipped = bytes.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(decode(&flipped, &key).is_none());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&longer, &key).is_none());
        assert!(decode(&[], &key).is_none());
    }

    #[test]
    fn store_then_load() {
        let root = std::env::temp_dir().join(format!("nook-seccomp-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let key = [1u8; 32];
        assert!(load(&root, &key).is_none());
        store(&root, &key, &prog());
        assert!(same(&load(&root, &key).unwrap(), &prog()));
        let m = std::fs::metadata(dir(&root)).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700);
        let file = dir(&root).join(format!("{}.bpf", hex(&key)));
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        // Truncated on disk: not loaded.
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 4]).unwrap();
        assert!(load(&root, &key).is_none());
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Past KEEP programs the oldest go first; the newest (the one just stored) stays,
    /// and so does a fresh temporary file of a writer at work.
    #[test]
    fn the_cache_keeps_the_newest_programs() {
        let root = std::env::temp_dir().join(format!("nook-seccomp-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let d = dir(&root);
        let age = |path: &Path, secs: u64| {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000 + secs);
            let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
            f.set_modified(t).unwrap();
        };
        for i in 0..KEEP as u8 {
            store(&root, &[i; 32], &prog());
            age(&d.join(format!("{}.bpf", hex(&[i; 32]))), i as u64);
        }
        let stale = d.join(".dead.1.tmp");
        std::fs::write(&stale, b"x").unwrap();
        age(&stale, 0);
        let busy = d.join(".busy.2.tmp");
        std::fs::write(&busy, b"x").unwrap();
        store(&root, &[200; 32], &prog());
        let count = std::fs::read_dir(&d)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".bpf")
            })
            .count();
        let there = |k: u8| load(&root, &[k; 32]).is_some();
        let (oldest_gone, next_kept, newest_kept) = (!there(0), there(1), there(200));
        let (stale_gone, busy_kept) = (!stale.exists(), busy.exists());
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(count, KEEP);
        assert!(oldest_gone && next_kept && newest_kept);
        assert!(stale_gone && busy_kept);
    }

    #[test]
    fn key_ignores_the_listener_but_not_the_rules() {
        let p = |json: &str| -> LinuxSeccomp { serde_json::from_str(json).unwrap() };
        let a = p(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_NOTIFY"}],"listenerPath":"/a"}"#,
        );
        let b = p(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_NOTIFY"}],"listenerPath":"/b","listenerMetadata":"x"}"#,
        );
        let c = p(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_NOTIFY"}],"listenerPath":"/a"}"#,
        );
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
    }
}
