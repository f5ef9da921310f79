//! The artifacts of runs: which stage stored which path, with what digest and size.

use std::collections::HashSet;
use std::time::SystemTime;

use rusqlite::params;

use super::{History, HistoryError, millis, sql_int};

/// A path a stage stored with `gzl obj-store`, as history records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRecord {
    pub run: i64,
    pub stage: String,
    /// Relative to the stage's working directory.
    pub path: String,
    /// The digest of its tree in the store.
    pub digest: String,
    pub size: u64,
    pub files: u64,
    /// The run whose stage stored it: this run, or the one a cached stage reuses.
    pub stored_in: i64,
    /// `gzl gc` let the store drop its objects.
    pub removed: bool,
}

impl History {
    /// Records artifacts, in one transaction; the same stage storing the same path again
    /// replaces it.
    pub fn record_artifacts(&mut self, artifacts: &[ArtifactRecord]) -> Result<(), HistoryError> {
        if artifacts.is_empty() {
            return Ok(());
        }
        let result = (|| {
            let tx = self.conn.transaction()?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT OR REPLACE INTO artifacts
                         (run_id, stage, path, digest, size, files, stored_in, removed_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)",
                )?;
                for artifact in artifacts {
                    insert.execute(params![
                        artifact.run,
                        artifact.stage,
                        artifact.path,
                        artifact.digest,
                        sql_int(artifact.size),
                        sql_int(artifact.files),
                        artifact.stored_in,
                    ])?;
                }
            }
            tx.commit()
        })();
        result.map_err(|e| self.error(e))
    }

    /// The artifacts of a run, of one stage when `stage` is given, in the order stored.
    pub fn artifacts(
        &self,
        run: i64,
        stage: Option<&str>,
    ) -> Result<Vec<ArtifactRecord>, HistoryError> {
        let result = (|| {
            let mut statement = self.conn.prepare_cached(
                "SELECT run_id, stage, path, digest, size, files, stored_in, removed_at IS NOT NULL
                 FROM artifacts WHERE run_id = ?1 AND (?2 IS NULL OR stage = ?2) ORDER BY rowid",
            )?;
            let rows = statement.query_map(params![run, stage], |row| {
                Ok(ArtifactRecord {
                    run: row.get(0)?,
                    stage: row.get(1)?,
                    path: row.get(2)?,
                    digest: row.get(3)?,
                    size: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                    files: u64::try_from(row.get::<_, i64>(5)?).unwrap_or(0),
                    stored_in: row.get(6)?,
                    removed: row.get(7)?,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })();
        result.map_err(|e| self.error(e))
    }

    /// Marks removed the artifacts of a repository's runs that started before `since` and
    /// are not among the newest `keep_last` runs with artifacts of their branch. Returns how
    /// many artifacts it marked.
    pub fn expire_artifacts(
        &mut self,
        repo_identity: &str,
        since: SystemTime,
        keep_last: usize,
        at: SystemTime,
    ) -> Result<usize, HistoryError> {
        self.conn
            .execute(
                "UPDATE artifacts SET removed_at = ?3 WHERE removed_at IS NULL AND run_id IN (
                     SELECT id FROM (
                         SELECT runs.id, runs.started_at, runs.status,
                                ROW_NUMBER() OVER (PARTITION BY COALESCE(runs.branch, '')
                                                   ORDER BY runs.id DESC) AS recent
                         FROM runs JOIN repos ON repos.id = runs.repo_id
                         WHERE repos.identity = ?1
                           AND EXISTS (SELECT 1 FROM artifacts WHERE artifacts.run_id = runs.id))
                     WHERE status != 'running' AND started_at < ?2 AND recent > ?4)",
                params![repo_identity, millis(since), millis(at), sql_int(keep_last)],
            )
            .map_err(|e| self.error(e))
    }

    /// Whether any run, of any repository, is going on (or died unnoticed).
    pub fn has_running_runs(&self) -> Result<bool, HistoryError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE status = 'running')",
                [],
                |row| row.get(0),
            )
            .map_err(|e| self.error(e))
    }

    /// The digests of every artifact not removed, of all repositories: what the store keeps.
    pub fn live_artifacts(&self) -> Result<HashSet<String>, HistoryError> {
        let result = (|| {
            let mut statement = self
                .conn
                .prepare("SELECT DISTINCT digest FROM artifacts WHERE removed_at IS NULL")?;
            let rows = statement.query_map([], |row| row.get(0))?;
            rows.collect::<rusqlite::Result<HashSet<String>>>()
        })();
        result.map_err(|e| self.error(e))
    }
}
