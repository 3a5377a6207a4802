//! Commands that act on a container's cgroup: pause, resume, ps, update, events.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cgroups::{self, freezer, resources, stats};
use crate::cli::UpdateArgs;
use crate::error::{Error, IoContext, Result};
use crate::state::{self, State, StateDir, Status};

fn open(root: &Path, id: &str, exclusive: bool) -> Result<(StateDir, State, Status)> {
    let dir = StateDir::open(root, id, exclusive)?;
    let st = dir.read()?;
    let status = state::status(&dir, &st);
    Ok((dir, st, status))
}

fn bad(id: &str, status: Status, what: &'static str) -> Error {
    Error::BadStatus {
        id: id.into(),
        status: status.to_string(),
        what,
    }
}

pub fn pause(root: &Path, id: &str) -> Result<()> {
    let (_dir, st, status) = open(root, id, true)?;
    if status != Status::Running && status != Status::Created {
        return Err(bad(id, status, "only a running container can be paused"));
    }
    Ok(freezer::set(&st.cgroup, true)?)
}

pub fn resume(root: &Path, id: &str) -> Result<()> {
    let (_dir, st, status) = open(root, id, true)?;
    if status != Status::Paused {
        return Err(bad(id, status, "only a paused container can be resumed"));
    }
    Ok(freezer::set(&st.cgroup, false)?)
}

/// The pids of the container's cgroup: a table (PID and command) or a JSON array.
pub fn ps(root: &Path, id: &str, json_format: bool) -> Result<()> {
    let (_dir, st, status) = open(root, id, false)?;
    if status == Status::Stopped {
        return Err(bad(id, status, "container not running"));
    }
    let pids = cgroups::pids(&st.cgroup.dirs);
    let mut out = std::io::stdout().lock();
    let text = if json_format {
        format!("{}\n", serde_json::to_string(&pids).expect("json"))
    } else {
        let mut t = String::from("PID     CMD\n");
        for p in pids {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let cmd: String = String::from_utf8_lossy(&cmd).replace('\0', " ");
            t.push_str(&format!("{p:<7} {}\n", cmd.trim_end()));
        }
        t
    };
    out.write_all(text.as_bytes()).ctx("writing", "stdout")
}

/// "512m", "1g", "1024", "-1" as bytes (runc's RAMInBytes, binary units).
pub fn parse_bytes(s: &str) -> Result<i64> {
    let bad = || Error::Usage(format!("invalid size {s:?}"));
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if n < 0.0 {
        return if n == -1.0 { Ok(-1) } else { Err(bad()) };
    }
    Ok((n * mult as f64) as i64)
}

/// The linux.resources object `update` asks for: the --resources file, then the flags.
fn requested(a: &UpdateArgs) -> Result<serde_json::Value> {
    let mut v = match &a.resources {
        None => json!({}),
        Some(p) => {
            let text = if p.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).ctx("reading resources", "stdin")?
            } else {
                std::fs::read_to_string(p).ctx("reading resources", p)?
            };
            serde_json::from_str(&text).map_err(|e| Error::Usage(format!("--resources: {e}")))?
        }
    };
    let mut set = |section: &str, key: &str, val: serde_json::Value| {
        if !v[section].is_object() {
            v[section] = json!({});
        }
        v[section][key] = val;
    };
    if let Some(x) = a.blkio_weight {
        set("blockIO", "weight", json!(x));
    }
    if let Some(x) = a.cpu_period {
        set("cpu", "period", json!(x));
    }
    if let Some(x) = a.cpu_quota {
        set("cpu", "quota", json!(x));
    }
    if let Some(x) = a.cpu_share {
        set("cpu", "shares", json!(x));
    }
    if let Some(x) = a.cpu_rt_period {
        set("cpu", "realtimePeriod", json!(x));
    }
    if let Some(x) = a.cpu_rt_runtime {
        set("cpu", "realtimeRuntime", json!(x));
    }
    if let Some(x) = &a.cpuset_cpus {
        set("cpu", "cpus", json!(x));
    }
    if let Some(x) = &a.cpuset_mems {
        set("cpu", "mems", json!(x));
    }
    if let Some(x) = &a.memory {
        set("memory", "limit", json!(parse_bytes(x)?));
    }
    if let Some(x) = &a.memory_reservation {
        set("memory", "reservation", json!(parse_bytes(x)?));
    }
    if let Some(x) = &a.memory_swap {
        set("memory", "swap", json!(parse_bytes(x)?));
    }
    if let Some(x) = a.pids_limit {
        set("pids", "limit", json!(x));
    }
    Ok(v)
}

pub fn update(root: &Path, a: &UpdateArgs) -> Result<()> {
    let (_dir, st, status) = open(root, &a.id, true)?;
    if status == Status::Stopped {
        return Err(bad(&a.id, status, "container not running"));
    }
    let v = requested(a)?;
    let res: oci_spec::runtime::LinuxResources = serde_path_to_error::deserialize(v)
        .map_err(|e| Error::Usage(format!("resources: {}: {}", e.path(), e.inner())))?;
    let writes = resources::plan(&st.cgroup, &res)?;
    if let Some(scope) = &st.cgroup.scope {
        // systemd would put its own values back at its next reload otherwise.
        cgroups::systemd::set(&scope.unit, &res)?;
    }
    resources::apply(&writes)?;
    if let Some(d) = res.devices() {
        cgroups::devices::apply(&st.cgroup, d, &[])?;
    }
    Ok(())
}

/// Parse "5s", "500ms", "1m", or plain seconds.
pub fn parse_interval(s: &str) -> Result<Duration> {
    let bad = || Error::Usage(format!("invalid --interval {s:?}"));
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if secs <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `events --stats`: one stats event. Otherwise a stream: a stats event every interval
/// and an "oom" event as soon as the OOM killer kills in the container (polled every
/// 100 ms), until the container stops.
pub fn events(root: &Path, id: &str, stats_once: bool, interval: Duration) -> Result<()> {
    let (_dir, st, status) = open(root, id, false)?;
    if status == Status::Stopped {
        return Err(bad(id, status, "container not running"));
    }
    let mut out = std::io::stdout().lock();
    let emit = |out: &mut std::io::StdoutLock, v: serde_json::Value| -> Result<()> {
        writeln!(out, "{v}").ctx("writing events", "stdout")?;
        out.flush().ctx("writing events", "stdout")
    };
    let stats_event = || json!({"type": "stats", "id": id, "data": stats::collect(&st.cgroup)});
    if stats_once {
        return emit(&mut out, stats_event());
    }
    let mut ooms = stats::oom_kills(&st.cgroup);
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            emit(&mut out, stats_event())?;
            next += interval;
        }
        let n = stats::oom_kills(&st.cgroup);
        if n > ooms {
            emit(&mut out, json!({"type": "oom", "id": id}))?;
            ooms = n;
        }
        if state::start_time(st.pid) != Some(st.init_start_time) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100).min(interval));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_intervals() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert!(parse_interval("0s").is_err());
    }
}
