//! Host files injected at start (annotation io.nook.inject, --inject, --no-inject),
//! checked from inside the container: their contents, that they are read-only bind
//! mounts, and that the bundle's rootfs on the host is left exactly as it was.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fails, ok, parse_mountinfo, text, Bundle, MountLine, TIMEOUT};
use serde_json::json;

/// Every destination nook injects into (libc aside). The test rootfs ships each one, so
/// the mount code has nothing to create there.
const DESTS: [&str; 8] = [
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/localtime",
];

const ALL: &str = "resolv.conf,hosts,hostname,passwd,nsswitch,ca-certificates,localtime";

/// A bundle whose rootfs holds every destination (with "orig" contents, passwd and
/// group as the harness wrote them), a writable root, hostname "box", the process
/// running as 1000:1000 with additional gid 2000, and `io.nook.inject` set to `inject`.
fn bundle(name: &str, inject: Option<&str>) -> Bundle {
    let b = Bundle::new(name);
    for d in DESTS {
        let p = b.rootfs.join(&d[1..]);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        if !p.exists() {
            fs::write(&p, format!("orig {d}\n")).unwrap();
        }
    }
    b.config(|c| {
        c["root"]["readonly"] = json!(false);
        c["hostname"] = json!("box");
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [2000]});
        if let Some(i) = inject {
            c["annotations"] = json!({ "io.nook.inject": i });
        }
    });
    b
}

/// `nook run` of the probe with extra flags for run.
fn run(b: &Bundle, flags: &[&str], probe_args: &[&str]) -> Output {
    b.args(probe_args);
    let id = b.id();
    let mut a = vec!["run", id.as_str(), "--bundle", b.path_str()];
    a.extend_from_slice(flags);
    b.nook(&a)
}

fn cat(b: &Bundle, flags: &[&str], path: &str) -> Vec<u8> {
    ok(run(b, flags, &["cat", path])).stdout
}

fn cat_str(b: &Bundle, flags: &[&str], path: &str) -> String {
    text(&cat(b, flags, path))
}

fn mounts(b: &Bundle, flags: &[&str]) -> Vec<MountLine> {
    parse_mountinfo(&text(&ok(run(b, flags, &["mounts"])).stdout))
}

fn mount_at<'a>(ms: &'a [MountLine], point: &str) -> Option<&'a MountLine> {
    ms.iter().rev().find(|m| m.point == point)
}

/// What a file tree holds: per path, its mode and uid, and a file's bytes or a link's target.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let body = if m.is_file() {
                fs::read(&p).unwrap()
            } else if m.file_type().is_symlink() {
                fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                todo.push(p.clone());
                vec![]
            };
            out.insert(
                p.strip_prefix(root).unwrap().to_path_buf(),
                (m.mode(), m.uid(), body),
            );
        }
    }
    out
}

/// The host's resolv.conf nameservers, and whether they are all loopback addresses.
fn loopback_only(text: &str) -> bool {
    let ns: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(|a| a.trim().split('%').next().unwrap())
        .collect();
    !ns.is_empty()
        && ns
            .iter()
            .all(|a| a.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback()))
}

#[test]
fn injected_files_are_read_only_and_the_rootfs_is_untouched() {
    if common::skip() {
        return;
    }
    let b = bundle("inj-all", Some(ALL));
    let before = snapshot(&b.rootfs);

    let hosts = cat_str(&b, &[], "/etc/hosts");
    assert!(hosts.contains("127.0.0.1\tlocalhost\n"), "{hosts}");
    assert!(hosts.contains("::1\tlocalhost ip6-localhost\n"), "{hosts}");
    assert!(hosts.contains("127.0.1.1\tbox\n"), "{hosts}");
    assert_eq!(cat_str(&b, &[], "/etc/hostname"), "box\n");

    let passwd = cat_str(&b, &[], "/etc/passwd");
    for l in [
        "root:x:0:0:root:/root:/sbin/nologin",
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin",
        "app:x:1000:1000::/:/sbin/nologin",
    ] {
        assert!(passwd.lines().any(|x| x == l), "{l} missing:\n{passwd}");
    }
    let group = cat_str(&b, &[], "/etc/group");
    for l in [
        "root:x:0:",
        "nobody:x:65534:",
        "app:x:1000:",
        "g2000:x:2000:app",
    ] {
        assert!(group.lines().any(|x| x == l), "{l} missing:\n{group}");
    }
    let nss = cat_str(&b, &[], "/etc/nsswitch.conf");
    for l in ["passwd: files", "group: files", "hosts: files dns"] {
        assert!(nss.lines().any(|x| x == l), "{l} missing:\n{nss}");
    }

    // resolv.conf: the host's, or (a loopback stub with our own network namespace)
    // the upstream one or the host's without loopback servers.
    let host = fs::read_to_string("/etc/resolv.conf").unwrap();
    let got = cat_str(&b, &[], "/etc/resolv.conf");
    if !loopback_only(&host) {
        assert_eq!(got, host);
    } else if let Ok(up) = fs::read_to_string("/run/systemd/resolve/resolv.conf") {
        assert_eq!(got, up);
    } else {
        assert!(!got.contains("nameserver 127."), "{got}");
    }

    let ca = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ]
    .into_iter()
    .find_map(|p| fs::read(p).ok())
    .expect("the host has a CA bundle");
    assert!(
        cat(&b, &[], "/etc/ssl/certs/ca-certificates.crt") == ca,
        "CA bundle differs"
    );
    // localtime: the zoneinfo file; a host without /etc/localtime (UTC) gives nothing.
    let zone = fs::canonicalize("/etc/localtime").ok();
    let dests: Vec<&str> = DESTS
        .into_iter()
        .filter(|d| zone.is_some() || *d != "/etc/localtime")
        .collect();
    let want = zone
        .as_ref()
        .map_or(b"orig /etc/localtime\n".to_vec(), |z| fs::read(z).unwrap());
    assert!(cat(&b, &[], "/etc/localtime") == want);

    // Read-only bind mounts with nosuid, nodev, noexec.
    let ms = mounts(&b, &[]);
    for &d in &dests {
        let m = mount_at(&ms, d).unwrap_or_else(|| panic!("nothing mounted on {d}"));
        for o in ["ro", "nosuid", "nodev", "noexec"] {
            assert!(m.opts.iter().any(|x| x == o), "{d}: {o} missing: {m:?}");
        }
        let w = text(&ok(run(&b, &[], &["stat", d])).stdout);
        assert!(w.starts_with("type=file "), "{d}: {w}");
        // Generated files are 0644 (host files keep the host's mode).
        let host_file = ["/etc/resolv.conf", "/etc/localtime"].contains(&d) || d.contains("/ssl/");
        assert!(
            host_file || w.starts_with("type=file mode=0644 "),
            "{d}: {w}"
        );
    }
    for &d in &dests {
        let out = run(&b, &[], &["write", d]);
        assert_eq!(text(&out.stdout).trim(), "error:EROFS", "writing {d}");
    }
    // Root can write elsewhere in the rootfs (so EROFS above is the mounts' doing):
    // checked on a path the snapshot then leaves out.
    b.config(|c| c["process"]["user"] = json!({"uid": 0, "gid": 0}));
    assert_eq!(text(&ok(run(&b, &[], &["write", "/tmp/w"])).stdout), "ok\n");
    assert_eq!(
        text(&run(&b, &[], &["write", "/etc/hosts"]).stdout),
        "error:EROFS\n"
    );
    fs::remove_file(b.rootfs.join("tmp/w")).unwrap();

    assert_eq!(snapshot(&b.rootfs), before, "the rootfs changed");
}

#[test]
fn root_user_gets_no_app_line() {
    if common::skip() {
        return;
    }
    let b = bundle("inj-root", Some("passwd"));
    b.config(|c| c["process"]["user"] = json!({"uid": 0, "gid": 0}));
    let passwd = cat_str(&b, &[], "/etc/passwd");
    assert_eq!(
        passwd,
        "root:x:0:0:root:/root:/sbin/nologin\n\
         nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    );
    assert_eq!(
        cat_str(&b, &[], "/etc/group"),
        "root:x:0:\nnobody:x:65534:\n"
    );
}

#[test]
fn hostname_defaults_to_the_id() {
    if common::skip() {
        return;
    }
    let b = bundle("inj-id", Some("hosts,hostname"));
    b.config(|c| {
        c.as_object_mut().unwrap().remove("hostname");
    });
    b.args(&["cat", "/etc/hostname"]);
    let id = b.id();
    let out = ok(b.nook(&["run", &id, "--bundle", b.path_str()]));
    assert_eq!(text(&out.stdout), format!("{id}\n"));
}

#[test]
fn nothing_asked_nothing_injected() {
    if common::skip() {
        return;
    }
    let b = bundle("inj-none", None);
    let before = snapshot(&b.rootfs);
    assert_eq!(cat_str(&b, &[], "/etc/hosts"), "orig /etc/hosts\n");
    let ms = mounts(&b, &[]);
    for d in DESTS {
        assert!(mount_at(&ms, d).is_none(), "{d} is mounted");
    }
    // No inject dir in the state dir of a created container.
    b.args(&["hello"]);
    let id = b.id();
    b.create(&id);
    assert!(b.root.join(&id).join("state.json").exists());
    assert!(!b.root.join(&id).join("inject").exists());
    assert!(!b.root.join(&id).join("templates").exists());
    ok(b.nook(&["delete", "--force", &id]));
    assert_eq!(snapshot(&b.rootfs), before);
}

#[test]
fn generated_files_live_in_the_state_dir() {
    if common::skip() {
        return;
    }
    let b = bundle("inj-state", Some("hosts,passwd"));
    b.args(&["hello"]);
    let id = b.id();
    b.create(&id);
    let dir = b.root.join(&id).join("inject");
    for f in ["hosts", "passwd", "group"] {
        let m = fs::metadata(dir.join(f)).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o644, "{f}");
    }
    assert!(!dir.join("hostname").exists());
    ok(b.nook(&["delete", "--force", &id]));
    b.assert_clean(&id);
}

#[test]
fn cli_flags_add_and_remove() {
    if common::skip() {
        return;
    }
    let b = bundle("inj-cli", Some("hosts,hostname"));
    // --no-inject hostname: the rootfs's own file shows.
    let flags = ["--no-inject", "hostname"];
    assert_eq!(cat_str(&b, &flags, "/etc/hostname"), "orig /etc/hostname\n");
    assert!(cat_str(&b, &flags, "/etc/hosts").contains("127.0.1.1\tbox\n"));
    let ms = mounts(&b, &flags);
    assert!(mount_at(&ms, "/etc/hostname").is_none());
    assert!(mount_at(&ms, "/etc/hosts").is_some());
    // --inject adds what the bundle did not ask for (comma lists work too).
    let flags = ["--inject", "nsswitch,passwd", "--no-inject", "hosts"];
    assert!(cat_str(&b, &flags, "/etc/nsswitch.conf").contains("hosts: files dns\n"));
    assert!(cat_str(&b, &flags, "/etc/passwd").contains("app:x:1000:1000::/:/sbin/nologin\n"));
    assert_eq!(cat_str(&b, &flags, "/etc/hosts"), "orig /etc/hosts\n");
    assert_eq!(cat_str(&b, &flags, "/etc/hostname"), "box\n");
}

#[test]
fn unknown_injection_fails_clearly() {
    if common::skip() {
        return;
    }
    let b = bundle("inj-bad", Some("hosts,bogus"));
    let before = snapshot(&b.rootfs);
    b.args(&["hello"]);
    for (flags, name) in [
        (vec![], "\"bogus\""),
        (vec!["--no-inject", "bogus", "--inject", "nope"], "\"nope\""),
        (vec!["--no-inject", "bogus,wat"], "\"wat\""),
    ] {
        let id = b.id();
        let mut a = vec!["run", id.as_str(), "--bundle", b.path_str()];
        a.extend_from_slice(&flags);
        let err = fails(&b.nook(&a));
        assert!(
            err.contains(name) && err.contains("unknown injection"),
            "{flags:?}: {err}"
        );
        b.assert_clean(&id);
    }
    // With the bad name removed it runs.
    let out = ok(run(&b, &["--no-inject", "bogus"], &["cat", "/etc/hosts"]));
    assert!(text(&out.stdout).contains("127.0.1.1\tbox"));
    assert_eq!(snapshot(&b.rootfs), before);
}

#[test]
fn libc_paths_are_bound_executable() {
    if common::skip() {
        return;
    }
    let b = bundle("inj-libc", Some("libc"));
    let lib = b.dir.join("hostlib/libnook-fake.so.1");
    fs::create_dir_all(lib.parent().unwrap()).unwrap();
    fs::write(&lib, "not really a library\n").unwrap();
    let libs = json!([lib]).to_string();
    b.config(|c| c["annotations"]["io.nook.host-libs"] = json!(libs));
    let path = lib.to_str().unwrap();
    assert_eq!(cat_str(&b, &[], path), "not really a library\n");
    let ms = mounts(&b, &[]);
    let m = mount_at(&ms, path).expect("the library is mounted");
    assert!(m.opts.iter().any(|o| o == "ro"), "{m:?}");
    assert!(!m.opts.iter().any(|o| o == "noexec"), "{m:?}");
    assert_eq!(
        text(&run(&b, &[], &["write", path]).stdout),
        "error:EROFS\n"
    );

    // A missing host library or annotation is an error naming it.
    let gone = b.dir.join("hostlib/libgone.so");
    let libs = json!([gone]).to_string();
    b.config(|c| c["annotations"]["io.nook.host-libs"] = json!(libs));
    let err = fails(&run(&b, &[], &["hello"]));
    assert!(err.contains("libgone.so"), "{err}");
    b.config(|c| {
        c["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("io.nook.host-libs");
    });
    let err = fails(&run(&b, &[], &["hello"]));
    assert!(err.contains("io.nook.host-libs"), "{err}");
}

/// `nook run` in a private mount namespace where a script first bind-mounts fake host
/// files (the test cannot change the host's own /etc/resolv.conf).
fn run_with_host_files(b: &Bundle, setup: &str, probe_args: &[&str]) -> Option<Output> {
    if common::missing_tool("unshare", "package util-linux") {
        return None;
    }
    b.args(probe_args);
    let id = b.id();
    let script = format!("set -e\n{setup}\nexec \"$0\" --root \"$1\" run \"$2\" --bundle \"$3\"",);
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(common::NOOK)
        .arg(&b.root)
        .arg(&id)
        .arg(&b.path);
    let mut s = b.spawn(c);
    Some(s.output_within(TIMEOUT).expect("nook run timed out"))
}

#[test]
fn resolv_conf_with_a_loopback_stub() {
    if common::skip() {
        return;
    }
    let b = bundle("inj-stub", Some("resolv.conf"));
    let stub = b.dir.join("stub-resolv.conf");
    let stub_text = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.test\n";
    fs::write(&stub, stub_text).unwrap();
    let up = b.dir.join("upstream");
    fs::create_dir_all(&up).unwrap();
    fs::write(up.join("resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
    // The stub is bound where /etc/resolv.conf leads (it may be a link into /run), after
    // /run is arranged: a missing link target can then only be in a tmpfs made here.
    let bind_stub = format!(
        "t=$(readlink -f /etc/resolv.conf)\n\
         [ -e \"$t\" ] || {{ mkdir -p \"$(dirname \"$t\")\"; touch \"$t\"; }}\n\
         mount --bind '{}' \"$t\"",
        stub.display()
    );
    // An own network namespace and no upstream file: the stub without loopback servers
    // (a host /run/systemd/resolve is hidden by an empty tmpfs).
    let hide = "if [ -d /run/systemd/resolve ]; then mount -t tmpfs tmpfs /run/systemd/resolve; fi";
    let setup = format!("{hide}\n{bind_stub}");
    let Some(out) = run_with_host_files(&b, &setup, &["cat", "/etc/resolv.conf"]) else {
        return;
    };
    let got = text(&ok(out).stdout);
    assert!(!got.contains("127.0.0.53"), "{got}");
    assert!(
        got.contains("options edns0 trust-ad\nsearch example.test\n"),
        "{got}"
    );

    // With /run/systemd/resolve/resolv.conf: that file. Without a /run/systemd/resolve
    // on the host, a tmpfs on /run (in this mount namespace only) holds it.
    let with_up = format!(
        "if [ ! -d /run/systemd/resolve ]; then\n\
         mount -t tmpfs tmpfs /run; mkdir -p /run/systemd/resolve\nfi\n\
         mount --bind '{}' /run/systemd/resolve\n{bind_stub}",
        up.display()
    );
    let out = run_with_host_files(&b, &with_up, &["cat", "/etc/resolv.conf"]).unwrap();
    assert_eq!(text(&ok(out).stdout), "nameserver 192.0.2.53\n");

    // The host's network namespace: the stub works there, so it is the host's file.
    b.config(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "network");
    });
    let out = run_with_host_files(&b, &bind_stub, &["cat", "/etc/resolv.conf"]).unwrap();
    assert_eq!(text(&ok(out).stdout), stub_text);
}

/// In a user namespace whose root is not host root, the 0700 state dir is out of the
/// container's reach, so nook clones the generated files' bind sources for it
/// (linux::mount_sources): they arrive all the same, read-only; so do host files.
#[test]
fn user_namespace_gets_generated_and_host_files() {
    if common::skip() {
        return;
    }
    let b = bundle("inj-userns", Some("hosts"));
    b.in_user_namespace();
    let hosts = cat_str(&b, &[], "/etc/hosts");
    assert!(hosts.contains("localhost"), "{hosts}");
    assert_ne!(hosts, "orig /etc/hosts\n");
    let out = run(&b, &[], &["write", "/etc/hosts"]);
    assert_eq!(text(&out.stdout), "error:EROFS\n");

    let flags = ["--no-inject", "hosts", "--inject", "ca-certificates"];
    let ca = "/etc/ssl/certs/ca-certificates.crt";
    let got = cat(&b, &flags, ca);
    assert!(!got.is_empty() && got == fs::read(fs::canonicalize(ca).unwrap()).unwrap());
    let out = run(&b, &flags, &["write", ca]);
    assert_eq!(text(&out.stdout), "error:EROFS\n");
}
