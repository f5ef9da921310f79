//! Reuse, corrected for the workspace a run leases. History says which stages' results can
//! be reused (`cache::reusable`); but a stage that runs needs the files its needs wrote,
//! which only the workspace they ran in holds. So once a workspace is leased, each cached
//! stage that a running stage needs, directly or through others, provides its files there:
//!
//! - a stage with `@outputs` has them restored from the store, unless the workspace holds
//!   them at that key already (the slot's record, see `workspace::SlotState::results`);
//! - a stage without `@outputs` is reused only where it last passed with that key, or when
//!   it stored artifacts (`gzl obj-store`), which what needs it gets itself; else it runs
//!   again here, and so does everything needing it (whose cached needs are then looked at in
//!   turn).
//!
//! The correction only turns cached stages into running ones, never the reverse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::artifacts::ReusedRuns;
use crate::config::Clean;
use crate::error::Error;
use crate::git::Repo;
use crate::history::ArtifactRecord;
use crate::outputs::{self, Refusal};
use crate::plan::Plan;
use crate::stagefile::Stage;
use crate::store::Store;
use crate::workspace::{Prepared, Workspace};

/// Makes the leased `workspace` hold `commit`, cleaned as `clean` says but for the declared
/// outputs of the run's stages, then corrects `reused` for it (see [`settle`]), restoring
/// outputs and saying what it did in `note`; records what the workspace now holds, without
/// the stages that will run. `keys` is empty when the run neither reuses nor offers
/// results. Returns where restores moved what was in their way, for the caller to remove
/// after the run.
#[allow(clippy::too_many_arguments)]
pub(super) fn prepare(
    workspace: &Workspace,
    repo: &Repo,
    commit: &str,
    clean: Clean,
    plan: &Plan,
    keys: &[String],
    reused: &mut [Option<i64>],
    reused_runs: &ReusedRuns,
    store: &Store,
    note: &mut dyn FnMut(String),
) -> Result<Option<PathBuf>, Error> {
    let mut aside = None;
    // No clean deletes what the run's stages declare they leave.
    let keep: Vec<String> = plan
        .nodes()
        .iter()
        .filter_map(|node| {
            let attributes = &node.stage.attributes;
            let patterns = attributes.outputs.as_ref()?;
            Some(outputs::clean_excludes(attributes.dir.as_deref(), patterns))
        })
        .flatten()
        .collect();
    let prepared = workspace.prepare(repo, commit, clean, &keep)?;
    let mut held = workspace.results();
    match prepared {
        Prepared::Fresh => held.clear(),
        // What the clean spared: the outputs of this run's stages.
        Prepared::Cleaned { removed: true } => held.retain(|name, key| {
            plan.nodes().iter().zip(keys).any(|(node, k)| {
                node.stage.name == *name && node.stage.attributes.outputs.is_some() && k == key
            })
        }),
        Prepared::Cleaned { removed: false } => {}
    }
    if !keys.is_empty() {
        let trash = workspace.trash_path("restored")?;
        let settled = settle(
            plan,
            0,
            keys,
            reused,
            reused_runs,
            &mut held,
            &workspace.path,
            &mut Restorer {
                workspace,
                store,
                aside: &trash,
            },
        );
        for (index, what) in settled {
            note(what.describe(&plan.nodes()[index].stage.name));
        }
        aside = Some(trash);
    }
    // What runs here now is no longer what it left before.
    for (node, reused) in plan.nodes().iter().zip(reused.iter()) {
        if reused.is_none() {
            held.remove(&node.stage.name);
        }
    }
    workspace.set_results(held)?;
    Ok(aside)
}

/// Restores outputs into a leased workspace.
pub(super) struct Restorer<'a> {
    pub workspace: &'a Workspace,
    pub store: &'a Store,
    /// Where what is in a restore's way goes.
    pub aside: &'a Path,
}

impl Provide for Restorer<'_> {
    fn relocatable(&mut self, artifact: &ArtifactRecord) -> Result<(), Refusal> {
        outputs::relocatable(self.store, artifact, &self.workspace.path)
    }

    fn restore(
        &mut self,
        stage: &Stage,
        artifacts: &[&ArtifactRecord],
        dir: &Path,
    ) -> Result<u64, String> {
        // A restore cut short must not leave a record of what was there.
        self.workspace
            .forget_result(&stage.name)
            .map_err(|error| error.to_string())?;
        outputs::restore(self.store, artifacts, dir, &self.workspace.path, self.aside)
    }
}

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
    /// Runs again: what it stored in run `from` cannot be moved into this workspace, since
    /// `file` embeds the path of the one it was made in.
    NotRelocatable { from: i64, file: String },
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
            Note::NotRelocatable { from, file } => format!(
                "`{stage}` runs again: what it stored in run {from} cannot move to this workspace: `{file}` is a binary file that embeds the path of the workspace it was made in"
            ),
        }
    }
}

/// What [`settle`] asks of the store and the workspace.
pub trait Provide {
    /// Whether the stored `artifact` can be restored into the workspace (moved there when it
    /// names the workspace it was made in).
    fn relocatable(&mut self, artifact: &ArtifactRecord) -> Result<(), Refusal>;

    /// Restores a cached stage's outputs (the artifacts given) into its directory `dir`;
    /// returns how many files, or why not.
    fn restore(
        &mut self,
        stage: &Stage,
        artifacts: &[&ArtifactRecord],
        dir: &Path,
    ) -> Result<u64, String>;
}

/// The first of `artifacts` that cannot be restored into the workspace, as a note.
fn refused(provide: &mut dyn Provide, from: i64, artifacts: &[&ArtifactRecord]) -> Option<Note> {
    artifacts
        .iter()
        .find_map(|artifact| provide.relocatable(artifact).err())
        .map(|refusal| match refusal {
            Refusal::NotRelocatable { file } => Note::NotRelocatable { from, file },
            Refusal::Fails(reason) => Note::Unrestorable { from, reason },
        })
}

/// Corrects `reused` for a workspace at `root` holding `held` (stage name → key): see the
/// module's comment. `keys` are the stages' keys, in plan order. `provide` restores outputs
/// (or, for `gzl why`, says whether it could); `held` is updated with what it restored.
/// What a needed cached stage stored must move into the workspace, or it runs again.
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
    provide: &mut dyn Provide,
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
                // One that stored artifacts (`gzl obj-store`) hands its files through them:
                // what needs it gets them with `gzl obj-get`, in any workspace they can move to.
                let artifacts: Vec<&ArtifactRecord> =
                    reused_runs.of_stage(from, &stage.name).collect();
                let note = if artifacts.is_empty() {
                    (held.get(&stage.name) != Some(&keys[index]))
                        .then_some(Note::Elsewhere { from })
                } else {
                    refused(provide, from, &artifacts)
                };
                if let Some(note) = note {
                    reused[index] = None;
                    notes.push((index, note));
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
            if let Some(note) = refused(provide, from, &artifacts) {
                if index >= first {
                    reused[index] = None;
                    notes.push((index, note));
                    failed = true;
                } else {
                    tracing::warn!(stage = %stage.name, ?note, "cannot restore the outputs of a cached stage");
                }
                continue;
            }
            held.remove(&stage.name);
            match provide.restore(stage, &artifacts, &dir) {
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
