//! The bundle tar unpacker against a scratch directory: whatever the archive, nothing
//! appears outside the target, and what it accepts holds only regular files,
//! directories and symlinks that stay beneath the target.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("nook-fuzz-unpack-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Every entry below `dir`: a regular file, a directory, or a symlink whose target,
/// resolved lexically from its own directory, stays inside `top`.
fn check_tree(top: &Path, dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        let p = e.path();
        if t.is_dir() {
            check_tree(top, &p);
        } else if t.is_symlink() {
            let target = std::fs::read_link(&p).unwrap();
            let mut depth = p
                .parent()
                .unwrap()
                .strip_prefix(top)
                .unwrap()
                .components()
                .count();
            if target.is_absolute() {
                // Absolute targets resolve in the container's root, which is `top`.
                depth = 0;
            }
            for c in target.components() {
                match c {
                    Component::ParentDir => {
                        assert!(
                            depth > 0,
                            "{} -> {} leaves the target",
                            p.display(),
                            target.display()
                        );
                        depth -= 1;
                    }
                    Component::Normal(_) => depth += 1,
                    _ => {}
                }
            }
        } else {
            assert!(
                t.is_file()
                    && !t.is_fifo()
                    && !t.is_socket()
                    && !t.is_block_device()
                    && !t.is_char_device(),
                "{} is not a regular file, directory or symlink",
                p.display()
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let s = scratch();
    let archive = s.join("bundle.tar");
    let dest = s.join("out");
    std::fs::write(&archive, data).unwrap();
    let o = nook::bundle::unpack::UnpackOptions {
        owners: false,
        sync: false,
        max_total_size: 1 << 24,
        ..Default::default()
    };
    let r = nook::bundle::unpack::unpack(&archive, &dest, &o);
    // Nothing but the archive and (on success) the target in the scratch dir.
    let mut names: Vec<String> = std::fs::read_dir(&s)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let want: Vec<String> = if r.is_ok() {
        vec!["bundle.tar".into(), "out".into()]
    } else {
        vec!["bundle.tar".into()]
    };
    assert_eq!(
        names, want,
        "the unpack left or made something beside its target"
    );
    if r.is_ok() {
        check_tree(&dest, &dest);
        std::fs::remove_dir_all(&dest).unwrap();
    }
});
