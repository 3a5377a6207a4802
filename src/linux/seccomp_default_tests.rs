use super::*;

fn allowed(p: &Value) -> Vec<String> {
    serde_json::from_value(p["syscalls"][0]["names"].clone()).expect("a list of names")
}

#[test]
fn dangerous_calls_need_their_capability() {
    let p = profile(&["CAP_KILL"]);
    let names = allowed(&p);
    assert!(names.len() > 300, "{}", names.len());
    for call in [
        "mount",
        "umount2",
        "unshare",
        "setns",
        "keyctl",
        "add_key",
        "request_key",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "bpf",
        "reboot",
        "swapon",
        "pivot_root",
        "open_by_handle_at",
        "userfaultfd",
        "clone",
        "clone3",
        "settimeofday",
        "iopl",
        "acct",
        "perf_event_open",
        "sethostname",
        "chroot",
    ] {
        assert!(
            !names.iter().any(|n| n == call),
            "{call} allowed without a capability"
        );
    }
    for call in [
        "read",
        "openat",
        "execve",
        "ptrace",
        "getpid",
        "close_range",
        "seccomp",
    ] {
        assert!(names.iter().any(|n| n == call), "{call} not allowed");
    }
    assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(p["defaultErrnoRet"], 1);
    // Without CAP_SYS_ADMIN: clone only without namespace flags, clone3 gets ENOSYS.
    let rules = p["syscalls"].as_array().unwrap();
    let clone = rules
        .iter()
        .find(|r| r["names"] == json!(["clone"]))
        .unwrap();
    assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
    assert_eq!(clone["args"][0]["value"], 0x7e02_0000);
    let clone3 = rules
        .iter()
        .find(|r| r["names"] == json!(["clone3"]))
        .unwrap();
    assert_eq!(clone3["errnoRet"], libc::ENOSYS);
}

#[test]
fn capabilities_open_their_groups() {
    let p = profile(&["CAP_SYS_ADMIN", "CAP_SYS_TIME"]);
    let names = allowed(&p);
    for call in [
        "mount",
        "unshare",
        "clone",
        "clone3",
        "settimeofday",
        "clock_settime",
    ] {
        assert!(names.iter().any(|n| n == call), "{call} not allowed");
    }
    assert!(!names.iter().any(|n| n == "init_module"));
    let rules = p["syscalls"].as_array().unwrap();
    assert!(!rules.iter().any(|r| r["names"] == json!(["clone3"])));
}

#[test]
fn compiles_with_libseccomp() {
    for caps in [&[][..], &["CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_BPF"][..]] {
        let p: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_value(profile(caps)).expect("a valid linux.seccomp");
        crate::linux::seccomp::compile(&p).expect("compiles");
    }
}
