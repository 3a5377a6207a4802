//! Terminals: the pty a `terminal: true` process gets, handed to a console socket the
//! way runc does it (SCM_RIGHTS, the payload "/dev/ptmx"), or proxied by a foreground
//! `run` with the user's terminal in raw mode and window-size changes passed on.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{makedev, Mode, SFlag};
use nix::sys::termios::{self, SetArg, Termios};

use super::fs;
use super::sync::InitError;

nix::ioctl_read_bad!(get_winsize, libc::TIOCGWINSZ, libc::winsize);
nix::ioctl_write_ptr_bad!(set_winsize, libc::TIOCSWINSZ, libc::winsize);
nix::ioctl_write_int_bad!(set_ctty, libc::TIOCSCTTY);

/// A pty opened inside the container (its devpts instance).
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// Open a pty through the container's /dev/ptmx (resolved inside the root, checked to
/// be the ptmx device), its slave taken from the master (TIOCGPTPEER, no path), owned by
/// the process user, with the configured size.
pub fn open(uid: u32, gid: u32, size: Option<(u16, u16)>) -> Result<Pty, InitError> {
    let err = |step: &str| {
        let step = step.to_string();
        move |e| InitError::sys(step, Some("/dev/ptmx"), e)
    };
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("opening the terminal"))?;
    let flags = libc::O_RDWR | libc::O_NOCTTY;
    let master = fs::open_in_root(root.as_fd(), Path::new("/dev/ptmx"), flags, 0)
        .map_err(err("opening the terminal"))?;
    if !is_chr(&master, |r| r == makedev(5, 2)) {
        return Err(InitError::msg(
            "opening the terminal /dev/ptmx",
            "not the ptmx device (5:2)",
        ));
    }
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from a valid pointer.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    Errno::result(r).map_err(err("unlocking the terminal"))?;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to a valid pointer.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) };
    Errno::result(r).map_err(err("naming the terminal"))?;
    let name = format!("/dev/pts/{n}");
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd on the slave.
    let r = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            flags | libc::O_CLOEXEC,
        )
    };
    // SAFETY: on success the kernel returned a new fd that nothing else owns.
    let slave = Errno::result(r)
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .map_err(|e| InitError::sys("opening the terminal", Some(&name), e))?;
    // Unix98 pty slaves are majors 136-143.
    if !is_chr(&slave, |r| (136..=143).contains(&nix::sys::stat::major(r))) {
        return Err(InitError::msg(
            format!("opening the terminal {name}"),
            "not a pty slave",
        ));
    }
    // With a devpts of its own on /dev/pts, the pty must come from that instance.
    if let Some(pts) = own_devpts(root.as_fd()) {
        if nix::sys::stat::fstat(&slave).map(|st| st.st_dev).ok() != Some(pts) {
            return Err(InitError::msg(
                format!("opening the terminal {name}"),
                "the pty is not from the container's /dev/pts",
            ));
        }
    }
    nix::unistd::fchown(
        &slave,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .map_err(|e| InitError::sys("giving the terminal to process.user", Some(&name), e))?;
    if let Some((rows, cols)) = size {
        resize(master.as_fd(), rows, cols)
            .map_err(|e| InitError::sys("setting process.consoleSize", Some(&name), e))?;
    }
    Ok(Pty { master, slave })
}

/// The device number of the devpts instance mounted on the container's /dev/pts, if any.
fn own_devpts(root: BorrowedFd) -> Option<u64> {
    let pts = fs::open_in_root(
        root,
        Path::new("/dev/pts"),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    );
    let pts = pts.ok()?;
    let sfs = nix::sys::statfs::fstatfs(&pts).ok()?;
    if sfs.filesystem_type() != nix::sys::statfs::DEVPTS_SUPER_MAGIC {
        return None;
    }
    nix::sys::stat::fstat(&pts).ok().map(|st| st.st_dev)
}

fn is_chr(fd: &OwnedFd, rdev: impl Fn(u64) -> bool) -> bool {
    nix::sys::stat::fstat(fd).is_ok_and(|st| {
        SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR && rdev(st.st_rdev)
    })
}

/// The pty slave bind-mounted on the container's /dev/console (the runtime spec asks for
/// it when process.terminal is set). /dev is opened beneath the root following no
/// symlink; /dev/console is made an empty file if missing, a symlink there is replaced,
/// a directory refused; the slave is attached from its fd (open_tree + move_mount).
pub fn mount_console(slave: &OwnedFd) -> Result<(), InitError> {
    let err = |e| InitError::sys("mounting the terminal on", Some("/dev/console"), e);
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    let dev = fs::beneath(
        root.as_fd(),
        Path::new("dev"),
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .map_err(err)?;
    let target = fs::plain_file_at(dev.as_fd(), std::ffi::OsStr::new("console")).map_err(err)?;
    let tree = fs::clone_tree(slave.as_fd(), false).map_err(err)?;
    fs::move_mount(tree.as_fd(), target.as_fd()).map_err(err)
}

pub fn resize(fd: BorrowedFd, rows: u16, cols: u16) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer.
    unsafe { set_winsize(fd.as_raw_fd(), &ws) }.map(drop)
}

/// The size of a terminal, if `fd` is one.
pub fn size_of(fd: BorrowedFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize to a valid pointer.
    unsafe { get_winsize(fd.as_raw_fd(), &mut ws) }.ok()?;
    Some((ws.ws_row, ws.ws_col))
}

/// Make the slave our controlling terminal and our stdio.
pub fn make_stdio(slave: &OwnedFd) -> Result<(), InitError> {
    nix::unistd::setsid().map_err(|e| InitError::sys("setsid", None, e))?;
    // SAFETY: TIOCSCTTY takes an int argument; no memory is passed.
    unsafe { set_ctty(slave.as_raw_fd(), 0) }
        .map_err(|e| InitError::sys("making the terminal controlling", None, e))?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the stdio numbers; the old stdio is replaced on purpose.
        let r = unsafe { libc::dup2(slave.as_raw_fd(), fd) };
        nix::errno::Errno::result(r)
            .map_err(|e| InitError::sys("making the terminal stdio", None, e))?;
    }
    Ok(())
}

/// Hand the pty master to a console socket, as runc does.
pub fn send_to_console_socket(path: &Path, master: &OwnedFd) -> crate::error::Result<()> {
    use crate::error::IoContext;
    let s = std::os::unix::net::UnixStream::connect(path)
        .ctx("connecting to --console-socket", path)?;
    super::sync::send_with_fd(s.as_raw_fd(), b"/dev/ptmx", master.as_raw_fd()).map_err(|e| {
        crate::error::Error::Io {
            step: "sending the terminal to --console-socket",
            path: path.to_path_buf(),
            source: e.into(),
        }
    })
}

/// The user's terminal in raw mode for as long as this lives.
pub struct RawMode {
    fd: i32,
    saved: Termios,
}

impl RawMode {
    /// Put `fd` in raw mode if it is a terminal.
    pub fn enter(fd: BorrowedFd) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode {
            fd: fd.as_raw_fd(),
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd is the caller's stdin, open for the whole run.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &self.saved);
    }
}
