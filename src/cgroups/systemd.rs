//! The systemd cgroup driver (`--systemd-cgroup`): the container's cgroup is a transient
//! scope that systemd makes and owns. `linux.cgroupsPath` is `slice:prefix:name` (runc's
//! convention): scope `prefix-name.scope` in `slice` (default `system.slice:nook:<id>`).
//! The scope is started over D-Bus with the init's pid, `Delegate=yes` and the resources
//! systemd has properties for; nook then writes every resource into the scope's cgroup
//! itself as well (the same files the cgroupfs driver writes), so keys systemd has no
//! property for apply too. `delete` stops the scope, `update` sets the properties again.
//!
//! D-Bus goes through the system bus (dbus-daemon), as runc's driver does. It is only
//! used after the clone: zbus starts threads.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use zbus::zvariant::Value;

use super::CgroupError;

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// Where the scope goes: its slice and its unit name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scope {
    pub slice: String,
    pub unit: String,
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
                slice: "system.slice".into(),
                unit: format!("nook-{id}.scope"),
            });
        }
        let parts: Vec<&str> = p.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(bad_path(p, "not three fields"));
        };
        let slice = if slice.is_empty() {
            "system.slice"
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
        })
    }

    /// The scope's cgroup path below the v2 root: a slice `a-b.slice` lives in
    /// `a.slice/a-b.slice` (systemd's nesting by dashes).
    pub fn rel(&self) -> PathBuf {
        let mut out = PathBuf::new();
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
    if Path::new("/run/systemd/system").is_dir() {
        Ok(())
    } else {
        Err(CgroupError::Systemd(
            "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); run without --systemd-cgroup to manage cgroups directly".into(),
        ))
    }
}

fn dbus_err(step: &str) -> impl FnOnce(zbus::Error) -> CgroupError + '_ {
    move |e| CgroupError::Systemd(format!("systemd D-Bus: {step}: {e}"))
}

/// The system bus. (systemd's private socket would spare dbus-daemon, but zbus 5
/// rejects the sender field of systemd's replies there, an invalid unique name, and its
/// reader thread dies: measured in the test guest.)
fn connect() -> Result<Bus, CgroupError> {
    zbus::blocking::connection::Builder::system()
        .and_then(|b| b.method_timeout(Duration::from_secs(20)).build())
        .map(|conn| Bus { conn })
        .map_err(|e| {
            CgroupError::Systemd(format!(
                "--systemd-cgroup: cannot reach systemd on the system bus (/run/dbus/system_bus_socket; is dbus running?): {e}"
            ))
        })
}

struct Bus {
    conn: zbus::blocking::Connection,
}

impl Bus {
    fn call<B>(&self, method: &str, body: &B) -> Result<zbus::message::Message, zbus::Error>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.conn
            .call_method(Some(DEST), PATH, Some(MANAGER), method, body)
    }
}

type Props<'a> = Vec<(&'static str, Value<'a>)>;

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
pub fn properties(res: Option<&LinuxResources>) -> Props<'static> {
    let mut p: Props = vec![];
    let Some(res) = res else { return p };
    if let Some(m) = res.memory() {
        if let Some(l) = m.limit().filter(|l| *l > 0) {
            p.push(("MemoryMax", Value::U64(l as u64)));
            if let Some(s) = m.swap().filter(|s| *s >= l) {
                p.push(("MemorySwapMax", Value::U64((s - l) as u64)));
            }
        }
        if let Some(r) = m.reservation().filter(|r| *r > 0) {
            p.push(("MemoryLow", Value::U64(r as u64)));
        }
    }
    if let Some(c) = res.cpu() {
        if let Some(s) = c.shares().filter(|s| *s > 0) {
            let w = 1 + (s.clamp(2, 262144) - 2) * 9999 / 262142;
            p.push(("CPUWeight", Value::U64(w)));
        }
        if let Some(q) = c.quota().filter(|q| *q > 0) {
            let period = c.period().filter(|p| *p > 0).unwrap_or(100_000);
            p.push((
                "CPUQuotaPerSecUSec",
                Value::U64(q as u64 * 1_000_000 / period),
            ));
            p.push(("CPUQuotaPeriodUSec", Value::U64(period)));
        }
        if let Some(mask) = c.cpus().as_deref().and_then(bitmask) {
            p.push(("AllowedCPUs", Value::from(mask)));
        }
        if let Some(mask) = c.mems().as_deref().and_then(bitmask) {
            p.push(("AllowedMemoryNodes", Value::from(mask)));
        }
    }
    if let Some(pids) = res.pids() {
        let l = pids.limit();
        p.push((
            "TasksMax",
            Value::U64(if l > 0 { l as u64 } else { u64::MAX }),
        ));
    }
    if let Some(w) = res
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w > 0)
    {
        let w = 1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990;
        p.push(("IOWeight", Value::U64(w)));
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
    let bus = connect()?;
    let mut props: Props = vec![
        ("Description", Value::from(format!("nook container {id}"))),
        ("Slice", Value::from(scope.slice.clone())),
        ("PIDs", Value::from(vec![pid as u32])),
        ("Delegate", Value::Bool(true)),
        ("DefaultDependencies", Value::Bool(false)),
        ("MemoryAccounting", Value::Bool(true)),
        ("CPUAccounting", Value::Bool(true)),
        ("TasksAccounting", Value::Bool(true)),
        ("IOAccounting", Value::Bool(true)),
    ];
    props.extend(properties(res));
    let aux: Vec<(&str, Props)> = vec![];
    bus.call(
        "StartTransientUnit",
        &(scope.unit.as_str(), "fail", props, aux),
    )
    .map_err(|e| match &e {
        zbus::Error::MethodError(name, _, _) if name.as_str().ends_with("UnitExists") => {
            CgroupError::Systemd(format!(
                "systemd scope {} already exists (is another container using this cgroupsPath?)",
                scope.unit
            ))
        }
        _ => dbus_err("starting the transient scope")(e),
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
    if let Ok(bus) = connect() {
        let _ = bus.call("StopUnit", &(unit, "replace"));
    }
}

/// `update`: the scope's properties, as at start.
pub fn set(unit: &str, res: &LinuxResources) -> Result<(), CgroupError> {
    let props = properties(Some(res));
    if props.is_empty() {
        return Ok(());
    }
    let bus = connect()?;
    bus.call("SetUnitProperties", &(unit, true, props))
        .map_err(dbus_err("setting the scope's properties"))?;
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
        assert_eq!(get("MemoryMax"), Some(Value::U64(67108864)));
        assert_eq!(get("MemorySwapMax"), Some(Value::U64(33554432)));
        assert_eq!(get("CPUWeight"), Some(Value::U64(39)));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(Value::U64(500_000)));
        assert_eq!(get("TasksMax"), Some(Value::U64(64)));
        assert_eq!(get("IOWeight"), Some(Value::U64(4950)));
        assert_eq!(get("AllowedCPUs"), Some(Value::from(vec![0b1011u8])));
        // docker's zeros mean "not set".
        let zero: LinuxResources = serde_json::from_value(serde_json::json!({
            "cpu": {"shares": 0}, "blockIO": {"weight": 0}
        }))
        .unwrap();
        assert!(properties(Some(&zero)).is_empty());
    }
}
