//! The history schema, one migration per version. `PRAGMA user_version` records how far a
//! database has come; each migration runs in its own transaction. Append, never edit.
//! (Hand-rolled rather than rusqlite_migration: it is this loop, and that crate trails
//! rusqlite releases.)

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: repositories, runs, stages.
    "
    CREATE TABLE repos (
        id INTEGER PRIMARY KEY,
        identity TEXT NOT NULL UNIQUE,
        path TEXT NOT NULL
    );
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        repo_id INTEGER NOT NULL REFERENCES repos(id),
        commit_id TEXT,
        branch TEXT,
        dirty INTEGER NOT NULL,
        gzlfile_id TEXT NOT NULL,
        gzl_version TEXT NOT NULL,
        targets TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        status TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        lock_path TEXT NOT NULL
    );
    CREATE INDEX runs_by_repo ON runs(repo_id, id);
    CREATE INDEX runs_by_status ON runs(status);
    CREATE TABLE stages (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        needs TEXT NOT NULL,
        status TEXT NOT NULL,
        exit_code INTEGER,
        started_at INTEGER,
        finished_at INTEGER,
        duration_ms INTEGER,
        log_path TEXT,
        log_size INTEGER,
        PRIMARY KEY (run_id, position)
    );
    CREATE INDEX stages_by_name ON stages(name, run_id);
    ",
    // 2: the process group of a running stage, so a later gzl can stop what a dead one left.
    "ALTER TABLE stages ADD COLUMN pid INTEGER;",
    // 3: the run's secret token, which its stages carry in their environment (`GZL_TOKEN`).
    "ALTER TABLE runs ADD COLUMN token TEXT;",
    // 4: source states, workspaces and reusable results. `key` is set only for results that
    // may be reused (not for runs in place); `inputs` says what the key was made of.
    "
    ALTER TABLE runs ADD COLUMN tree_id TEXT;
    ALTER TABLE runs ADD COLUMN workspace TEXT;
    ALTER TABLE stages ADD COLUMN key TEXT;
    ALTER TABLE stages ADD COLUMN inputs TEXT;
    ALTER TABLE stages ADD COLUMN cached_from INTEGER;
    ALTER TABLE stages ADD COLUMN flaky INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX stages_by_key ON stages(key, status) WHERE key IS NOT NULL;
    ",
    // 5: where each stage ran and what gzl added to its environment, for `gzl debug`.
    "
    ALTER TABLE stages ADD COLUMN cwd TEXT;
    ALTER TABLE stages ADD COLUMN env TEXT;
    ",
    // 6: artifacts, the paths stages stored with `gzl obj-store`. A cached stage's rows are
    // copied from the run it reuses (`stored_in`); `removed_at` is set when `gzl gc` let the
    // store drop their objects.
    "
    CREATE TABLE artifacts (
        run_id INTEGER NOT NULL REFERENCES runs(id),
        stage TEXT NOT NULL,
        path TEXT NOT NULL,
        digest TEXT NOT NULL,
        size INTEGER NOT NULL,
        files INTEGER NOT NULL,
        stored_in INTEGER NOT NULL,
        removed_at INTEGER,
        PRIMARY KEY (run_id, path)
    );
    CREATE INDEX artifacts_live ON artifacts(digest) WHERE removed_at IS NULL;
    ",
];

/// Brings the database to the newest schema version.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    for (index, sql) in (0i64..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(current).unwrap_or(usize::MAX))
    {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Re-check inside the write transaction: another gzl may have migrated meanwhile.
        let now: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if now > index {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// The newest schema version this gzl knows.
pub fn latest() -> i64 {
    MIGRATIONS.len() as i64
}
