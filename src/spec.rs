//! Load and check a bundle's config.json, and the default config `nook spec` writes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("bundle {bundle}: no config.json ({source})")]
    NoConfig {
        bundle: PathBuf,
        source: std::io::Error,
    },

    #[error("{path}: line {line} column {column}: {field}: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        field: String,
        msg: String,
    },

    #[error("config.json: {field}: {why}")]
    Invalid { field: String, why: String },

    #[error("{path}: {field}: unknown field (a typo, or a field of a newer runtime spec that nook does not apply): remove it")]
    Unknown { path: PathBuf, field: String },

    #[error("config.json: root.path {path}: {why}")]
    Rootfs { path: PathBuf, why: String },
}

fn invalid(field: impl Into<String>, why: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        why: why.into(),
    }
}

/// A checked config with the paths it names made absolute.
pub struct Config {
    pub spec: Spec,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// The config.json text as read (kept in the state dir for exec and hooks).
    pub text: String,
}

/// Read `<bundle>/config.json`, parse it (naming the line and field of any error) and check it.
pub fn load(bundle: &Path) -> Result<Config, SpecError> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| SpecError::NoConfig {
        bundle: bundle.to_path_buf(),
        source,
    })?;
    let spec = parse(&path, &text)?;
    let rootfs = rootfs_path(bundle, &spec)?;
    check(&spec)?;
    Ok(Config {
        spec,
        bundle: bundle.to_path_buf(),
        rootfs,
        text,
    })
}

/// Parse config.json text; errors carry the line, column and JSON path of the field.
pub fn parse(path: &Path, text: &str) -> Result<Spec, SpecError> {
    // The runtime spec's names of two scheduler flags are not oci-spec's (see
    // linux::sched::SPEC_FLAG_NAMES): give the crate its own spelling.
    if text.contains("\"SCHED_FLAG_") {
        let mut t = text.to_string();
        for (spec_name, crate_name) in crate::linux::sched::SPEC_FLAG_NAMES {
            t = t.replace(&format!("\"{spec_name}\""), &format!("\"{crate_name}\""));
        }
        return parse_json(path, &t);
    }
    parse_json(path, text)
}

/// Parse any runtime-spec JSON document (config.json, an exec process file) with the
/// line, column and field of any error.
pub fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, SpecError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    // Fields the types do not know would be dropped without a word: collected, then
    // refused (a typo, or a field of a newer runtime spec that nook does not apply).
    let mut unknown = Vec::new();
    // serde_ignored writes "?" for each Option on the way: not part of the JSON path.
    let mut note = |p: serde_ignored::Path| unknown.push(p.to_string().replace(".?", ""));
    let de = serde_ignored::Deserializer::new(de, &mut note);
    let parsed = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        // serde_json appends " at line L column C"; we report them separately.
        let msg = inner.to_string();
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        SpecError::Parse {
            path: path.to_path_buf(),
            line: inner.line(),
            column: inner.column(),
            field: if field == "." {
                "(top level)".into()
            } else {
                field
            },
            msg,
        }
    })?;
    if let Some(field) = unknown.into_iter().find(|f| !ignorable(f)) {
        return Err(SpecError::Unknown {
            path: path.to_path_buf(),
            field,
        });
    }
    Ok(parsed)
}

/// Unknown fields nook lets pass: other platforms' sections, which a Linux runtime has
/// nothing to do with (runc ignores them too).
fn ignorable(field: &str) -> bool {
    let top = field.split('.').next().unwrap_or("");
    matches!(top, "windows" | "solaris" | "vm" | "zos" | "freebsd")
}

fn rootfs_path(bundle: &Path, spec: &Spec) -> Result<PathBuf, SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing"))?;
    let p = root.path();
    let abs = if p.is_absolute() {
        p.clone()
    } else {
        bundle.join(p)
    };
    match std::fs::metadata(&abs) {
        Ok(m) if m.is_dir() => Ok(abs),
        Ok(_) => Err(SpecError::Rootfs {
            path: abs,
            why: "not a directory".into(),
        }),
        Err(e) => Err(SpecError::Rootfs {
            path: abs,
            why: e.to_string(),
        }),
    }
}

/// MAJOR.MINOR.PATCH with an optional -prerelease and +build (SemVer 2.0.0), as the runtime
/// spec requires of ociVersion. A version newer than nook's spec is accepted, as runc
/// accepts it: unknown fields are refused one by one instead.
fn is_semver(v: &str) -> bool {
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let num = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    };
    let ident =
        |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| num(p))
        && pre.is_none_or(|p| p.split('.').all(ident))
        && build.is_none_or(|b| b.split('.').all(ident))
}

/// linux.netDevices: names an interface can have, and a new network namespace to move
/// them into.
fn check_net_devices(linux: &oci_spec::runtime::Linux) -> Result<(), SpecError> {
    let Some(devs) = linux.net_devices().as_ref().filter(|d| !d.is_empty()) else {
        return Ok(());
    };
    let new_net = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Network && n.path().is_none());
    if !new_net {
        return Err(invalid(
            "linux.netDevices",
            "needs a new network namespace (a network entry without a path)",
        ));
    }
    let mut names = HashSet::new();
    for (host, d) in devs {
        let name = d.name().as_deref().unwrap_or(host);
        if !crate::linux::netdev::valid_name(host) || !crate::linux::netdev::valid_name(name) {
            return Err(invalid(
                format!("linux.netDevices.{host}"),
                "not a valid interface name (at most 15 bytes, no '/', ':' or spaces)",
            ));
        }
        if !names.insert(name.to_string()) {
            return Err(invalid(
                format!("linux.netDevices.{host}.name"),
                format!("{name:?} is given to two devices"),
            ));
        }
    }
    Ok(())
}

/// Checks that must hold before anything is made on the host.
pub fn check(spec: &Spec) -> Result<(), SpecError> {
    if !is_semver(spec.version()) {
        return Err(invalid(
            "ociVersion",
            format!(
                "{:?} is not a semantic version (like \"1.2.0\")",
                spec.version()
            ),
        ));
    }
    crate::linux::sched::plan(spec)?;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
            return Err(invalid(
                format!("mounts[{i}].uidMappings"),
                "idmapped mounts are not supported by nook",
            ));
        }
    }
    #[allow(deprecated)]
    if spec.uid_mappings().is_some() || spec.gid_mappings().is_some() {
        return Err(invalid(
            "uidMappings",
            "not a runtime-spec field at the top level: use linux.uidMappings and linux.gidMappings",
        ));
    }
    if let Some(linux) = spec.linux() {
        if let Some(rdt) = linux.intel_rdt() {
            let root = crate::linux::resctrl::mount_point();
            crate::linux::resctrl::check(root.as_deref(), rdt)
                .map_err(|e| invalid("linux.intelRdt", e.0))?;
        }
        check_net_devices(linux)?;
        let rdma = linux.resources().as_ref().and_then(|r| r.rdma().as_ref());
        if rdma.is_some_and(|r| !r.is_empty()) {
            return Err(invalid(
                "linux.resources.rdma",
                "rdma limits are not supported by nook",
            ));
        }
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "missing"))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(invalid("process.args", "must name the program to run"));
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            "process.cwd",
            format!("{:?} is not absolute", process.cwd()),
        ));
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(invalid(
                format!("mounts[{i}].destination"),
                format!("{:?} is not absolute", m.destination()),
            ));
        }
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux", "missing"))?;
    let mut seen = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(
                format!("linux.namespaces[{i}].type"),
                format!("{} given twice", ns.typ()),
            ));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(invalid(
                    format!("linux.namespaces[{i}].path"),
                    format!("{p:?} is not absolute"),
                ));
            }
        }
    }
    let new = |t| {
        linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == t && n.path().is_none())
    };
    if !seen.contains(&LinuxNamespaceType::Mount) {
        return Err(invalid(
            "linux.namespaces",
            "a mount namespace is required (nook never mounts in the host's)",
        ));
    }
    if spec.hostname().is_some() && !seen.contains(&LinuxNamespaceType::Uts) {
        return Err(invalid(
            "hostname",
            "setting a hostname needs a uts namespace",
        ));
    }
    let has = |m: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| {
        m.as_ref().is_some_and(|m| !m.is_empty())
    };
    if new(LinuxNamespaceType::User) {
        for (field, maps) in [
            ("linux.uidMappings", linux.uid_mappings()),
            ("linux.gidMappings", linux.gid_mappings()),
        ] {
            if !has(maps) {
                return Err(invalid(
                    field,
                    "a new user namespace needs uid and gid mappings (runc refuses it too)",
                ));
            }
        }
    }
    if linux.time_offsets().is_some() && !new(LinuxNamespaceType::Time) {
        return Err(invalid(
            "linux.timeOffsets",
            "time offsets need a new time namespace",
        ));
    }
    for k in linux.sysctl().iter().flatten().map(|(k, _)| k) {
        let needs = check_sysctl(k, &seen)?;
        // Rootless, only a namespace the container makes (owned by its user namespace)
        // is the user's to tune; a joined one is somebody else's.
        if !new(needs) && crate::linux::namespaces::rootless() {
            return Err(invalid(
                format!("linux.sysctl[{k:?}]"),
                format!("rootless: its {needs:?} namespace is joined by path, not the container's own, so its sysctls are not the user's to set"),
            ));
        }
    }
    check_lsm(process, linux)
}

/// A linux.sysctl key names one file below /proc/sys: dot-separated names, no "/"
/// (so no ".." component) and no empty name; and it must belong to a namespace the
/// container has (the rules runc applies), or the write would change the host's value.
fn check_sysctl(
    key: &str,
    ns: &HashSet<LinuxNamespaceType>,
) -> Result<LinuxNamespaceType, SpecError> {
    let field = format!("linux.sysctl[{key:?}]");
    if key.contains(['/', '\0']) || key.split('.').any(str::is_empty) {
        return Err(invalid(
            field,
            "not a sysctl name (dot-separated names; no \"/\", no empty name)",
        ));
    }
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let (needs, name) = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        (LinuxNamespaceType::Ipc, "an ipc")
    } else if key.starts_with("net.") {
        (LinuxNamespaceType::Network, "a network")
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        (LinuxNamespaceType::Uts, "a uts")
    } else {
        return Err(invalid(
            field,
            "not a namespaced sysctl: setting it would change the host's value",
        ));
    };
    if !ns.contains(&needs) {
        return Err(invalid(
            field,
            format!("needs {name} namespace in linux.namespaces"),
        ));
    }
    Ok(needs)
}

/// process.apparmorProfile, process.selinuxLabel and linux.mountLabel need the host's
/// LSM (nook refuses rather than run the container unconfined).
fn check_lsm(
    process: &oci_spec::runtime::Process,
    linux: &oci_spec::runtime::Linux,
) -> Result<(), SpecError> {
    use crate::linux::lsm;
    let asks = [
        process.apparmor_profile(),
        process.selinux_label(),
        linux.mount_label(),
    ]
    .iter()
    .any(|f| f.as_deref().is_some_and(|s| !s.is_empty()));
    if !asks {
        return Ok(());
    }
    let host = lsm::Host::detect();
    let fail = |e: lsm::Unsupported| invalid(e.field, e.why);
    lsm::exec_labels(host, process).map_err(fail)?;
    lsm::check_mount_label(host, linux.mount_label()).map_err(fail)
}

/// The config.json `nook spec` writes: runc's default, a shell in a busybox-style rootfs.
pub fn default_json(rootless: bool) -> serde_json::Value {
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut v = serde_json::json!({
        "ociVersion": oci_spec::runtime::VERSION,
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "nook",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if rootless {
        let linux = &mut v["linux"];
        // The caller becomes root inside, as with runc spec --rootless.
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        linux["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": uid, "size": 1}]);
        linux["gidMappings"] = serde_json::json!([{"containerID": 0, "hostID": gid, "size": 1}]);
        // As runc's rootless spec: no network namespace (an unprivileged user cannot set
        // one up), no gid= on devpts (gid 5 is not mapped), /sys bound rather than mounted.
        linux["namespaces"] = serde_json::json!([
            {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
            {"type": "cgroup"}, {"type": "user"}
        ]);
        linux["resources"] = serde_json::json!({});
        let mounts = v["mounts"].as_array_mut().expect("mounts is an array");
        for m in mounts.iter_mut() {
            if m["type"] == "devpts" {
                let opts = m["options"].as_array_mut().expect("options is an array");
                opts.retain(|o| !o.as_str().unwrap_or("").starts_with("gid="));
            }
            if m["type"] == "sysfs" {
                *m = serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
        }
    }
    // docker's default strength, resolved for the capabilities above.
    let seccomp =
        crate::linux::seccomp_default::profile(&crate::linux::seccomp_default::bounding_of(&v));
    v["linux"]["seccomp"] = seccomp;
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_names_line_and_field() {
        let text = "{\n \"ociVersion\": \"1.0.2\",\n \"linux\": {\"namespaces\": [{\"type\": \"bogus\"}]}\n}";
        let err = parse(Path::new("config.json"), text).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 3"), "{msg}");
        assert!(msg.contains("linux.namespaces[0]"), "{msg}");
    }

    #[test]
    fn default_spec_parses_and_checks() {
        let text = default_json(false).to_string();
        let spec = parse(Path::new("config.json"), &text).unwrap();
        check(&spec).unwrap();
        let text = default_json(true).to_string();
        let spec = parse(Path::new("config.json"), &text).unwrap();
        check(&spec).unwrap();
        // Both carry the default seccomp profile, resolved for runc's three capabilities.
        for rootless in [false, true] {
            let v = default_json(rootless);
            assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
            let allowed = v["linux"]["seccomp"]["syscalls"][0]["names"]
                .as_array()
                .unwrap();
            assert!(!allowed.iter().any(|n| n == "mount" || n == "unshare"));
        }
    }

    #[test]
    fn sysctl_keys_are_checked() {
        let with = |key: &str| {
            let mut v = default_json(false);
            v["linux"]["sysctl"] = serde_json::json!({ key: "1" });
            let spec = parse(Path::new("config.json"), &v.to_string()).unwrap();
            check(&spec).map_err(|e| e.to_string())
        };
        assert!(with("net.ipv4.ip_forward").is_ok());
        assert!(with("kernel.shmmax").is_ok());
        for bad in [
            "net/../../kernel/core_pattern",
            "net..x",
            ".net.x",
            "net.x.",
            "..",
            "",
        ] {
            let e = with(bad).unwrap_err();
            assert!(
                e.contains("linux.sysctl[") && e.contains("not a sysctl name"),
                "{bad}: {e}"
            );
        }
        let e = with("kernel.core_pattern").unwrap_err();
        assert!(e.contains("not a namespaced sysctl"), "{e}");
        let mut v = default_json(true); // no network namespace
        v["linux"]["sysctl"] = serde_json::json!({"net.core.somaxconn": "1"});
        let spec = parse(Path::new("config.json"), &v.to_string()).unwrap();
        let e = check(&spec).unwrap_err().to_string();
        assert!(e.contains("needs a network namespace"), "{e}");
    }

    #[test]
    fn oci_versions() {
        for v in ["1.0.0", "1.2.0", "1.0.2-dev", "1.3.0-rc.1+build.5", "2.0.0"] {
            assert!(is_semver(v), "{v} refused");
        }
        for v in [
            "", "1", "1.0", "1.0.0.0", "01.0.0", "1.0.x", "v1.0.0", "1.0.0-", "1.0.0+",
        ] {
            assert!(!is_semver(v), "{v} accepted");
        }
    }
}

#[cfg(test)]
#[path = "spec_fields_tests.rs"]
mod fields_tests;
