//! `gzl gc`: removes what runs leave behind beyond the retention policy of `gzl.toml`.
//!
//! - workspaces: those beyond the pool's size (least recently used first), the kept
//!   workspaces of failed runs older than `[workspaces] keep_failed`, then free ones, least
//!   recently used first, while the pool takes more disk than `[workspaces] max_size` (never
//!   one a run holds, never the free one used last);
//! - snapshots: the refs under `refs/gzl/snapshots/` of trees no run since `[history] keep`
//!   used (git's own gc then deletes the objects);
//! - the workspaces of repositories that no longer exist (moved or deleted);
//! - logs of runs that ended more than `[history] keep` ago. The runs stay listed and their
//!   results are still reused: a result is a row, not a log;
//! - artifacts of runs beyond `[artifacts]` (older than `keep` and not among the `keep_last`
//!   newest of their branch), then every object of the store that no kept artifact of any
//!   repository names. A stage whose artifacts are gone is not reused: it runs again.
//!
//! A dry run changes nothing: it lists the pool's workspaces with the disk each takes, and
//! what would be removed.

use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::error::Error;
use crate::history::{History, millis};
use crate::project::Project;
use crate::store::{Store, Swept};
use crate::workspace::{Pool, disk_usage};

/// What `gzl gc` removed (or, in a dry run, would remove).
#[derive(Debug, Default)]
pub struct Report {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Every workspace of the repository's pool as gc found it, in slot order.
    pub pool: Vec<WorkspaceUsage>,
    /// `[workspaces] max_size`.
    pub max_size: Option<u64>,
    /// Workspace slots removed, with why.
    pub workspaces: Vec<(usize, &'static str)>,
    /// Workspaces in use by a run, left alone.
    pub busy: usize,
    pub snapshots: usize,
    pub logs: usize,
    /// Pools of repositories that no longer exist, with the disk each took.
    pub orphaned_pools: Vec<(std::path::PathBuf, u64)>,
    /// Artifacts whose runs the retention policy let go.
    pub artifacts: usize,
    /// What the store removed.
    pub objects: Swept,
}

/// One workspace of the pool, as `gzl gc` found it.
#[derive(Debug)]
pub struct WorkspaceUsage {
    pub slot: usize,
    /// The disk it takes, as `du -s` counts it.
    pub bytes: u64,
    /// Whether a run holds it (or `gzl debug` looks at it).
    pub leased: bool,
    /// Kept as a failed run left it.
    pub kept: bool,
    /// The last run in it.
    pub run: Option<i64>,
    /// When it was last leased or released, in milliseconds since the Unix epoch.
    pub used_at: i64,
    /// Why gc removed it (or would), if it did.
    pub removed: Option<&'static str>,
}

/// How long an object stays after it was last stored while runs are going on: a stage may
/// have written it and not registered it yet.
const OBJECT_GRACE: Duration = Duration::from_secs(3600);

/// Collects the garbage of `project`'s repository; with `dry_run`, only says what it would
/// collect (workspaces, pools, snapshots and logs; artifacts and objects are not counted).
pub fn collect(project: &Project, history: &mut History, dry_run: bool) -> Result<Report, Error> {
    let config = Config::load(&project.root)?;
    let now = SystemTime::now();
    let identity = project.identity();
    let mut report = Report {
        dry_run,
        max_size: config.workspaces.max_size,
        ..Report::default()
    };

    if let Some(repo) = &project.repo {
        let pool = Pool::of(history.home(), repo, &config.workspaces);
        if !dry_run {
            pool.empty_trash();
        }
        report.pool = workspaces(&pool, &config, now, dry_run)?;
        report.busy = report.pool.iter().filter(|w| w.leased).count();
        report.workspaces = report
            .pool
            .iter()
            .filter_map(|w| Some((w.slot, w.removed?)))
            .collect();

        let since = now.checked_sub(config.history.keep).unwrap_or(now);
        let used = history.trees_since(&identity, since)?;
        for tree in repo.snapshot_trees()? {
            if !used.contains(&tree) {
                if !dry_run {
                    repo.drop_snapshot(&tree)?;
                }
                report.snapshots += 1;
            }
        }
    }

    report.orphaned_pools = Pool::remove_orphans(history.home(), dry_run)?;

    let cutoff = now.checked_sub(config.history.keep).unwrap_or(now);
    for run in history.runs_with_logs_before(&identity, cutoff)? {
        if !dry_run {
            history.forget_logs(run)?;
        }
        report.logs += 1;
    }
    if dry_run {
        return Ok(report);
    }

    let since = now.checked_sub(config.artifacts.keep).unwrap_or(now);
    report.artifacts =
        history.expire_artifacts(&identity, since, config.artifacts.keep_last, now)?;
    // With no run going on, nothing can be halfway through storing: no grace is needed.
    let grace = if history.has_running_runs()? {
        OBJECT_GRACE
    } else {
        Duration::ZERO
    };
    report.objects = Store::of(history.home())
        .sweep(&history.live_artifacts()?, grace)
        .map_err(crate::artifacts::ArtifactError::from)?;
    Ok(report)
}

/// Measures the pool's workspaces and removes (unless `dry_run`) those the settings let go:
/// kept from a failed run longer than `keep_failed`, beyond the pool's size, then beyond
/// `max_size`, each time the least recently used first. A workspace a run holds stays, and so
/// does the free one used last, whatever it takes: the next run builds on it.
fn workspaces(
    pool: &Pool,
    config: &Config,
    now: SystemTime,
    dry_run: bool,
) -> Result<Vec<WorkspaceUsage>, Error> {
    let failed_cutoff = millis(now) - millis_of(config.workspaces.keep_failed);
    let mut slots = pool.slots()?;
    // Oldest first: what goes when the pool is too big.
    slots.sort_by_key(|s| s.state.used_at);
    // The warmest free workspace: the next run takes it.
    let newest = slots.iter().rev().find(|s| !s.leased).map(|s| s.slot);
    let mut usage: Vec<WorkspaceUsage> = slots
        .iter()
        .map(|slot| WorkspaceUsage {
            slot: slot.slot,
            bytes: disk_usage(&slot.path),
            leased: slot.leased,
            kept: slot.state.kept,
            run: slot.state.run,
            used_at: slot.state.used_at,
            removed: None,
        })
        .collect();
    let mut remaining = usage.len();
    let mut total: u64 = usage.iter().map(|w| w.bytes).sum();
    let max_size = config.workspaces.max_size.unwrap_or(u64::MAX);
    for pass in 0..2 {
        for workspace in &mut usage {
            if workspace.leased || workspace.removed.is_some() {
                continue;
            }
            let reason = if pass == 0 && workspace.kept && workspace.used_at < failed_cutoff {
                "kept from a failed run longer than keep_failed"
            } else if pass == 0 && remaining > pool.size() {
                "beyond the pool's size"
            } else if pass == 1 && total > max_size && Some(workspace.slot) != newest {
                "beyond max_size"
            } else {
                continue;
            };
            // A run may have taken it since it was listed: then it stays.
            if dry_run || pool.remove(workspace.slot)? {
                remaining -= 1;
                total -= workspace.bytes;
                workspace.removed = Some(reason);
            } else {
                workspace.leased = true;
            }
        }
    }
    usage.sort_by_key(|w| w.slot);
    Ok(usage)
}

fn millis_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
