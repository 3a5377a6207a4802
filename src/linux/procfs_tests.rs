use super::*;

#[test]
fn self_and_thread_dirs_name_this_process() {
    // Private when allowed (root), else the checked /proc: both show this pid namespace.
    let p = Procfs::new(3).unwrap();
    if nix::unistd::geteuid().is_root() {
        assert!(p.is_private(), "root may make a private procfs");
    }
    let pid = std::process::id().to_string();
    assert_eq!(p.self_dir().unwrap(), pid);
    let tid = nix::unistd::gettid().to_string();
    assert_eq!(p.thread_dir().unwrap(), format!("{pid}/task/{tid}"));
    let status = p.read("reading status", &format!("{pid}/status")).unwrap();
    assert!(status.contains(&format!("\nPid:\t{pid}\n")), "{status}");
    assert_eq!(
        p.read("reading", "sys/kernel/ostype").unwrap().trim(),
        "Linux"
    );
}

#[test]
fn symlinks_are_refused() {
    let p = Procfs::at(Path::new("/proc")).unwrap();
    let e = p
        .open("reading", "self/status", libc::O_RDONLY)
        .unwrap_err();
    assert_eq!(e.errno, Some(libc::ELOOP), "{e}");
    assert!(e.to_string().contains("/proc/self/status"), "{e}");
    let e = p
        .open("reading", "../etc/passwd", libc::O_RDONLY)
        .unwrap_err();
    assert_eq!(e.errno, Some(libc::EXDEV), "{e}");
}

#[test]
fn only_a_procfs_root_is_accepted() {
    assert!(
        Procfs::at(Path::new("/proc/sys")).is_err(),
        "a subdirectory"
    );
    assert!(Procfs::at(Path::new("/")).is_err(), "another filesystem");
    assert!(Procfs::at(Path::new("/proc/self")).is_err(), "a symlink");
}

#[test]
#[ignore]
fn bench_private_instance() {
    let n = 2000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let p = Procfs::new(3).unwrap();
        let d = p.thread_dir().unwrap();
        p.write(
            "w",
            &format!("{}/oom_score_adj", p.self_dir().unwrap()),
            b"0",
        )
        .unwrap();
        drop(d);
    }
    eprintln!(
        "private procfs + thread_dir + one write: {:?} each",
        t.elapsed() / n
    );
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::fs::write("/proc/self/oom_score_adj", "0").unwrap();
    }
    eprintln!("plain write: {:?} each", t.elapsed() / n);
}
