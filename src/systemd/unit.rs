//! `nook unit`: the systemd units that run one container as a service (NAME.service,
//! and NAME.socket when it listens on sockets systemd holds).

use std::path::{Path, PathBuf};

use super::{NotifyMode, SystemdError};

/// What the units describe.
#[derive(Debug, Clone)]
pub struct UnitSpec {
    /// The unit name and the container id.
    pub name: String,
    /// nook's own binary (absolute).
    pub nook: PathBuf,
    /// nook's --root.
    pub root: PathBuf,
    /// The bundle (a directory or a bundle tar), absolute.
    pub bundle: PathBuf,
    /// ListenStream= addresses (socket activation).
    pub listen: Vec<String>,
    pub notify: NotifyMode,
    /// More `nook run` flags (--ready-cmd, --announce ...), checked by the caller.
    pub run_flags: Vec<String>,
}

/// A unit's (and its container's) name: what systemd takes in a unit file name and
/// nook in a container id.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
    if name.is_empty() || !name.chars().all(ok) || name.starts_with('.') {
        return Err(format!(
            "{name:?}: a unit and container name is letters, digits, '_', '.' and '-', not starting with '.'"
        ));
    }
    if name.len() > 200 {
        return Err(format!("{name:?} is longer than 200 characters"));
    }
    Ok(())
}

fn bad(what: &str, why: String) -> SystemdError {
    SystemdError::Unit {
        what: what.to_string(),
        why,
    }
}

impl UnitSpec {
    /// Refuse what systemd would misread (names it cannot take, addresses that would
    /// break the file).
    pub fn check(&self) -> Result<(), SystemdError> {
        check_name(&self.name).map_err(|why| bad("NAME", why))?;
        for l in &self.listen {
            if l.is_empty() || l.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad("--listen", format!("{l:?} is not a socket address")));
            }
        }
        for f in &self.run_flags {
            if f.chars().any(|c| c.is_control()) {
                return Err(bad(
                    "nook run flags",
                    format!("{f:?} holds control characters (a unit line cannot)"),
                ));
            }
        }
        for (what, p) in [("--bundle", &self.bundle), ("nook", &self.nook)] {
            if !p.is_absolute() {
                return Err(bad(
                    what,
                    format!("{} is not an absolute path", p.display()),
                ));
            }
            if p.to_str().is_none_or(|s| s.chars().any(|c| c.is_control())) {
                return Err(bad(
                    what,
                    format!("{} holds control characters", p.display()),
                ));
            }
        }
        Ok(())
    }

    fn command(&self, args: &[&str]) -> String {
        let mut words = vec![quote(&self.nook), "--root".into(), quote(&self.root)];
        words.extend(args.iter().map(|a| quote(Path::new(a))));
        words.join(" ")
    }

    /// NAME.service.
    pub fn service(&self) -> String {
        let bundle = self.bundle.to_string_lossy();
        let mut run = vec!["run", "--bundle", &bundle];
        let typ = match self.notify {
            NotifyMode::Relay => "notify",
            NotifyMode::Exec => {
                run.push("--notify=exec");
                "notify"
            }
            NotifyMode::None => {
                run.push("--notify=none");
                "exec"
            }
        };
        run.extend(self.run_flags.iter().map(String::as_str));
        run.push(&self.name);
        let socket = if self.listen.is_empty() {
            String::new()
        } else {
            format!("Requires={0}.socket\nAfter={0}.socket\n", self.name)
        };
        format!(
            "# Written by `nook unit`: the container {name} from {bundle}.\n\
             [Unit]\n\
             Description=nook container {name}\n\
             After=network.target\n\
             {socket}\n\
             [Service]\n\
             # The app tells systemd it is ready (nook relays sd_notify; --notify=exec: nook\n\
             # says so once the app has started).\n\
             Type={typ}\n\
             ExecStart={start}\n\
             # Whatever a killed nook left (state, cgroup) goes after every stop.\n\
             ExecStopPost={stop}\n\
             # The container's cgroup is made inside this unit's, so accounting, limits and\n\
             # stop cover the app.\n\
             Delegate=yes\n\
             # SIGTERM to nook, which forwards it to the app; SIGKILL to all after the timeout.\n\
             KillMode=mixed\n\
             Restart=on-failure\n\
             # Hardening that leaves the runtime working: nothing here may load kernel\n\
             # modules or reboot the host (so no container may be given those capabilities).\n\
             ProtectKernelModules=yes\n\
             CapabilityBoundingSet=~CAP_SYS_MODULE CAP_SYS_BOOT\n\
             \n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            name = self.name,
            start = self.command(&run),
            stop = self.command(&["delete", "--force", &self.name]),
        )
    }

    /// NAME.socket, when there are addresses to listen on.
    pub fn socket(&self) -> Option<String> {
        if self.listen.is_empty() {
            return None;
        }
        let listens: String = self
            .listen
            .iter()
            .map(|l| format!("ListenStream={l}\n"))
            .collect();
        Some(format!(
            "# Written by `nook unit`: the sockets systemd holds for the container {name}.\n\
             [Unit]\n\
             Description=sockets of nook container {name}\n\
             \n\
             [Socket]\n\
             {listens}\
             \n\
             [Install]\n\
             WantedBy=sockets.target\n",
            name = self.name
        ))
    }

    /// Write the units into `dir`; their paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, SystemdError> {
        self.check()?;
        let mut out = vec![];
        let files = [
            (format!("{}.service", self.name), Some(self.service())),
            (format!("{}.socket", self.name), self.socket()),
        ];
        for (file, text) in files {
            let Some(text) = text else { continue };
            let path = dir.join(file);
            std::fs::write(&path, text).map_err(|source| SystemdError::Io {
                step: "writing unit",
                path: path.clone(),
                source,
            })?;
            out.push(path);
        }
        Ok(out)
    }
}

/// One ExecStart word: quoted, with systemd's specifiers (%) and variables ($) escaped.
fn quote(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> UnitSpec {
        UnitSpec {
            name: "web".into(),
            nook: "/usr/local/bin/nook".into(),
            root: "/run/nook".into(),
            bundle: "/srv/web 1/app%.tar".into(),
            listen: vec!["127.0.0.1:8080".into()],
            notify: NotifyMode::Relay,
            run_flags: vec![],
        }
    }

    #[test]
    fn service_and_socket() {
        let s = spec();
        s.check().unwrap();
        let svc = s.service();
        assert!(svc.contains("Type=notify\n"));
        assert!(svc.contains(
            "ExecStart=\"/usr/local/bin/nook\" --root \"/run/nook\" \"run\" \"--bundle\" \"/srv/web 1/app%%.tar\" \"web\"\n"
        ));
        assert!(svc.contains("ExecStopPost=\"/usr/local/bin/nook\" --root \"/run/nook\" \"delete\" \"--force\" \"web\"\n"));
        assert!(svc.contains("Delegate=yes\nKillMode=mixed\n") || svc.contains("KillMode=mixed\n"));
        assert!(svc.contains("Requires=web.socket\nAfter=web.socket\n"));
        let sock = s.socket().unwrap();
        assert!(sock.contains("[Socket]\nListenStream=127.0.0.1:8080\n"));
        let exec = UnitSpec {
            notify: NotifyMode::Exec,
            listen: vec![],
            ..spec()
        };
        assert!(exec.service().contains("\"--notify=exec\" \"web\"\n"));
        assert!(exec.socket().is_none());
        assert!(!exec.service().contains("Requires="));
        let ready = UnitSpec {
            run_flags: vec![
                "--ready-cmd".into(),
                "wget -q -O- http://127.0.0.1:80/$x".into(),
            ],
            ..spec()
        };
        assert!(ready
            .service()
            .contains("\"--ready-cmd\" \"wget -q -O- http://127.0.0.1:80/$$x\" \"web\"\n"));
        let nl = UnitSpec {
            run_flags: vec!["--ready-cmd".into(), "true\nExecStartPre=/bin/evil".into()],
            ..spec()
        };
        assert!(nl.check().unwrap_err().to_string().contains("control"));
    }

    #[test]
    fn bad_names_and_addresses_are_refused() {
        for name in ["", "a/b", "a b", ".x", "x\ny", "a@b"] {
            let s = UnitSpec {
                name: name.into(),
                ..spec()
            };
            assert!(
                s.check().unwrap_err().to_string().contains("NAME"),
                "{name:?}"
            );
        }
        let s = UnitSpec {
            listen: vec!["127.0.0.1:80\nExecStartPre=/bin/evil".into()],
            ..spec()
        };
        assert!(s.check().unwrap_err().to_string().contains("--listen"));
        let s = UnitSpec {
            bundle: "rel/bundle".into(),
            ..spec()
        };
        assert!(s.check().unwrap_err().to_string().contains("--bundle"));
    }
}
