//! `linux.resources` as cgroup file writes. Each controller is used in the hierarchy
//! where /proc/self/mountinfo says it is mounted (a v1 hierarchy, or the v2 one when its
//! root lists it in cgroup.controllers), so a hybrid host gets v1 files for most
//! controllers and v2 files for the ones its unified hierarchy owns. A key the host
//! cannot apply is an error naming it, never silence.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::{Cgroup, CgroupError, Hierarchy};

/// One write: which config key asked for it, the file, the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub key: String,
    pub path: PathBuf,
    pub value: String,
}

/// Where a controller lives for this container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    V1(PathBuf),
    V2(PathBuf),
}

fn unsupported(key: &str, why: impl Into<String>) -> CgroupError {
    CgroupError::Unsupported {
        key: key.to_string(),
        why: why.into(),
    }
}

/// The controllers a v2 hierarchy offers (its root's cgroup.controllers).
pub fn v2_controllers(h: &Hierarchy) -> Vec<String> {
    crate::linux::kfile::read(&h.mount_point.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

impl Cgroup {
    /// The container's directory for a controller, v1 first.
    pub fn place(&self, controller: &str) -> Option<Place> {
        for (h, d) in self.hierarchies.iter().zip(&self.dirs) {
            if !h.v2 && h.controllers.iter().any(|c| c == controller) {
                return Some(Place::V1(d.clone()));
            }
        }
        for (h, d) in self.hierarchies.iter().zip(&self.dirs) {
            if h.v2 && v2_controllers(h).iter().any(|c| c == controller) {
                return Some(Place::V2(d.clone()));
            }
        }
        None
    }

    fn need(&self, controller: &str, key: &str) -> Result<Place, CgroupError> {
        self.place(controller).ok_or_else(|| {
            unsupported(
                key,
                format!("this host has no {controller} cgroup controller mounted"),
            )
        })
    }
}

struct Plan<'a> {
    cg: &'a Cgroup,
    out: Vec<Write>,
}

impl Plan<'_> {
    fn push(&mut self, key: &str, dir: &Path, file: &str, value: impl ToString) {
        self.out.push(Write {
            key: key.to_string(),
            path: dir.join(file),
            value: value.to_string(),
        });
    }
}

/// `res` with the zeros that runc reads as "not set" taken out: docker puts
/// `blockIO.weight: 0` and `cpu.shares: 0` in every config, which would otherwise be
/// refused (no blkio.weight here) or written (cpu.shares 0 becomes the kernel's minimum,
/// 2: a starved container). Swappiness 0 stays: it is a real value.
/// The first field of linux.resources that asks for something (zeros runc reads as
/// "not set" do not), or None when nothing is asked.
pub fn first_requested(res: &LinuxResources) -> Option<&'static str> {
    let r = unset_zeros(res);
    let cpu = r.cpu().as_ref().is_some_and(|c| {
        c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
            || c.cpus().as_deref().is_some_and(|s| !s.is_empty())
            || c.mems().as_deref().is_some_and(|s| !s.is_empty())
            || c.idle().is_some()
            || c.burst().is_some()
    });
    let memory = r.memory().as_ref().is_some_and(|m| {
        m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.kernel().is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some()
            || m.use_hierarchy().is_some()
            || m.check_before_update().is_some()
    });
    let some = |v: bool, name| v.then_some(name);
    some(
        r.devices().as_ref().is_some_and(|d| !d.is_empty()),
        "linux.resources.devices",
    )
    .or(some(memory, "linux.resources.memory"))
    .or(some(cpu, "linux.resources.cpu"))
    .or(some(r.pids().is_some(), "linux.resources.pids"))
    .or(some(
        r.block_io()
            .as_ref()
            .is_some_and(|b| b != &Default::default()),
        "linux.resources.blockIO",
    ))
    .or(some(
        r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()),
        "linux.resources.hugepageLimits",
    ))
    .or(some(r.network().is_some(), "linux.resources.network"))
    .or(some(
        r.rdma().as_ref().is_some_and(|m| !m.is_empty()),
        "linux.resources.rdma",
    ))
    .or(some(
        r.unified().as_ref().is_some_and(|m| !m.is_empty()),
        "linux.resources.unified",
    ))
}

pub fn unset_zeros(res: &LinuxResources) -> LinuxResources {
    fn nz<T: Default + PartialEq>(v: Option<T>) -> Option<T> {
        v.filter(|v| *v != T::default())
    }
    let mut r = res.clone();
    if let Some(c) = res.cpu() {
        let mut n = c.clone();
        n.set_shares(nz(c.shares()))
            .set_quota(nz(c.quota()))
            .set_period(nz(c.period()))
            .set_realtime_runtime(nz(c.realtime_runtime()))
            .set_realtime_period(nz(c.realtime_period()))
            .set_cpus(c.cpus().clone().filter(|s| !s.is_empty()))
            .set_mems(c.mems().clone().filter(|s| !s.is_empty()));
        r.set_cpu(Some(n));
    }
    if let Some(m) = res.memory() {
        let mut n = *m;
        n.set_limit(nz(m.limit()))
            .set_reservation(nz(m.reservation()))
            .set_swap(nz(m.swap()))
            .set_kernel(nz(m.kernel()))
            .set_kernel_tcp(nz(m.kernel_tcp()));
        r.set_memory(Some(n));
    }
    if let Some(b) = res.block_io() {
        let mut n = b.clone();
        n.set_weight(nz(b.weight()))
            .set_leaf_weight(nz(b.leaf_weight()));
        r.set_block_io(Some(n));
    }
    if res.pids().as_ref().is_some_and(|p| p.limit() == 0) {
        r.set_pids(None);
    }
    r
}

/// The writes that apply `res`, in a safe order.
pub fn plan(cg: &Cgroup, res: &LinuxResources) -> Result<Vec<Write>, CgroupError> {
    let res = &unset_zeros(res);
    let mut p = Plan { cg, out: vec![] };
    if let Some(m) = res.memory() {
        memory(&mut p, m)?;
    }
    if let Some(c) = res.cpu() {
        cpu(&mut p, c)?;
    }
    if let Some(pids) = res.pids() {
        let key = "linux.resources.pids.limit";
        let (Place::V1(d) | Place::V2(d)) = p.cg.need("pids", key)?;
        let v = if pids.limit() > 0 {
            pids.limit().to_string()
        } else {
            "max".into()
        };
        p.push(key, &d, "pids.max", v);
    }
    if let Some(b) = res.block_io() {
        block_io(&mut p, b)?;
    }
    for (i, h) in res.hugepage_limits().iter().flatten().enumerate() {
        let key = format!("linux.resources.hugepageLimits[{i}]");
        let size = h.page_size().replace("KB", "kB");
        match p.cg.need("hugetlb", &key)? {
            Place::V1(d) => p.push(
                &key,
                &d,
                &format!("hugetlb.{size}.limit_in_bytes"),
                h.limit(),
            ),
            Place::V2(d) => p.push(&key, &d, &format!("hugetlb.{size}.max"), h.limit()),
        }
    }
    if let Some(n) = res.network() {
        network(&mut p, n)?;
    }
    if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(unsupported(
            "linux.resources.rdma",
            "rdma limits are not supported",
        ));
    }
    for (k, v) in res.unified().iter().flatten() {
        let key = format!("linux.resources.unified[{k:?}]");
        if k.contains('/') || k.starts_with('.') {
            return Err(unsupported(&key, "not a cgroup file name"));
        }
        let Some(d) = cg
            .hierarchies
            .iter()
            .zip(&cg.dirs)
            .find(|(h, _)| h.v2)
            .map(|(_, d)| d.clone())
        else {
            return Err(unsupported(&key, "needs a cgroup v2 hierarchy"));
        };
        if !d.join(k).exists() {
            return Err(unsupported(
                &key,
                format!("{} does not exist", d.join(k).display()),
            ));
        }
        p.push(&key, &d, k, v);
    }
    Ok(p.out)
}

fn memory(p: &mut Plan, m: &LinuxMemory) -> Result<(), CgroupError> {
    let k = |f: &str| format!("linux.resources.memory.{f}");
    let place = p.cg.need("memory", &k("limit"))?;
    let val = |v: i64| {
        if v < 0 {
            "max".to_string()
        } else {
            v.to_string()
        }
    };
    match place {
        Place::V1(d) => {
            let v1 = |v: i64| {
                if v < 0 {
                    "-1".to_string()
                } else {
                    v.to_string()
                }
            };
            // With swap, the two limits must be written so that limit <= memsw at
            // every moment: raise memsw first when growing (apply() retries in the
            // other order when the kernel refuses).
            if let Some(s) = m.swap() {
                if !d.join("memory.memsw.limit_in_bytes").exists() {
                    return Err(unsupported(
                        &k("swap"),
                        "swap accounting is off on this host",
                    ));
                }
                p.push(&k("swap"), &d, "memory.memsw.limit_in_bytes", v1(s));
            }
            if let Some(l) = m.limit() {
                p.push(&k("limit"), &d, "memory.limit_in_bytes", v1(l));
            }
            if let Some(r) = m.reservation() {
                p.push(&k("reservation"), &d, "memory.soft_limit_in_bytes", v1(r));
            }
            if let Some(s) = m.swappiness() {
                if s > 100 {
                    return Err(unsupported(&k("swappiness"), format!("{s} is above 100")));
                }
                p.push(&k("swappiness"), &d, "memory.swappiness", s);
            }
            if m.disable_oom_killer() == Some(true) {
                p.push(&k("disableOOMKiller"), &d, "memory.oom_control", 1);
            }
            if let Some(v) = m.kernel() {
                if !d.join("memory.kmem.limit_in_bytes").exists() {
                    return Err(unsupported(
                        &k("kernel"),
                        "this kernel has no kernel memory limit",
                    ));
                }
                p.push(&k("kernel"), &d, "memory.kmem.limit_in_bytes", v1(v));
            }
            if let Some(v) = m.kernel_tcp() {
                p.push(&k("kernelTCP"), &d, "memory.kmem.tcp.limit_in_bytes", v1(v));
            }
        }
        Place::V2(d) => {
            if let Some(l) = m.limit() {
                p.push(&k("limit"), &d, "memory.max", val(l));
            }
            if let Some(s) = m.swap() {
                // OCI swap is memory+swap; v2's swap.max is swap alone.
                let v = match (s, m.limit()) {
                    (s, _) if s < 0 => "max".to_string(),
                    (s, Some(l)) if l >= 0 => (s - l).max(0).to_string(),
                    (s, _) => s.to_string(),
                };
                p.push(&k("swap"), &d, "memory.swap.max", v);
            }
            if let Some(r) = m.reservation() {
                p.push(&k("reservation"), &d, "memory.low", val(r));
            }
            if m.swappiness().is_some_and(|s| s != 0 && s != 60) {
                return Err(unsupported(
                    &k("swappiness"),
                    "cgroup v2 has no per-cgroup swappiness",
                ));
            }
            if m.disable_oom_killer() == Some(true) {
                return Err(unsupported(
                    &k("disableOOMKiller"),
                    "cgroup v2 cannot disable the OOM killer",
                ));
            }
            if m.kernel().is_some() || m.kernel_tcp().is_some() {
                return Err(unsupported(
                    &k("kernel"),
                    "cgroup v2 has no separate kernel memory limit",
                ));
            }
        }
    }
    Ok(())
}

/// v1 real-time group scheduling: a cgroup gets no more real-time time than its parent
/// has, and new cgroups (nook's own parent among them) have none. Each parent between the
/// hierarchy's root and the container that has less than the container's share of its
/// period is given it, top down, as runc and crun do; the root's budget is the limit (a
/// write past it fails naming the parent's file and the field).
fn rt_budget_for_parents(p: &mut Plan, key: &str, leaf: &Path, runtime: u64, period: u64) {
    let Some(root) =
        p.cg.hierarchies
            .iter()
            .map(|h| &h.mount_point)
            .find(|m| leaf.starts_with(m))
    else {
        return;
    };
    let mut parents: Vec<&Path> = leaf
        .ancestors()
        .skip(1)
        .take_while(|a| *a != root.as_path() && a.starts_with(root))
        .collect();
    parents.reverse();
    let read = |d: &Path, f: &str| -> Option<u64> {
        std::fs::read_to_string(d.join(f)).ok()?.trim().parse().ok()
    };
    for d in parents {
        let (Some(have), Some(their_period)) =
            (read(d, "cpu.rt_runtime_us"), read(d, "cpu.rt_period_us"))
        else {
            continue;
        };
        let need = (runtime as u128 * their_period as u128).div_ceil(period.max(1) as u128) as u64;
        if have < need {
            p.push(key, d, "cpu.rt_runtime_us", need);
        }
    }
}

/// cpu.shares (2..262144) to cpu.weight (1..10000), as runc converts.
/// (0 never gets here: `unset_zeros` drops it as "not set".)
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn cpu(p: &mut Plan, c: &LinuxCpu) -> Result<(), CgroupError> {
    let k = |f: &str| format!("linux.resources.cpu.{f}");
    let wants_cpu = c.shares().is_some()
        || c.quota().is_some()
        || c.period().is_some()
        || c.realtime_runtime().is_some()
        || c.realtime_period().is_some()
        || c.idle().is_some()
        || c.burst().is_some();
    if wants_cpu {
        match p.cg.need("cpu", &k("shares"))? {
            Place::V1(d) => {
                if let Some(s) = c.shares() {
                    p.push(&k("shares"), &d, "cpu.shares", s);
                }
                if let Some(v) = c.period() {
                    p.push(&k("period"), &d, "cpu.cfs_period_us", v);
                }
                if let Some(v) = c.quota() {
                    p.push(
                        &k("quota"),
                        &d,
                        "cpu.cfs_quota_us",
                        if v <= 0 { -1 } else { v },
                    );
                }
                if let Some(v) = c.burst() {
                    p.push(&k("burst"), &d, "cpu.cfs_burst_us", v);
                }
                if let Some(v) = c.realtime_runtime().filter(|v| *v > 0) {
                    let period = c.realtime_period().unwrap_or(1_000_000);
                    rt_budget_for_parents(p, &k("realtimeRuntime"), &d, v as u64, period);
                }
                if let Some(v) = c.realtime_period() {
                    p.push(&k("realtimePeriod"), &d, "cpu.rt_period_us", v);
                }
                if let Some(v) = c.realtime_runtime() {
                    p.push(&k("realtimeRuntime"), &d, "cpu.rt_runtime_us", v);
                }
                if let Some(v) = c.idle() {
                    p.push(&k("idle"), &d, "cpu.idle", v);
                }
            }
            Place::V2(d) => {
                if let Some(s) = c.shares() {
                    p.push(&k("shares"), &d, "cpu.weight", shares_to_weight(s));
                }
                if c.quota().is_some() || c.period().is_some() {
                    let q = match c.quota() {
                        Some(q) if q > 0 => q.to_string(),
                        _ => "max".into(),
                    };
                    let per = c.period().unwrap_or(100_000);
                    p.push(&k("quota"), &d, "cpu.max", format!("{q} {per}"));
                }
                if let Some(v) = c.burst() {
                    p.push(&k("burst"), &d, "cpu.max.burst", v);
                }
                if c.realtime_runtime().is_some() || c.realtime_period().is_some() {
                    return Err(unsupported(
                        &k("realtimeRuntime"),
                        "cgroup v2 has no realtime limits",
                    ));
                }
                if let Some(v) = c.idle() {
                    p.push(&k("idle"), &d, "cpu.idle", v);
                }
            }
        }
    }
    if c.cpus().is_some() || c.mems().is_some() {
        let (Place::V1(d) | Place::V2(d)) = p.cg.need("cpuset", &k("cpus"))?;
        if let Some(v) = c.cpus() {
            p.push(&k("cpus"), &d, "cpuset.cpus", v);
        }
        if let Some(v) = c.mems() {
            p.push(&k("mems"), &d, "cpuset.mems", v);
        }
    }
    Ok(())
}

/// blkio weight (10..1000) to io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

fn block_io(p: &mut Plan, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let k = |f: &str| format!("linux.resources.blockIO.{f}");
    let throttles = [
        (
            "throttleReadBpsDevice",
            b.throttle_read_bps_device(),
            "read_bps_device",
            "rbps",
        ),
        (
            "throttleWriteBpsDevice",
            b.throttle_write_bps_device(),
            "write_bps_device",
            "wbps",
        ),
        (
            "throttleReadIOPSDevice",
            b.throttle_read_iops_device(),
            "read_iops_device",
            "riops",
        ),
        (
            "throttleWriteIOPSDevice",
            b.throttle_write_iops_device(),
            "write_iops_device",
            "wiops",
        ),
    ];
    let (place_v1, place_v2) = match (p.cg.place("blkio"), p.cg.place("io")) {
        (Some(Place::V1(d)), _) => (Some(d), None),
        (_, Some(Place::V2(d))) => (None, Some(d)),
        _ => {
            return Err(unsupported(
                &k("weight"),
                "this host has no blkio/io cgroup controller",
            ))
        }
    };
    if let Some(d) = place_v1 {
        let file = |f: &str, key: &str| -> Result<(), CgroupError> {
            if d.join(f).exists() {
                Ok(())
            } else {
                Err(unsupported(
                    key,
                    format!("{f} is not offered by this kernel (needs the BFQ or CFQ scheduler)"),
                ))
            }
        };
        if let Some(w) = b.weight() {
            file("blkio.weight", &k("weight"))?;
            p.push(&k("weight"), &d, "blkio.weight", w);
        }
        if let Some(w) = b.leaf_weight() {
            file("blkio.leaf_weight", &k("leafWeight"))?;
            p.push(&k("leafWeight"), &d, "blkio.leaf_weight", w);
        }
        for (i, wd) in b.weight_device().iter().flatten().enumerate() {
            let key = k(&format!("weightDevice[{i}]"));
            if let Some(w) = wd.weight() {
                file("blkio.weight_device", &key)?;
                p.push(
                    &key,
                    &d,
                    "blkio.weight_device",
                    format!("{}:{} {w}", wd.major(), wd.minor()),
                );
            }
        }
        for (name, list, file_name, _) in throttles {
            for (i, t) in list.iter().flatten().enumerate() {
                let key = k(&format!("{name}[{i}]"));
                let f = format!("blkio.throttle.{file_name}");
                p.push(
                    &key,
                    &d,
                    &f,
                    format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                );
            }
        }
    } else if let Some(d) = place_v2 {
        if let Some(w) = b.weight() {
            if !d.join("io.weight").exists() {
                return Err(unsupported(
                    &k("weight"),
                    "io.weight is not offered (needs the BFQ scheduler)",
                ));
            }
            p.push(
                &k("weight"),
                &d,
                "io.weight",
                format!("default {}", blkio_to_io_weight(w)),
            );
        }
        if b.leaf_weight().is_some() {
            return Err(unsupported(
                &k("leafWeight"),
                "cgroup v2 has no leaf weight",
            ));
        }
        for (i, wd) in b.weight_device().iter().flatten().enumerate() {
            if let Some(w) = wd.weight() {
                let key = k(&format!("weightDevice[{i}]"));
                let v = format!("{}:{} {}", wd.major(), wd.minor(), blkio_to_io_weight(w));
                p.push(&key, &d, "io.weight", v);
            }
        }
        for (name, list, _, v2) in throttles {
            for (i, t) in list.iter().flatten().enumerate() {
                let key = k(&format!("{name}[{i}]"));
                let v = format!("{}:{} {v2}={}", t.major(), t.minor(), t.rate());
                p.push(&key, &d, "io.max", v);
            }
        }
    }
    Ok(())
}

fn network(p: &mut Plan, n: &oci_spec::runtime::LinuxNetwork) -> Result<(), CgroupError> {
    if let Some(id) = n.class_id() {
        let key = "linux.resources.network.classID";
        match p.cg.need("net_cls", key)? {
            Place::V1(d) => p.push(key, &d, "net_cls.classid", id),
            Place::V2(_) => return Err(unsupported(key, "cgroup v2 has no net_cls")),
        }
    }
    for (i, prio) in n.priorities().iter().flatten().enumerate() {
        let key = format!("linux.resources.network.priorities[{i}]");
        match p.cg.need("net_prio", &key)? {
            Place::V1(d) => p.push(
                &key,
                &d,
                "net_prio.ifpriomap",
                format!("{} {}", prio.name(), prio.priority()),
            ),
            Place::V2(_) => return Err(unsupported(&key, "cgroup v2 has no net_prio")),
        }
    }
    Ok(())
}

/// One write(2) of a value, through the file the write before it used when the path is
/// the same (devices.allow takes one rule per write: one open serves them all).
fn write_value<'a>(
    open: &mut Option<(&'a Path, std::fs::File)>,
    w: &'a Write,
) -> std::io::Result<()> {
    use std::io::Write as _;
    if open.as_ref().is_none_or(|(p, _)| *p != w.path) {
        *open = None;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&w.path)?;
        *open = Some((&w.path, f));
    }
    let (_, f) = open.as_mut().expect("opened above");
    let n = f.write(w.value.as_bytes()).inspect_err(|_| *open = None)?;
    if n != w.value.len() {
        *open = None;
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    Ok(())
}

/// Perform the writes. A failed write names the config key, the file and the errno.
/// The memory limit and memsw limit are retried in the other order if the kernel
/// refuses the first (limit must stay <= memsw).
pub fn apply(writes: &[Write]) -> Result<(), CgroupError> {
    let mut pending: Vec<&Write> = writes.iter().collect();
    let mut retried = false;
    while !pending.is_empty() {
        let mut failed = vec![];
        let mut last_err = None;
        let mut open = None;
        for w in pending {
            if let Err(e) = write_value(&mut open, w) {
                let is_memory = w.path.file_name().is_some_and(|f| {
                    f == "memory.limit_in_bytes" || f == "memory.memsw.limit_in_bytes"
                });
                if is_memory && !retried {
                    failed.push(w);
                    continue;
                }
                last_err = Some(CgroupError::Write {
                    key: w.key.clone(),
                    path: w.path.clone(),
                    value: w.value.clone(),
                    source: e,
                });
                break;
            }
        }
        if let Some(e) = last_err {
            return Err(e);
        }
        if failed.is_empty() {
            break;
        }
        retried = true;
        pending = failed;
    }
    Ok(())
}
