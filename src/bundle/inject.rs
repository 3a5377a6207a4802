//! Host files given to a container at start, each a read-only bind mount of a host file
//! or of a file nook generated in the container's state dir: never a write into the
//! bundle.
//!
//! Which injections: the config annotation `io.nook.inject` (comma-separated names),
//! plus `--inject`, minus `--no-inject` (both also take comma-separated names). An
//! unknown name anywhere is an error naming it. The names and what each gives:
//!
//! | name            | destination(s)                      | source |
//! |-----------------|-------------------------------------|--------|
//! | resolv.conf     | /etc/resolv.conf                    | the host's (see below) |
//! | hosts           | /etc/hosts                          | generated: localhost, ::1, the hostname on 127.0.1.1 |
//! | hostname        | /etc/hostname                       | generated: the hostname and a newline |
//! | passwd          | /etc/passwd, /etc/group             | generated: root, nobody, the process user (`app`) and its groups |
//! | nsswitch        | /etc/nsswitch.conf                  | generated: files for passwd and group, files dns for hosts |
//! | ca-certificates | /etc/ssl/certs/ca-certificates.crt  | the host's /etc/ssl/certs/ca-certificates.crt or /etc/pki/tls/certs/ca-bundle.crt |
//! | localtime       | /etc/localtime                      | the zoneinfo file the host's /etc/localtime links to (nothing when the host has none: UTC) |
//! | libc            | each path of `io.nook.host-libs`    | the same host path (the loader and libraries of a `--libc host` pack) |
//!
//! The hostname is `hostname` of the config, else the container id. Generated files go
//! to `<state_dir>/inject/` (mode 0644) and live as long as the container's state dir.
//! Every mount is `bind,ro,nosuid,nodev,noexec`, except libc's, which must stay
//! executable (no noexec). The mounts are appended after the config's own mounts, so an
//! injection covers a config mount with the same destination.
//!
//! resolv.conf: the host's /etc/resolv.conf, unless all its nameservers are loopback
//! addresses (a local stub such as systemd-resolved's 127.0.0.53) and the container has
//! a network namespace of its own, where that address reaches nothing. Then the
//! upstream servers' file /run/systemd/resolve/resolv.conf when it exists and names a
//! non-loopback server; else a generated copy of the host's file without its loopback
//! nameserver lines (search and options kept). If no nameserver remains, the container
//! has none: nook does not invent a public resolver.
//!
//! Mount points: as for any bind mount (runc semantics), a destination missing from the
//! rootfs is created there by the mount code, as an empty file (and its missing parent
//! directories); its content is never written. A bundle that must stay untouched
//! should ship the destinations (an empty /etc/hosts and so on); nook's own test bundles
//! do, and the tests check that the rootfs is unchanged.
//!
//! Config templates (see `template`): `--config-dir` if given, else the bundle's
//! `<bundle>/<io.nook.templates>` (default `templates`, used when it exists), rendered
//! into `<state_dir>/templates/` and bound read-only at the same relative paths.
//!
//! User namespaces: the state dir is root's and 0700, out of reach of a container whose
//! root is an unprivileged host uid; nook clones every bind source for such a container
//! itself (linux::mount_sources), so generated files and templates reach it too. The
//! files are 0644, so the container can read them.
//!
//! Fast path: when neither the annotations nor the options ask for anything, `plan`
//! makes no file access except one lstat of `<bundle>/templates`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};

use super::{annotations, template, BundleError};

/// What `run`/`create` were asked for beyond the bundle's own annotations.
#[derive(Debug, Clone, Default)]
pub struct InjectOptions {
    /// Injections to add (`--inject NAME`).
    pub add: Vec<String>,
    /// Injections to leave out (`--no-inject NAME`).
    pub remove: Vec<String>,
    /// Config templates from the host (`--config-dir`), rendered at each start.
    pub config_dir: Option<PathBuf>,
    /// Template variables (`--var K=V`, `--var-file FILE`).
    pub vars: BTreeMap<String, String>,
}

impl InjectOptions {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.config_dir.is_none()
    }
}

/// One injection, in the order their mounts are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ResolvConf,
    Hosts,
    Hostname,
    Passwd,
    Nsswitch,
    CaCertificates,
    Localtime,
    Libc,
}

/// Every injection with its name.
pub const KINDS: [(Kind, &str); 8] = [
    (Kind::ResolvConf, "resolv.conf"),
    (Kind::Hosts, "hosts"),
    (Kind::Hostname, "hostname"),
    (Kind::Passwd, "passwd"),
    (Kind::Nsswitch, "nsswitch"),
    (Kind::CaCertificates, "ca-certificates"),
    (Kind::Localtime, "localtime"),
    (Kind::Libc, "libc"),
];

/// Host files read by the injections.
pub const HOST_RESOLV: &str = "/etc/resolv.conf";
pub const UPSTREAM_RESOLV: &str = "/run/systemd/resolve/resolv.conf";
pub const CA_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];
pub const HOST_LOCALTIME: &str = "/etc/localtime";

/// The directory below the state dir that holds generated files.
pub const GENERATED_DIR: &str = "inject";
/// The directory below the state dir that holds rendered templates.
pub const RENDERED_DIR: &str = "templates";

fn kind(name: &str, from: &str) -> Result<Kind, BundleError> {
    KINDS
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(k, _)| *k)
        .ok_or_else(|| {
            let known: Vec<&str> = KINDS.iter().map(|(_, n)| *n).collect();
            BundleError::Usage(format!(
                "unknown injection {name:?} in {from} (known: {})",
                known.join(", ")
            ))
        })
}

fn names<'a>(list: impl IntoIterator<Item = &'a str>) -> impl Iterator<Item = &'a str> {
    list.into_iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The injections asked for: the annotation's, plus `add`, minus `remove`. Costs no
/// I/O. A name left in the set that nook does not know is an error naming it (a
/// `--no-inject` can drop an unknown name the annotation has); so is a `--no-inject`
/// name that is neither known nor asked for (a typo).
pub fn selected(spec: &Spec, o: &InjectOptions) -> Result<BTreeSet<Kind>, BundleError> {
    let ann = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(annotations::INJECT));
    let from_ann = format!("the {} annotation", annotations::INJECT);
    let mut asked: Vec<(&str, &str)> = names(ann.map(String::as_str))
        .map(|n| (n, from_ann.as_str()))
        .collect();
    asked.extend(names(o.add.iter().map(String::as_str)).map(|n| (n, "--inject")));
    let remove: Vec<&str> = names(o.remove.iter().map(String::as_str)).collect();
    for r in &remove {
        if !asked.iter().any(|(n, _)| n == r) {
            kind(r, "--no-inject")?;
        }
    }
    let mut set = BTreeSet::new();
    for (n, from) in asked {
        if !remove.contains(&n) {
            set.insert(kind(n, from)?);
        }
    }
    Ok(set)
}

/// Generate what the container gets (into `state_dir`) and return the read-only bind
/// mounts that give it, to be appended to the config's mounts.
pub fn plan(
    spec: &Spec,
    bundle: &Path,
    state_dir: &Path,
    id: &str,
    o: &InjectOptions,
) -> Result<Vec<Mount>, BundleError> {
    let kinds = selected(spec, o)?;
    let templates = template_dir(spec, bundle, o)?;
    if kinds.is_empty() && templates.is_none() {
        return Ok(vec![]);
    }
    let hostname = spec
        .hostname()
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or(id);
    let mut gen = Generated {
        dir: state_dir.join(GENERATED_DIR),
        made: false,
    };
    let mut mounts = vec![];
    for k in kinds {
        match k {
            Kind::ResolvConf => {
                let src = match resolv_conf(spec)? {
                    Resolv::Host(p) => p,
                    Resolv::Generated(text) => gen.write("resolv.conf", &text)?,
                };
                mounts.push(bind(&src, "/etc/resolv.conf", true));
            }
            Kind::Hosts => {
                let src = gen.write("hosts", &hosts(checked_hostname(hostname)?))?;
                mounts.push(bind(&src, "/etc/hosts", true));
            }
            Kind::Hostname => {
                let text = format!("{}\n", checked_hostname(hostname)?);
                let src = gen.write("hostname", &text)?;
                mounts.push(bind(&src, "/etc/hostname", true));
            }
            Kind::Passwd => {
                let user = spec.process().as_ref().map(|p| p.user());
                let uid = user.map_or(0, |u| u.uid());
                let gid = user.map_or(0, |u| u.gid());
                let extra = user
                    .and_then(|u| u.additional_gids().clone())
                    .unwrap_or_default();
                let (passwd, group) = passwd_group(uid, gid, &extra);
                let src = gen.write("passwd", &passwd)?;
                mounts.push(bind(&src, "/etc/passwd", true));
                let src = gen.write("group", &group)?;
                mounts.push(bind(&src, "/etc/group", true));
            }
            Kind::Nsswitch => {
                let src = gen.write("nsswitch.conf", NSSWITCH)?;
                mounts.push(bind(&src, "/etc/nsswitch.conf", true));
            }
            Kind::CaCertificates => {
                let src = ca_bundle()?;
                mounts.push(bind(&src, CA_BUNDLES[0], true));
            }
            Kind::Localtime => {
                if let Some(src) = localtime()? {
                    mounts.push(bind(&src, HOST_LOCALTIME, true));
                }
            }
            Kind::Libc => {
                for p in host_libs(spec)? {
                    mounts.push(bind(&p, &p, false));
                }
            }
        }
    }
    if let Some((dir, follow_top)) = templates {
        if let Some(bad) = o.vars.keys().find(|k| !template::valid_name(k)) {
            return Err(BundleError::Usage(format!(
                "template variable {bad:?}: names are [A-Za-z_][A-Za-z0-9_]*"
            )));
        }
        let vars = template::Vars::new(hostname, id, &o.vars);
        let out = state_dir.join(RENDERED_DIR);
        for (dest, src) in template::render_dir(&dir, follow_top, &out, &vars)? {
            mounts.push(bind(&src, &dest, true));
        }
    }
    Ok(mounts)
}

/// The config templates to render, and whether the directory itself may be a symlink:
/// `--config-dir` (a host directory the caller named, followed), else the bundle's
/// `<bundle>/<io.nook.templates>` (never a symlink), only when the bundle has that
/// annotation (a plain OCI bundle's "templates" directory is none of nook's business).
/// A directory the annotation names must exist.
fn template_dir(
    spec: &Spec,
    bundle: &Path,
    o: &InjectOptions,
) -> Result<Option<(PathBuf, bool)>, BundleError> {
    if let Some(d) = &o.config_dir {
        return Ok(Some((d.clone(), true)));
    }
    let named = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(annotations::TEMPLATES))
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    let Some(named) = named else {
        return Ok(None);
    };
    let rel = Path::new(named);
    let ok = rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !ok {
        return Err(BundleError::Usage(format!(
            "the {} annotation {:?} must be a path inside the bundle (relative, without ..)",
            annotations::TEMPLATES,
            rel
        )));
    }
    let dir = bundle.join(rel);
    match std::fs::symlink_metadata(&dir) {
        Ok(_) => Ok(Some((dir, false))),
        Err(source) => Err(BundleError::Io {
            step: "finding the bundle's config templates",
            path: dir,
            source,
        }),
    }
}

/// A read-only bind mount of `src` at `dest`.
pub fn bind(src: &Path, dest: impl AsRef<Path>, noexec: bool) -> Mount {
    let mut opts = vec!["bind", "ro", "nosuid", "nodev"];
    if noexec {
        opts.push("noexec");
    }
    let mut m = Mount::default();
    m.set_destination(dest.as_ref().to_path_buf())
        .set_typ(Some("bind".into()))
        .set_source(Some(src.to_path_buf()))
        .set_options(Some(opts.into_iter().map(String::from).collect()));
    m
}

/// `<state_dir>/inject/`, made on first use.
struct Generated {
    dir: PathBuf,
    made: bool,
}

impl Generated {
    fn write(&mut self, name: &str, text: &str) -> Result<PathBuf, BundleError> {
        if !self.made {
            template::mkdir_0755(&self.dir)?;
            self.made = true;
        }
        let p = self.dir.join(name);
        template::write_0644(&p, text.as_bytes())?;
        Ok(p)
    }
}

/// The hostname, refused when it could not be one line of /etc/hosts.
fn checked_hostname(h: &str) -> Result<&str, BundleError> {
    if h.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '#')
    {
        return Err(BundleError::Usage(format!(
            "hostname {h:?} cannot be written to /etc/hosts or /etc/hostname"
        )));
    }
    Ok(h)
}

/// /etc/hosts for `hostname`.
pub fn hosts(hostname: &str) -> String {
    format!(
        "# generated by nook\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n\
         127.0.1.1\t{hostname}\n"
    )
}

pub const NSSWITCH: &str = "# generated by nook\npasswd: files\ngroup: files\nhosts: files dns\n";

/// /etc/passwd and /etc/group: root, nobody, and the process user as `app` (unless it
/// is root or nobody); groups 0 (root), 65534 (nobody), the process gid (`app` unless
/// 0 or 65534) and each additional gid (`g<GID>`, with `app` as a member).
pub fn passwd_group(uid: u32, gid: u32, additional: &[u32]) -> (String, String) {
    const NOBODY: u32 = 65534;
    let mut passwd = String::from(
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
    );
    let app = uid != 0 && uid != NOBODY;
    if app {
        passwd.push_str(&format!("app:x:{uid}:{gid}::/:/sbin/nologin\n"));
    }
    // The user of the process: a member of its additional groups.
    let member = if app {
        "app"
    } else if uid == 0 {
        "root"
    } else {
        "nobody"
    };
    let mut groups: BTreeMap<u32, String> = BTreeMap::new();
    groups.insert(0, "root".into());
    groups.insert(NOBODY, "nobody".into());
    groups.entry(gid).or_insert_with(|| "app".into());
    for &g in additional {
        groups.entry(g).or_insert_with(|| format!("g{g}"));
    }
    // Lines in a fixed order: root, nobody, then the others by gid.
    let order = [0, NOBODY]
        .into_iter()
        .chain(groups.keys().copied().filter(|g| *g != 0 && *g != NOBODY));
    let mut group = String::new();
    for g in order {
        let members = if additional.contains(&g) && g != gid {
            member
        } else {
            ""
        };
        group.push_str(&format!("{}:x:{g}:{members}\n", groups[&g]));
    }
    (passwd, group)
}

/// What the container's /etc/resolv.conf is.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolv {
    /// Bind this host file.
    Host(PathBuf),
    /// Generate this text.
    Generated(String),
}

/// The nameserver addresses of a resolv.conf.
fn nameservers(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .collect()
}

fn is_loopback(addr: &str) -> bool {
    let addr = addr.split('%').next().unwrap_or(addr);
    addr.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

fn only_loopback(text: &str) -> bool {
    let ns = nameservers(text);
    !ns.is_empty() && ns.iter().all(|a| is_loopback(a))
}

/// The choice made for resolv.conf, from the host file's text, the upstream file's
/// text (if present) and whether the container has a network namespace of its own.
pub fn choose_resolv(host: &str, upstream: Option<&str>, own_netns: bool) -> Resolv {
    if !own_netns || !only_loopback(host) {
        return Resolv::Host(PathBuf::from(HOST_RESOLV));
    }
    if let Some(up) = upstream {
        if !nameservers(up).is_empty() && !only_loopback(up) {
            return Resolv::Host(PathBuf::from(UPSTREAM_RESOLV));
        }
    }
    let mut out = format!(
        "# generated by nook: the host's {HOST_RESOLV} without its loopback nameservers,\n\
         # which cannot be reached from the container's network namespace\n"
    );
    for l in host.lines() {
        let mut w = l.split_whitespace();
        if w.next() == Some("nameserver") && w.next().is_some_and(is_loopback) {
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    Resolv::Generated(out)
}

fn resolv_conf(spec: &Spec) -> Result<Resolv, BundleError> {
    let read = |p: &str| {
        std::fs::read_to_string(p).map_err(|source| BundleError::Io {
            step: "reading",
            path: PathBuf::from(p),
            source,
        })
    };
    let host = read(HOST_RESOLV)?;
    if !only_loopback(&host) {
        return Ok(Resolv::Host(PathBuf::from(HOST_RESOLV)));
    }
    let own = own_netns(spec);
    let upstream = if own {
        std::fs::read_to_string(UPSTREAM_RESOLV).ok()
    } else {
        None
    };
    Ok(choose_resolv(&host, upstream.as_deref(), own))
}

/// Whether the container's network namespace is not the one nook runs in: a new one,
/// or one joined by a path that is not ours.
fn own_netns(spec: &Spec) -> bool {
    let ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| ns.iter().find(|n| n.typ() == LinuxNamespaceType::Network));
    let Some(ns) = ns else { return false };
    let Some(path) = ns.path() else { return true };
    let id = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    match (id(path), id(Path::new("/proc/self/ns/net"))) {
        (Some(a), Some(b)) => a != b,
        _ => true,
    }
}

/// The host's /etc/localtime, its symlinks resolved to the zoneinfo file; None when
/// the host has none (it runs on UTC then, and so does the container: a missing or
/// empty /etc/localtime means UTC to glibc and musl alike).
fn localtime() -> Result<Option<PathBuf>, BundleError> {
    let p = Path::new(HOST_LOCALTIME);
    let real = match std::fs::canonicalize(p) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(BundleError::Io {
                step: "injecting localtime: resolving",
                path: p.to_path_buf(),
                source,
            })
        }
    };
    if !real.is_file() {
        return Err(BundleError::Usage(format!(
            "injecting localtime: {} ({}) is not a regular file",
            p.display(),
            real.display()
        )));
    }
    Ok(Some(real))
}

fn ca_bundle() -> Result<PathBuf, BundleError> {
    for p in CA_BUNDLES {
        if let Ok(real) = std::fs::canonicalize(p) {
            if real.is_file() {
                return Ok(real);
            }
        }
    }
    Err(BundleError::Usage(format!(
        "injecting ca-certificates: the host has neither {} nor {}",
        CA_BUNDLES[0], CA_BUNDLES[1]
    )))
}

/// The host paths of the `io.nook.host-libs` annotation, each checked to be absolute,
/// without `..`, and an existing file on the host.
fn host_libs(spec: &Spec) -> Result<Vec<PathBuf>, BundleError> {
    let a = annotations::HOST_LIBS;
    let text = spec
        .annotations()
        .as_ref()
        .and_then(|m| m.get(a))
        .ok_or_else(|| {
            BundleError::Usage(format!(
                "injecting libc: the config has no {a} annotation (a JSON list of the host's \
                 loader and libraries, written by nook pack --libc host)"
            ))
        })?;
    let list: Vec<PathBuf> = serde_json::from_str(text).map_err(|e| {
        BundleError::Usage(format!(
            "injecting libc: the {a} annotation is not a JSON list of paths: {e}"
        ))
    })?;
    for p in &list {
        let clean = p.is_absolute()
            && p.components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !clean {
            return Err(BundleError::Usage(format!(
                "injecting libc: {} in the {a} annotation is not an absolute path without ..",
                p.display()
            )));
        }
        let meta = std::fs::metadata(p).map_err(|source| BundleError::Io {
            step: "injecting libc: host library",
            path: p.clone(),
            source,
        })?;
        if !meta.is_file() {
            return Err(BundleError::Usage(format!(
                "injecting libc: host library {} is not a regular file",
                p.display()
            )));
        }
    }
    Ok(list)
}

#[cfg(test)]
#[path = "inject_tests.rs"]
mod tests;
