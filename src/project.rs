//! Where gzl was started: the repository (if any), its root, and its Gzlfile.

use std::path::{Path, PathBuf};

use crate::git::{GitError, Repo};
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

    /// Reads and checks the Gzlfile.
    pub fn load(&self) -> Result<Gzlfile, StagefileError> {
        Gzlfile::load(&self.gzlfile)
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
