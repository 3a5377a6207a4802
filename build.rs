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
    start_order();
    trampoline();
}

/// Release builds of the nook binary lay out the functions of the start path first, in
/// the order they run (link/start-order.txt, made by integration/start-order.sh): fewer
/// fault-around windows of text to map at each start. lld's option; rustc links
/// x86_64-unknown-linux-gnu with its own lld since 1.90. NOOK_NO_START_ORDER=1 turns
/// it off (for an A/B).
fn start_order() {
    println!("cargo:rerun-if-changed=link/start-order.txt");
    println!("cargo:rerun-if-env-changed=NOOK_NO_START_ORDER");
    let file = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("link/start-order.txt");
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let target = env::var("TARGET").unwrap_or_default();
    if !release
        || target != "x86_64-unknown-linux-gnu"
        || !file.exists()
        || env::var_os("NOOK_NO_START_ORDER").is_some()
        || !rustc_links_with_lld()
    {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin=nook=-Wl,--symbol-ordering-file={}",
        file.display()
    );
    // A symbol the list names and this build lacks is skipped without a word.
    println!("cargo:rustc-link-arg-bin=nook=-Wl,--no-warn-symbol-ordering");
}

/// rustc 1.90 or later (its own lld is the default linker on x86_64 Linux since then).
fn rustc_links_with_lld() -> bool {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let v = String::from_utf8_lossy(&out.stdout);
    let mut nums = v.split_whitespace().nth(1).unwrap_or("").split('.');
    let major: u32 = nums.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let minor: u32 = nums.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    major > 1 || (major == 1 && minor >= 90)
}

/// The exec trampoline (see the file's head).
fn trampoline() {
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
