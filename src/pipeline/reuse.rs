//! Reuse, corrected for the workspace a run leases. History says which stages' results can
//! be reused (`cache::reusable`); but a stage that runs needs the files its needs wrote,
//! which only the workspace they ran in holds. So once a workspace is leased, each cached
//! stage that a running stage needs, directly or through others, provides its files there:
//!
//! - a stage with `@outputs` has them restored from the store, unless the workspace holds
//!   them at that key already (the slot's record, see `workspace::SlotState::results`);
//! - a stage without `@outputs` is reused only where it last passed with that key; else it
//!   runs again here, and so does everything needing it (whose cached needs are then looked
//!   at in turn).
//!
//! The correction only turns cached stages into running ones, never the reverse.

use std::collections::BTreeMap;
use std::path::Path;

use crate::artifacts::ReusedRuns;
use crate::history::ArtifactRecord;
use crate::plan::Plan;
use crate::stagefile::Stage;

/// What the correction did to a stage, for the run's output and `gzl why`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// Reused from run `from`, its outputs restored into the workspace (`files` files).
    Restored { from: i64, files: u64 },
    /// Runs again: its result (run `from`) is from another workspace, and it declares no
    /// `@outputs` that gzl could restore.
    Elsewhere { from: i64 },
    /// Runs again: its outputs (run `from`) cannot be restored here, for `reason`.
    Unrestorable { from: i64, reason: String },
    /// Runs again: `need`, which it needs, runs again here.
    NeedRuns { need: String },
}

impl Note {
    /// The note as a line for people, about stage `stage`.
    pub fn describe(&self, stage: &str) -> String {
        match self {
            Note::Restored { from, files } => format!(
                "`{stage}` reuses run {from}: its outputs restored ({files} file{})",
                if *files == 1 { "" } else { "s" }
            ),
            Note::Elsewhere { from } => format!(
                "`{stage}` runs again: its result (run {from}) is from another workspace and it declares no @outputs"
            ),
            Note::Unrestorable { from, reason } => format!(
                "`{stage}` runs again: its outputs from run {from} cannot be restored here: {reason}"
            ),
            Note::NeedRuns { need } => {
                format!("`{stage}` runs again: it needs `{need}`, which runs again here")
            }
        }
    }
}

/// Restores a cached stage's outputs (the artifacts given) into its directory; returns how
/// many files, or why not.
pub type Restore<'a> = dyn FnMut(&Stage, &[&ArtifactRecord], &Path) -> Result<u64, String> + 'a;

/// Corrects `reused` for a workspace at `root` holding `held` (stage name → key): see the
/// module's comment. `keys` are the stages' keys, in plan order. `restore` restores outputs
/// (or, for `gzl why`, says whether it could); `held` is updated with what it restored.
/// Stages before `first` were decided already (stages a generator joined come from
/// `first` on): they get their outputs restored, but none turns into a run. Returns what it
/// did, by stage.
#[allow(clippy::too_many_arguments)]
pub fn settle(
    plan: &Plan,
    first: usize,
    keys: &[String],
    reused: &mut [Option<i64>],
    reused_runs: &ReusedRuns,
    held: &mut BTreeMap<String, String>,
    root: &Path,
    restore: &mut Restore<'_>,
) -> Vec<(usize, Note)> {
    let nodes = plan.nodes();
    let mut notes: Vec<(usize, Note)> = Vec::new();
    loop {
        // Needs without outputs, to a fixed point: each one turned into a run may make
        // more cached stages needed by a running one.
        loop {
            let needed = needed_by_running(plan, reused);
            let mut changed = false;
            for index in 0..reused.len() {
                let Some(from) = reused[index] else { continue };
                let stage = &nodes[index].stage;
                if index < first
                    || !needed[index]
                    || stage.is_group()
                    || stage.attributes.outputs.is_some()
                {
                    continue;
                }
                if held.get(&stage.name) != Some(&keys[index]) {
                    reused[index] = None;
                    notes.push((index, Note::Elsewhere { from }));
                    changed = true;
                }
            }
            if !changed {
                break;
            }
            propagate(plan, first, reused, &mut notes);
        }
        let needed = needed_by_running(plan, reused);
        let mut failed = false;
        for index in 0..reused.len() {
            let Some(from) = reused[index] else { continue };
            let stage = &nodes[index].stage;
            let Some(patterns) = &stage.attributes.outputs else {
                continue;
            };
            if !needed[index] {
                continue;
            }
            let artifacts: Vec<&ArtifactRecord> = reused_runs
                .of_stage(from, &stage.name)
                .filter(|a| crate::outputs::matches(patterns, &a.path))
                .collect();
            let dir = stage
                .attributes
                .dir
                .as_ref()
                .map_or_else(|| root.to_path_buf(), |d| root.join(d));
            // The record says so, and nothing it names was deleted since.
            let holds = held.get(&stage.name) == Some(&keys[index])
                && artifacts
                    .iter()
                    .all(|a| std::fs::symlink_metadata(dir.join(&a.path)).is_ok());
            if holds {
                continue;
            }
            held.remove(&stage.name);
            match restore(stage, &artifacts, &dir) {
                Ok(files) => {
                    held.insert(stage.name.clone(), keys[index].clone());
                    notes.push((index, Note::Restored { from, files }));
                }
                // Decided already: what needs it finds its outputs missing, and says so.
                Err(reason) if index < first => {
                    tracing::warn!(stage = %stage.name, %reason, "cannot restore the outputs of a cached stage");
                }
                Err(reason) => {
                    reused[index] = None;
                    notes.push((index, Note::Unrestorable { from, reason }));
                    failed = true;
                }
            }
        }
        if !failed {
            break;
        }
        propagate(plan, first, reused, &mut notes);
    }
    // A stage restored and then made to run after all (a need of it could not be restored)
    // says why it runs.
    notes
        .retain(|(index, note)| !matches!(note, Note::Restored { .. }) || reused[*index].is_some());
    notes
}

/// For each stage, whether a stage that runs needs it, directly or through others.
fn needed_by_running(plan: &Plan, reused: &[Option<i64>]) -> Vec<bool> {
    let nodes = plan.nodes();
    let mut needed = vec![false; reused.len()];
    let mut stack: Vec<usize> = (0..reused.len())
        .filter(|&index| reused[index].is_none())
        .flat_map(|index| nodes[index].needs.iter().copied())
        .collect();
    while let Some(index) = stack.pop() {
        if !std::mem::replace(&mut needed[index], true) {
            stack.extend(nodes[index].needs.iter().copied());
        }
    }
    needed
}

/// Makes every cached stage that needs a running one run too (plan order is an order the
/// graph allows, so one pass reaches everything downstream).
fn propagate(
    plan: &Plan,
    first: usize,
    reused: &mut [Option<i64>],
    notes: &mut Vec<(usize, Note)>,
) {
    let nodes = plan.nodes();
    for index in first..reused.len() {
        if reused[index].is_none() {
            continue;
        }
        if let Some(&need) = nodes[index]
            .needs
            .iter()
            .find(|&&need| reused[need].is_none())
        {
            reused[index] = None;
            notes.push((
                index,
                Note::NeedRuns {
                    need: nodes[need].stage.name.clone(),
                },
            ));
        }
    }
}
