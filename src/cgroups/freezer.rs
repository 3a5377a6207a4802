//! Pause and resume: the v1 freezer, or cgroup.freeze on v2; both wait until the
//! kernel reports the new state.

use std::time::{Duration, Instant};

use super::resources::Place;
use super::{Cgroup, CgroupError};

/// Freeze (`true`) or thaw the container's cgroup and wait for it to settle.
pub fn set(cg: &Cgroup, frozen: bool) -> Result<(), CgroupError> {
    let (file, value, check, want): (&str, &str, &str, &str) = match cg.place("freezer") {
        Some(Place::V1(d)) => {
            let v = if frozen { "FROZEN" } else { "THAWED" };
            return write_and_wait(&d.join("freezer.state"), v, &d.join("freezer.state"), v);
        }
        _ => (
            "cgroup.freeze",
            if frozen { "1" } else { "0" },
            "cgroup.events",
            if frozen { "frozen 1" } else { "frozen 0" },
        ),
    };
    let Some(d) = cg
        .hierarchies
        .iter()
        .zip(&cg.dirs)
        .find(|(h, d)| h.v2 && d.join(file).exists())
        .map(|(_, d)| d.clone())
    else {
        return Err(CgroupError::Unsupported {
            key: "pause".into(),
            why: "this host has neither a v1 freezer nor cgroup v2's cgroup.freeze".into(),
        });
    };
    write_and_wait(&d.join(file), value, &d.join(check), want)
}

fn write_and_wait(
    file: &std::path::Path,
    value: &str,
    check: &std::path::Path,
    want: &str,
) -> Result<(), CgroupError> {
    let io = |step, path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| CgroupError::Io { step, path, source }
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        std::fs::write(file, value).map_err(io("writing", file))?;
        let now = std::fs::read_to_string(check).map_err(io("reading", check))?;
        if now.lines().any(|l| l.trim() == want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CgroupError::Io {
                step: "waiting for the freezer",
                path: check.to_path_buf(),
                source: std::io::Error::from_raw_os_error(libc::ETIMEDOUT),
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
