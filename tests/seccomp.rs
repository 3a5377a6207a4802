//! linux.seccomp: the filter the container process runs under, seen from inside.

mod common;

use common::{ok, report, Bundle};
use serde_json::json;

/// getcwd is denied with EPERM by the filter: the probe reports it cannot read its cwd,
/// while everything else (the probe's other syscalls) still works.
fn deny_getcwd(b: &Bundle, no_new_privs: bool) {
    b.config(|c| {
        c["process"]["noNewPrivileges"] = json!(no_new_privs);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["no_such_syscall_nook"], "action": "SCMP_ACT_ERRNO"}
            ]
        });
    });
}

#[test]
fn filter_applies_with_no_new_privs() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-nnp");
    deny_getcwd(&b, true);
    let r = b.report();
    assert_eq!(r["cwd"], "error", "getcwd must be denied: {r:?}");
    assert_eq!(r["no_new_privs"], "1");
}

#[test]
fn filter_applies_without_no_new_privs() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-privs");
    deny_getcwd(&b, false);
    let r = b.report();
    assert_eq!(r["cwd"], "error", "getcwd must be denied: {r:?}");
    assert_eq!(r["no_new_privs"], "0");
}

#[test]
fn without_a_filter_getcwd_works() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-none");
    let out = b.probe(&["report"]);
    let r = report(&ok(out));
    assert_eq!(r["cwd"], "/");
}

#[test]
fn a_bad_filter_fails_create_naming_the_field() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-bad");
    b.config(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO",
                          "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]
        });
    });
    let id = b.id();
    let out = b.nook(&["create", &id, "--bundle", b.path_str()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("linux.seccomp.syscalls[0].args[0].index"),
        "{err}"
    );
    b.assert_clean(&id);
}

/// A profile that denies close_range (older allow-lists lack it) with no_new_privs off:
/// the filter is loaded before privileges are dropped, so nook's own fd hygiene must
/// already be done; the app still gets only stdio.
#[test]
fn filter_denying_close_range_still_gives_only_stdio() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("seccomp-closerange");
    b.config(|c| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let r = b.report();
    assert_eq!(r["fds"], "0,1,2", "{r:?}");
}
