//! Stages made at run time: what a `@generates` stage printed joins the run's plan, with
//! keys, reuse and jobs like any stage the Gzlfile defines.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::jobs::{self, RunContext};
use crate::api;
use crate::artifacts;
use crate::cache::{self, Inputs};
use crate::exec::{Expander, Expansion, Joined, JoinedStage};
use crate::git::Repo;
use crate::history::History;
use crate::plan::Plan;
use crate::stagefile::{Gzlfile, Stage, StagefileError, render_all};
use crate::store::Store;
use crate::workspace::Workspace;

/// Joins generated stages to a run.
pub(super) struct Generated<'a> {
    pub gzlfile: &'a Gzlfile,
    pub context: &'a RunContext<'a>,
    /// The repository and source tree, when results are reused and recorded for reuse.
    pub source: Option<(&'a Repo, &'a str)>,
    /// The inputs and reused results of every stage so far, in plan order.
    pub inputs: Vec<Inputs>,
    pub reused: Vec<Option<i64>>,
    /// `--force` without stages: nothing is reused.
    pub force_all: bool,
    pub medians: &'a HashMap<String, Duration>,
    /// Opened on first use: the run's own connection belongs to its recorder.
    pub history: Option<History>,
    /// The job API, which learns of the joined stages before they start.
    pub api: api::Stages,
    /// The run's workspace, where cached stages joined provide their files.
    pub workspace: Option<&'a Workspace>,
    /// Where restores move what was in their way.
    pub aside: Option<PathBuf>,
}

impl Expander for Generated<'_> {
    fn expand(&mut self, plan: &mut Plan, generator: usize) -> Result<Expansion, String> {
        let name = plan.nodes()[generator].stage.name.clone();
        let path = jobs::generated_path(self.context, &name);
        let text = std::fs::read(&path).map_err(|error| {
            format!(
                "cannot read what `{name}` printed ({}): {error}",
                path.display()
            )
        })?;
        let text = String::from_utf8(text).map_err(|_| {
            format!("`{name}` printed text that is not UTF-8; @generates stages print Gzlfile text")
        })?;
        let mut taken: Vec<&str> = self
            .gzlfile
            .stages
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        taken.extend(plan.nodes().iter().map(|node| node.stage.name.as_str()));
        // Should checking the text ever panic (a bug in gzl: it is the one place a run parses
        // text a stage printed), the generator fails saying so, instead of the runner dying
        // and leaving the run `interrupted`.
        let stages =
            std::panic::catch_unwind(|| check(&name, &text, &taken)).unwrap_or_else(|_| {
                Err(format!(
                    "gzl failed checking what `{name}` printed (a bug in gzl; please report it)"
                ))
            })?;
        let first = plan
            .extend(self.gzlfile, generator, stages)
            .map_err(|error| error.to_string())?;
        let mut notes = Vec::new();
        let reused_runs = match self.source {
            Some((repo, tree)) => {
                cache::extend_inputs(plan, &mut self.inputs, repo, tree)
                    .map_err(|error| error.to_string())?;
                if self.history.is_none() {
                    self.history =
                        Some(History::open(self.context.home).map_err(|error| error.to_string())?);
                }
                let history = self.history.as_ref().expect("opened above");
                let forced = vec![self.force_all; plan.len()];
                cache::extend_reusable(plan, &self.inputs, &forced, &mut self.reused, history)
                    .map_err(|error| error.to_string())?;
                let store = Store::of(self.context.home);
                let reused_runs =
                    artifacts::keep_reusable(plan, first, &mut self.reused, history, &store)
                        .map_err(|error| error.to_string())?;
                if let (Some(workspace), Some(aside)) = (self.workspace, self.aside.clone()) {
                    notes = self.settle(plan, first, &reused_runs, workspace, &store, &aside)?;
                }
                reused_runs
            }
            None => {
                self.reused.resize(plan.len(), None);
                artifacts::ReusedRuns::default()
            }
        };
        self.api
            .join(plan, first, &self.reused, &reused_runs)
            .map_err(|error| error.to_string())?;
        let nodes = &plan.nodes()[first..];
        let commands = jobs::commands(nodes, self.context.home, &format!("{name}'s output"))
            .map_err(|error| error.to_string())?;
        let jobs: Vec<_> = nodes
            .iter()
            .zip(commands)
            .zip(&self.reused[first..])
            .map(|((node, command), reused)| jobs::job(&node.stage, command, *reused, self.context))
            .collect();
        let medians = self.medians;
        let priorities = plan.critical_path_weights(|stage| super::median_weight(medians, stage))
            [first..]
            .to_vec();
        let stages = nodes
            .iter()
            .zip(&jobs)
            .enumerate()
            .map(|(offset, (node, job))| {
                let inputs = self.inputs.get(first + offset);
                JoinedStage {
                    name: node.stage.name.clone(),
                    needs: node.stage.needs.clone(),
                    key: inputs.map(Inputs::key),
                    inputs: inputs.and_then(|i| serde_json::to_string(i).ok()),
                    cwd: job.cwd.clone(),
                    env: jobs::recorded_env(job),
                    expected: medians.get(&node.stage.name).copied(),
                }
            })
            .collect();
        Ok(Expansion {
            jobs,
            priorities,
            joined: Arc::new(Joined {
                generator: Some(generator),
                first,
                stages,
            }),
            notes,
        })
    }
}

impl Generated<'_> {
    /// Corrects the joined stages' reuse for the workspace, as the run did its own stages
    /// (see [`super::reuse`]). Returns what it did, as lines.
    fn settle(
        &mut self,
        plan: &Plan,
        first: usize,
        reused_runs: &artifacts::ReusedRuns,
        workspace: &Workspace,
        store: &Store,
        aside: &Path,
    ) -> Result<Vec<String>, String> {
        let keys: Vec<String> = self.inputs.iter().map(Inputs::key).collect();
        let mut held = workspace.results();
        let settled = super::reuse::settle(
            plan,
            first,
            &keys,
            &mut self.reused,
            reused_runs,
            &mut held,
            &workspace.path,
            &mut super::reuse::Restorer {
                workspace,
                store,
                aside,
            },
        );
        for (node, reused) in plan.nodes().iter().zip(&self.reused).skip(first) {
            if reused.is_none() {
                held.remove(&node.stage.name);
            }
        }
        workspace
            .set_results(held)
            .map_err(|error| error.to_string())?;
        Ok(settled
            .into_iter()
            .map(|(index, note)| note.describe(&plan.nodes()[index].stage.name))
            .collect())
    }
}

/// The stages in `text`, what `generator` printed, or its diagnostics rendered.
fn check(generator: &str, text: &str, taken: &[&str]) -> Result<Vec<Stage>, String> {
    match Gzlfile::generated(generator, text, taken) {
        Ok(stages) => Ok(stages),
        Err(StagefileError::Invalid {
            path,
            source_text,
            diagnostics,
        }) => Err(format!(
            "`{generator}` generated stages gzl cannot run:\n{}",
            render_all(
                &diagnostics,
                &source_text,
                &path.display().to_string(),
                false
            )
            .trim_end()
        )),
        Err(error) => Err(error.to_string()),
    }
}
