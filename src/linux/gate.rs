//! The exec gate: how `start` releases a created container and learns that its
//! process really started. The parent of `create` binds a SOCK_SEQPACKET socket at
//! `<state dir>/exec.sock`; the init, fully set up, waits in accept(). `start`
//! connects, unlinks the socket (from then on the status is "running"), sends one
//! byte and reads until end of file: the init's end of the connection is
//! close-on-exec, so EOF arrives exactly when the process execs, after the
//! startContainer hooks. A failure before the exec arrives as a message instead.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};

pub const EXEC_SOCK: &str = "exec.sock";

/// A short path to `<dir>/exec.sock` (unix socket paths are limited to 108 bytes,
/// ids are not): through an O_PATH handle on the directory.
fn addr(dir: &OwnedFd) -> nix::Result<UnixAddr> {
    UnixAddr::new(format!("/proc/self/fd/{}/{EXEC_SOCK}", dir.as_raw_fd()).as_str())
}

fn open_dir(dir: &Path) -> nix::Result<OwnedFd> {
    use nix::fcntl::OFlag;
    nix::fcntl::open(
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
}

fn seqpacket() -> nix::Result<OwnedFd> {
    socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
}

/// Parent of `create`: the listening socket the init will wait on.
pub fn listen(dir: &Path) -> nix::Result<OwnedFd> {
    let d = open_dir(dir)?;
    let s = seqpacket()?;
    socket::bind(s.as_raw_fd(), &addr(&d)?)?;
    socket::listen(&s, socket::Backlog::new(1)?)?;
    Ok(s)
}

/// Init: block until `start` connects and sends its byte. The connection is returned
/// (close-on-exec) so `start` sees EOF at the exec.
pub fn wait(listener: &OwnedFd) -> nix::Result<OwnedFd> {
    loop {
        match socket::accept4(listener, SockFlag::SOCK_CLOEXEC) {
            Ok(conn) => {
                let mut b = [0u8; 1];
                match socket::recv(conn.as_raw_fd(), &mut b, MsgFlags::empty()) {
                    Ok(1) => return Ok(conn),
                    // A connection that went away without the byte was not `start`.
                    Ok(_) | Err(_) => continue,
                }
            }
            Err(nix::Error::EINTR) | Err(nix::Error::ECONNABORTED) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Init: tell `start` why the process will not run.
pub fn fail(conn: &OwnedFd, msg: &str) {
    let _ = socket::send(conn.as_raw_fd(), msg.as_bytes(), MsgFlags::MSG_NOSIGNAL);
}

/// `start`: release the init and wait until its process has exec'd. Err carries the
/// init's reason, or the errno when the gate cannot be reached.
pub fn open(dir: &Path) -> Result<(), GateError> {
    let d = open_dir(dir).map_err(GateError::Sys)?;
    let s = seqpacket().map_err(GateError::Sys)?;
    socket::connect(s.as_raw_fd(), &addr(&d).map_err(GateError::Sys)?).map_err(GateError::Sys)?;
    let _ = nix::unistd::unlinkat(&d, EXEC_SOCK, nix::unistd::UnlinkatFlags::NoRemoveDir);
    socket::send(s.as_raw_fd(), &[0u8], MsgFlags::MSG_NOSIGNAL).map_err(GateError::Sys)?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match socket::recv(s.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => return Ok(()),
            Ok(n) => return Err(GateError::Init(String::from_utf8_lossy(&buf[..n]).into())),
            Err(nix::Error::EINTR) => continue,
            // The init died without a word after taking the byte.
            Err(nix::Error::ECONNRESET) => return Ok(()),
            Err(e) => return Err(GateError::Sys(e)),
        }
    }
}

#[derive(Debug)]
pub enum GateError {
    Sys(nix::Error),
    Init(String),
}
