//! Unit tests of inject.rs.
use super::*;

fn spec(ann: &[(&str, &str)]) -> Spec {
    let mut s = Spec::default();
    if !ann.is_empty() {
        s.set_annotations(Some(
            ann.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
    }
    s
}

fn opts(add: &[&str], remove: &[&str]) -> InjectOptions {
    InjectOptions {
        add: add.iter().map(|s| s.to_string()).collect(),
        remove: remove.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn selection() {
    let s = spec(&[(annotations::INJECT, "hosts, hostname,,passwd")]);
    let got = selected(&s, &opts(&["nsswitch,localtime"], &["hostname"])).unwrap();
    let want = [Kind::Hosts, Kind::Passwd, Kind::Nsswitch, Kind::Localtime];
    assert_eq!(got.into_iter().collect::<Vec<_>>(), want);
    assert!(selected(&spec(&[]), &opts(&[], &[])).unwrap().is_empty());
}

#[test]
fn unknown_names_are_named() {
    let s = spec(&[(annotations::INJECT, "hosts,bogus")]);
    let e = selected(&s, &opts(&[], &[])).unwrap_err().to_string();
    assert!(
        e.contains("\"bogus\"") && e.contains(annotations::INJECT),
        "{e}"
    );
    let e = selected(&spec(&[]), &opts(&["nope"], &[]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"nope\"") && e.contains("--inject"), "{e}");
    let e = selected(&spec(&[]), &opts(&[], &["group"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"group\"") && e.contains("--no-inject"), "{e}");
    // --no-inject drops an unknown name the annotation has (a newer bundle's).
    let got = selected(&s, &opts(&[], &["bogus"])).unwrap();
    assert_eq!(got.into_iter().collect::<Vec<_>>(), [Kind::Hosts]);
}

#[test]
fn nothing_asked_costs_nothing() {
    // A state dir that does not exist: nothing may be made there.
    let state = Path::new("/nonexistent/nook-state");
    let got = plan(
        &spec(&[]),
        Path::new("/nonexistent"),
        state,
        "c",
        &opts(&[], &[]),
    );
    assert!(got.unwrap().is_empty());
}

#[test]
fn passwd_and_group_lines() {
    let (p, g) = passwd_group(1000, 1000, &[2000, 1000, 0]);
    assert_eq!(
        p,
        "root:x:0:0:root:/root:/sbin/nologin\n\
         nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n\
         app:x:1000:1000::/:/sbin/nologin\n"
    );
    assert_eq!(
        g,
        "root:x:0:app\nnobody:x:65534:\napp:x:1000:\ng2000:x:2000:app\n"
    );
    let (p, g) = passwd_group(0, 0, &[]);
    assert!(!p.contains("app"));
    assert_eq!(g, "root:x:0:\nnobody:x:65534:\n");
    let (p, g) = passwd_group(65534, 65534, &[]);
    assert!(!p.contains("app"));
    assert_eq!(g, "root:x:0:\nnobody:x:65534:\n");
    let (_, g) = passwd_group(0, 5, &[7]);
    assert_eq!(g, "root:x:0:\nnobody:x:65534:\napp:x:5:\ng7:x:7:root\n");
}

#[test]
fn hosts_file() {
    let h = hosts("box");
    assert!(h.contains("127.0.0.1\tlocalhost\n"));
    assert!(h.contains("::1\tlocalhost ip6-localhost\n"));
    assert!(h.contains("127.0.1.1\tbox\n"));
    assert!(checked_hostname("a b").is_err());
    assert!(checked_hostname("a\nb").is_err());
    assert!(checked_hostname("web-1.example").is_ok());
}

#[test]
fn resolv_choice() {
    let stub = "# stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
    let up = "nameserver 192.168.1.1\nnameserver 2001:db8::53\nsearch lan\n";
    let real = "nameserver 10.0.0.2\n";
    let host = || Resolv::Host(PathBuf::from(HOST_RESOLV));
    // Not a stub, or the host's network: the host's file.
    assert_eq!(choose_resolv(real, Some(up), true), host());
    assert_eq!(choose_resolv(stub, Some(up), false), host());
    assert_eq!(choose_resolv("search x\n", None, true), host());
    // Mixed loopback and real servers: the real ones still work.
    let mixed = "nameserver 127.0.0.53\nnameserver 10.0.0.2\n";
    assert_eq!(choose_resolv(mixed, None, true), host());
    // A stub in a network namespace of its own: the upstream file.
    assert_eq!(
        choose_resolv(stub, Some(up), true),
        Resolv::Host(PathBuf::from(UPSTREAM_RESOLV))
    );
    // No usable upstream file: the host's without loopback nameservers.
    for upstream in [None, Some("nameserver 127.0.0.1\n"), Some("")] {
        let Resolv::Generated(text) = choose_resolv(stub, upstream, true) else {
            panic!("expected a generated file");
        };
        assert!(nameservers(&text).is_empty(), "{text}");
        assert!(
            text.contains("options edns0 trust-ad\nsearch lan\n"),
            "{text}"
        );
    }
    let v6 = "nameserver ::1\nnameserver 127.0.0.1\n";
    assert!(only_loopback(v6));
    assert!(is_loopback("::1%lo"));
    assert!(!is_loopback("fe80::1%eth0"));
}

#[test]
fn host_libs_annotation() {
    let a = annotations::HOST_LIBS;
    assert!(host_libs(&spec(&[])).unwrap_err().to_string().contains(a));
    let e = host_libs(&spec(&[(a, "not json")])).unwrap_err();
    assert!(e.to_string().contains("JSON"), "{e}");
    let e = host_libs(&spec(&[(a, r#"["lib/x.so"]"#)])).unwrap_err();
    assert!(e.to_string().contains("lib/x.so"), "{e}");
    let e = host_libs(&spec(&[(a, r#"["/lib/../etc/shadow"]"#)])).unwrap_err();
    assert!(e.to_string().contains(".."), "{e}");
    let e = host_libs(&spec(&[(a, r#"["/nonexistent/libz.so"]"#)])).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/libz.so"), "{e}");
}

#[test]
fn template_annotation_must_stay_inside() {
    let o = opts(&[], &[]);
    for bad in ["../t", "/etc", "a/../../b"] {
        let s = spec(&[(annotations::TEMPLATES, bad)]);
        let e = template_dir(&s, Path::new("/nonexistent"), &o).unwrap_err();
        assert!(e.to_string().contains(annotations::TEMPLATES), "{e}");
    }
    // A named directory must exist; the default one is optional.
    let s = spec(&[(annotations::TEMPLATES, "conf")]);
    assert!(template_dir(&s, Path::new("/nonexistent"), &o).is_err());
    assert!(template_dir(&spec(&[]), Path::new("/nonexistent"), &o)
        .unwrap()
        .is_none());
}
