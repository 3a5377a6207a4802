//! The Kubernetes path: containerd's CRI plugin with a runtime handler `nook` (the runc v2
//! shim with BinaryName = nook, what a RuntimeClass with `handler: nook` selects), driven
//! over containerd's socket by a CRI client as kubelet drives it: a pod sandbox (a pause
//! image built here from the static probe and imported), containers of a locally imported
//! app image with the pod spec's resources and security context, ExecSync, status with
//! exit codes, stop and removal. Host networking (no CNI plugin). On a host where systemd
//! is PID 1 (the test-vm guest) the shim uses systemd's cgroup driver, kubelet's default
//! there.
//!
//! Needs root, containerd and ctr; skipped with a message otherwise. NOOK_CLIENT_RUNTIME
//! (e.g. runc's path) runs the same test through another runtime.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tonic::transport::{Channel, Endpoint, Uri};

use common::containerd::Daemon;
use common::{ok, text, Bundle, RmDirs};

const PAUSE_IMAGE: &str = "localhost/nook-test/pause:1";
const APP_IMAGE: &str = "localhost/nook-test/app:1";
/// The runtime handler's name, as a RuntimeClass's `handler` names it.
const HANDLER: &str = "nook";

fn systemd_is_init() -> bool {
    let pid1 = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    pid1.trim() == "systemd" && Path::new("/run/systemd/system").is_dir()
}

/// Whether this process may lower an oom_score_adj (CAP_SYS_RESOURCE, bit 24). Where it
/// may not (this repo's CI host lacks it in the bounding set) the pause container's -998
/// would fail in any runtime, so the CRI plugin is told to clamp scores to its own
/// (`restrict_oom_score_adj`, its setting for such hosts).
fn has_cap_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    eff & (1 << 24) != 0
}

/// A private containerd with the CRI plugin on, its root, state, socket, images and the
/// handler's state root in the test's temp dir; stopped (and its /run dirs tidied) when
/// dropped.
struct Containerd {
    b: Bundle,
    d: Daemon,
    /// The state root the shim hands the runtime (`--root`), per containerd namespace.
    runtime_root: PathBuf,
    systemd: bool,
    /// kubelet's cgroup parent for the test's pod: a directory (cgroupfs) or a slice
    /// (systemd), removed when dropped.
    parent: String,
}

impl Containerd {
    fn start(name: &str) -> Option<Containerd> {
        if common::skip()
            || common::missing_tool("containerd", "package containerd")
            || common::missing_tool("ctr", "package containerd")
            || common::missing_tool("containerd-shim-runc-v2", "package containerd")
        {
            return None;
        }
        let b = Bundle::new(name);
        let systemd = systemd_is_init();
        let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
        let config = format!(
            r#"[plugins."io.containerd.internal.v1.opt"]
  path = "{{base}}/opt"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  stream_server_port = "0"
  restrict_oom_score_adj = {restrict_oom}
[{cri}.cni]
  bin_dir = "{{base}}/cni"
  conf_dir = "{{base}}/cni"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.{HANDLER}]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.{HANDLER}.options]
  BinaryName = "{runtime}"
  Root = "{{base}}/runtime-root"
  SystemdCgroup = {systemd}
"#,
            runtime = common::client_runtime(),
            restrict_oom = !has_cap_sys_resource(),
        );
        // An empty CNI dir of its own: pods here use the host's network.
        std::fs::create_dir_all(b.dir.join("containerd/cni")).unwrap();
        let d = Daemon::start(&b, &config);
        let log = d.log();
        assert!(
            !log.contains("failed to load plugin io.containerd.grpc.v1.cri"),
            "containerd's CRI plugin did not load: {log}"
        );
        Some(Containerd {
            runtime_root: d.path("runtime-root/k8s.io"),
            b,
            d,
            systemd,
            parent: if systemd {
                format!("nookcri{}.slice", std::process::id())
            } else {
                format!("/nook-cri-{}", std::process::id())
            },
        })
    }

    /// `ctr` in the CRI plugin's namespace.
    fn ctr(&self, args: &[&str]) -> Output {
        let mut a = vec!["--namespace", "k8s.io"];
        a.extend_from_slice(args);
        self.d.ctr(&self.b, &a)
    }

    /// Build an OCI image of the bundle's rootfs (the static probe, /etc/passwd) with
    /// this entrypoint and default arguments, and import it as `name` (no registry, no network).
    fn import_image(&self, name: &str, entrypoint: &[&str], cmd: &[&str]) {
        let dir = self
            .d
            .path(format!("image-{}", name.replace(['/', ':'], "_")));
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let layer = dir.join("layer.tar");
        let st = Command::new("tar")
            .args(["--numeric-owner", "-C"])
            .arg(&self.b.rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg(".")
            .status()
            .expect("running tar");
        assert!(st.success(), "tar of the image layer failed");
        let blob = |bytes: &[u8]| -> Value {
            let digest = format!("sha256:{}", hex(&Sha256::digest(bytes)));
            std::fs::write(blobs.join(&digest[7..]), bytes).unwrap();
            json!({"digest": digest, "size": bytes.len()})
        };
        let with_type = |mut d: Value, t: &str| {
            d["mediaType"] = json!(t);
            d
        };
        let layer = blob(&std::fs::read(&layer).unwrap());
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Entrypoint": entrypoint, "Cmd": cmd, "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
        });
        let config = blob(config.to_string().as_bytes());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": with_type(config, "application/vnd.oci.image.config.v1+json"),
            "layers": [with_type(layer, "application/vnd.oci.image.layer.v1.tar")],
        });
        let mut manifest = with_type(
            blob(manifest.to_string().as_bytes()),
            "application/vnd.oci.image.manifest.v1+json",
        );
        manifest["platform"] = json!({"architecture": arch, "os": "linux"});
        manifest["annotations"] = json!({"io.containerd.image.name": name});
        let index = json!({"schemaVersion": 2, "manifests": [manifest]});
        std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let archive = dir.with_extension("tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&dir)
            .arg("-cf")
            .arg(&archive)
            .args(["oci-layout", "index.json", "blobs"])
            .status()
            .expect("running tar");
        assert!(st.success(), "tar of the image archive failed");
        ok(self.ctr(&["images", "import", archive.to_str().unwrap()]));
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // A test that failed half-way leaves its pods: remove them as kubelet would, then
        // make sure no shim of this containerd (and no container under one) outlives it.
        let mut problems = vec![];
        if self.d.running() {
            let mut c = Cri::connect(self.d.sock());
            problems.extend(c.remove_all_pods());
        }
        self.d.stop();
        // The snapshotter's mounts die with the pods; anything left would keep the temp
        // dir (and the Bundle's check reports it).
        problems.extend(kill_shims(&self.d.sock()));
        if self.systemd {
            let _ = Command::new("systemctl")
                .args(["stop", &self.parent])
                .status();
        } else {
            let dirs = common::cgroup_mounts()
                .iter()
                .map(|m| m.join(&self.parent[1..]))
                .collect();
            drop(RmDirs(dirs));
        }
        self.d.tidy();
        if problems.is_empty() {
            return;
        }
        if std::thread::panicking() {
            eprintln!("cleanup of the CRI test found: {problems:#?}");
        } else {
            panic!("cleanup of the CRI test found: {problems:#?}");
        }
    }
}

/// SIGKILL the shims still serving containerd at `sock` and their children (the
/// containers' inits); says what it found.
fn kill_shims(sock: &Path) -> Vec<String> {
    let needle = format!("-address\0{}\0", sock.display());
    let ppid = |p: i32| -> i32 {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
        after
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let mut found = vec![];
    for shim in common::all_pids() {
        let cmd = std::fs::read(format!("/proc/{shim}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmd).contains(&needle) {
            continue;
        }
        let kids: Vec<i32> = common::all_pids()
            .into_iter()
            .filter(|&p| ppid(p) == shim)
            .collect();
        for p in kids.iter().chain([&shim]) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        found.push(format!("shim {shim} still running, with children {kids:?}"));
    }
    found
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A CRI client (kubelet's side) over containerd's socket, blocking.
struct Cri {
    rt: tokio::runtime::Runtime,
    rs: RuntimeServiceClient<Channel>,
    is: ImageServiceClient<Channel>,
}

impl Cri {
    fn connect(sock: PathBuf) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let channel = rt
            .block_on(
                // The URI is a placeholder: the connector dials the socket.
                Endpoint::from_static("http://localhost")
                    .timeout(Duration::from_secs(60))
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let sock = sock.clone();
                        async move {
                            let s = tokio::net::UnixStream::connect(sock).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(s))
                        }
                    })),
            )
            .expect("connecting to containerd's CRI socket");
        Cri {
            rt,
            rs: RuntimeServiceClient::new(channel.clone()),
            is: ImageServiceClient::new(channel),
        }
    }
}

impl Cri {
    /// Stop and remove every pod (and so its containers), ignoring errors; says which
    /// pods there were.
    fn remove_all_pods(&mut self) -> Vec<String> {
        let list = self.rs.list_pod_sandbox(ListPodSandboxRequest::default());
        let pods = match self.rt.block_on(list) {
            Ok(r) => r.into_inner().items,
            Err(e) => return vec![format!("ListPodSandbox: {e}")],
        };
        let mut found = vec![];
        for p in pods {
            let stop = self.rs.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: p.id.clone(),
            });
            let _ = self.rt.block_on(stop);
            let rm = self.rs.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: p.id.clone(),
            });
            let _ = self.rt.block_on(rm);
            found.push(format!("pod {} left running", p.id));
        }
        found
    }
}

/// One CRI call, blocking; a failure fails the test with the call's name and status.
macro_rules! cri {
    ($c:expr, $svc:ident . $call:ident($req:expr)) => {{
        let c: &mut Cri = $c;
        let fut = c.$svc.$call($req);
        match c.rt.block_on(fut) {
            Ok(r) => r.into_inner(),
            Err(e) => panic!("CRI {}: {e}", stringify!($call)),
        }
    }};
}

/// The `info` JSON of a verbose status (containerd puts the task's pid there).
fn info_pid(info: &HashMap<String, String>) -> i32 {
    let v: Value = serde_json::from_str(&info["info"]).expect("status info is JSON");
    v["pid"].as_i64().expect("status info has the pid") as i32
}

fn container_status(c: &mut Cri, id: &str) -> ContainerStatusResponse {
    let req = ContainerStatusRequest {
        container_id: id.to_string(),
        verbose: true,
    };
    cri!(c, rs.container_status(req))
}

fn state_of(c: &mut Cri, id: &str) -> (ContainerState, i32) {
    let s = container_status(c, id).status.expect("a container status");
    (s.state(), s.exit_code)
}

fn wait_exited(c: &mut Cri, id: &str) -> i32 {
    let mut last = (ContainerState::ContainerUnknown, -1);
    let done = common::wait_until(common::TIMEOUT, || {
        last = state_of(c, id);
        last.0 == ContainerState::ContainerExited
    });
    assert!(done, "container {id} did not exit: {last:?}");
    last.1
}

/// One pod (the test's own cgroup parent), run with the `nook` handler, as kubelet
/// would for a pod with `runtimeClassName` selecting nook.
#[test]
fn cri_runs_a_pod_through_the_nook_runtime_handler() {
    let Some(d) = Containerd::start("cri") else {
        return;
    };
    d.import_image(PAUSE_IMAGE, &["/bin/probe", "pause"], &[]);
    d.import_image(APP_IMAGE, &["/bin/probe"], &["sleep", "3600"]);
    let mut c = Cri::connect(d.d.sock());
    let n = std::process::id();

    let v = cri!(&mut c, rs.version(VersionRequest::default()));
    assert_eq!(v.runtime_name, "containerd", "{v:?}");
    let img = ImageSpec {
        image: APP_IMAGE.to_string(),
        ..Default::default()
    };
    let status = cri!(
        &mut c,
        is.image_status(ImageStatusRequest {
            image: Some(img.clone()),
            verbose: false
        })
    );
    assert!(
        status.image.is_some(),
        "the CRI does not see the imported app image"
    );

    let parent = d.parent.clone();
    // kubelet's choice for a pod with hostNetwork and without shareProcessNamespace,
    // given in the sandbox's and in each container's security context.
    let namespaces = NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    };
    let pod = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "web".into(),
            uid: format!("uid-{n}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: d.d.path("logs").to_str().unwrap().into(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: parent.clone(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox = cri!(
        &mut c,
        rs.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: HANDLER.into(),
        })
    )
    .pod_sandbox_id;
    // The handler's runtime made it: its state dir is in the handler's root.
    assert!(
        d.runtime_root.join(&sandbox).is_dir(),
        "no state of the sandbox under {}",
        d.runtime_root.display()
    );
    let ps = cri!(
        &mut c,
        rs.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: sandbox.clone(),
            verbose: true
        })
    );
    assert_eq!(
        ps.status.as_ref().unwrap().state(),
        PodSandboxState::SandboxReady
    );
    let pause_pid = info_pid(&ps.info);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pause_pid}/exe"))
            .unwrap()
            .file_name()
            .unwrap(),
        "probe",
        "the sandbox's process is not the pause image's"
    );

    // An app container with the pod spec's limits and security context.
    let container = |name: &str, args: &[&str]| ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(img.clone()),
        args: args.iter().map(|a| a.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                memory_limit_in_bytes: 64 << 20,
                cpu_period: 100_000,
                cpu_quota: 50_000,
                cpu_shares: 512,
                ..Default::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(namespaces.clone()),
                run_as_user: Some(Int64Value { value: 1000 }),
                seccomp: Some(SecurityProfile {
                    profile_type: security_profile::ProfileType::RuntimeDefault as i32,
                    localhost_ref: String::new(),
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let create = |c: &mut Cri, name: &str, args: &[&str]| -> String {
        let id = cri!(
            c,
            rs.create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox.clone(),
                config: Some(container(name, args)),
                sandbox_config: Some(pod.clone()),
            })
        )
        .container_id;
        cri!(
            c,
            rs.start_container(StartContainerRequest {
                container_id: id.clone()
            })
        );
        id
    };
    // The image's entrypoint with these args (for its Cmd): the probe waits for a signal.
    let app = create(&mut c, "app", &["signals"]);
    let s = container_status(&mut c, &app);
    assert_eq!(
        s.status.as_ref().unwrap().state(),
        ContainerState::ContainerRunning
    );
    let pid = info_pid(&s.info);
    assert!(d.runtime_root.join(&app).is_dir(), "no state of {app}");

    // ExecSync, as `kubectl exec` and exec probes do: what the process inside sees.
    let exec = cri!(
        &mut c,
        rs.exec_sync(ExecSyncRequest {
            container_id: app.clone(),
            cmd: vec!["/bin/probe".into(), "report".into()],
            timeout: 30,
        })
    );
    assert_eq!(exec.exit_code, 0, "{}", text(&exec.stderr));
    let r = common::report(&Output {
        status: std::process::ExitStatus::default(),
        stdout: exec.stdout.clone(),
        stderr: vec![],
    });
    assert_eq!(r["uid"], "1000", "runAsUser");
    assert_ne!(r["pid"], "1", "the exec is not the container's init");
    let ns = |p: i32, n: &str| common::readlink(&format!("/proc/{p}/ns/{n}"));
    assert_eq!(
        r["ns_pid"],
        ns(pid, "pid"),
        "the exec is in the app's pid namespace"
    );
    assert_ne!(r["ns_pid"], ns(pause_pid, "pid"), "pid: CONTAINER");
    assert_eq!(
        r["ns_ipc"],
        ns(pause_pid, "ipc"),
        "the app joins the pod's ipc namespace"
    );
    assert_eq!(r["ns_net"], common::host_ns("net"), "host network");
    assert_ne!(r["ns_mnt"], common::host_ns("mnt"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.contains("Seccomp:\t2"),
        "RuntimeDefault seccomp: {status}"
    );
    // Where AppArmor is on (the guest), the CRI plugin's default profile confines the app.
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled");
    if apparmor.is_ok_and(|v| v.trim() == "Y") {
        let label = std::fs::read_to_string(format!("/proc/{pid}/attr/current")).unwrap();
        assert!(
            label.starts_with("cri-containerd.apparmor.d"),
            "the app runs under {label:?}, not the CRI's default profile"
        );
    }
    // A failing exec's code comes back too.
    let exec = cri!(
        &mut c,
        rs.exec_sync(ExecSyncRequest {
            container_id: app.clone(),
            cmd: vec!["/bin/probe".into(), "exit".into(), "7".into()],
            timeout: 30,
        })
    );
    assert_eq!(exec.exit_code, 7);

    // The pod spec's resources, in the kernel's files of the app's cgroup.
    let mem = common::pid_cgroup_dir(pid, "memory").expect("the app's memory cgroup");
    let cpu = common::pid_cgroup_dir(pid, "cpu").expect("the app's cpu cgroup");
    let read = |p: PathBuf| common::read_trim(&p);
    if common::controller("memory").unwrap().v2 {
        assert_eq!(read(mem.join("memory.max")), "67108864");
        assert_eq!(read(cpu.join("cpu.max")), "50000 100000");
        // cpu.shares 512 in v2's weight scale (1 + (512 - 2) * 9999 / 262142).
        assert_eq!(read(cpu.join("cpu.weight")), "20");
    } else {
        assert_eq!(read(mem.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(cpu.join("cpu.shares")), "512");
    }
    // Under the pod's parent: a directory (cgroupfs), or a scope in the pod's slice.
    let rel = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = if d.systemd {
        format!("/{parent}/cri-containerd-{app}.scope")
    } else {
        format!("{parent}/{app}")
    };
    assert!(rel.contains(&want), "the app's cgroup is not {want}: {rel}");

    // A container that exits by itself: its code in ContainerStatus.
    let quick = create(&mut c, "quick", &["exit", "3"]);
    assert_eq!(wait_exited(&mut c, &quick), 3);

    // StopContainer: SIGTERM, which the probe reports as exit 100 + 15.
    cri!(
        &mut c,
        rs.stop_container(StopContainerRequest {
            container_id: app.clone(),
            timeout: 10
        })
    );
    assert_eq!(wait_exited(&mut c, &app), 115);
    assert!(
        !common::alive(pid),
        "the app's process {pid} is still there"
    );
    for id in [&app, &quick] {
        cri!(
            &mut c,
            rs.remove_container(RemoveContainerRequest {
                container_id: id.clone()
            })
        );
        assert!(
            !d.runtime_root.join(id).exists(),
            "{id}'s state is still there"
        );
    }
    assert!(
        !mem.exists(),
        "the app's cgroup {} is still there",
        mem.display()
    );

    cri!(
        &mut c,
        rs.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: sandbox.clone()
        })
    );
    assert!(
        !common::alive(pause_pid),
        "the pause process is still there"
    );
    cri!(
        &mut c,
        rs.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: sandbox.clone()
        })
    );
    assert!(
        !d.runtime_root.join(&sandbox).exists(),
        "the sandbox's state is still there"
    );
    let pods = cri!(
        &mut c,
        rs.list_pod_sandbox(ListPodSandboxRequest::default())
    );
    assert!(pods.items.is_empty(), "{:?}", pods.items);
}
