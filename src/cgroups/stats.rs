//! Figures for `events`: cpu, memory, pids, blkio, and the OOM-kill count, read from
//! whichever hierarchy holds each controller (runc's stats JSON shape).

use std::path::Path;

use serde_json::{json, Value};

use super::resources::Place;
use super::Cgroup;

fn read(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

fn num(p: &Path) -> u64 {
    read(p).and_then(|s| s.trim().parse().ok()).unwrap_or(0)
}

/// "key value" lines as a map.
fn kv(p: &Path) -> serde_json::Map<String, Value> {
    read(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), json!(v.trim().parse::<u64>().unwrap_or(0))))
        })
        .collect()
}

/// The stats document for one container.
pub fn collect(cg: &Cgroup) -> Value {
    let mut data = json!({});
    match cg.place("cpuacct").or_else(|| cg.place("cpu")) {
        Some(Place::V1(d)) => {
            let percpu: Vec<u64> = read(&d.join("cpuacct.usage_percpu"))
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let st = kv(&d.join("cpuacct.stat"));
            let tick = 10_000_000u64; // USER_HZ 100: one tick in ns
            data["cpu"] = json!({
                "usage": {
                    "total": num(&d.join("cpuacct.usage")),
                    "percpu": percpu,
                    "user": st.get("user").and_then(Value::as_u64).unwrap_or(0) * tick,
                    "kernel": st.get("system").and_then(Value::as_u64).unwrap_or(0) * tick,
                },
            });
            if let Some(Place::V1(c)) = cg.place("cpu") {
                let t = kv(&c.join("cpu.stat"));
                data["cpu"]["throttling"] = json!({
                    "periods": t.get("nr_periods"),
                    "throttledPeriods": t.get("nr_throttled"),
                    "throttledTime": t.get("throttled_time"),
                });
            }
        }
        Some(Place::V2(d)) => {
            let st = kv(&d.join("cpu.stat"));
            let us = |k: &str| st.get(k).and_then(Value::as_u64).unwrap_or(0) * 1000;
            data["cpu"] = json!({
                "usage": {"total": us("usage_usec"), "user": us("user_usec"), "kernel": us("system_usec")},
                "throttling": {
                    "periods": st.get("nr_periods"),
                    "throttledPeriods": st.get("nr_throttled"),
                    "throttledTime": us("throttled_usec"),
                },
            });
        }
        None => {}
    }
    match cg.place("memory") {
        Some(Place::V1(d)) => {
            data["memory"] = json!({
                "usage": {
                    "usage": num(&d.join("memory.usage_in_bytes")),
                    "max": num(&d.join("memory.max_usage_in_bytes")),
                    "failcnt": num(&d.join("memory.failcnt")),
                    "limit": num(&d.join("memory.limit_in_bytes")),
                },
                "swap": {
                    "usage": num(&d.join("memory.memsw.usage_in_bytes")),
                    "limit": num(&d.join("memory.memsw.limit_in_bytes")),
                },
                "stats": kv(&d.join("memory.stat")),
            });
        }
        Some(Place::V2(d)) => {
            let limit = read(&d.join("memory.max")).unwrap_or_default();
            data["memory"] = json!({
                "usage": {
                    "usage": num(&d.join("memory.current")),
                    "max": num(&d.join("memory.peak")),
                    "limit": limit.trim().parse::<u64>().unwrap_or(u64::MAX),
                },
                "swap": {"usage": num(&d.join("memory.swap.current"))},
                "stats": kv(&d.join("memory.stat")),
            });
        }
        None => {}
    }
    if let Some(Place::V1(d) | Place::V2(d)) = cg.place("pids") {
        let max = read(&d.join("pids.max")).unwrap_or_default();
        data["pids"] = json!({
            "current": num(&d.join("pids.current")),
            "limit": max.trim().parse::<u64>().unwrap_or(0),
        });
    }
    match cg.place("blkio") {
        Some(Place::V1(d)) => {
            data["blkio"] = json!({
                "ioServiceBytesRecursive": blkio_v1(&d.join("blkio.throttle.io_service_bytes")),
                "ioServicedRecursive": blkio_v1(&d.join("blkio.throttle.io_serviced")),
            });
        }
        _ => {
            if let Some(Place::V2(d)) = cg.place("io") {
                data["blkio"] = json!({"ioStat": read(&d.join("io.stat")).unwrap_or_default()});
            }
        }
    }
    data
}

fn blkio_v1(p: &Path) -> Vec<Value> {
    read(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (maj, min) = f.first()?.split_once(':')?;
            Some(json!({
                "major": maj.parse::<u64>().ok()?, "minor": min.parse::<u64>().ok()?,
                "op": f.get(1)?, "value": f.get(2)?.parse::<u64>().ok()?,
            }))
        })
        .collect()
}

/// How many processes the kernel's OOM killer has killed in the container.
pub fn oom_kills(cg: &Cgroup) -> u64 {
    match cg.place("memory") {
        Some(Place::V1(d)) => kv(&d.join("memory.oom_control"))
            .get("oom_kill")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        Some(Place::V2(d)) => kv(&d.join("memory.events"))
            .get("oom_kill")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        None => 0,
    }
}
