//! Host files given to a container at start, each a read-only bind mount of a host file
//! or of a file nook generated in the container's state dir: never a write into the
//! bundle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, Spec};

use super::BundleError;

/// What `run`/`create` were asked for beyond the bundle's own annotations.
#[derive(Debug, Clone, Default)]
pub struct InjectOptions {
    /// Injections to add (`--inject NAME`).
    pub add: Vec<String>,
    /// Injections to leave out (`--no-inject NAME`).
    pub remove: Vec<String>,
    /// Config templates from the host (`--config-dir`), rendered at each start.
    pub config_dir: Option<PathBuf>,
    /// Template variables (`--var K=V`, `--var-file FILE`).
    pub vars: BTreeMap<String, String>,
}

impl InjectOptions {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.config_dir.is_none()
    }
}

/// Generate what the container gets (into `state_dir`) and return the read-only bind
/// mounts that give it, to be appended to the config's mounts.
pub fn plan(
    spec: &Spec,
    bundle: &Path,
    state_dir: &Path,
    id: &str,
    o: &InjectOptions,
) -> Result<Vec<Mount>, BundleError> {
    let _ = (spec, bundle, state_dir, id, o);
    Ok(vec![])
}
