//! One module per kernel interface the runtime uses.

pub mod capabilities;
pub mod clone;
pub mod copy_up;
pub mod devices;
pub mod fs;
pub mod gate;
pub mod handoff;
pub mod lsm;
pub mod mount_sources;
pub mod mounts;
pub mod namespaces;
pub mod net;
pub mod netdev;
pub mod process;
pub mod procfs;
pub mod resctrl;
pub mod rootfs;
pub mod sched;
pub mod seccomp;
pub mod seccomp_cache;
pub mod seccomp_default;
pub mod seccomp_notify;
pub mod self_guard;
pub mod sync;
pub mod terminal;
pub mod trampoline;
