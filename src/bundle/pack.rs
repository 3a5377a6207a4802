//! `nook pack`: a bundle tar (config.json + rootfs/) from one binary.

use std::path::PathBuf;

use super::BundleError;

/// Where a dynamic binary's libc comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Libc {
    /// Copied into the bundle.
    #[default]
    Bundled,
    /// Injected read-only from the host at each start.
    Host,
}

/// What `nook pack` was asked for.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub binary: PathBuf,
    /// Output tar (default: `<name>.tar` in the current directory).
    pub output: Option<PathBuf>,
    /// Bundle name (default: the binary's file name).
    pub name: Option<String>,
    /// Arguments after the program.
    pub args: Vec<String>,
    /// K=V environment entries.
    pub env: Vec<String>,
    /// UID[:GID] (default 65534:65534).
    pub user: Option<String>,
    /// Config templates to store in the bundle.
    pub config_dir: Option<PathBuf>,
    pub libc: Libc,
}

/// Make the bundle tar; returns its path.
pub fn pack(o: &PackOptions) -> Result<PathBuf, BundleError> {
    let _ = o;
    Err(BundleError::Usage(
        "nook pack is not implemented yet".into(),
    ))
}
