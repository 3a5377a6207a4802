//! Config templates rendered at each start (--config-dir from the host, or the
//! bundle's own templates), with ${NAME} macros expanded from built-ins, --var and
//! --var-file; each rendered file bound read-only at its path in the container.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{fails, ok, parse_mountinfo, text, Bundle};
use serde_json::json;

const APP_CONF: &str = "host=${HOSTNAME} id=${CONTAINER_ID} x=${X} price=$$5\n";

/// A bundle with a writable root, hostname "box", and a host config dir next to it
/// holding etc/app.conf (APP_CONF). The rootfs ships /etc/app.conf itself.
fn bundle(name: &str) -> (Bundle, PathBuf) {
    let b = Bundle::new(name);
    b.config(|c| {
        c["root"]["readonly"] = json!(false);
        c["hostname"] = json!("box");
    });
    fs::write(b.rootfs.join("etc/app.conf"), "orig\n").unwrap();
    let conf = b.dir.join("conf");
    fs::create_dir_all(conf.join("etc")).unwrap();
    fs::write(conf.join("etc/app.conf"), APP_CONF).unwrap();
    (b, conf)
}

/// `nook run` of the probe; returns the output and the id.
fn run(b: &Bundle, flags: &[&str], probe_args: &[&str]) -> (Output, String) {
    b.args(probe_args);
    let id = b.id();
    let mut a = vec!["run", id.as_str(), "--bundle", b.path_str()];
    a.extend_from_slice(flags);
    (b.nook(&a), id)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The files below a directory (relative paths), sorted.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
        }
    }
    out.sort();
    out
}

#[test]
fn config_dir_is_rendered_read_only() {
    if common::skip() {
        return;
    }
    let (b, conf) = bundle("tmpl-dir");
    fs::create_dir_all(conf.join("etc/nginx")).unwrap();
    fs::write(
        conf.join("etc/nginx/nginx.conf"),
        "server_name ${HOSTNAME};\n",
    )
    .unwrap();
    fs::write(b.rootfs.join("etc/nginx.keep"), "").unwrap();
    let flags = ["--config-dir", s(&conf), "--var", "X=1"];

    let (out, id) = run(&b, &flags, &["cat", "/etc/app.conf"]);
    assert_eq!(
        text(&ok(out).stdout),
        format!("host=box id={id} x=1 price=$5\n")
    );
    let (out, _) = run(&b, &flags, &["cat", "/etc/nginx/nginx.conf"]);
    assert_eq!(text(&ok(out).stdout), "server_name box;\n");

    let (out, _) = run(&b, &flags, &["write", "/etc/app.conf"]);
    assert_eq!(text(&out.stdout), "error:EROFS\n");
    let (out, _) = run(&b, &flags, &["mounts"]);
    let ms = parse_mountinfo(&text(&ok(out).stdout));
    let m = ms
        .iter()
        .rev()
        .find(|m| m.point == "/etc/app.conf")
        .expect("/etc/app.conf is mounted");
    for o in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(m.opts.iter().any(|x| x == o), "{o} missing: {m:?}");
    }
    let (out, _) = run(&b, &flags, &["stat", "/etc/app.conf"]);
    assert!(text(&out.stdout).starts_with("type=file mode=0644 "));

    // The templates and the rootfs's own file are untouched; a missing destination
    // (etc/nginx/nginx.conf) is created in the rootfs as an empty mount point.
    assert_eq!(
        fs::read_to_string(conf.join("etc/app.conf")).unwrap(),
        APP_CONF
    );
    assert_eq!(
        fs::read_to_string(b.rootfs.join("etc/app.conf")).unwrap(),
        "orig\n"
    );
    assert_eq!(
        fs::read(b.rootfs.join("etc/nginx/nginx.conf")).unwrap(),
        b""
    );

    // Without --config-dir nothing is rendered.
    let (out, _) = run(&b, &[], &["cat", "/etc/app.conf"]);
    assert_eq!(text(&ok(out).stdout), "orig\n");
}

#[test]
fn builtins_host_ip_and_machine_id() {
    if common::skip() {
        return;
    }
    let (b, conf) = bundle("tmpl-builtins");
    fs::write(conf.join("etc/app.conf"), "${HOST_IP}\n${MACHINE_ID}\n").unwrap();
    let (out, _) = run(&b, &["--config-dir", s(&conf)], &["cat", "/etc/app.conf"]);
    if !Path::new("/etc/machine-id").exists() {
        let err = fails(&out);
        assert!(
            err.contains("etc/app.conf:2") && err.contains("machine-id"),
            "{err}"
        );
        return;
    }
    let got = text(&ok(out).stdout);
    let mut lines = got.lines();
    let ip: std::net::IpAddr = lines.next().unwrap().parse().expect("an IP address");
    assert!(!ip.is_unspecified());
    let mid = fs::read_to_string("/etc/machine-id").unwrap();
    assert_eq!(lines.next(), Some(mid.trim()));
}

#[test]
fn unknown_macro_fails_with_file_and_line_and_leaves_nothing() {
    if common::skip() {
        return;
    }
    let (b, conf) = bundle("tmpl-bad");
    fs::write(conf.join("etc/app.conf"), "a=1\nb=${NOPE}\n").unwrap();
    fs::write(conf.join("etc/fine.conf"), "fine\n").unwrap();
    let rootfs_before = files(&b.rootfs);
    let (out, id) = run(&b, &["--config-dir", s(&conf)], &["hello"]);
    let err = fails(&out);
    let want = format!("{}:2", conf.join("etc/app.conf").display());
    assert!(err.contains(&want) && err.contains("${NOPE}"), "{err}");
    b.assert_clean(&id);
    assert_eq!(files(&b.rootfs), rootfs_before, "nothing new in the rootfs");

    // An unterminated macro names its line too.
    fs::write(conf.join("etc/app.conf"), "one\ntwo\nthree=${X\n").unwrap();
    let (out, id) = run(&b, &["--config-dir", s(&conf), "--var", "X=1"], &["hello"]);
    let err = fails(&out);
    assert!(
        err.contains("etc/app.conf:3") && err.contains("unterminated"),
        "{err}"
    );
    b.assert_clean(&id);
    assert_eq!(files(&b.rootfs), rootfs_before);
}

#[test]
fn var_file_and_var() {
    if common::skip() {
        return;
    }
    let (b, conf) = bundle("tmpl-varfile");
    let vf = b.dir.join("vars");
    fs::write(&vf, "# a comment\nX=from-file\n\nHOSTNAME=renamed\n").unwrap();
    let (out, id) = run(
        &b,
        &["--config-dir", s(&conf), "--var-file", s(&vf)],
        &["cat", "/etc/app.conf"],
    );
    assert_eq!(
        text(&ok(out).stdout),
        format!("host=renamed id={id} x=from-file price=$5\n")
    );
    // --var wins over --var-file.
    let flags = [
        "--config-dir",
        s(&conf),
        "--var-file",
        s(&vf),
        "--var",
        "X=2",
    ];
    let (out, _) = run(&b, &flags, &["cat", "/etc/app.conf"]);
    assert!(text(&ok(out).stdout).contains(" x=2 "));
    // A bad variable name is refused.
    let flags = ["--config-dir", s(&conf), "--var", "X=1", "--var", "A-B=2"];
    let (out, id) = run(&b, &flags, &["hello"]);
    assert!(fails(&out).contains("\"A-B\""));
    b.assert_clean(&id);
}

#[test]
fn bundle_templates_render() {
    if common::skip() {
        return;
    }
    let (b, _) = bundle("tmpl-bundle");
    let t = b.path.join("templates/etc");
    fs::create_dir_all(&t).unwrap();
    fs::write(t.join("a.conf"), "name=${HOSTNAME} v=${V}\n").unwrap();
    fs::write(b.rootfs.join("etc/a.conf"), "orig\n").unwrap();
    b.config(|c| c["annotations"] = json!({"io.nook.templates": "templates"}));
    let (out, _) = run(&b, &["--var", "V=7"], &["cat", "/etc/a.conf"]);
    assert_eq!(text(&ok(out).stdout), "name=box v=7\n");
    let (out, _) = run(&b, &["--var", "V=7"], &["write", "/etc/a.conf"]);
    assert_eq!(text(&out.stdout), "error:EROFS\n");

    // Without the annotation a "templates" directory is not nook's: nothing is rendered.
    b.config(|c| {
        c.as_object_mut().unwrap().remove("annotations");
    });
    let (out, _) = run(&b, &["--var", "V=8"], &["cat", "/etc/a.conf"]);
    assert_eq!(text(&ok(out).stdout), "orig\n");

    // Another directory named by the annotation.
    fs::rename(b.path.join("templates"), b.path.join("conf.d")).unwrap();
    b.config(|c| c["annotations"] = json!({"io.nook.templates": "conf.d"}));
    let (out, _) = run(&b, &["--var", "V=9"], &["cat", "/etc/a.conf"]);
    assert_eq!(text(&ok(out).stdout), "name=box v=9\n");

    // --config-dir takes the place of the bundle's templates.
    let other = b.dir.join("other");
    fs::create_dir_all(other.join("etc")).unwrap();
    fs::write(other.join("etc/b.conf"), "other\n").unwrap();
    let flags = ["--config-dir", s(&other)];
    let (out, _) = run(&b, &flags, &["cat", "/etc/a.conf"]);
    assert_eq!(text(&ok(out).stdout), "orig\n");

    // An annotation climbing out of the bundle is refused.
    b.config(|c| c["annotations"] = json!({"io.nook.templates": "../conf"}));
    let (out, id) = run(&b, &[], &["hello"]);
    assert!(fails(&out).contains("io.nook.templates"));
    b.assert_clean(&id);
}

#[test]
fn symlinks_and_special_files_are_refused() {
    if common::skip() {
        return;
    }
    let (b, conf) = bundle("tmpl-links");
    std::os::unix::fs::symlink("/etc/shadow", conf.join("etc/shadow")).unwrap();
    let (out, id) = run(&b, &["--config-dir", s(&conf), "--var", "X=1"], &["hello"]);
    let err = fails(&out);
    assert!(
        err.contains("etc/shadow") && err.contains("symbolic link"),
        "{err}"
    );
    b.assert_clean(&id);
    fs::remove_file(conf.join("etc/shadow")).unwrap();

    // A linked directory inside the config dir.
    std::os::unix::fs::symlink("/etc", conf.join("hostetc")).unwrap();
    let (out, id) = run(&b, &["--config-dir", s(&conf), "--var", "X=1"], &["hello"]);
    let err = fails(&out);
    assert!(
        err.contains("hostetc") && err.contains("symbolic link"),
        "{err}"
    );
    b.assert_clean(&id);
    fs::remove_file(conf.join("hostetc")).unwrap();

    // The bundle's templates directory itself may not be a link.
    std::os::unix::fs::symlink(&conf, b.path.join("templates")).unwrap();
    b.config(|c| c["annotations"] = json!({"io.nook.templates": "templates"}));
    let (out, id) = run(&b, &["--var", "X=1"], &["hello"]);
    let err = fails(&out);
    assert!(
        err.contains("templates") && err.contains("symbolic link"),
        "{err}"
    );
    b.assert_clean(&id);
}
