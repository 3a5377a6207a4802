//! `linux.resources.devices`: the v1 devices controller's allow/deny files, or on
//! cgroup v2 an eBPF program of type CGROUP_DEVICE attached to the container's cgroup.
//! Either way the standard devices (null, zero, full, random, urandom, tty, the pty
//! devices) are allowed after the configured rules, as runc does.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::resources::{Place, Write};
use super::{Cgroup, CgroupError};

/// A rule in a form both back ends use: type 'a', 'c' or 'b'; None is a wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

/// The standard devices every container may use (runc's list): mknod of any node
/// (using it still needs a rule), and the standard character devices. Not the host's
/// console (c 5:1): a container's /dev/console is its pty slave, which needs no rule.
pub fn default_allowed() -> Vec<Rule> {
    let c = |major, minor: Option<i64>| Rule {
        allow: true,
        kind: 'c',
        major: Some(major),
        minor,
        access: "rwm".into(),
    };
    let mknod = |kind| Rule {
        allow: true,
        kind,
        major: None,
        minor: None,
        access: "m".into(),
    };
    vec![
        mknod('c'),
        mknod('b'),
        c(1, Some(3)),    // null
        c(1, Some(5)),    // zero
        c(1, Some(7)),    // full
        c(1, Some(8)),    // random
        c(1, Some(9)),    // urandom
        c(5, Some(0)),    // tty
        c(5, Some(2)),    // ptmx
        c(136, None),     // pts/*
        c(10, Some(200)), // net/tun
    ]
}

fn rules(cfg: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>, CgroupError> {
    let mut out = vec![];
    for (i, d) in cfg.iter().enumerate() {
        let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::P => continue,
        };
        let access = d.access().clone().unwrap_or_else(|| "rwm".into());
        if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
            return Err(CgroupError::Unsupported {
                key: format!("linux.resources.devices[{i}].access"),
                why: format!("{access:?} is not a subset of \"rwm\""),
            });
        }
        out.push(Rule {
            allow: d.allow(),
            kind,
            major: d.major().filter(|m| *m >= 0),
            minor: d.minor().filter(|m| *m >= 0),
            access,
        });
    }
    Ok(out)
}

/// Apply the rules: v1 writes, or a v2 eBPF program. No rules, nothing to do.
/// The devices the config creates (`linux.devices`) are allowed too, as runc does.
pub fn apply(
    cg: &Cgroup,
    cfg: &[LinuxDeviceCgroup],
    created: &[oci_spec::runtime::LinuxDevice],
) -> Result<(), CgroupError> {
    if cfg.is_empty() {
        return Ok(());
    }
    let mut all = rules(cfg)?;
    all.extend(default_allowed());
    for d in created {
        let kind = match d.typ() {
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C | LinuxDeviceType::U => 'c',
            _ => continue,
        };
        all.push(Rule {
            allow: true,
            kind,
            major: Some(d.major()),
            minor: Some(d.minor()),
            access: "rwm".into(),
        });
    }
    match cg.place("devices") {
        Some(Place::V1(d)) => super::resources::apply(&v1_writes(&d, &all)),
        _ => match cg.hierarchies.iter().zip(&cg.dirs).find(|(h, _)| h.v2) {
            Some((_, d)) => attach_program(d, &program(&all)),
            None => Err(CgroupError::Unsupported {
                key: "linux.resources.devices".into(),
                why: "this host has neither a v1 devices controller nor cgroup v2".into(),
            }),
        },
    }
}

fn v1_writes(dir: &Path, rules: &[Rule]) -> Vec<Write> {
    let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| Write {
            key: format!("linux.resources.devices[{i}]"),
            path: dir.join(if r.allow {
                "devices.allow"
            } else {
                "devices.deny"
            }),
            value: if r.kind == 'a' {
                "a".to_string()
            } else {
                format!("{} {}:{} {}", r.kind, n(r.major), n(r.minor), r.access)
            },
        })
        .collect()
}

// eBPF encoding (linux/bpf.h, linux/bpf_common.h).
const BPF_LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const BPF_ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const BPF_ALU32_RSH_K: u8 = 0x74;
const BPF_MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const BPF_MOV64_X: u8 = 0xbf;
const BPF_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const BPF_JSET_K: u8 = 0x45;
const BPF_EXIT: u8 = 0x95;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    regs: u8, // dst in the low nibble, src in the high
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

/// The program: rules are checked last to first (a later rule overrides an earlier
/// one, as v1 does); the first match decides; with no match, access is allowed only
/// if no rule denies everything. The context is (access << 16 | type, major, minor).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        insn(BPF_LDX_MEM_W, 2, 1, 0, 0),        // r2 = access_type
        insn(BPF_MOV64_X, 3, 2, 0, 0),          // r3 = access_type
        insn(BPF_ALU32_AND_K, 2, 0, 0, 0xffff), // r2 = type (1 block, 2 char)
        insn(BPF_ALU32_RSH_K, 3, 0, 0, 16),     // r3 = access (1 mknod, 2 read, 4 write)
        insn(BPF_LDX_MEM_W, 4, 1, 4, 0),        // r4 = major
        insn(BPF_LDX_MEM_W, 5, 1, 8, 0),        // r5 = minor
    ];
    for r in rules.iter().rev() {
        let mut checks: Vec<(u8, u8, i32)> = vec![]; // (code, reg, imm): jump to next rule if true
        if r.kind != 'a' {
            checks.push((BPF_JNE_K, 2, if r.kind == 'b' { 1 } else { 2 }));
        }
        let mask: i32 = r.access.chars().fold(0, |m, c| {
            m | match c {
                'm' => 1,
                'r' => 2,
                _ => 4,
            }
        });
        if r.kind != 'a' && mask != 7 {
            // Some requested access bit outside the rule's set: not this rule.
            checks.push((BPF_JSET_K, 3, !mask & 7));
        }
        if let (Some(m), true) = (r.major, r.kind != 'a') {
            checks.push((BPF_JNE_K, 4, m as i32));
        }
        if let (Some(m), true) = (r.minor, r.kind != 'a') {
            checks.push((BPF_JNE_K, 5, m as i32));
        }
        let n = checks.len() as i16;
        for (i, (code, reg, imm)) in checks.into_iter().enumerate() {
            // Skip the remaining checks and the two-instruction verdict.
            p.push(insn(code, reg, 0, n - i as i16 - 1 + 2, imm));
        }
        p.push(insn(BPF_MOV64_K, 0, 0, 0, i32::from(r.allow)));
        p.push(insn(BPF_EXIT, 0, 0, 0, 0));
        if n == 0 {
            // A rule that matches everything decides for all earlier ones; the
            // verifier refuses code it can never reach.
            return p;
        }
    }
    let deny_all = rules.iter().any(|r| !r.allow && r.kind == 'a');
    p.push(insn(BPF_MOV64_K, 0, 0, 0, i32::from(!deny_all)));
    p.push(insn(BPF_EXIT, 0, 0, 0, 0));
    p
}

fn bpf(cmd: libc::c_int, attr: &mut [u64; 16]) -> nix::Result<i32> {
    // SAFETY: attr is a zero-initialised union bpf_attr large enough for these commands.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    nix::errno::Errno::result(r).map(|r| r as i32)
}

fn attach_program(dir: &Path, insns: &[Insn]) -> Result<(), CgroupError> {
    let err = |step: &'static str| {
        move |e: nix::Error| CgroupError::Io {
            step,
            path: dir.to_path_buf(),
            source: e.into(),
        }
    };
    const BPF_PROG_LOAD: i32 = 5;
    const BPF_PROG_ATTACH: i32 = 8;
    const BPF_PROG_TYPE_CGROUP_DEVICE: u64 = 15;
    const BPF_CGROUP_DEVICE: u64 = 6;
    const BPF_F_ALLOW_MULTI: u64 = 2;
    let license = c"GPL";
    let mut attr = [0u64; 16];
    // prog_type (u32) | insn_cnt (u32); insns (u64); license (u64)
    attr[0] = BPF_PROG_TYPE_CGROUP_DEVICE | ((insns.len() as u64) << 32);
    attr[1] = insns.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    let prog = bpf(BPF_PROG_LOAD, &mut attr).map_err(err("loading the device eBPF program for"))?;
    // SAFETY: BPF_PROG_LOAD returned a new fd that nothing else owns.
    let prog = unsafe { OwnedFd::from_raw_fd(prog) };
    let cg = std::fs::File::open(dir).map_err(|e| CgroupError::Io {
        step: "opening",
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut attr = [0u64; 16];
    // target_fd (u32) | attach_bpf_fd (u32); attach_type (u32) | attach_flags (u32)
    attr[0] = cg.as_raw_fd() as u64 | ((prog.as_raw_fd() as u64) << 32);
    attr[1] = BPF_CGROUP_DEVICE | (BPF_F_ALLOW_MULTI << 32);
    bpf(BPF_PROG_ATTACH, &mut attr).map_err(err("attaching the device eBPF program to"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config's usual rules: deny everything, then the standard devices.
    fn deny_all_then_defaults() -> Vec<Rule> {
        let mut all = vec![Rule {
            allow: false,
            kind: 'a',
            major: None,
            minor: None,
            access: "rwm".into(),
        }];
        all.extend(default_allowed());
        all
    }

    #[test]
    fn v1_rules_are_written_in_order_with_defaults_last() {
        let all = deny_all_then_defaults();
        let w = v1_writes(Path::new("/cg"), &all);
        assert_eq!(w[0].path, Path::new("/cg/devices.deny"));
        assert_eq!(w[0].value, "a");
        assert_eq!(w[1].value, "c *:* m");
        assert_eq!(w[3].value, "c 1:3 rwm");
        assert_eq!(w.last().unwrap().value, "c 10:200 rwm");
    }

    #[test]
    fn program_ends_in_a_verdict_and_jumps_stay_inside() {
        let all = deny_all_then_defaults();
        let p = program(&all);
        assert_eq!(p.last().unwrap().code, BPF_EXIT);
        for (i, ins) in p.iter().enumerate() {
            if ins.code == BPF_JNE_K || ins.code == BPF_JSET_K {
                let target = i as i64 + 1 + i64::from(ins.off);
                assert!(target < p.len() as i64, "jump out of the program at {i}");
            }
        }
        // The deny-all rule is checked last and decides: its verdict (deny) ends the
        // program, with nothing unreachable after it.
        assert_eq!(p[p.len() - 2].imm, 0);
        assert_eq!(
            p[p.len() - 3].code,
            BPF_EXIT,
            "no fall-through verdict after it"
        );
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::*;

    /// The kernel's verifier accepts the program (needs root; loading works on any
    /// host, attaching needs cgroup v2).
    #[test]
    fn the_verifier_accepts_the_program() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root");
            return;
        }
        for first in [
            Rule {
                allow: false,
                kind: 'a',
                major: None,
                minor: None,
                access: "rwm".into(),
            },
            Rule {
                allow: true,
                kind: 'b',
                major: Some(7),
                minor: None,
                access: "r".into(),
            },
        ] {
            let mut all = vec![first];
            all.extend(default_allowed());
            let insns = program(&all);
            let license = c"GPL";
            let mut attr = [0u64; 16];
            attr[0] = 15 | ((insns.len() as u64) << 32);
            attr[1] = insns.as_ptr() as u64;
            attr[2] = license.as_ptr() as u64;
            let fd = bpf(5, &mut attr).expect("BPF_PROG_LOAD");
            // SAFETY: closing the program fd the kernel just gave us.
            unsafe { libc::close(fd) };
        }
    }
}
