//! The config template renderer: any text expands or fails with a line, never panics;
//! text without '$' comes out unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut lookup = |name: &str| -> Result<String, String> {
        match name {
            "HOSTNAME" => Ok("host".into()),
            "EMPTY" => Ok(String::new()),
            "DOLLAR" => Ok("$".into()),
            _ => Err(format!("{name} is not set")),
        }
    };
    let out = nook::bundle::template::expand(data, &mut lookup);
    if !data.contains(&b'$') {
        assert_eq!(out.as_deref().ok(), Some(data), "plain text changed");
    }
});
