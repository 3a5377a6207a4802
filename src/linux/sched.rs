//! Where and how the container's process runs: `process.scheduler` (sched_setattr),
//! `process.ioPriority` (ioprio_set), `process.execCPUAffinity` (sched_setaffinity),
//! `linux.memoryPolicy` (set_mempolicy) and `linux.personality` (personality). The
//! config's values are checked and turned into syscall arguments by `plan` (at create,
//! before anything is made, naming the field), and applied by the init (or an exec's
//! process) on itself.

use nix::sched::CpuSet;
use oci_spec::runtime::{
    IOPriorityClass, LinuxMemoryPolicy, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Process, Spec,
};

/// A field nook cannot apply as given: its JSON path and why.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {why}")]
pub struct FieldError {
    pub field: &'static str,
    pub why: String,
}

fn bad(field: &'static str, why: impl Into<String>) -> FieldError {
    FieldError {
        field,
        why: why.into(),
    }
}

/// struct sched_attr, as sched_setattr(2) takes it (SCHED_ATTR_SIZE_VER1).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

/// What the process is given, checked and in the kernel's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub scheduler: Option<SchedAttr>,
    /// ioprio_set's value: class << 13 | priority.
    pub io_priority: Option<i32>,
    pub affinity_initial: Option<Vec<usize>>,
    pub affinity_final: Option<Vec<usize>>,
    /// set_mempolicy's mode (with its flags) and node mask.
    pub memory_policy: Option<(i32, Vec<u64>)>,
    pub personality: Option<u64>,
}

/// The runtime spec's scheduler flag names. oci-spec spells two of them otherwise
/// (`SCHED_RESET_ON_FORK`, `SCHED_FLAG_D_L_OVERRUN`); `spec::parse` turns the spec's
/// spelling into the crate's before parsing, so configs use the spec's.
pub const SPEC_FLAG_NAMES: [(&str, &str); 2] = [
    ("SCHED_FLAG_RESET_ON_FORK", "SCHED_RESET_ON_FORK"),
    ("SCHED_FLAG_DL_OVERRUN", "SCHED_FLAG_D_L_OVERRUN"),
];

/// Check the fields and turn them into syscall arguments.
pub fn plan(spec: &Spec) -> Result<Placement, FieldError> {
    let mut p = match spec.process() {
        Some(proc) => plan_process(proc)?,
        None => Placement::default(),
    };
    if let Some(linux) = spec.linux() {
        p.memory_policy = linux
            .memory_policy()
            .as_ref()
            .map(memory_policy)
            .transpose()?;
        if let Some(per) = linux.personality() {
            if per.flags().as_ref().is_some_and(|f| !f.is_empty()) {
                return Err(bad(
                    "linux.personality.flags",
                    "no flags are defined by the runtime spec (nor applied by runc)",
                ));
            }
            p.personality = Some(match per.domain() {
                LinuxPersonalityDomain::PerLinux => 0x0000,
                LinuxPersonalityDomain::PerLinux32 => 0x0008,
            });
        }
    }
    Ok(p)
}

/// The process's own fields (an exec'd process has these, not the container's).
pub fn plan_process(proc: &Process) -> Result<Placement, FieldError> {
    let mut p = Placement {
        scheduler: scheduler(proc)?,
        io_priority: io_priority(proc)?,
        ..Default::default()
    };
    if let Some(a) = proc.exec_cpu_affinity() {
        p.affinity_initial = a
            .initial()
            .as_deref()
            .map(|s| cpu_list("process.execCPUAffinity.initial", s))
            .transpose()?;
        p.affinity_final = a
            .cpu_affinity_final()
            .as_deref()
            .map(|s| cpu_list("process.execCPUAffinity.final", s))
            .transpose()?;
    }
    Ok(p)
}

fn scheduler(proc: &Process) -> Result<Option<SchedAttr>, FieldError> {
    let Some(s) = proc.scheduler() else {
        return Ok(None);
    };
    let field = "process.scheduler";
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => {
            return Err(bad(
                "process.scheduler.policy",
                "SCHED_ISO is not implemented by Linux",
            ))
        }
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().as_deref().unwrap_or_default() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let nice = s.nice().unwrap_or(0);
    if !(-20..=19).contains(&nice) {
        return Err(bad(
            "process.scheduler.nice",
            format!("{nice} is not in -20..19"),
        ));
    }
    if nice != 0 && !matches!(policy, 0 | 3) {
        return Err(bad(
            "process.scheduler.nice",
            "only SCHED_OTHER and SCHED_BATCH take a nice value",
        ));
    }
    let priority = s.priority().unwrap_or(0);
    match policy {
        1 | 2 if !(1..=99).contains(&priority) => {
            return Err(bad(
                "process.scheduler.priority",
                format!("{priority}: SCHED_FIFO and SCHED_RR take 1..99"),
            ))
        }
        1 | 2 => {}
        _ if priority != 0 => {
            return Err(bad(
                "process.scheduler.priority",
                "only SCHED_FIFO and SCHED_RR take a priority (it must be 0 or absent)",
            ))
        }
        _ => {}
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if policy == 6 {
        if runtime == 0 || deadline == 0 {
            return Err(bad(
                field,
                "SCHED_DEADLINE needs runtime and deadline (and period, or it equals deadline)",
            ));
        }
        let period = if period == 0 { deadline } else { period };
        if !(runtime <= deadline && deadline <= period) {
            return Err(bad(
                field,
                "SCHED_DEADLINE needs runtime <= deadline <= period",
            ));
        }
    } else if runtime != 0 || deadline != 0 || period != 0 {
        return Err(bad(
            field,
            "runtime, deadline and period are for SCHED_DEADLINE only",
        ));
    }
    Ok(Some(SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy,
        flags,
        nice,
        priority: priority as u32,
        runtime,
        deadline,
        period,
        util_min: 0,
        util_max: 1024,
    }))
}

fn io_priority(proc: &Process) -> Result<Option<i32>, FieldError> {
    let Some(io) = proc.io_priority() else {
        return Ok(None);
    };
    let class = match io.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let prio = io.priority();
    if !(0..=7).contains(&prio) {
        return Err(bad(
            "process.ioPriority.priority",
            format!("{prio} is not in 0..7"),
        ));
    }
    Ok(Some(class << 13 | prio as i32))
}

/// A CPU list as taskset and cpuset write it: "0-3,7".
fn cpu_list(field: &'static str, s: &str) -> Result<Vec<usize>, FieldError> {
    let mut cpus = vec![];
    for part in s.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let n = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| bad(field, format!("{s:?} is not a CPU list (like \"0-3,7\")")))
        };
        let (a, b) = (n(a)?, n(b)?);
        if a > b || b >= CpuSet::count() {
            return Err(bad(
                field,
                format!("{s:?}: CPU range {part:?} is not valid here"),
            ));
        }
        cpus.extend(a..=b);
    }
    Ok(cpus)
}

fn memory_policy(m: &LinuxMemoryPolicy) -> Result<(i32, Vec<u64>), FieldError> {
    let field = "linux.memoryPolicy";
    let mode = match m.mode() {
        MemoryPolicyModeType::MpolDefault => 0,
        MemoryPolicyModeType::MpolPreferred => 1,
        MemoryPolicyModeType::MpolBind => 2,
        MemoryPolicyModeType::MpolInterleave => 3,
        MemoryPolicyModeType::MpolLocal => 4,
        MemoryPolicyModeType::MpolPreferredMany => 5,
        MemoryPolicyModeType::MpolWeightedInterleave => 6,
    };
    let mut flags = 0;
    for f in m.flags().as_deref().unwrap_or_default() {
        flags |= match f {
            MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
            MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
            MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
        };
    }
    let nodes = m.nodes().as_deref().unwrap_or("");
    let mut mask = vec![];
    if !nodes.trim().is_empty() {
        for part in nodes.split(',').map(str::trim) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let n = |v: &str| {
                v.trim().parse::<usize>().map_err(|_| {
                    bad(
                        "linux.memoryPolicy.nodes",
                        format!("{nodes:?} is not a node list"),
                    )
                })
            };
            let (a, b) = (n(a)?, n(b)?);
            if a > b || b >= 1024 {
                return Err(bad(
                    "linux.memoryPolicy.nodes",
                    format!("{nodes:?}: range {part:?} is not valid"),
                ));
            }
            for node in a..=b {
                if mask.len() <= node / 64 {
                    mask.resize(node / 64 + 1, 0);
                }
                mask[node / 64] |= 1u64 << (node % 64);
            }
        }
    }
    match mode {
        0 | 4 if !mask.is_empty() => {
            return Err(bad(field, "MPOL_DEFAULT and MPOL_LOCAL take no nodes"))
        }
        2 | 3 | 5 | 6 if mask.is_empty() => {
            return Err(bad(field, "this mode needs nodes"));
        }
        _ => {}
    }
    Ok((mode | flags, mask))
}

/// An applied field's failure: the field and the errno.
#[derive(Debug, thiserror::Error)]
#[error("applying {field}: {source}")]
pub struct ApplyError {
    pub field: &'static str,
    pub source: nix::Error,
}

fn applied(field: &'static str, r: libc::c_long) -> Result<(), ApplyError> {
    if r < 0 {
        return Err(ApplyError {
            field,
            source: nix::Error::last(),
        });
    }
    Ok(())
}

impl From<ApplyError> for crate::linux::sync::InitError {
    fn from(e: ApplyError) -> Self {
        crate::linux::sync::InitError::sys(format!("applying {}", e.field), None, e.source)
    }
}

impl From<FieldError> for crate::spec::SpecError {
    fn from(e: FieldError) -> Self {
        crate::spec::SpecError::Invalid {
            field: e.field.into(),
            why: e.why,
        }
    }
}

/// `process.execCPUAffinity.initial`, if given: for the process before it joins the
/// container's cgroup.
pub fn initial_affinity(p: &Placement) -> Result<(), ApplyError> {
    match &p.affinity_initial {
        Some(c) => set_affinity("process.execCPUAffinity.initial", c),
        None => Ok(()),
    }
}

/// `process.execCPUAffinity.final`, if given: once in the cgroup (a cpuset may have
/// reset the affinity), before exec.
pub fn final_affinity(p: &Placement) -> Result<(), ApplyError> {
    match &p.affinity_final {
        Some(c) => set_affinity("process.execCPUAffinity.final", c),
        None => Ok(()),
    }
}

/// Set this process's CPU affinity.
pub fn set_affinity(field: &'static str, cpus: &[usize]) -> Result<(), ApplyError> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c).map_err(|source| ApplyError { field, source })?;
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|source| ApplyError { field, source })
}

/// Apply everything but the affinities to this process (the init or an exec's process,
/// while it still has the capabilities a real-time class or a lower nice needs).
pub fn apply(p: &Placement) -> Result<(), ApplyError> {
    if let Some(per) = p.personality {
        // SAFETY: personality(2) takes a value and touches no memory.
        let r = unsafe { libc::personality(per as libc::c_ulong) };
        applied("linux.personality", r as libc::c_long)?;
    }
    if let Some((mode, mask)) = &p.memory_policy {
        let maxnode = if mask.is_empty() {
            0
        } else {
            mask.len() * 64 + 1
        };
        let ptr = if mask.is_empty() {
            std::ptr::null()
        } else {
            mask.as_ptr()
        };
        // SAFETY: the mask outlives the call; maxnode bounds what the kernel reads.
        let r = unsafe { libc::syscall(libc::SYS_set_mempolicy, *mode, ptr, maxnode) };
        applied("linux.memoryPolicy", r)?;
    }
    if let Some(v) = p.io_priority {
        // IOPRIO_WHO_PROCESS, this process.
        // SAFETY: plain integers.
        let r = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, v) };
        applied("process.ioPriority", r)?;
    }
    if let Some(attr) = &p.scheduler {
        // SAFETY: attr is a live struct sched_attr of the size it states.
        let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, attr as *const SchedAttr, 0) };
        applied("process.scheduler", r)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(dst: &mut serde_json::Value, src: serde_json::Value) {
        match (dst, src) {
            (serde_json::Value::Object(d), serde_json::Value::Object(s)) => {
                for (k, v) in s {
                    merge(d.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (d, s) => *d = s,
        }
    }

    fn spec(j: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({"ociVersion": "1.2.0", "root": {"path": "rootfs"},
            "process": {"args": ["/a"], "cwd": "/", "user": {"uid": 0, "gid": 0}}});
        merge(&mut base, j);
        crate::spec::parse(std::path::Path::new("config.json"), &base.to_string()).unwrap()
    }

    #[test]
    fn scheduler_fields_become_sched_attr() {
        let s = spec(
            serde_json::json!({"process": {"scheduler": {"policy": "SCHED_BATCH",
            "nice": 5, "flags": ["SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_DL_OVERRUN"]}}}),
        );
        let a = plan(&s).unwrap().scheduler.unwrap();
        assert_eq!((a.policy, a.nice, a.flags), (3, 5, 0x05));
        assert_eq!(a.size, 56);
    }

    #[test]
    fn bad_values_name_their_field() {
        for (j, field) in [
            (
                serde_json::json!({"process": {"scheduler": {"policy": "SCHED_FIFO"}}}),
                "process.scheduler.priority",
            ),
            (
                serde_json::json!({"process": {"scheduler": {"policy": "SCHED_OTHER", "nice": 40}}}),
                "process.scheduler.nice",
            ),
            (
                serde_json::json!({"process": {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}}),
                "process.ioPriority.priority",
            ),
            (
                serde_json::json!({"process": {"execCPUAffinity": {"initial": "3-1"}}}),
                "process.execCPUAffinity.initial",
            ),
            (
                serde_json::json!({"linux": {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "x"}}}),
                "linux.memoryPolicy.nodes",
            ),
            (
                serde_json::json!({"linux": {"personality": {"domain": "LINUX", "flags": ["x"]}}}),
                "linux.personality.flags",
            ),
        ] {
            let e = plan(&spec(j.clone())).expect_err(&j.to_string());
            assert_eq!(e.field, field, "{j}");
        }
    }

    #[test]
    fn lists_parse() {
        assert_eq!(cpu_list("f", "0-2,4").unwrap(), vec![0, 1, 2, 4]);
        let (mode, mask) = memory_policy(
            &serde_json::from_value(serde_json::json!({"mode": "MPOL_INTERLEAVE",
                "nodes": "0,65", "flags": ["MPOL_F_STATIC_NODES"]}))
            .unwrap(),
        )
        .unwrap();
        assert_eq!(mode, 3 | 1 << 15);
        assert_eq!(mask, vec![1, 2]);
    }
}
