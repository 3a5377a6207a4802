//! Builds nook's exec trampoline (src/trampoline/main.rs) with the same rustc, for the
//! same target, as a libc-free static program of about 1.5 KB that nook embeds
//! (linux::trampoline). Targets it has no entry code for get an empty file, and nook
//! then keeps its re-exec guard for every start.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/trampoline/main.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("trampoline");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" || !matches!(arch.as_str(), "x86_64" | "aarch64") {
        std::fs::write(&out, b"").expect("writing an empty trampoline");
        return;
    }
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("cargo sets TARGET");
    // Only these flags: the crate's RUSTFLAGS (a fuzzer's sanitizers, for one) are not
    // meant for a program that has no runtime at all.
    let status = Command::new(&rustc)
        .args([
            "--edition",
            "2021",
            "--crate-type",
            "bin",
            "--target",
            &target,
        ])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "debuginfo=0",
        ])
        .args(["-C", "relocation-model=static", "-C", "strip=symbols"])
        .args(["-C", "link-arg=-nostartfiles", "-C", "link-arg=-nostdlib"])
        .args([
            "-C",
            "link-arg=-static",
            "-C",
            "link-arg=-Wl,--build-id=none",
        ])
        .arg("-o")
        .arg(&out)
        .arg("src/trampoline/main.rs")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .unwrap_or_else(|e| panic!("running {rustc:?} for the exec trampoline: {e}"));
    assert!(
        status.success(),
        "building the exec trampoline (src/trampoline/main.rs) failed: {status}"
    );
}
