//! What gzl needs to know of the git repository it runs in, read with gix.

use std::path::{Path, PathBuf};

/// A git repository gzl was started in.
pub struct Repo {
    repo: gix::Repository,
    root: PathBuf,
}

/// A failure reading the repository.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot open the git repository at {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: gix::Error,
    },
    #[error("`{rev}` is not a commit in this repository")]
    UnknownRevision {
        rev: String,
        #[source]
        source: gix::Error,
    },
    #[error("cannot read the state of the repository at {}: {message}", path.display())]
    Status { path: PathBuf, message: String },
}

impl Repo {
    /// The repository holding `dir`, or `None` when `dir` is not inside a git working tree.
    pub fn discover(dir: &Path) -> Result<Option<Self>, GitError> {
        match gix::discover(dir) {
            Ok(repo) => {
                let Some(root) = repo.workdir().map(Path::to_path_buf) else {
                    return Ok(None);
                };
                let root = root.canonicalize().unwrap_or(root);
                Ok(Some(Repo { repo, root }))
            }
            Err(error) => {
                use gix::discover::upwards::Error as Upwards;
                let not_found = matches!(
                    error.downcast_any_ref::<Upwards>(),
                    Some(
                        Upwards::NoGitRepository { .. }
                            | Upwards::NoGitRepositoryWithinCeiling { .. }
                            | Upwards::NoGitRepositoryWithinFs { .. }
                    )
                );
                if not_found {
                    Ok(None)
                } else {
                    Err(GitError::Open {
                        path: dir.to_path_buf(),
                        source: error,
                    })
                }
            }
        }
    }

    /// The top of the working tree.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Names the repository across its linked worktrees: its common git directory.
    pub fn identity(&self) -> String {
        let common = self.repo.common_dir();
        common
            .canonicalize()
            .unwrap_or_else(|_| common.to_path_buf())
            .display()
            .to_string()
    }

    /// HEAD's commit id, `None` before the first commit.
    pub fn head_commit(&self) -> Option<String> {
        self.repo.head_id().ok().map(|id| id.to_string())
    }

    /// The checked-out branch, `None` when HEAD is detached.
    pub fn branch(&self) -> Option<String> {
        self.repo
            .head_name()
            .ok()
            .flatten()
            .map(|name| name.shorten().to_string())
    }

    /// Whether tracked files differ from HEAD (in the index or the working tree).
    pub fn is_dirty(&self) -> Result<bool, GitError> {
        self.repo.is_dirty().map_err(|error| GitError::Status {
            path: self.root.clone(),
            message: error.to_string(),
        })
    }

    /// The full id of the commit `rev` names (`HEAD~3`, a tag, a short id, …).
    pub fn resolve_commit(&self, rev: &str) -> Result<String, GitError> {
        let id = self
            .repo
            .rev_parse_single(rev)
            .map_err(|source| GitError::UnknownRevision {
                rev: rev.to_string(),
                source,
            })?;
        let commit = id
            .object()
            .ok()
            .and_then(|object| object.peel_to_commit().ok());
        match commit {
            Some(commit) => Ok(commit.id.to_string()),
            None => Ok(id.to_string()),
        }
    }
}
