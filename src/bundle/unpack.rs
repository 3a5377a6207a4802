//! Bundles given as tar files (plain, gzip or zstd): unpacked safely into a cache under
//! `<root>/bundles/<digest>`, shared read-only between containers, never half-written.

use std::path::{Path, PathBuf};

use super::BundleError;

/// The bundle directory for `--bundle`: a directory as it is, or a tar unpacked (or
/// found already unpacked) in the cache under `root`.
pub fn prepare(root: &Path, bundle: &Path) -> Result<PathBuf, BundleError> {
    let _ = root;
    if bundle.is_dir() {
        return Ok(bundle.to_path_buf());
    }
    Err(BundleError::Usage(format!(
        "{}: bundle tars are not supported yet",
        bundle.display()
    )))
}
