//! sd_notify for a container: the host socket systemd gave nook (`NOTIFY_SOCKET`), the
//! socket nook gives the app inside its root, and the relay between them. nook forwards
//! only the keys that describe the service (READY, STATUS, WATCHDOG, ...); MAINPID,
//! FDSTORE and the like name pids and fds of the container's world and are dropped.

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use super::SystemdError;

/// The largest message systemd reads (its NOTIFY_BUFFER_MAX is PIPE_BUF).
pub const MAX_MESSAGE: usize = 4096;

/// Where the app finds its notify socket inside the container.
pub const CONTAINER_DIR: &str = "/run/notify";
pub const SOCKET_NAME: &str = "notify.sock";

/// The keys relayed from the app to systemd.
const RELAYED: &[&str] = &[
    "READY",
    "RELOADING",
    "STOPPING",
    "STATUS",
    "ERRNO",
    "BUSERROR",
    "WATCHDOG",
    "WATCHDOG_USEC",
    "EXTEND_TIMEOUT_USEC",
    "MONOTONIC_USEC",
];

/// A message from the app that is not relayed as a whole.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("notify message of {0} bytes or more is over systemd's limit of {MAX_MESSAGE}")]
    TooLong(usize),
    #[error("notify message is not UTF-8")]
    NotText,
}

/// The lines of a message systemd should see: `KEY=VALUE` lines whose key is relayed,
/// in order. Lines that are not `KEY=VALUE` and keys not relayed are left out; an empty
/// result means nothing to send.
pub fn filter(msg: &[u8]) -> Result<String, MessageError> {
    if msg.len() > MAX_MESSAGE {
        return Err(MessageError::TooLong(msg.len()));
    }
    let text = std::str::from_utf8(msg).map_err(|_| MessageError::NotText)?;
    let mut out = String::new();
    for line in text.split('\n') {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if !RELAYED.contains(&key) || value.contains('\0') {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// The socket systemd listens on: a path, or an abstract name (`@name`).
#[derive(Debug, Clone)]
pub struct HostSocket {
    pub name: String,
}

impl HostSocket {
    /// `NOTIFY_SOCKET`, if set. A path must exist (a stale variable is an error now, not
    /// a unit that never becomes ready).
    pub fn from_env() -> Result<Option<HostSocket>, SystemdError> {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let name = name.to_string_lossy().into_owned();
        if name.is_empty() {
            return Ok(None);
        }
        if !name.starts_with('@') && !Path::new(&name).exists() {
            return Err(SystemdError::NotifySocket {
                path: name,
                why: "no such socket".into(),
            });
        }
        Ok(Some(HostSocket { name }))
    }

    /// Send one message as nook (its pid is what systemd sees).
    pub fn send(&self, msg: &str) -> Result<(), SystemdError> {
        let err = |e: std::io::Error| SystemdError::NotifySocket {
            path: self.name.clone(),
            why: e.to_string(),
        };
        let sock = UnixDatagram::unbound().map_err(err)?;
        match self.name.strip_prefix('@') {
            Some(abs) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(abs.as_bytes())
                    .map_err(err)?;
                sock.send_to_addr(msg.as_bytes(), &addr).map_err(err)?;
            }
            None => {
                sock.send_to(msg.as_bytes(), &self.name).map_err(err)?;
            }
        }
        Ok(())
    }
}

/// The app's end: a datagram socket nook binds in the state dir (`notify/notify.sock`),
/// which the container sees at /run/notify/notify.sock.
/// What the app said in the messages a `pump` passed on.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pumped {
    pub ready: bool,
    pub stopping: bool,
}

pub struct Relay {
    pub sock: UnixDatagram,
    pub dir: PathBuf,
    /// `run --ready-cmd`: readiness is nook's to say; the app's READY=1 is not passed on.
    pub hold_ready: bool,
}

impl Relay {
    pub fn bind(state_dir: &Path) -> Result<Relay, SystemdError> {
        let dir = state_dir.join("notify");
        let io = |step: &'static str, p: &Path| {
            let path = p.to_path_buf();
            move |source| SystemdError::Io { step, path, source }
        };
        std::fs::create_dir(&dir).map_err(io("making the notify dir", &dir))?;
        let path = dir.join(SOCKET_NAME);
        let sock = UnixDatagram::bind(&path).map_err(io("binding the notify socket", &path))?;
        sock.set_nonblocking(true)
            .map_err(io("making the notify socket non-blocking", &path))?;
        // Any uid inside may notify (the app may run as any user); the dir stays root's.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            .map_err(io("opening the notify socket to the app", &path))?;
        Ok(Relay {
            sock,
            dir,
            hold_ready: false,
        })
    }

    /// Forward every message waiting on the socket (to systemd, when nook has one);
    /// returns what went by. Malformed or oversize messages are reported on stderr and
    /// dropped, as systemd would drop them.
    pub fn pump(&self, host: Option<&HostSocket>) -> Pumped {
        let mut buf = [0u8; MAX_MESSAGE + 1];
        let mut seen = Pumped::default();
        loop {
            let n = match nix::sys::socket::recv(
                self.sock.as_raw_fd(),
                &mut buf,
                nix::sys::socket::MsgFlags::MSG_TRUNC,
            ) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(_) => return seen,
            };
            // MSG_TRUNC: n is the datagram's whole length, however much of it fitted.
            let msg = if n > MAX_MESSAGE {
                Err(MessageError::TooLong(n))
            } else {
                filter(&buf[..n])
            };
            let msg = msg.map(|m| match self.hold_ready {
                true => m
                    .lines()
                    .filter(|l| *l != "READY=1")
                    .map(|l| format!("{l}\n"))
                    .collect(),
                false => m,
            });
            match msg {
                Ok(m) if m.is_empty() => {}
                Ok(m) => {
                    seen.ready |= m.lines().any(|l| l == "READY=1");
                    seen.stopping |= m.lines().any(|l| l == "STOPPING=1");
                    if let Some(Err(e)) = host.map(|h| h.send(&m)) {
                        eprintln!("nook: relaying to systemd: {e}");
                    }
                }
                Err(e) => eprintln!("nook: dropped a message from the container: {e}"),
            }
        }
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_keys_pass_in_order() {
        let m = filter(b"READY=1\nSTATUS=serving 3 clients\nWATCHDOG=1").unwrap();
        assert_eq!(m, "READY=1\nSTATUS=serving 3 clients\nWATCHDOG=1\n");
        let m = filter(b"EXTEND_TIMEOUT_USEC=5000000\nERRNO=2\nWATCHDOG=trigger\n").unwrap();
        assert_eq!(
            m,
            "EXTEND_TIMEOUT_USEC=5000000\nERRNO=2\nWATCHDOG=trigger\n"
        );
    }

    #[test]
    fn container_pids_and_fds_are_dropped() {
        let m = filter(b"MAINPID=1\nREADY=1\nFDSTORE=1\nFDNAME=x\nBARRIER=1").unwrap();
        assert_eq!(m, "READY=1\n");
        assert_eq!(filter(b"MAINPID=7").unwrap(), "");
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let m = filter(b"garbage\n=1\nREADY\nSTATUS=a=b\n\n").unwrap();
        assert_eq!(m, "STATUS=a=b\n");
        assert_eq!(filter(b"STATUS=x\0y").unwrap(), "");
        assert_eq!(filter(b"\xff\xfe").unwrap_err(), MessageError::NotText);
    }

    #[test]
    fn oversize_is_refused() {
        let big = vec![b'a'; MAX_MESSAGE + 1];
        assert_eq!(
            filter(&big).unwrap_err(),
            MessageError::TooLong(MAX_MESSAGE + 1)
        );
        let mut ok = b"STATUS=".to_vec();
        ok.resize(MAX_MESSAGE, b'x');
        assert_eq!(filter(&ok).unwrap().len(), MAX_MESSAGE + 1);
    }

    /// A read that a stop and continue of the test process (EINTR on a socket with a
    /// timeout, see signal(7)) does not fail.
    fn recv(sock: &UnixDatagram, buf: &mut [u8]) -> usize {
        loop {
            match sock.recv(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => return r.unwrap(),
            }
        }
    }

    #[test]
    fn relay_forwards_to_the_host_socket() {
        let dir = std::env::temp_dir().join(format!("nook-relay-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let host_path = dir.join("host.sock");
        let host_sock = UnixDatagram::bind(&host_path).unwrap();
        host_sock
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let host = HostSocket {
            name: host_path.to_string_lossy().into_owned(),
        };
        let relay = Relay::bind(&dir).unwrap();
        let app = UnixDatagram::unbound().unwrap();
        let inside = relay.dir.join(SOCKET_NAME);
        app.send_to(b"MAINPID=1\nSTATUS=starting", &inside).unwrap();
        app.send_to(&vec![b'x'; MAX_MESSAGE + 10], &inside).unwrap();
        app.send_to(b"READY=1", &inside).unwrap();
        assert!(relay.pump(Some(&host)).ready);
        let mut buf = [0u8; 64];
        let n = recv(&host_sock, &mut buf);
        assert_eq!(&buf[..n], b"STATUS=starting\n");
        let n = recv(&host_sock, &mut buf);
        assert_eq!(&buf[..n], b"READY=1\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
