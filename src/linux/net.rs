//! A new network namespace starts with its loopback interface down; runc and crun bring
//! it up, and so do we (an app listening on 127.0.0.1 expects it).

use std::os::fd::AsRawFd;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use super::sync::InitError;

/// `ip link set lo up` through SIOCGIFFLAGS / SIOCSIFFLAGS.
pub fn loopback_up() -> Result<(), InitError> {
    let err = |step: &'static str| move |e| InitError::sys(step, Some("lo"), e);
    let s = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(err("opening a socket to configure"))?;
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, c) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *c as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the name and writes the flags of a valid ifreq.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    nix::errno::Errno::result(r).map_err(err("reading the flags of"))?;
    // SAFETY: the flags member of the union is the one SIOCGIFFLAGS filled in.
    unsafe {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    }
    // SAFETY: SIOCSIFFLAGS reads a valid ifreq.
    let r = unsafe { libc::ioctl(s.as_raw_fd(), libc::SIOCSIFFLAGS, &req) };
    nix::errno::Errno::result(r)
        .map(drop)
        .map_err(err("bringing up"))
}
