//! Bundle tars: a corpus of hostile archives (each refused, naming the entry, with the
//! host and the cache untouched), good bundles as plain, gzip and zstd tars run by
//! `nook run --bundle app.tar`, the cache reused by a second run, racing unpacks,
//! leftovers of a crashed unpack, and the options (limits, setuid stripping).

mod common;

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{fails, ok, report, text, Bundle};
use nook::bundle::unpack::{prepare_bundle, unpack, Prepared, UnpackOptions};
use nook::bundle::BundleError;

// ---- tars written by hand, 512-byte headers and all ----

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0w$o}\0", v, w = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

fn header(name: &str, ty: u8, size: u64, mode: u32, link: &str) -> [u8; 512] {
    let mut h = [0u8; 512];
    assert!(name.len() <= 100 && link.len() <= 100);
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = ty;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[derive(Clone)]
struct Tar(Vec<u8>);

const CONFIG: &str =
    r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"args":["/x"],"cwd":"/"}}"#;

impl Tar {
    /// config.json and rootfs/, as a bundle starts.
    fn bundle() -> Tar {
        Tar(vec![])
            .file("config.json", CONFIG.as_bytes(), 0o644)
            .dir("rootfs/")
    }

    fn entry(mut self, name: &str, ty: u8, mode: u32, data: &[u8], link: &str) -> Tar {
        self.0
            .extend_from_slice(&header(name, ty, data.len() as u64, mode, link));
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
        self
    }

    fn file(self, name: &str, data: &[u8], mode: u32) -> Tar {
        self.entry(name, b'0', mode, data, "")
    }

    fn dir(self, name: &str) -> Tar {
        self.entry(name, b'5', 0o755, b"", "")
    }

    fn symlink(self, name: &str, target: &str) -> Tar {
        self.entry(name, b'2', 0o777, b"", target)
    }

    fn link(self, name: &str, target: &str) -> Tar {
        self.entry(name, b'1', 0o644, b"", target)
    }

    /// A header alone (for claimed sizes and special files).
    fn raw(mut self, h: [u8; 512]) -> Tar {
        self.0.extend_from_slice(&h);
        self
    }

    /// With the end-of-archive blocks.
    fn end(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0; 1024]);
        self.0
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(vec![], flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zstd(b: &[u8]) -> Vec<u8> {
    zstd::encode_all(b, 3).unwrap()
}

/// Every path below `dir` (relative), sorted.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// What of the host a hostile archive aims at.
struct HostWatch {
    passwd: (u64, i64, i64, u64),
    evil: Vec<PathBuf>,
}

fn host_watch(tag: &str) -> HostWatch {
    let m = fs::metadata("/etc/passwd").unwrap();
    HostWatch {
        passwd: (m.nlink(), m.mtime(), m.ctime(), m.size()),
        evil: ["/etc", "/", "/tmp"]
            .iter()
            .map(|d| Path::new(d).join(tag))
            .collect(),
    }
}

impl HostWatch {
    fn check(&self) {
        let m = fs::metadata("/etc/passwd").unwrap();
        assert_eq!(
            self.passwd,
            (m.nlink(), m.mtime(), m.ctime(), m.size()),
            "/etc/passwd changed"
        );
        for p in &self.evil {
            assert!(!p.exists(), "{} appeared on the host", p.display());
        }
    }
}

/// The hostile corpus: (name, archive, words the error must hold).
fn corpus(tag: &str) -> Vec<(&'static str, Vec<u8>, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let evil = format!("etc/{tag}");
    let good = Tar::bundle().file("rootfs/a", b"hello", 0o644);
    let mut truncated_data = good
        .clone()
        .raw(header("rootfs/big", b'0', 4000, 0o644, ""));
    truncated_data.0.extend_from_slice(&[7; 1500]);
    let mut cut_header = good.clone().0;
    cut_header.extend_from_slice(&header("rootfs/b", b'0', 0, 0o644, "")[..300]);
    let mut trailing = good.clone().end();
    trailing.extend_from_slice(&[1; 512]);
    // The same traversal in a GNU long name and in a PAX path.
    let long = format!("{}/../../../../{evil}", "d".repeat(120));
    let mut name = long.clone().into_bytes();
    name.push(0);
    let gnu_long = good
        .clone()
        .entry("././@LongLink", b'L', 0o644, &name, "")
        .file("short", b"x", 0o644)
        .end();
    let rec = |k: &str, v: &str| {
        let body = format!(" {k}={v}\n");
        let mut n = body.len() + 1;
        while format!("{n}{body}").len() != n {
            n += 1;
        }
        format!("{n}{body}")
    };
    let pax_path = good
        .clone()
        .entry(
            "PaxHeaders/x",
            b'x',
            0o644,
            rec("path", &format!("../{evil}")).as_bytes(),
            "",
        )
        .file("short", b"x", 0o644)
        .end();
    // A long name of 8 MiB (the tar crate reads it into memory), compressed to little.
    let name_bomb = zstd(
        &good
            .clone()
            .entry("././@LongLink", b'L', 0o644, &vec![b'a'; 8 << 20], "")
            .file("short", b"x", 0o644)
            .end(),
    );
    let gz = gzip(&good.clone().end());
    let zs = zstd(&good.clone().end());
    vec![
        (
            "traversal",
            good.clone()
                .file(&format!("../../{evil}"), b"x", 0o644)
                .end(),
            s(&["../../etc/", ".."]),
        ),
        (
            "traversal inside",
            good.clone()
                .file(&format!("rootfs/../../../{evil}"), b"x", 0o644)
                .end(),
            s(&[".."]),
        ),
        ("GNU long name", gnu_long, s(&["dddd", "../../", ".."])),
        ("PAX path", pax_path, s(&["../etc/", ".."])),
        (
            "long-name bomb",
            name_bomb,
            s(&["long-name or PAX headers"]),
        ),
        (
            "absolute",
            good.clone().file(&format!("/{evil}"), b"x", 0o644).end(),
            s(&["absolute"]),
        ),
        (
            "through a symlink",
            good.clone()
                .symlink("rootfs/l", "/")
                .file(&format!("rootfs/l/{evil}"), b"x", 0o644)
                .end(),
            s(&["rootfs/l/etc", "through the symlink"]),
        ),
        (
            "symlink up",
            good.clone().symlink("rootfs/l", "../../..").end(),
            s(&["rootfs/l", "outside the bundle"]),
        ),
        (
            "symlink up deep",
            good.clone()
                .symlink("rootfs/usr/lib/l", "../../../../etc")
                .end(),
            s(&["rootfs/usr/lib/l", "outside the bundle"]),
        ),
        (
            "rootfs is a symlink",
            Tar(vec![])
                .file("config.json", CONFIG.as_bytes(), 0o644)
                .symlink("rootfs", "/")
                .end(),
            s(&["rootfs", "outside the rootfs"]),
        ),
        (
            "config.json is a symlink",
            Tar(vec![])
                .symlink("config.json", "/etc/shadow")
                .dir("rootfs/")
                .end(),
            s(&["config.json", "outside the rootfs"]),
        ),
        (
            "rootfs path outside",
            Tar(vec![])
                .file(
                    "config.json",
                    br#"{"root":{"path":"/"},"process":{"args":["/x"]}}"#,
                    0o644,
                )
                .end(),
            s(&["root.path"]),
        ),
        (
            "hard link to /etc/passwd",
            good.clone().link("rootfs/p", "/etc/passwd").end(),
            s(&["rootfs/p", "absolute"]),
        ),
        (
            "hard link up",
            good.clone().link("rootfs/p", "../../x").end(),
            s(&["rootfs/p", ".."]),
        ),
        (
            "hard link to a directory",
            good.clone().link("rootfs/p", "rootfs").end(),
            s(&["rootfs/p", "not a regular file"]),
        ),
        (
            "hard link to a later file",
            good.clone()
                .link("rootfs/p", "rootfs/q")
                .file("rootfs/q", b"q", 0o644)
                .end(),
            s(&["rootfs/p", "not a regular file unpacked before"]),
        ),
        (
            "hard link to a symlink",
            good.clone()
                .symlink("rootfs/s", "/etc/passwd")
                .link("rootfs/p", "rootfs/s")
                .end(),
            s(&["rootfs/p", "not a regular file"]),
        ),
        (
            "char device",
            good.clone()
                .raw(header("rootfs/mem", b'3', 0, 0o666, ""))
                .end(),
            s(&["rootfs/mem", "device"]),
        ),
        (
            "block device",
            good.clone()
                .raw(header("rootfs/sda", b'4', 0, 0o666, ""))
                .end(),
            s(&["rootfs/sda", "device"]),
        ),
        (
            "fifo",
            good.clone()
                .raw(header("rootfs/fifo", b'6', 0, 0o666, ""))
                .end(),
            s(&["rootfs/fifo", "fifo"]),
        ),
        (
            "setuid",
            good.clone().file("rootfs/su", b"x", 0o4755).end(),
            s(&["rootfs/su", "setuid"]),
        ),
        (
            "setgid directory",
            good.clone().entry("rootfs/g/", b'5', 0o2775, b"", "").end(),
            s(&["rootfs/g", "setgid"]),
        ),
        (
            "oversize (claimed)",
            good.clone()
                .raw(header("rootfs/huge", b'0', 2 << 30, 0o644, ""))
                .end(),
            s(&["rootfs/huge", "over the limit"]),
        ),
        (
            "duplicate",
            good.clone().file("rootfs/a", b"again", 0o644).end(),
            s(&["rootfs/a", "duplicate"]),
        ),
        (
            "file over a directory",
            good.clone()
                .file("rootfs/d/x", b"x", 0o644)
                .file("rootfs/d", b"d", 0o644)
                .end(),
            s(&["rootfs/d", "duplicate"]),
        ),
        (
            "below a file",
            good.clone().file("rootfs/a/x", b"x", 0o644).end(),
            s(&["rootfs/a/x", "not a directory"]),
        ),
        ("truncated data", truncated_data.0, s(&["truncated"])),
        ("truncated header", cut_header, s(&["truncated"])),
        (
            "no end-of-archive block",
            good.clone().0,
            s(&["no end-of-archive"]),
        ),
        (
            "data after the end",
            trailing,
            s(&["after the end-of-archive"]),
        ),
        (
            "truncated gzip",
            gz[..gz.len() - 20].to_vec(),
            s(&["corrupt"]),
        ),
        (
            "truncated zstd",
            zs[..zs.len() - 20].to_vec(),
            s(&["corrupt"]),
        ),
        (
            "not a tar",
            b"just some text, not an archive\n".repeat(40),
            s(&["not a bundle"]),
        ),
    ]
}

#[test]
fn hostile_archives_are_refused_and_leave_nothing() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("unpack-hostile");
    let tag = format!("nook-evil-{}", std::process::id());
    let watch = host_watch(&tag);
    // The cache lives inside a canary dir: a write that escaped the unpack directory
    // would show up here.
    let canary = b.dir.join("canary");
    let root = canary.join("root");
    fs::create_dir_all(&root).unwrap();
    for (name, bytes, needles) in corpus(&tag) {
        let tar = b.dir.join("evil.tar");
        fs::write(&tar, &bytes).unwrap();
        let id = b.id();
        let out = std::process::Command::new(common::NOOK)
            .arg("--root")
            .arg(&root)
            .args(["run", &id, "--bundle", tar.to_str().unwrap()])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = fails(&out);
        for n in &needles {
            assert!(err.contains(n.as_str()), "{name}: error lacks {n:?}: {err}");
        }
        eprintln!("{name}: {}", err.trim_end());
        assert_eq!(
            tree(&canary),
            ["root", "root/bundles"],
            "{name}: something was left or written outside"
        );
        assert!(!root.join(&id).exists(), "{name}: a state dir was made");
        watch.check();
        // The library's own unpack says the same and removes its directory.
        let dest = b.dir.join("dest");
        let e = unpack(&tar, &dest, &UnpackOptions::default()).expect_err(name);
        assert!(!dest.exists(), "{name}: unpack left {}", dest.display());
        if needles.iter().any(|n| n.starts_with("rootfs/")) {
            assert!(matches!(e, BundleError::Entry { .. }), "{name}: {e:?}");
        }
    }
}

// ---- good bundles ----

/// A bundle tar of `b` (config.json + rootfs with the probe), written by GNU tar (with
/// "./", hard links, owners) in a tar format each: plain GNU, gzip of PAX, zstd of ustar.
fn bundle_tar(b: &Bundle, fmt: &str) -> PathBuf {
    let format = match fmt {
        "tar" => "gnu",
        "gz" => "pax",
        _ => "ustar",
    };
    let out = std::process::Command::new("tar")
        .arg(format!("--format={format}"))
        .arg("-C")
        .arg(&b.path)
        .args(["-cf", "-", "."])
        .output()
        .expect("running tar");
    assert!(out.status.success(), "tar: {}", text(&out.stderr));
    let bytes = match fmt {
        "tar" => out.stdout,
        "gz" => gzip(&out.stdout),
        _ => zstd(&out.stdout),
    };
    // Not named .tar: the format is told by the bytes, not the name.
    let p = b.dir.join(format!("app-{fmt}.bin"));
    fs::write(&p, bytes).unwrap();
    p
}

fn cache_entries(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root.join("bundles"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn good_bundle_tars_run_and_the_cache_is_reused() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("unpack-good");
    b.args(&["report"]);
    fs::create_dir_all(b.rootfs.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("/bin/probe", b.rootfs.join("usr/bin/probe")).unwrap();
    fs::hard_link(b.rootfs.join("bin/probe"), b.rootfs.join("bin/probe2")).unwrap();
    fs::set_permissions(b.rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    for fmt in ["tar", "gz", "zst"] {
        let tar = bundle_tar(&b, fmt);
        let tar_s = tar.to_str().unwrap();
        let id = b.id();
        let out = ok(b.nook(&["run", &id, "--bundle", tar_s]));
        assert!(
            report(&out).contains_key("pid"),
            "{fmt}: {}",
            text(&out.stdout)
        );
        let p = prepare_bundle(&b.root, &tar, &UnpackOptions::default()).unwrap();
        assert!(p.read_only && !p.unpacked, "{fmt}: {p:?}");
        let digest = p.digest.clone().unwrap();
        let dir = b.root.join("bundles").join(&digest);
        assert_eq!(p.dir, dir);
        // What was unpacked: owners, modes, links, sticky bit.
        let r = dir.join("rootfs");
        assert_eq!(fs::metadata(r.join("home/app")).unwrap().uid(), 1000);
        assert_eq!(fs::metadata(r.join("tmp")).unwrap().mode() & 0o7777, 0o1777);
        assert_eq!(
            fs::read_link(r.join("usr/bin/probe")).unwrap(),
            Path::new("/bin/probe")
        );
        let probe = fs::metadata(r.join("bin/probe")).unwrap();
        assert_eq!(probe.mode() & 0o777, 0o755);
        assert_eq!(
            probe.ino(),
            fs::metadata(r.join("bin/probe2")).unwrap().ino()
        );
        // A second run uses the same unpacked files (same inodes, nothing new).
        let before = (
            fs::metadata(&dir).unwrap().ino(),
            probe.ino(),
            probe.ctime_nsec(),
        );
        let entries = cache_entries(&b.root);
        ok(b.nook(&["run", &b.id(), "--bundle", tar_s]));
        let probe = fs::metadata(r.join("bin/probe")).unwrap();
        assert_eq!(
            before,
            (
                fs::metadata(&dir).unwrap().ino(),
                probe.ino(),
                probe.ctime_nsec()
            ),
            "{fmt}: unpacked again"
        );
        assert_eq!(entries, cache_entries(&b.root), "{fmt}");
        // A copy (another inode: an index miss) hashes to the same cache entry.
        let copy = b.dir.join("copy.bin");
        fs::copy(&tar, &copy).unwrap();
        let p2 = prepare_bundle(&b.root, &copy, &UnpackOptions::default()).unwrap();
        assert_eq!(p2.dir, dir);
        assert!(!p2.unpacked, "{fmt}: the copy replaced the cached bundle");
        assert_eq!(
            before.0,
            fs::metadata(&dir).unwrap().ino(),
            "{fmt}: cache entry replaced"
        );
        assert!(cache_entries(&b.root)
            .iter()
            .all(|e| !e.starts_with(".tmp")));
    }
    // One cache entry per archive (three formats, three digests) and the index.
    assert_eq!(
        cache_entries(&b.root).len(),
        4,
        "{:?}",
        cache_entries(&b.root)
    );
}

#[test]
fn concurrent_runs_of_one_tar_share_the_cache() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("unpack-concurrent");
    b.args(&["hello"]);
    let tar = bundle_tar(&b, "zst");
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let id = b.id();
            b.spawn(b.command(&["run", &id, "--bundle", tar.to_str().unwrap()]))
        })
        .collect();
    for mut r in runs {
        let out = ok(r.output_within(common::TIMEOUT).expect("run timed out"));
        assert!(text(&out.stdout).contains("hello from probe"));
    }
    let entries = cache_entries(&b.root);
    assert_eq!(entries.len(), 2, "{entries:?}"); // the bundle and the index
    assert!(entries.contains(&"index".to_string()));
}

#[test]
fn a_directory_is_used_as_it_is() {
    let dir = std::env::temp_dir().join(format!("nook-unpack-dir-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let p = prepare_bundle(&dir.join("root"), &dir, &UnpackOptions::default()).unwrap();
    assert_eq!(p.dir, dir);
    assert!(!p.read_only && p.digest.is_none());
    assert!(
        !dir.join("root").exists(),
        "a directory bundle needs no cache"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// A scratch dir for the library-level tests.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("nook-unpack-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn limits_and_setid_stripping_are_options() {
    let s = Scratch::new("options");
    let two = Tar::bundle()
        .file("rootfs/a", &[1; 200], 0o644)
        .file("rootfs/b", &[2; 200], 0o644)
        .end();
    let tar = s.write("two.tar", &two);
    let small = UnpackOptions {
        max_entry_size: 100,
        ..Default::default()
    };
    let e = unpack(&tar, &s.0.join("d1"), &small)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rootfs/a") && e.contains("over the limit"),
        "{e}"
    );
    let total = UnpackOptions {
        max_total_size: 300,
        ..Default::default()
    };
    let e = unpack(&tar, &s.0.join("d2"), &total)
        .unwrap_err()
        .to_string();
    assert!(e.contains("rootfs/b") && e.contains("total limit"), "{e}");
    assert!(!s.0.join("d1").exists() && !s.0.join("d2").exists());
    let few = UnpackOptions {
        max_entries: 3,
        ..Default::default()
    };
    let e = unpack(&tar, &s.0.join("d2"), &few).unwrap_err().to_string();
    assert!(
        e.contains("rootfs/b") && e.contains("limit of 3 entries"),
        "{e}"
    );
    unpack(&tar, &s.0.join("d3"), &UnpackOptions::default()).unwrap();
    assert_eq!(fs::read(s.0.join("d3/rootfs/b")).unwrap(), [2; 200]);

    let suid = s.write(
        "suid.tar",
        &Tar::bundle().file("rootfs/su", b"x", 0o6755).end(),
    );
    let strip = UnpackOptions {
        strip_setid: true,
        ..Default::default()
    };
    assert!(unpack(&suid, &s.0.join("d4"), &UnpackOptions::default()).is_err());
    unpack(&suid, &s.0.join("d5"), &strip).unwrap();
    let m = fs::metadata(s.0.join("d5/rootfs/su")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o755);

    // Through the cache: an entry unpacked with other options is kept apart, never
    // handed to a caller with the defaults.
    let root = s.0.join("root");
    let p = prepare_bundle(&root, &suid, &strip).unwrap();
    assert!(p.unpacked && p.dir.file_name().unwrap().len() > 64, "{p:?}");
    assert!(!prepare_bundle(&root, &suid, &strip).unwrap().unpacked);
    let e = prepare_bundle(&root, &suid, &UnpackOptions::default()).unwrap_err();
    assert!(e.to_string().contains("setuid"), "{e}");
    assert_eq!(cache_entries(&root).len(), 2, "{:?}", cache_entries(&root));
}

#[test]
fn racing_unpacks_share_one_entry() {
    let s = Scratch::new("race");
    let mut t = Tar::bundle();
    for i in 0..200 {
        t = t.file(&format!("rootfs/f{i}"), &[i as u8; 3000], 0o644);
    }
    let tar = s.write("app.tar", &t.end());
    let root = s.0.join("root");
    let results: Vec<Prepared> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..4)
            .map(|_| sc.spawn(|| prepare_bundle(&root, &tar, &UnpackOptions::default())))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    });
    assert!(results.iter().all(|p| p.dir == results[0].dir));
    assert!(results.iter().any(|p| p.unpacked));
    let entries = cache_entries(&root);
    assert_eq!(entries.len(), 2, "{entries:?}"); // the bundle and the index
    assert_eq!(
        fs::read(results[0].dir.join("rootfs/f199")).unwrap(),
        [199; 3000]
    );
}

#[test]
fn a_crashed_unpack_is_cleaned_up() {
    let s = Scratch::new("crash");
    let root = s.0.join("root");
    // A pid that is not running.
    let dead = (100_000..4_000_000)
        .find(|&p| {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None)
                == Err(nix::errno::Errno::ESRCH)
        })
        .unwrap();
    let left = root.join("bundles").join(format!(".tmp-{dead}-0"));
    fs::create_dir_all(left.join("rootfs/bin")).unwrap();
    fs::write(left.join("rootfs/bin/half"), b"half").unwrap();
    // One still locked (an unpack running in another pid namespace) stays.
    let busy = root.join("bundles").join(format!(".tmp-{dead}-1"));
    fs::create_dir_all(&busy).unwrap();
    let lock = fs::File::open(&busy).unwrap();
    // SAFETY: flock on an fd we own.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let tar = s.write(
        "app.tar",
        &Tar::bundle().file("rootfs/a", b"a", 0o644).end(),
    );
    let p = prepare_bundle(&root, &tar, &UnpackOptions::default()).unwrap();
    assert!(p.unpacked);
    assert!(
        !left.exists(),
        "the crashed unpack's directory is still there"
    );
    assert!(busy.exists(), "a locked unpack directory was removed");
    drop(lock);
    fs::remove_dir(&busy).unwrap();
    assert_eq!(cache_entries(&root).len(), 2, "{:?}", cache_entries(&root));
}

#[test]
fn a_changed_tar_is_unpacked_again() {
    let s = Scratch::new("changed");
    let root = s.0.join("root");
    let o = UnpackOptions::default();
    let tar = s.write(
        "app.tar",
        &Tar::bundle().file("rootfs/a", b"one", 0o644).end(),
    );
    let p1 = prepare_bundle(&root, &tar, &o).unwrap();
    // Rewritten in place, same size, mtime put back: ctime still tells.
    let m = fs::metadata(&tar).unwrap();
    fs::write(&tar, Tar::bundle().file("rootfs/a", b"two", 0o644).end()).unwrap();
    let f = fs::File::options().write(true).open(&tar).unwrap();
    f.set_modified(m.modified().unwrap()).unwrap();
    drop(f);
    let p2 = prepare_bundle(&root, &tar, &o).unwrap();
    assert_ne!(p1.digest, p2.digest);
    assert_eq!(fs::read(p2.dir.join("rootfs/a")).unwrap(), b"two");
    assert_eq!(fs::read(p1.dir.join("rootfs/a")).unwrap(), b"one");
}

/// A cached bundle is shared by every container made from it: its root is read-only
/// even when the config says otherwise, so no container can write into the cache.
#[test]
fn a_cached_bundle_root_is_always_read_only() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("unpack-ro");
    b.config(|c| c["root"]["readonly"] = serde_json::json!(false));
    b.args(&["write", "/newfile"]);
    let tar = bundle_tar(&b, "tar");
    let id = b.id();
    let out = b.nook(&["run", &id, "--bundle", tar.to_str().unwrap()]);
    assert_eq!(
        text(&out.stdout).trim(),
        "error:EROFS",
        "{}",
        text(&out.stderr)
    );
    // The same bundle as a directory honours readonly: false.
    let id = b.id();
    let out = b.nook(&["run", &id, "--bundle", b.path_str()]);
    assert_eq!(text(&out.stdout).trim(), "ok", "{}", text(&out.stderr));
}
