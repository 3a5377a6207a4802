//! The typed channel between `nook` (parent) and the container's init (child):
//! one SOCK_SEQPACKET socketpair, one JSON message per packet. Errors cross it
//! as structured values (the step, the path, the errno), never a flattened string.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

/// A failure inside the container's init, reported to the parent.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub struct InitError {
    /// What init was doing ("mounting mounts[2] (proc) on /proc").
    pub step: String,
    /// The path involved, when there is one.
    pub path: Option<String>,
    /// The errno, when a syscall failed.
    pub errno: Option<i32>,
    /// The complete message when there is no errno (e.g. runc's exec wording).
    pub msg: Option<String>,
}

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.step)?;
        if let Some(p) = &self.path {
            write!(f, " {p}")?;
        }
        if let Some(e) = self.errno {
            write!(f, ": {}", std::io::Error::from_raw_os_error(e))?;
        }
        if let Some(m) = &self.msg {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl InitError {
    pub fn sys(step: impl Into<String>, path: Option<&str>, errno: nix::Error) -> Self {
        InitError {
            step: step.into(),
            path: path.map(str::to_string),
            errno: Some(errno as i32),
            msg: None,
        }
    }

    pub fn msg(step: impl Into<String>, msg: impl Into<String>) -> Self {
        InitError {
            step: step.into(),
            path: None,
            errno: None,
            msg: Some(msg.into()),
        }
    }
}

/// Everything that crosses the channel.
#[derive(Debug, Serialize, Deserialize)]
pub enum Msg {
    /// Parent -> child: ids are mapped; go on with the setup.
    Go,
    /// Parent -> child: the cgroup is joined (the cgroup namespace may be made now).
    Attached,
    /// Parent -> child, after Go and before Attached: the container's cgroup directories
    /// exist (a `cgroup` mount may bind them now).
    CgroupMade,
    /// Intermediate -> parent: write the id maps for this pid (two-stage start).
    MapUser(i32),
    /// Intermediate -> parent: the pid of the container's init (two-stage start).
    InitPid(i32),
    /// Child -> parent: mounts are done; run prestart and createRuntime hooks now.
    RunHooks,
    /// Parent -> child: those hooks ran; here is the state document for the child's own.
    HooksDone(String),
    /// Child -> parent: the pty master of a terminal container rides along (SCM_RIGHTS).
    Console,
    /// Child -> parent: set up, waiting on the exec FIFO.
    Ready,
    /// Child -> parent: setup failed.
    Failed(InitError),
    /// Child -> parent: the seccomp notify fd rides along (SCM_RIGHTS), for the listener.
    SeccompFd,
    /// Parent -> child: the listener has the notify fd; go on.
    SeccompDone,
    /// Parent -> child, before Go, in a user namespace: the source of mounts[N],
    /// cloned by nook (SCM_RIGHTS; see linux::mount_sources).
    MountSource(usize),
    /// Exec trampoline -> parent: its exec of this path failed with this errno (written
    /// by the trampoline itself; see linux::trampoline).
    ExecFailed(String, i32),
}

pub struct Channel {
    fd: OwnedFd,
    /// An fd that arrived with the last message (SCM_RIGHTS), until taken.
    passed: std::cell::RefCell<Option<OwnedFd>>,
}

/// A connected pair: (parent's end, child's end). Both close on exec.
pub fn pair() -> nix::Result<(Channel, Channel)> {
    let (a, b) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel::new(a), Channel::new(b)))
}

impl Channel {
    fn new(fd: OwnedFd) -> Channel {
        Channel {
            fd,
            passed: std::cell::RefCell::new(None),
        }
    }

    /// Send a message with an fd attached.
    pub fn send_fd(&self, msg: &Msg, fd: &impl AsRawFd) -> nix::Result<()> {
        let buf = serde_json::to_vec(msg).expect("messages serialize");
        send_with_fd(self.fd.as_raw_fd(), &buf, fd.as_raw_fd())
    }

    /// A sender of `msg` with an fd attached that another thread may use: it holds only
    /// the socket's number and the message, encoded here, by the caller's thread.
    pub fn fd_sender(&self, msg: &Msg) -> impl Fn(i32) -> nix::Result<()> + Send + Sync {
        let sock = self.fd.as_raw_fd();
        let buf = serde_json::to_vec(msg).expect("messages serialize");
        move |fd| send_with_fd(sock, &buf, fd)
    }

    /// The fd that came with the last message, if any.
    pub fn take_fd(&self) -> Option<OwnedFd> {
        self.passed.borrow_mut().take()
    }

    pub fn send(&self, msg: &Msg) -> nix::Result<()> {
        let buf = serde_json::to_vec(msg).expect("messages serialize");
        socket::send(self.fd.as_raw_fd(), &buf, MsgFlags::MSG_NOSIGNAL)?;
        Ok(())
    }

    /// The next message, or None when the other end has closed (exited or exec'd).
    pub fn recv(&self) -> nix::Result<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match recv_with_fd(self.fd.as_raw_fd(), &mut buf) {
                Ok((0, _)) => return Ok(None),
                Ok((n, fd)) => {
                    if fd.is_some() {
                        *self.passed.borrow_mut() = fd;
                    }
                    return serde_json::from_slice(&buf[..n])
                        .map(Some)
                        .map_err(|_| nix::Error::EBADMSG);
                }
                // A peer that exits with our last message unread resets the socket;
                // the kernel reports that once, and what it sent is still queued.
                Err(nix::Error::EINTR) | Err(nix::Error::ECONNRESET) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The socket's fd number (for the exec trampoline, which reports on it).
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Move the socket to an fd number at or above `floor`.
    pub fn lifted(self, floor: i32) -> nix::Result<Channel> {
        Ok(Channel::new(super::fs::lift(self.fd, floor)?))
    }
}

/// sendmsg with one fd in SCM_RIGHTS (also what a console socket receives).
pub fn send_with_fd(sock: i32, data: &[u8], fd: i32) -> nix::Result<()> {
    let iov = [std::io::IoSlice::new(data)];
    let fds = [fd];
    let cmsg = [socket::ControlMessage::ScmRights(&fds)];
    socket::sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// recvmsg that also takes one SCM_RIGHTS fd (made close-on-exec).
pub fn recv_with_fd(sock: i32, buf: &mut [u8]) -> nix::Result<(usize, Option<OwnedFd>)> {
    use std::os::fd::FromRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([i32; 1]);
    let msg = socket::recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fd = None;
    for c in msg.cmsgs()? {
        if let socket::ControlMessageOwned::ScmRights(fds) = c {
            for f in fds {
                // SAFETY: the kernel installed this fd for us; nothing else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                if fd.is_none() {
                    fd = Some(owned);
                }
            }
        }
    }
    Ok((msg.bytes, fd))
}
