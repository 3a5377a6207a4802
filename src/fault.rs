//! Fault injection for tests: named points along create, start, exec and delete where a
//! debug build of nook can be made to die as the OOM killer or a unit's stop timeout
//! would kill it. Release builds compile every point to nothing.
//!
//! `NOOK_FAULT_AT=N` makes nook SIGKILL itself at the N-th point it reaches (counting
//! from 1), after saying which point on stderr; `NOOK_FAULT_AT=NAME` at the first point
//! of that name. The children nook forks (the container's
//! init, an exec's process) count their own points from 1 against
//! `NOOK_FAULT_CHILD_AT=N` instead (`forked`), so a walk of N from 1 upwards over each
//! variable reaches every point of the parent and of the child; once N is past the last
//! point the command runs to its end. tests/faults.rs walks create, start, exec and
//! delete so.
//!
//! Every point is also a step of `steps`' timing (release builds too).

#[cfg(debug_assertions)]
mod imp {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The point count to die at (0: none, NAMED: at the point named in the variable)
    /// and the count so far.
    static AT: AtomicUsize = AtomicUsize::new(usize::MAX);
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    const NAMED: usize = usize::MAX - 1;
    static VAR: std::sync::Mutex<&str> = std::sync::Mutex::new("NOOK_FAULT_AT");

    fn target(var: &str) -> usize {
        match std::env::var(var) {
            Ok(v) if v.parse::<usize>().is_ok() => v.parse().unwrap(),
            Ok(v) if !v.is_empty() => NAMED,
            _ => 0,
        }
    }

    pub fn point(name: &str) {
        crate::steps::mark(name);
        let mut at = AT.load(Ordering::SeqCst);
        if at == usize::MAX {
            at = target("NOOK_FAULT_AT");
            AT.store(at, Ordering::SeqCst);
        }
        if at == 0 {
            return;
        }
        let n = SEEN.fetch_add(1, Ordering::SeqCst) + 1;
        let hit = if at == NAMED {
            let var = *VAR.lock().unwrap_or_else(|e| e.into_inner());
            std::env::var(var).is_ok_and(|v| v == name)
        } else {
            n == at
        };
        if hit {
            eprintln!(
                "nook: fault point {n} ({name}): killing pid {}",
                std::process::id()
            );
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            // Still here: the init of a new pid namespace, which its own signals cannot
            // kill. Leave as abruptly.
            // SAFETY: _exit ends the process at once; nothing is run or freed.
            unsafe { libc::_exit(137) };
        }
    }

    pub fn forked() {
        crate::steps::forked();
        *VAR.lock().unwrap_or_else(|e| e.into_inner()) = "NOOK_FAULT_CHILD_AT";
        AT.store(target("NOOK_FAULT_CHILD_AT"), Ordering::SeqCst);
        SEEN.store(0, Ordering::SeqCst);
    }
}

/// A fault point named `name` (`step.detail`, as the test's failure messages show it).
#[cfg(debug_assertions)]
pub use imp::point;

/// In a child nook forked: count points from 1 against NOOK_FAULT_CHILD_AT.
#[cfg(debug_assertions)]
pub use imp::forked;

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn point(name: &str) {
    crate::steps::mark(name);
}

#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn forked() {
    crate::steps::forked();
}
