//! Minimal static-app bundles: `nook pack` (one binary and, where it needs them, its
//! libraries), safe and cached unpacking of bundle tars, the host files injected at
//! start, and config templates rendered at start.

pub mod elf;
pub mod inject;
pub mod ldconfig;
pub mod pack;
pub mod template;
pub mod unpack;

use std::path::PathBuf;

/// Annotations a bundle's config.json uses to ask for things at start.
pub mod annotations {
    /// Comma-separated injections: resolv.conf, hosts, hostname, passwd, nsswitch,
    /// ca-certificates, localtime, libc.
    pub const INJECT: &str = "io.nook.inject";
    /// JSON list of host paths (loader and libraries) for `--libc host` bundles.
    pub const HOST_LIBS: &str = "io.nook.host-libs";
    /// Relative path inside the bundle of its config templates (default "templates").
    pub const TEMPLATES: &str = "io.nook.templates";
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A tar entry refused by the safe unpacker: names the entry and why.
    #[error("bundle {archive}: entry {entry:?}: {why}")]
    Entry {
        archive: PathBuf,
        entry: String,
        why: String,
    },
    #[error("bundle {archive}: {why}")]
    Archive { archive: PathBuf, why: String },
    #[error("{binary}: {why}")]
    Elf { binary: PathBuf, why: String },
    /// A template problem: the file and line.
    #[error("template {file}:{line}: {why}")]
    Template {
        file: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{0}")]
    Usage(String),
}
