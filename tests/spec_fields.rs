//! Runtime-spec 1.2 fields nook applies, each checked from inside the container (issue
//! 14): process.ioPriority, process.scheduler (the spec's flag names), process.
//! execCPUAffinity (init and exec), linux.personality, linux.memoryPolicy, and the
//! nosymfollow / rnosymfollow mount options. And their bad values: an error naming the
//! field, before anything is made.
//!
//! Needs root; skipped with a message otherwise.

mod common;

use serde_json::json;

use common::{ok, text, Bundle};

/// Run the probe with `args` in a container whose config `edit` changed; its stdout.
fn probe_with(b: &Bundle, edit: impl FnOnce(&mut serde_json::Value), args: &[&str]) -> String {
    b.config(edit);
    text(&ok(b.probe(args)).stdout)
}

#[test]
fn io_priority_is_set() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("io-priority");
    // ioprio_get(IOPRIO_WHO_PROCESS, self): class << 13 | priority.
    let out = probe_with(
        &b,
        |c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 3}),
        &["syscall", "252", "1", "0"],
    );
    assert_eq!(out.trim(), format!("ret:{}", 2 << 13 | 3));
    let out = probe_with(
        &b,
        |c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0}),
        &["syscall", "252", "1", "0"],
    );
    assert_eq!(out.trim(), format!("ret:{}", 3 << 13));
}

#[test]
fn scheduler_policy_nice_and_flags_are_set() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("scheduler");
    let sched = json!({"policy": "SCHED_BATCH", "nice": 5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
    // sched_getscheduler(self): the policy, with SCHED_RESET_ON_FORK (0x40000000).
    let out = probe_with(
        &b,
        |c| c["process"]["scheduler"] = sched.clone(),
        &["syscall", "145", "0"],
    );
    assert_eq!(out.trim(), format!("ret:{}", 0x4000_0000 | 3));
    // The nice value: field 19 of /proc/self/stat.
    let stat = text(&ok(b.probe(&["cat", "/proc/self/stat"])).stdout);
    let after = stat.rsplit_once(')').unwrap().1;
    assert_eq!(after.split_whitespace().nth(16), Some("5"), "{stat}");
    let out = probe_with(
        &b,
        |c| c["process"]["scheduler"] = json!({"policy": "SCHED_IDLE"}),
        &["syscall", "145", "0"],
    );
    assert_eq!(out.trim(), "ret:5");
}

#[test]
fn personality_is_set() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("personality");
    // personality(0xffffffff) reads it: PER_LINUX32 is 8.
    let out = probe_with(
        &b,
        |c| c["linux"]["personality"] = json!({"domain": "LINUX32"}),
        &["syscall", "135", "0xffffffff"],
    );
    assert_eq!(out.trim(), "ret:8");
}

#[test]
fn memory_policy_is_set() {
    if common::skip() {
        return;
    }
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        eprintln!("skipping: this kernel has no NUMA support (/proc/self/numa_maps)");
        return;
    }
    let b = Bundle::new("mempolicy");
    // numa_maps names each mapping's policy: the process's own is now bind:0.
    let out = probe_with(
        &b,
        |c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"}),
        &["cat", "/proc/self/numa_maps"],
    );
    assert!(out.lines().any(|l| l.contains(" bind:0")), "{out}");
}

#[test]
fn exec_cpu_affinity_applies_to_init_and_exec() {
    if common::skip() {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        eprintln!("skipping: needs 2 CPUs to tell an affinity from the default");
        return;
    }
    let last = (cpus - 1).to_string();
    let b = Bundle::new("affinity");
    let out = probe_with(
        &b,
        |c| c["process"]["execCPUAffinity"] = json!({"initial": "0", "final": last}),
        &["cat", "/proc/self/status"],
    );
    assert!(
        out.contains(&format!("Cpus_allowed_list:\t{last}\n")),
        "{out}"
    );
    // An exec'd process with its own: --process with execCPUAffinity.
    b.args(&["sleep", "60"]);
    let id = b.id();
    b.create(&id);
    ok(b.nook(&["start", &id]));
    let process = json!({"args": ["/bin/probe", "cat", "/proc/self/status"], "cwd": "/",
        "user": {"uid": 0, "gid": 0}, "execCPUAffinity": {"final": "0"}});
    let pf = b.dir.join("process.json");
    std::fs::write(&pf, process.to_string()).unwrap();
    let out = text(&ok(b.nook(&["exec", "--process", pf.to_str().unwrap(), &id])).stdout);
    assert!(out.contains("Cpus_allowed_list:\t0\n"), "{out}");
    ok(b.nook(&["delete", "--force", &id]));
}

#[test]
fn nosymfollow_mounts_do_not_follow_symlinks() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("nosymfollow");
    let src = b.dir.join("vol");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("file"), "content\n").unwrap();
    std::os::unix::fs::symlink("file", src.join("link")).unwrap();
    std::fs::write(src.join("sub/file"), "deep\n").unwrap();
    std::os::unix::fs::symlink("file", src.join("sub/link")).unwrap();
    for (opts, path, want) in [
        (json!(["bind"]), "/mnt/link", "content"),
        (json!(["bind", "nosymfollow"]), "/mnt/link", "error:ELOOP"),
        (
            json!(["rbind", "rnosymfollow"]),
            "/mnt/sub/link",
            "error:ELOOP",
        ),
    ] {
        b.config(|c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt", "type": "bind",
                "source": src.to_str().unwrap(), "options": opts,
            }));
        });
        let out = text(&b.probe(&["cat", path]).stdout);
        assert!(out.contains(want), "{opts} {path}: {out}");
        b.config(|c| {
            c["mounts"].as_array_mut().unwrap().pop();
        });
    }
}

#[test]
fn bad_values_are_refused_naming_the_field() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("fields-bad");
    for (edit, field) in [
        (
            json!({"process": {"scheduler": {"policy": "SCHED_FIFO", "priority": 0}}}),
            "process.scheduler.priority",
        ),
        (
            json!({"process": {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}}),
            "process.ioPriority.priority",
        ),
        (
            json!({"process": {"execCPUAffinity": {"final": "0-100000"}}}),
            "process.execCPUAffinity.final",
        ),
        (
            json!({"linux": {"memoryPolicy": {"mode": "MPOL_BIND"}}}),
            "linux.memoryPolicy",
        ),
        (
            json!({"linux": {"personality": {"domain": "LINUX", "flags": ["x"]}}}),
            "linux.personality.flags",
        ),
    ] {
        b.config(|c| {
            for (k, v) in edit.as_object().unwrap() {
                for (k2, v2) in v.as_object().unwrap() {
                    c[k][k2] = v2.clone();
                }
            }
        });
        let id = b.id();
        let out = b.nook(&["create", &id, "--bundle", b.path_str()]);
        let err = text(&out.stderr);
        assert!(
            !out.status.success() && err.contains(field),
            "{edit}: {err}"
        );
        b.assert_clean(&id);
        b.config(|c| {
            for (k, v) in edit.as_object().unwrap() {
                for k2 in v.as_object().unwrap().keys() {
                    c[k].as_object_mut().unwrap().remove(k2);
                }
            }
        });
    }
}

#[test]
fn intel_rdt_is_refused_not_ignored() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("fields-refused");
    b.config(|c| c["linux"]["intelRdt"] = json!({"closID": "nook", "l3CacheSchema": "L3:0=f"}));
    let id = b.id();
    let out = b.nook(&["create", &id, "--bundle", b.path_str()]);
    let err = text(&out.stderr);
    assert!(
        !out.status.success() && err.contains("linux.intelRdt"),
        "{err}"
    );
    b.assert_clean(&id);
}

#[test]
fn unknown_fields_are_refused_naming_them() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("fields-unknown");
    for (edit, field) in [
        (json!({"process": {"frobnicate": 1}}), "process.frobnicate"),
        (
            json!({"linux": {"resources": {"memory": {"limitt": 5}}}}),
            "linux.resources.memory.limitt",
        ),
    ] {
        let saved = std::fs::read_to_string(b.path.join("config.json")).unwrap();
        b.config(|c| {
            fn merge(d: &mut serde_json::Value, s: &serde_json::Value) {
                match (d, s) {
                    (serde_json::Value::Object(d), serde_json::Value::Object(s)) => {
                        for (k, v) in s {
                            merge(d.entry(k.clone()).or_insert(json!({})), v);
                        }
                    }
                    (d, s) => *d = s.clone(),
                }
            }
            merge(c, &edit);
        });
        let id = b.id();
        let out = b.nook(&["create", &id, "--bundle", b.path_str()]);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{edit} accepted");
        assert!(
            err.contains(field) && err.contains("unknown field"),
            "{edit}: {err}"
        );
        b.assert_clean(&id);
        std::fs::write(b.path.join("config.json"), saved).unwrap();
    }
    // Another platform's section is nothing to a Linux runtime: accepted, as runc does.
    b.config(|c| c["windows"] = json!({"layerFolders": ["x"]}));
    ok(b.probe(&["hello"]));
}

/// A veth pair's end on the host, removed when dropped (with the container's namespace
/// gone, the moved end and so the pair are usually gone already).
struct Veth(String);

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn net_devices_are_moved_in_and_renamed() {
    if common::skip() || common::missing_tool("ip", "package iproute2") {
        return;
    }
    let n = std::process::id() % 100000;
    let (a, peer) = (format!("nkv{n}a"), format!("nkv{n}b"));
    let st = std::process::Command::new("ip")
        .args(["link", "add", &a, "type", "veth", "peer", "name", &peer])
        .status()
        .unwrap();
    assert!(st.success(), "ip link add veth");
    let _veth = Veth(peer.clone());
    let b = Bundle::new("netdev");
    b.config(|c| c["linux"]["netDevices"] = json!({&a: {"name": "eth9"}}));
    // The container's own /proc/net/dev: its network namespace's devices.
    let out = text(&ok(b.probe(&["cat", "/proc/net/dev"])).stdout);
    assert!(out.contains("eth9:"), "{out}");
    assert!(!out.contains(&format!("{a}:")), "{out}");
    // The host no longer has it (it went with the container's namespace).
    let host = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert!(!host.contains(&format!("{a}:")), "{a} is still on the host");

    // Bad names and a missing device: refused naming the field, nothing left.
    for (devs, field) in [
        (json!({"no-such-dev9": {}}), "linux.netDevices.no-such-dev9"),
        (json!({"x": {"name": "a/b"}}), "linux.netDevices.x"),
    ] {
        b.config(|c| c["linux"]["netDevices"] = devs.clone());
        let id = b.id();
        let out = b.nook(&["create", &id, "--bundle", b.path_str()]);
        let err = text(&out.stderr);
        assert!(
            !out.status.success() && err.contains(field),
            "{devs}: {err}"
        );
        b.assert_clean(&id);
    }
}

#[test]
fn every_rlimit_type_is_set() {
    use nix::sys::resource::{getrlimit, Resource};
    if common::skip() {
        return;
    }
    // Each type lowered below the host's hard limit (raising one needs CAP_SYS_RESOURCE,
    // which this host's bounding set lacks), soft below hard.
    let types = [
        ("RLIMIT_CPU", "cpu", Resource::RLIMIT_CPU),
        ("RLIMIT_FSIZE", "fsize", Resource::RLIMIT_FSIZE),
        ("RLIMIT_DATA", "data", Resource::RLIMIT_DATA),
        ("RLIMIT_STACK", "stack", Resource::RLIMIT_STACK),
        ("RLIMIT_CORE", "core", Resource::RLIMIT_CORE),
        ("RLIMIT_RSS", "rss", Resource::RLIMIT_RSS),
        ("RLIMIT_NPROC", "nproc", Resource::RLIMIT_NPROC),
        ("RLIMIT_NOFILE", "nofile", Resource::RLIMIT_NOFILE),
        ("RLIMIT_MEMLOCK", "memlock", Resource::RLIMIT_MEMLOCK),
        ("RLIMIT_AS", "as", Resource::RLIMIT_AS),
        ("RLIMIT_LOCKS", "locks", Resource::RLIMIT_LOCKS),
        (
            "RLIMIT_SIGPENDING",
            "sigpending",
            Resource::RLIMIT_SIGPENDING,
        ),
        ("RLIMIT_MSGQUEUE", "msgqueue", Resource::RLIMIT_MSGQUEUE),
        ("RLIMIT_NICE", "nice", Resource::RLIMIT_NICE),
        ("RLIMIT_RTPRIO", "rtprio", Resource::RLIMIT_RTPRIO),
        ("RLIMIT_RTTIME", "rttime", Resource::RLIMIT_RTTIME),
    ];
    let mut limits = vec![];
    let mut want = vec![];
    for (i, (typ, key, res)) in types.iter().enumerate() {
        let (_, hard) = getrlimit(*res).unwrap();
        // Distinct values, large enough for the probe to run (stack, as, data, nofile).
        let base: u64 = match *key {
            "stack" => 8 << 20,
            "as" | "data" | "rss" | "memlock" | "fsize" => 1 << 30,
            "nofile" => 512,
            "nproc" | "sigpending" => 4096,
            _ => 100,
        };
        let h = hard.min(base + i as u64 * 2);
        let s = h
            .saturating_sub(1)
            .max(if *key == "nofile" { 64 } else { 0 });
        limits.push(json!({"type": typ, "soft": s, "hard": h}));
        want.push((key.to_string(), format!("{s}:{h}")));
    }
    let b = Bundle::new("rlimits-all");
    b.config(|c| c["process"]["rlimits"] = json!(limits));
    let r = common::report(&ok(b.probe(&["report"])));
    for (key, v) in want {
        assert_eq!(r[&format!("rlimit_{key}")], v, "{key}");
    }
}
