//! Where gzl keeps its files: history, logs and scripts in the data directory; workspaces
//! in the cache directory (they can always be made again).

use std::path::{Path, PathBuf};

use crate::history::HistoryError;

/// gzl's directories: `$GZL_HOME` (data) and `$GZL_HOME/cache` when set, else the platform's
/// data and cache directories for gzl.
#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
    cache: PathBuf,
    config: PathBuf,
}

impl Home {
    /// `$GZL_HOME` when set, else the platform's directories for gzl.
    pub fn locate() -> Result<Self, HistoryError> {
        if let Some(home) = std::env::var_os("GZL_HOME").filter(|h| !h.is_empty()) {
            // Stages run elsewhere and get paths inside the home: it must be absolute.
            let home = std::path::absolute(&home).map_err(|source| HistoryError::Directory {
                path: home.into(),
                source,
            })?;
            return Ok(Home {
                cache: home.join("cache"),
                config: home.join("config"),
                root: home,
            });
        }
        directories::ProjectDirs::from("", "", "gzl")
            .map(|dirs| Home {
                root: dirs.data_dir().to_path_buf(),
                cache: dirs.cache_dir().to_path_buf(),
                config: dirs.config_dir().to_path_buf(),
            })
            .ok_or(HistoryError::NoHome)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The user's own settings and secrets: `$GZL_HOME/config`, or the platform's config
    /// directory for gzl.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Where workspaces live: nothing there is lost when it is deleted.
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    pub(crate) fn database(&self) -> PathBuf {
        self.root.join("history.db")
    }

    /// The directory holding a run's logs.
    pub fn run_dir(&self, run: i64) -> PathBuf {
        self.root.join("runs").join(run.to_string())
    }

    /// Stores a stage script by content (its git blob id) and returns the file's path. A script
    /// is written once and shared by every stage and run with the same text.
    pub fn store_script(&self, text: &str) -> Result<PathBuf, HistoryError> {
        let id = blob_id(text.as_bytes());
        let dir = self.root.join("scripts");
        let path = dir.join(&id);
        if path.is_file() {
            return Ok(path);
        }
        let error = |source| HistoryError::Directory {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(error)?;
        // Written aside and renamed, so a concurrent gzl never runs half a script.
        let temporary = dir.join(format!(".{id}.{}", std::process::id()));
        std::fs::write(&temporary, text).map_err(error)?;
        std::fs::rename(&temporary, &path).map_err(error)?;
        Ok(path)
    }

    pub(crate) fn locks(&self) -> PathBuf {
        self.root.join("locks")
    }
}

/// The git blob id of `bytes`: what `git hash-object` prints for a file holding them.
pub fn blob_id(bytes: &[u8]) -> String {
    gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, bytes)
        .map(|id| id.to_string())
        .unwrap_or_default()
}
