//! What systemd hands a service, carried into the container: the notify socket
//! (readiness, status, watchdog pings relayed by nook), the watchdog settings and
//! socket-activated fds, so an app in a unit's `nook run` behaves as if systemd ran it.

pub mod delegate;
pub mod notify;
pub mod unit;

use std::path::PathBuf;

use notify::HostSocket;

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("NOTIFY_SOCKET {path:?}: {why}")]
    NotifySocket { path: String, why: String },
    #[error("{var}: {why}")]
    Env { var: &'static str, why: String },
    #[error("nook unit: {what}: {why}")]
    Unit { what: String, why: String },
    #[error("systemd: {step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How the unit learns the app is ready (`run --notify`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum NotifyMode {
    /// Relay the app's own sd_notify messages (when NOTIFY_SOCKET is set).
    #[default]
    Relay,
    /// nook sends READY=1 once the app's execve has succeeded (apps that do not notify).
    Exec,
    /// Neither: NOTIFY_SOCKET is not passed on.
    None,
}

/// Set in the app's environment where its own pid belongs; the init replaces it with
/// getpid() just before exec (1 in a new pid namespace, else its host pid).
pub const SELF_PID: &str = "@nook-self-pid";

/// What systemd gave this nook process.
#[derive(Debug, Clone, Default)]
pub struct Service {
    pub notify: Option<HostSocket>,
    pub mode: NotifyMode,
    /// Socket-activated fds (3..3+n) meant for nook (LISTEN_PID is its pid).
    pub listen_fds: u32,
    pub listen_names: Option<String>,
    pub watchdog_usec: Option<String>,
    /// Started by systemd as (part of) a unit (INVOCATION_ID is set): the container's
    /// cgroup goes inside the unit's when it is delegated.
    pub in_unit: bool,
    /// `run --announce`: the app gets a notify socket (nook reads its READY=1) even when
    /// no systemd is listening.
    pub announce: bool,
}

impl Service {
    /// Read NOTIFY_SOCKET, LISTEN_* and WATCHDOG_* from nook's environment.
    pub fn from_env(mode: NotifyMode) -> Result<Service, SystemdError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let me = std::process::id().to_string();
        let notify = match mode {
            NotifyMode::None => None,
            _ => HostSocket::from_env()?,
        };
        let mut listen_fds = 0;
        if var("LISTEN_PID").as_deref() == Some(me.as_str()) {
            let n = var("LISTEN_FDS").ok_or(SystemdError::Env {
                var: "LISTEN_FDS",
                why: "LISTEN_PID names nook but LISTEN_FDS is not set".into(),
            })?;
            listen_fds = n.parse::<u32>().map_err(|_| SystemdError::Env {
                var: "LISTEN_FDS",
                why: format!("{n:?} is not a number of fds"),
            })?;
            for fd in 3..3 + listen_fds as i32 {
                check_socket(fd)?;
            }
        }
        // WATCHDOG_PID names the process systemd expects pings from; another pid means
        // the variables were meant for someone else.
        let watchdog = match var("WATCHDOG_PID") {
            Some(p) if p != me => None,
            _ => var("WATCHDOG_USEC"),
        };
        Ok(Service {
            notify,
            mode,
            listen_fds,
            listen_names: var("LISTEN_FDNAMES").filter(|_| listen_fds > 0),
            watchdog_usec: watchdog,
            in_unit: var("INVOCATION_ID").is_some(),
            announce: false,
        })
    }

    /// Whether nook relays the app's messages.
    pub fn relays(&self) -> bool {
        (self.notify.is_some() || self.announce) && self.mode == NotifyMode::Relay
    }

    /// The app's environment entries (replacing any of the same names in the config).
    pub fn app_env(&self) -> Vec<String> {
        let mut env = vec![];
        if self.relays() {
            env.push(format!(
                "NOTIFY_SOCKET={}/{}",
                notify::CONTAINER_DIR,
                notify::SOCKET_NAME
            ));
        }
        if let Some(us) = &self.watchdog_usec {
            if self.relays() {
                env.push(format!("WATCHDOG_USEC={us}"));
                env.push(format!("WATCHDOG_PID={SELF_PID}"));
            }
        }
        if self.listen_fds > 0 {
            env.push(format!("LISTEN_FDS={}", self.listen_fds));
            env.push(format!("LISTEN_PID={SELF_PID}"));
            if let Some(n) = &self.listen_names {
                env.push(format!("LISTEN_FDNAMES={n}"));
            }
        }
        env
    }
}

/// An activated fd must be an open socket (else LISTEN_FDS lies about what nook holds).
fn check_socket(fd: i32) -> Result<(), SystemdError> {
    use nix::sys::stat::{fstat, SFlag};
    // SAFETY: fstat only reads the fd's metadata; the fd is not taken over.
    let fd_b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    match fstat(fd_b) {
        Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK => {
            Ok(())
        }
        Ok(_) => Err(SystemdError::Env {
            var: "LISTEN_FDS",
            why: format!("fd {fd} is not a socket"),
        }),
        Err(e) => Err(SystemdError::Env {
            var: "LISTEN_FDS",
            why: format!("fd {fd} is not open: {e}"),
        }),
    }
}

/// Merge entries into an environment, replacing same-named ones.
pub fn merge_env(env: &mut Vec<String>, add: &[String]) {
    for a in add {
        let name = a.split('=').next().unwrap_or(a);
        env.retain(|e| e.split('=').next() != Some(name));
        env.push(a.clone());
    }
}

/// In the init, just before exec: the app's own pid where SELF_PID stands.
pub fn fill_own_pid(env: &mut [String]) {
    let me = nix::unistd::getpid().to_string();
    for e in env.iter_mut() {
        if let Some((k, v)) = e.split_once('=') {
            if v == SELF_PID {
                *e = format!("{k}={me}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_env_for_relay_watchdog_and_activation() {
        let s = Service {
            notify: Some(HostSocket {
                name: "/run/systemd/notify".into(),
            }),
            mode: NotifyMode::Relay,
            listen_fds: 2,
            listen_names: Some("http:admin".into()),
            watchdog_usec: Some("3000000".into()),
            in_unit: true,
            announce: false,
        };
        assert_eq!(
            s.app_env(),
            [
                "NOTIFY_SOCKET=/run/notify/notify.sock",
                "WATCHDOG_USEC=3000000",
                &format!("WATCHDOG_PID={SELF_PID}"),
                "LISTEN_FDS=2",
                &format!("LISTEN_PID={SELF_PID}"),
                "LISTEN_FDNAMES=http:admin",
            ]
        );
        let exec = Service {
            mode: NotifyMode::Exec,
            ..s
        };
        assert!(!exec
            .app_env()
            .iter()
            .any(|e| e.starts_with("NOTIFY_SOCKET=")));
    }

    #[test]
    fn merge_replaces_and_own_pid_is_filled() {
        let mut env = vec!["PATH=/bin".to_string(), "LISTEN_FDS=9".to_string()];
        merge_env(
            &mut env,
            &["LISTEN_FDS=1".into(), format!("LISTEN_PID={SELF_PID}")],
        );
        assert_eq!(env[..2], ["PATH=/bin", "LISTEN_FDS=1"]);
        fill_own_pid(&mut env);
        assert_eq!(env[2], format!("LISTEN_PID={}", std::process::id()));
    }
}
