//! The `nook` command: parse the command line, run the command, and turn an error
//! into one message, one log line and an exit code.

// nook's entry point is the C `main` below, not Rust's start-up (see `main`); the unit
// test build keeps libtest's.
#![cfg_attr(not(test), no_main)]
#![cfg_attr(test, allow(dead_code))]

use std::io::Write;

use clap::Parser;
use nook::cli::{AppCommand, Cli, Command, CreateArgs, ListFormat, LogFormat, ServiceArgs};
use nook::container::{control, create, ops, run};
use nook::error::{Error, IoContext, Result};
use nook::systemd::NotifyMode;

/// The entry point, without Rust's own start-up (std's `lang_start`): on a static glibc
/// build that reads /proc/self/maps for the main thread's stack guard and sets up an
/// alternate signal stack for its stack-overflow message, about 19 syscalls and 60 µs
/// of every nook start on this kind of host (a stack overflow is now a plain SIGSEGV).
/// What nook needs of it is done here: SIGPIPE ignored (a closed pipe is an EPIPE
/// error, not death), closed stdio fds opened on /dev/null (nothing nook opens may
/// become its stdout), a panic exits 101, and stdout is flushed at the end
/// (std::process::exit). Arguments and the environment come from glibc as before.
#[cfg(not(test))]
#[no_mangle]
pub extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    start_as_std_would();
    let code = std::panic::catch_unwind(nook_main).unwrap_or(101);
    std::process::exit(code.into())
}

/// The parts of Rust's start-up that nook relies on (see `main`).
fn start_as_std_would() {
    // SAFETY: ignoring a signal installs no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll on an array of three pollfds we own, no timeout.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } >= 0;
    for f in fds {
        let closed = match polled {
            true => f.revents & libc::POLLNVAL != 0,
            // SAFETY: F_GETFD on an int fd touches no memory.
            false => (unsafe { libc::fcntl(f.fd, libc::F_GETFD) }) == -1,
        };
        if closed {
            // SAFETY: open of a constant path; the lowest free fd is the closed one.
            // Not close-on-exec: it stands in for stdio, as std's does.
            if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } == -1 {
                std::process::abort();
            }
        }
    }
}

fn nook_main() -> u8 {
    nook::steps::mark("main");
    // Commands that start a process inside a container first protect nook itself
    // (CVE-2019-5736, CVE-2016-9962 classes; see linux::self_guard). Done before the
    // command line is parsed: it may re-execute nook, which then parses it once.
    let guard = match starts_a_container_process() {
        // A foreground run may not need the re-exec (linux::trampoline): decided once
        // its config is read (a detached one always re-executes then).
        Some(Start::Run) => Some(nook::linux::self_guard::protect_deferred()),
        Some(Start::Other) => Some(nook::linux::self_guard::protect()),
        None => None,
    };
    nook::steps::mark("main.guarded");
    // The usual start-path command lines are read without clap (cli_fast); clap reads
    // the rest and gives every usage error.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut cli = nook::cli_fast::parse(&args).unwrap_or_else(|| Cli::parse_from(args));
    nook::steps::mark("main.parsed");
    // State paths end up in mounts and in state.json: always absolute.
    if let Ok(root) = std::path::absolute(&cli.root) {
        cli.root = root;
    }
    if let Some(Err(e)) = guard {
        report(&cli, &e.into());
        return 1;
    }
    let done = dispatch(&cli);
    nook::steps::mark("main.exit");
    match done {
        Ok(code) => code.clamp(0, 255) as u8,
        Err(e) => {
            report(&cli, &e);
            1
        }
    }
}

/// The commands that start a process inside a container.
enum Start {
    Run,
    Other,
}

/// Whether the subcommand (the first word that is neither a flag nor a global flag's
/// value) is run, or create or exec.
fn starts_a_container_process() -> Option<Start> {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--root" | "--log" | "--log-format") => {
                args.next();
            }
            Some(s) if s.starts_with('-') => {}
            Some("run") => return Some(Start::Run),
            Some("create" | "exec") => return Some(Start::Other),
            _ => return None,
        }
    }
    None
}

/// `run`'s --ready-cmd and --announce flags, checked.
type ServiceOptions = (
    Option<nook::discovery::announce::Options>,
    Option<Vec<String>>,
);

fn service_options(s: &ServiceArgs, notify: NotifyMode) -> Result<ServiceOptions> {
    let ready = s
        .ready_cmd
        .as_deref()
        .map(nook::container::ready::parse)
        .transpose()
        .map_err(Error::Usage)?;
    if ready.is_some() && notify != NotifyMode::Relay {
        return Err(Error::Usage(format!(
            "--ready-cmd with --notify={}: the ready command is what says the app is ready; drop --notify",
            if notify == NotifyMode::Exec { "exec" } else { "none" }
        )));
    }
    let announce = match (&s.announce, &s.service) {
        (Some(eps), Some(service)) => Some(
            nook::discovery::announce::Options::parse(eps, service, &s.ports, s.ttl)
                .map_err(Error::Usage)?,
        ),
        _ => None,
    };
    Ok((announce, ready))
}

/// `nook app ...`.
fn app(cli: &Cli, apps: &std::path::Path, cmd: &AppCommand) -> Result<()> {
    use nook::apps::{life, store::ConfigSource};
    use std::time::Duration;
    match cmd {
        AppCommand::Install {
            name,
            bundle,
            config_dir,
            config_git,
            config_rev,
            var,
            listen,
            ready_cmd,
            notify,
            unit_dir,
            keep,
            timeout,
        } => {
            let notify = notify.unwrap_or_default();
            service_options(
                &ServiceArgs {
                    ready_cmd: ready_cmd.clone(),
                    ..Default::default()
                },
                notify,
            )?;
            let abs = |p: &std::path::Path| std::path::absolute(p).ctx("resolving path", p);
            let config = match (config_dir, config_git) {
                (Some(d), _) => ConfigSource::Dir { path: abs(d)? },
                (None, Some(g)) => ConfigSource::Git { repo: g.clone() },
                (None, None) => ConfigSource::None,
            };
            let mut vars = Vars::new();
            for kv in var {
                add_var(&mut vars, kv, "--var")?;
            }
            let i = life::Install {
                bundle: abs(bundle)?,
                rev: config_rev.clone(),
                timeout: Duration::from_secs(*timeout),
                app: life::AppConfig {
                    name: name.clone(),
                    root: abs(&cli.root)?,
                    unit_dir: abs(unit_dir)?,
                    config,
                    vars,
                    listen: listen.clone(),
                    notify,
                    ready_cmd: ready_cmd.clone(),
                    keep: *keep,
                },
            };
            life::install(apps, name, i)?;
        }
        AppCommand::Upgrade {
            name,
            bundle,
            config_rev,
            timeout,
        } => {
            let bundle = bundle
                .as_deref()
                .map(std::path::absolute)
                .transpose()
                .ctx("resolving path", "bundle")?;
            life::upgrade(
                apps,
                name,
                bundle.as_deref(),
                config_rev.as_deref(),
                Duration::from_secs(*timeout),
            )?
        }
        AppCommand::Rollback { name, timeout } => {
            life::rollback(apps, name, Duration::from_secs(*timeout))?
        }
        AppCommand::Remove { name } => life::remove(apps, name)?,
        AppCommand::List { format } => life::list(apps, *format == ListFormat::Json)?,
    }
    Ok(())
}

fn options(cli: &Cli, a: &CreateArgs) -> Result<create::Options> {
    Ok(create::Options {
        root: cli.root.clone(),
        id: a.id.clone(),
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        console_socket: a.console_socket.clone(),
        foreground: false,
        inject: inject_options(a)?,
        service: Default::default(),
        systemd_cgroup: cli.systemd_cgroup,
        debug: cli.debug,
        announce: None,
        ready_cmd: None,
    })
}

/// --inject, --no-inject, --config-dir, --var and --var-file.
/// One template variable `K=V` (from `from`: --var or a --var-file) into `vars`.
fn add_var(vars: &mut Vars, kv: &str, from: &str) -> Result<()> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| Error::Usage(format!("{from}: {kv:?} is not K=V")))?;
    let k = k.trim();
    if !nook::bundle::template::valid_name(k) {
        return Err(Error::Usage(format!(
            "{from}: template variable {k:?}: names are [A-Za-z_][A-Za-z0-9_]*"
        )));
    }
    vars.insert(k.to_string(), v.to_string());
    Ok(())
}

type Vars = std::collections::BTreeMap<String, String>;

fn inject_options(a: &CreateArgs) -> Result<nook::bundle::inject::InjectOptions> {
    let mut vars = Vars::new();
    let mut add = |kv: &str, from: &str| add_var(&mut vars, kv, from);
    for f in &a.var_file {
        let text = std::fs::read_to_string(f).ctx("reading --var-file", f)?;
        for line in text.lines().map(str::trim) {
            if !line.is_empty() && !line.starts_with('#') {
                add(line, &f.display().to_string())?;
            }
        }
    }
    for kv in &a.var {
        add(kv, "--var")?;
    }
    Ok(nook::bundle::inject::InjectOptions {
        add: a.inject.clone(),
        remove: a.no_inject.clone(),
        config_dir: a.config_dir.clone(),
        vars,
    })
}

fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.version {
        println!("nook version {}", env!("CARGO_PKG_VERSION"));
        println!("spec: {}", oci_spec::runtime::VERSION);
        return Ok(0);
    }
    let Some(cmd) = &cli.command else {
        return Err(Error::Usage("no command given; see nook --help".into()));
    };
    // A log nook could not write its error to is an error now, before anything runs
    // (as runc: a client would otherwise read no reason for a failure).
    if let Some(p) = &cli.log {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ctx("opening --log", p)?;
    }
    match cmd {
        Command::Create(a) => create::create(&options(cli, a)?).map(|_| 0),
        Command::Run {
            create: a,
            detach,
            keep,
            notify,
            no_subreaper: _,
            service,
        } => {
            let mut o = options(cli, a)?;
            o.foreground = !*detach;
            o.service = nook::systemd::Service::from_env(*notify)?;
            (o.announce, o.ready_cmd) = service_options(service, *notify)?;
            if *detach && (o.announce.is_some() || o.ready_cmd.is_some()) {
                return Err(Error::Usage(
                    "--announce and --ready-cmd need run in the foreground (it watches the app); drop -d".into(),
                ));
            }
            o.service.announce = o.announce.is_some();
            o.preserve_fds = o.preserve_fds.max(o.service.listen_fds);
            run::run(&o, *detach, *keep)
        }
        Command::App { apps_dir, command } => app(cli, apps_dir, command).map(|_| 0),
        Command::Watch {
            endpoints,
            service,
            render,
            output,
            each,
            exec,
        } => {
            use nook::discovery::{render::Render, watch};
            let render = match (render, output) {
                (Some(t), Some(o)) => Some(Render::new(t, each, o, service).map_err(Error::Usage)?),
                _ => None,
            };
            watch::watch(endpoints, service, render.as_ref(), exec.as_deref()).map_err(Error::Usage)
        }
        Command::Start { id } => ops::start(&cli.root, id).map(|_| 0),
        Command::State { id } => {
            let v = ops::state_json(&cli.root, id)?;
            println!("{}", serde_json::to_string_pretty(&v).expect("json"));
            Ok(0)
        }
        Command::Kill { id, signal, all } => {
            let sig = ops::parse_signal(signal.as_deref().unwrap_or("TERM"))?;
            ops::kill(&cli.root, id, sig, *all).map(|_| 0)
        }
        Command::Delete { id, force } => match ops::delete(&cli.root, id, *force) {
            // runc: deleting a container that does not exist with --force succeeds.
            Err(Error::NotFound(_)) if *force => Ok(0),
            r => r.map(|_| 0),
        },
        Command::List { format, quiet } => {
            ops::list(&cli.root, *format == ListFormat::Json, *quiet).map(|_| 0)
        }
        Command::Spec { bundle, rootless } => {
            let p = bundle.join("config.json");
            if p.exists() {
                return Err(Error::Usage(format!("{} already exists", p.display())));
            }
            let text =
                serde_json::to_string_pretty(&nook::spec::default_json(*rootless)).expect("json");
            std::fs::write(&p, text + "\n").ctx("writing", &p)?;
            Ok(0)
        }
        Command::Pause { id } => control::pause(&cli.root, id).map(|_| 0),
        Command::Resume { id } => control::resume(&cli.root, id).map(|_| 0),
        Command::Ps { id, format, .. } => {
            control::ps(&cli.root, id, *format == ListFormat::Json).map(|_| 0)
        }
        Command::Update(a) => control::update(&cli.root, a).map(|_| 0),
        Command::Events {
            id,
            stats,
            interval,
        } => {
            let every = control::parse_interval(interval)?;
            control::events(&cli.root, id, *stats, every).map(|_| 0)
        }
        Command::Exec(a) => nook::container::exec::exec(&cli.root, a),
        Command::Pack(a) => {
            let out = nook::bundle::pack::pack(&nook::bundle::pack::PackOptions {
                binary: a.binary.clone(),
                output: a.output.clone(),
                name: a.name.clone(),
                args: a.args.clone(),
                env: a.env.clone(),
                user: a.user.clone(),
                config_dir: a.config_dir.clone(),
                libc: a.libc,
            })
            .map_err(Error::from)?;
            println!("{}", out.display());
            Ok(0)
        }
        Command::Unit {
            name,
            bundle,
            listen,
            output_dir,
            notify,
            service,
        } => {
            service_options(service, *notify)?;
            let abs = |p: &std::path::Path| std::path::absolute(p).ctx("resolving path", p);
            std::fs::metadata(bundle).ctx("nook unit: reading --bundle", bundle)?;
            let spec = nook::systemd::unit::UnitSpec {
                name: name.clone(),
                nook: std::env::current_exe().ctx("finding nook's own binary", "/proc/self/exe")?,
                root: abs(&cli.root)?,
                bundle: abs(bundle)?,
                listen: listen.clone(),
                notify: *notify,
                run_flags: service.to_flags(),
            };
            for p in spec.write(output_dir)? {
                println!("{}", p.display());
            }
            Ok(0)
        }
        Command::Features => {
            let doc = nook::features::document();
            println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
            Ok(0)
        }
    }
}

/// The one place errors become output: stderr, and the log file when given
/// (containerd reads the last JSON line of --log for the message).
fn report(cli: &Cli, e: &Error) {
    let msg = e.to_string();
    let line = match cli.log_format {
        LogFormat::Json => serde_json::json!({
            "level": "error",
            "msg": msg,
            "time": nook::state::now_rfc3339(),
        })
        .to_string(),
        LogFormat::Text => format!(
            "time=\"{}\" level=error msg={:?}",
            nook::state::now_rfc3339(),
            msg
        ),
    };
    if let Some(p) = &cli.log {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            let _ = writeln!(f, "{line}");
        }
    }
    let _ = writeln!(std::io::stderr(), "nook: {msg}");
}
