//! Source states: what a run is about. A commit, or a snapshot of the working tree made as
//! a git tree without touching the user's index, files, stash or HEAD.

use super::{GitError, Repo, git, output};

/// The source a run executes: a commit, or a snapshot of the working tree on top of one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    /// The commit the state is based on; `None` in a repository without commits.
    pub commit: Option<String>,
    /// The tree of the state: the commit's, or the snapshot's.
    pub tree: String,
    /// Whether the state is a snapshot that differs from `commit`.
    pub dirty: bool,
    /// The commit a workspace checks out: `commit`; `None` for a snapshot, whose commit
    /// [`Repo::checkout_commit`] makes only when a workspace needs it.
    pub checkout: Option<String>,
    /// The branch the state belongs to: the checked-out one for the working tree; for a
    /// commit, the branch it was named by, if any.
    pub branch: Option<String>,
}

/// Refs under this prefix keep snapshots from git's garbage collection until `gzl gc`.
pub const SNAPSHOT_REFS: &str = "refs/gzl/snapshots/";

impl Repo {
    /// The state of commit `rev` (anything git accepts as a commit).
    pub fn commit_state(&self, rev: &str) -> Result<SourceState, GitError> {
        let commit = self.resolve_commit(rev)?;
        // The branch it was named by; else the checked-out one, when this is its tip (a run
        // a hook or `gzl watch` starts for the commit just made).
        let branch = if self.is_branch(rev) {
            Some(rev.to_string())
        } else if self.head_commit().as_deref() == Some(commit.as_str()) {
            self.branch()
        } else {
            None
        };
        Ok(SourceState {
            branch,
            tree: self.tree_of(&commit)?,
            checkout: Some(commit.clone()),
            commit: Some(commit),
            dirty: false,
        })
    }

    /// The state of the working tree: HEAD's commit when nothing changed, else a snapshot of
    /// HEAD plus staged and unstaged changes plus untracked files that are not ignored.
    ///
    /// The snapshot is staged into a copy of the index, next to the real one (so a split
    /// index still finds its shared part), written as a tree, and committed on top of HEAD
    /// under `refs/gzl/snapshots/<tree>`. The user's index, files, stash and HEAD are not
    /// touched.
    pub fn working_tree_state(&self) -> Result<SourceState, GitError> {
        self.needs_worktree("a snapshot of uncommitted changes")?;
        let head = self.head_commit();
        let head_tree = head.as_deref().map(|c| self.tree_of(c)).transpose()?;
        if !self.has_changes()?
            && let (Some(commit), Some(tree)) = (&head, &head_tree)
        {
            return Ok(SourceState {
                branch: self.branch(),
                checkout: Some(commit.clone()),
                commit: Some(commit.clone()),
                tree: tree.clone(),
                dirty: false,
            });
        }
        let index = TemporaryIndex::beside(&self.index_path())?;
        output(git(&self.root).env("GIT_INDEX_FILE", &index.path).args([
            "-c",
            "advice.addEmbeddedRepo=false",
            "add",
            "--all",
            "--",
            ".",
        ]))?;
        let tree = output(
            git(&self.root)
                .env("GIT_INDEX_FILE", &index.path)
                .arg("write-tree"),
        )?
        .trim()
        .to_string();
        drop(index);
        if let (Some(commit), Some(head_tree)) = (&head, &head_tree)
            && *head_tree == tree
        {
            // Only file times changed, or a change was undone: this is HEAD.
            return Ok(SourceState {
                branch: self.branch(),
                checkout: Some(commit.clone()),
                commit: Some(commit.clone()),
                tree,
                dirty: false,
            });
        }
        Ok(SourceState {
            branch: self.branch(),
            commit: head,
            dirty: true,
            tree,
            checkout: None,
        })
    }

    /// The commit to check out for `state`: its own, or for a snapshot a commit of its tree
    /// on top of the base, kept by a ref under `refs/gzl/snapshots/`.
    pub fn checkout_commit(&self, state: &SourceState) -> Result<String, GitError> {
        match &state.checkout {
            Some(commit) => Ok(commit.clone()),
            None => self.snapshot_commit(state.commit.as_deref(), &state.tree),
        }
    }

    /// The state of the index `index` (the staged tree, as the next commit would hold it) on
    /// top of HEAD: what a pre-commit hook checks. git gives hooks the index to use in
    /// `GIT_INDEX_FILE` (a temporary one for `git commit -a` or `git commit PATH`).
    pub fn staged_state(&self, index: Option<&std::ffi::OsStr>) -> Result<SourceState, GitError> {
        let mut command = git(&self.root);
        if let Some(index) = index {
            command.env("GIT_INDEX_FILE", index);
        }
        let tree = output(command.arg("write-tree"))?.trim().to_string();
        let head = self.head_commit();
        let head_tree = head.as_deref().map(|c| self.tree_of(c)).transpose()?;
        let dirty = head_tree.as_deref() != Some(tree.as_str());
        Ok(SourceState {
            branch: self.branch(),
            checkout: if dirty { None } else { head.clone() },
            commit: head,
            tree,
            dirty,
        })
    }

    /// Commits `tree` on top of `parent` for workspaces to check out, and keeps it with a
    /// ref. The author, committer and date are fixed (the date is the parent's), so the same
    /// snapshot gets the same commit id every time.
    fn snapshot_commit(&self, parent: Option<&str>, tree: &str) -> Result<String, GitError> {
        let seconds = parent.and_then(|p| self.commit_time(p)).unwrap_or(0);
        let date = format!("@{seconds} +0000");
        let mut command = git(&self.root);
        command
            .args(["-c", "commit.gpgSign=false", "commit-tree", tree])
            .args(["-m", "gzl snapshot of the working tree"])
            .env("GIT_AUTHOR_NAME", "gzl")
            .env("GIT_AUTHOR_EMAIL", "gzl@localhost")
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_NAME", "gzl")
            .env("GIT_COMMITTER_EMAIL", "gzl@localhost")
            .env("GIT_COMMITTER_DATE", &date);
        if let Some(parent) = parent {
            command.args(["-p", parent]);
        }
        let commit = output(&mut command)?.trim().to_string();
        let name = format!("{SNAPSHOT_REFS}{tree}");
        if let Err(error) = output(git(&self.root).args(["update-ref", &name, &commit])) {
            // Another gzl snapshotting the same state at once holds the ref's lock; it
            // writes the same commit (the same tree on the same parent, fixed author and
            // date), and that is all this needs.
            let now = output(git(&self.root).args(["rev-parse", "--verify", "--quiet", &name]));
            if !now.is_ok_and(|id| id.trim() == commit) {
                return Err(error);
            }
        }
        Ok(commit)
    }
}

impl Repo {
    /// The committer time of `commit`, in seconds since the Unix epoch.
    fn commit_time(&self, commit: &str) -> Option<i64> {
        let id = gix::ObjectId::from_hex(commit.as_bytes()).ok()?;
        self.repo
            .find_commit(id)
            .ok()?
            .time()
            .ok()
            .map(|t| t.seconds)
    }

    /// The trees that `refs/gzl/snapshots/` keeps.
    pub fn snapshot_trees(&self) -> Result<Vec<String>, GitError> {
        let refs =
            output(git(&self.root).args(["for-each-ref", "--format=%(refname)", SNAPSHOT_REFS]))?;
        Ok(refs
            .lines()
            .filter_map(|name| name.strip_prefix(SNAPSHOT_REFS))
            .map(str::to_string)
            .collect())
    }

    /// Drops the ref that keeps the snapshot of `tree`; git's own gc may then delete it.
    pub fn drop_snapshot(&self, tree: &str) -> Result<(), GitError> {
        output(git(&self.root).args(["update-ref", "-d", &format!("{SNAPSHOT_REFS}{tree}")]))?;
        Ok(())
    }
}

/// A copy of the user's index that gzl stages into; removed when dropped.
struct TemporaryIndex {
    path: std::path::PathBuf,
}

impl TemporaryIndex {
    fn beside(index: &std::path::Path) -> Result<Self, GitError> {
        let dir = index.parent().unwrap_or(index);
        remove_abandoned_copies(dir);
        // Threads of one gzl (`gzl watch --worktree`) may snapshot at once.
        static COPIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let copy = COPIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("gzl-index-{}.{copy}", std::process::id()));
        // The copy keeps the index's modification time: git trusts an entry's stat data
        // only when the file is older than the index, and a newer copy would make it trust
        // files rewritten in the same second as the real index (same size, same second).
        let copied = match std::fs::copy(index, &path).and_then(|_| {
            let modified = std::fs::metadata(index)?.modified()?;
            std::fs::File::options()
                .write(true)
                .open(&path)?
                .set_modified(modified)
        }) {
            Ok(()) => Ok(()),
            // No index yet: `git add` starts an empty one.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        };
        copied.map_err(|error| GitError::Status {
            path: dir.to_path_buf(),
            message: format!("cannot copy the index: {error}"),
        })?;
        Ok(TemporaryIndex { path })
    }
}

/// Removes the index copies of gzl processes that died before removing them (killed while
/// making a snapshot).
fn remove_abandoned_copies(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("gzl-index-"))
            .and_then(|rest| rest.split('.').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // Only "no such process" means dead: another user's live gzl answers EPERM.
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH);
        if gone {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Drop for TemporaryIndex {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(self.path.with_extension("lock"));
    }
}
