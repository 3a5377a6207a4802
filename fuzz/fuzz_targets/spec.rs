//! config.json: parsing (with the field path of any error) and the checks create makes
//! before it touches the host. Any input: an error or a checked Spec, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("config.json");
    if let Ok(spec) = nook::spec::parse(path, text) {
        let _ = nook::spec::check(&spec);
    }
});
