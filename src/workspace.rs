//! Workspaces: the checkouts runs execute in, kept in a pool per repository under gzl's cache
//! directory and reused, so ignored build output (`target/`, `node_modules/`) survives from
//! run to run.
//!
//! A workspace is a repository of its own whose objects come from the user's repository
//! through `objects/info/alternates`: `git` works in it as in any clone, and it has its own
//! config, hooks and refs, so a stage that runs `git config`, `git tag` or husky's install
//! changes the workspace, never the user's repository. gzl rewrites the workspace's config
//! and refs on every lease, so nothing a stage did there reaches the next run either.
//! docs/design/workspaces.md says why this and not `git worktree add`.
//!
//! A run leases a workspace with an exclusive lock on `<slot>.lock` for its whole life; a
//! lock held by a dead process is free, so its workspace is simply taken over. A workspace a
//! failed run left behind is kept as the stage left it until `gzl gc`, or until the pool
//! needs it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::{self, Clean};
use crate::git::{self, GitError, Repo};
use crate::home::Home;

/// The workspaces of one repository.
pub struct Pool {
    dir: PathBuf,
    size: usize,
    /// The repository's git directory, written into the pool so `gzl gc` can tell when the
    /// repository is gone.
    repository: PathBuf,
}

/// The file in a pool naming the repository it belongs to.
const REPOSITORY_FILE: &str = "repository";

/// A workspace leased by this process; the lease ends when it is dropped.
pub struct Workspace {
    pub slot: usize,
    /// The top of the checkout: stages run here.
    pub path: PathBuf,
    pool: PathBuf,
    /// When this lease checked the workspace out afresh.
    created: std::cell::Cell<Option<std::time::Instant>>,
    /// Held for the lease's life; the lock ends with the file.
    _lock: File,
}

/// A failure to make or use a workspace.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("cannot use the workspace directory {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot prepare the workspace {}", path.display())]
    Git {
        path: PathBuf,
        #[source]
        source: GitError,
    },
}

/// A workspace kept from runs while someone looks at it (`gzl debug`).
pub struct Hold {
    _lock: File,
}

/// What a slot's state file remembers about the last run in it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SlotState {
    /// The last run that used the workspace.
    pub run: Option<i64>,
    /// Whether a run is (or was, when its gzl died) using it.
    pub active: bool,
    /// Kept for debugging: the last run in it failed.
    pub kept: bool,
    /// When it was last leased or released, in milliseconds since the Unix epoch.
    pub used_at: i64,
    /// What the workspace holds of each stage, by name: the key of the result the stage last
    /// left here, by passing here or by having its `@outputs` restored here. A stage's entry
    /// goes before it runs here, and whatever a clean or a new checkout may have deleted
    /// goes with the files.
    #[serde(default)]
    pub results: std::collections::BTreeMap<String, String>,
}

/// How [`Workspace::prepare`] left the workspace's files beyond the checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// Made anew: nothing an earlier run wrote is there.
    Fresh,
    /// Cleaned: `removed` says whether the clean deleted anything.
    Cleaned { removed: bool },
}

/// A slot of the pool as `gzl gc` sees it.
pub struct Slot {
    pub slot: usize,
    pub path: PathBuf,
    pub state: SlotState,
    /// Whether a live run holds it.
    pub leased: bool,
}

impl Pool {
    /// The pool of `repo`'s workspaces.
    pub fn of(home: &Home, repo: &Repo, settings: &config::Workspaces) -> Self {
        Pool {
            dir: home.cache().join("workspaces").join(pool_name(repo)),
            size: settings.pool,
            repository: repo.common_dir(),
        }
    }

    /// Removes the pools of repositories that no longer exist (moved or deleted), unless a
    /// run holds one of their workspaces. Returns the directories removed, with the disk each
    /// took; with `dry_run`, those it would remove, removing nothing.
    pub fn remove_orphans(
        home: &Home,
        dry_run: bool,
    ) -> Result<Vec<(PathBuf, u64)>, WorkspaceError> {
        let root = home.cache().join("workspaces");
        let entries = match std::fs::read_dir(&root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(WorkspaceError::Io { path: root, source }),
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let dir = entry.path();
            let Ok(repository) = std::fs::read_to_string(dir.join(REPOSITORY_FILE)) else {
                continue;
            };
            if Path::new(repository.trim_end()).is_dir() {
                continue;
            }
            let pool = Pool {
                dir: dir.clone(),
                size: 0,
                repository: PathBuf::from(repository.trim_end()),
            };
            let leases: Vec<File> = pool
                .slots()?
                .iter()
                .filter_map(|slot| pool.try_lock(slot.slot).transpose())
                .collect::<Result<_, _>>()?;
            if leases.len() < pool.slots()?.len() {
                continue;
            }
            let bytes = disk_usage(&dir);
            if !dry_run {
                std::fs::remove_dir_all(&dir).map_err(|source| WorkspaceError::Io {
                    path: dir.clone(),
                    source,
                })?;
            }
            removed.push((dir, bytes));
        }
        Ok(removed)
    }

    /// Leases a workspace: a free one that is not kept, the warmest first; else a new one
    /// while the pool has room; else the oldest kept one (`note` says so); else a new one
    /// beyond the pool's size, which `gzl gc` removes later.
    pub fn lease(&self, note: &mut dyn FnMut(String)) -> Result<Workspace, WorkspaceError> {
        let io = |source| WorkspaceError::Io {
            path: self.dir.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        std::fs::write(
            self.dir.join(REPOSITORY_FILE),
            format!("{}\n", self.repository.display()),
        )
        .map_err(io)?;
        let slots = self.slots()?;
        let mut free: Vec<&Slot> = slots.iter().filter(|s| !s.leased).collect();
        free.sort_by_key(|s| std::cmp::Reverse(s.state.used_at));
        for slot in free.iter().filter(|s| !s.state.kept) {
            if let Some(workspace) = self.try_lease(slot.slot)? {
                if slot.state.active
                    && let Some(run) = slot.state.run
                {
                    note(format!(
                        "taking over workspace {} from interrupted run {run}",
                        slot.slot
                    ));
                }
                return Ok(workspace);
            }
        }
        if slots.len() < self.size
            && let Some(workspace) = self.lease_new(&slots)?
        {
            return Ok(workspace);
        }
        free.sort_by_key(|s| s.state.used_at);
        for slot in free.iter().filter(|s| s.state.kept) {
            if let Some(workspace) = self.try_lease(slot.slot)? {
                note(format!(
                    "reusing workspace {}, kept from failed run {}: the pool holds {} (gzl.toml [workspaces] pool)",
                    slot.slot,
                    slot.state.run.map_or_else(|| "?".into(), |r| r.to_string()),
                    self.size
                ));
                return Ok(workspace);
            }
        }
        loop {
            if let Some(workspace) = self.lease_new(&self.slots()?)? {
                return Ok(workspace);
            }
        }
    }

    /// The slot [`Pool::lease`] would take now, by the same choice: `None` for a new one.
    pub fn peek(&self) -> Result<Option<Slot>, WorkspaceError> {
        let slots = self.slots()?;
        let total = slots.len();
        let mut free: Vec<Slot> = slots.into_iter().filter(|s| !s.leased).collect();
        free.sort_by_key(|s| std::cmp::Reverse(s.state.used_at));
        if let Some(at) = free.iter().position(|s| !s.state.kept) {
            return Ok(Some(free.swap_remove(at)));
        }
        if total < self.size {
            return Ok(None);
        }
        free.sort_by_key(|s| s.state.used_at);
        Ok(free.into_iter().next())
    }

    /// The pool's slots with their state, in slot order.
    pub fn slots(&self) -> Result<Vec<Slot>, WorkspaceError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(WorkspaceError::Io {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut slots: Vec<Slot> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let slot = name
                    .to_str()?
                    .strip_suffix(".lock")?
                    .parse::<usize>()
                    .ok()?;
                Some(Slot {
                    slot,
                    path: self.dir.join(slot.to_string()),
                    state: self.state(slot),
                    leased: is_locked(&entry.path()),
                })
            })
            .collect();
        slots.sort_by_key(|s| s.slot);
        Ok(slots)
    }

    /// Holds the workspace at `path` as run `run` left it, when no run uses it and no later
    /// run has used it: the lease changes nothing in it. `None` otherwise.
    pub fn hold(&self, path: &Path, run: i64) -> Result<Option<Hold>, WorkspaceError> {
        let Some(slot) = self
            .slots()?
            .into_iter()
            .find(|slot| slot.path == path && slot.state.run == Some(run))
        else {
            return Ok(None);
        };
        if !slot.path.join(".git").exists() {
            return Ok(None);
        }
        let Some(lock) = self.try_lock(slot.slot)? else {
            return Ok(None);
        };
        // What is done there meanwhile is the user's: no stage's result stays known to be
        // in it.
        if !slot.state.results.is_empty() {
            let mut state = slot.state;
            state.results.clear();
            write_state(&self.state_path(slot.slot), &state)?;
        }
        Ok(Some(Hold { _lock: lock }))
    }

    /// Keeps the workspace run `run` left, for `gzl debug`, when no run uses it and no later
    /// run has used it (`gzl bisect` keeps its answer's this way). Its path, or `None`.
    pub fn keep(&self, run: i64) -> Result<Option<PathBuf>, WorkspaceError> {
        let Some(slot) = self
            .slots()?
            .into_iter()
            .find(|slot| slot.state.run == Some(run) && slot.path.join(".git").exists())
        else {
            return Ok(None);
        };
        let Some(_lock) = self.try_lock(slot.slot)? else {
            return Ok(None);
        };
        let mut state = slot.state;
        state.kept = true;
        write_state(&self.state_path(slot.slot), &state)?;
        Ok(Some(slot.path))
    }

    /// Deletes a free slot's workspace and files. Returns false when a run holds it.
    pub fn remove(&self, slot: usize) -> Result<bool, WorkspaceError> {
        let Some(_lease) = self.try_lock(slot)? else {
            return Ok(false);
        };
        let path = self.dir.join(slot.to_string());
        let io = |source| WorkspaceError::Io {
            path: path.clone(),
            source,
        };
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io(error)),
        }
        for file in [self.state_path(slot), self.config_path(slot)] {
            let _ = std::fs::remove_file(file);
        }
        let _ = std::fs::remove_file(self.lock_path(slot));
        Ok(true)
    }

    /// Removes free workspaces, least recently used first, while the pool takes more than
    /// `max_size` bytes on disk; never one a run holds, never slot `keep` (the one just used).
    /// Returns the slots removed with the disk each took.
    pub fn trim(&self, max_size: u64, keep: usize) -> Result<Vec<(usize, u64)>, WorkspaceError> {
        let mut slots = self.slots()?;
        slots.sort_by_key(|s| s.state.used_at);
        let sizes: Vec<u64> = slots.iter().map(|slot| disk_usage(&slot.path)).collect();
        let mut total: u64 = sizes.iter().sum();
        let mut removed = Vec::new();
        for (slot, bytes) in slots.iter().zip(sizes) {
            if total <= max_size {
                break;
            }
            if slot.leased || slot.slot == keep {
                continue;
            }
            if self.remove(slot.slot)? {
                total -= bytes;
                removed.push((slot.slot, bytes));
            }
        }
        Ok(removed)
    }

    /// The pool's size setting.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The directory holding the pool.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Deletes workspaces set aside as broken.
    pub fn empty_trash(&self) {
        let _ = std::fs::remove_dir_all(self.dir.join("trash"));
    }

    fn lease_new(&self, slots: &[Slot]) -> Result<Option<Workspace>, WorkspaceError> {
        let slot = (0..)
            .find(|n| slots.iter().all(|s| s.slot != *n))
            .unwrap_or(0);
        // Another gzl may take the same number first; the caller then looks again.
        self.try_lease(slot)
    }

    fn try_lease(&self, slot: usize) -> Result<Option<Workspace>, WorkspaceError> {
        let Some(lock) = self.try_lock(slot)? else {
            return Ok(None);
        };
        let workspace = Workspace {
            slot,
            path: self.dir.join(slot.to_string()),
            pool: self.dir.clone(),
            created: std::cell::Cell::new(None),
            _lock: lock,
        };
        let mut state = workspace.state();
        state.active = true;
        state.kept = false;
        // Until a run starts here, no run is using it: a gzl that dies before then
        // interrupted nothing.
        state.run = None;
        state.used_at = crate::history::millis(SystemTime::now());
        workspace.write_state(&state)?;
        Ok(Some(workspace))
    }

    fn try_lock(&self, slot: usize) -> Result<Option<File>, WorkspaceError> {
        let path = self.lock_path(slot);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| WorkspaceError::Io {
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(source)) => Err(WorkspaceError::Io { path, source }),
        }
    }

    fn state(&self, slot: usize) -> SlotState {
        read_state(&self.state_path(slot))
    }

    fn lock_path(&self, slot: usize) -> PathBuf {
        self.dir.join(format!("{slot}.lock"))
    }

    fn state_path(&self, slot: usize) -> PathBuf {
        self.dir.join(format!("{slot}.json"))
    }

    fn config_path(&self, slot: usize) -> PathBuf {
        self.dir.join(format!("{slot}.config"))
    }
}

impl Workspace {
    /// Makes the workspace hold exactly `source.checkout`: tracked files as committed, files
    /// git does not track removed (ignored ones too with `Clean::All`), submodules checked
    /// out, and the repository's config and refs reset to what gzl gives every run. A
    /// workspace git cannot bring there is set aside and made anew.
    ///
    /// The clean never deletes what `keep` names: gitignore patterns anchored at the
    /// workspace's top (`git clean -e`), the declared outputs of the run's stages.
    pub fn prepare(
        &self,
        repo: &Repo,
        commit: &str,
        clean: Clean,
        keep: &[String],
    ) -> Result<Prepared, WorkspaceError> {
        match self.try_prepare(repo, commit, clean, keep) {
            Ok(prepared) => Ok(prepared),
            Err(error) if self.path.join(".git").exists() => {
                let cause = std::error::Error::source(&error)
                    .map_or_else(String::new, |cause| cause.to_string());
                tracing::warn!(workspace = %self.path.display(), %cause, "git cannot use the workspace; making it anew");
                self.set_aside()?;
                self.try_prepare(repo, commit, clean, keep)
            }
            Err(error) => Err(error),
        }
    }

    fn try_prepare(
        &self,
        repo: &Repo,
        commit: &str,
        clean: Clean,
        keep: &[String],
    ) -> Result<Prepared, WorkspaceError> {
        let git_error = |source| WorkspaceError::Git {
            path: self.path.clone(),
            source,
        };
        let fresh = !self.path.join(".git").exists();
        if fresh {
            self.create()?;
        }
        self.reset_repository(repo).map_err(git_error)?;
        git::output(
            git::git(&self.path).args(["checkout", "--quiet", "--force", "--detach", commit]),
        )
        .map_err(git_error)?;
        let mut removed = false;
        if fresh {
            self.created.set(Some(std::time::Instant::now()));
        } else {
            // Not quiet: what it prints says whether it deleted anything.
            let mut command = git::git(&self.path);
            command.args(["clean", "-ffd"]);
            if clean == Clean::All {
                command.arg("-x");
            }
            for pattern in keep {
                command.arg("-e").arg(pattern);
            }
            removed = !git::output(&mut command)
                .map_err(git_error)?
                .trim()
                .is_empty();
        }
        if self.path.join(".gitmodules").is_file() {
            removed |= self.update_submodules(repo, clean).map_err(git_error)?;
        }
        Ok(if fresh {
            Prepared::Fresh
        } else {
            Prepared::Cleaned { removed }
        })
    }

    /// A new repository borrowing the user's objects.
    fn create(&self) -> Result<(), WorkspaceError> {
        let io = |source| WorkspaceError::Io {
            path: self.path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.path).map_err(io)?;
        git::output(git::git(&self.path).args(["init", "--quiet", "--template=", "."])).map_err(
            |source| WorkspaceError::Git {
                path: self.path.clone(),
                source,
            },
        )?;
        // The config git wrote is the one every lease starts from.
        std::fs::copy(self.path.join(".git/config"), self.config_path()).map_err(io)?;
        Ok(())
    }

    /// Points the workspace at the user's objects and gives it gzl's config and a copy of
    /// the user's branches, tags and remote-tracking refs, dropping whatever a stage changed.
    fn reset_repository(&self, repo: &Repo) -> Result<(), GitError> {
        let dot_git = self.path.join(".git");
        let io = |what: &str, error: std::io::Error| GitError::Status {
            path: self.path.clone(),
            message: format!("{what}: {error}"),
        };
        let objects = repo.common_dir().join("objects");
        std::fs::create_dir_all(dot_git.join("objects/info")).map_err(|e| io("objects", e))?;
        std::fs::write(
            dot_git.join("objects/info/alternates"),
            format!("{}\n", objects.display()),
        )
        .map_err(|e| io("alternates", e))?;
        std::fs::copy(self.config_path(), dot_git.join("config")).map_err(|e| io("config", e))?;
        // A gzl killed during a git command leaves its lock behind; the lease says nobody
        // else is here.
        let _ = std::fs::remove_file(dot_git.join("index.lock"));
        let _ = std::fs::remove_dir_all(dot_git.join("hooks"));
        for namespace in ["refs/heads", "refs/tags", "refs/remotes"] {
            let _ = std::fs::remove_dir_all(dot_git.join(namespace));
        }
        std::fs::create_dir_all(dot_git.join("refs/heads")).map_err(|e| io("refs", e))?;
        std::fs::create_dir_all(dot_git.join("refs/tags")).map_err(|e| io("refs", e))?;
        // `git describe`, `git log origin/main..` and the like work as in a clone.
        let refs = git::output(git::git(repo.root()).args([
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/heads",
            "refs/tags",
            "refs/remotes",
        ]))?;
        std::fs::write(dot_git.join("packed-refs"), refs).map_err(|e| io("packed-refs", e))?;
        let exclude = repo.common_dir().join("info/exclude");
        std::fs::create_dir_all(dot_git.join("info")).map_err(|e| io("info", e))?;
        match std::fs::copy(&exclude, dot_git.join("info/exclude")) {
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let _ = std::fs::remove_file(dot_git.join("info/exclude"));
            }
            Err(error) => return Err(io("info/exclude", error)),
        }
        Ok(())
    }

    /// Checks out the submodules at the commits the tree records. gix cannot check out
    /// submodules yet, so this is git's `submodule update`. A submodule the user's
    /// repository has cloned already is fetched from that clone, not from its URL.
    fn update_submodules(&self, repo: &Repo, clean: Clean) -> Result<bool, GitError> {
        git::output(git::git(&self.path).args(["submodule", "--quiet", "init"]))?;
        let names = git::output(git::git(&self.path).args([
            "config",
            "--file",
            ".gitmodules",
            "--name-only",
            "--get-regexp",
            r"^submodule\..*\.path$",
        ]))
        .unwrap_or_default();
        for key in names.lines() {
            let Some(name) = key
                .strip_prefix("submodule.")
                .and_then(|k| k.strip_suffix(".path"))
            else {
                continue;
            };
            let local = repo.common_dir().join("modules").join(name);
            if local.is_dir() {
                git::output(git::git(&self.path).args([
                    "config",
                    &format!("submodule.{name}.url"),
                    &local.display().to_string(),
                ]))?;
            }
        }
        git::output(git::git(&self.path).args([
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "--quiet",
            "update",
            "--init",
            "--recursive",
            "--force",
        ]))?;
        let clean_command = if clean == Clean::All {
            "git clean -ffdx"
        } else {
            "git clean -ffd"
        };
        let cleaned = git::output(git::git(&self.path).args([
            "submodule",
            "--quiet",
            "foreach",
            "--recursive",
            clean_command,
        ]))?;
        Ok(cleaned.lines().any(|line| line.starts_with("Removing ")))
    }

    /// Moves a broken workspace out of the way; `gzl gc` deletes it. (Deleting thousands of
    /// files right before checking out thousands makes ext4 slow for minutes.)
    fn set_aside(&self) -> Result<(), WorkspaceError> {
        let trash = self.pool.join("trash");
        let io = |source| WorkspaceError::Io {
            path: self.path.clone(),
            source,
        };
        std::fs::create_dir_all(&trash).map_err(io)?;
        let aside = trash.join(format!(
            "{}-{}",
            self.slot,
            crate::history::millis(SystemTime::now())
        ));
        std::fs::rename(&self.path, aside).map_err(io)?;
        Ok(())
    }

    /// What the workspace holds of each stage (see [`SlotState::results`]).
    pub fn results(&self) -> std::collections::BTreeMap<String, String> {
        self.state().results
    }

    /// Records what the workspace holds of each stage.
    pub fn set_results(
        &self,
        results: std::collections::BTreeMap<String, String>,
    ) -> Result<(), WorkspaceError> {
        let mut state = self.state();
        state.results = results;
        self.write_state(&state)
    }

    /// Forgets what the workspace holds of stage `stage`, before something rewrites it.
    pub fn forget_result(&self, stage: &str) -> Result<(), WorkspaceError> {
        let mut state = self.state();
        if state.results.remove(stage).is_some() {
            self.write_state(&state)?;
        }
        Ok(())
    }

    /// A new path in the pool's trash, where a restore moves what was in its way (removed
    /// with the trash: deleting many files right before restoring many is slow on ext4).
    pub fn trash_path(&self, name: &str) -> Result<PathBuf, WorkspaceError> {
        let trash = self.pool.join("trash");
        std::fs::create_dir_all(&trash).map_err(|source| WorkspaceError::Io {
            path: trash.clone(),
            source,
        })?;
        Ok(trash.join(format!(
            "{}-{name}-{}",
            self.slot,
            crate::history::millis(SystemTime::now())
        )))
    }

    /// Records the run using the workspace.
    pub fn started(&self, run: i64) -> Result<(), WorkspaceError> {
        let mut state = self.state();
        state.run = Some(run);
        self.write_state(&state)
    }

    /// Ends the lease. A workspace whose run did not pass is kept as the run left it.
    ///
    /// After a fresh checkout, git's index holds files written in the same second as the
    /// index itself ("racily clean"), which the next checkout would hash again: about as
    /// slow as checking out anew. Once that second is past, refreshing the index here, at the
    /// end of a run, makes the next lease fast.
    pub fn release(self, passed: bool) -> Result<(), WorkspaceError> {
        if self
            .created
            .get()
            .is_some_and(|at| at.elapsed() >= std::time::Duration::from_secs(1))
        {
            let _ = git::output(git::git(&self.path).args(["update-index", "-q", "--refresh"]));
        }
        let mut state = self.state();
        state.active = false;
        state.kept = !passed;
        state.used_at = crate::history::millis(SystemTime::now());
        self.write_state(&state)
    }

    fn state(&self) -> SlotState {
        read_state(&self.state_path())
    }

    fn write_state(&self, state: &SlotState) -> Result<(), WorkspaceError> {
        write_state(&self.state_path(), state)
    }

    fn state_path(&self) -> PathBuf {
        self.pool.join(format!("{}.json", self.slot))
    }

    fn config_path(&self) -> PathBuf {
        self.pool.join(format!("{}.config", self.slot))
    }
}

/// The pool's directory name: the repository's folder name, and a hash of its git directory
/// so two repositories of the same name do not share a pool.
fn pool_name(repo: &Repo) -> String {
    let identity = repo.identity();
    let hash = crate::home::blob_id(identity.as_bytes());
    // Linked worktrees of one repository share its pool: name it after the repository.
    let common = repo.common_dir();
    let top = if common.file_name().is_some_and(|n| n == ".git") {
        common.parent().map(std::path::Path::to_path_buf)
    } else {
        Some(common.clone())
    };
    let name: String = top
        .as_deref()
        .and_then(std::path::Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{name}-{}", &hash[..12])
}

/// Replaces a slot's state file, whole.
fn write_state(path: &Path, state: &SlotState) -> Result<(), WorkspaceError> {
    let temporary = path.with_extension("json.tmp");
    let io = |source| WorkspaceError::Io {
        path: path.to_path_buf(),
        source,
    };
    let json = serde_json::to_vec(state).unwrap_or_default();
    std::fs::write(&temporary, json).map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)
}

/// A slot's state; the default for a slot never used (or with a damaged file).
fn read_state(path: &Path) -> SlotState {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn is_locked(path: &Path) -> bool {
    File::open(path)
        .is_ok_and(|file| matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
}

/// The disk space the tree at `path` takes, as `du -s` counts it: the blocks of every file,
/// directory and link, an inode with several links once, links not followed. It reads
/// metadata only (one `stat` per entry, no file contents); what cannot be read counts as
/// nothing.
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(top) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let mut seen = std::collections::HashSet::new();
    let mut total = top.blocks() * 512;
    let mut pending = if top.is_dir() {
        vec![path.to_path_buf()]
    } else {
        Vec::new()
    };
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // A `DirEntry`'s metadata is the entry's own, not its link target's.
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.nlink() > 1
                && !metadata.is_dir()
                && !seen.insert((metadata.dev(), metadata.ino()))
            {
                continue;
            }
            total += metadata.blocks() * 512;
            if metadata.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    /// What gc caps and shows must be what `du` says the workspace takes: a hard link is not
    /// counted twice, a link to a big file elsewhere is not counted as that file.
    #[test]
    fn disk_usage_counts_as_du_does() {
        let dir = tempfile::tempdir().expect("temp dir");
        let elsewhere = tempfile::tempdir().expect("temp dir");
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).expect("dirs");
        std::fs::write(tree.join("a/b/file"), vec![7u8; 100_000]).expect("file");
        std::fs::hard_link(tree.join("a/b/file"), tree.join("a/link")).expect("hard link");
        std::fs::write(elsewhere.path().join("big"), vec![1u8; 1_000_000]).expect("big");
        std::os::unix::fs::symlink(elsewhere.path().join("big"), tree.join("big")).expect("link");
        let usage = super::disk_usage(&tree);
        assert!((100_000..300_000).contains(&usage), "{usage}");
        if let Ok(du) = std::process::Command::new("du")
            .arg("-sB1")
            .arg(&tree)
            .output()
        {
            let du: u64 = String::from_utf8_lossy(&du.stdout)
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .expect("du prints a size");
            assert_eq!(usage, du);
        }
        assert_eq!(super::disk_usage(&dir.path().join("missing")), 0);
    }
}
