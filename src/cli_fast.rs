//! A fast path for the command lines that clients send on every container start: `run`,
//! `create`, `start`, `state` and `delete` with runc's flags. clap builds its command
//! tree and matches on every start (about 0.2 ms here: half of it on a first call, the
//! rest its work); these few shapes are read by hand into the same `Cli`. Anything else
//! (another subcommand or flag, a repeated flag, a value that looks like a flag, `--`,
//! help, combined short flags, bytes that are not UTF-8) returns None and goes to clap,
//! which also gives every error message. The tests check that both read each accepted
//! command line the same.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::{default_root, Cli, Command, CreateArgs, LogFormat, ServiceArgs};
use crate::systemd::NotifyMode;

/// The `Cli` clap would make of `args` (program name first), when it is a shape read here.
pub fn parse(args: &[OsString]) -> Option<Cli> {
    let words: Vec<&str> = args
        .iter()
        .skip(1)
        .map(|a| a.to_str())
        .collect::<Option<_>>()?;
    let mut cli = Cli {
        root: default_root(),
        log: None,
        log_format: LogFormat::Text,
        debug: false,
        systemd_cgroup: false,
        version: false,
        command: None,
    };
    let mut seen: Vec<&str> = vec![];
    let mut once = |name: &'static str| -> Option<()> {
        if seen.contains(&name) {
            return None;
        }
        seen.push(name);
        Some(())
    };
    let mut sub: Option<&str> = None;
    let mut positional: Vec<&str> = vec![];
    let mut create = CreateArgs {
        id: String::new(),
        bundle: PathBuf::from("."),
        pid_file: None,
        console_socket: None,
        no_pivot: false,
        no_new_keyring: false,
        preserve_fds: 0,
        inject: vec![],
        no_inject: vec![],
        config_dir: None,
        var: vec![],
        var_file: vec![],
    };
    let (mut detach, mut keep, mut no_subreaper, mut force) = (false, false, false, false);
    let mut notify = NotifyMode::Relay;
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        i += 1;
        if !w.starts_with('-') {
            match sub {
                None => sub = Some(w),
                Some(_) => positional.push(w),
            }
            continue;
        }
        // --flag=value or --flag value; a value never empty and never flag-like.
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (w, None),
        };
        let mut value = || -> Option<&str> {
            let v = match inline {
                Some(v) => v,
                None => {
                    i += 1;
                    *words.get(i - 1)?
                }
            };
            (!v.is_empty() && !v.starts_with('-')).then_some(v)
        };
        let per_sub = |subs: &[&str]| sub.is_some_and(|s| subs.contains(&s));
        let takes_value = matches!(
            flag,
            "--root"
                | "--log"
                | "--log-format"
                | "-b"
                | "--bundle"
                | "--pid-file"
                | "--console-socket"
                | "--preserve-fds"
                | "--notify"
        );
        if !takes_value && inline.is_some() {
            return None;
        }
        match flag {
            "--root" => {
                once("root")?;
                cli.root = PathBuf::from(value()?);
            }
            "--log" => {
                once("log")?;
                cli.log = Some(PathBuf::from(value()?));
            }
            "--log-format" => {
                once("log-format")?;
                cli.log_format = match value()? {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return None,
                };
            }
            "--debug" => {
                once("debug")?;
                cli.debug = true;
            }
            "--systemd-cgroup" => {
                once("systemd-cgroup")?;
                cli.systemd_cgroup = true;
            }
            "-b" | "--bundle" if per_sub(&["run", "create"]) => {
                once("bundle")?;
                create.bundle = PathBuf::from(value()?);
            }
            "--pid-file" if per_sub(&["run", "create"]) => {
                once("pid-file")?;
                create.pid_file = Some(PathBuf::from(value()?));
            }
            "--console-socket" if per_sub(&["run", "create"]) => {
                once("console-socket")?;
                create.console_socket = Some(PathBuf::from(value()?));
            }
            "--no-pivot" if per_sub(&["run", "create"]) => {
                once("no-pivot")?;
                create.no_pivot = true;
            }
            "--no-new-keyring" if per_sub(&["run", "create"]) => {
                once("no-new-keyring")?;
                create.no_new_keyring = true;
            }
            "--preserve-fds" if per_sub(&["run", "create"]) => {
                once("preserve-fds")?;
                let v = value()?;
                if !v.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                create.preserve_fds = v.parse().ok()?;
            }
            "-d" | "--detach" if per_sub(&["run"]) => {
                once("detach")?;
                detach = true;
            }
            "--keep" if per_sub(&["run"]) => {
                once("keep")?;
                keep = true;
            }
            "--no-subreaper" if per_sub(&["run"]) => {
                once("no-subreaper")?;
                no_subreaper = true;
            }
            "--notify" if per_sub(&["run"]) => {
                once("notify")?;
                notify = match value()? {
                    "relay" => NotifyMode::Relay,
                    "exec" => NotifyMode::Exec,
                    "none" => NotifyMode::None,
                    _ => return None,
                };
            }
            "-f" | "--force" if per_sub(&["delete"]) => {
                once("force")?;
                force = true;
            }
            _ => return None,
        }
    }
    let [id] = positional[..] else {
        return None;
    };
    let id = id.to_string();
    cli.command = Some(match sub? {
        "run" => Command::Run {
            create: CreateArgs { id, ..create },
            detach,
            keep,
            notify,
            no_subreaper,
            service: ServiceArgs {
                ttl: 10,
                ..Default::default()
            },
        },
        "create" => Command::Create(CreateArgs { id, ..create }),
        "start" => Command::Start { id },
        "state" => Command::State { id },
        "delete" => Command::Delete { id, force },
        _ => return None,
    });
    Some(cli)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn argv(line: &str) -> Vec<OsString> {
        std::iter::once("nook")
            .chain(line.split_whitespace())
            .map(OsString::from)
            .collect()
    }

    /// Each line is read here, and the same as clap reads it.
    #[test]
    fn the_fast_path_reads_what_clap_reads() {
        for line in [
            "run x",
            "run --bundle /b x",
            "run -b /b x",
            "run --bundle=/b x",
            "--root /r run -b /b x",
            "--root=/r --log /l --log-format json run -b /b x",
            "run x --root /r --bundle /b",
            "--debug --systemd-cgroup run -d --keep --no-subreaper --notify exec -b /b x",
            "run --notify=none x",
            "run --pid-file /p --console-socket /s --no-pivot --no-new-keyring --preserve-fds 3 x",
            "create --bundle /b --pid-file /p x",
            "--root /r --log /l --log-format json create --bundle /b --pid-file /p --console-socket /c x",
            "create --preserve-fds=2 x",
            "start x",
            "--root /r start x",
            "state x",
            "delete x",
            "delete --force x",
            "delete -f x",
            "--log-format text delete x --root /r",
        ] {
            let fast = parse(&argv(line)).unwrap_or_else(|| panic!("not read here: {line}"));
            let clap = Cli::try_parse_from(argv(line)).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{line}");
        }
    }

    /// Everything else is clap's: other subcommands and flags, repeats, missing or
    /// extra ids, flag-like or empty values, bad enum values, combined short flags.
    #[test]
    fn anything_else_goes_to_clap() {
        for line in [
            "",
            "run",
            "run x y",
            "run --bundle /a --bundle /b x",
            "run --bundle",
            "run --bundle -x x",
            "run --bundle= x",
            "run --notify loud x",
            "run --log-format xml x",
            "run -db /b x",
            "run --ready-cmd true x",
            "run --announce e --service s x",
            "run --inject hosts x",
            "run --var A=1 x",
            "run -- x",
            "run --help",
            "--version",
            "-v",
            "create --detach x",
            "start --bundle /b x",
            "delete --force --force x",
            "kill x KILL",
            "exec x /bin/true",
            "list",
            "run --preserve-fds +3 x",
            "run --debug=yes x",
        ] {
            assert!(parse(&argv(line)).is_none(), "read here: {line:?}");
        }
        let bad = vec![OsString::from("nook"), OsString::from("run"), {
            use std::os::unix::ffi::OsStringExt;
            OsString::from_vec(vec![0xff, 0xfe])
        }];
        assert!(parse(&bad).is_none());
    }
}
