//! `linux.netDevices`: host network interfaces moved into the container's network
//! namespace (renamed as asked), with one rtnetlink RTM_NEWLINK each, as
//! `ip link set dev IF netns PID name NAME` does. A device moved in leaves with the
//! namespace: a physical one returns to the host when the container's namespace goes,
//! a virtual one (veth, dummy) is destroyed with it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A device that could not be moved: the config key, the host name, why.
#[derive(Debug, thiserror::Error)]
#[error("linux.netDevices.{name}: {why}")]
pub struct NetDevError {
    pub name: String,
    pub why: String,
}

fn err(name: &str, why: impl Into<String>) -> NetDevError {
    NetDevError {
        name: name.to_string(),
        why: why.into(),
    }
}

/// Whether `name` can be an interface name (IFNAMSIZ, no '/', no whitespace).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

const RTM_NEWLINK: u16 = 16;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_PID: u16 = 19;

fn attr(buf: &mut Vec<u8>, typ: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(data);
    while !buf.len().is_multiple_of(4) {
        buf.push(0);
    }
}

/// Move host interface `host` into the network namespace of process `pid`, named `to`.
pub fn move_into(host: &str, to: &str, pid: i32) -> Result<(), NetDevError> {
    let cname = std::ffi::CString::new(host).map_err(|_| err(host, "not an interface name"))?;
    // SAFETY: a NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(err(host, "no such interface on the host"));
    }
    // SAFETY: socket(2) with constant arguments; the fd is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(err(
            host,
            format!("netlink socket: {}", std::io::Error::last_os_error()),
        ));
    }
    // SAFETY: fd was just returned by socket(2) and nothing else owns it.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };

    // struct ifinfomsg: family, pad, type, index, flags, change.
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    body.extend_from_slice(&0u16.to_ne_bytes());
    body.extend_from_slice(&(index as i32).to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    body.extend_from_slice(&0u32.to_ne_bytes());
    attr(&mut body, IFLA_NET_NS_PID, &(pid as u32).to_ne_bytes());
    let mut new_name = to.as_bytes().to_vec();
    new_name.push(0);
    attr(&mut body, IFLA_IFNAME, &new_name);
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    msg.extend_from_slice(&body);

    // SAFETY: msg is a live buffer of msg.len() bytes.
    let n = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if n < 0 {
        return Err(err(
            host,
            format!("netlink send: {}", std::io::Error::last_os_error()),
        ));
    }
    let mut reply = [0u8; 1024];
    // SAFETY: reply is a live buffer of its length.
    let n = unsafe { libc::recv(sock.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
    if n < 20 {
        return Err(err(host, "netlink: no answer"));
    }
    // NLMSG_ERROR (2) carries the errno (0: the ack).
    let typ = u16::from_ne_bytes([reply[4], reply[5]]);
    if typ != 2 {
        return Err(err(host, format!("netlink: unexpected reply type {typ}")));
    }
    let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    if code != 0 {
        let e = std::io::Error::from_raw_os_error(-code);
        return Err(err(
            host,
            format!("moving it into the container's network namespace as {to:?}: {e}"),
        ));
    }
    Ok(())
}
