//! The rootfs-examples, packed with `nook pack` and run from their bundle tars: the
//! root holds the program and nothing else with content; what it needs from the host
//! arrives by injection, and without it the program visibly fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{text, Bundle};

fn no_cc() -> bool {
    common::missing_tool("cc", "package gcc")
}

/// Compile rootfs-examples/<name>/<name>.c into the bundle's scratch dir.
fn build(b: &Bundle, name: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("rootfs-examples")
        .join(name)
        .join(format!("{name}.c"));
    let out = b.dir.join(name);
    let st = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .args(flags)
        .status()
        .expect("running cc");
    assert!(st.success(), "cc {}", src.display());
    out
}

/// `nook pack` the program; returns the tar.
fn pack(b: &Bundle, bin: &Path, flags: &[&str]) -> PathBuf {
    let tar = bin.with_extension("tar");
    let mut args = vec!["pack", bin.to_str().unwrap(), "-o", tar.to_str().unwrap()];
    args.extend_from_slice(flags);
    common::ok(b.nook(&args));
    tar
}

fn run(b: &Bundle, tar: &Path, flags: &[&str]) -> std::process::Output {
    let id = b.id();
    let mut args = vec!["run", id.as_str(), "--bundle", tar.to_str().unwrap()];
    args.extend_from_slice(flags);
    b.nook(&args)
}

/// Files with content in the unpacked (cached) rootfs of a bundle tar, relative paths.
fn files_with_content(root: &Path) -> Vec<String> {
    let bundles = root.join("bundles");
    let entry = std::fs::read_dir(&bundles)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("rootfs").is_dir())
        .expect("a cached bundle");
    let rootfs = entry.join("rootfs");
    let mut out = vec![];
    let mut stack = vec![rootfs.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().filter_map(|e| e.ok()) {
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if m.len() > 0 || !m.is_file() {
                out.push(
                    e.path()
                        .strip_prefix(&rootfs)
                        .unwrap()
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

#[test]
fn dynamic_program_runs_with_host_libc_and_fails_without() {
    if common::skip() || no_cc() {
        return;
    }
    let b = Bundle::new("ex-dynamic");
    let bin = build(&b, "dynamic", &["-lm"]);
    let tar = pack(&b, &bin, &["--libc", "host", "--arg", "9"]);
    let out = run(&b, &tar, &[]);
    let got = text(&common::ok(out).stdout);
    assert!(got.starts_with("dynamic: glibc "), "{got}");
    assert!(got.contains("sqrt(9) = 3.000000"), "{got}");
    // The root holds the program; the loader and libraries are empty mount points.
    assert_eq!(files_with_content(&b.root), vec!["dynamic".to_string()]);
    // Without the host's libc the program cannot start.
    let out = run(&b, &tar, &["--no-inject", "libc"]);
    assert!(!out.status.success(), "ran without its libc");
    assert!(!text(&out.stdout).contains("glibc"));
}

#[test]
fn resolver_needs_hosts_and_the_ca_bundle() {
    if common::skip() || no_cc() {
        return;
    }
    let b = Bundle::new("ex-resolve");
    let bin = build(&b, "resolve", &[]);
    let tar = pack(&b, &bin, &["--libc", "host"]);
    let out = run(&b, &tar, &[]);
    let got = text(&common::ok(out).stdout);
    assert!(
        got.starts_with("resolve: localhost is 127.0.0.1; "),
        "{got}"
    );
    assert!(got.trim_end().ends_with("CA certificates"), "{got}");
    assert_eq!(files_with_content(&b.root), vec!["resolve".to_string()]);
    // Without the CA bundle: the name resolves, the certificates are missing (exit 2).
    let out = run(&b, &tar, &["--no-inject", "ca-certificates"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("no CA certificates"));
}

#[test]
fn static_http_server_answers_from_its_own_network_namespace() {
    if common::skip() || no_cc() {
        return;
    }
    let b = Bundle::new("ex-httpd");
    let bin = build(&b, "httpd", &["-static"]);
    let tar = pack(&b, &bin, &[]);
    let id = b.id();
    let started = common::ok(b.nook(&["run", "--detach", &id, "--bundle", tar.to_str().unwrap()]));
    assert_eq!(files_with_content(&b.root), vec!["httpd".to_string()]);
    let pid = b.state(&id)["pid"].as_i64().expect("a pid");
    let mut reply = String::new();
    let asked = common::wait_until(std::time::Duration::from_secs(10), || {
        let out = Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "bash", "-c"])
            .arg("exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3")
            .output()
            .expect("running nsenter");
        reply = format!("{}{}", text(&out.stdout), text(&out.stderr));
        out.status.success()
    });
    assert!(
        asked,
        "the server never answered: {reply}; state {}; nook said {} {}",
        b.state(&id),
        text(&started.stdout),
        text(&started.stderr)
    );
    assert!(reply.starts_with("HTTP/1.0 200 OK"), "{reply}");
    assert!(reply.contains("hello from httpd"), "{reply}");
    common::ok(b.nook(&["delete", "--force", &id]));
}
