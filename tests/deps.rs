//! integration/deps.sh's package lists against what the build and the tests really use,
//! so `make demo` and `make test` on a fresh Debian machine install everything: each
//! native library the build links (from the build scripts' `rustc-link-lib` lines, and
//! libc when nook is linked statically) and each host program the tests name must come
//! from a listed package, a direct dependency of one, or a package every Debian system
//! has (priority required or important). Owners are asked of dpkg on this machine.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn listed(groups: &[&str]) -> BTreeSet<String> {
    let out = Command::new(Path::new(REPO).join("integration/deps.sh"))
        .arg("--list")
        .args(groups)
        .output()
        .expect("running integration/deps.sh --list");
    assert!(out.status.success(), "deps.sh --list failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn query(args: &[&str]) -> Option<String> {
    let out = Command::new(args[0]).args(&args[1..]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The package that owns a file (its real path: /usr/bin/cc is an alternative link).
fn owner(p: &Path) -> Option<String> {
    let real = fs::canonicalize(p).ok()?;
    // A merged-/usr system records some files under /bin or /lib: try both spellings.
    let alt = real
        .to_str()?
        .strip_prefix("/usr")
        .map(str::to_string)
        .unwrap_or_default();
    for f in [real.to_str()?, alt.as_str()]
        .into_iter()
        .filter(|f| !f.is_empty())
    {
        if let Some(line) = query(&["dpkg-query", "-S", f]) {
            let pkg = line.split(':').next()?.trim().to_string();
            return Some(pkg);
        }
    }
    None
}

/// Whether a package is covered: listed, a direct dependency of a listed one, or part of
/// every Debian installation.
fn covered(pkg: &str, list: &BTreeSet<String>) -> bool {
    if list.contains(pkg) {
        return true;
    }
    let prio = query(&["dpkg-query", "-W", "-f", "${Priority}", pkg]).unwrap_or_default();
    let essential = query(&["dpkg-query", "-W", "-f", "${Essential}", pkg]).unwrap_or_default();
    if prio == "required" || prio == "important" || essential == "yes" {
        return true;
    }
    list.iter().any(|l| {
        let deps = query(&["dpkg-query", "-W", "-f", "${Depends},${Pre-Depends}", l]);
        deps.unwrap_or_default()
            .split([',', '|'])
            .filter_map(|d| d.split_whitespace().next())
            .any(|d| d.split(':').next() == Some(pkg))
    })
}

fn have_dpkg() -> bool {
    if query(&["dpkg-query", "--version"]).is_none() {
        eprintln!("skipping: no dpkg here (the lists are of Debian packages)");
        return false;
    }
    true
}

/// Every file named `output` two levels under a `build` directory of target/.
fn build_script_outputs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == "output") && p.parent().is_some() {
            out.push(p);
        } else if depth > 0 && e.file_type().is_ok_and(|t| t.is_dir()) {
            build_script_outputs(&p, depth - 1, out);
        }
    }
}

/// The native libraries the build links from the host: (name, static). A static
/// library its build script built itself (found in a search dir under target/ that
/// script added, as libgit2-sys and libz-sys do) needs no package and is left out.
fn linked_libraries() -> BTreeSet<(String, bool)> {
    let mut outputs = vec![];
    build_script_outputs(&Path::new(REPO).join("target"), 4, &mut outputs);
    let mut libs = BTreeSet::new();
    for o in outputs {
        let text = fs::read_to_string(&o).unwrap_or_default();
        // Only dirs of the build itself (its OUT_DIR under target/): a search dir on the
        // host (libseccomp-sys's LIBSECCOMP_LIB_PATH) is the host's library.
        let target = Path::new(REPO).join("target");
        let own_dirs: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("cargo:rustc-link-search=native="))
            .filter(|d| Path::new(d).starts_with(&target))
            .collect();
        for l in text.lines() {
            let Some(spec) = l.strip_prefix("cargo:rustc-link-lib=") else {
                continue;
            };
            let (kind, name) = spec.split_once('=').unwrap_or(("dylib", spec));
            let built_here = kind == "static"
                && own_dirs
                    .iter()
                    .any(|d| Path::new(d).join(format!("lib{name}.a")).exists());
            if !built_here {
                libs.insert((name.to_string(), kind == "static"));
            }
        }
    }
    let config = fs::read_to_string(Path::new(REPO).join(".cargo/config.toml")).unwrap_or_default();
    if config.contains("+crt-static") {
        libs.insert(("c".to_string(), true));
    }
    libs
}

#[test]
fn build_packages_cover_the_linked_libraries() {
    if !have_dpkg() {
        return;
    }
    let libs = linked_libraries();
    assert!(
        libs.iter().any(|(n, _)| n == "seccomp"),
        "no build script output links seccomp: is target/ built? ({libs:?})"
    );
    let list = listed(&["build"]);
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/lib/x86_64-linux-gnu",
        "/usr/lib",
    ];
    let mut bad = vec![];
    for (name, stat) in &libs {
        let file = format!("lib{name}.{}", if *stat { "a" } else { "so" });
        let Some(path) = dirs
            .iter()
            .map(|d| Path::new(d).join(&file))
            .find(|p| p.exists())
        else {
            eprintln!("{file} is not on this machine (built elsewhere?): not checked");
            continue;
        };
        match owner(&path) {
            Some(pkg) if covered(&pkg, &list) => {}
            Some(pkg) => bad.push(format!("{} (package {pkg})", path.display())),
            None => bad.push(format!("{} (no package owns it)", path.display())),
        }
    }
    assert!(
        bad.is_empty(),
        "the build links, but deps.sh's build list lacks: {bad:?}"
    );
}

/// The programs the test sources run: the literal argument of each `Command::new("…")`
/// and `missing_tool("…"`, and each absolute path literal that is an executable here.
fn programs_in_tests() -> BTreeSet<String> {
    let mut files = vec![];
    let tests = Path::new(REPO).join("tests");
    for d in [tests.clone(), tests.join("common")] {
        for e in fs::read_dir(&d).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "rs") {
                files.push(e.path());
            }
        }
    }
    let mut progs = BTreeSet::new();
    for f in files {
        let src = fs::read_to_string(&f).unwrap();
        for call in ["Command::new(\"", "missing_tool(\""] {
            for rest in src.split(call).skip(1) {
                if let Some((name, _)) = rest.split_once('"') {
                    progs.insert(name.to_string());
                }
            }
        }
        for (i, lit) in src.split('"').enumerate() {
            let exe = ["/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"]
                .iter()
                .any(|d| lit.starts_with(d));
            if i % 2 == 1 && exe && Path::new(lit).is_file() {
                progs.insert(lit.to_string());
            }
        }
    }
    progs
}

fn on_path(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
}

#[test]
fn test_packages_cover_the_programs_the_tests_run() {
    if !have_dpkg() {
        return;
    }
    let list = listed(&["test"]);
    let mut checked = 0;
    let mut bad = vec![];
    for w in programs_in_tests() {
        let path = if w.starts_with('/') {
            Some(PathBuf::from(&w))
        } else {
            on_path(&w)
        };
        let Some(path) = path else { continue };
        let Some(pkg) = owner(&path) else {
            continue; // installed by hand (nook itself in /usr/local/bin, say)
        };
        checked += 1;
        if !covered(&pkg, &list) {
            bad.push(format!("{w} ({}, package {pkg})", path.display()));
        }
    }
    // The tests run at least sh, unshare and cc; none found means the scan is broken.
    assert!(
        checked >= 3,
        "only {checked} programs found in the tests' strings"
    );
    assert!(
        bad.is_empty(),
        "the tests run, but deps.sh's test list lacks: {bad:?}"
    );
}
