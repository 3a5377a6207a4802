//! `--config-git REPO [--config-rev REV]`: an app's config directory taken from a git
//! revision with libgit2 (the git2 crate, built in; no git binary needed). The tree is
//! written file by file; a symlink or submodule in it is refused, as a config directory
//! refuses them (bundle::template).

use std::path::Path;

/// Write the tree of `rev` (default HEAD) of the repository at `repo` (a path or a
/// file:// URL) into `dest`, which must not exist; the commit's id (hex).
pub fn checkout(repo: &str, rev: Option<&str>, dest: &Path) -> Result<String, String> {
    let path = repo.strip_prefix("file://").unwrap_or(repo);
    let r = git2::Repository::open(path)
        .map_err(|e| format!("opening the repository: {}", e.message()))?;
    let rev = rev.unwrap_or("HEAD");
    let commit = r
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|e| format!("revision {rev:?}: {}", e.message()))?;
    let tree = commit
        .tree()
        .map_err(|e| format!("the tree of {}: {}", commit.id(), e.message()))?;
    write_tree(&r, &tree, dest, Path::new(""))?;
    Ok(commit.id().to_string())
}

fn write_tree(
    r: &git2::Repository,
    tree: &git2::Tree,
    dir: &Path,
    rel: &Path,
) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(dir)
        .map_err(|e| format!("making {}: {e}", dir.display()))?;
    for entry in tree.iter() {
        let name = entry
            .name()
            .filter(|n| !n.is_empty() && *n != "." && *n != ".." && !n.contains('/'))
            .ok_or_else(|| format!("an entry of {} has a name nook cannot use", rel.display()))?;
        let at = rel.join(name);
        match entry.kind() {
            Some(git2::ObjectType::Tree) => {
                let sub = r
                    .find_tree(entry.id())
                    .map_err(|e| format!("{}: {}", at.display(), e.message()))?;
                write_tree(r, &sub, &dir.join(name), &at)?;
            }
            Some(git2::ObjectType::Blob) if entry.filemode() != 0o120000 => {
                let blob = r
                    .find_blob(entry.id())
                    .map_err(|e| format!("{}: {}", at.display(), e.message()))?;
                let path = dir.join(name);
                std::fs::write(&path, blob.content())
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
            Some(git2::ObjectType::Blob) => {
                return Err(format!(
                    "{} is a symbolic link: a config directory holds files only",
                    at.display()
                ))
            }
            _ => {
                return Err(format!(
                    "{} is a submodule: a config directory holds files only",
                    at.display()
                ))
            }
        }
    }
    Ok(())
}
