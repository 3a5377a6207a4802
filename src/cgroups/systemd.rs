//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient
//! scope that systemd makes and owns. `linux.cgroupsPath` is `slice:prefix:name` (runc's
//! convention): scope `prefix-name.scope` in `slice` (default `system.slice:nook:<id>`).
//! The scope is started over D-Bus with the init's pid, `Delegate=yes` and the resources
//! systemd has properties for; nook then writes every resource into the scope's cgroup
//! itself as well (the same files the cgroupfs driver writes), so keys systemd has no
//! property for apply too. `delete` stops the scope, `update` sets the properties again.
//!
//! The D-Bus calls go through systemd's own client, busctl(1), on the system bus (as
//! runc's driver uses the system bus). A D-Bus library linked into nook (zbus was tried)
//! added 1.3 MB of text and 0.5 MiB of peak RSS to every start, driver or not; busctl
//! costs nothing until the driver is used. (systemd's private socket would spare
//! dbus-daemon, but busctl always says Hello, which that socket refuses: EBADR.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use std::process::Command;

use super::CgroupError;

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// Where the scope goes: its slice and its unit name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scope {
    pub slice: String,
    pub unit: String,
    /// The cgroup of the systemd instance that owns the scope, below the v2 root: empty
    /// for the system's; the user's manager (`user@UID.service`) when rootless.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub base: String,
}

/// Rootless: the user's own systemd (`systemd --user`, on the session bus) makes the
/// scopes, below its delegated cgroup; default slice user.slice, as runc's.
fn user_manager() -> bool {
    crate::linux::namespaces::rootless()
}

fn default_slice() -> &'static str {
    if user_manager() {
        "user.slice"
    } else {
        "system.slice"
    }
}

fn bad_path(path: &str, why: &str) -> CgroupError {
    CgroupError::Systemd(format!(
        "linux.cgroupsPath {path:?}: {why} (the systemd driver takes \"slice:prefix:name\")"
    ))
}

/// A unit name part systemd accepts (and that cannot climb out of the cgroup tree).
fn unit_chars(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-\\@".contains(c))
}

impl Scope {
    /// Parse `slice:prefix:name` (or nothing, for the default).
    pub fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Scope, CgroupError> {
        let p = cgroups_path.unwrap_or("");
        if p.is_empty() {
            return Ok(Scope {
                slice: default_slice().into(),
                unit: format!("nook-{id}.scope"),
                base: String::new(),
            });
        }
        let parts: Vec<&str> = p.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(bad_path(p, "not three fields"));
        };
        let slice = if slice.is_empty() {
            default_slice()
        } else {
            slice
        };
        if !slice.ends_with(".slice") || !unit_chars(slice) || slice.contains('/') {
            return Err(bad_path(p, "the slice must be a name ending in .slice"));
        }
        if name.is_empty() || !unit_chars(name) {
            return Err(bad_path(
                p,
                "the name is empty or holds characters a unit name cannot",
            ));
        }
        if name.ends_with(".slice") {
            return Err(bad_path(
                p,
                "a slice as the container's own unit is not supported",
            ));
        }
        if !prefix.is_empty() && !unit_chars(prefix) {
            return Err(bad_path(
                p,
                "the prefix holds characters a unit name cannot",
            ));
        }
        let unit = match (prefix, name.ends_with(".scope")) {
            (_, true) => name.to_string(),
            ("", false) => format!("{name}.scope"),
            (pre, false) => format!("{pre}-{name}.scope"),
        };
        Ok(Scope {
            slice: slice.to_string(),
            unit,
            base: String::new(),
        })
    }

    /// The scope's cgroup path below the v2 root: a slice `a-b.slice` lives in
    /// `a.slice/a-b.slice` (systemd's nesting by dashes).
    pub fn rel(&self) -> PathBuf {
        let mut out = PathBuf::from(self.base.trim_start_matches('/'));
        if self.slice != "-.slice" {
            let base = self.slice.trim_end_matches(".slice");
            let mut acc = String::new();
            for part in base.split('-') {
                if !acc.is_empty() {
                    acc.push('-');
                }
                acc.push_str(part);
                out.push(format!("{acc}.slice"));
            }
        }
        out.join(&self.unit)
    }
}

/// systemd must be the host's init for the driver to mean anything.
pub fn check_running() -> Result<(), CgroupError> {
    if user_manager() {
        let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
            || std::env::var_os("XDG_RUNTIME_DIR")
                .is_some_and(|d| Path::new(&d).join("bus").exists());
        return if bus {
            Ok(())
        } else {
            Err(CgroupError::Systemd(
                "--systemd-cgroup (rootless): no session bus of a user systemd (neither DBUS_SESSION_BUS_ADDRESS nor $XDG_RUNTIME_DIR/bus); log in through a session or `loginctl enable-linger` the user, or run without --systemd-cgroup".into(),
            ))
        };
    }
    if Path::new("/run/systemd/system").is_dir() {
        Ok(())
    } else {
        Err(CgroupError::Systemd(
            "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); run without --systemd-cgroup to manage cgroups directly".into(),
        ))
    }
}

/// A property value as busctl(1) takes it on its command line: the D-Bus signature,
/// then the value (arrays: the count, then the items).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    S(String),
    B(bool),
    T(u64),
    Au(Vec<u32>),
    Ay(Vec<u8>),
}

impl Value {
    fn args(&self) -> Vec<String> {
        match self {
            Value::S(v) => vec!["s".into(), v.clone()],
            Value::B(v) => vec!["b".into(), v.to_string()],
            Value::T(v) => vec!["t".into(), v.to_string()],
            Value::Au(v) => {
                let mut a = vec!["au".into(), v.len().to_string()];
                a.extend(v.iter().map(u32::to_string));
                a
            }
            Value::Ay(v) => {
                let mut a = vec!["ay".into(), v.len().to_string()];
                a.extend(v.iter().map(u8::to_string));
                a
            }
        }
    }
}

type Props = Vec<(&'static str, Value)>;

/// The `a(sv)` argument: the count, then name, signature and value of each.
fn props_args(props: &Props) -> Vec<String> {
    let mut a = vec![props.len().to_string()];
    for (name, v) in props {
        a.push((*name).to_string());
        a.extend(v.args());
    }
    a
}

fn bus_flag() -> &'static str {
    if user_manager() {
        "--user"
    } else {
        "--system"
    }
}

/// The cgroup of the systemd instance nook talks to (Manager.ControlGroup): empty for
/// the system's, `/user.slice/user-UID.slice/user@UID.service` for a user's.
pub fn manager_cgroup() -> Result<String, CgroupError> {
    if !user_manager() {
        return Ok(String::new());
    }
    let out = busctl(&["get-property", DEST, PATH, MANAGER, "ControlGroup"]).map_err(|e| {
        CgroupError::Systemd(format!(
            "systemd --user: reading the manager's ControlGroup: {e}"
        ))
    })?;
    // `s "/user.slice/..."`
    match out.trim().strip_prefix("s ").map(|v| v.trim_matches('"')) {
        Some(cg) if cg.starts_with('/') => Ok(cg.to_string()),
        _ => Err(CgroupError::Systemd(format!(
            "systemd --user: the manager's ControlGroup is {:?}, not a cgroup path",
            out.trim()
        ))),
    }
}

/// One Manager method call through busctl; its stdout, or systemd's error text.
fn call(method: &str, signature: &str, args: &[String]) -> Result<String, String> {
    let mut all = vec!["call", DEST, PATH, MANAGER, method, signature];
    all.extend(args.iter().map(String::as_str));
    busctl(&all)
}

/// busctl(1) on the bus nook talks to (the system's, or the user's when rootless).
fn busctl(args: &[&str]) -> Result<String, String> {
    let out = Command::new("busctl")
        .args([bus_flag(), "--timeout=20"])
        .args(args)
        .output()
        .map_err(|e| format!("running busctl: {e} (is systemd installed?)"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// CPU and memory-node lists ("0-3,7") as systemd's byte masks.
fn bitmask(list: &str) -> Option<Vec<u8>> {
    let mut bytes: Vec<u8> = vec![];
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>().ok()?, b.parse::<usize>().ok()?),
            None => {
                let n = part.parse::<usize>().ok()?;
                (n, n)
            }
        };
        if b < a || b > 8191 {
            return None;
        }
        for i in a..=b {
            if bytes.len() <= i / 8 {
                bytes.resize(i / 8 + 1, 0);
            }
            bytes[i / 8] |= 1 << (i % 8);
        }
    }
    Some(bytes)
}

/// The resources systemd has scope properties for.
pub fn properties(res: Option<&LinuxResources>) -> Props {
    let mut p: Props = vec![];
    let Some(res) = res else { return p };
    if let Some(m) = res.memory() {
        if let Some(l) = m.limit().filter(|l| *l > 0) {
            p.push(("MemoryMax", Value::T(l as u64)));
            if let Some(s) = m.swap().filter(|s| *s >= l) {
                p.push(("MemorySwapMax", Value::T((s - l) as u64)));
            }
        }
        if let Some(r) = m.reservation().filter(|r| *r > 0) {
            p.push(("MemoryLow", Value::T(r as u64)));
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(s) = c.shares().filter(|s| *s > 0) {
            p.push(("CPUWeight", Value::T(super::resources::shares_to_weight(s))));
        }
        if let Some(q) = c.quota().filter(|q| *q > 0) {
            let period = c.period().filter(|p| *p > 0).unwrap_or(100_000);
            p.push((
                "CPUQuotaPerSecUSec",
                Value::T(q as u64 * 1_000_000 / period),
            ));
            p.push(("CPUQuotaPeriodUSec", Value::T(period)));
        }
        if let Some(mask) = c.cpus().as_deref().and_then(bitmask) {
            p.push(("AllowedCPUs", Value::Ay(mask)));
        }
        if let Some(mask) = c.mems().as_deref().and_then(bitmask) {
            p.push(("AllowedMemoryNodes", Value::Ay(mask)));
        }
    }
    if let Some(pids) = res.pids() {
        let l = pids.limit();
        p.push((
            "TasksMax",
            Value::T(if l > 0 { l as u64 } else { u64::MAX }),
        ));
    }
    if let Some(w) = res
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w > 0)
    {
        let w = super::resources::blkio_to_io_weight(w);
        p.push(("IOWeight", Value::T(w)));
    }
    p
}

/// Start the scope with `pid` in it, and wait until the kernel shows the pid there.
pub fn start(
    scope: &Scope,
    dir: &Path,
    id: &str,
    pid: i32,
    res: Option<&LinuxResources>,
) -> Result<(), CgroupError> {
    let mut props: Props = vec![
        ("Description", Value::S(format!("nook container {id}"))),
        ("Slice", Value::S(scope.slice.clone())),
        ("PIDs", Value::Au(vec![pid as u32])),
        ("Delegate", Value::B(true)),
        ("DefaultDependencies", Value::B(false)),
        ("MemoryAccounting", Value::B(true)),
        ("CPUAccounting", Value::B(true)),
        ("TasksAccounting", Value::B(true)),
        ("IOAccounting", Value::B(true)),
    ];
    props.extend(properties(res));
    let mut args = vec![scope.unit.clone(), "fail".into()];
    args.extend(props_args(&props));
    args.push("0".into()); // no auxiliary units
    call("StartTransientUnit", "ssa(sv)a(sa(sv))", &args).map_err(|e| {
        // systemd's words for org.freedesktop.systemd1.UnitExists.
        if e.contains("already loaded") || e.contains("already exists") {
            CgroupError::Systemd(format!(
                "systemd scope {} already exists (is another container using this cgroupsPath?)",
                scope.unit
            ))
        } else {
            CgroupError::Systemd(format!("systemd: starting scope {}: {e}", scope.unit))
        }
    })?;
    // systemd makes the scope's cgroup and moves the pid when the job runs; nook writes
    // the pid there as well, as runc does, in case the job has not moved it yet.
    let want = format!("0::/{}", scope.rel().display());
    let procs = dir.join("cgroup.procs");
    let end = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    loop {
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if cg.lines().any(|l| l == want) {
            return Ok(());
        }
        if dir.is_dir() {
            last = std::fs::write(&procs, pid.to_string()).err();
        }
        if Instant::now() > end {
            stop(&scope.unit);
            let now = cg.lines().find(|l| l.starts_with("0::")).unwrap_or("gone");
            let why = last.map_or(String::new(), |e| {
                format!("; writing {}: {e}", procs.display())
            });
            return Err(CgroupError::Systemd(format!(
                "systemd scope {}: the container init ({pid}) never arrived in it (it is in {now}{why})",
                scope.unit
            )));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Stop the scope (its processes are already gone); errors are not the caller's concern.
pub fn stop(unit: &str) {
    let _ = call("StopUnit", "ss", &[unit.to_string(), "replace".into()]);
}

/// `update`: the scope's properties, as at start.
pub fn set(unit: &str, res: &LinuxResources) -> Result<(), CgroupError> {
    let props = properties(Some(res));
    if props.is_empty() {
        return Ok(());
    }
    let mut args = vec![unit.to_string(), "true".into()];
    args.extend(props_args(&props));
    call("SetUnitProperties", "sba(sv)", &args).map_err(|e| {
        CgroupError::Systemd(format!("systemd: setting the properties of {unit}: {e}"))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let s = Scope::parse(None, "web").unwrap();
        assert_eq!(s.unit, "nook-web.scope");
        assert_eq!(s.rel(), Path::new("system.slice/nook-web.scope"));
        let s = Scope::parse(Some("machine.slice:libpod:abc"), "x").unwrap();
        assert_eq!(s.unit, "libpod-abc.scope");
        assert_eq!(s.rel(), Path::new("machine.slice/libpod-abc.scope"));
        let s = Scope::parse(Some("a-b-c.slice:p:n"), "x").unwrap();
        assert_eq!(
            s.rel(),
            Path::new("a.slice/a-b.slice/a-b-c.slice/p-n.scope")
        );
        let s = Scope::parse(Some(":nook:n"), "x").unwrap();
        assert_eq!(s.slice, "system.slice");
        assert_eq!(
            Scope::parse(Some("-.slice::n.scope"), "x").unwrap().rel(),
            Path::new("n.scope")
        );
    }

    #[test]
    fn malformed_paths_are_refused() {
        for bad in [
            "/nook/x",
            "a:b",
            "a:b:c:d",
            "x:p:n",
            "system.slice:p:",
            "system.slice:p:../x",
            "system.slice:p:a/b",
            "system.slice:p:n.slice",
            "../x.slice:p:n",
        ] {
            let e = Scope::parse(Some(bad), "id").unwrap_err().to_string();
            assert!(e.contains("linux.cgroupsPath"), "{bad}: {e}");
        }
    }

    #[test]
    fn resources_as_properties() {
        let res: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": 67108864, "swap": 100663296},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0-1,3"},
            "pids": {"limit": 64},
            "blockIO": {"weight": 500}
        }))
        .unwrap();
        let p = properties(Some(&res));
        let get = |k: &str| p.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("MemoryMax"), Some(Value::T(67108864)));
        assert_eq!(get("MemorySwapMax"), Some(Value::T(33554432)));
        assert_eq!(get("CPUWeight"), Some(Value::T(39)));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(Value::T(500_000)));
        assert_eq!(get("TasksMax"), Some(Value::T(64)));
        assert_eq!(get("IOWeight"), Some(Value::T(4950)));
        assert_eq!(get("AllowedCPUs"), Some(Value::Ay(vec![0b1011u8])));
        let args = props_args(&vec![
            ("PIDs", Value::Au(vec![7, 8])),
            ("Delegate", Value::B(true)),
            ("Description", Value::S("a b".into())),
        ]);
        let want = ["3", "PIDs", "au", "2", "7", "8", "Delegate", "b", "true"];
        assert_eq!(args[..9], want);
        assert_eq!(args[9..], ["Description", "s", "a b"]);
        // docker's zeros mean "not set".
        let zero: LinuxResources = serde_json::from_value(serde_json::json!({
            "cpu": {"shares": 0}, "blockIO": {"weight": 0}
        }))
        .unwrap();
        assert!(properties(Some(&zero)).is_empty());
    }
}
