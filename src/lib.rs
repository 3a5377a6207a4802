//! nook: a lightweight OCI container runtime.
//!
//! The create sequence reads top to bottom in `container::create` (parent side) and
//! `container::init` (the container's own setup); `linux` holds one module per kernel
//! interface they use.

pub mod apps;
pub mod bundle;
pub mod cgroups;
pub mod cli;
pub mod cli_fast;
pub mod container;
pub mod discovery;
pub mod error;
pub mod fault;
pub mod features;
pub mod hooks;
pub mod linux;
pub mod spec;
pub mod state;
pub mod steps;
pub mod systemd;

pub use error::{Error, Result};
