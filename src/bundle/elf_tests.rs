//! Unit tests of elf.rs (ld.so-like resolution against fixtures and the host).
use super::*;
use crate::bundle::ldconfig::*;

#[test]
fn host_cache_has_libc() {
    let Ok(bytes) = fs::read("/etc/ld.so.cache") else {
        eprintln!("skipping: no /etc/ld.so.cache");
        return;
    };
    let entries = parse_ld_so_cache(&bytes).unwrap();
    assert!(!entries.is_empty());
    let libc: Vec<_> = entries.iter().filter(|e| e.name == "libc.so.6").collect();
    assert!(!libc.is_empty(), "no libc.so.6 in {entries:?}");
    for e in &libc {
        assert!(e.path.ends_with("/libc.so.6"), "{e:?}");
        assert_eq!(e.flags & 0xff, 3, "FLAG_ELF_LIBC6: {e:?}");
    }
    if cfg!(target_arch = "x86_64") {
        // FLAG_X8664_LIB64 | FLAG_ELF_LIBC6
        assert!(libc.iter().any(|e| e.flags == 0x0303), "{libc:?}");
    }
    // Every path is absolute and names its entry's file.
    for e in &entries {
        assert!(e.path.starts_with('/'), "{e:?}");
    }
}

fn cache_bytes(entries: &[(&str, &str)], old: bool) -> Vec<u8> {
    let mut strings = Vec::new();
    let mut offs = vec![];
    let table = CACHE_NEW_HEADER + entries.len() * CACHE_NEW_ENTRY;
    for (k, v) in entries {
        let ko = table + strings.len();
        strings.extend_from_slice(k.as_bytes());
        strings.push(0);
        let vo = table + strings.len();
        strings.extend_from_slice(v.as_bytes());
        strings.push(0);
        offs.push((ko as u32, vo as u32));
    }
    let mut b = vec![];
    b.extend_from_slice(CACHE_MAGIC_NEW);
    b.extend_from_slice(CACHE_VERSION_NEW);
    b.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    b.extend_from_slice(&(strings.len() as u32).to_le_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 3]);
    b.extend_from_slice(&[0; 16]);
    for (ko, vo) in offs {
        b.extend_from_slice(&0x0303u32.to_le_bytes());
        b.extend_from_slice(&ko.to_le_bytes());
        b.extend_from_slice(&vo.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
    }
    b.extend_from_slice(&strings);
    if !old {
        return b;
    }
    // The compat layout: an old table of one entry first, then the new one aligned.
    let mut o = vec![];
    o.extend_from_slice(CACHE_MAGIC_OLD);
    o.extend_from_slice(&1u32.to_ne_bytes());
    o.push(0);
    o.extend_from_slice(&[0; CACHE_OLD_ENTRY]);
    while o.len() % 8 != 0 {
        o.push(0);
    }
    o.extend_from_slice(&b);
    o
}

#[test]
fn cache_formats() {
    let want = [
        ("libfoo.so.1", "/opt/lib/libfoo.so.1"),
        ("libc.so.6", "/lib/libc.so.6"),
    ];
    for old in [false, true] {
        let got = parse_ld_so_cache(&cache_bytes(&want, old)).unwrap();
        let got: Vec<_> = got
            .iter()
            .map(|e| (e.name.as_str(), e.path.as_str()))
            .collect();
        assert_eq!(got, want, "old={old}");
    }
    assert!(parse_ld_so_cache(b"garbage").is_err());
    let mut short = cache_bytes(&want, false);
    short.truncate(60);
    assert!(parse_ld_so_cache(&short).is_err());
}

#[test]
fn origin_and_tokens() {
    let o = Path::new("/opt/app/bin");
    let x = |e: &str| expand(e, o, "lib/x86_64-linux-gnu", "x86_64");
    assert_eq!(x("$ORIGIN"), Some("/opt/app/bin".into()));
    assert_eq!(x("$ORIGIN/../lib"), Some("/opt/app/lib".into()));
    assert_eq!(x("${ORIGIN}/../lib/"), Some("/opt/app/lib".into()));
    assert_eq!(
        x("/usr/$LIB/foo"),
        Some("/usr/lib/x86_64-linux-gnu/foo".into())
    );
    assert_eq!(x("/p/${PLATFORM}"), Some("/p/x86_64".into()));
    assert_eq!(x("/a/$ORIGINAL"), Some("/a/$ORIGINAL".into()));
    assert_eq!(x("/a/$FOO/b"), Some("/a/$FOO/b".into()));
    assert_eq!(x("/"), Some("/".into()));
    assert_eq!(x(""), None);
    assert_eq!(x("lib"), None);
    assert_eq!(
        expand("$ORIGIN/x", Path::new("/"), "lib", "x86_64"),
        Some("/x".into())
    );
}

#[test]
fn normalize_paths() {
    assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
}

#[test]
fn fnmatch_and_glob() {
    assert!(fnmatch("*.conf", "libc.conf"));
    assert!(!fnmatch("*.conf", "libc.conf~"));
    assert!(fnmatch("x?[0-9][!a]", "xy5b"));
    assert!(!fnmatch("x?[0-9][!a]", "xy5a"));
    assert!(fnmatch("a\\*", "a*"));
    let dir = std::env::temp_dir().join(format!("nook-elf-glob-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("d")).unwrap();
    for f in ["b.conf", "a.conf", ".h.conf", "c.txt"] {
        fs::write(dir.join("d").join(f), "").unwrap();
    }
    let got = glob(&format!("{}/d/*.conf", dir.display()));
    assert_eq!(got, vec![dir.join("d/a.conf"), dir.join("d/b.conf")]);
    // ld.so.conf: comments, include (relative to the file), trailing slashes.
    fs::write(dir.join("d/a.conf"), "/opt/a/\n# /no\n/opt/b # c\n").unwrap();
    fs::write(dir.join("d/b.conf"), "/opt/a\n/opt/c\n").unwrap();
    fs::write(
        dir.join("ld.so.conf"),
        "include d/*.conf\nhwcap 0 x\n/opt/d\n",
    )
    .unwrap();
    let dirs = ld_so_conf_dirs(&dir.join("ld.so.conf"));
    let want: Vec<PathBuf> = ["/opt/a", "/opt/b", "/opt/c", "/opt/d"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(dirs, want);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn not_elf() {
    let e = ElfFile::parse(Path::new("x"), b"#!/bin/sh\n").unwrap_err();
    assert_eq!(e, "not an ELF file");
}

#[test]
fn host_interpreter_parses() {
    let (_, machine) = host_arch();
    let cfg = SearchConfig::host(machine);
    // The test binary itself is static (crt-static) or dynamic; either way it parses.
    let me = std::env::current_exe().unwrap();
    let (elf, closure) = analyze(&me, &cfg).unwrap();
    assert_eq!(elf.machine, machine);
    if let Some(c) = closure {
        assert!(c.interp.path.is_absolute());
    }
}
