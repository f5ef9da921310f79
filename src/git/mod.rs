//! The git repository gzl runs in: what it holds, read with gix, and the source states runs
//! are made of (commits, and snapshots of the working tree).

mod command;
mod snapshot;

use std::path::{Path, PathBuf};

pub use command::{LOCATION_VARIABLES, git, git_as_configured, output};
pub use snapshot::SourceState;

/// A git repository gzl was started in.
pub struct Repo {
    repo: gix::Repository,
    /// The top of the working tree; for a bare repository, its git directory.
    root: PathBuf,
    bare: bool,
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
    #[error("`{rev}` does not name a commit in this repository")]
    NotACommit { rev: String },
    #[error("cannot read the state of the repository at {}: {message}", path.display())]
    Status { path: PathBuf, message: String },
    #[error("cannot read object {id} of the repository: {message}")]
    Object { id: String, message: String },
    #[error("gzl needs the git program, and it is not on PATH")]
    NoGit,
    #[error("`{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("{} is a bare repository: {what} needs a working tree, and it has none", path.display())]
    Bare { path: PathBuf, what: String },
}

impl Repo {
    /// The repository holding `dir`, or `None` when `dir` is not inside a git working tree
    /// or a bare repository.
    pub fn discover(dir: &Path) -> Result<Option<Self>, GitError> {
        match gix::discover(dir) {
            Ok(repo) => {
                let bare = repo.is_bare();
                let root = match repo.workdir() {
                    Some(root) => root.to_path_buf(),
                    // Commits, history and workspaces need only the objects and refs.
                    None if bare => repo.git_dir().to_path_buf(),
                    None => return Ok(None),
                };
                let root = root.canonicalize().unwrap_or(root);
                Ok(Some(Repo { repo, root, bare }))
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

    /// The top of the working tree; for a bare repository, its git directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the repository has no working tree: only commits can be run.
    pub fn is_bare(&self) -> bool {
        self.bare
    }

    /// Refuses what needs a working tree (`what`) in a bare repository.
    pub fn needs_worktree(&self, what: &str) -> Result<(), GitError> {
        match self.bare {
            true => Err(GitError::Bare {
                path: self.root.clone(),
                what: what.to_string(),
            }),
            false => Ok(()),
        }
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

    /// Whether `name` is a local branch.
    pub fn is_branch(&self, name: &str) -> bool {
        self.repo
            .try_find_reference(format!("refs/heads/{name}").as_str())
            .ok()
            .flatten()
            .is_some()
    }

    /// The checked-out branch, `None` when HEAD is detached.
    pub fn branch(&self) -> Option<String> {
        self.repo
            .head_name()
            .ok()
            .flatten()
            .map(|name| name.shorten().to_string())
    }

    /// The repository's own git directory (a linked worktree has its own).
    pub fn git_dir(&self) -> &Path {
        self.repo.git_dir()
    }

    /// The git directory shared by all worktrees: objects, refs and config live here.
    pub fn common_dir(&self) -> PathBuf {
        let common = self.repo.common_dir();
        common
            .canonicalize()
            .unwrap_or_else(|_| common.to_path_buf())
    }

    /// The index file of this worktree.
    pub fn index_path(&self) -> PathBuf {
        self.repo.index_path()
    }

    /// Whether the working tree differs from HEAD in any way a snapshot would capture:
    /// staged, modified, deleted, or untracked files that are not ignored.
    pub fn has_changes(&self) -> Result<bool, GitError> {
        self.needs_worktree("reading uncommitted changes")?;
        let status = output(git(&self.root).args([
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=normal",
            "--no-renames",
        ]))?;
        Ok(!status.is_empty())
    }

    /// The full id of the commit `rev` names: anything git accepts (`HEAD~3`, a tag, a short
    /// id, `main@{1}`).
    pub fn resolve_commit(&self, rev: &str) -> Result<String, GitError> {
        let commit = output(git(&self.root).args([
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{rev}^{{commit}}"),
        ]));
        match commit {
            Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
            Ok(_) | Err(GitError::Command { .. }) => Err(GitError::NotACommit {
                rev: rev.to_string(),
            }),
            Err(error) => Err(error),
        }
    }

    /// The tree of commit `commit`.
    pub fn tree_of(&self, commit: &str) -> Result<String, GitError> {
        let id = object_id(commit)?;
        self.repo
            .find_commit(id)
            .and_then(|c| c.tree_id())
            .map(|tree| tree.to_string())
            .map_err(|error| GitError::Object {
                id: commit.to_string(),
                message: error.to_string(),
            })
    }

    /// The content of the file at `path` in `tree`; `None` when the tree has no such file.
    pub fn file_in_tree(&self, tree: &str, path: &str) -> Result<Option<Vec<u8>>, GitError> {
        let error = object_error(tree);
        let tree = self.find_tree(tree)?;
        let Some(entry) = tree
            .lookup_entry_by_path(path)
            .map_err(|e| error(e.to_string()))?
        else {
            return Ok(None);
        };
        if !entry.mode().is_blob() {
            return Ok(None);
        }
        let object = entry.object().map_err(|e| error(e.to_string()))?;
        Ok(Some(object.data.clone()))
    }

    /// Every file of `tree` (blobs, links and submodule commits) with its mode and object id,
    /// by path. Git has hashed every file already, so this reads ids, not contents.
    pub fn files_in_tree(&self, tree: &str) -> Result<Vec<TreeFile>, GitError> {
        let error = object_error(tree);
        let tree = self.find_tree(tree)?;
        let entries = tree
            .traverse()
            .breadthfirst
            .files()
            .map_err(|e| error(e.to_string()))?;
        let mut files: Vec<TreeFile> = entries
            .into_iter()
            .filter(|entry| !entry.mode.is_tree())
            .map(|entry| TreeFile {
                path: entry.filepath.to_string(),
                mode: entry.mode.value(),
                id: entry.oid.to_string(),
            })
            .collect();
        files.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    fn find_tree(&self, id: &str) -> Result<gix::Tree<'_>, GitError> {
        self.repo
            .find_tree(object_id(id)?)
            .map_err(|e| object_error(id)(e.to_string()))
    }

    /// The first line of commit `commit`'s message.
    pub fn subject(&self, commit: &str) -> Option<String> {
        let commit = self.repo.find_commit(object_id(commit).ok()?).ok()?;
        let message = commit.message_raw_sloppy().to_string();
        message.lines().next().map(|line| line.trim().to_string())
    }

    /// The commits reachable from `tip` and not from `hidden`, newest first, each with its
    /// parents (only the first with `first_parent`).
    pub fn commits_between(
        &self,
        tip: &str,
        hidden: &str,
        first_parent: bool,
    ) -> Result<Vec<(String, Vec<String>)>, GitError> {
        let mut command = git(&self.root);
        command.args(["rev-list", "--parents", "--topo-order"]);
        if first_parent {
            command.arg("--first-parent");
        }
        command.args([tip, &format!("^{hidden}"), "--"]);
        Ok(output(&mut command)?
            .lines()
            .filter_map(|line| {
                let mut ids = line.split_whitespace().map(str::to_string);
                let commit = ids.next()?;
                let parents = if first_parent {
                    ids.take(1).collect()
                } else {
                    ids.collect()
                };
                Some((commit, parents))
            })
            .collect())
    }

    /// Whether `ancestor` is `commit` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: &str, commit: &str) -> Result<bool, GitError> {
        match output(git(&self.root).args(["merge-base", "--is-ancestor", ancestor, commit])) {
            Ok(_) => Ok(true),
            // Exit 1 means no; anything else is an error, with a message.
            Err(GitError::Command { message, .. }) if message.starts_with("exited with") => {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// Up to `limit` ancestors of `tip`, itself first, newest first.
    pub fn ancestors(
        &self,
        tip: &str,
        first_parent: bool,
        limit: usize,
    ) -> Result<Vec<String>, GitError> {
        let mut command = git(&self.root);
        command.args(["rev-list", "--topo-order", &format!("--max-count={limit}")]);
        if first_parent {
            command.arg("--first-parent");
        }
        command.args([tip, "--"]);
        Ok(output(&mut command)?.lines().map(str::to_string).collect())
    }

    /// A commit's subject, author (`Name <email>`) and date (ISO 8601).
    pub fn commit_summary(&self, commit: &str) -> Result<(String, String, String), GitError> {
        let text = output(git(&self.root).args([
            "show",
            "-s",
            "--date=iso-strict",
            "--format=%s%x00%an <%ae>%x00%ad",
            commit,
            "--",
        ]))?;
        let mut parts = text.trim_end().splitn(3, '\0').map(str::to_string);
        Ok((
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        ))
    }

    /// Whether the object `id` is in the repository.
    pub fn has_object(&self, id: &str) -> bool {
        object_id(id).is_ok_and(|id| self.repo.has_object(id))
    }
}

/// A file in a git tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFile {
    pub path: String,
    pub mode: u16,
    pub id: String,
}

/// Makes errors about object `id` from messages.
fn object_error(id: &str) -> impl Fn(String) -> GitError + '_ {
    move |message| GitError::Object {
        id: id.to_string(),
        message,
    }
}

fn object_id(hex: &str) -> Result<gix::ObjectId, GitError> {
    gix::ObjectId::from_hex(hex.as_bytes()).map_err(|error| GitError::Object {
        id: hex.to_string(),
        message: error.to_string(),
    })
}
