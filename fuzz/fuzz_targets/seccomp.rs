//! linux.seccomp as a config gives it: parsed, then compiled by libseccomp into a BPF
//! filter (not loaded). Any input: an error naming the field, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxSeccomp;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = serde_json::from_slice::<LinuxSeccomp>(data) {
        let _ = nook::linux::seccomp::compile(&s);
    }
});
