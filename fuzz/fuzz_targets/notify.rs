//! The sd_notify relay's message filter (what an app in a container sends to nook):
//! any datagram is refused or forwarded as text that holds only accepted assignments.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = nook::systemd::notify::filter(data) {
        for line in out.lines() {
            assert!(
                line.contains('='),
                "forwarded a line that is no assignment: {line:?}"
            );
        }
    }
});
