//! The container lifecycle: `create` (parent side), `init` (child side), `run`, and
//! the commands on an existing container.

pub mod control;
pub mod create;
pub mod exec;
pub mod exec_init;
pub mod init;
pub mod ops;
pub mod ready;
pub mod run;
pub mod wait;
