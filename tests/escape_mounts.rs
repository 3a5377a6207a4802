//! Runtime escapes through mounts and device nodes, each test named after the class
//! of a published runc/crun escape and run against nook: a masked path whose /dev/null
//! source is a symlink or a plain file (CVE-2025-31133), a /dev/console aimed at a host
//! file (CVE-2025-52565), a mount destination swapped for a symlink while containers
//! are created (CVE-2021-30465), symlinks in the bundle's rootfs aiming a bind mount, a
//! device node or an injected file at a host path, and masked or read-only /proc and
//! /sys paths read, written, remounted and unmounted from inside.
//!
//! Each test checks the host file it aimed at (content, type, mode) and the host's
//! mountinfo before and after, and what the container sees (through the probe or
//! busybox); a create that is refused must say why and leave nothing behind.

mod common;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{fails, host_mount_points, ok, parse_mountinfo, text, Bundle, MountLine};
use serde_json::{json, Value};

/// What a host file looks like: its type and mode bits, owner, device number and
/// content (empty for what is not a regular file).
#[derive(Debug, PartialEq, Eq)]
struct HostFile {
    mode: u32,
    uid: u32,
    rdev: u64,
    content: Vec<u8>,
}

fn host_file(p: &Path) -> HostFile {
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    // Some /proc files cannot be read (EIO): the error then stands for the content.
    let content = if m.is_file() {
        fs::read(p).unwrap_or_else(|e| format!("unreadable: {e}").into_bytes())
    } else {
        vec![]
    };
    HostFile {
        mode: m.mode(),
        uid: m.uid(),
        rdev: m.rdev(),
        content,
    }
}

/// The host's state a test must leave as it found it: some files and the mount table.
struct HostWatch {
    files: Vec<(PathBuf, HostFile)>,
    mounts: HashSet<String>,
}

impl HostWatch {
    fn new(paths: &[&Path]) -> HostWatch {
        HostWatch {
            files: paths
                .iter()
                .map(|p| (p.to_path_buf(), host_file(p)))
                .collect(),
            mounts: host_mount_points(),
        }
    }

    fn assert_unchanged(&self) {
        for (p, before) in &self.files {
            assert_eq!(&host_file(p), before, "{} changed on the host", p.display());
        }
        let now = host_mount_points();
        let new: Vec<_> = now.difference(&self.mounts).collect();
        assert!(new.is_empty(), "new host mounts: {new:?}");
    }
}

/// The config without its /dev tmpfs: device nodes go into the rootfs's own /dev.
fn without_dev_tmpfs(b: &Bundle) {
    b.config(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev")
    });
}

fn add_mount(b: &Bundle, m: Value) {
    b.config(|c| c["mounts"].as_array_mut().unwrap().push(m));
}

/// Run the probe with these arguments in a new container; stdout trimmed.
fn probe_out(b: &Bundle, args: &[&str]) -> String {
    text(&ok(b.probe(args)).stdout).trim().to_string()
}

/// Run a busybox script in a new container (which must exit 0); its stdout.
fn sh_out(b: &Bundle, script: &str) -> String {
    b.sh(script);
    let id = b.id();
    text(&ok(b.nook(&["run", &id, "--bundle", b.path_str()])).stdout)
}

fn mounts_inside(b: &Bundle) -> Vec<MountLine> {
    parse_mountinfo(&text(&ok(b.probe(&["mounts"])).stdout))
}

/// The null device a masked file must show: type, and device 1:3.
fn is_null_device(stat: &str) -> bool {
    stat.starts_with("type=chr ") && stat.ends_with(" rdev=1:3")
}

/// Masks in a rootfs without a /dev tmpfs whose /dev/null is `fake` (made by the
/// closure): reading and writing masked files and a masked dir from inside, and a
/// chmod through a mask; the host's targets and /dev/null must be unchanged.
fn masks_with_fake_dev_null(name: &str, fake: impl FnOnce(&Bundle, &Path)) {
    let b = Bundle::new(name);
    without_dev_tmpfs(&b);
    let standin = b.dir.join("host-standin");
    fs::write(&standin, "host file\n").unwrap();
    fake(&b, &standin);
    fs::write(b.rootfs.join("etc/masked.txt"), "secret\n").unwrap();
    b.config(|c| {
        let m = c["linux"]["maskedPaths"].as_array_mut().unwrap();
        m.push(json!("/etc/masked.txt"));
    });
    let core = Path::new("/proc/sys/kernel/core_pattern");
    let host = HostWatch::new(&[&standin, core, Path::new("/dev/null")]);

    assert!(is_null_device(&probe_out(&b, &["stat", "/etc/masked.txt"])));
    assert_eq!(probe_out(&b, &["cat", "/etc/masked.txt"]), "");
    // A write goes to the null device (discarded), never to the host file.
    let w = text(&b.probe(&["write", "/etc/masked.txt"]).stdout);
    assert!(w.trim() == "ok" || w.starts_with("error:"), "{w}");
    assert_eq!(probe_out(&b, &["cat", "/etc/masked.txt"]), "");
    // The masks are read-only: no chmod or chown through them to the host's node.
    let out = sh_out(
        &b,
        "busybox chmod 600 /etc/masked.txt 2>&1; echo chmod=$?; \
         busybox chown 1000 /etc/masked.txt 2>&1; echo chown=$?; \
         echo pwned > /proc/keys; cat /proc/keys /etc/masked.txt; echo end",
    );
    assert!(out.contains("chmod=1"), "chmod through a mask: {out}");
    assert!(out.contains("chown=1"), "chown through a mask: {out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("end"), "{out}");
    assert!(!out.contains("pwned") && !out.contains("secret"), "{out}");
    if fs::metadata("/proc/keys").is_ok() {
        assert!(is_null_device(&probe_out(&b, &["stat", "/proc/keys"])));
    }
    // The container's own /dev/null is the null device too (the fake was replaced
    // inside the rootfs, not followed).
    assert!(is_null_device(&probe_out(&b, &["stat", "/dev/null"])));
    host.assert_unchanged();
    assert_eq!(fs::read_to_string(&standin).unwrap(), "host file\n");
}

#[test]
fn cve_2025_31133_masked_path_dev_null_swapped_for_symlink() {
    if common::skip() {
        return;
    }
    // A link to a host file outside the rootfs (absolute: resolved inside the root it
    // is dangling; followed by path after pivot_root it would be the host's file).
    masks_with_fake_dev_null("esc-null-link", |b, standin| {
        symlink(standin, b.rootfs.join("dev/null")).unwrap();
    });
    // A link to a procfs file the host shares with every container.
    masks_with_fake_dev_null("esc-null-core", |b, _| {
        symlink("/proc/sys/kernel/core_pattern", b.rootfs.join("dev/null")).unwrap();
    });
}

#[test]
fn cve_2025_31133_masked_path_dev_null_swapped_for_regular_file() {
    if common::skip() {
        return;
    }
    masks_with_fake_dev_null("esc-null-file", |b, _| {
        fs::write(b.rootfs.join("dev/null"), "not a device\n").unwrap();
    });
    // Another device in its place (the zero device would make masks read as zeros).
    masks_with_fake_dev_null("esc-null-zero", |b, _| {
        let p = b.rootfs.join("dev/null");
        let dev = nix::sys::stat::makedev(1, 5);
        nix::sys::stat::mknod(
            &p,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            dev,
        )
        .unwrap();
    });
}

/// A busybox shell on a terminal in a rootfs without a /dev tmpfs.
fn console_bundle(name: &str, script: &str) -> Bundle {
    let b = Bundle::new(name);
    without_dev_tmpfs(&b);
    b.sh(script);
    symlink("busybox", b.rootfs.join("bin/tty")).unwrap();
    b.config(|c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["env"] = json!(["PATH=/bin", "TERM=xterm"]);
    });
    b
}

/// create with a console socket, start, and everything the terminal shows until it closes.
fn run_on_console(b: &Bundle) -> String {
    let id = b.id();
    let (master, _, out) =
        common::with_console_socket(b, &["create", &id, "--bundle", b.path_str()]);
    ok(out);
    ok(b.nook(&["start", &id]));
    let shown = common::read_pty_until_closed(master, common::TIMEOUT);
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
    shown
}

#[test]
fn cve_2025_52565_console_bind_redirected_to_host_file() {
    if common::skip() {
        return;
    }
    let script = "probe stat /dev/console; probe stat $(tty); echo via-console > /dev/console; \
                  grep -c ' /dev/console ' /proc/self/mountinfo";
    let b = console_bundle("esc-console", script);
    let standin = b.dir.join("host-console");
    fs::write(&standin, "host file\n").unwrap();
    symlink(&standin, b.rootfs.join("dev/console")).unwrap();
    let host = HostWatch::new(&[&standin]);
    let shown = run_on_console(&b);
    host.assert_unchanged();
    let lines: Vec<&str> = shown.lines().map(str::trim).collect();
    // /dev/console is the pty: the same device number as the tty, and what is written
    // to it comes out of the master.
    let chr: Vec<&&str> = lines.iter().filter(|l| l.starts_with("type=chr")).collect();
    assert_eq!(chr.len(), 2, "{shown:?}");
    assert_eq!(
        chr[0].rsplit(' ').next(),
        chr[1].rsplit(' ').next(),
        "{shown:?}"
    );
    assert!(chr[0].contains(" rdev=136:"), "{shown:?}");
    assert!(lines.contains(&"via-console"), "{shown:?}");
    assert!(lines.contains(&"1"), "one mount on /dev/console: {shown:?}");
    // The link in the rootfs was replaced by a plain file (the mount point).
    let m = fs::symlink_metadata(b.rootfs.join("dev/console")).unwrap();
    assert!(m.is_file(), "{m:?}");
}

#[test]
fn cve_2025_52565_console_mount_point_that_is_a_directory_is_refused() {
    if common::skip() {
        return;
    }
    let b = console_bundle("esc-console-dir", "true");
    fs::create_dir_all(b.rootfs.join("dev/console/inner")).unwrap();
    let id = b.id();
    // Nothing is sent to the socket when the create fails; it is only listened on.
    let sock = b.dir.join("console.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let out = b.nook(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
        "--bundle",
        b.path_str(),
    ]);
    let err = fails(&out);
    assert!(err.contains("/dev/console"), "{err}");
    b.assert_clean(&id);
}

/// `exec --tty` gets a pty but mounts nothing (the console mount is the init's only).
#[test]
fn cve_2025_52565_exec_tty_mounts_nothing() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("esc-exec-tty");
    b.sh("sleep 30");
    let id = b.id();
    b.create(&id);
    ok(b.nook(&["start", &id]));
    let inside = |b: &Bundle| {
        let o = ok(b.nook(&["exec", &id, "/bin/probe", "mounts"]));
        parse_mountinfo(&text(&o.stdout)).len()
    };
    let before = inside(&b);
    let (master, _, out) = common::with_console_socket(
        &b,
        &["exec", "--tty", "--detach", &id, "/bin/busybox", "true"],
    );
    ok(out);
    let _ = common::read_pty_until_closed(master, common::TIMEOUT);
    assert_eq!(
        inside(&b),
        before,
        "exec --tty changed the container's mounts"
    );
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}

/// Swap `a` and `b` atomically (renameat2 RENAME_EXCHANGE).
fn exchange(a: &Path, b: &Path) -> bool {
    use std::ffi::CString;
    let a = CString::new(a.as_os_str().as_encoded_bytes()).unwrap();
    let b = CString::new(b.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: both are valid C strings for the duration of the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    r == 0
}

#[test]
fn cve_2021_30465_mount_destination_swapped_for_symlink_race() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("esc-race");
    // The host dir the link aims at (outside the rootfs), with a marker file; the same
    // path exists inside the rootfs, so a run during the link phase works too.
    let hostdir = b.dir.join("hostdir");
    fs::create_dir_all(&hostdir).unwrap();
    fs::write(hostdir.join("marker"), "host\n").unwrap();
    let mirror = b.rootfs.join(hostdir.strip_prefix("/").unwrap());
    fs::create_dir_all(&mirror).unwrap();
    let src = b.dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("from-src"), "src\n").unwrap();
    let (flip, link) = (b.rootfs.join("flip"), b.rootfs.join("flip-link"));
    fs::create_dir_all(&flip).unwrap();
    symlink(&hostdir, &link).unwrap();
    add_mount(
        &b,
        json!({"destination": "/flip/t", "type": "tmpfs", "source": "tmpfs"}),
    );
    add_mount(
        &b,
        json!({"destination": "/flip/b", "type": "bind", "source": src, "options": ["rbind", "ro"]}),
    );
    b.args(&["mounts"]);
    let host = HostWatch::new(&[&hostdir.join("marker")]);
    let stop = Arc::new(AtomicBool::new(false));
    // Stops the racer if an assertion fails (declared after the Bundle, so dropped
    // first), so it cannot recreate the temp dir while the Bundle removes it.
    let _stop_guard = StopOnDrop(stop.clone());
    let racer = {
        let stop = stop.clone();
        let (flip, link) = (flip.clone(), link.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                swaps += exchange(&flip, &link) as u64;
            }
            swaps
        })
    };
    // Under the test VM's software emulation a run costs about 50 times as much.
    let iterations = if std::env::var_os("NOOK_VM").is_some() {
        25
    } else {
        100
    };
    let (mut good, mut refused) = (0, 0);
    // Where a mount can show inside: on the directory (which may have been renamed
    // to flip-link since), or on the same path as the host dir inside the root.
    let inside_points: Vec<String> = ["/flip", "/flip-link", hostdir.to_str().unwrap()]
        .iter()
        .flat_map(|d| [format!("{d}/t"), format!("{d}/b")])
        .collect();
    for _ in 0..iterations {
        let id = b.id();
        let out = b.nook(&["run", &id, "--bundle", b.path_str()]);
        if out.status.success() {
            good += 1;
            // Both mounts are visible inside the container: they landed in its root.
            let ms = parse_mountinfo(&text(&out.stdout));
            let seen = ms
                .iter()
                .filter(|m| inside_points.contains(&m.point))
                .count();
            assert!(seen >= 2, "a mount is missing inside: {ms:#?}");
        } else {
            if refused == 0 {
                eprintln!("race: first refusal: {}", text(&out.stderr).trim());
            }
            refused += 1;
            b.assert_clean(&id);
        }
        assert_eq!(
            fs::read_dir(&hostdir).unwrap().count(),
            1,
            "the host dir got new entries"
        );
        host.assert_unchanged();
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    eprintln!("race: {good} runs, {refused} refused, {swaps} swaps");
    assert!(swaps > 0, "the racer never swapped");
    assert!(good > 0, "no run succeeded, the test proves nothing");
    assert_eq!(
        fs::read_to_string(hostdir.join("marker")).unwrap(),
        "host\n"
    );
}

/// Sets the flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Removes a host path a broken runtime might make.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn rootfs_symlink_aims_bind_mount_at_host_path() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("esc-sym-bind");
    let src = b.dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("from-src"), "src\n").unwrap();
    // An absolute link to a host dir the rootfs does not have: it is resolved inside the
    // root, where it dangles, and followed there (as runc does): the mount lands at that
    // path inside the rootfs, and the host dir is untouched.
    let standin = b.dir.join("etc-host-standin");
    fs::create_dir_all(&standin).unwrap();
    fs::write(standin.join("passwd"), "host\n").unwrap();
    symlink(&standin, b.rootfs.join("mnt")).unwrap();
    let bind = |dest: &str| json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind"]});
    add_mount(&b, bind("/mnt/sub"));
    let host = HostWatch::new(&[&standin.join("passwd")]);
    let ms = mounts_inside(&b);
    let at = format!("{}/sub", standin.display());
    assert!(
        ms.iter().any(|m| m.point == at),
        "no mount at {at}: {ms:#?}"
    );
    assert!(
        b.rootfs.join(at.trim_start_matches('/')).is_dir(),
        "not made in the rootfs"
    );
    assert_eq!(
        fs::read_dir(&standin).unwrap().count(),
        1,
        "made on the host"
    );
    host.assert_unchanged();

    // A relative link climbing far above the rootfs to a host path: inside the root it
    // stops at "/", and the mount lands at the same path inside the rootfs.
    let b = Bundle::new("esc-sym-bind-rel");
    let hostx = PathBuf::from(format!("/tmp/nook-escape-x-{}", std::process::id()));
    let _guard = RemoveOnDrop(hostx.clone());
    fs::create_dir_all(&hostx).unwrap();
    fs::create_dir_all(b.rootfs.join(hostx.strip_prefix("/").unwrap())).unwrap();
    let up = "../".repeat(20) + hostx.strip_prefix("/").unwrap().to_str().unwrap();
    symlink(&up, b.rootfs.join("mnt2")).unwrap();
    fs::write(b.dir.join("file-src"), "file\n").unwrap();
    add_mount(&b, bind("/mnt2/sub"));
    add_mount(
        &b,
        json!({"destination": "/mnt2/file", "type": "bind", "source": b.dir.join("file-src"), "options": ["bind", "ro"]}),
    );
    let host = HostWatch::new(&[&hostx]);
    let ms = mounts_inside(&b);
    let inside = |p: &str| {
        ms.iter()
            .any(|m| m.point == format!("{}{p}", hostx.display()))
    };
    assert!(inside("/sub") && inside("/file"), "{ms:#?}");
    assert_eq!(fs::read_dir(&hostx).unwrap().count(), 0, "made on the host");
    host.assert_unchanged();
    assert_eq!(
        probe_out(&b, &["cat", &format!("{}/file", hostx.display())]),
        "file"
    );
}

#[test]
fn rootfs_symlink_aims_device_node_at_host_path() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("esc-sym-dev");
    without_dev_tmpfs(&b);
    let standin = b.dir.join("host-dev-standin");
    fs::write(&standin, "host file\n").unwrap();
    symlink(&standin, b.rootfs.join("dev/mydev")).unwrap();
    let rel = "../".repeat(20) + standin.strip_prefix("/").unwrap().to_str().unwrap();
    fs::create_dir_all(b.rootfs.join("dev/sub")).unwrap();
    symlink(&rel, b.rootfs.join("dev/sub/other")).unwrap();
    b.config(|c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 5, "fileMode": 0o600},
            {"path": "/dev/sub/other", "type": "c", "major": 1, "minor": 7, "fileMode": 0o600},
        ]);
    });
    let host = HostWatch::new(&[&standin]);
    assert_eq!(
        probe_out(&b, &["stat", "/dev/mydev"]),
        "type=chr mode=0600 uid=0 gid=0 rdev=1:5"
    );
    assert_eq!(
        probe_out(&b, &["stat", "/dev/sub/other"]),
        "type=chr mode=0600 uid=0 gid=0 rdev=1:7"
    );
    host.assert_unchanged();

    // /dev itself a link to a host dir: resolved inside the root, where it dangles, it
    // is followed there; the nodes are made in the rootfs and the host dir stays empty.
    let b = Bundle::new("esc-sym-devdir");
    without_dev_tmpfs(&b);
    let hostdev = b.dir.join("host-dev");
    fs::create_dir_all(&hostdev).unwrap();
    fs::remove_dir_all(b.rootfs.join("dev")).unwrap();
    symlink(&hostdev, b.rootfs.join("dev")).unwrap();
    let host = HostWatch::new(&[&hostdev]);
    assert_eq!(probe_out(&b, &["hello"]), "hello from probe");
    assert!(b.rootfs.join(hostdev.strip_prefix("/").unwrap()).is_dir());
    assert_eq!(
        fs::read_dir(&hostdev).unwrap().count(),
        0,
        "made on the host"
    );
    host.assert_unchanged();
}

#[test]
fn rootfs_symlink_aims_injected_file_at_host_path() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("esc-sym-inject");
    let standin = b.dir.join("host-hosts");
    fs::write(&standin, "host file\n").unwrap();
    symlink(&standin, b.rootfs.join("etc/hosts")).unwrap();
    // A relative one, to a file the rootfs has at the same path.
    let standin2 = b.dir.join("host-hostname");
    fs::write(&standin2, "host file\n").unwrap();
    let mirror = b.rootfs.join(standin2.strip_prefix("/").unwrap());
    fs::create_dir_all(mirror.parent().unwrap()).unwrap();
    fs::write(&mirror, "rootfs copy\n").unwrap();
    let rel = "../".repeat(20) + standin2.strip_prefix("/").unwrap().to_str().unwrap();
    symlink(&rel, b.rootfs.join("etc/hostname")).unwrap();
    b.config(|c| c["hostname"] = json!("boxname"));
    let host = HostWatch::new(&[&standin, &standin2]);
    let run = |args: &[&str]| {
        b.args(args);
        let id = b.id();
        b.nook(&[
            "run",
            &id,
            "--bundle",
            b.path_str(),
            "--inject",
            "hosts,hostname",
        ])
    };
    // /etc/hosts aims at a file the rootfs lacks (its directory it has): the mount point
    // is made there, inside the root, and the container sees the generated file.
    let out = run(&["cat", "/etc/hosts"]);
    let inside = b.rootfs.join(standin.strip_prefix("/").unwrap());
    let shown = text(&ok(out).stdout);
    assert!(shown.contains("boxname"), "{shown}");
    assert!(fs::symlink_metadata(&inside).is_ok_and(|m| m.is_file() && m.len() == 0));
    host.assert_unchanged();
    b.config(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/etc/hosts")
    });
    let id = b.id();
    b.args(&["cat", "/etc/hostname"]);
    let out = ok(b.nook(&["run", &id, "--bundle", b.path_str(), "--inject", "hostname"]));
    assert_eq!(text(&out.stdout), "boxname\n");
    // The generated file went over the rootfs's copy, not the host's file.
    assert_eq!(fs::read_to_string(&mirror).unwrap(), "rootfs copy\n");
    host.assert_unchanged();
}

/// The default config's maskedPaths and readonlyPaths (`nook spec`).
fn spec_list(b: &Bundle, key: &str) -> Vec<String> {
    let c: Value =
        serde_json::from_str(&fs::read_to_string(b.path.join("config.json")).unwrap()).unwrap();
    c["linux"][key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn masked_proc_and_sys_paths_cannot_be_read() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("esc-masked");
    let mut checked = 0;
    for p in spec_list(&b, "maskedPaths") {
        let Ok(m) = fs::metadata(&p) else { continue };
        if m.is_dir() {
            if fs::read_dir(&p).is_ok_and(|mut d| d.next().is_some()) {
                assert_eq!(probe_out(&b, &["ls", &p]), "", "{p} lists entries");
                checked += 1;
            }
        } else {
            assert!(is_null_device(&probe_out(&b, &["stat", &p])), "{p}");
            assert_eq!(probe_out(&b, &["cat", &p]), "", "{p} is readable");
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "nothing of the default maskedPaths exists here"
    );
}

#[test]
fn readonly_proc_paths_cannot_be_written() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("esc-ropaths");
    // A writable file under each read-only path (that the host has), the host-wide
    // core_pattern first: a container that could write it would run code on the host.
    let mut targets = vec!["/proc/sys/kernel/core_pattern".to_string()];
    for p in spec_list(&b, "readonlyPaths") {
        let Ok(m) = fs::metadata(&p) else { continue };
        if !m.is_dir() {
            targets.push(p);
            continue;
        }
        let w = fs::read_dir(&p).unwrap().flatten().find(|e| {
            e.metadata()
                .is_ok_and(|m| m.is_file() && m.mode() & 0o200 != 0)
        });
        if let Some(e) = w {
            targets.push(e.path().to_string_lossy().into_owned());
        }
    }
    let paths: Vec<PathBuf> = targets.iter().map(PathBuf::from).collect();
    let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
    let host = HostWatch::new(&refs);
    for t in &targets {
        let out = b.probe(&["write", t]);
        assert_eq!(text(&out.stdout).trim(), "error:EROFS", "writing {t}");
    }
    host.assert_unchanged();
}

#[test]
fn masked_and_readonly_paths_cannot_be_remounted_or_unmounted() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("esc-remount");
    let script = "mount -o remount,rw /proc/sys; echo remount=$?; \
                  mount -o remount,rw,bind /proc/sys; echo rebind=$?; \
                  umount /proc/keys; echo umount-keys=$?; \
                  umount -l /proc/sys; echo umount-sys=$?; \
                  umount /sys/firmware; echo umount-fw=$?; \
                  mount -t proc proc /tmp; echo newproc=$?; \
                  echo x > /proc/sys/kernel/core_pattern; echo write=$?";
    let core = Path::new("/proc/sys/kernel/core_pattern");
    let host = HostWatch::new(&[core]);
    b.sh(script);
    for a in ["mount", "umount"] {
        symlink("busybox", b.rootfs.join("bin").join(a)).unwrap();
    }
    let id = b.id();
    let out = ok(b.nook(&["run", &id, "--bundle", b.path_str()]));
    let out = text(&out.stdout);
    for step in [
        "remount",
        "rebind",
        "umount-keys",
        "umount-sys",
        "umount-fw",
        "newproc",
        "write",
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{step}=")))
            .unwrap_or_else(|| panic!("{step} missing: {out}"));
        assert_ne!(line, format!("{step}=0"), "{step} worked: {out}");
    }
    host.assert_unchanged();
}

/// In a user namespace device nodes are host nodes bound in, and masks too: a rootfs
/// /dev/null and /dev/zero that are links to a host file are replaced inside the rootfs,
/// and the masks show the null device.
#[test]
fn cve_2025_31133_masked_path_dev_null_symlink_in_user_namespace() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("esc-null-userns");
    without_dev_tmpfs(&b);
    let standin = b.dir.join("host-standin");
    fs::write(&standin, "host file\n").unwrap();
    symlink(&standin, b.rootfs.join("dev/null")).unwrap();
    symlink(&standin, b.rootfs.join("dev/zero")).unwrap();
    fs::write(b.rootfs.join("etc/masked.txt"), "secret\n").unwrap();
    b.in_user_namespace();
    b.config(|c| {
        let linux = &mut c["linux"];
        linux["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/etc/masked.txt"));
    });
    let host = HostWatch::new(&[&standin, Path::new("/dev/null"), Path::new("/dev/zero")]);
    assert!(is_null_device(&probe_out(&b, &["stat", "/etc/masked.txt"])));
    assert_eq!(probe_out(&b, &["cat", "/etc/masked.txt"]), "");
    assert!(is_null_device(&probe_out(&b, &["stat", "/dev/null"])));
    assert!(probe_out(&b, &["stat", "/dev/zero"]).ends_with(" rdev=1:5"));
    let w = text(&b.probe(&["write", "/dev/null"]).stdout);
    assert_eq!(w.trim(), "ok");
    host.assert_unchanged();
}

/// The same with --no-pivot (MS_MOVE and chroot: the host's tree stays under the root).
#[test]
fn cve_2025_31133_masked_path_dev_null_symlink_with_no_pivot() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("esc-null-nopivot");
    without_dev_tmpfs(&b);
    let standin = b.dir.join("host-standin");
    fs::write(&standin, "host file\n").unwrap();
    symlink(&standin, b.rootfs.join("dev/null")).unwrap();
    fs::write(b.rootfs.join("etc/masked.txt"), "secret\n").unwrap();
    b.config(|c| {
        let m = c["linux"]["maskedPaths"].as_array_mut().unwrap();
        m.push(json!("/etc/masked.txt"));
    });
    let host = HostWatch::new(&[&standin, Path::new("/dev/null")]);
    let run = |args: &[&str]| {
        b.args(args);
        let id = b.id();
        text(&ok(b.nook(&["run", "--no-pivot", &id, "--bundle", b.path_str()])).stdout)
    };
    assert!(is_null_device(run(&["stat", "/etc/masked.txt"]).trim()));
    assert_eq!(run(&["cat", "/etc/masked.txt"]), "");
    assert_eq!(run(&["write", "/etc/masked.txt"]).trim(), "ok");
    host.assert_unchanged();
}

/// A host directory holding `visible` ("ok") under a 0700 root-only directory, which a
/// container's unprivileged host uid cannot pass, bound (rbind) at /mnt; returns it.
fn bind_unreachable_source(b: &Bundle) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let private = b.dir.join("private");
    let src = private.join("data");
    fs::create_dir_all(&src).unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(src.join("visible"), "ok").unwrap();
    add_mount(
        b,
        json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["rbind"]}),
    );
    src
}

/// A container in its own user namespace binds (rbind) a host directory its uid cannot
/// reach (under a 0700 root-only directory, as podman keeps the files it binds): nook
/// clones the source for it. The clone is taken in the container's mount namespace, so
/// a mount inside the source stays locked there: the container's root, even with
/// CAP_SYS_ADMIN and no seccomp filter, cannot unmount it to see what it covers.
/// (nook runs in a private mount namespace of its own here, where that mount is made,
/// so the host's mount table, which other tests watch, never changes.)
#[test]
fn userns_bind_source_is_reachable_and_its_submounts_stay_locked() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("esc-userns-bind");
    b.in_user_namespace();
    let sub = bind_unreachable_source(&b).join("sub");
    fs::create_dir_all(&sub).unwrap();
    fs::write(sub.join("hidden"), "covered").unwrap();
    b.config(|c| {
        c["linux"].as_object_mut().unwrap().remove("seccomp");
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_ADMIN"));
        }
    });
    let probe = |args: &[&str]| {
        let out = b.probe_over_private_mount(&sub, r#"echo top >"$0/on-top""#, args);
        text(&out.stdout).trim().to_string()
    };
    assert_eq!(probe(&["cat", "/mnt/visible"]), "ok");
    assert_eq!(probe(&["cat", "/mnt/sub/on-top"]), "top");
    assert_eq!(probe(&["esc-umount", "/mnt/sub"]), "umount EINVAL");
    assert_eq!(probe(&["cat", "/mnt/sub/hidden"]), "error:ENOENT");
}

/// The same with a user namespace joined by path (as a Kubernetes pod's containers join
/// the pod's): the second container's init is root only there, and still gets its bind
/// source, which sits under a 0700 root-only directory, from nook.
#[test]
fn joined_userns_bind_source_is_reachable() {
    if common::skip() {
        return;
    }
    let holder = Bundle::new("esc-userns-holder");
    holder.in_user_namespace();
    holder.args(&["sleep", "60"]);
    let hid = holder.id();
    holder.create(&hid);
    let pid = holder.state(&hid)["pid"].as_i64().unwrap();
    let b = Bundle::new("esc-userns-join");
    common::chown_tree(&b.rootfs, 100_000);
    bind_unreachable_source(&b);
    b.config(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user", "path": format!("/proc/{pid}/ns/user")}));
    });
    let out = b.probe(&["cat", "/mnt/visible"]);
    let uid_map = text(&b.probe(&["cat", "/proc/self/uid_map"]).stdout);
    ok(holder.nook(&["delete", "--force", &hid]));
    assert_eq!(text(&ok(out).stdout).trim(), "ok");
    assert_eq!(
        uid_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"],
        "the second container is in the holder's user namespace"
    );
}

/// A directory in the rootfs where a device node goes (no /dev tmpfs) is refused with an
/// error naming the path, not followed or removed; nothing is left behind.
#[test]
fn a_directory_at_a_device_path_is_refused() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("esc-dev-dir");
    without_dev_tmpfs(&b);
    let _ = fs::remove_file(b.rootfs.join("dev/null"));
    fs::create_dir_all(b.rootfs.join("dev/null/sub")).unwrap();
    b.args(&["true"]);
    let id = b.id();
    let err = fails(&b.nook(&["run", &id, "--bundle", b.path_str()]));
    assert!(
        err.contains("/dev/null") && err.contains("directory"),
        "{err}"
    );
    assert!(b.rootfs.join("dev/null/sub").is_dir());
    b.assert_clean(&id);
}
