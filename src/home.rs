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
    /// Whether gzl named the data directory (the platform's), rather than the user
    /// (`$GZL_HOME`, which may be a directory gzl did not make).
    root_named_by_gzl: bool,
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
                root_named_by_gzl: false,
            });
        }
        directories::ProjectDirs::from("", "", "gzl")
            .map(|dirs| Home {
                root: dirs.data_dir().to_path_buf(),
                cache: dirs.cache_dir().to_path_buf(),
                config: dirs.config_dir().to_path_buf(),
                root_named_by_gzl: true,
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
        create_private_dir(&dir).map_err(error)?;
        // Written aside and renamed, so a concurrent gzl never runs half a script.
        let temporary = dir.join(format!(".{id}.{}", std::process::id()));
        let mut file = create_private_file(&temporary).map_err(error)?;
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(error)?;
        std::fs::rename(&temporary, &path).map_err(error)?;
        Ok(path)
    }

    /// The directory of a run's own files (stop markers), beside its stages' logs: `.gzl`
    /// cannot be a stage's log, which is `NAME.log` with a name that starts with a letter,
    /// digit or `_`.
    pub fn gzl_dir(run_dir: &Path) -> PathBuf {
        run_dir.join(".gzl")
    }

    /// Makes gzl's directories private to the user: created 0700 where missing, and tightened
    /// where gzl named them itself and finds them open to others (homes made by older gzl
    /// versions). A `$GZL_HOME` that existed before gzl is left as it is: it may be shared,
    /// and what gzl keeps in it is in the private directories below it.
    pub fn make_private(&self) -> Result<(), HistoryError> {
        let error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HistoryError::Directory { path, source }
        };
        for (dir, ours) in [
            (self.root.clone(), self.root_named_by_gzl),
            (self.root.join("runs"), true),
            (self.root.join("scripts"), true),
            (self.root.join("objects"), true),
            (self.locks(), true),
            (self.cache.clone(), true),
            (self.config.clone(), true),
        ] {
            create_private_dir(&dir).map_err(error(&dir))?;
            if ours {
                tighten(&dir, 0o700);
            }
        }
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = self.database().into_os_string();
            path.push(suffix);
            tighten(Path::new(&path), 0o600);
        }
        Ok(())
    }

    pub(crate) fn locks(&self) -> PathBuf {
        self.root.join("locks")
    }
}

/// Creates `dir` and the directories missing above it with mode 0700 (a umask only takes
/// bits away, and none of the group's or others' are there to take). An existing directory is
/// left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Creates (or truncates) a file only its owner can read and write, whatever the umask.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// Takes away what others (group and world) may do with `path`, when they may do anything. A
/// failure (a directory of another user's) is a warning: gzl works on, as before.
fn tighten(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return;
    };
    // A symlink leads to what gzl did not make: its target is left alone.
    if metadata.file_type().is_symlink() || metadata.permissions().mode() & 0o077 == 0 {
        return;
    }
    if let Err(error) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        tracing::warn!(path = %path.display(), %error, "cannot make gzl's file private to its user");
    }
}

/// The git blob id of `bytes`: what `git hash-object` prints for a file holding them.
pub fn blob_id(bytes: &[u8]) -> String {
    gix::objs::compute_hash(gix::hash::Kind::Sha1, gix::objs::Kind::Blob, bytes)
        .map(|id| id.to_string())
        .unwrap_or_default()
}
