//! The command line: runc's global flags, subcommands and flag names. Flags are
//! accepted before or after the container id, as runc does.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "nook",
    about = "A lightweight OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// Where container state is kept (rootless, that is as a user other than root or in a
    /// user namespace: $XDG_RUNTIME_DIR/nook when that is set, as runc does).
    #[arg(long, global = true, default_value_os_t = default_root())]
    pub root: PathBuf,
    /// Write log lines (and the final error) to this file.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of log lines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug lines.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups: the container's cgroup is a transient scope (cgroupsPath
    /// "slice:prefix:name"); fails where systemd is not running.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Print the version and the runtime-spec version.
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// /run/nook, or $XDG_RUNTIME_DIR/nook when rootless.
pub fn default_root() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() && crate::linux::namespaces::rootless() => {
            PathBuf::from(d).join("nook")
        }
        _ => PathBuf::from("/run/nook"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

/// What a foreground `run` does around the app for its service: a readiness check and
/// announcing the ready app in etcd (see README, "Service discovery").
#[derive(Debug, Args, Default)]
pub struct ServiceArgs {
    /// The app is ready once this command, run inside the container (split into words
    /// like a shell would, no shell needed), exits 0; it keeps running every 5 s as a
    /// health check. Readiness goes to systemd (READY=1) and to --announce.
    #[arg(long, value_name = "CMD")]
    pub ready_cmd: Option<String>,
    /// etcd endpoints, comma-separated (http://HOST:PORT): announce the app there once
    /// it is ready, under a lease this run keeps alive.
    #[arg(long, value_name = "ENDPOINTS", requires = "service")]
    pub announce: Option<String>,
    /// The service the app is an instance of (with --announce).
    #[arg(long, requires = "announce")]
    pub service: Option<String>,
    /// A port the app serves (repeatable; part of the announced value).
    #[arg(long = "port", requires = "announce")]
    pub ports: Vec<u16>,
    /// The lease's TTL in seconds: how long a dead instance stays listed.
    #[arg(long, default_value_t = 10, requires = "announce")]
    pub ttl: u64,
}

impl ServiceArgs {
    /// The same flags for a `nook run` command line (a unit's ExecStart).
    pub fn to_flags(&self) -> Vec<String> {
        let mut out = vec![];
        if let Some(c) = &self.ready_cmd {
            out.extend(["--ready-cmd".to_string(), c.clone()]);
        }
        if let (Some(e), Some(s)) = (&self.announce, &self.service) {
            out.extend([
                "--announce".to_string(),
                e.clone(),
                "--service".into(),
                s.clone(),
            ]);
            for p in &self.ports {
                out.extend(["--port".to_string(), p.to_string()]);
            }
            out.extend(["--ttl".to_string(), self.ttl.to_string()]);
        }
        out
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub id: String,
    /// The bundle directory (config.json and the rootfs).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container init's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to receive the pty master of a terminal container.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root (for a rootfs on a ramdisk).
    #[arg(long)]
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of making a new one.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many fds after stdio (3, 4, ...) to the container process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Inject this host file too (resolv.conf, hosts, hostname, passwd, nsswitch,
    /// ca-certificates, localtime, libc).
    #[arg(long)]
    pub inject: Vec<String>,
    /// Leave out an injection the bundle asks for.
    #[arg(long)]
    pub no_inject: Vec<String>,
    /// Render the config templates in this directory into the container at each start.
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// A template variable, K=V.
    #[arg(long)]
    pub var: Vec<String>,
    /// A file of K=V lines of template variables.
    #[arg(long)]
    pub var_file: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// The program to pack (static or dynamic ELF).
    pub binary: PathBuf,
    /// The bundle tar to write (default: NAME.tar).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The bundle's name (default: the binary's file name).
    #[arg(long)]
    pub name: Option<String>,
    /// An argument for the program (repeatable).
    #[arg(long = "arg", allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// An environment entry K=V (repeatable).
    #[arg(long)]
    pub env: Vec<String>,
    /// UID[:GID] to run as (default 65534:65534).
    #[arg(long)]
    pub user: Option<String>,
    /// Config templates to store in the bundle.
    #[arg(long)]
    pub config_dir: Option<PathBuf>,
    /// Where a dynamic program's libc comes from.
    #[arg(long, value_enum, default_value_t = crate::bundle::pack::Libc::Bundled)]
    pub libc: crate::bundle::pack::Libc,
}

#[derive(Debug, Subcommand)]
// Each subcommand's arguments are built only when it is the one given: the start path
// does not build the whole command tree.
#[command(defer = true)]
pub enum Command {
    /// Create a container: set it up and leave it waiting for `start`.
    Create(CreateArgs),
    /// Start a created container's process.
    Start { id: String },
    /// Create and start a container, and wait for it in the foreground.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the process has started.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
        /// Under a systemd unit (NOTIFY_SOCKET set): relay the app's sd_notify messages,
        /// or send READY=1 once the app has exec'd, or neither.
        #[arg(long, value_enum, default_value_t = crate::systemd::NotifyMode::Relay)]
        notify: crate::systemd::NotifyMode,
        /// Accepted for runc compatibility.
        #[arg(long)]
        no_subreaper: bool,
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Versioned apps under systemd: install, upgrade (with a readiness check and
    /// automatic rollback), rollback, list, remove.
    App {
        /// Where apps keep their versions.
        #[arg(long, default_value = crate::apps::DEFAULT_DIR)]
        apps_dir: PathBuf,
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Follow a service's instances in etcd: one JSON line at start and after each change.
    Watch {
        /// etcd endpoints, comma-separated (http://HOST:PORT).
        endpoints: String,
        /// The service's name.
        service: String,
        /// Render this template (nook's template syntax: ${INSTANCES}, ${COUNT},
        /// ${SERVICE}) into --output for each new set.
        #[arg(long, value_name = "TEMPLATE", requires = "output")]
        render: Option<PathBuf>,
        /// The file --render writes (replaced whole, before --exec runs).
        #[arg(long, value_name = "FILE", requires = "render")]
        output: Option<PathBuf>,
        /// The line each instance becomes in ${INSTANCES} (its macros: HOST, ID, SERVICE,
        /// ADDRESS, ADDRESSES, PORT, PORTS).
        #[arg(long, value_name = "LINE", default_value = crate::discovery::render::DEFAULT_EACH, requires = "render")]
        each: String,
        /// Run this (through /bin/sh) with each new set on its stdin.
        #[arg(long)]
        exec: Option<String>,
    },
    /// Print the state of a container as JSON.
    State { id: String },
    /// Write systemd units that run a container as a service: NAME.service (Type=notify,
    /// Delegate=yes) and, with --listen, NAME.socket. Prints their paths.
    Unit {
        /// The unit's and the container's name.
        name: String,
        /// The bundle (directory or bundle tar).
        #[arg(short, long)]
        bundle: PathBuf,
        /// A socket systemd listens on and passes to the app (ListenStream=; repeatable).
        #[arg(long)]
        listen: Vec<String>,
        /// Where to write the units.
        #[arg(long, default_value = ".")]
        output_dir: PathBuf,
        /// How the unit learns the app is ready (see `run --notify`).
        #[arg(long, value_enum, default_value_t = crate::systemd::NotifyMode::Relay)]
        notify: crate::systemd::NotifyMode,
        /// Passed to the unit's `nook run` (--ready-cmd, --announce and the rest).
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Send a signal (name or number; default TERM) to a container.
    Kill {
        id: String,
        signal: Option<String>,
        /// Signal every process in the container's cgroup.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container and what it holds.
    Delete {
        id: String,
        /// Kill it first if it is still running.
        #[arg(short, long)]
        force: bool,
    },
    /// List containers.
    List {
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A config for a user namespace with the caller mapped to root.
        #[arg(long)]
        rootless: bool,
    },
    /// Print the runtime spec's features document.
    Features,
    /// Make a minimal bundle tar from one program.
    Pack(PackArgs),
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List the processes in a container's cgroup.
    Ps {
        id: String,
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Accepted for runc compatibility (runc passes them to ps(1)).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Print container events and statistics.
    Events {
        id: String,
        /// Print the statistics once and exit.
        #[arg(long)]
        stats: bool,
        /// Interval between statistics events (e.g. 5s, 500ms).
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Run a new process inside a created or running container.
    Exec(ExecArgs),
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    pub id: String,
    /// A JSON file with linux.resources ("-" for stdin); flags below override it.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    #[arg(long, alias = "cpu-shares")]
    pub cpu_share: Option<u64>,
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    #[arg(long)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a k, m, g suffix; -1 for none).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit.
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

/// `exec ID [COMMAND [ARGS...]]` or `exec -p process.json ID`, with runc's flags.
#[derive(Debug, Args)]
pub struct ExecArgs {
    pub id: String,
    /// The program and its arguments (not with --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// A JSON file holding the whole process (runtime spec `process`).
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE; repeatable, overrides the config's).
    #[arg(short, long)]
    pub env: Vec<String>,
    /// UID[:GID] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// An additional group id (repeatable).
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the bounding, effective and permitted sets (repeatable).
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass this many fds after stdio (3, 4, ...) to the process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Write the process's pid here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Return once the process has started.
    #[arg(short, long)]
    pub detach: bool,
    /// Give the process a terminal (its master goes to --console-socket, or nook proxies it).
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket to receive the pty master (not supported yet).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// SELinux label of the process (replaces process.selinuxLabel).
    #[arg(long)]
    pub process_label: Option<String>,
    /// AppArmor profile of the process (replaces process.apparmorProfile).
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Exec into a paused container too (the process then waits, frozen with it, until
    /// `resume`).
    #[arg(long)]
    pub ignore_paused: bool,
}

/// `nook app ...`.
#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Store a bundle (and its config) as version 1, write and enable the app's systemd
    /// units, start it and wait until it is ready.
    Install {
        name: String,
        /// The bundle tar.
        bundle: PathBuf,
        /// The app's config templates: a directory.
        #[arg(long, conflicts_with = "config_git")]
        config_dir: Option<PathBuf>,
        /// The app's config templates: a git repository (path or file:// URL).
        #[arg(long)]
        config_git: Option<String>,
        /// The revision of --config-git (default: HEAD).
        #[arg(long, requires = "config_git")]
        config_rev: Option<String>,
        /// A template variable (K=V; repeatable).
        #[arg(long)]
        var: Vec<String>,
        /// A socket systemd listens on for the app (repeatable).
        #[arg(long)]
        listen: Vec<String>,
        /// The app is ready once this command, run inside it, exits 0.
        #[arg(long, conflicts_with = "notify")]
        ready_cmd: Option<String>,
        /// How the unit learns the app is ready (default: the app's READY=1).
        #[arg(long, value_enum)]
        notify: Option<crate::systemd::NotifyMode>,
        /// Where the units go.
        #[arg(long, default_value = "/etc/systemd/system")]
        unit_dir: PathBuf,
        /// Versions kept (never fewer than the current and previous one).
        #[arg(long, default_value_t = 3)]
        keep: usize,
        /// Seconds the app has to become ready.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Switch to a new bundle or config revision; back to the old version if the new one
    /// does not become ready.
    Upgrade {
        name: String,
        /// The new bundle tar (default: the current one).
        bundle: Option<PathBuf>,
        /// The new config revision (apps with --config-git).
        #[arg(long)]
        config_rev: Option<String>,
        /// Seconds the new version has to become ready.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Go back to the previous version.
    Rollback {
        name: String,
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// Stop the app, remove its units and its versions.
    Remove { name: String },
    /// The apps, their versions and states.
    List {
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
}
