//! Where the container's init starts running: on the CPU that cloned it, while nook moves
//! to another.
//!
//! After a clone the scheduler leaves the new child queued on the parent's CPU, and the
//! parent runs on until it sleeps. nook's parent does not sleep for a while after the
//! clone (it makes and limits the cgroup: ~0.5 ms of cgroupfs syscalls), so the init,
//! whose setup is the critical path of a start, waited for it instead of running on the
//! other CPU. On this 2-vCPU host a C test (fork, then 1.5 ms of work in each process)
//! finished both in 3.1 ms, one after the other; with this hand-off, in 1.6 ms.
//!
//! The hand-off: before the clone nook pins itself to the CPU it is on, so the child is
//! born there with that one-CPU mask; right after, the parent moves itself to the other
//! allowed CPUs (the kernel migrates it at once) and then allows all of them again. The
//! child puts back the full mask first thing, before anything else sets its affinity
//! (`process.execCPUAffinity`, a cpuset). Nothing here changes which CPUs either process
//! may finally use; with a single allowed CPU, or if any call fails, nothing is pinned.

use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The pin set before a clone: the CPU and the mask to give back.
pub struct Handoff {
    cpu: usize,
    all: CpuSet,
}

impl Handoff {
    /// Before the clone: pin this process to the CPU it runs on. None (nothing pinned)
    /// when fewer than two CPUs are allowed or a call fails.
    pub fn pin() -> Option<Handoff> {
        let all = sched_getaffinity(Pid::from_raw(0)).ok()?;
        let allowed = (0..CpuSet::count())
            .filter(|&c| all.is_set(c).unwrap_or(false))
            .take(2)
            .count();
        let cpu = sched_getcpu().ok()?;
        if allowed < 2 || !all.is_set(cpu).ok()? {
            return None;
        }
        let mut one = CpuSet::new();
        one.set(cpu).ok()?;
        sched_setaffinity(Pid::from_raw(0), &one).ok()?;
        Some(Handoff { cpu, all })
    }

    /// In the parent, after the clone (or a failed one): leave the CPU to the child, then
    /// allow every CPU again. The move is best effort; the restore is retried once.
    pub fn parent(&self) {
        let mut others = self.all;
        if others.unset(self.cpu).is_ok() {
            let _ = sched_setaffinity(Pid::from_raw(0), &others);
        }
        if sched_setaffinity(Pid::from_raw(0), &self.all).is_err() {
            let _ = sched_setaffinity(Pid::from_raw(0), &self.all);
        }
    }

    /// In the child, first thing: the mask it would have had without the pin.
    pub fn child(&self) -> nix::Result<()> {
        sched_setaffinity(Pid::from_raw(0), &self.all)
    }
}

/// In a child forked with `pin` (or without a pin: nothing to do): `Handoff::child`, its
/// failure an init error.
pub fn unpin(h: Option<&Handoff>) -> Result<(), crate::linux::sync::InitError> {
    match h {
        Some(h) => h.child().map_err(|e| {
            crate::linux::sync::InitError::sys(
                "restoring the CPU affinity pinned for the clone",
                None,
                e,
            )
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pin holds this thread's CPU alone, and parent() gives the whole mask back.
    /// (What the container's init and an exec'd process see is tested in tests/rootless.rs.)
    #[test]
    fn pin_and_restore() {
        let before = sched_getaffinity(Pid::from_raw(0)).unwrap();
        let Some(h) = Handoff::pin() else {
            eprintln!("skipping: fewer than two CPUs allowed here");
            return;
        };
        let pinned = sched_getaffinity(Pid::from_raw(0)).unwrap();
        let n = |s: &CpuSet| {
            (0..CpuSet::count())
                .filter(|&c| s.is_set(c).unwrap())
                .count()
        };
        assert_eq!(n(&pinned), 1);
        assert!(pinned.is_set(h.cpu).unwrap());
        h.parent();
        assert_eq!(sched_getaffinity(Pid::from_raw(0)).unwrap(), before);
    }
}
