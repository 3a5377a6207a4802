//! `nook pack`: a bundle tar (config.json + rootfs/) from one binary.
//!
//! The tar holds, sorted by path, every entry owned by 0:0 with mtime 0 (packing twice
//! gives the same bytes):
//! - `config.json`: least privilege (read-only root, no capabilities, noNewPrivileges,
//!   uid/gid 65534 unless `--user`, new pid/network/ipc/uts/mount/cgroup namespaces,
//!   minimal mounts, the masked and read-only paths of `nook spec`);
//! - `rootfs/NAME` (0755), the program;
//! - the mount points and the empty files the injections bind onto (so nothing is
//!   written into the bundle at start): /proc, /dev, /sys, /etc/{resolv.conf, hosts,
//!   hostname, passwd, group, nsswitch.conf, localtime}, /etc/ssl/certs/ca-certificates.crt;
//! - for a dynamic program, its interpreter at its PT_INTERP path and every library at
//!   the path the loader opens: copied (`--libc bundled`, symlinks followed, a regular
//!   file at the asked path), or an empty file for a read-only bind of the host's
//!   (`--libc host`, listed in the `io.nook.host-libs` annotation);
//! - `templates/...` beside rootfs/ for `--config-dir`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::elf::{self, Closure, SearchConfig};
use super::{annotations, BundleError};

/// Where a dynamic binary's libc comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Libc {
    /// Copied into the bundle.
    #[default]
    Bundled,
    /// Injected read-only from the host at each start.
    Host,
}

/// What `nook pack` was asked for.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub binary: PathBuf,
    /// Output tar (default: `<name>.tar` in the current directory).
    pub output: Option<PathBuf>,
    /// Bundle name (default: the binary's file name).
    pub name: Option<String>,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// K=V environment entries.
    pub env: Vec<String>,
    /// UID[:GID] (default 65534:65534).
    pub user: Option<String>,
    /// Config templates to store in the bundle.
    pub config_dir: Option<PathBuf>,
    pub libc: Libc,
}

/// The injections every packed bundle asks for (`io.nook.inject`).
pub const DEFAULT_INJECT: &str =
    "resolv.conf,hosts,hostname,passwd,nsswitch,ca-certificates,localtime";

/// The empty files in rootfs/ the default injections bind onto.
pub const PLACEHOLDERS: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/hostname",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/localtime",
];

/// Mount points of the config's mounts (what is below /dev lives in its tmpfs).
const MOUNT_POINTS: &[&str] = &["/dev", "/proc", "/sys"];

/// The directory bundle templates are stored in, beside rootfs/.
pub const TEMPLATES_DIR: &str = "templates";

const DEFAULT_ID: u32 = 65534;
const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

/// One tar entry.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir {
        mode: u32,
    },
    File {
        data: Vec<u8>,
        mode: u32,
    },
    /// A symlink (relative): a second path of a library file already in the bundle.
    Link {
        target: PathBuf,
    },
}

/// The bundle's entries, keyed by relative path; PathBuf orders component-wise, so a
/// directory always comes before what it holds.
#[derive(Default)]
struct Tree(BTreeMap<PathBuf, Node>);

impl Tree {
    /// Add `path` (relative), creating its parent directories (0755).
    fn add(&mut self, path: &Path, node: Node) -> Result<(), BundleError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.dir(parent)?;
        }
        match self.0.get(path) {
            None => {
                self.0.insert(path.to_path_buf(), node);
                Ok(())
            }
            Some(old) if *old == node => Ok(()),
            Some(_) => Err(BundleError::Usage(format!(
                "two different files for {} in the bundle",
                path.display()
            ))),
        }
    }

    fn dir(&mut self, path: &Path) -> Result<(), BundleError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.dir(parent)?;
        }
        match self.0.get(path) {
            None => {
                self.0
                    .insert(path.to_path_buf(), Node::Dir { mode: DIR_MODE });
                Ok(())
            }
            Some(Node::Dir { .. }) => Ok(()),
            Some(_) => Err(BundleError::Usage(format!(
                "{} is both a file and a directory in the bundle",
                path.display()
            ))),
        }
    }

    fn write(&self, out: impl Write) -> std::io::Result<()> {
        let mut b = tar::Builder::new(out);
        for (path, node) in &self.0 {
            let mut h = tar::Header::new_gnu();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            match node {
                Node::Dir { mode } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    h.set_size(0);
                    b.append_data(&mut h, path, std::io::empty())?;
                }
                Node::File { data, mode } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, data.as_slice())?;
                }
                Node::Link { target } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, path, target)?;
                }
            }
        }
        b.into_inner()?.flush()
    }
}

fn io_err<'a>(
    step: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> BundleError + 'a {
    move |source| BundleError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

/// A file mode as stored: permission bits kept, setuid and setgid dropped.
fn stored_mode(m: u32) -> u32 {
    m & 0o7777 & !0o6000
}

/// `rootfs/...` for an absolute container path.
fn in_rootfs(p: &Path) -> PathBuf {
    Path::new("rootfs").join(p.strip_prefix("/").unwrap_or(p))
}

/// The bundle name: usable as a file name, a hostname (at most 64 bytes) and a tar name.
fn check_name(name: &str) -> Result<(), BundleError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(BundleError::Usage(format!(
            "bundle name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (--name)"
        )))
    }
}

fn parse_user(user: Option<&str>) -> Result<(u32, u32), BundleError> {
    let Some(u) = user else {
        return Ok((DEFAULT_ID, DEFAULT_ID));
    };
    let bad = || {
        BundleError::Usage(format!(
            "--user {u:?}: expected numeric UID or UID:GID (the bundle has no user database to look names up)"
        ))
    };
    let (uid, gid) = match u.split_once(':') {
        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
        None => {
            let id: u32 = u.parse().map_err(|_| bad())?;
            (id, id)
        }
    };
    Ok((uid, gid))
}

fn check_env(env: &[String]) -> Result<(), BundleError> {
    for e in env {
        match e.split_once('=') {
            Some((k, _)) if !k.is_empty() => {}
            _ => {
                return Err(BundleError::Usage(format!(
                    "--env {e:?}: expected KEY=VALUE"
                )))
            }
        }
    }
    Ok(())
}

/// process.env: PATH=/ (unless given), the --env entries, and LD_LIBRARY_PATH when the
/// container's loader must be told where a library is.
fn environment(env: &[String], library_path: &[PathBuf]) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        out.push("PATH=/".into());
    }
    out.extend(env.iter().cloned());
    if !library_path.is_empty() {
        let ours: Vec<String> = library_path
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let ours = ours.join(":");
        match out.iter_mut().find(|e| e.starts_with("LD_LIBRARY_PATH=")) {
            Some(e) => {
                e.push(':');
                e.push_str(&ours);
            }
            None => out.push(format!("LD_LIBRARY_PATH={ours}")),
        }
    }
    out
}

/// The bundle's config.json.
fn config(
    name: &str,
    o: &PackOptions,
    user: (u32, u32),
    closure: Option<&Closure>,
    host_libs: &[String],
) -> Value {
    let base = crate::spec::default_json(false);
    let mounts: Vec<Value> = base["mounts"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| m["destination"] != "/sys/fs/cgroup")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut args = vec![format!("/{name}")];
    args.extend(o.args.iter().cloned());
    let library_path = closure.map(Closure::library_path).unwrap_or_default();
    let mut inject = DEFAULT_INJECT.to_string();
    let mut annotations = serde_json::Map::new();
    if !host_libs.is_empty() {
        inject.push_str(",libc");
        annotations.insert(
            annotations::HOST_LIBS.into(),
            Value::String(serde_json::to_string(host_libs).expect("a list of strings")),
        );
    }
    annotations.insert(annotations::INJECT.into(), Value::String(inject));
    if o.config_dir.is_some() {
        annotations.insert(
            annotations::TEMPLATES.into(),
            Value::String(TEMPLATES_DIR.into()),
        );
    }
    let mut cfg = json!({
        "ociVersion": base["ociVersion"],
        "process": {
            "terminal": false,
            "user": {"uid": user.0, "gid": user.1},
            "args": args,
            "env": environment(&o.env, &library_path),
            "cwd": "/",
            "capabilities": {
                "bounding": [], "effective": [], "inheritable": [], "permitted": [], "ambient": []
            },
            "rlimits": base["process"]["rlimits"],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": name,
        "mounts": mounts,
        "annotations": annotations,
        "linux": {
            "resources": base["linux"]["resources"],
            "namespaces": base["linux"]["namespaces"],
            "maskedPaths": base["linux"]["maskedPaths"],
            "readonlyPaths": base["linux"]["readonlyPaths"]
        }
    });
    // The default profile, resolved for this bundle's (empty) capability sets.
    let bounding = crate::linux::seccomp_default::bounding_of(&cfg);
    cfg["linux"]["seccomp"] = crate::linux::seccomp_default::profile(&bounding);
    cfg
}

/// Store `dir`'s regular files and directories under `templates/`: modes kept (less
/// setuid/setgid), a symlink followed only to a regular file inside `dir`, anything
/// else refused by name.
fn add_templates(t: &mut Tree, dir: &Path) -> Result<(), BundleError> {
    let root = fs::canonicalize(dir).map_err(io_err("reading --config-dir", dir))?;
    if !root.is_dir() {
        return Err(BundleError::Usage(format!(
            "--config-dir {}: not a directory",
            dir.display()
        )));
    }
    let top = PathBuf::from(TEMPLATES_DIR);
    t.dir(&top)?;
    walk_templates(t, &root, &root, &top)
}

fn walk_templates(t: &mut Tree, root: &Path, dir: &Path, rel: &Path) -> Result<(), BundleError> {
    let rd = fs::read_dir(dir).map_err(io_err("reading", dir))?;
    let mut names = vec![];
    for e in rd {
        names.push(e.map_err(io_err("reading", dir))?.file_name());
    }
    names.sort();
    for n in names {
        let p = dir.join(&n);
        let r = rel.join(&n);
        let md = fs::symlink_metadata(&p).map_err(io_err("reading", &p))?;
        let ft = md.file_type();
        if ft.is_dir() {
            t.add(
                &r,
                Node::Dir {
                    mode: stored_mode(md.mode()),
                },
            )?;
            walk_templates(t, root, &p, &r)?;
        } else if ft.is_file() {
            let data = fs::read(&p).map_err(io_err("reading", &p))?;
            t.add(
                &r,
                Node::File {
                    data,
                    mode: stored_mode(md.mode()),
                },
            )?;
        } else if ft.is_symlink() {
            let target = fs::canonicalize(&p).map_err(io_err("resolving the symlink", &p))?;
            if !target.starts_with(root) {
                return Err(BundleError::Usage(format!(
                    "--config-dir: symlink {} points outside {} (to {})",
                    p.display(),
                    root.display(),
                    target.display()
                )));
            }
            let tmd = fs::metadata(&target).map_err(io_err("reading", &target))?;
            if !tmd.is_file() {
                return Err(BundleError::Usage(format!(
                    "--config-dir: symlink {} does not point to a regular file",
                    p.display()
                )));
            }
            let data = fs::read(&target).map_err(io_err("reading", &target))?;
            t.add(
                &r,
                Node::File {
                    data,
                    mode: stored_mode(tmd.mode()),
                },
            )?;
        } else {
            return Err(BundleError::Usage(format!(
                "--config-dir: {} is not a regular file or directory",
                p.display()
            )));
        }
    }
    Ok(())
}

/// Make the bundle tar; returns its path.
pub fn pack(o: &PackOptions) -> Result<PathBuf, BundleError> {
    let name = match &o.name {
        Some(n) => n.clone(),
        None => o
            .binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    check_name(&name)?;
    let user = parse_user(o.user.as_deref())?;
    check_env(&o.env)?;
    let output = o
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{name}.tar")));

    let (_, machine) = elf::host_arch();
    let (_, closure) = elf::analyze(&o.binary, &SearchConfig::host(machine))?;

    let mut t = Tree::default();
    t.dir(Path::new("rootfs"))?;
    for d in MOUNT_POINTS {
        t.dir(&in_rootfs(Path::new(d)))?;
    }
    for f in PLACEHOLDERS {
        t.add(
            &in_rootfs(Path::new(f)),
            Node::File {
                data: vec![],
                mode: FILE_MODE,
            },
        )?;
    }

    let mut host_libs: Vec<String> = vec![];
    if let Some(c) = &closure {
        // The host file behind each path already stored: a second path to the same
        // file becomes a symlink, so the loader sees one file (as on the host).
        let mut stored: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
        for n in std::iter::once(&c.interp).chain(&c.libs) {
            let at = in_rootfs(&n.path);
            match o.libc {
                Libc::Host => {
                    host_libs.push(n.path.display().to_string());
                    t.add(
                        &at,
                        Node::File {
                            data: vec![],
                            mode: FILE_MODE,
                        },
                    )?;
                }
                Libc::Bundled => {
                    let md = fs::metadata(&n.file).map_err(io_err("reading", &n.file))?;
                    if let Some(first) = stored.get(&(md.dev(), md.ino())) {
                        let target = relative(first, n.path.parent().unwrap_or(Path::new("/")));
                        t.add(&at, Node::Link { target })?;
                        continue;
                    }
                    let data = fs::read(&n.file).map_err(io_err("reading", &n.file))?;
                    t.add(
                        &at,
                        Node::File {
                            data,
                            mode: stored_mode(md.mode()),
                        },
                    )?;
                    stored.insert((md.dev(), md.ino()), n.path.clone());
                }
            }
        }
    }
    // The program last, so a name taken by a directory of the bundle is named as such.
    let at = in_rootfs(Path::new(&format!("/{name}")));
    if t.0.contains_key(&at) {
        return Err(BundleError::Usage(format!(
            "bundle name {name:?}: /{name} is a directory of the bundle's root; choose another --name"
        )));
    }
    let data = fs::read(&o.binary).map_err(io_err("reading", &o.binary))?;
    t.add(&at, Node::File { data, mode: 0o755 })?;
    if let Some(dir) = &o.config_dir {
        add_templates(&mut t, dir)?;
    }
    let cfg = config(&name, o, user, closure.as_ref(), &host_libs);
    let mut text = serde_json::to_vec_pretty(&cfg).expect("config.json serializes");
    text.push(b'\n');
    t.add(
        Path::new("config.json"),
        Node::File {
            data: text,
            mode: FILE_MODE,
        },
    )?;

    write_atomically(&output, &o.binary, &t)?;
    Ok(output)
}

/// `to` (absolute) relative to the directory `from` (absolute), for a symlink in `from`.
fn relative(to: &Path, from: &Path) -> PathBuf {
    let to: Vec<_> = to.components().collect();
    let from: Vec<_> = from.components().collect();
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    let mut p = PathBuf::new();
    for _ in common..from.len() {
        p.push("..");
    }
    for c in &to[common..] {
        p.push(c);
    }
    p
}

/// Write the tar to a temp file beside `output`, then rename it into place: never a
/// half-written bundle at `output`.
fn write_atomically(output: &Path, binary: &Path, t: &Tree) -> Result<(), BundleError> {
    if let (Ok(a), Ok(b)) = (fs::canonicalize(output), fs::canonicalize(binary)) {
        if a == b {
            return Err(BundleError::Usage(format!(
                "-o {}: that is the binary being packed",
                output.display()
            )));
        }
    }
    let file_name = output
        .file_name()
        .ok_or_else(|| BundleError::Usage(format!("-o {}: not a file name", output.display())))?;
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let f = fs::File::create(&tmp).map_err(io_err("creating", &tmp))?;
        let mut w = std::io::BufWriter::new(f);
        t.write(&mut w).map_err(io_err("writing", &tmp))?;
        let f = w
            .into_inner()
            .map_err(|e| io_err("writing", &tmp)(e.into_error()))?;
        f.set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io_err("writing", &tmp))?;
        f.sync_all().map_err(io_err("writing", &tmp))?;
        fs::rename(&tmp, output).map_err(io_err("renaming into place", output))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["app", "my-app_1.2", "A"] {
            check_name(ok).unwrap();
        }
        for bad in ["", ".x", "a/b", "a b", &"x".repeat(65), "-x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn users() {
        assert_eq!(parse_user(None).unwrap(), (65534, 65534));
        assert_eq!(parse_user(Some("1000")).unwrap(), (1000, 1000));
        assert_eq!(parse_user(Some("1000:5")).unwrap(), (1000, 5));
        assert!(parse_user(Some("nobody")).is_err());
        assert!(parse_user(Some("1:")).is_err());
    }

    #[test]
    fn env() {
        assert_eq!(environment(&[], &[]), vec!["PATH=/"]);
        let e = environment(&["A=1".into(), "PATH=/bin".into()], &[]);
        assert_eq!(e, vec!["A=1", "PATH=/bin"]);
        let e = environment(&["LD_LIBRARY_PATH=/x".into()], &["/opt/lib".into()]);
        assert_eq!(e, vec!["PATH=/", "LD_LIBRARY_PATH=/x:/opt/lib"]);
        let e = environment(&[], &["/a".into(), "/b".into()]);
        assert_eq!(e, vec!["PATH=/", "LD_LIBRARY_PATH=/a:/b"]);
        assert!(check_env(&["=x".into()]).is_err());
        assert!(check_env(&["x".into()]).is_err());
        check_env(&["X=".into()]).unwrap();
    }

    #[test]
    fn relative_links() {
        assert_eq!(
            relative(Path::new("/lib/x/libc.so.6"), Path::new("/lib/x")),
            PathBuf::from("libc.so.6")
        );
        assert_eq!(
            relative(Path::new("/lib/x/libc.so.6"), Path::new("/usr/lib")),
            PathBuf::from("../../lib/x/libc.so.6")
        );
    }

    #[test]
    fn tree_orders_parents_first() {
        let mut t = Tree::default();
        t.add(
            Path::new("rootfs/etc-x"),
            Node::File {
                data: vec![],
                mode: 0o644,
            },
        )
        .unwrap();
        t.add(
            Path::new("rootfs/etc/hosts"),
            Node::File {
                data: vec![],
                mode: 0o644,
            },
        )
        .unwrap();
        let keys: Vec<_> = t.0.keys().map(|k| k.display().to_string()).collect();
        assert_eq!(
            keys,
            ["rootfs", "rootfs/etc", "rootfs/etc/hosts", "rootfs/etc-x"]
        );
        assert!(t
            .add(
                Path::new("rootfs/etc"),
                Node::File {
                    data: vec![],
                    mode: 0o644
                }
            )
            .is_err());
    }
}
