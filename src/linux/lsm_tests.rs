use super::*;

fn sysfs(apparmor: Option<&str>) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("nook-lsm-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("module/apparmor/parameters")).unwrap();
    // An "enforce" file on a filesystem that is not selinuxfs does not count.
    std::fs::create_dir_all(dir.join("fs/selinux")).unwrap();
    std::fs::write(dir.join("fs/selinux/enforce"), "1\n").unwrap();
    if let Some(v) = apparmor {
        std::fs::write(dir.join("module/apparmor/parameters/enabled"), v).unwrap();
    }
    dir
}

#[test]
fn host_detection_reads_sysfs() {
    for (file, want) in [(Some("Y\n"), true), (Some("N\n"), false), (None, false)] {
        let dir = sysfs(file);
        let h = Host::at(&dir);
        assert_eq!(h.apparmor, want, "enabled file {file:?}");
        assert!(!h.selinux, "a plain directory is not selinuxfs");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

fn process(extra: serde_json::Value) -> Process {
    let mut v = serde_json::json!({"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["x"]});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

#[test]
fn a_missing_lsm_names_the_field() {
    let none = Host {
        apparmor: false,
        selinux: false,
    };
    let p = process(serde_json::json!({"apparmorProfile": "nook-test"}));
    let e = exec_labels(none, &p).unwrap_err();
    assert_eq!(e.field, "process.apparmorProfile");
    assert!(e.to_string().contains("AppArmor is not enabled"), "{e}");
    let p = process(serde_json::json!({"selinuxLabel": "system_u:system_r:container_t:s0"}));
    let e = exec_labels(none, &p).unwrap_err();
    assert_eq!(e.field, "process.selinuxLabel");
    let e =
        check_mount_label(none, &Some("system_u:object_r:container_file_t:s0".into())).unwrap_err();
    assert_eq!(e.field, "linux.mountLabel");
    // Empty means unset, as in runc.
    let p = process(serde_json::json!({"apparmorProfile": "", "selinuxLabel": ""}));
    assert_eq!(exec_labels(none, &p).unwrap(), vec![]);
    assert!(check_mount_label(none, &Some(String::new())).is_ok());
}

#[test]
fn labels_for_an_enabled_host() {
    let both = Host {
        apparmor: true,
        selinux: true,
    };
    let p =
        process(serde_json::json!({"apparmorProfile": "nook-test", "selinuxLabel": "a:b:c:s0"}));
    assert_eq!(
        exec_labels(both, &p).unwrap(),
        vec![
            ExecLabel::AppArmor("nook-test".into()),
            ExecLabel::SeLinux("a:b:c:s0".into())
        ]
    );
    let p = process(serde_json::json!({"apparmorProfile": "x\nchangehat y"}));
    assert!(
        exec_labels(both, &p).is_err(),
        "a newline would inject a command"
    );
}

#[test]
fn mount_label_option() {
    let l = "system_u:object_r:container_file_t:s0:c1,c2";
    let v = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let want = format!("context=\"{l}\"");
    assert_eq!(
        mount_option("tmpfs", &v(&["mode=755"]), Some(l)),
        Some(want.clone())
    );
    assert_eq!(mount_option("devpts", &[], Some(l)), Some(want.clone()));
    assert_eq!(mount_option("proc", &[], Some(l)), None);
    assert_eq!(mount_option("sysfs", &[], Some(l)), None);
    assert_eq!(mount_option("tmpfs", &v(&["context=mine"]), Some(l)), None);
    assert_eq!(mount_option("tmpfs", &[], None), None);
    let mounts: Vec<Mount> = serde_json::from_value(serde_json::json!([
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["mode=755"]},
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/x", "type": "tmpfs", "source": "/y", "options": ["rbind"]},
    ]))
    .unwrap();
    let out = label_mounts(&mounts, l);
    assert_eq!(
        out[0].options().as_deref().unwrap(),
        v(&["mode=755", &want])
    );
    assert_eq!(out[1], mounts[1]);
    assert_eq!(out[2], mounts[2], "a bind keeps its source's label");
}
