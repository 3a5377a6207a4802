//! The five capability sets. Bounding is dropped while we still hold CAP_SETPCAP;
//! effective, permitted and inheritable are set in one capset after the uid change;
//! ambient comes last.

use std::collections::HashSet;

use caps::{CapSet, Capability};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

use super::sync::InitError;

/// Names from the config, as the kernel's capabilities. A name the kernel running
/// here does not know is skipped, as runc does; a name nobody knows is an error.
fn convert(
    known: &HashSet<Capability>,
    field: &str,
    set: &Option<Capabilities>,
) -> Result<HashSet<Capability>, InitError> {
    let mut out = HashSet::new();
    for c in set.iter().flatten() {
        let name = format!("CAP_{c}");
        let cap: Capability = name.parse().map_err(|_| {
            InitError::msg(
                format!("process.capabilities.{field}"),
                format!("unknown capability {name}"),
            )
        })?;
        if known.contains(&cap) {
            out.insert(cap);
        }
    }
    Ok(out)
}

/// The parsed sets.
pub struct Sets {
    pub bounding: HashSet<Capability>,
    pub effective: HashSet<Capability>,
    pub permitted: HashSet<Capability>,
    pub inheritable: HashSet<Capability>,
    pub ambient: HashSet<Capability>,
    /// What the running kernel knows (`supported`).
    pub supported: HashSet<Capability>,
}

/// The capabilities the running kernel knows: those up to its last one, found by a
/// binary search with PR_CAPBSET_READ (EINVAL past the last): 6 prctl calls instead
/// of one per capability.
fn supported() -> HashSet<Capability> {
    let known = |n: u32| {
        // SAFETY: prctl with integer arguments only.
        unsafe { libc::prctl(libc::PR_CAPBSET_READ, n as libc::c_ulong, 0, 0, 0) >= 0 }
    };
    // Invariant: `lo` is known (CAP_CHOWN, 0, always is), `hi` is not.
    let (mut lo, mut hi) = (0u32, 64u32);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if known(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    caps::all()
        .into_iter()
        .filter(|c| u32::from(c.index()) <= lo)
        .collect()
}

pub fn parse(c: Option<&LinuxCapabilities>) -> Result<Sets, InitError> {
    let known = supported();
    let Some(c) = c else {
        return Ok(Sets {
            bounding: HashSet::new(),
            effective: HashSet::new(),
            permitted: HashSet::new(),
            inheritable: HashSet::new(),
            ambient: HashSet::new(),
            supported: known,
        });
    };
    Ok(Sets {
        bounding: convert(&known, "bounding", c.bounding())?,
        effective: convert(&known, "effective", c.effective())?,
        permitted: convert(&known, "permitted", c.permitted())?,
        inheritable: convert(&known, "inheritable", c.inheritable())?,
        ambient: convert(&known, "ambient", c.ambient())?,
        supported: known,
    })
}

/// Drop from the bounding set every capability not listed.
pub fn drop_bounding(s: &Sets) -> Result<(), InitError> {
    for cap in &s.supported {
        if !s.bounding.contains(cap) {
            // SAFETY: prctl with integer arguments only.
            let r = unsafe {
                libc::prctl(libc::PR_CAPBSET_DROP, cap.index() as libc::c_ulong, 0, 0, 0)
            };
            nix::errno::Errno::result(r).map_err(|e| {
                InitError::msg(
                    "dropping capability from the bounding set",
                    format!("{cap}: {e}"),
                )
            })?;
        }
    }
    Ok(())
}

fn mask(set: &HashSet<Capability>) -> u64 {
    set.iter().fold(0u64, |m, c| m | c.bitmask())
}

/// Set effective, permitted and inheritable at once, then raise the ambient ones.
pub fn apply(s: &Sets) -> Result<(), InitError> {
    let (e, p, i) = (mask(&s.effective), mask(&s.permitted), mask(&s.inheritable));
    let mut hdr = libc_cap_header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        libc_cap_data {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        libc_cap_data {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    // SAFETY: hdr and data are the v3 layout capset expects (one header, two data words).
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut _, data.as_ptr()) };
    nix::errno::Errno::result(r).map_err(|e| {
        InitError::sys(
            "setting process.capabilities (effective, permitted, inheritable)",
            None,
            e,
        )
    })?;
    // The kernel only lets a capability be ambient when it is both permitted and
    // inheritable; runc's default config lists ambient ones without inheritable, and
    // runc skips those, so we do the same.
    for cap in s
        .ambient
        .iter()
        .filter(|c| s.permitted.contains(c) && s.inheritable.contains(c))
    {
        caps::raise(None, CapSet::Ambient, *cap)
            .map_err(|e| InitError::msg("raising ambient capability", format!("{cap}: {e}")))?;
    }
    Ok(())
}

#[repr(C)]
#[allow(non_camel_case_types)]
struct libc_cap_header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[allow(non_camel_case_types)]
struct libc_cap_data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

#[cfg(test)]
mod tests {
    #[test]
    fn binary_search_finds_what_a_probe_of_each_finds() {
        assert_eq!(super::supported(), caps::runtime::thread_all_supported());
    }
}
