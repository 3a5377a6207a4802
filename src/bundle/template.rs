//! Config templates: files rendered with `${NAME}` macros expanded; `$$` is a dollar;
//! an unknown macro is an error naming the file and line. No code runs.
//!
//! The syntax, all of it:
//! - `${NAME}` is replaced by the value of NAME; names are `[A-Za-z_][A-Za-z0-9_]*`.
//! - `$$` writes one literal `$` (so `$${X}` gives `${X}` unexpanded).
//! - A `$` followed by anything but `{` or `$` (or at the end of the file) is literal:
//!   `$HOME`, `$1` and `5$` pass through unchanged, so shell snippets survive.
//! - An unknown name, an empty or malformed name (`${}`, `${1X}`, `${A-B}`) and a `${`
//!   with no `}` before the end of its line are errors naming the file and the line.
//! - Values are inserted as they are: they are never expanded again.
//!
//! Templates are read without following symbolic links (every directory and file is
//! opened relative to its parent with O_NOFOLLOW): a symlink, fifo, socket or device in
//! a config directory is refused, so a template can never read or reach beyond its
//! directory. The rendered files are written under the container's state dir (mode 0644)
//! and bound read-only at their relative paths inside the container.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};

use super::BundleError;

/// Where the host's machine id is read (`${MACHINE_ID}`).
pub const MACHINE_ID_FILE: &str = "/etc/machine-id";

/// Why expansion failed, and on which line (1-based) the offending `$` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpandError {
    pub line: usize,
    pub why: String,
}

/// Whether `name` is a valid macro name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c == b'_' || c.is_ascii_alphabetic())
        && b.all(|c| c == b'_' || c.is_ascii_alphanumeric())
}

fn name_byte(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// Expand `text`: `lookup(name)` gives a macro's value, or why there is none.
pub fn expand(
    text: &[u8],
    lookup: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Vec<u8>, ExpandError> {
    let mut out = Vec::with_capacity(text.len());
    let mut line = 1;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if c != b'$' {
            if c == b'\n' {
                line += 1;
            }
            out.push(c);
            i += 1;
            continue;
        }
        match text.get(i + 1) {
            Some(b'$') => {
                out.push(b'$');
                i += 2;
            }
            Some(b'{') => {
                let start = i + 2;
                let end = text[start..]
                    .iter()
                    .position(|&b| !name_byte(b))
                    .map(|p| start + p);
                let err = |why: String| ExpandError { line, why };
                match end.map(|e| (e, text[e])) {
                    Some((e, b'}')) => {
                        // Only name bytes (ASCII) lie between the braces.
                        let name = std::str::from_utf8(&text[start..e]).expect("ascii");
                        if name.is_empty() {
                            return Err(err("empty macro name ${}".into()));
                        }
                        if !valid_name(name) {
                            return Err(err(format!(
                                "bad macro name ${{{name}}}: names are [A-Za-z_][A-Za-z0-9_]*"
                            )));
                        }
                        let value = lookup(name).map_err(err)?;
                        out.extend_from_slice(value.as_bytes());
                        i = e + 1;
                    }
                    None | Some((_, b'\n')) => {
                        return Err(err(format!(
                        "unterminated {}: no closing }} on this line (write $$ for a literal $)",
                        snippet(&text[i..])
                    )))
                    }
                    Some(_) => {
                        return Err(err(format!(
                            "bad macro {}: names are [A-Za-z_][A-Za-z0-9_]* \
                             (write $$ for a literal $)",
                            snippet(&text[i..])
                        )))
                    }
                }
            }
            _ => {
                out.push(b'$');
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The start of a macro for an error message: up to its `}` or the end of its line.
fn snippet(from: &[u8]) -> String {
    let stop = from
        .iter()
        .position(|&b| b == b'}' || b == b'\n')
        .map_or(from.len(), |p| if from[p] == b'}' { p + 1 } else { p });
    let stop = stop.min(64);
    format!("{:?}", String::from_utf8_lossy(&from[..stop]))
}

/// The variables a template sees: the caller's (`--var`, `--var-file`) first, so they
/// can override a built-in, then HOSTNAME, CONTAINER_ID, MACHINE_ID and HOST_IP. The
/// machine id and host address are looked up only when a template uses them.
pub struct Vars<'a> {
    hostname: &'a str,
    id: &'a str,
    user: &'a BTreeMap<String, String>,
    machine_id: OnceCell<Result<String, String>>,
    host_ip: OnceCell<String>,
}

impl<'a> Vars<'a> {
    pub fn new(hostname: &'a str, id: &'a str, user: &'a BTreeMap<String, String>) -> Vars<'a> {
        Vars {
            hostname,
            id,
            user,
            machine_id: OnceCell::new(),
            host_ip: OnceCell::new(),
        }
    }

    /// The value of `name`, or why there is none.
    pub fn get(&self, name: &str) -> Result<String, String> {
        if let Some(v) = self.user.get(name) {
            return Ok(v.clone());
        }
        match name {
            "HOSTNAME" => Ok(self.hostname.to_string()),
            "CONTAINER_ID" => Ok(self.id.to_string()),
            "MACHINE_ID" => self.machine_id.get_or_init(machine_id).clone(),
            "HOST_IP" => Ok(self.host_ip.get_or_init(|| host_ip().to_string()).clone()),
            _ => Err(format!(
                "unknown macro ${{{name}}} (known: HOSTNAME, CONTAINER_ID, MACHINE_ID, HOST_IP{}; \
                 define others with --var or --var-file; write $$ for a literal $)",
                self.user.keys().fold(String::new(), |s, k| s + ", " + k)
            )),
        }
    }
}

fn machine_id() -> Result<String, String> {
    let text = std::fs::read_to_string(MACHINE_ID_FILE)
        .map_err(|e| format!("MACHINE_ID: reading {MACHINE_ID_FILE}: {e}"))?;
    let id = text.trim();
    if id.is_empty() {
        return Err(format!("MACHINE_ID: {MACHINE_ID_FILE} is empty"));
    }
    Ok(id.to_string())
}

/// The host's primary address: the source address the kernel picks for the default
/// route. connect() on a UDP socket only selects a route and a source address; no packet
/// is sent. The targets are documentation addresses (TEST-NET-1, 2001:db8::/32). With no
/// route at all, 127.0.0.1.
pub fn host_ip() -> IpAddr {
    let probe = |bind: SocketAddr, to: SocketAddr| -> Option<IpAddr> {
        let s = UdpSocket::bind(bind).ok()?;
        s.connect(to).ok()?;
        let ip = s.local_addr().ok()?.ip();
        (!ip.is_unspecified()).then_some(ip)
    };
    let v4 = probe(
        "0.0.0.0:0".parse().expect("addr"),
        "192.0.2.1:9".parse().expect("addr"),
    );
    v4.or_else(|| {
        probe(
            "[::]:0".parse().expect("addr"),
            "[2001:db8::1]:9".parse().expect("addr"),
        )
    })
    .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A template read from a config directory.
#[derive(Debug, Clone)]
pub struct Template {
    /// Where it was read (for messages).
    pub source: PathBuf,
    /// Its path relative to the config directory: also its path in the container.
    pub rel: PathBuf,
    pub text: Vec<u8>,
}

/// Read every regular file below `dir` (sorted by path). The directory itself may be a
/// symlink only when `follow_top` is set (a host directory the caller named); anything
/// below it that is not a directory or a regular file is refused.
pub fn read_dir(dir: &Path, follow_top: bool) -> Result<Vec<Template>, BundleError> {
    let mut flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    if !follow_top {
        flags |= OFlag::O_NOFOLLOW;
    }
    let fd = nix::fcntl::open(dir, flags, Mode::empty()).map_err(|e| {
        let link = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
        match e {
            nix::Error::ELOOP | nix::Error::ENOTDIR if link => refused(dir, "is a symbolic link"),
            e => io("opening config templates", dir, e),
        }
    })?;
    let mut out = vec![];
    walk(fd, dir, Path::new(""), &mut out)?;
    Ok(out)
}

fn io(step: &'static str, path: &Path, e: nix::Error) -> BundleError {
    BundleError::Io {
        step,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn refused(path: &Path, what: &str) -> BundleError {
    BundleError::Usage(format!(
        "template {}: {what}: config templates must be regular files and directories",
        path.display()
    ))
}

fn walk(fd: OwnedFd, path: &Path, rel: &Path, out: &mut Vec<Template>) -> Result<(), BundleError> {
    let mut dir = nix::dir::Dir::from_fd(fd).map_err(|e| io("reading", path, e))?;
    let mut names: Vec<Vec<u8>> = vec![];
    for entry in dir.iter() {
        let entry = entry.map_err(|e| io("reading", path, e))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    names.sort();
    for name in names {
        let name = OsStr::from_bytes(&name);
        let (path, rel) = (path.join(name), rel.join(name));
        let st = nix::sys::stat::fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| io("examining", &path, e))?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFDIR {
            let sub = nix::fcntl::openat(
                &dir,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io("opening", &path, e))?;
            walk(sub, &path, &rel, out)?;
        } else if kind == SFlag::S_IFREG {
            // O_NOFOLLOW and O_NONBLOCK: a file swapped for a link or a fifo since the
            // fstatat is neither followed nor waited on; fstat checks what was opened.
            let f = nix::fcntl::openat(
                &dir,
                name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io("opening", &path, e))?;
            let st = nix::sys::stat::fstat(&f).map_err(|e| io("examining", &path, e))?;
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
                return Err(refused(&path, "is not a regular file"));
            }
            let mut text = vec![];
            std::fs::File::from(f)
                .read_to_end(&mut text)
                .map_err(|source| BundleError::Io {
                    step: "reading template",
                    path: path.clone(),
                    source,
                })?;
            out.push(Template {
                source: path,
                rel,
                text,
            });
        } else {
            let what = match kind {
                k if k == SFlag::S_IFLNK => "is a symbolic link",
                k if k == SFlag::S_IFIFO => "is a fifo",
                k if k == SFlag::S_IFSOCK => "is a socket",
                k if k == SFlag::S_IFCHR || k == SFlag::S_IFBLK => "is a device",
                _ => "is not a regular file",
            };
            return Err(refused(&path, what));
        }
    }
    Ok(())
}

/// Expand one template's text (errors name its source and line).
pub fn render(t: &Template, vars: &Vars) -> Result<Vec<u8>, BundleError> {
    expand(&t.text, &mut |name| vars.get(name)).map_err(|e| BundleError::Template {
        file: t.source.clone(),
        line: e.line,
        why: e.why,
    })
}

/// A relative path with only normal components (nothing that could climb out).
pub fn check_relative(rel: &Path) -> bool {
    !rel.as_os_str().is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Render every template of `dir` into `out` (the same relative paths, files 0644);
/// returns each file's path in the container and its rendered copy. Every template is
/// expanded before anything is written, so a bad one leaves nothing behind.
pub fn render_dir(
    dir: &Path,
    follow_top: bool,
    out: &Path,
    vars: &Vars,
) -> Result<Vec<(PathBuf, PathBuf)>, BundleError> {
    let templates = read_dir(dir, follow_top)?;
    let mut rendered = Vec::with_capacity(templates.len());
    for t in &templates {
        if !check_relative(&t.rel) {
            return Err(refused(&t.source, "escapes its directory"));
        }
        rendered.push(render(t, vars)?);
    }
    let mut made = Vec::with_capacity(templates.len());
    for (t, text) in templates.iter().zip(rendered) {
        let dst = out.join(&t.rel);
        let mut dir = out.to_path_buf();
        mkdir_0755(&dir)?;
        for c in t.rel.parent().into_iter().flat_map(Path::components) {
            dir.push(c);
            mkdir_0755(&dir)?;
        }
        write_0644(&dst, &text)?;
        made.push((Path::new("/").join(&t.rel), dst));
    }
    Ok(made)
}

/// Make a directory (an existing one is kept) with mode 0755 whatever the umask: a
/// container's processes must reach what is bound from below it.
pub fn mkdir_0755(dir: &Path) -> Result<(), BundleError> {
    let e = |source| BundleError::Io {
        step: "creating",
        path: dir.to_path_buf(),
        source,
    };
    match std::fs::DirBuilder::new().mode(0o755).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(e),
        Err(x) if x.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(x) => Err(e(x)),
    }
}

/// Write a new file with mode 0644 whatever the umask.
pub fn write_0644(path: &Path, data: &[u8]) -> Result<(), BundleError> {
    let e = |source| BundleError::Io {
        step: "writing",
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(e)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(e)?;
    std::io::Write::write_all(&mut f, data).map_err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        [("X", "1"), ("NAME", "web"), ("HOSTNAME", "override")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ex(text: &str) -> Result<String, ExpandError> {
        let user = vars();
        let v = Vars::new("box", "c1", &user);
        expand(text.as_bytes(), &mut |n| v.get(n)).map(|b| String::from_utf8(b).unwrap())
    }

    fn err(text: &str) -> ExpandError {
        ex(text).expect_err(text)
    }

    #[test]
    fn expands_macros() {
        assert_eq!(ex("x=${X} n=${NAME}\n").unwrap(), "x=1 n=web\n");
        assert_eq!(ex("${X}${X}").unwrap(), "11");
        assert_eq!(ex("id=${CONTAINER_ID}").unwrap(), "id=c1");
        assert_eq!(ex("").unwrap(), "");
        assert_eq!(ex("no macros at all").unwrap(), "no macros at all");
    }

    #[test]
    fn caller_vars_override_builtins() {
        assert_eq!(ex("${HOSTNAME}").unwrap(), "override");
        let none = BTreeMap::new();
        let v = Vars::new("box", "c1", &none);
        let out = expand(b"${HOSTNAME}", &mut |n| v.get(n)).unwrap();
        assert_eq!(out, b"box");
    }

    #[test]
    fn dollar_escapes() {
        assert_eq!(ex("price=$$5").unwrap(), "price=$5");
        assert_eq!(ex("$${X}").unwrap(), "${X}");
        assert_eq!(ex("$$$$").unwrap(), "$$");
        assert_eq!(ex("$$${X}").unwrap(), "$1");
        // A $ not followed by { or $ is literal.
        assert_eq!(ex("$HOME $1 5$ a$b").unwrap(), "$HOME $1 5$ a$b");
        assert_eq!(ex("end$").unwrap(), "end$");
        assert_eq!(ex("$").unwrap(), "$");
        assert_eq!(ex("{X} }").unwrap(), "{X} }");
    }

    #[test]
    fn values_are_not_expanded_again() {
        let mut user = BTreeMap::new();
        user.insert("A".to_string(), "${B} $$".to_string());
        let v = Vars::new("h", "i", &user);
        let out = expand(b"${A}", &mut |n| v.get(n)).unwrap();
        assert_eq!(out, b"${B} $$");
    }

    #[test]
    fn unknown_macro_names_its_line() {
        let e = err("a\nb\nc=${NOPE}\n");
        assert_eq!(e.line, 3);
        assert!(e.why.contains("unknown macro ${NOPE}"), "{}", e.why);
        assert_eq!(err("${NOPE}").line, 1);
        // Values with newlines do not shift the line count of the input.
        let mut user = BTreeMap::new();
        user.insert("M".to_string(), "1\n2\n3".to_string());
        let v = Vars::new("h", "i", &user);
        let e = expand(b"${M}\n${M}\n${Q}", &mut |n| v.get(n)).unwrap_err();
        assert_eq!(e.line, 3);
    }

    #[test]
    fn unterminated_and_bad_names() {
        let e = err("ok\n${X");
        assert_eq!(e.line, 2);
        assert!(e.why.contains("unterminated"), "{}", e.why);
        let e = err("x\ny\n${X\n}");
        assert_eq!(e.line, 3);
        assert!(e.why.contains("unterminated"), "{}", e.why);
        assert!(err("${").why.contains("unterminated"));
        let e = err("\n${}");
        assert_eq!(e.line, 2);
        assert!(e.why.contains("empty macro name"), "{}", e.why);
        let e = err("${1X}");
        assert!(e.why.contains("bad macro name ${1X}"), "{}", e.why);
        let e = err("a\n\n\n${A-B} tail");
        assert_eq!(e.line, 4);
        assert!(e.why.contains("\"${A-B}\""), "{}", e.why);
        assert!(err("${X:-default}").why.contains("bad macro"));
        assert!(err("${ X }").why.contains("bad macro"));
        assert!(err("${é}").why.contains("bad macro"));
    }

    #[test]
    fn names() {
        for ok in ["A", "_", "a1", "_X_9", "HOST_IP"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "1", "9A", "A-B", "A.B", "A B", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn non_utf8_text_passes_through() {
        let user = vars();
        let v = Vars::new("h", "i", &user);
        let out = expand(b"\xff${X}\xfe$", &mut |n| v.get(n)).unwrap();
        assert_eq!(out, b"\xff1\xfe$");
    }

    #[test]
    fn builtins() {
        let none = BTreeMap::new();
        let v = Vars::new("h", "i", &none);
        let ip: IpAddr = v.get("HOST_IP").unwrap().parse().unwrap();
        assert!(!ip.is_unspecified());
        if Path::new(MACHINE_ID_FILE).exists() {
            let want = std::fs::read_to_string(MACHINE_ID_FILE).unwrap();
            assert_eq!(v.get("MACHINE_ID").unwrap(), want.trim());
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nook-tmpl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn renders_a_tree() {
        let d = tmp("tree");
        let src = d.join("src");
        std::fs::create_dir_all(src.join("etc/nginx")).unwrap();
        std::fs::create_dir_all(src.join("empty")).unwrap();
        std::fs::write(src.join("etc/nginx/nginx.conf"), "server ${HOSTNAME};\n").unwrap();
        std::fs::write(src.join("etc/.hidden"), "x=${X}").unwrap();
        let user = vars();
        let v = Vars::new("box", "c1", &user);
        let out = d.join("out");
        let made = render_dir(&src, false, &out, &v).unwrap();
        let dests: Vec<_> = made.iter().map(|(d, _)| d.clone()).collect();
        assert_eq!(
            dests,
            [
                PathBuf::from("/etc/.hidden"),
                PathBuf::from("/etc/nginx/nginx.conf")
            ]
        );
        let text = std::fs::read_to_string(out.join("etc/nginx/nginx.conf")).unwrap();
        assert_eq!(text, "server override;\n");
        let mode = std::fs::metadata(out.join("etc/.hidden"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_links_and_special_files() {
        let d = tmp("links");
        let src = d.join("src");
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", src.join("etc/link")).unwrap();
        let user = vars();
        let v = Vars::new("box", "c1", &user);
        let e = render_dir(&src, false, &d.join("out"), &v).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("etc/link") && msg.contains("symbolic link"),
            "{msg}"
        );
        assert!(!d.join("out").exists(), "nothing written");

        std::fs::remove_file(src.join("etc/link")).unwrap();
        nix::unistd::mkfifo(&src.join("etc/fifo"), Mode::from_bits_truncate(0o644)).unwrap();
        let msg = render_dir(&src, false, &d.join("out"), &v)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("etc/fifo") && msg.contains("fifo"), "{msg}");

        // A linked directory below the top is refused; the top only when asked.
        std::fs::remove_file(src.join("etc/fifo")).unwrap();
        std::os::unix::fs::symlink(&src, d.join("top")).unwrap();
        let msg = render_dir(&d.join("top"), false, &d.join("out"), &v)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("symbolic link"), "{msg}");
        std::os::unix::fs::symlink("/etc", src.join("sub")).unwrap();
        let msg = render_dir(&d.join("top"), true, &d.join("out"), &v)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("sub") && msg.contains("symbolic link"),
            "{msg}"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_bad_template_names_file_and_line_and_writes_nothing() {
        let d = tmp("bad");
        let src = d.join("src");
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::fs::write(src.join("a.conf"), "fine ${X}\n").unwrap();
        std::fs::write(src.join("etc/b.conf"), "one\ntwo ${NOPE}\n").unwrap();
        let user = vars();
        let v = Vars::new("box", "c1", &user);
        let e = render_dir(&src, false, &d.join("out"), &v).unwrap_err();
        match &e {
            BundleError::Template { file, line, why } => {
                assert_eq!(file, &src.join("etc/b.conf"));
                assert_eq!(*line, 2);
                assert!(why.contains("${NOPE}"));
            }
            e => panic!("{e}"),
        }
        assert!(e.to_string().contains("etc/b.conf:2"), "{e}");
        assert!(!d.join("out").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn relative_paths() {
        assert!(check_relative(Path::new("etc/a.conf")));
        assert!(!check_relative(Path::new("../a")));
        assert!(!check_relative(Path::new("etc/../../a")));
        assert!(!check_relative(Path::new("/etc/a")));
        assert!(!check_relative(Path::new("")));
    }
}
