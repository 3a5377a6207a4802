//! ELF reading for `nook pack`: is a binary static, and if not, its interpreter and the
//! DT_NEEDED closure resolved the way ld.so resolves it.
//!
//! The search for each DT_NEEDED name follows glibc's `_dl_map_object`:
//! 1. a name with a `/` is a path, used as it is;
//! 2. unless the requesting object has DT_RUNPATH: the DT_RPATH of the requesting object,
//!    then of the object that loaded it, and on up to the executable (an object with
//!    DT_RUNPATH has no DT_RPATH: ld.so drops it);
//! 3. (LD_LIBRARY_PATH: deliberately not used, the packer's environment is not the app's);
//! 4. the requesting object's own DT_RUNPATH;
//! 5. unless the requester has DF_1_NODEFLIB: /etc/ld.so.cache, then the directories of
//!    /etc/ld.so.conf (in case the cache is stale), then the default directories.
//!
//! `$ORIGIN` is the requesting object's directory (the executable's real directory, as
//! /proc/self/exe gives ld.so), `$LIB` and `$PLATFORM` are the host's. A candidate of the
//! wrong ELF class or machine is skipped, as ld.so skips it; a file that is not ELF is an
//! error, as it is for ld.so. A name already loaded (by DT_NEEDED name, path or DT_SONAME,
//! the interpreter included) is not searched again: one file per name, as in the process.
//! The glibc-hwcaps and legacy hwcap subdirectories are not searched, so a bundle gets the
//! baseline build of each library and runs on any CPU of the architecture.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use goblin::container::{Container, Ctx, Endian};
use goblin::elf::dynamic::{self, Dynamic};
use goblin::elf::header;
use goblin::elf::program_header::{self, ProgramHeader};
use goblin::strtab::Strtab;

use super::BundleError;

pub use super::ldconfig::{fnmatch, glob, ld_so_conf_dirs, parse_ld_so_cache, CacheEntry};

/// The ELF facts `nook pack` needs from one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfFile {
    pub path: PathBuf,
    pub is_64: bool,
    pub little_endian: bool,
    pub machine: u16,
    /// e_type: ET_EXEC or ET_DYN for anything runnable or loadable.
    pub kind: u16,
    /// PT_INTERP.
    pub interp: Option<String>,
    /// DT_NEEDED names, in order.
    pub needed: Vec<String>,
    /// DT_RPATH entries (split at `:`); empty when the file has DT_RUNPATH, as ld.so
    /// ignores DT_RPATH then.
    pub rpath: Vec<String>,
    /// DT_RUNPATH entries (split at `:`), `None` without DT_RUNPATH.
    pub runpath: Option<Vec<String>>,
    pub soname: Option<String>,
    /// DF_1_NODEFLIB: no ld.so.cache and no default directories for this object's needs.
    pub nodeflib: bool,
}

fn elf_err(binary: &Path, why: impl Into<String>) -> BundleError {
    BundleError::Elf {
        binary: binary.to_path_buf(),
        why: why.into(),
    }
}

/// A short name of an ELF machine for messages.
pub fn machine_name(m: u16) -> String {
    match m {
        header::EM_X86_64 => "x86-64".into(),
        header::EM_386 => "i386".into(),
        header::EM_AARCH64 => "AArch64".into(),
        header::EM_ARM => "ARM".into(),
        header::EM_RISCV => "RISC-V".into(),
        header::EM_PPC64 => "PowerPC64".into(),
        header::EM_S390 => "s390".into(),
        header::EM_MIPS => "MIPS".into(),
        header::EM_LOONGARCH => "LoongArch".into(),
        other => format!("machine {other}"),
    }
}

fn describe(is_64: bool, machine: u16) -> String {
    format!(
        "ELF{} {}",
        if is_64 { "64" } else { "32" },
        machine_name(machine)
    )
}

fn split_path_list(s: &str) -> Vec<String> {
    s.split(':').map(str::to_string).collect()
}

impl ElfFile {
    /// Read and parse `path` (symlinks followed).
    pub fn read(path: &Path) -> Result<ElfFile, BundleError> {
        let bytes = fs::read(path).map_err(|source| BundleError::Io {
            step: "reading",
            path: path.to_path_buf(),
            source,
        })?;
        ElfFile::parse(path, &bytes).map_err(|why| elf_err(path, why))
    }

    /// Parse an ELF image; only the ELF header, program headers and the dynamic
    /// segment are read (a stripped file without section headers is fine).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<ElfFile, String> {
        if bytes.len() < header::SELFMAG || &bytes[..header::SELFMAG] != header::ELFMAG {
            return Err("not an ELF file".into());
        }
        let h =
            goblin::elf::Elf::parse_header(bytes).map_err(|e| format!("bad ELF header: {e}"))?;
        let container = h.container().map_err(|e| format!("bad ELF header: {e}"))?;
        let endian = h.endianness().map_err(|e| format!("bad ELF header: {e}"))?;
        let ctx = Ctx::new(container, endian);
        let phdrs = ProgramHeader::parse(bytes, h.e_phoff as usize, h.e_phnum as usize, ctx)
            .map_err(|e| format!("bad program headers: {e}"))?;
        let mut interp = None;
        for ph in &phdrs {
            if ph.p_type == program_header::PT_INTERP && ph.p_filesz > 0 {
                let start = ph.p_offset as usize;
                let end = start
                    .checked_add(ph.p_filesz as usize)
                    .filter(|&e| e <= bytes.len())
                    .ok_or("PT_INTERP lies outside the file")?;
                let raw = &bytes[start..end];
                let raw = raw.split(|&b| b == 0).next().unwrap_or(raw);
                let s = std::str::from_utf8(raw).map_err(|_| "PT_INTERP is not UTF-8")?;
                interp = Some(s.to_string());
            }
        }
        let mut f = ElfFile {
            path: path.to_path_buf(),
            is_64: container == Container::Big,
            little_endian: endian == Endian::Little,
            machine: h.e_machine,
            kind: h.e_type,
            interp,
            needed: vec![],
            rpath: vec![],
            runpath: None,
            soname: None,
            nodeflib: false,
        };
        let dynamic =
            Dynamic::parse(bytes, &phdrs, ctx).map_err(|e| format!("bad dynamic segment: {e}"))?;
        if let Some(d) = dynamic {
            let strtab = Strtab::parse(bytes, d.info.strtab, d.info.strsz, 0)
                .map_err(|e| format!("bad dynamic string table: {e}"))?;
            let get = |off: u64, what: &str| -> Result<String, String> {
                strtab
                    .get_at(off as usize)
                    .map(str::to_string)
                    .ok_or_else(|| format!("bad {what} string offset {off}"))
            };
            let mut rpath = vec![];
            for dy in &d.dyns {
                match dy.d_tag {
                    dynamic::DT_NEEDED => f.needed.push(get(dy.d_val, "DT_NEEDED")?),
                    dynamic::DT_RPATH => rpath.extend(split_path_list(&get(dy.d_val, "DT_RPATH")?)),
                    dynamic::DT_RUNPATH => f
                        .runpath
                        .get_or_insert_with(Vec::new)
                        .extend(split_path_list(&get(dy.d_val, "DT_RUNPATH")?)),
                    dynamic::DT_SONAME => f.soname = Some(get(dy.d_val, "DT_SONAME")?),
                    dynamic::DT_FLAGS_1 => f.nodeflib |= dy.d_val & dynamic::DF_1_NODEFLIB != 0,
                    _ => {}
                }
            }
            // get-dynamic-info.h: "If both RUNPATH and RPATH are given, the latter is ignored."
            if f.runpath.is_none() {
                f.rpath = rpath;
            }
        }
        Ok(f)
    }

    /// A static program: no interpreter and nothing to load (static-pie included).
    pub fn is_static(&self) -> bool {
        self.interp.is_none() && self.needed.is_empty()
    }

    fn same_arch(&self, other: &ElfFile) -> bool {
        self.is_64 == other.is_64
            && self.little_endian == other.little_endian
            && self.machine == other.machine
    }

    fn arch(&self) -> String {
        describe(self.is_64, self.machine)
    }
}

/// The ELF class and machine of programs this host runs (nook's own build target).
pub fn host_arch() -> (bool, u16) {
    let is_64 = cfg!(target_pointer_width = "64");
    let machine = if cfg!(target_arch = "x86_64") {
        header::EM_X86_64
    } else if cfg!(target_arch = "aarch64") {
        header::EM_AARCH64
    } else if cfg!(target_arch = "x86") {
        header::EM_386
    } else if cfg!(target_arch = "arm") {
        header::EM_ARM
    } else if cfg!(target_arch = "riscv64") {
        header::EM_RISCV
    } else if cfg!(target_arch = "powerpc64") {
        header::EM_PPC64
    } else if cfg!(target_arch = "s390x") {
        header::EM_S390
    } else {
        header::EM_NONE
    };
    (is_64, machine)
}

// ---------------------------------------------------------------------------------
// Search

/// Where the loader looks, besides each object's own RPATH/RUNPATH.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    pub cache: Vec<CacheEntry>,
    pub conf_dirs: Vec<PathBuf>,
    pub default_dirs: Vec<PathBuf>,
    /// What `$LIB` expands to (Debian: lib/x86_64-linux-gnu).
    pub lib: String,
    /// What `$PLATFORM` expands to.
    pub platform: String,
}

/// The GNU multiarch triplet of a machine, for the default directories.
fn triplet(machine: u16) -> Option<&'static str> {
    Some(match machine {
        header::EM_X86_64 => "x86_64-linux-gnu",
        header::EM_AARCH64 => "aarch64-linux-gnu",
        header::EM_386 => "i386-linux-gnu",
        header::EM_ARM => "arm-linux-gnueabihf",
        header::EM_RISCV => "riscv64-linux-gnu",
        header::EM_PPC64 => "powerpc64le-linux-gnu",
        header::EM_S390 => "s390x-linux-gnu",
        _ => return None,
    })
}

fn platform(machine: u16) -> &'static str {
    match machine {
        header::EM_X86_64 => "x86_64",
        header::EM_AARCH64 => "aarch64",
        header::EM_386 => "i686",
        header::EM_ARM => "v7l",
        header::EM_RISCV => "riscv64",
        header::EM_PPC64 => "power8",
        header::EM_S390 => "z13",
        _ => "",
    }
}

impl SearchConfig {
    /// The host's: /etc/ld.so.cache (ignored when missing or unreadable, as ld.so
    /// ignores it), /etc/ld.so.conf, and the default directories for `machine`.
    pub fn host(machine: u16) -> SearchConfig {
        let cache = fs::read("/etc/ld.so.cache")
            .ok()
            .and_then(|b| parse_ld_so_cache(&b).ok())
            .unwrap_or_default();
        let mut default_dirs = vec![];
        let triplet = triplet(machine);
        if let Some(t) = triplet {
            default_dirs.push(PathBuf::from(format!("/lib/{t}")));
            default_dirs.push(PathBuf::from(format!("/usr/lib/{t}")));
        }
        for d in ["/lib64", "/usr/lib64", "/lib", "/usr/lib"] {
            default_dirs.push(PathBuf::from(d));
        }
        // Debian's glibc expands $LIB to its multiarch libdir; others to lib64 or lib.
        let lib = match triplet {
            Some(t) if Path::new("/lib").join(t).is_dir() => format!("lib/{t}"),
            _ if Path::new("/lib64").is_dir() => "lib64".to_string(),
            _ => "lib".to_string(),
        };
        SearchConfig {
            cache,
            conf_dirs: ld_so_conf_dirs(Path::new("/etc/ld.so.conf")),
            default_dirs,
            lib,
            platform: platform(machine).to_string(),
        }
    }
}

/// Expand one RPATH/RUNPATH entry: `$ORIGIN`/`${ORIGIN}` (the object's directory),
/// `$LIB`, `$PLATFORM`. An unknown `$NAME` stays as it is (as in ld.so). `None` when the
/// entry is empty or not absolute after expansion (it would depend on the working
/// directory, which differs between the packer and the container).
pub fn expand(entry: &str, origin: &Path, lib: &str, platform: &str) -> Option<PathBuf> {
    let mut out = String::new();
    let mut rest = entry;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut hit = None;
        for (var, val) in [
            ("ORIGIN", origin.to_str()?),
            ("LIB", lib),
            ("PLATFORM", platform),
        ] {
            let braced = format!("{{{var}}}");
            if let Some(tail) = after.strip_prefix(&braced) {
                hit = Some((val, tail));
            } else if let Some(tail) = after.strip_prefix(var) {
                // $ORIGINX is not $ORIGIN: the name must end at a non-identifier char.
                if !tail.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                    hit = Some((val, tail));
                }
            }
            if hit.is_some() {
                break;
            }
        }
        match hit {
            Some((val, tail)) => {
                out.push_str(val);
                rest = tail;
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    let trimmed = out.trim_end_matches('/');
    let p = PathBuf::from(if trimmed.is_empty() && out.starts_with('/') {
        "/"
    } else {
        trimmed
    });
    if p.as_os_str().is_empty() || !p.is_absolute() {
        return None;
    }
    Some(normalize(&p))
}

/// `.` and `..` removed lexically (the bundle has no symlinked directories, so the
/// lexical path is the path inside it).
pub use crate::linux::fs::normalize;

/// How a library was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A DT_NEEDED name holding a `/`.
    Path,
    Rpath,
    Runpath,
    Cache,
    Conf,
    Default,
}

/// A file the program needs at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    /// The DT_NEEDED name (or PT_INTERP for the interpreter).
    pub name: String,
    /// The absolute path the loader opens (lexically normalized).
    pub path: PathBuf,
    /// The host file behind it, symlinks followed.
    pub file: PathBuf,
    pub via: Via,
    /// Found through a directory the container's loader would not search by itself
    /// (the cache, ld.so.conf, or an executable's `$ORIGIN` entry, since the program
    /// moves to /NAME): the bundle must name it in LD_LIBRARY_PATH.
    pub needs_library_path: bool,
}

/// What a dynamic program needs: its interpreter and its libraries in load order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closure {
    /// The interpreter, at its PT_INTERP path.
    pub interp: Needed,
    pub libs: Vec<Needed>,
}

impl Closure {
    /// Directories to give the container's loader in LD_LIBRARY_PATH, in load order.
    pub fn library_path(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = vec![];
        for l in self.libs.iter().filter(|l| l.needs_library_path) {
            if let Some(d) = l.path.parent() {
                if !dirs.iter().any(|x| x == d) {
                    dirs.push(d.to_path_buf());
                }
            }
        }
        dirs
    }
}

struct Obj {
    elf: ElfFile,
    /// $ORIGIN for this object's RPATH/RUNPATH.
    origin: PathBuf,
    /// The object whose DT_NEEDED loaded this one (None for the executable).
    loader: Option<usize>,
}

/// A directory to try, with what it came from (for the message when nothing is found).
struct Dir {
    path: PathBuf,
    via: Via,
    container_finds_it: bool,
}

/// Read `binary` and check it is a program this host can run; its closure when it is
/// dynamic (`None` for a static program).
pub fn analyze(
    binary: &Path,
    cfg: &SearchConfig,
) -> Result<(ElfFile, Option<Closure>), BundleError> {
    let exe = ElfFile::read(binary)?;
    let (is_64, machine) = host_arch();
    if exe.is_64 != is_64 || exe.machine != machine {
        return Err(elf_err(
            binary,
            format!(
                "wrong architecture: {}, this host runs {}",
                exe.arch(),
                describe(is_64, machine)
            ),
        ));
    }
    if exe.kind != header::ET_EXEC && exe.kind != header::ET_DYN {
        return Err(elf_err(
            binary,
            format!("not a program: ELF type {}", header::et_to_str(exe.kind)),
        ));
    }
    if exe.is_static() {
        return Ok((exe, None));
    }
    let Some(interp_path) = exe.interp.clone() else {
        return Err(elf_err(
            binary,
            format!(
                "needs {} but has no interpreter (PT_INTERP): a shared library, not a program",
                exe.needed.join(", ")
            ),
        ));
    };
    let closure = resolve(binary, &exe, &interp_path, cfg)?;
    Ok((exe, Some(closure)))
}

fn resolve(
    binary: &Path,
    exe: &ElfFile,
    interp_path: &str,
    cfg: &SearchConfig,
) -> Result<Closure, BundleError> {
    let real = fs::canonicalize(binary).map_err(|source| BundleError::Io {
        step: "resolving",
        path: binary.to_path_buf(),
        source,
    })?;
    let mut objs = vec![Obj {
        elf: exe.clone(),
        origin: real.parent().unwrap_or(Path::new("/")).to_path_buf(),
        loader: None,
    }];
    // Names already loaded: DT_NEEDED names, paths, sonames.
    let mut loaded: HashSet<String> = HashSet::new();

    // The interpreter: at its PT_INTERP path, of the program's class and machine.
    let ipath = PathBuf::from(interp_path);
    if !ipath.is_absolute() {
        return Err(elf_err(
            binary,
            format!("interpreter {interp_path:?} is not an absolute path"),
        ));
    }
    let ifile = fs::canonicalize(&ipath).map_err(|e| {
        elf_err(
            binary,
            format!("interpreter {interp_path} (PT_INTERP): {e}"),
        )
    })?;
    let ielf = ElfFile::read(&ipath)?;
    if !ielf.same_arch(exe) {
        return Err(elf_err(
            &ipath,
            format!(
                "wrong architecture for {}: {}, the program is {}",
                binary.display(),
                ielf.arch(),
                exe.arch()
            ),
        ));
    }
    loaded.insert(interp_path.to_string());
    if let Some(s) = &ielf.soname {
        loaded.insert(s.clone());
    }
    let interp = Needed {
        name: interp_path.to_string(),
        path: normalize(&ipath),
        file: ifile,
        via: Via::Path,
        needs_library_path: false,
    };

    let mut libs: Vec<Needed> = vec![];
    let mut queue = VecDeque::from([0usize]);
    while let Some(i) = queue.pop_front() {
        let needed = objs[i].elf.needed.clone();
        for name in needed {
            if loaded.contains(&name) {
                continue;
            }
            let (path, via, elf, container_finds_it) = find(binary, &objs, i, &name, cfg)?;
            let file = fs::canonicalize(&path).map_err(|source| BundleError::Io {
                step: "resolving",
                path: path.clone(),
                source,
            })?;
            loaded.insert(name.clone());
            loaded.insert(path.to_string_lossy().into_owned());
            if let Some(s) = &elf.soname {
                loaded.insert(s.clone());
            }
            libs.push(Needed {
                name,
                path: path.clone(),
                file,
                via,
                needs_library_path: !container_finds_it,
            });
            objs.push(Obj {
                elf,
                origin: path.parent().unwrap_or(Path::new("/")).to_path_buf(),
                loader: Some(i),
            });
            queue.push_back(objs.len() - 1);
        }
    }
    Ok(Closure { interp, libs })
}

/// The search for one DT_NEEDED `name` of `objs[req]`.
fn find(
    binary: &Path,
    objs: &[Obj],
    req: usize,
    name: &str,
    cfg: &SearchConfig,
) -> Result<(PathBuf, Via, ElfFile, bool), BundleError> {
    let exe = &objs[0].elf;
    let requester = &objs[req];
    let mut skipped: Vec<String> = vec![];
    let check = |p: &Path, skipped: &mut Vec<String>| -> Result<Option<ElfFile>, BundleError> {
        if !p.is_file() {
            return Ok(None);
        }
        // ld.so stops at a candidate that is not ELF ("invalid ELF header").
        let elf = ElfFile::read(p).map_err(|e| {
            elf_err(
                binary,
                format!(
                    "library {name} (DT_NEEDED of {}): ld.so would stop at {e}",
                    requester.elf.path.display()
                ),
            )
        })?;
        if !elf.same_arch(exe) {
            skipped.push(format!("{} ({})", p.display(), elf.arch()));
            return Ok(None);
        }
        Ok(Some(elf))
    };

    if name.contains('/') {
        let p = normalize(
            &std::env::current_dir()
                .unwrap_or_else(|_| "/".into())
                .join(name),
        );
        return match check(&p, &mut skipped)? {
            Some(elf) => Ok((p, Via::Path, elf, name.starts_with('/'))),
            None => Err(elf_err(
                binary,
                format!(
                    "{name} (DT_NEEDED of {}) not found{}",
                    requester.elf.path.display(),
                    skipped_note(&skipped)
                ),
            )),
        };
    }

    let mut dirs: Vec<Dir> = vec![];
    let entry_dirs = |o: &Obj, entries: &[String], via: Via, is_exe: bool, dirs: &mut Vec<Dir>| {
        for e in entries {
            if let Some(d) = expand(e, &o.origin, &cfg.lib, &cfg.platform) {
                // The executable moves to /NAME: its $ORIGIN differs in the container.
                let container_finds_it =
                    !(is_exe && (e.contains("$ORIGIN") || e.contains("${ORIGIN}")));
                dirs.push(Dir {
                    path: d,
                    via,
                    container_finds_it,
                });
            }
        }
    };
    if requester.elf.runpath.is_none() {
        // DT_RPATH of the requester, then of its loader, on up to the executable.
        let mut l = Some(req);
        while let Some(k) = l {
            entry_dirs(&objs[k], &objs[k].elf.rpath, Via::Rpath, k == 0, &mut dirs);
            l = objs[k].loader;
        }
    }
    if let Some(rp) = &requester.elf.runpath {
        entry_dirs(requester, rp, Via::Runpath, req == 0, &mut dirs);
    }
    for d in &dirs {
        let p = d.path.join(name);
        if let Some(elf) = check(&p, &mut skipped)? {
            return Ok((normalize(&p), d.via, elf, d.container_finds_it));
        }
    }
    let in_defaults = |p: &Path| {
        p.parent()
            .is_some_and(|d| cfg.default_dirs.iter().any(|x| x == d))
    };
    let mut searched: Vec<String> = dirs
        .iter()
        .map(|d| {
            let what = if d.via == Via::Rpath {
                "RPATH"
            } else {
                "RUNPATH"
            };
            format!("{} ({what})", d.path.display())
        })
        .collect();
    if !requester.elf.nodeflib {
        // ld.so.cache: the baseline build (hwcap 0) before a glibc-hwcaps one.
        let mut hits: Vec<&CacheEntry> = cfg.cache.iter().filter(|c| c.name == name).collect();
        hits.sort_by_key(|c| c.hwcap != 0);
        for c in hits {
            let p = normalize(Path::new(&c.path));
            if let Some(elf) = check(&p, &mut skipped)? {
                let found = in_defaults(&p);
                return Ok((p, Via::Cache, elf, found));
            }
        }
        searched.push("/etc/ld.so.cache".into());
        for (list, via) in [
            (&cfg.conf_dirs, Via::Conf),
            (&cfg.default_dirs, Via::Default),
        ] {
            for d in list {
                let p = d.join(name);
                if let Some(elf) = check(&p, &mut skipped)? {
                    let found = in_defaults(&p);
                    return Ok((normalize(&p), via, elf, found));
                }
                searched.push(d.display().to_string());
            }
        }
    }
    let chain = loader_chain(objs, req);
    Err(elf_err(
        binary,
        format!(
            "library {name} not found (DT_NEEDED of {chain}); searched: {}{}",
            dedup(searched).join(", "),
            skipped_note(&skipped)
        ),
    ))
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    v.into_iter().filter(|s| seen.insert(s.clone())).collect()
}

fn loader_chain(objs: &[Obj], req: usize) -> String {
    let mut parts = vec![];
    let mut l = Some(req);
    while let Some(k) = l {
        parts.push(objs[k].elf.path.display().to_string());
        l = objs[k].loader;
    }
    parts.join(", loaded by ")
}

fn skipped_note(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(
            "; skipped for the wrong class or machine: {}",
            skipped.join(", ")
        )
    }
}

#[cfg(test)]
#[path = "elf_tests.rs"]
mod tests;
