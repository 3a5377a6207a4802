//! SCMP_ACT_NOTIFY: the notify fd's way from the container process to the agent at
//! linux.seccomp.listenerPath.
//!
//! The process loads its filter (with NEW_LISTENER) and sends the fd to nook over the
//! sync channel (`Msg::SeccompFd`, SCM_RIGHTS), then waits. nook connects to the
//! listener's SOCK_STREAM socket, sends the container process state (runtime spec,
//! config-linux.md "The Container Process State") with the fd in SCM_RIGHTS on the
//! first sendmsg, closes the connection and its copy of the fd, and answers
//! `Msg::SeccompDone`. The process closes its own copy before going on: only the
//! agent holds the fd, so nothing in the container can answer its own notifications.
//! If the agent cannot be reached, setup fails and nothing is left behind.
//!
//! The profile may send any syscall to the agent, sendmsg included (bypass4netns does),
//! and the agent only gets the fd once it has been sent: the process's own sendmsg
//! would then wait for an answer nobody can give. So the fd is sent by a helper
//! thread started before the load, which the filter does not cover (a filter binds
//! the thread that loads it; TSYNC is left out for that, harmlessly: the helper is the
//! only other thread and is gone before execve). Between the load and the send the
//! loading thread makes no syscall: it publishes the fd number in memory and spins
//! until the helper has sent it (as crun does, with a helper process).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr};
use serde_json::json;

use super::seccomp::{Filter, Listener};
use super::sync::{Channel, InitError, Msg};

/// In the container process: load `f`; with NOTIFY rules, hand the notify fd to the
/// parent and wait until it has reached the listener.
pub fn load(f: &Filter, chan: &Channel) -> Result<(), InitError> {
    if f.listener().is_none() {
        return f.load().map(drop);
    }
    let step = "handing the seccomp notify fd to nook";
    let fd = load_and_hand_over(f, chan).map_err(|e| match e {
        Handover::Load(e) => e,
        Handover::Send(e) => InitError::sys(step, None, e),
    })?;
    drop(fd);
    match chan.recv() {
        Ok(Some(Msg::SeccompDone)) => Ok(()),
        Ok(_) => Err(InitError::msg(step, "unexpected message")),
        Err(e) => Err(InitError::sys(step, None, e)),
    }
}

enum Handover {
    Load(InitError),
    Send(nix::Error),
}

/// Load `f` (with NEW_LISTENER) and send its notify fd to nook from a helper thread
/// the filter does not cover; this thread makes no syscall in between.
fn load_and_hand_over(f: &Filter, chan: &Channel) -> Result<OwnedFd, Handover> {
    use std::sync::atomic::{AtomicI32, Ordering};
    const WAITING: i32 = -1;
    const GIVE_UP: i32 = -2;
    const PENDING: i32 = i32::MIN;
    let fd_no = AtomicI32::new(WAITING);
    // PENDING until the helper has sent; then 0 or the errno.
    let sent = AtomicI32::new(PENDING);
    let send = chan.fd_sender(&Msg::SeccompFd);
    std::thread::scope(|s| {
        let helper = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn_scoped(s, || loop {
                match fd_no.load(Ordering::Acquire) {
                    WAITING => std::thread::yield_now(),
                    GIVE_UP => return,
                    fd => {
                        let r = send(fd).map_or_else(|e| e as i32, |()| 0);
                        sent.store(r, Ordering::Release);
                        return;
                    }
                }
            });
        let helper = match helper {
            Ok(h) => h,
            // No thread to be had (a pids limit of 1, say): load and send from here,
            // which only a NOTIFY rule on sendmsg itself could hang.
            Err(_) => return load_and_send_here(f, &send),
        };
        let fd = match notify_fd(f.load_unsynced()) {
            Ok(fd) => fd,
            Err(e) => {
                fd_no.store(GIVE_UP, Ordering::Release);
                drop(helper.join());
                return Err(Handover::Load(e));
            }
        };
        fd_no.store(fd.as_raw_fd(), Ordering::Release);
        // No syscall here: any may be the agent's to answer, and it has no fd yet.
        let r = loop {
            match sent.load(Ordering::Acquire) {
                PENDING => std::hint::spin_loop(),
                r => break r,
            }
        };
        drop(helper.join());
        match r {
            0 => Ok(fd),
            e => Err(Handover::Send(nix::Error::from_raw(e))),
        }
    })
}

fn load_and_send_here(
    f: &Filter,
    send: &dyn Fn(i32) -> nix::Result<()>,
) -> Result<OwnedFd, Handover> {
    let fd = notify_fd(f.load()).map_err(Handover::Load)?;
    send(fd.as_raw_fd()).map_err(Handover::Send)?;
    Ok(fd)
}

/// The notify fd a load with a listener returns.
fn notify_fd(loaded: Result<Option<OwnedFd>, InitError>) -> Result<OwnedFd, InitError> {
    loaded?.ok_or_else(|| {
        InitError::msg(
            "loading linux.seccomp",
            "no notify fd although the profile has a listener",
        )
    })
}

/// The filter still to load just before execve (with no_new_privs on; without it the
/// filter was loaded early). One with a notify listener is loaded now instead, before
/// Ready, while nook is still there to pass its fd on.
pub fn load_listener_now<'f>(
    filter: Option<&'f Filter>,
    nnp: bool,
    chan: &Channel,
) -> Result<Option<&'f Filter>, InitError> {
    match filter.filter(|_| nnp) {
        Some(f) if f.listener().is_some() => load(f, chan).map(|()| None),
        late => Ok(late),
    }
}

/// The container process state the listener receives.
pub fn process_state(l: &Listener, pid: i32, state: &str) -> serde_json::Value {
    let state: serde_json::Value = serde_json::from_str(state).expect("state_json is JSON");
    let mut v = json!({
        "ociVersion": state["ociVersion"],
        "fds": ["seccompFd"],
        "pid": pid,
        "state": state,
    });
    if let Some(m) = &l.metadata {
        v["metadata"] = json!(m);
    }
    v
}

/// In nook: pass the notify fd of process `pid` to the listener, with `state` (the
/// container's state document, as hooks get it).
pub fn forward(l: &Listener, fd: &OwnedFd, pid: i32, state: &str) -> Result<(), InitError> {
    let path = l.path.to_string_lossy();
    let step = "sending the seccomp notify fd to linux.seccomp.listenerPath";
    let err = |e| InitError::sys(step, Some(&path), e);
    let sock = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(err)?;
    let addr = UnixAddr::new(&l.path).map_err(err)?;
    socket::connect(sock.as_raw_fd(), &addr).map_err(err)?;
    let body = serde_json::to_vec(&process_state(l, pid, state)).expect("JSON serializes");
    // The fd rides on the first sendmsg; a short write is finished with plain sends.
    let iov = [std::io::IoSlice::new(&body)];
    let fds = [fd.as_raw_fd()];
    let cmsg = [socket::ControlMessage::ScmRights(&fds)];
    let flags = socket::MsgFlags::MSG_NOSIGNAL;
    let mut sent =
        socket::sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, flags, None).map_err(err)?;
    while sent < body.len() {
        sent += socket::send(sock.as_raw_fd(), &body[sent..], flags).map_err(err)?;
    }
    Ok(())
}

/// In nook, on `Msg::SeccompFd`: forward the fd that came with it and tell the process
/// to go on.
pub fn answer(
    chan: &Channel,
    l: Option<&Listener>,
    pid: i32,
    state: impl FnOnce() -> String,
) -> Result<(), InitError> {
    let step = "receiving the seccomp notify fd";
    let fd = chan
        .take_fd()
        .ok_or_else(|| InitError::msg(step, "no fd came with the message"))?;
    let l = l.ok_or_else(|| InitError::msg(step, "the profile has no listener"))?;
    forward(l, &fd, pid, &state())?;
    drop(fd);
    chan.send(&Msg::SeccompDone)
        .map_err(|e| InitError::sys("telling the process the listener has its fd", None, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_document_has_the_spec_fields() {
        let l = Listener {
            path: "/run/agent.sock".into(),
            metadata: Some("MKNOD=/dev/null".into()),
        };
        let st = crate::hooks::state_json(
            "1.2.0",
            "c1",
            "creating",
            42,
            std::path::Path::new("/b"),
            &Default::default(),
        );
        let v = process_state(&l, 43, &st);
        assert_eq!(v["ociVersion"], "1.2.0");
        assert_eq!(v["fds"], json!(["seccompFd"]));
        assert_eq!(v["pid"], 43);
        assert_eq!(v["metadata"], "MKNOD=/dev/null");
        assert_eq!(v["state"]["id"], "c1");
        assert_eq!(v["state"]["status"], "creating");
        assert_eq!(v["state"]["pid"], 42);
    }
}
