//! linux.cgroupsPath, both ways nook reads it: a path below the hierarchies' roots
//! (cgroupfs), and systemd's slice:prefix:name. What is accepted is a path of plain
//! names below the hierarchies' roots: never a root itself, never above one.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(rel) = nook::cgroups::relative_path(Some(Path::new(text)), "id") {
        assert!(
            rel.components().count() > 0
                && rel.components().all(|c| matches!(c, Component::Normal(_))),
            "{text:?} gave {rel:?}"
        );
    }
    if let Ok(scope) = nook::cgroups::systemd::Scope::parse(Some(text), "id") {
        let rel = scope.rel();
        assert!(
            rel.components().count() > 0
                && rel.components().all(|c| matches!(c, Component::Normal(_))),
            "{text:?} gave {rel:?}"
        );
    }
});
