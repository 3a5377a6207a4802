//! The host's library configuration as ld.so reads it: /etc/ld.so.cache (the
//! "glibc-ld.so.cache1.1" format) and the directories of /etc/ld.so.conf, with the
//! fnmatch/glob its `include` lines need.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
// ---------------------------------------------------------------------------------
// /etc/ld.so.cache

/// One library of ld.so.cache: its name (the soname ldconfig saw) and its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    pub name: String,
    pub path: String,
    /// FLAG_ELF_LIBC6 (3) in the low byte, the architecture (0x0300 for x86-64) above.
    pub flags: i32,
    /// 0 for the baseline build; glibc-hwcaps entries have bits set.
    pub hwcap: u64,
}

pub(crate) const CACHE_MAGIC_OLD: &[u8] = b"ld.so-1.7.0";
pub(crate) const CACHE_MAGIC_NEW: &[u8] = b"glibc-ld.so.cache";
pub(crate) const CACHE_VERSION_NEW: &[u8] = b"1.1";
/// `struct cache_file_new` (magic, version, nlibs, len_strings, flags, padding,
/// extension_offset, unused[3]).
pub(crate) const CACHE_NEW_HEADER: usize = 48;
/// `struct file_entry_new` (flags, key, value, osversion, hwcap).
pub(crate) const CACHE_NEW_ENTRY: usize = 24;
/// `struct cache_file` (magic[11], nlibs) and `struct file_entry` (flags, key, value).
pub(crate) const CACHE_OLD_HEADER: usize = 16;
pub(crate) const CACHE_OLD_ENTRY: usize = 12;

/// Parse ld.so.cache in the "glibc-ld.so.cache1.1" format, alone (glibc >= 2.32's
/// default) or after the old "ld.so-1.7.0" table (the compat format). String offsets
/// count from the start of the new header, as in glibc's dl-cache.c.
pub fn parse_ld_so_cache(bytes: &[u8]) -> Result<Vec<CacheEntry>, String> {
    let mut start = 0usize;
    if bytes.starts_with(CACHE_MAGIC_OLD) {
        let n = bytes
            .get(11..15)
            .ok_or("truncated old header")?
            .try_into()
            .map(u32::from_ne_bytes)
            .map_err(|_| "truncated old header")? as usize;
        let end = n
            .checked_mul(CACHE_OLD_ENTRY)
            .and_then(|x| x.checked_add(CACHE_OLD_HEADER))
            .ok_or("old table too large")?;
        // The new table follows, aligned to __alignof__ (struct cache_file_new) (8).
        start = end.next_multiple_of(8);
    }
    let rest = bytes.get(start..).ok_or("truncated cache")?;
    if !rest.starts_with(CACHE_MAGIC_NEW)
        || rest.get(17..20) != Some(CACHE_VERSION_NEW)
        || rest.len() < CACHE_NEW_HEADER
    {
        return Err("no glibc-ld.so.cache1.1 table".into());
    }
    // flags: 0 unknown (host order), 2 little endian, 3 big endian.
    let little = match rest[28] & 3 {
        2 => true,
        3 => false,
        _ => cfg!(target_endian = "little"),
    };
    let u32_at = |at: usize| -> Result<u32, String> {
        let b: [u8; 4] = rest
            .get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| format!("truncated at byte {}", start + at))?;
        Ok(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let u64_at = |at: usize| -> Result<u64, String> {
        let b: [u8; 8] = rest
            .get(at..at + 8)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| format!("truncated at byte {}", start + at))?;
        Ok(if little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    };
    let str_at = |off: u32| -> Result<String, String> {
        let s = rest
            .get(off as usize..)
            .ok_or_else(|| format!("string offset {off} past the end"))?;
        let end = s
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| format!("unterminated string at {off}"))?;
        String::from_utf8(s[..end].to_vec()).map_err(|_| format!("string at {off} is not UTF-8"))
    };
    let nlibs = u32_at(20)? as usize;
    if nlibs
        .checked_mul(CACHE_NEW_ENTRY)
        .and_then(|x| x.checked_add(CACHE_NEW_HEADER))
        .is_none_or(|end| end > rest.len())
    {
        return Err(format!("{nlibs} entries do not fit in the file"));
    }
    let mut out = Vec::with_capacity(nlibs);
    for i in 0..nlibs {
        let at = CACHE_NEW_HEADER + i * CACHE_NEW_ENTRY;
        out.push(CacheEntry {
            flags: u32_at(at)? as i32,
            name: str_at(u32_at(at + 4)?)?,
            path: str_at(u32_at(at + 8)?)?,
            hwcap: u64_at(at + 16)?,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// /etc/ld.so.conf

/// The directories of an ld.so.conf, `include` globs followed (relative patterns are
/// relative to the including file's directory, as ldconfig reads them).
pub fn ld_so_conf_dirs(conf: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![];
    let mut seen = HashSet::new();
    read_conf(conf, &mut dirs, &mut seen, 0);
    dirs
}

fn read_conf(conf: &Path, dirs: &mut Vec<PathBuf>, seen: &mut HashSet<PathBuf>, depth: u32) {
    if depth > 16 || !seen.insert(conf.to_path_buf()) {
        return;
    }
    let Ok(text) = fs::read_to_string(conf) else {
        return;
    };
    let base = conf.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("include") => {
                for pat in words {
                    let pat = if pat.starts_with('/') {
                        pat.to_string()
                    } else {
                        format!("{}/{pat}", base.display())
                    };
                    for f in glob(&pat) {
                        read_conf(&f, dirs, seen, depth + 1);
                    }
                }
            }
            Some("hwcap") => {}
            _ => {
                let d = PathBuf::from(line.trim_end_matches('/'));
                if d.is_absolute() && !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
    }
}

/// fnmatch(3) without flags: `*`, `?`, `[...]` (with `!` or `^` and ranges), `\` escapes.
pub fn fnmatch(pat: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        let (Some(&pc), rest) = (p.first(), p.get(1..).unwrap_or(&[])) else {
            return n.is_empty();
        };
        match pc {
            '*' => (0..=n.len()).any(|i| go(rest, &n[i..])),
            '?' => !n.is_empty() && go(rest, &n[1..]),
            '[' => {
                let Some(&c) = n.first() else { return false };
                let mut i = 1;
                let negate = matches!(p.get(i), Some('!') | Some('^'));
                if negate {
                    i += 1;
                }
                let mut matched = false;
                let mut first = true;
                while i < p.len() && (first || p[i] != ']') {
                    first = false;
                    let lo = p[i];
                    if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&h| h != ']') {
                        if lo <= c && c <= p[i + 2] {
                            matched = true;
                        }
                        i += 3;
                    } else {
                        if lo == c {
                            matched = true;
                        }
                        i += 1;
                    }
                }
                if i >= p.len() {
                    // No closing bracket: a literal '['.
                    return c == '[' && go(rest, &n[1..]);
                }
                matched != negate && go(&p[i + 1..], &n[1..])
            }
            '\\' if !rest.is_empty() => n.first() == Some(&rest[0]) && go(&rest[1..], &n[1..]),
            _ => n.first() == Some(&pc) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// Paths matching an absolute glob pattern, component by component, sorted (as
/// glob(3) sorts them); hidden names match only a pattern starting with a dot.
pub fn glob(pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from("/")];
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        let wild = part.contains(['*', '?', '[']);
        let mut next = vec![];
        for base in &found {
            if !wild {
                let p = base.join(part.replace('\\', ""));
                if p.symlink_metadata().is_ok() {
                    next.push(p);
                }
                continue;
            }
            let Ok(rd) = fs::read_dir(base) else { continue };
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| (!n.starts_with('.') || part.starts_with('.')) && fnmatch(part, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    found
}
