//! `exec`: a new process in a created or running container, checked against what
//! the kernel shows: its namespaces and cgroups against the init's (read on the
//! host), its identity, environment, cwd, capabilities and fds from inside.

mod common;

use std::fs;
use std::time::Duration;

use common::{alive, code, fails, ok, readlink, report, text, wait_until, Bundle};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);
const NS: [&str; 8] = ["mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time"];

fn pid_of(b: &Bundle, id: &str) -> i32 {
    b.state(id)["pid"].as_i64().expect("pid in state") as i32
}

/// create + start a container whose init sleeps; returns (id, init pid).
fn running(b: &Bundle) -> (String, i32) {
    b.args(&["sleep", "60"]);
    let id = b.id();
    b.create(&id);
    ok(b.nook(&["start", &id]));
    assert_eq!(b.status(&id).as_deref(), Some("running"));
    let pid = pid_of(b, &id);
    (id, pid)
}

/// `nook exec [FLAGS] ID ARGS...` (ARGS may start with flags for exec).
fn exec(b: &Bundle, id: &str, flags: &[&str], args: &[&str]) -> std::process::Output {
    let mut v = vec!["exec"];
    v.extend_from_slice(flags);
    v.push(id);
    v.extend_from_slice(args);
    b.nook(&v)
}

/// `exec --detach --pid-file` of `args`; the pid the file names.
fn exec_detached(b: &Bundle, id: &str, args: &[&str]) -> i32 {
    let pid_file = b
        .dir
        .join(format!("exec-{}.pid", args.join("_").replace('/', "")));
    let pf = pid_file.to_str().unwrap();
    ok(exec(b, id, &["--detach", "--pid-file", pf], args));
    fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn exec_report(b: &Bundle, id: &str, flags: &[&str]) -> std::collections::HashMap<String, String> {
    report(&ok(exec(b, id, flags, &["/bin/probe", "report"])))
}

fn ns_links(pid: i32) -> Vec<(String, String)> {
    NS.iter()
        .map(|ns| (ns.to_string(), readlink(&format!("/proc/{pid}/ns/{ns}"))))
        .collect()
}

fn mask(hex: &str) -> u64 {
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{hex:?}: {e}"))
}

const CAP_SYS_ADMIN: u64 = 1 << 21;

#[test]
fn joins_every_namespace_of_the_init() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-ns");
    let (id, init) = running(&b);
    let r = exec_report(&b, &id, &[]);
    for (ns, link) in ns_links(init) {
        assert_eq!(
            r[&format!("ns_{ns}")],
            link,
            "{ns} namespace differs from the init's"
        );
    }
    // In the container's pid namespace, but not its init; its parent (nook) is outside.
    assert_ne!(r["pid"], "1");
    assert_eq!(r["ppid"], "0");
    assert_eq!(r["fds"], "0,1,2", "only stdio may reach the process");
    assert_eq!(r["argv"], "/bin/probe report");
    // The init's config: runc's default capabilities, no_new_privs, HOME from /etc/passwd.
    assert_eq!(r["uid"], "0");
    assert_eq!(r["no_new_privs"], "1");
    assert_eq!(r["env_HOME"], "/root");
    assert_eq!(mask(&r["cap_eff"]) & CAP_SYS_ADMIN, 0);
    // It sees the init as pid 1.
    let init_cmd = ok(exec(
        &b,
        &id,
        &[],
        &["/bin/probe", "cat", "/proc/1/cmdline"],
    ))
    .stdout;
    assert_eq!(
        text(&init_cmd).replace('\0', " ").trim(),
        "/bin/probe sleep 60"
    );
}

#[test]
fn joins_the_cgroup_of_the_init() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-cg");
    let (id, init) = running(&b);
    // As the container sees it (through its cgroup namespace)...
    let own = ok(exec(
        &b,
        &id,
        &[],
        &["/bin/probe", "cat", "/proc/self/cgroup"],
    ))
    .stdout;
    let of_init = ok(exec(&b, &id, &[], &["/bin/probe", "cat", "/proc/1/cgroup"])).stdout;
    assert_eq!(text(&own), text(&of_init));
    // ...and as the host does, for a process that stays.
    let pid = exec_detached(&b, &id, &["/bin/probe", "sleep", "60"]);
    let host = |p: i32| fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(host(pid), host(init));
    assert!(host(init).contains(&id), "{}", host(init));
}

#[test]
fn detach_writes_the_pid_of_a_live_process_in_the_container() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-detach");
    let (id, init) = running(&b);
    let pid = exec_detached(&b, &id, &["/bin/probe", "sleep", "60"]);
    assert!(alive(pid), "the exec'd process is gone");
    assert_ne!(pid, init);
    assert_eq!(ns_links(pid), ns_links(init));
    let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(text(&cmd).replace('\0', " ").trim(), "/bin/probe sleep 60");
    // It survives nook, and dies with the container.
    ok(b.nook(&["delete", "--force", &id]));
    assert!(
        wait_until(WAIT, || !alive(pid)),
        "exec'd process outlived delete"
    );
}

#[test]
fn user_env_cwd_groups_and_caps() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-proc");
    let (id, _) = running(&b);
    let flags = [
        "--user",
        "1000:1000",
        "-g",
        "10",
        "--additional-gids",
        "20",
        "--env",
        "FOO=bar",
        "-e",
        "TERM=dumb",
        "--cwd",
        "/tmp",
    ];
    let r = exec_report(&b, &id, &flags);
    for (k, v) in [
        ("uid", "1000"),
        ("euid", "1000"),
        ("gid", "1000"),
        ("egid", "1000"),
    ] {
        assert_eq!(r[k], v, "{k}");
    }
    assert_eq!(r["groups"], "10,20");
    assert_eq!(r["env_FOO"], "bar");
    assert_eq!(r["env_TERM"], "dumb", "--env overrides the config's value");
    assert!(r["env_PATH"].contains("/bin"), "the config's env is kept");
    assert_eq!(
        r["env_HOME"], "/home/app",
        "HOME comes from the container's /etc/passwd"
    );
    assert_eq!(r["cwd"], "/tmp");

    // --user UID alone keeps the config's gid (runc).
    let r = exec_report(&b, &id, &["-u", "1000"]);
    assert_eq!((r["uid"].as_str(), r["gid"].as_str()), ("1000", "0"));

    let r = exec_report(&b, &id, &["--cap", "CAP_SYS_ADMIN", "-c", "CAP_NET_ADMIN"]);
    for set in ["cap_eff", "cap_prm", "cap_bnd"] {
        assert_ne!(mask(&r[set]) & CAP_SYS_ADMIN, 0, "{set}: {}", r[set]);
        assert_ne!(mask(&r[set]) & (1 << 12), 0, "{set}: {}", r[set]);
    }
    assert_eq!(mask(&r["cap_inh"]) & CAP_SYS_ADMIN, 0);
}

#[test]
fn no_new_privs_flag() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-nnp");
    b.config(|c| c["process"]["noNewPrivileges"] = json!(false));
    let (id, _) = running(&b);
    assert_eq!(exec_report(&b, &id, &[])["no_new_privs"], "0");
    assert_eq!(
        exec_report(&b, &id, &["--no-new-privs"])["no_new_privs"],
        "1"
    );
}

#[test]
fn exit_code_and_signals_propagate() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-exit");
    let (id, _) = running(&b);
    assert_eq!(code(&exec(&b, &id, &[], &["/bin/probe", "exit", "7"])), 7);
    assert_eq!(
        code(&exec(&b, &id, &[], &["/bin/probe", "kill-self", "15"])),
        128 + 15
    );

    // A signal to nook reaches the process.
    let mut s = b.spawn(b.command(&["exec", &id, "/bin/probe", "signals"]));
    assert!(
        s.wait_stdout("ready", WAIT),
        "probe never ready: {}",
        s.stderr()
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid()),
        nix::sys::signal::SIGUSR1,
    )
    .unwrap();
    let out = s.output_within(WAIT).expect("exec did not exit");
    assert_eq!(code(&out), 100 + libc::SIGUSR1, "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("got {}", libc::SIGUSR1)));
}

#[test]
fn process_file() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-pfile");
    let (id, _) = running(&b);
    let file = b.dir.join("process.json");
    let p = json!({
        "args": ["/bin/probe", "report"],
        "cwd": "/home/app",
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [30]},
        "env": ["ONLY=this", "PATH=/bin"],
        "noNewPrivileges": true,
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
    });
    fs::write(&file, p.to_string()).unwrap();
    let r = report(&ok(b.nook(&[
        "exec",
        "--process",
        file.to_str().unwrap(),
        &id,
    ])));
    assert_eq!((r["uid"].as_str(), r["gid"].as_str()), ("1000", "1000"));
    assert_eq!(r["groups"], "30");
    assert_eq!(r["cwd"], "/home/app");
    assert_eq!(r["env_ONLY"], "this");
    assert!(
        !r.contains_key("env_TERM"),
        "the config's env leaked into --process"
    );
    assert_eq!(r["cap_bnd"], format!("{:016x}", 1u64 << 5));

    // A bad field is named.
    fs::write(
        &file,
        r#"{"args":["/bin/probe"],"cwd":"/","user":{"uid":"root"}}"#,
    )
    .unwrap();
    let err = fails(&b.nook(&["exec", "-p", file.to_str().unwrap(), &id]));
    assert!(err.contains("user.uid"), "{err}");
    // A detached terminal process needs somewhere to send its pty.
    fs::write(
        &file,
        r#"{"args":["/bin/probe"],"cwd":"/","user":{"uid":0,"gid":0},"terminal":true}"#,
    )
    .unwrap();
    let err = fails(&b.nook(&["exec", "-d", "-p", file.to_str().unwrap(), &id]));
    assert!(err.contains("needs --console-socket"), "{err}");
}

#[test]
fn missing_program_uses_runc_wording() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-missing");
    let (id, _) = running(&b);
    let err = fails(&exec(&b, &id, &[], &["no-such-program"]));
    assert!(
        err.contains("exec: \"no-such-program\": executable file not found in $PATH"),
        "{err}"
    );
    let err = fails(&exec(&b, &id, &[], &["/bin/nope"]));
    assert!(
        err.contains("exec: \"/bin/nope\": stat /bin/nope: no such file or directory"),
        "{err}"
    );
    let err = fails(&exec(
        &b,
        &id,
        &["--cwd", "/nope"],
        &["/bin/probe", "report"],
    ));
    assert!(err.contains("process.cwd /nope"), "{err}");
    let err = fails(&exec(&b, &id, &["-d", "-t"], &["/bin/probe", "report"]));
    assert!(err.contains("needs --console-socket"), "{err}");
}

#[test]
fn stopped_paused_and_unknown_containers_are_refused() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-stopped");
    let (id, init) = running(&b);

    ok(b.nook(&["pause", &id]));
    let err = fails(&exec(&b, &id, &[], &["/bin/probe", "hello"]));
    assert!(err.contains("cannot exec in a paused container"), "{err}");
    ok(b.nook(&["resume", &id]));

    ok(b.nook(&["kill", &id, "KILL"]));
    assert!(wait_until(WAIT, || b.status(&id).as_deref() == Some("stopped")));
    let out = exec(&b, &id, &[], &["/bin/probe", "sleep", "60"]);
    let err = fails(&out);
    assert!(err.contains("is stopped"), "{err}");
    assert!(text(&out.stdout).is_empty());
    let left: Vec<i32> = b.processes().into_iter().filter(|&p| p != init).collect();
    assert!(left.is_empty(), "processes left: {left:?}");

    let err = fails(&exec(
        &b,
        "no-such-container",
        &[],
        &["/bin/probe", "hello"],
    ));
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn exec_into_a_created_container() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-created");
    b.args(&["hello"]);
    let id = b.id();
    let log = b.create(&id);
    let init = pid_of(&b, &id);
    let r = exec_report(&b, &id, &[]);
    for (ns, link) in ns_links(init) {
        assert_eq!(r[&format!("ns_{ns}")], link, "{ns}");
    }
    assert_eq!(b.status(&id).as_deref(), Some("created"));
    assert!(
        !fs::read_to_string(&log).unwrap().contains("hello"),
        "init ran"
    );
}

#[test]
fn preserved_fds() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-fds");
    let (id, _) = running(&b);
    let f = fs::File::open("/etc/hostname").unwrap();
    let mut c = b.command(&["exec", "--preserve-fds", "2", &id, "/bin/probe", "report"]);
    let fd = {
        use std::os::fd::AsRawFd;
        f.as_raw_fd()
    };
    // SAFETY: dup2 and fcntl in the forked child before exec touch no memory.
    unsafe {
        use std::os::unix::process::CommandExt;
        c.pre_exec(move || {
            // dup2 onto itself would keep close-on-exec: clear it instead.
            let r = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut s = b.spawn(c);
    let out = s.output_within(common::TIMEOUT).expect("exec timed out");
    // fd 4 was not open in nook: nothing of nook's may take its place.
    assert_eq!(report(&ok(out))["fds"], "0,1,2,3");
}

#[test]
fn seccomp_of_the_container_applies() {
    if common::skip() {
        return;
    }
    for nnp in [true, false] {
        let b = Bundle::new("exec-seccomp");
        b.config(|c| {
            c["process"]["noNewPrivileges"] = json!(nnp);
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
            });
        });
        let (id, _) = running(&b);
        let r = exec_report(&b, &id, &[]);
        assert_eq!(
            r["cwd"], "error",
            "getcwd must be denied (nnp {nnp}): {r:?}"
        );
    }
}

#[test]
fn user_and_time_namespaces_are_joined() {
    if common::skip() {
        return;
    }
    let b = Bundle::new("exec-userns");
    b.in_user_namespace();
    b.config(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "time"}));
    });
    let (id, init) = running(&b);
    let r = exec_report(&b, &id, &["--user", "1000:1000"]);
    for (ns, link) in ns_links(init) {
        assert_eq!(r[&format!("ns_{ns}")], link, "{ns}");
    }
    assert_eq!((r["uid"].as_str(), r["gid"].as_str()), ("1000", "1000"));
    let pid = exec_detached(&b, &id, &["/bin/probe", "sleep", "60"]);
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.contains("100000"),
        "host uid of the exec'd root: {uid_line}"
    );
}
