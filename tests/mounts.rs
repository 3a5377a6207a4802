//! The container's filesystem as the kernel shows it from inside: configured
//! mounts and their options, bind mounts, a read-only root, masked and read-only
//! paths, /dev, and symlinks in the rootfs that point at the host.

mod common;

use std::fs;
use std::path::Path;

use common::{host_mount_points, ok, parse_mountinfo, text, Bundle, MountLine};
use serde_json::{json, Value};

fn add_mount(b: &Bundle, m: Value) {
    b.config(|c| c["mounts"].as_array_mut().unwrap().push(m));
}

/// The container's mounts, from `probe mounts`.
fn mounts(b: &Bundle) -> Vec<MountLine> {
    parse_mountinfo(&text(&ok(b.probe(&["mounts"])).stdout))
}

fn mount_at(ms: &[MountLine], point: &str) -> MountLine {
    ms.iter()
        .rev()
        .find(|m| m.point == point)
        .unwrap_or_else(|| panic!("nothing mounted on {point}: {ms:#?}"))
        .clone()
}

/// stdout of one probe run, trimmed.
fn probe_out(b: &Bundle, args: &[&str]) -> String {
    text(&b.probe(args).stdout).trim().to_string()
}

#[test]
fn tmpfs_with_options() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("mnt-tmpfs");
    add_mount(
        &b,
        json!({"destination": "/tmp/x", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "noexec", "size=1m", "mode=1777"]}),
    );
    let m = mount_at(&mounts(&b), "/tmp/x");
    assert_eq!(m.fstype, "tmpfs");
    for o in ["nosuid", "noexec", "rw"] {
        assert!(m.opts.contains(&o.to_string()), "{o} missing: {m:?}");
    }
    assert!(
        m.super_opts.contains(&"size=1024k".to_string()),
        "size: {m:?}"
    );
    // mode=1777 is tmpfs's default, so mountinfo leaves it out: stat shows it.
    assert!(probe_out(&b, &["stat", "/tmp/x"]).starts_with("type=dir mode=1777 "));
}

#[test]
fn bind_mounts_rw_ro_and_file() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("mnt-bind");
    let shared = b.dir.join("shared");
    fs::create_dir_all(&shared).unwrap();
    fs::write(shared.join("hello.txt"), "hi\n").unwrap();
    let src = shared.to_str().unwrap();
    let file = shared.join("hello.txt");
    for (dest, src, opt) in [
        ("/mnt/rw", src, "rw"),
        ("/mnt/ro", src, "ro"),
        ("/etc/hello", file.to_str().unwrap(), "ro"),
    ] {
        add_mount(
            &b,
            json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", opt]}),
        );
    }
    let ms = mounts(&b);
    assert!(mount_at(&ms, "/mnt/ro").opts.contains(&"ro".to_string()));
    assert!(mount_at(&ms, "/mnt/rw").opts.contains(&"rw".to_string()));
    assert_eq!(probe_out(&b, &["cat", "/mnt/ro/hello.txt"]), "hi");
    assert_eq!(probe_out(&b, &["cat", "/etc/hello"]), "hi");
    assert_eq!(probe_out(&b, &["write", "/mnt/ro/new"]), "error:EROFS");
    assert!(!shared.join("new").exists());
    assert_eq!(probe_out(&b, &["write", "/mnt/rw/new"]), "ok");
    assert_eq!(fs::read_to_string(shared.join("new")).unwrap(), "x");
}

#[test]
fn readonly_root() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("mnt-roroot");
    b.config(|c| c["root"]["readonly"] = json!(true));
    assert_eq!(probe_out(&b, &["write", "/x"]), "error:EROFS");
    assert!(!b.rootfs.join("x").exists());
    b.config(|c| c["root"]["readonly"] = json!(false));
    assert_eq!(probe_out(&b, &["write", "/x"]), "ok");
    assert!(b.rootfs.join("x").exists());
}

#[test]
fn masked_paths_are_empty() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("mnt-masked");
    fs::create_dir_all(b.rootfs.join("etc/secret")).unwrap();
    fs::write(b.rootfs.join("etc/secret/key"), "k").unwrap();
    fs::write(b.rootfs.join("etc/secret.txt"), "s").unwrap();
    b.config(|c| {
        let m = c["linux"]["maskedPaths"].as_array_mut().unwrap();
        m.push(json!("/etc/secret"));
        m.push(json!("/etc/secret.txt"));
    });
    let cat = ok(b.probe(&["cat", "/etc/secret.txt"]));
    assert!(cat.stdout.is_empty(), "{:?}", text(&cat.stdout));
    // The default list, where the host has something to hide.
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ] {
        if fs::metadata(p).is_ok_and(|m| m.is_file()) {
            let out = ok(b.probe(&["cat", p]));
            assert!(
                out.stdout.is_empty(),
                "{p} is readable: {:?}",
                text(&out.stdout)
            );
        }
    }
    // A masked directory lists as empty (runc mounts an empty read-only tmpfs).
    assert_eq!(probe_out(&b, &["ls", "/etc/secret"]), "");
    for p in ["/sys/firmware", "/proc/acpi", "/proc/scsi"] {
        if fs::read_dir(p).is_ok_and(|mut d| d.next().is_some()) {
            assert_eq!(probe_out(&b, &["ls", p]), "", "{p} is listed");
        }
    }
}

#[test]
fn readonly_paths_refuse_writes() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("mnt-ropaths");
    assert_eq!(
        probe_out(&b, &["write", "/proc/sys/kernel/domainname"]),
        "error:EROFS"
    );
    if Path::new("/proc/sysrq-trigger").exists() {
        assert_eq!(
            probe_out(&b, &["write", "/proc/sysrq-trigger"]),
            "error:EROFS"
        );
    }
    // Without readonlyPaths the same write works (it is the container's uts namespace).
    b.config(|c| c["linux"]["readonlyPaths"] = json!([]));
    assert_eq!(
        probe_out(&b, &["write", "/proc/sys/kernel/domainname"]),
        "ok"
    );
}

#[test]
fn dev_has_the_standard_devices_and_links() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("mnt-dev");
    let ls = probe_out(&b, &["ls", "/dev"]);
    let names: Vec<&str> = ls.lines().collect();
    for want in [
        "null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout",
    ] {
        assert!(names.contains(&want), "/dev/{want} missing: {names:?}");
    }
    for want in ["stderr", "ptmx", "pts", "shm", "mqueue"] {
        assert!(names.contains(&want), "/dev/{want} missing: {names:?}");
    }
    for (dev, rdev) in [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ] {
        let st = probe_out(&b, &["stat", &format!("/dev/{dev}")]);
        assert!(st.starts_with("type=chr mode=0666 "), "/dev/{dev}: {st}");
        assert!(st.ends_with(&format!("rdev={rdev}")), "/dev/{dev}: {st}");
    }
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        assert_eq!(
            probe_out(&b, &["readlink", &format!("/dev/{link}")]),
            target
        );
    }
}

#[test]
fn configured_devices_are_created() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("mnt-devices");
    b.config(|c| {
        c["linux"]["devices"] = json!([
            {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3,
             "fileMode": 0o600, "uid": 0, "gid": 0},
            {"path": "/dev/myblk", "type": "b", "major": 7, "minor": 200,
             "fileMode": 0o640, "uid": 1000, "gid": 1000},
            {"path": "/dev/sub/myfifo", "type": "p", "fileMode": 0o620},
        ]);
    });
    let stat = |p: &str| probe_out(&b, &["stat", p]);
    assert_eq!(
        stat("/dev/mydev"),
        "type=chr mode=0600 uid=0 gid=0 rdev=1:3"
    );
    assert_eq!(
        stat("/dev/myblk"),
        "type=blk mode=0640 uid=1000 gid=1000 rdev=7:200"
    );
    assert!(stat("/dev/sub/myfifo").starts_with("type=fifo mode=0620 "));
}

/// Removes a host path if a broken runtime made it.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_dir(&self.0);
    }
}

#[test]
fn symlink_to_host_as_mount_destination_stays_inside() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("mnt-symlink");
    let name = format!("nook-escape-{}", std::process::id());
    let host_etc = Path::new("/etc").join(&name);
    let _guard = RemoveOnDrop(host_etc.clone());
    let outside = b.dir.join("outside");
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink("/etc", b.rootfs.join("evil")).unwrap();
    // A relative link climbing far above the rootfs, then down to a host dir.
    // The same path exists in the rootfs, so the link is not dangling inside either.
    let rel = outside.to_str().unwrap().trim_start_matches('/');
    fs::create_dir_all(b.rootfs.join(rel)).unwrap();
    let up = "../".repeat(20) + rel;
    std::os::unix::fs::symlink(&up, b.rootfs.join("evil2")).unwrap();
    for dest in [format!("/evil/{name}"), "/evil2/sub".to_string()] {
        add_mount(
            &b,
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}),
        );
    }
    let before = host_mount_points();
    let ms = mounts(&b);
    let after = host_mount_points();
    assert!(
        !host_etc.exists(),
        "{} was made on the host",
        host_etc.display()
    );
    assert!(!outside.join("sub").exists(), "the host dir got a sub dir");
    let new: Vec<_> = after.difference(&before).collect();
    assert!(new.is_empty(), "new host mounts: {new:?}");
    // The mounts landed inside the rootfs.
    assert_eq!(mount_at(&ms, &format!("/etc/{name}")).fstype, "tmpfs");
    assert_eq!(
        mount_at(&ms, &format!("{}/sub", outside.display())).fstype,
        "tmpfs"
    );
    assert!(b.rootfs.join("etc").join(&name).is_dir());
    assert!(b.rootfs.join(rel).join("sub").is_dir());
}

/// tmpcopyup (podman --read-only asks for it): the tmpfs starts with what the directory
/// held, with modes and owners, symlinks copied as symlinks, and is writable, while
/// writes stay off the rootfs.
#[test]
fn tmpfs_tmpcopyup_starts_with_the_directory_contents() {
    if common::skip() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let b = Bundle::new("mnt-copyup");
    let seed = b.rootfs.join("seed");
    fs::create_dir_all(seed.join("sub")).unwrap();
    fs::write(seed.join("sub/file"), "seeded\n").unwrap();
    fs::set_permissions(seed.join("sub/file"), fs::Permissions::from_mode(0o604)).unwrap();
    std::os::unix::fs::chown(seed.join("sub/file"), Some(1000), Some(1001)).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", seed.join("link")).unwrap();
    fs::set_permissions(&seed, fs::Permissions::from_mode(0o750)).unwrap();
    b.config(|c| c["root"]["readonly"] = json!(true));
    add_mount(
        &b,
        json!({"destination": "/seed", "type": "tmpfs", "source": "tmpfs",
               "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]}),
    );
    assert_eq!(mount_at(&mounts(&b), "/seed").fstype, "tmpfs");
    assert_eq!(probe_out(&b, &["cat", "/seed/sub/file"]), "seeded");
    assert!(
        probe_out(&b, &["stat", "/seed/sub/file"])
            .starts_with("type=file mode=0604 uid=1000 gid=1001 "),
        "{}",
        probe_out(&b, &["stat", "/seed/sub/file"])
    );
    assert!(probe_out(&b, &["stat", "/seed"]).starts_with("type=dir mode=0750 uid=0 "));
    assert_eq!(probe_out(&b, &["readlink", "/seed/link"]), "/etc/shadow");
    assert_eq!(probe_out(&b, &["write", "/seed/new"]), "ok");
    assert!(!seed.join("new").exists(), "the write reached the rootfs");
}

/// tmpcopyup means something only for a tmpfs: elsewhere create fails naming the field.
#[test]
fn tmpcopyup_on_a_bind_is_refused() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("mnt-copyup-bind");
    let src = b.dir.join("src");
    fs::create_dir_all(&src).unwrap();
    add_mount(
        &b,
        json!({"destination": "/mnt", "type": "bind", "source": src, "options": ["bind", "tmpcopyup"]}),
    );
    let out = b.probe(&["hello"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("mounts[") && err.contains("tmpcopyup"),
        "{err}"
    );
}

/// "ro" on an rbind makes only its top mount read-only; "rro" every mount below it too
/// (mount_setattr with AT_RECURSIVE). "rnoexec" on a new tmpfs works the same way.
#[test]
fn recursive_options_reach_submounts() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("mnt-rro");
    let src = b.dir.join("tree");
    let sub = src.join("sub");
    fs::create_dir_all(&sub).unwrap();
    let src_s = src.to_str().unwrap();
    add_mount(
        &b,
        json!({"destination": "/top-ro", "type": "bind", "source": src_s, "options": ["rbind", "ro"]}),
    );
    add_mount(
        &b,
        json!({"destination": "/all-ro", "type": "bind", "source": src_s, "options": ["rbind", "rro"]}),
    );
    add_mount(
        &b,
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["rnoexec"]}),
    );
    // The submount exists only in nook's own private mount namespace (see common).
    let probe = |args: &[&str]| b.probe_over_private_mount(&sub, "true", args);
    let ms = parse_mountinfo(&text(&ok(probe(&["mounts"])).stdout));
    let ro = |p: &str| mount_at(&ms, p).opts.contains(&"ro".to_string());
    assert!(ro("/top-ro") && !ro("/top-ro/sub"), "{ms:#?}");
    assert!(ro("/all-ro") && ro("/all-ro/sub"), "{ms:#?}");
    assert!(mount_at(&ms, "/scratch")
        .opts
        .contains(&"noexec".to_string()));
    let write = |p: &str| text(&probe(&["write", p]).stdout).trim().to_string();
    assert_eq!(write("/top-ro/sub/x"), "ok");
    assert_eq!(write("/all-ro/sub/x2"), "error:EROFS");
}

/// Propagation asked for a new filesystem is set through the mount nook made (never a
/// second lookup of the path): the tmpfs is shared, in a peer group of its own.
#[test]
fn propagation_of_a_new_filesystem() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("mnt-prop");
    add_mount(
        &b,
        json!({"destination": "/shared", "type": "tmpfs", "source": "tmpfs", "options": ["shared"]}),
    );
    add_mount(
        &b,
        json!({"destination": "/private", "type": "tmpfs", "source": "tmpfs", "options": ["private"]}),
    );
    let info = probe_out(&b, &["cat", "/proc/self/mountinfo"]);
    let line = |p: &str| {
        info.lines()
            .rev()
            .find(|l| l.split(' ').nth(4) == Some(p))
            .unwrap_or_else(|| panic!("no {p} in\n{info}"))
            .to_string()
    };
    assert!(line("/shared").contains(" shared:"), "{}", line("/shared"));
    assert!(
        !line("/private").contains(" shared:"),
        "{}",
        line("/private")
    );
}

/// A bind mount marked `rshared` (podman `-v src:dst:rshared`, which also sets
/// rootfsPropagation) stays a peer of its source: a mount the container makes under it
/// shows on the host, as with runc. Played in a private mount namespace whose shared
/// tmpfs stands in for the host's volume, checked there after the run.
#[test]
fn rshared_bind_propagates_back_to_the_source() {
    if common::skip() || common::missing_tool("unshare", "package util-linux") {
        return;
    }
    let b = Bundle::new("mnt-rshared");
    let vol = b.dir.join("volume");
    fs::create_dir_all(&vol).unwrap();
    b.sh("mount -t tmpfs from-the-container /vol/sub && echo mounted");
    b.config(|c| {
        c["linux"].as_object_mut().unwrap().remove("seccomp");
        c["linux"]["rootfsPropagation"] = json!("rshared");
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_ADMIN"));
        }
    });
    add_mount(
        &b,
        json!({"destination": "/vol", "type": "bind", "source": vol,
               "options": ["rbind", "rshared"]}),
    );
    let setup = r#"mount --make-shared "$0" && mkdir "$0/sub""#;
    let after = r#"echo "host sees: $(grep -c " $0/sub " /proc/self/mountinfo)""#;
    let out = b.run_over_private_mount(&vol, setup, Some(after));
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}{}", text(&out.stderr));
    assert!(said.contains("mounted"), "{said}");
    assert!(said.contains("host sees: 1"), "{said}");
}

/// The `cgroup` mount (the default config's: nosuid, noexec, nodev, ro) as the kernel
/// shows it: on a v1 or hybrid host a tmpfs holding one bind per hierarchy, on a pure
/// v2 host one cgroup2 mount; every one of them read-only with the config's flags (nook
/// sets them on all at once, recursively, after binding the hierarchies in).
#[test]
fn cgroup_mount_and_every_hierarchy_in_it_get_the_flags() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("mnt-cgroup");
    let ms = mounts(&b);
    let under: Vec<&MountLine> = ms
        .iter()
        .filter(|m| m.point == "/sys/fs/cgroup" || m.point.starts_with("/sys/fs/cgroup/"))
        .collect();
    let hierarchies = common::cgroup_mounts().len();
    let want = if hierarchies == 1 { 1 } else { hierarchies + 1 };
    assert_eq!(under.len(), want, "{under:#?}");
    for m in under {
        for o in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(
                m.opts.iter().any(|x| x == o),
                "{} lacks {o}: {m:?}",
                m.point
            );
        }
    }
    // And a write there fails (a cgroup file the container's own cgroup has).
    let pids = common::controller("pids").expect("a pids controller");
    let file = common::inside_cgroup_file(&pids, "cgroup.procs");
    let w = probe_out(&b, &["write", &file]);
    assert!(w.contains("EROFS"), "{file}: {w}");
}
