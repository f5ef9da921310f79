//! Run history: a SQLite database plus the runs' log files, under gzl's home.
//!
//! Several gzl processes share it: WAL mode and a busy timeout let runs write while others
//! read. A runner holds an exclusive lock on a file for as long as it runs; a `running` run
//! whose lock is free belongs to a gzl that died, and the next gzl to look marks it
//! `interrupted` (see [`History::reap_interrupted`]).

mod artifacts;
mod migrations;
mod recorder;

pub use artifacts::ArtifactRecord;
pub use recorder::{Recorder, Unrecorded};

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::home::Home;
use crate::status::{RunStatus, StageStatus};

/// A failure of the history store.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot find a data directory for gzl's history; set GZL_HOME")]
    NoHome,
    #[error("cannot use gzl's history directory {}", path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("gzl's history database {} failed", path.display())]
    Database {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A run went on while history or a log could not be written; what was lost was told as
    /// it happened.
    #[error("run {run} is not fully recorded: {what}")]
    Unrecorded { run: i64, what: String },
    #[error("the history database {} was written by a newer gzl (schema {found}, this gzl knows {known}); update gzl", path.display())]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

/// An open history database.
pub struct History {
    conn: Connection,
    home: Home,
    host: String,
}

/// A run to record as it starts.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub repo_identity: String,
    pub repo_path: String,
    pub commit: Option<String>,
    /// The source tree; `None` for a run in place, whose source was not captured.
    pub tree: Option<String>,
    pub branch: Option<String>,
    pub dirty: bool,
    /// The workspace the stages run in; `None` in place.
    pub workspace: Option<String>,
    pub gzlfile_id: String,
    pub targets: Vec<String>,
    /// The planned stages in order.
    pub stages: Vec<NewStage>,
}

/// A planned stage of a new run.
#[derive(Debug, Clone)]
pub struct NewStage {
    pub name: String,
    pub needs: Vec<String>,
    /// The input key, when the result may be reused later.
    pub key: Option<String>,
    /// What the key is made of, as JSON.
    pub inputs: Option<String>,
}

/// A run that this process is executing; holds the lock that tells others it is alive.
pub struct RunLease {
    pub id: i64,
    pub dir: PathBuf,
    /// A secret naming this run, given to its stages as `GZL_TOKEN`.
    pub token: String,
    lock: File,
    lock_path: PathBuf,
}

/// A change to record; [`History::apply`] writes a batch of them in one transaction.
#[derive(Debug, Clone)]
pub enum Update {
    /// A stage joined to a running run (a `@generates` stage made it).
    StageAdded {
        run: i64,
        position: usize,
        stage: NewStage,
        cwd: PathBuf,
        env: Vec<(String, String)>,
    },
    StageStarted {
        run: i64,
        position: usize,
        at: SystemTime,
        log_path: PathBuf,
        /// The stage's process group, so a later gzl can stop it if this one dies.
        pid: Option<u32>,
    },
    StageFinished {
        run: i64,
        position: usize,
        status: StageStatus,
        exit_code: Option<i32>,
        at: SystemTime,
        duration: Option<Duration>,
        log_size: Option<u64>,
        /// The run whose result a cached stage reuses.
        cached_from: Option<i64>,
    },
    RunFinished {
        run: i64,
        status: RunStatus,
        at: SystemTime,
    },
}

/// A run as history knows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub repo: String,
    pub commit: Option<String>,
    pub tree: Option<String>,
    pub branch: Option<String>,
    pub dirty: bool,
    /// Where its stages ran: a workspace, or `None` in place.
    pub workspace: Option<String>,
    pub gzlfile_id: String,
    pub gzl_version: String,
    pub targets: Vec<String>,
    #[serde(serialize_with = "serialize_time")]
    pub started_at: SystemTime,
    #[serde(serialize_with = "serialize_optional_time")]
    pub finished_at: Option<SystemTime>,
    pub status: RunStatus,
    pub pid: u32,
    pub host: String,
    pub stage_counts: StageCounts,
    /// The secret its stages carry as `GZL_TOKEN`; never shown.
    #[serde(skip)]
    pub token: String,
}

/// How many stages of a run stand in each state.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StageCounts {
    pub total: usize,
    pub passed: usize,
    pub cached: usize,
    pub failed: usize,
    pub timed_out: usize,
    pub skipped: usize,
    pub cancelled: usize,
    pub stopped: usize,
    pub running: usize,
    pub pending: usize,
    pub interrupted: usize,
}

/// A run found abandoned by its gzl.
#[derive(Debug, Clone)]
pub struct InterruptedRun {
    pub id: i64,
    /// The run's token, which its stages carry as `GZL_TOKEN`.
    pub token: String,
}

/// A stage of a recorded run.
#[derive(Debug, Clone)]
pub struct StageRecord {
    pub position: usize,
    pub name: String,
    pub needs: Vec<String>,
    pub status: StageStatus,
    pub exit_code: Option<i32>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub duration: Option<Duration>,
    pub log_path: Option<PathBuf>,
    pub log_size: Option<u64>,
    pub key: Option<String>,
    /// What the key was made of, as JSON (see `cache::Inputs`).
    pub inputs: Option<String>,
    pub cached_from: Option<i64>,
    /// It passed, and history holds a failed execution with the same key.
    pub flaky: bool,
    /// Its working directory.
    pub cwd: Option<PathBuf>,
    /// What gzl added to its environment, in order.
    pub env: Vec<(String, String)>,
    /// The process group of a running stage.
    pub pid: Option<u32>,
}

impl History {
    /// Opens (creating and migrating as needed) the history under `home`.
    pub fn open(home: &Home) -> Result<Self, HistoryError> {
        let directory_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HistoryError::Directory { path, source }
        };
        home.make_private()?;
        let path = home.database();
        // SQLite gives its -wal and -shm files the database's mode: a new database starts
        // private, so they do too.
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            let created = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            match created {
                Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(directory_error(&path)(error));
                }
                _ => {}
            }
        }
        let db_error = |source| HistoryError::Database {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(db_error)?;
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(db_error)?;
        use_wal(&conn).map_err(db_error)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_error)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(db_error)?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(db_error)?;
        if found > migrations::latest() {
            return Err(HistoryError::TooNew {
                path,
                found,
                known: migrations::latest(),
            });
        }
        migrations::migrate(&mut conn).map_err(db_error)?;
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(History {
            conn,
            home: home.clone(),
            host,
        })
    }

    /// Opens the history under `home` to read it only: nothing is created, migrated or written,
    /// so `gzl ls` and `gzl logs` work on a full disk and in a home they cannot write. A
    /// database in WAL mode needs its `-shm` file to be read; when that cannot be made and no
    /// `-wal` file holds changes, the database file holds everything and is read as it is.
    /// Returns `None` when the database does not exist, or is older than this gzl (it must be
    /// migrated first: [`History::open`]).
    pub fn open_to_read(home: &Home) -> Result<Option<Self>, HistoryError> {
        let path = home.database();
        if !path.is_file() {
            return Ok(None);
        }
        let db_error = |source| HistoryError::Database {
            path: path.clone(),
            source,
        };
        let open = |immutable: bool| -> rusqlite::Result<(Connection, i64)> {
            use rusqlite::OpenFlags;
            let mut uri = url_path(&path);
            uri.push_str(if immutable {
                "?immutable=1"
            } else {
                "?mode=ro"
            });
            let conn = Connection::open_with_flags(
                uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(Duration::from_secs(30))?;
            // Reading the version reads the database: the first read that needs the -shm.
            let version = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
            Ok((conn, version))
        };
        let (conn, found) = match open(false) {
            Ok(opened) => opened,
            Err(error) => {
                let mut wal = path.clone().into_os_string();
                wal.push("-wal");
                let wal_is_empty = std::fs::metadata(&wal).map_or(true, |m| m.len() == 0);
                if !wal_is_empty {
                    return Err(db_error(error));
                }
                tracing::debug!(%error, "reading history without its -shm file");
                open(true).map_err(db_error)?
            }
        };
        if found > migrations::latest() {
            return Err(HistoryError::TooNew {
                path,
                found,
                known: migrations::latest(),
            });
        }
        if found < migrations::latest() {
            return Ok(None);
        }
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Some(History {
            conn,
            home: home.clone(),
            host,
        }))
    }

    /// Whether history holds runs of this host marked running whose gzl is gone: what
    /// [`History::reap_interrupted`] would change. Reads only.
    pub fn has_dead_runs(&self) -> Result<bool, HistoryError> {
        Ok(self
            .running_here()?
            .iter()
            .any(|(_, lock_path, _)| !runner_is_alive(Path::new(lock_path))))
    }

    fn running_here(&self) -> Result<Vec<(i64, String, String)>, HistoryError> {
        (|| {
            let mut statement = self.conn.prepare(
                "SELECT id, lock_path, COALESCE(token, '') FROM runs WHERE status = 'running' AND host = ?1",
            )?;
            let rows = statement.query_map(params![self.host], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })()
        .map_err(|e| self.error(e))
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    /// The name of this machine, as runs record it.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn error(&self, source: rusqlite::Error) -> HistoryError {
        HistoryError::Database {
            path: self.home.database(),
            source,
        }
    }

    /// Records a new run with all its stages pending, and takes its liveness lock.
    pub fn begin_run(&mut self, run: &NewRun, at: SystemTime) -> Result<RunLease, HistoryError> {
        let pid = std::process::id();
        let token = new_token().map_err(|source| HistoryError::Directory {
            path: self.home.locks(),
            source,
        })?;
        let lock_path = self.home.locks().join(format!("{token}.lock"));
        let lock_error = |source| HistoryError::Directory {
            path: lock_path.clone(),
            source,
        };
        let lock = File::create(&lock_path).map_err(lock_error)?;
        lock.lock().map_err(lock_error)?;

        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| HistoryError::Database {
                path: self.home.database(),
                source: e,
            })?;
        let id = (|| {
            tx.execute(
                "INSERT INTO repos (identity, path) VALUES (?1, ?2)
                 ON CONFLICT (identity) DO UPDATE SET path = excluded.path",
                params![run.repo_identity, run.repo_path],
            )?;
            let repo_id: i64 = tx.query_row(
                "SELECT id FROM repos WHERE identity = ?1",
                params![run.repo_identity],
                |row| row.get(0),
            )?;
            tx.execute(
                "INSERT INTO runs (repo_id, commit_id, branch, dirty, gzlfile_id, gzl_version, targets,
                                   started_at, status, pid, host, lock_path, token, tree_id, workspace)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'running', ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    repo_id,
                    run.commit,
                    run.branch,
                    run.dirty,
                    run.gzlfile_id,
                    env!("CARGO_PKG_VERSION"),
                    run.targets.join(" "),
                    millis(at),
                    pid,
                    self.host,
                    lock_path.to_string_lossy(),
                    token,
                    run.tree,
                    run.workspace,
                ],
            )?;
            let id = tx.last_insert_rowid();
            let mut insert = tx.prepare(
                "INSERT INTO stages (run_id, position, name, needs, status, key, inputs)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6)",
            )?;
            for (position, stage) in run.stages.iter().enumerate() {
                insert.execute(params![
                    id,
                    sql_int(position),
                    stage.name,
                    stage.needs.join(" "),
                    stage.key,
                    stage.inputs
                ])?;
            }
            drop(insert);
            tx.commit()?;
            Ok(id)
        })()
        .map_err(|e| HistoryError::Database {
            path: self.home.database(),
            source: e,
        })?;
        let dir = self.home.run_dir(id);
        crate::home::create_private_dir(&dir).map_err(|source| HistoryError::Directory {
            path: dir.clone(),
            source,
        })?;
        Ok(RunLease {
            id,
            dir,
            token,
            lock,
            lock_path,
        })
    }

    /// Writes a batch of updates in one transaction.
    pub fn apply(&mut self, updates: &[Update]) -> Result<(), HistoryError> {
        if updates.is_empty() {
            return Ok(());
        }
        let result = (|| {
            let tx = self.conn.transaction()?;
            for update in updates {
                match update {
                    Update::StageAdded {
                        run,
                        position,
                        stage,
                        cwd,
                        env,
                    } => {
                        tx.prepare_cached(
                            "INSERT INTO stages (run_id, position, name, needs, status, key, inputs, cwd, env)
                             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?7, ?8)",
                        )?
                        .execute(params![
                            run,
                            sql_int(*position),
                            stage.name,
                            stage.needs.join(" "),
                            stage.key,
                            stage.inputs,
                            cwd.to_string_lossy(),
                            serde_json::to_string(env).unwrap_or_default()
                        ])?;
                    }
                    Update::StageStarted {
                        run,
                        position,
                        at,
                        log_path,
                        pid,
                    } => {
                        tx.prepare_cached(
                            "UPDATE stages SET status = 'running', started_at = ?3, log_path = ?4, pid = ?5
                             WHERE run_id = ?1 AND position = ?2",
                        )?
                        .execute(params![
                            run,
                            sql_int(*position),
                            millis(*at),
                            log_path.to_string_lossy(),
                            pid
                        ])?;
                    }
                    Update::StageFinished {
                        run,
                        position,
                        status,
                        exit_code,
                        at,
                        duration,
                        log_size,
                        cached_from,
                    } => {
                        // A pass of a key that has failed before is flaky.
                        tx.prepare_cached(
                            "UPDATE stages SET status = ?3, exit_code = ?4, finished_at = ?5,
                                    duration_ms = ?6, log_size = ?7, cached_from = ?8,
                                    flaky = (?3 = 'passed' AND key IS NOT NULL AND EXISTS (
                                        SELECT 1 FROM stages AS earlier
                                        WHERE earlier.key = stages.key
                                          AND earlier.status IN ('failed', 'timed-out')))
                             WHERE run_id = ?1 AND position = ?2",
                        )?
                        .execute(params![
                            run,
                            sql_int(*position),
                            status.as_str(),
                            exit_code,
                            millis(*at),
                            duration.map(|d| sql_int(d.as_millis())),
                            log_size.map(sql_int),
                            cached_from,
                        ])?;
                    }
                    Update::RunFinished { run, status, at } => {
                        tx.prepare_cached(
                            "UPDATE runs SET status = ?2, finished_at = ?3 WHERE id = ?1",
                        )?
                        .execute(params![
                            run,
                            status.as_str(),
                            millis(*at)
                        ])?;
                    }
                }
            }
            tx.commit()
        })();
        result.map_err(|e| self.error(e))
    }

    /// Ends a run's lease: the lock is released and its file removed.
    pub fn end_lease(lease: RunLease) {
        let _ = std::fs::remove_file(&lease.lock_path);
        drop(lease.lock);
    }

    /// Marks `interrupted` every run of this host still recorded as running whose gzl is gone,
    /// with the stages it left running or pending. Returns those runs: processes their stages
    /// started may still be alive, with nobody watching them.
    pub fn reap_interrupted(&mut self) -> Result<Vec<InterruptedRun>, HistoryError> {
        let candidates = self.running_here()?;
        let mut reaped = Vec::new();
        for (id, lock_path, token) in candidates {
            if runner_is_alive(Path::new(&lock_path)) {
                continue;
            }
            let result = (|| {
                let tx = self
                    .conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                // When it died is not known (a runner keeps no heartbeat): it ends when this
                // gzl saw it dead; its stages' times tell when it was last seen alive.
                let changed = tx.execute(
                    "UPDATE runs SET status = 'interrupted', finished_at = MAX(?2, started_at)
                     WHERE id = ?1 AND status = 'running'",
                    params![id, millis(SystemTime::now())],
                )?;
                tx.execute(
                    "UPDATE stages SET status = 'interrupted' WHERE run_id = ?1 AND status IN ('running', 'pending')",
                    params![id],
                )?;
                tx.commit()?;
                Ok(changed)
            })();
            if result.map_err(|e| self.error(e))? > 0 {
                let _ = std::fs::remove_file(&lock_path);
                reaped.push(InterruptedRun { id, token });
            }
        }
        Ok(reaped)
    }

    /// The newest runs, of one repository or of all, newest first.
    pub fn runs(
        &self,
        repo_identity: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RunRecord>, HistoryError> {
        self.query_runs(
            "WHERE (?1 IS NULL OR repos.identity = ?1) ORDER BY runs.id DESC LIMIT ?2",
            params![repo_identity, i64::try_from(limit).unwrap_or(i64::MAX)],
        )
    }

    /// The run with this id.
    pub fn run(&self, id: i64) -> Result<Option<RunRecord>, HistoryError> {
        Ok(self.query_runs("WHERE runs.id = ?1", params![id])?.pop())
    }

    /// The newest run of a repository, at one commit when `commit` is given.
    pub fn newest_run(
        &self,
        repo_identity: &str,
        commit: Option<&str>,
    ) -> Result<Option<RunRecord>, HistoryError> {
        Ok(self
            .query_runs(
                "WHERE repos.identity = ?1 AND (?2 IS NULL OR runs.commit_id = ?2) ORDER BY runs.id DESC LIMIT 1",
                params![repo_identity, commit],
            )?
            .pop())
    }

    fn query_runs(
        &self,
        filter: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<RunRecord>, HistoryError> {
        let sql = format!(
            "SELECT runs.id, repos.path, runs.commit_id, runs.branch, runs.dirty, runs.gzlfile_id,
                    runs.gzl_version, runs.targets, runs.started_at, runs.finished_at, runs.status,
                    runs.pid, runs.host, runs.tree_id, runs.workspace,
                    (SELECT json_group_object(status, n) FROM
                        (SELECT status, COUNT(*) AS n FROM stages WHERE run_id = runs.id GROUP BY status)),
                    COALESCE(runs.token, '')
             FROM runs JOIN repos ON repos.id = runs.repo_id {filter}"
        );
        let result = (|| {
            let mut statement = self.conn.prepare(&sql)?;
            let rows = statement.query_map(params, |row| {
                let targets: String = row.get(7)?;
                let status: String = row.get(10)?;
                let counts: Option<String> = row.get(15)?;
                Ok(RunRecord {
                    id: row.get(0)?,
                    repo: row.get(1)?,
                    commit: row.get(2)?,
                    tree: row.get(13)?,
                    branch: row.get(3)?,
                    dirty: row.get(4)?,
                    workspace: row.get(14)?,
                    gzlfile_id: row.get(5)?,
                    gzl_version: row.get(6)?,
                    targets: targets.split_whitespace().map(str::to_string).collect(),
                    started_at: from_millis(row.get(8)?),
                    finished_at: row.get::<_, Option<i64>>(9)?.map(from_millis),
                    status: RunStatus::parse(&status).unwrap_or(RunStatus::Interrupted),
                    pid: row.get(11)?,
                    host: row.get(12)?,
                    stage_counts: stage_counts(counts.as_deref()),
                    token: row.get(16)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        result.map_err(|e| self.error(e))
    }

    /// The stages of a run, in plan order.
    pub fn stages(&self, run: i64) -> Result<Vec<StageRecord>, HistoryError> {
        let result = (|| {
            let mut statement = self.conn.prepare_cached(&format!(
                "SELECT {STAGE_COLUMNS} FROM stages WHERE run_id = ?1 ORDER BY position"
            ))?;
            let rows = statement.query_map(params![run], stage_record)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        result.map_err(|e| self.error(e))
    }

    /// The stage called `name` of a run: one indexed row, where [`History::stages`] reads
    /// them all (a cached stage's log is found this way in the run it reuses).
    pub fn stage(&self, run: i64, name: &str) -> Result<Option<StageRecord>, HistoryError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT {STAGE_COLUMNS} FROM stages WHERE run_id = ?1 AND name = ?2 ORDER BY position LIMIT 1"
            ))
            .and_then(|mut statement| {
                statement
                    .query_row(params![run, name], stage_record)
                    .optional()
            })
            .map_err(|e| self.error(e))
    }

    /// Records where each stage of run `run` works and what gzl adds to its environment.
    pub fn record_environments(
        &mut self,
        run: i64,
        stages: &[(PathBuf, Vec<(String, String)>)],
    ) -> Result<(), HistoryError> {
        let result = (|| {
            let tx = self.conn.transaction()?;
            {
                let mut update = tx.prepare_cached(
                    "UPDATE stages SET cwd = ?3, env = ?4 WHERE run_id = ?1 AND position = ?2",
                )?;
                for (position, (cwd, env)) in stages.iter().enumerate() {
                    update.execute(params![
                        run,
                        sql_int(position),
                        cwd.to_string_lossy(),
                        serde_json::to_string(env).unwrap_or_default()
                    ])?;
                }
            }
            tx.commit()
        })();
        result.map_err(|e| self.error(e))
    }

    /// The newest run holding a passed execution with input key `key`: the result a stage
    /// with that key reuses.
    pub fn passed_with_key(&self, key: &str) -> Result<Option<i64>, HistoryError> {
        self.conn
            .prepare_cached("SELECT MAX(run_id) FROM stages WHERE key = ?1 AND status = 'passed'")
            .and_then(|mut statement| statement.query_row(params![key], |row| row.get(0)))
            .map_err(|e| self.error(e))
    }

    /// How the newest execution with input key `key` ended (passed, failed or timed out),
    /// with its run and exit code.
    pub fn result_with_key(
        &self,
        key: &str,
    ) -> Result<Option<(i64, StageStatus, Option<i32>)>, HistoryError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT run_id, status, exit_code FROM stages
                 WHERE key = ?1 AND status IN ('passed', 'failed', 'timed-out')
                 ORDER BY run_id DESC LIMIT 1",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![key], |row| {
                        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get(2)?))
                    })
                    .optional()
            })
            .map_err(|e| self.error(e))?;
        Ok(row.map(|(run, status, code)| {
            (
                run,
                StageStatus::parse(&status).unwrap_or(StageStatus::Failed),
                code,
            )
        }))
    }

    /// The commits (of clean trees) at which stage `name` passed in a repository.
    pub fn commits_where_passed(
        &self,
        repo_identity: &str,
        name: &str,
    ) -> Result<std::collections::HashSet<String>, HistoryError> {
        let result = (|| {
            let mut statement = self.conn.prepare(
                "SELECT DISTINCT runs.commit_id FROM stages
                 JOIN runs ON runs.id = stages.run_id JOIN repos ON repos.id = runs.repo_id
                 WHERE repos.identity = ?1 AND stages.name = ?2
                   AND stages.status IN ('passed', 'cached')
                   AND runs.dirty = 0 AND runs.commit_id IS NOT NULL",
            )?;
            let rows = statement.query_map(params![repo_identity, name], |row| row.get(0))?;
            rows.collect::<rusqlite::Result<std::collections::HashSet<String>>>()
        })();
        result.map_err(|e| self.error(e))
    }

    /// The stages that passed (or were reused as passed) in a repository at `commit`, itself
    /// and not a snapshot of changes on it.
    pub fn passed_at(
        &self,
        repo_identity: &str,
        commit: &str,
    ) -> Result<std::collections::BTreeSet<String>, HistoryError> {
        let result = (|| {
            let mut statement = self.conn.prepare(
                "SELECT DISTINCT stages.name FROM stages
                 JOIN runs ON runs.id = stages.run_id JOIN repos ON repos.id = runs.repo_id
                 WHERE repos.identity = ?1 AND runs.commit_id = ?2 AND runs.dirty = 0
                   AND stages.status IN ('passed', 'cached')",
            )?;
            let rows = statement.query_map(params![repo_identity, commit], |row| row.get(0))?;
            rows.collect::<rusqlite::Result<std::collections::BTreeSet<String>>>()
        })();
        result.map_err(|e| self.error(e))
    }

    /// The newest recorded execution of stage `name` in a repository that has inputs (it
    /// ran isolated), with its run: what `gzl why` compares against.
    pub fn newest_execution(
        &self,
        repo_identity: &str,
        name: &str,
    ) -> Result<Option<(RunRecord, StageRecord)>, HistoryError> {
        let run: Option<i64> = self
            .conn
            .prepare_cached(
                "SELECT MAX(stages.run_id) FROM stages
                 JOIN runs ON runs.id = stages.run_id JOIN repos ON repos.id = runs.repo_id
                 WHERE repos.identity = ?1 AND stages.name = ?2 AND stages.inputs IS NOT NULL
                   AND stages.status NOT IN ('pending', 'running', 'cached')",
            )
            .and_then(|mut statement| {
                statement.query_row(params![repo_identity, name], |row| row.get(0))
            })
            .map_err(|e| self.error(e))?;
        let Some(run) = run.and_then(|id| self.run(id).transpose()).transpose()? else {
            return Ok(None);
        };
        Ok(self.stage(run.id, name)?.map(|stage| (run, stage)))
    }

    /// Runs of a repository that ended before `cutoff` and still have logs.
    pub fn runs_with_logs_before(
        &self,
        repo_identity: &str,
        cutoff: SystemTime,
    ) -> Result<Vec<i64>, HistoryError> {
        let result = (|| {
            let mut statement = self.conn.prepare(
                "SELECT runs.id FROM runs JOIN repos ON repos.id = runs.repo_id
                 WHERE repos.identity = ?1 AND runs.status != 'running' AND runs.finished_at < ?2
                   AND EXISTS (SELECT 1 FROM stages WHERE run_id = runs.id AND log_path IS NOT NULL)",
            )?;
            let rows =
                statement.query_map(params![repo_identity, millis(cutoff)], |row| row.get(0))?;
            rows.collect::<rusqlite::Result<Vec<i64>>>()
        })();
        result.map_err(|e| self.error(e))
    }

    /// Deletes a run's log files; the run and its results stay in history.
    pub fn forget_logs(&mut self, run: i64) -> Result<(), HistoryError> {
        let dir = self.home.run_dir(run);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(HistoryError::Directory { path: dir, source }),
        }
        self.conn
            .execute(
                "UPDATE stages SET log_path = NULL, log_size = NULL WHERE run_id = ?1",
                params![run],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The source trees of a repository's runs that started at or after `since`, or are
    /// still running: the snapshots `gzl gc` keeps.
    pub fn trees_since(
        &self,
        repo_identity: &str,
        since: SystemTime,
    ) -> Result<std::collections::HashSet<String>, HistoryError> {
        let result = (|| {
            let mut statement = self.conn.prepare(
                "SELECT DISTINCT runs.tree_id FROM runs JOIN repos ON repos.id = runs.repo_id
                 WHERE repos.identity = ?1 AND runs.tree_id IS NOT NULL
                   AND (runs.started_at >= ?2 OR runs.status = 'running')",
            )?;
            let rows =
                statement.query_map(params![repo_identity, millis(since)], |row| row.get(0))?;
            rows.collect::<rusqlite::Result<std::collections::HashSet<String>>>()
        })();
        result.map_err(|e| self.error(e))
    }

    /// The durations of each stage's newest `per_stage` passed executions in a repository, by
    /// name, newest first, with their runs.
    pub fn duration_samples(
        &self,
        repo_identity: &str,
        per_stage: usize,
    ) -> Result<HashMap<String, Vec<(i64, Duration)>>, HistoryError> {
        let result = (|| {
            let mut statement = self.conn.prepare(
                "SELECT name, run_id, duration_ms FROM (
                     SELECT stages.name, stages.run_id, stages.duration_ms,
                            ROW_NUMBER() OVER (PARTITION BY stages.name ORDER BY stages.run_id DESC) AS recent
                     FROM stages JOIN runs ON runs.id = stages.run_id JOIN repos ON repos.id = runs.repo_id
                     WHERE repos.identity = ?1 AND stages.status = 'passed' AND stages.duration_ms IS NOT NULL)
                 WHERE recent <= ?2 ORDER BY run_id DESC",
            )?;
            let mut samples: HashMap<String, Vec<(i64, Duration)>> = HashMap::new();
            let rows = statement.query_map(params![repo_identity, sql_int(per_stage)], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (name, run, ms) = row?;
                let duration = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
                samples.entry(name).or_default().push((run, duration));
            }
            Ok(samples)
        })();
        result.map_err(|e| self.error(e))
    }

    /// The median duration of each stage's recent passing runs in a repository, by name.
    pub fn median_durations(
        &self,
        repo_identity: &str,
    ) -> Result<HashMap<String, Duration>, HistoryError> {
        Ok(self
            .duration_samples(repo_identity, MEDIAN_SAMPLES)?
            .into_iter()
            .filter_map(|(name, samples)| {
                median(samples.iter().map(|(_, d)| *d)).map(|median| (name, median))
            })
            .collect())
    }
}

/// How many of a stage's newest passed executions its median is taken from.
pub const MEDIAN_SAMPLES: usize = 20;

/// The median of some durations; `None` for none.
pub fn median(durations: impl Iterator<Item = Duration>) -> Option<Duration> {
    let mut values: Vec<Duration> = durations.collect();
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

/// The columns [`stage_record`] reads, in its order.
const STAGE_COLUMNS: &str = "position, name, needs, status, exit_code, started_at, finished_at,
    duration_ms, log_path, log_size, key, inputs, cached_from, flaky, cwd, env, pid";

fn stage_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<StageRecord> {
    let needs: String = row.get(2)?;
    let status: String = row.get(3)?;
    Ok(StageRecord {
        position: usize::try_from(row.get::<_, i64>(0)?).unwrap_or(0),
        name: row.get(1)?,
        needs: needs.split_whitespace().map(str::to_string).collect(),
        status: StageStatus::parse(&status).unwrap_or(StageStatus::Interrupted),
        exit_code: row.get(4)?,
        started_at: row.get::<_, Option<i64>>(5)?.map(from_millis),
        finished_at: row.get::<_, Option<i64>>(6)?.map(from_millis),
        duration: row
            .get::<_, Option<i64>>(7)?
            .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0))),
        log_path: row.get::<_, Option<String>>(8)?.map(PathBuf::from),
        log_size: row
            .get::<_, Option<i64>>(9)?
            .map(|n| u64::try_from(n).unwrap_or(0)),
        key: row.get(10)?,
        inputs: row.get(11)?,
        cached_from: row.get(12)?,
        flaky: row.get(13)?,
        cwd: row.get::<_, Option<String>>(14)?.map(PathBuf::from),
        env: row
            .get::<_, Option<String>>(15)?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default(),
        pid: row.get(16)?,
    })
}

/// Switches the database to WAL. Switching takes an exclusive lock for which SQLite does not
/// wait (no busy handler), so two gzl opening a new database at once would fail: retry,
/// as the busy timeout would. Once in WAL, nothing needs switching.
fn use_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mode: rusqlite::Result<String> =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0));
        match mode {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(error, _))
                if error.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(error) => return Err(error),
        }
    }
}

/// `path` as an SQLite URI (`file:` and the path, with what a URI reserves escaped).
fn url_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt as _;
    let mut uri = String::from("file:");
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"/-_.~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

/// 128 random bits, in hex.
fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(std::io::Error::other)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether the gzl that holds this run's lock is still running.
fn runner_is_alive(lock_path: &Path) -> bool {
    match File::open(lock_path) {
        // The lock is held while the runner lives; taking it here means nobody holds it.
        Ok(file) => matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

fn stage_counts(json: Option<&str>) -> StageCounts {
    let map: HashMap<String, usize> = json
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_default();
    let mut counts = StageCounts::default();
    for (status, n) in map {
        counts.total += n;
        match StageStatus::parse(&status) {
            Some(StageStatus::Passed) => counts.passed += n,
            Some(StageStatus::Cached) => counts.cached += n,
            Some(StageStatus::Failed) => counts.failed += n,
            Some(StageStatus::TimedOut) => counts.timed_out += n,
            Some(StageStatus::Skipped) => counts.skipped += n,
            Some(StageStatus::Cancelled) => counts.cancelled += n,
            Some(StageStatus::Stopped) => counts.stopped += n,
            Some(StageStatus::Running) => counts.running += n,
            Some(StageStatus::Pending) => counts.pending += n,
            Some(StageStatus::Interrupted) | None => counts.interrupted += n,
        }
    }
    counts
}

/// SQLite integers are i64; counts and sizes this large do not occur.
fn sql_int<T: TryInto<i64>>(n: T) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Milliseconds since the Unix epoch, as stored.
pub fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn from_millis(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn serialize_time<S: serde::Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_millis(*at).to_string())
}

fn serialize_optional_time<S: serde::Serializer>(
    at: &Option<SystemTime>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serialize_time(at, s),
        None => s.serialize_none(),
    }
}
