//! `gzl gc`: removes what runs leave behind beyond the retention policy of `gzl.toml`.
//!
//! - workspaces: those beyond the pool's size (least recently used first), and the kept
//!   workspaces of failed runs older than `[workspaces] keep_failed`;
//! - snapshots: the refs under `refs/gzl/snapshots/` of trees no run since `[history] keep`
//!   used (git's own gc then deletes the objects);
//! - the workspaces of repositories that no longer exist (moved or deleted);
//! - logs of runs that ended more than `[history] keep` ago. The runs stay listed and their
//!   results are still reused: a result is a row, not a log;
//! - artifacts of runs beyond `[artifacts]` (older than `keep` and not among the `keep_last`
//!   newest of their branch), then every object of the store that no kept artifact of any
//!   repository names. A stage whose artifacts are gone is not reused: it runs again.

use std::time::{Duration, SystemTime};

use crate::config::Config;
use crate::error::Error;
use crate::history::{History, millis};
use crate::project::Project;
use crate::store::{Store, Swept};
use crate::workspace::Pool;

/// What `gzl gc` removed.
#[derive(Debug, Default)]
pub struct Report {
    /// Workspace slots removed, with why.
    pub workspaces: Vec<(usize, &'static str)>,
    /// Workspaces in use by a run, left alone.
    pub busy: usize,
    pub snapshots: usize,
    pub logs: usize,
    /// Pools of repositories that no longer exist.
    pub orphaned_pools: Vec<std::path::PathBuf>,
    /// Artifacts whose runs the retention policy let go.
    pub artifacts: usize,
    /// What the store removed.
    pub objects: Swept,
}

/// How long an object stays after it was last stored while runs are going on: a stage may
/// have written it and not registered it yet.
const OBJECT_GRACE: Duration = Duration::from_secs(3600);

/// Collects the garbage of `project`'s repository.
pub fn collect(project: &Project, history: &mut History) -> Result<Report, Error> {
    let config = Config::load(&project.root)?;
    let now = SystemTime::now();
    let identity = project.identity();
    let mut report = Report::default();

    if let Some(repo) = &project.repo {
        let pool = Pool::of(history.home(), repo, &config.workspaces);
        pool.empty_trash();
        let failed_cutoff = millis(now) - millis_of(config.workspaces.keep_failed);
        let mut slots = pool.slots()?;
        report.busy = slots.iter().filter(|s| s.leased).count();
        // Oldest first: what goes when the pool is too big.
        slots.sort_by_key(|s| s.state.used_at);
        let mut remaining = slots.len();
        for slot in &slots {
            if slot.leased {
                continue;
            }
            let reason = if slot.state.kept && slot.state.used_at < failed_cutoff {
                "kept from a failed run longer than keep_failed"
            } else if remaining > pool.size() {
                "beyond the pool's size"
            } else {
                continue;
            };
            if pool.remove(slot.slot)? {
                remaining -= 1;
                report.workspaces.push((slot.slot, reason));
            }
        }

        let since = now.checked_sub(config.history.keep).unwrap_or(now);
        let used = history.trees_since(&identity, since)?;
        for tree in repo.snapshot_trees()? {
            if !used.contains(&tree) {
                repo.drop_snapshot(&tree)?;
                report.snapshots += 1;
            }
        }
    }

    report.orphaned_pools = Pool::remove_orphans(history.home())?;

    let cutoff = now.checked_sub(config.history.keep).unwrap_or(now);
    for run in history.runs_with_logs_before(&identity, cutoff)? {
        history.forget_logs(run)?;
        report.logs += 1;
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

fn millis_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
