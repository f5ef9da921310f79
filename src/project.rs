//! Where gzl was started: the repository (if any), its root, and its Gzlfile.

use std::path::{Path, PathBuf};

use crate::git::{GitError, Repo, SourceState};
use crate::stagefile::{FILE_NAME, Gzlfile, StagefileError};

/// The repository (or plain directory) a command works on.
pub struct Project {
    /// The repository root, or for a directory outside git, the one holding the Gzlfile.
    pub root: PathBuf,
    pub repo: Option<Repo>,
    /// The Gzlfile in use (it may not exist yet).
    pub gzlfile: PathBuf,
    /// Whether the Gzlfile path was given with `--file`.
    explicit_file: bool,
}

impl Project {
    /// Finds the project for a command started in `dir`. In a git repository the Gzlfile is
    /// the one at the repository root; outside git, the nearest one in `dir` or a parent.
    pub fn discover(dir: &Path, file: Option<&Path>) -> Result<Self, GitError> {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let repo = Repo::discover(&dir)?;
        let root = match (&repo, file) {
            (Some(repo), _) => repo.root().to_path_buf(),
            // Outside git, a Gzlfile given by path is its own project, rooted where it is.
            (None, Some(file)) => {
                let parent = dir
                    .join(file)
                    .parent()
                    .map_or_else(|| dir.clone(), Path::to_path_buf);
                parent.canonicalize().unwrap_or(parent)
            }
            (None, None) => dir
                .ancestors()
                .find(|candidate| candidate.join(FILE_NAME).is_file())
                .unwrap_or(&dir)
                .to_path_buf(),
        };
        let (gzlfile, explicit_file) = match file {
            Some(file) => (dir.join(file), true),
            None => (root.join(FILE_NAME), false),
        };
        Ok(Project {
            root,
            repo,
            gzlfile,
            explicit_file,
        })
    }

    /// Reads and checks the Gzlfile: in a bare repository, HEAD's (shown `HEAD:Gzlfile`).
    pub fn load(&self) -> Result<Gzlfile, StagefileError> {
        match &self.repo {
            Some(repo) if repo.is_bare() && !self.explicit_file => {
                let head = PathBuf::from(format!("HEAD:{FILE_NAME}"));
                match repo.commit_state("HEAD") {
                    Ok(state) => self.load_at(&state, "HEAD"),
                    Err(GitError::NotACommit { .. }) => {
                        Err(StagefileError::NotFound { searched: head })
                    }
                    Err(error) => Err(StagefileError::Read {
                        path: head,
                        source: std::io::Error::other(error),
                    }),
                }
            }
            _ => Gzlfile::load(&self.gzlfile),
        }
    }

    /// Whether the Gzlfile was given with `--file`.
    pub fn explicit_file(&self) -> bool {
        self.explicit_file
    }

    /// The source a run executes, as asked.
    pub fn source(&self, request: SourceRequest<'_>) -> Result<Source, GitError> {
        let Some(repo) = &self.repo else {
            return Ok(Source::InPlace {
                commit: None,
                dirty: false,
            });
        };
        Ok(match request {
            SourceRequest::InPlace if repo.is_bare() => {
                return Err(GitError::Bare {
                    path: repo.root().to_path_buf(),
                    what: "--in-place".into(),
                });
            }
            // A bare repository's state is HEAD's commit: there are no changes to snapshot.
            SourceRequest::WorkingTree if repo.is_bare() => {
                Source::Isolated(repo.commit_state("HEAD")?)
            }
            SourceRequest::InPlace => Source::InPlace {
                commit: repo.head_commit(),
                dirty: repo.has_changes()?,
            },
            SourceRequest::WorkingTree => Source::Isolated(repo.working_tree_state()?),
            SourceRequest::At(rev) => Source::Isolated(repo.commit_state(rev)?),
        })
    }

    /// Reads and checks the Gzlfile of commit `rev` (whose state is `state`), shown as
    /// `REV:Gzlfile` in diagnostics.
    pub fn load_at(&self, state: &SourceState, rev: &str) -> Result<Gzlfile, StagefileError> {
        let shown = PathBuf::from(format!("{rev}:{FILE_NAME}"));
        let Some(repo) = &self.repo else {
            return Err(StagefileError::NotFound { searched: shown });
        };
        match repo.file_in_tree(&state.tree, FILE_NAME) {
            Ok(Some(bytes)) => Gzlfile::from_bytes(&shown, bytes),
            Ok(None) => Err(StagefileError::NotFound { searched: shown }),
            Err(error) => Err(StagefileError::Read {
                path: shown,
                source: std::io::Error::other(error),
            }),
        }
    }

    /// Names the repository in history: its git directory, or the root outside git.
    pub fn identity(&self) -> String {
        match &self.repo {
            Some(repo) => repo.identity(),
            None => self.root.display().to_string(),
        }
    }

    /// Says where gzl looked for the Gzlfile, for the error that it is missing.
    pub fn searched(&self) -> String {
        if self.explicit_file {
            format!("at {} (given with --file)", self.gzlfile.display())
        } else if self.repo.as_ref().is_some_and(Repo::is_bare) {
            format!(
                "in HEAD of {} (a bare repository: gzl reads the Gzlfile of a commit)",
                self.root.display()
            )
        } else if self.repo.is_some() {
            format!("in {} (the repository root)", self.root.display())
        } else {
            format!(
                "in {} or its parent directories (not in a git repository)",
                self.root.display()
            )
        }
    }

    /// The Gzlfile's path as shown in diagnostics: relative to the root when inside it.
    pub fn display_path(&self) -> String {
        self.gzlfile
            .strip_prefix(&self.root)
            .unwrap_or(&self.gzlfile)
            .display()
            .to_string()
    }
}

/// Which source a run should execute.
#[derive(Debug, Clone, Copy)]
pub enum SourceRequest<'a> {
    /// The working tree as it is now, captured (a snapshot when it has changes).
    WorkingTree,
    /// A commit, named any way git accepts.
    At(&'a str),
    /// The working tree itself, not captured: the stages run in the repository.
    InPlace,
}

/// The source of a run.
#[derive(Debug, Clone)]
pub enum Source {
    /// Captured: the run executes in a workspace, and its results can be reused.
    Isolated(SourceState),
    /// In the working tree (or a directory outside git); nothing was captured.
    InPlace { commit: Option<String>, dirty: bool },
}
