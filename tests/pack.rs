//! `nook pack`: what the tar holds (exact entries, owners, times, modes), the
//! least-privilege config.json, reproducibility, the library closure of dynamic
//! programs (bundled and host), RPATH/RUNPATH with $ORIGIN, templates, errors; and the
//! unpacked bundles run, with nook and (when installed) with runc, so they are plain
//! OCI bundles.
//!
//! Packing needs no privilege; running needs root (skipped otherwise).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{fails, ok, text, Bundle, Spawned, NOOK, TIMEOUT};
use serde_json::{json, Value};

const RUNC: &str = "/usr/sbin/runc";

static N: AtomicUsize = AtomicUsize::new(0);

/// A fresh temp dir, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!(
            "nook-pack-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const HELLO: &str = r#"
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    printf("hello uid=%d gid=%d", (int)getuid(), (int)getgid());
    for (int i = 1; i < argc; i++) printf(" %s", argv[i]);
    printf("\n");
    return 0;
}
"#;

/// Compile `src` with cc into `dir/out`.
/// These tests compile small C programs at run time; the cgroup v2 test guest has no
/// compiler (pack is host-side work, covered by the host run).
fn no_cc() -> bool {
    common::missing_tool("cc", "package gcc")
}

fn cc(dir: &Path, out: &str, src: &str, args: &[&str]) -> PathBuf {
    let c = dir.join(format!("{out}.c"));
    fs::write(&c, src).unwrap();
    let o = dir.join(out);
    let r = Command::new("cc")
        .current_dir(dir)
        .arg("-o")
        .arg(&o)
        .arg(&c)
        .args(args)
        .output()
        .expect("running cc");
    assert!(r.status.success(), "cc failed:\n{}", text(&r.stderr));
    o
}

/// `nook pack ARGS` in `cwd`.
fn pack_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(NOOK)
        .current_dir(cwd)
        .arg("pack")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running nook pack")
}

/// One tar entry's header facts.
#[derive(Debug, Clone)]
struct Ent {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    data: Vec<u8>,
}

/// Every entry of a tar, in order.
fn entries(tar: &Path) -> Vec<(String, Ent)> {
    let mut a = tar::Archive::new(fs::File::open(tar).unwrap());
    let mut out = vec![];
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = vec![];
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        out.push((
            name,
            Ent {
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                data,
            },
        ));
    }
    out
}

fn by_name(tar: &Path) -> BTreeMap<String, Ent> {
    entries(tar).into_iter().collect()
}

fn config_of(tar: &Path) -> Value {
    let e = by_name(tar);
    serde_json::from_slice(&e["config.json"].data).expect("config.json is JSON")
}

/// The entries every bundle has besides the program.
fn base_entries() -> Vec<&'static str> {
    vec![
        "config.json",
        "rootfs",
        "rootfs/dev",
        "rootfs/etc",
        "rootfs/etc/group",
        "rootfs/etc/hostname",
        "rootfs/etc/hosts",
        "rootfs/etc/localtime",
        "rootfs/etc/nsswitch.conf",
        "rootfs/etc/passwd",
        "rootfs/etc/resolv.conf",
        "rootfs/etc/ssl",
        "rootfs/etc/ssl/certs",
        "rootfs/etc/ssl/certs/ca-certificates.crt",
        "rootfs/proc",
        "rootfs/sys",
    ]
}

/// Unpack with tar(1) into a new dir.
fn untar(tar: &Path, dir: &Path) -> PathBuf {
    let d = dir.join(format!("bundle-{}", N.fetch_add(1, Ordering::SeqCst)));
    fs::create_dir_all(&d).unwrap();
    ok(Command::new("tar")
        .arg("-xf")
        .arg(tar)
        .arg("-C")
        .arg(&d)
        .output()
        .unwrap());
    d
}

/// `nook run` the unpacked bundle; stdout.
fn run_nook(b: &Bundle, dir: &Path, extra: &[&str]) -> String {
    let id = b.id();
    let mut args = vec!["run", &id, "--bundle", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    text(&ok(b.nook(&args)).stdout)
}

/// `runc run` the unpacked bundle; stdout, or None when runc is not installed.
fn run_runc(work: &Path, dir: &Path) -> Option<String> {
    if common::missing_tool("runc", "package runc: the bundles are also run with runc") {
        return None;
    }
    let root = work.join("runc-root");
    let id = format!(
        "nook-pack-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let mut c = Command::new(RUNC);
    c.arg("--root")
        .arg(&root)
        .args(["run", "--bundle"])
        .arg(dir)
        .arg(&id);
    c.stdin(Stdio::null());
    let mut s = Spawned::new(c, work);
    let out = s.output_within(TIMEOUT);
    let _ = Command::new(RUNC)
        .arg("--root")
        .arg(&root)
        .args(["delete", "--force", &id])
        .output();
    let out = out.expect("runc run timed out");
    Some(text(&ok(out).stdout))
}

/// Every path below `dir` with its type, size, mode and mtime: to show a run wrote
/// nothing into the bundle (the injections' mount points are all there).
fn snapshot(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            out.push(format!(
                "{} {:o} {} {}",
                p.display(),
                m.mode(),
                m.len(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000
            ));
            if m.is_dir() {
                todo.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Add read-only binds of the `io.nook.host-libs` paths (what nook's libc injection
/// does), for runtimes that do not know the annotation.
fn bind_host_libs(dir: &Path) {
    let p = dir.join("config.json");
    let mut c: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    let libs: Vec<String> =
        serde_json::from_str(c["annotations"]["io.nook.host-libs"].as_str().unwrap()).unwrap();
    for l in libs {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": l, "source": l, "type": "bind",
            "options": ["bind", "ro", "nosuid", "nodev"]
        }));
    }
    fs::write(&p, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
}

#[test]
fn static_bundle_holds_exactly_the_program_and_runs_with_nook_and_runc() {
    if no_cc() {
        return;
    }
    let t = Tmp::new("static");
    let bin = cc(&t.0, "hello", HELLO, &["-static"]);
    let out = ok(pack_in(&t.0, &[bin.to_str().unwrap()]));
    // The default output is NAME.tar in the working directory, and its path is printed.
    assert_eq!(text(&out.stdout).trim(), "hello.tar");
    let tar = t.0.join("hello.tar");
    let ents = entries(&tar);
    let names: Vec<&str> = ents.iter().map(|(n, _)| n.as_str()).collect();
    let mut want = base_entries();
    want.push("rootfs/hello");
    want.sort_by(|a, b| Path::new(a).cmp(Path::new(b)));
    assert_eq!(names, want, "entries in order");
    for (n, e) in &ents {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 0), "{n}");
        assert_eq!(e.mode & 0o6000, 0, "{n}: setuid/setgid");
        match e.kind {
            tar::EntryType::Directory => assert_eq!(e.mode, 0o755, "{n}"),
            tar::EntryType::Regular => {}
            k => panic!("{n}: unexpected entry type {k:?}"),
        }
    }
    let m = by_name(&tar);
    assert_eq!(m["rootfs/hello"].mode, 0o755);
    assert_eq!(m["rootfs/hello"].data, fs::read(&bin).unwrap());
    for p in [
        "rootfs/etc/passwd",
        "rootfs/etc/ssl/certs/ca-certificates.crt",
        "rootfs/etc/localtime",
    ] {
        assert!(m[p].data.is_empty(), "{p} is an empty placeholder");
    }
    assert!(!m.keys().any(|k| k.contains("templates")));
    let c = config_of(&tar);
    assert_eq!(c["process"]["args"], json!(["/hello"]));
    assert!(c["annotations"].get("io.nook.host-libs").is_none());

    if common::skip() || no_cc() {
        return;
    }
    let dir = untar(&tar, &t.0);
    let b = Bundle::new("pack-static");
    let before = snapshot(&dir);
    assert_eq!(run_nook(&b, &dir, &[]), "hello uid=65534 gid=65534\n");
    assert_eq!(snapshot(&dir), before, "nothing written into the bundle");
    if let Some(o) = run_runc(&t.0, &dir) {
        assert_eq!(o, "hello uid=65534 gid=65534\n");
    }
}

#[test]
fn config_is_least_privilege() {
    if no_cc() {
        return;
    }
    let t = Tmp::new("config");
    let bin = cc(&t.0, "app", HELLO, &["-static"]);
    let tar = t.0.join("out.tar");
    let out = ok(pack_in(
        &t.0,
        &[
            bin.to_str().unwrap(),
            "-o",
            tar.to_str().unwrap(),
            "--name",
            "svc",
            "--arg",
            "-x",
            "--arg",
            "two words",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
        ],
    ));
    assert_eq!(text(&out.stdout).trim(), tar.to_str().unwrap());
    let c = config_of(&tar);
    let p = &c["process"];
    assert_eq!(p["args"], json!(["/svc", "-x", "two words"]));
    assert_eq!(p["env"], json!(["PATH=/", "A=1", "B=x=y"]));
    assert_eq!(p["cwd"], "/");
    assert_eq!(p["user"], json!({"uid": 65534, "gid": 65534}));
    assert_eq!(p["noNewPrivileges"], true);
    for set in [
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    ] {
        assert_eq!(p["capabilities"][set], json!([]), "capabilities.{set}");
    }
    assert_eq!(c["root"], json!({"path": "rootfs", "readonly": true}));
    assert_eq!(c["hostname"], "svc");
    let ns: Vec<&str> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(ns, ["pid", "network", "ipc", "uts", "mount", "cgroup"]);
    let spec = nook::spec::default_json(false);
    assert_eq!(c["linux"]["maskedPaths"], spec["linux"]["maskedPaths"]);
    assert_eq!(c["linux"]["readonlyPaths"], spec["linux"]["readonlyPaths"]);
    let dests: Vec<&str> = c["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys"
        ]
    );
    let sys = &c["mounts"][5];
    assert!(sys["options"].as_array().unwrap().contains(&json!("ro")));
    assert_eq!(
        c["annotations"],
        json!({"io.nook.inject": "resolv.conf,hosts,hostname,passwd,nsswitch,ca-certificates,localtime"})
    );
    // It is a config nook itself accepts (parsed and checked, the rootfs there).
    nook::spec::load(&untar(&tar, &t.0)).unwrap();
    assert!(by_name(&tar).contains_key("rootfs/svc"));

    // --user UID and UID:GID.
    for (u, want) in [
        ("1000", json!({"uid": 1000, "gid": 1000})),
        ("7:8", json!({"uid": 7, "gid": 8})),
    ] {
        ok(pack_in(
            &t.0,
            &[bin.to_str().unwrap(), "-o", "u.tar", "--user", u],
        ));
        assert_eq!(config_of(&t.0.join("u.tar"))["process"]["user"], want);
    }
    // --env PATH replaces the default one.
    ok(pack_in(
        &t.0,
        &[bin.to_str().unwrap(), "-o", "p.tar", "--env", "PATH=/bin"],
    ));
    assert_eq!(
        config_of(&t.0.join("p.tar"))["process"]["env"],
        json!(["PATH=/bin"])
    );
}

#[test]
fn packing_twice_gives_the_same_bytes() {
    if no_cc() {
        return;
    }
    let t = Tmp::new("repro");
    let bin = cc(&t.0, "app", HELLO, &[]);
    let conf = t.0.join("conf");
    fs::create_dir_all(conf.join("sub")).unwrap();
    fs::write(conf.join("app.conf"), "x={{X}}\n").unwrap();
    fs::write(conf.join("sub/b.conf"), "b\n").unwrap();
    let a = ok(pack_in(
        &t.0,
        &[bin.to_str().unwrap(), "-o", "a.tar", "--config-dir", "conf"],
    ));
    // Other times and an other umask change nothing.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let now = std::time::SystemTime::now();
    fs::File::open(&bin).unwrap().set_modified(now).unwrap();
    fs::File::open(conf.join("app.conf"))
        .unwrap()
        .set_modified(now)
        .unwrap();
    let b = ok(pack_in(
        &t.0,
        &[bin.to_str().unwrap(), "-o", "b.tar", "--config-dir", "conf"],
    ));
    assert!(a.status.success() && b.status.success());
    let (a, b) = (
        fs::read(t.0.join("a.tar")).unwrap(),
        fs::read(t.0.join("b.tar")).unwrap(),
    );
    assert!(a == b, "the two tars differ");
    for l in ["bundled", "host"] {
        ok(pack_in(
            &t.0,
            &[bin.to_str().unwrap(), "-o", "c.tar", "--libc", l],
        ));
        ok(pack_in(
            &t.0,
            &[bin.to_str().unwrap(), "-o", "d.tar", "--libc", l],
        ));
        assert!(
            fs::read(t.0.join("c.tar")).unwrap() == fs::read(t.0.join("d.tar")).unwrap(),
            "--libc {l}"
        );
    }
}

/// PT_INTERP of a file, read with nook's own ELF reader.
fn interp_of(bin: &Path) -> String {
    nook::bundle::elf::ElfFile::read(bin)
        .unwrap()
        .interp
        .expect("a dynamic program")
}

#[test]
fn dynamic_bundled_copies_loader_and_libc_and_runs() {
    if no_cc() {
        return;
    }
    let t = Tmp::new("dyn");
    let bin = cc(&t.0, "dyn", HELLO, &[]);
    ok(pack_in(
        &t.0,
        &[bin.to_str().unwrap(), "--libc", "bundled", "--arg", "a"],
    ));
    let tar = t.0.join("dyn.tar");
    let m = by_name(&tar);
    let interp = interp_of(&bin);
    let ld = format!("rootfs{interp}");
    assert_eq!(m[&ld].kind, tar::EntryType::Regular, "{ld}");
    assert_eq!(
        m[&ld].data,
        fs::read(&interp).unwrap(),
        "{ld}: the loader's bytes"
    );
    let libc: Vec<&String> = m.keys().filter(|k| k.ends_with("/libc.so.6")).collect();
    assert_eq!(libc.len(), 1, "{libc:?}");
    let host = libc[0].strip_prefix("rootfs").unwrap();
    assert_eq!(
        m[libc[0]].data,
        fs::read(host).unwrap(),
        "{host}: libc's bytes"
    );
    assert!(m[libc[0]].mode & 0o444 == 0o444);
    // No env beyond PATH: libc and the loader are where the loader looks by itself.
    let c = config_of(&tar);
    assert_eq!(c["process"]["env"], json!(["PATH=/"]));
    assert_eq!(
        c["annotations"]["io.nook.inject"],
        "resolv.conf,hosts,hostname,passwd,nsswitch,ca-certificates,localtime"
    );
    assert!(c["annotations"].get("io.nook.host-libs").is_none());

    if common::skip() || no_cc() {
        return;
    }
    let dir = untar(&tar, &t.0);
    let b = Bundle::new("pack-dyn");
    assert_eq!(run_nook(&b, &dir, &[]), "hello uid=65534 gid=65534 a\n");
    if let Some(o) = run_runc(&t.0, &dir) {
        assert_eq!(o, "hello uid=65534 gid=65534 a\n");
    }
}

#[test]
fn dynamic_host_records_host_paths_and_leaves_placeholders() {
    if no_cc() {
        return;
    }
    let t = Tmp::new("host");
    let bin = cc(&t.0, "dyn", HELLO, &[]);
    ok(pack_in(
        &t.0,
        &[
            bin.to_str().unwrap(),
            "--libc",
            "host",
            "--user",
            "1000:1000",
        ],
    ));
    let tar = t.0.join("dyn.tar");
    let m = by_name(&tar);
    let c = config_of(&tar);
    assert_eq!(
        c["annotations"]["io.nook.inject"],
        "resolv.conf,hosts,hostname,passwd,nsswitch,ca-certificates,localtime,libc"
    );
    let libs: Vec<String> =
        serde_json::from_str(c["annotations"]["io.nook.host-libs"].as_str().unwrap()).unwrap();
    let interp = interp_of(&bin);
    assert_eq!(libs[0], interp, "the loader first");
    assert!(libs.iter().any(|l| l.ends_with("/libc.so.6")), "{libs:?}");
    for l in &libs {
        assert!(Path::new(l).is_absolute() && Path::new(l).exists(), "{l}");
        let e = &m[&format!("rootfs{l}")];
        assert_eq!(e.kind, tar::EntryType::Regular, "{l}");
        assert!(e.data.is_empty(), "{l}: an empty placeholder");
    }
    // Nothing in the tar is bigger than the program: no library bytes.
    let size = fs::metadata(&bin).unwrap().len() as usize;
    for (n, e) in &m {
        assert!(
            e.data.len() <= size.max(4096),
            "{n} has {} bytes",
            e.data.len()
        );
    }

    if common::skip() || no_cc() {
        return;
    }
    // nook's libc injection binds the host's files onto the placeholders; runc knows
    // no annotations, so it gets the same binds in config.json.
    let dir = untar(&tar, &t.0);
    let b = Bundle::new("pack-host");
    let before = snapshot(&dir);
    assert_eq!(run_nook(&b, &dir, &[]), "hello uid=1000 gid=1000\n");
    assert_eq!(snapshot(&dir), before, "nothing written into the bundle");
    bind_host_libs(&dir);
    if let Some(o) = run_runc(&t.0, &dir) {
        assert_eq!(o, "hello uid=1000 gid=1000\n");
    }
}

const LIBBAR: &str = "int bar(void) { return 40; }\n";
const LIBFOO: &str = "int bar(void);\nint foo(void) { return bar() + 2; }\n";
const USEFOO: &str = r#"
#include <stdio.h>
int foo(void);
int main(void) { printf("foo=%d\n", foo()); return 0; }
"#;

/// d/lib/sub/libbar.so; d/lib/libfoo.so (needs libbar.so, RUNPATH $ORIGIN/sub);
/// d/bin/app (needs libfoo.so) linked with `app_flags`.
fn libs_tree(d: &Path, app_flags: &[&str]) -> PathBuf {
    let lib = d.join("lib");
    fs::create_dir_all(lib.join("sub")).unwrap();
    fs::create_dir_all(d.join("bin")).unwrap();
    cc(&lib.join("sub"), "libbar.so", LIBBAR, &["-shared", "-fPIC"]);
    cc(
        &lib,
        "libfoo.so",
        LIBFOO,
        &[
            "-shared",
            "-fPIC",
            "-Lsub",
            "-lbar",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/sub",
        ],
    );
    let mut args = vec!["-L../lib", "-lfoo"];
    args.extend_from_slice(app_flags);
    cc(&d.join("bin"), "app", USEFOO, &args)
}

#[test]
fn rpath_and_runpath_with_origin_are_followed() {
    if no_cc() {
        return;
    }
    let t = Tmp::new("origin");
    let d = t.0.join("tree");
    // DT_RPATH $ORIGIN/../lib on the program; DT_RUNPATH $ORIGIN/sub on libfoo.
    let app = libs_tree(&d, &["-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib"]);
    let e = nook::bundle::elf::ElfFile::read(&app).unwrap();
    assert_eq!(e.rpath, ["$ORIGIN/../lib"]);
    assert!(e.runpath.is_none());
    ok(pack_in(&t.0, &[app.to_str().unwrap(), "-o", "o.tar"]));
    let tar = t.0.join("o.tar");
    let m = by_name(&tar);
    let real = fs::canonicalize(&d).unwrap();
    let foo = format!("rootfs{}/lib/libfoo.so", real.display());
    let bar = format!("rootfs{}/lib/sub/libbar.so", real.display());
    assert_eq!(m[&foo].data, fs::read(d.join("lib/libfoo.so")).unwrap());
    assert_eq!(m[&bar].data, fs::read(d.join("lib/sub/libbar.so")).unwrap());
    // The program moves to /app, so its $ORIGIN changes: the loader is told where
    // libfoo is; libbar is found through libfoo's own $ORIGIN, which does not move.
    let c = config_of(&tar);
    assert_eq!(
        c["process"]["env"],
        json!(["PATH=/", format!("LD_LIBRARY_PATH={}/lib", real.display())])
    );

    // The same with DT_RUNPATH on the program (no RPATH then).
    let d2 = t.0.join("tree2");
    let app2 = libs_tree(&d2, &["-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib"]);
    let e = nook::bundle::elf::ElfFile::read(&app2).unwrap();
    assert!(e.rpath.is_empty());
    assert_eq!(e.runpath, Some(vec!["$ORIGIN/../lib".to_string()]));
    ok(pack_in(
        &t.0,
        &[app2.to_str().unwrap(), "-o", "o2.tar", "--libc", "host"],
    ));
    let c2 = config_of(&t.0.join("o2.tar"));
    let libs: Vec<String> =
        serde_json::from_str(c2["annotations"]["io.nook.host-libs"].as_str().unwrap()).unwrap();
    let real2 = fs::canonicalize(&d2).unwrap();
    assert!(
        libs.contains(&format!("{}/lib/libfoo.so", real2.display())),
        "{libs:?}"
    );
    assert!(
        libs.contains(&format!("{}/lib/sub/libbar.so", real2.display())),
        "{libs:?}"
    );

    // A RUNPATH applies to its own object's needs only: a program with RUNPATH to
    // lib/ and a libfoo without one cannot find libbar (ld.so would fail too).
    let d3 = t.0.join("tree3");
    fs::create_dir_all(d3.join("lib/sub")).unwrap();
    fs::create_dir_all(d3.join("bin")).unwrap();
    cc(
        &d3.join("lib/sub"),
        "libbar.so",
        LIBBAR,
        &["-shared", "-fPIC"],
    );
    cc(
        &d3.join("lib"),
        "libfoo.so",
        LIBFOO,
        &["-shared", "-fPIC", "-Lsub", "-lbar"],
    );
    let app3 = cc(
        &d3.join("bin"),
        "app",
        USEFOO,
        &[
            "-L../lib",
            "-L../lib/sub",
            "-lfoo",
            "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib:$ORIGIN/../lib/sub",
        ],
    );
    let err = fails(&pack_in(&t.0, &[app3.to_str().unwrap(), "-o", "o3.tar"]));
    assert!(err.contains("libbar.so"), "{err}");
    // ... while RPATH is inherited down the chain of loaders.
    let app4 = cc(
        &d3.join("bin"),
        "app4",
        USEFOO,
        &[
            "-L../lib",
            "-L../lib/sub",
            "-lfoo",
            "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib:$ORIGIN/../lib/sub",
        ],
    );
    ok(pack_in(&t.0, &[app4.to_str().unwrap(), "-o", "o4.tar"]));

    if common::skip() || no_cc() {
        return;
    }
    let b = Bundle::new("pack-origin");
    let dir = untar(&tar, &t.0);
    assert_eq!(run_nook(&b, &dir, &[]), "foo=42\n");
    if let Some(o) = run_runc(&t.0, &dir) {
        assert_eq!(o, "foo=42\n");
    }
    let dir4 = untar(&t.0.join("o4.tar"), &t.0);
    assert_eq!(run_nook(&b, &dir4, &[]), "foo=42\n");
}

#[test]
fn config_dir_goes_to_templates_beside_rootfs() {
    if no_cc() {
        return;
    }
    let t = Tmp::new("templates");
    let bin = cc(&t.0, "app", HELLO, &["-static"]);
    let conf = t.0.join("conf");
    fs::create_dir_all(conf.join("nginx/conf.d")).unwrap();
    fs::write(conf.join("app.conf"), "port={{PORT}}\n").unwrap();
    fs::write(conf.join("nginx/conf.d/site.conf"), "x\n").unwrap();
    fs::set_permissions(conf.join("app.conf"), fs::Permissions::from_mode(0o4640)).unwrap();
    std::os::unix::fs::symlink("app.conf", conf.join("alias.conf")).unwrap();
    ok(pack_in(
        &t.0,
        &[bin.to_str().unwrap(), "-o", "t.tar", "--config-dir", "conf"],
    ));
    let tar = t.0.join("t.tar");
    let m = by_name(&tar);
    let tpl: Vec<&str> = m
        .keys()
        .filter(|k| k.starts_with("templates"))
        .map(|s| s.as_str())
        .collect();
    assert_eq!(
        tpl,
        [
            "templates",
            "templates/alias.conf",
            "templates/app.conf",
            "templates/nginx",
            "templates/nginx/conf.d",
            "templates/nginx/conf.d/site.conf"
        ]
    );
    assert_eq!(m["templates/app.conf"].data, b"port={{PORT}}\n");
    assert_eq!(
        m["templates/app.conf"].mode, 0o640,
        "setuid dropped, the rest kept"
    );
    assert_eq!(m["templates/alias.conf"].data, b"port={{PORT}}\n");
    assert_eq!(m["templates/alias.conf"].kind, tar::EntryType::Regular);
    assert_eq!(
        config_of(&tar)["annotations"]["io.nook.templates"],
        "templates"
    );

    // A symlink out of the directory is refused, by name.
    std::os::unix::fs::symlink("/etc/shadow", conf.join("nginx/evil")).unwrap();
    let err = fails(&pack_in(
        &t.0,
        &[bin.to_str().unwrap(), "-o", "e.tar", "--config-dir", "conf"],
    ));
    assert!(
        err.contains("nginx/evil") && err.contains("outside"),
        "{err}"
    );
    assert!(!t.0.join("e.tar").exists());
}

/// Patch e_machine (little-endian ELF) of a file.
fn set_machine(p: &Path, machine: u16) {
    let mut b = fs::read(p).unwrap();
    b[18..20].copy_from_slice(&machine.to_le_bytes());
    fs::write(p, b).unwrap();
}

#[test]
fn errors_name_the_file_and_the_problem() {
    if no_cc() {
        return;
    }
    let t = Tmp::new("errors");
    // Not ELF.
    let script = t.0.join("script.sh");
    fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let err = fails(&pack_in(&t.0, &[script.to_str().unwrap()]));
    assert!(
        err.contains("script.sh") && err.contains("not an ELF file"),
        "{err}"
    );
    assert!(!t.0.join("script.sh.tar").exists());
    // Missing file.
    let err = fails(&pack_in(&t.0, &["/nonexistent/prog"]));
    assert!(err.contains("/nonexistent/prog"), "{err}");

    // A DT_NEEDED library that is gone: the error names it and where it looked.
    cc(
        &t.0,
        "libfoo.so",
        "int foo(void) { return 1; }\n",
        &["-shared", "-fPIC"],
    );
    let prog = cc(
        &t.0,
        "usefoo",
        "int foo(void);\nint main(void) { return foo(); }\n",
        &["-L.", "-lfoo"],
    );
    fs::remove_file(t.0.join("libfoo.so")).unwrap();
    let err = fails(&pack_in(&t.0, &[prog.to_str().unwrap()]));
    assert!(err.contains("usefoo"), "{err}");
    assert!(
        err.contains("libfoo.so") && err.contains("not found"),
        "{err}"
    );
    assert!(err.contains("/etc/ld.so.cache"), "{err}");
    assert!(
        err.contains("/usr/lib/x86_64-linux-gnu") || !cfg!(target_arch = "x86_64"),
        "{err}"
    );
    assert!(!t.0.join("usefoo.tar").exists());

    // A library for another machine is skipped (as ld.so skips it) and named; a
    // program for another machine is refused.
    let w = t.0.join("arch");
    fs::create_dir_all(w.join("other")).unwrap();
    cc(
        &w,
        "libfoo.so",
        "int foo(void) { return 1; }\n",
        &["-shared", "-fPIC"],
    );
    let prog = cc(
        &w,
        "usefoo",
        "int foo(void);\nint main(void) { return foo(); }\n",
        &[
            "-L.",
            "-lfoo",
            "-Wl,--disable-new-dtags,-rpath,$ORIGIN/other",
        ],
    );
    let other = w.join("other/libfoo.so");
    fs::rename(w.join("libfoo.so"), &other).unwrap();
    set_machine(&other, 183); // EM_AARCH64
    let err = fails(&pack_in(&t.0, &[prog.to_str().unwrap()]));
    assert!(
        err.contains("libfoo.so") && err.contains("not found"),
        "{err}"
    );
    assert!(err.contains("other/libfoo.so (ELF64 AArch64)"), "{err}");
    assert!(err.contains("other (RPATH)"), "{err}");
    let arm = t.0.join("arm");
    fs::copy(cc(&t.0, "s", HELLO, &["-static"]), &arm).unwrap();
    set_machine(&arm, 183);
    let err = fails(&pack_in(&t.0, &[arm.to_str().unwrap()]));
    assert!(
        err.contains("arm:") && err.contains("wrong architecture: ELF64 AArch64"),
        "{err}"
    );

    // Bad options.
    let bin = cc(&t.0, "ok", HELLO, &["-static"]);
    let b = bin.to_str().unwrap();
    for (args, needle) in [
        (vec![b, "--user", "nobody"], "--user"),
        (vec![b, "--env", "NOEQUALS"], "--env"),
        (vec![b, "--name", "a/b"], "a/b"),
        (vec![b, "--name", "proc"], "/proc is a directory"),
        (vec![b, "-o", b], "binary"),
    ] {
        let err = fails(&pack_in(&t.0, &args));
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(
        fs::read(&bin).unwrap().starts_with(b"\x7fELF"),
        "the binary is intact"
    );
}

#[test]
fn one_file_under_two_names_is_stored_once() {
    if no_cc() {
        return;
    }
    // libx.so.1 -> libx.so.1.0; liba needs libx.so.1, libb needs libx.so.1.0: ld.so
    // opens both names and finds one file, so the bundle must give one file too.
    let t = Tmp::new("twonames");
    let d = t.0.join("lib");
    fs::create_dir_all(&d).unwrap();
    cc(
        &d,
        "libx.so.1.0",
        "int x(void) { return 5; }\n",
        &["-shared", "-fPIC"],
    );
    std::os::unix::fs::symlink("libx.so.1.0", d.join("libx.so.1")).unwrap();
    let lib = |name: &str, body: &str, dep: &str| {
        cc(
            &d,
            name,
            body,
            &["-shared", "-fPIC", "-L.", &format!("-l:{dep}")],
        );
    };
    lib(
        "liba.so",
        "int x(void);\nint a(void) { return x(); }\n",
        "libx.so.1",
    );
    lib(
        "libb.so",
        "int x(void);\nint b(void) { return x() * 2; }\n",
        "libx.so.1.0",
    );
    let app = cc(
        &t.0,
        "app",
        "#include <stdio.h>\nint a(void); int b(void);\nint main(void) { printf(\"%d\\n\", a() + b()); return 0; }\n",
        &["-Llib", "-la", "-lb", "-Wl,-rpath-link,lib", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/lib"],
    );
    let real = fs::canonicalize(&d).unwrap();
    ok(pack_in(&t.0, &[app.to_str().unwrap(), "-o", "x.tar"]));
    let tar = t.0.join("x.tar");
    let m = by_name(&tar);
    let first = &m[&format!("rootfs{}/libx.so.1", real.display())];
    let second = &m[&format!("rootfs{}/libx.so.1.0", real.display())];
    assert_eq!(first.kind, tar::EntryType::Regular);
    assert_eq!(second.kind, tar::EntryType::Symlink);
    let mut a = tar::Archive::new(fs::File::open(&tar).unwrap());
    let link = a
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().ends_with("libx.so.1.0"))
        .and_then(|e| e.link_name().unwrap().map(|l| l.into_owned()));
    assert_eq!(link, Some(PathBuf::from("libx.so.1")));

    if common::skip() || no_cc() {
        return;
    }
    let dir = untar(&tar, &t.0);
    let b = Bundle::new("pack-twonames");
    assert_eq!(run_nook(&b, &dir, &[]), "15\n");
}
