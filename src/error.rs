//! The library's error type. Each variant says what was being done and to what;
//! `main.rs` is the one place that turns an error into a message and an exit code.

use std::path::PathBuf;

use crate::cgroups::CgroupError;
use crate::linux::sync::InitError;
use crate::spec::SpecError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Spec(#[from] SpecError),

    #[error("{0}")]
    Cgroup(#[from] CgroupError),

    /// The container's init failed during setup; the message names the step.
    #[error("{0}")]
    Init(#[from] InitError),

    #[error("{0}")]
    Hook(#[from] crate::hooks::HookError),

    #[error("{0}")]
    Bundle(#[from] crate::bundle::BundleError),

    #[error("{0}")]
    Systemd(#[from] crate::systemd::SystemdError),

    /// Boxed: an app's errors carry several strings, and every Result of the crate
    /// would grow with them.
    #[error("{0}")]
    App(Box<crate::apps::AppError>),

    #[error("{0}")]
    SealedExe(#[from] crate::linux::self_guard::SealError),

    #[error("{0}")]
    NetDev(#[from] crate::linux::netdev::NetDevError),

    #[error("{0}")]
    Rdt(#[from] crate::linux::resctrl::RdtError),

    #[error("invalid container id {id:?}: {why}")]
    InvalidId { id: String, why: &'static str },

    #[error("container {0:?} already exists")]
    Exists(String),

    #[error("container {0:?} does not exist")]
    NotFound(String),

    #[error("container {id:?} is {status}: {what}")]
    BadStatus {
        id: String,
        status: String,
        what: &'static str,
    },

    #[error("{step}: {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        source: nix::Error,
    },

    #[error("state of container {id:?} in {path}: {why}")]
    State {
        id: String,
        path: PathBuf,
        why: String,
    },

    #[error("{0}")]
    Usage(String),

    #[error("container init exited during setup ({0})")]
    InitDied(String),
}

/// Attach the step and path to an I/O result.
pub trait IoContext<T> {
    fn ctx(self, step: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, step: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            step,
            path: path.into(),
            source,
        })
    }
}

/// Attach the step to a raw syscall result.
pub trait SysContext<T> {
    fn sys(self, step: &'static str) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn sys(self, step: &'static str) -> Result<T> {
        self.map_err(|source| Error::Sys { step, source })
    }
}

impl From<crate::apps::AppError> for Error {
    fn from(e: crate::apps::AppError) -> Self {
        Error::App(Box::new(e))
    }
}
