use std::fmt::Write as _;

use super::Context;
use crate::artifacts;
use crate::cache::{self, Difference, Inputs, Why};
use crate::error::{Error, ExitCode};
use crate::history::ArtifactRecord;
use crate::outputs::Refusal;
use crate::pipeline::{self, reuse::Note};
use crate::plan::Plan;
use crate::project::{Source, SourceRequest};
use crate::store::Store;

#[derive(clap::Args)]
pub struct Args {
    /// The stage to explain
    stage: String,

    /// Explain a run of this commit instead of the working tree
    #[arg(long, value_name = "REV")]
    at: Option<String>,
}

pub fn run(context: &Context, args: &Args) -> Result<ExitCode, Error> {
    let request = match &args.at {
        Some(rev) => SourceRequest::At(rev),
        None => SourceRequest::WorkingTree,
    };
    let (source, gzlfile) = context.load_source(request)?;
    let (Source::Isolated(state), Some(repo)) = (&source, &context.project.repo) else {
        return Err(Error::usage(
            "gzl why needs a git repository: results are reused only for sources git captures",
            None,
        ));
    };
    // The whole pipeline, as `gzl run` runs it: what runs decides what must be in the
    // workspace.
    let plan = Plan::new(&gzlfile, &[])?;
    if !plan
        .nodes()
        .iter()
        .any(|node| node.stage.name == args.stage)
    {
        Plan::new(&gzlfile, std::slice::from_ref(&args.stage))?;
    }
    let history = pipeline::open_history()?;
    let inputs = cache::inputs(&plan, repo, &state.tree)?;
    let matched = cache::reusable(&plan, &inputs, &vec![false; plan.len()], &history)?;
    let mut reused = matched.clone();
    let reused_runs =
        artifacts::keep_reusable(&plan, 0, &mut reused, &history, &Store::of(history.home()))?;
    let index = plan
        .nodes()
        .iter()
        .position(|node| node.stage.name == args.stage)
        .unwrap_or(plan.len() - 1);
    // As the run would: corrected for the workspace it would lease, when anything runs.
    let mut workspace_note = None;
    if reused.iter().any(Option::is_none) {
        let config = crate::config::Config::load(&context.project.root)?;
        let pool = crate::workspace::Pool::of(history.home(), repo, &config.workspaces);
        let slot = pool.peek()?;
        let (mut held, root, place) = match slot {
            Some(slot) => (
                slot.state.results,
                slot.path,
                format!("workspace {}", slot.slot),
            ),
            None => (
                Default::default(),
                pool.dir().join("new"),
                "a new workspace".to_string(),
            ),
        };
        let keys: Vec<String> = inputs.iter().map(Inputs::key).collect();
        let store = Store::of(history.home());
        let notes = pipeline::reuse::settle(
            &plan,
            0,
            &keys,
            &mut reused,
            &reused_runs,
            &mut held,
            &root,
            &mut Foreseen {
                store: &store,
                root: &root,
            },
        );
        workspace_note = notes
            .into_iter()
            .rev()
            .find(|(at, _)| *at == index)
            .map(|(_, note)| (note, place));
    }
    let earlier = history
        .newest_execution(&context.project.identity(), &args.stage)?
        .and_then(|(run, stage)| {
            let before: Inputs = serde_json::from_str(stage.inputs.as_deref()?).ok()?;
            Some((run.id, run.tree, before))
        });
    let why = cache::explain(
        repo,
        &plan,
        index,
        &inputs,
        &reused,
        earlier
            .as_ref()
            .map(|(run, tree, before)| (*run, tree.as_deref(), before.clone())),
        &state.tree,
    );
    let stage = &args.stage;
    // A result whose artifacts are gone is not reused, though its inputs are the same.
    let lost = matched[index].filter(|_| reused[index].is_none());
    let mut out = match (&why, lost, &workspace_note) {
        (_, _, Some((note, place))) => in_workspace(stage, note, place),
        (Why::NeedsRun { .. }, _, _) | (_, None, _) => explain(stage, &why),
        (_, Some(run), _) => format!(
            "{stage} would run: it passed with the same inputs in run {run}, but the store no longer holds what it stored there (gzl gc)\n"
        ),
    };
    let _ = writeln!(out, "  key {}", inputs[index].key());
    if let (Why::Differs { run, differences }, None, None) = (&why, lost, &workspace_note) {
        let _ = writeln!(
            out,
            "  compared with run {run}, its newest run of `{stage}`:"
        );
        for difference in differences {
            let _ = writeln!(out, "    {}", describe(difference));
        }
    }
    super::print(&out);
    Ok(ExitCode::Success)
}

/// What a run would restore, foreseen: nothing is written.
struct Foreseen<'a> {
    store: &'a Store,
    /// The workspace the run would take.
    root: &'a std::path::Path,
}

impl pipeline::reuse::Provide for Foreseen<'_> {
    fn relocatable(&mut self, artifact: &ArtifactRecord) -> Result<(), Refusal> {
        crate::outputs::relocatable(self.store, artifact, self.root)
    }

    fn restore(
        &mut self,
        _: &crate::stagefile::Stage,
        artifacts: &[&ArtifactRecord],
        _: &std::path::Path,
    ) -> Result<u64, String> {
        Ok(artifacts.iter().map(|a| a.files).sum())
    }
}

/// The first line of the answer when the workspace the run would take decides it.
fn in_workspace(stage: &str, note: &Note, place: &str) -> String {
    match note {
        Note::Restored { from, files } => format!(
            "{stage} would reuse run {from}: it passed with the same inputs; its outputs ({files} file{}) would be restored into {place}\n",
            if *files == 1 { "" } else { "s" }
        ),
        Note::Elsewhere { from } => format!(
            "{stage} would run: its result (run {from}) was made in another workspace than the one the run would take ({place}), and it declares no @outputs\n"
        ),
        Note::Unrestorable { from, reason } => format!(
            "{stage} would run: its outputs from run {from} cannot be restored into {place}: {reason}\n"
        ),
        Note::NeedRuns { need } => {
            format!("{stage} would run: it needs `{need}`, which would run again in {place}\n")
        }
        Note::NotRelocatable { from, file } => format!(
            "{stage} would run: what it stored in run {from} cannot move into {place}: `{file}` is a binary file that embeds the path of the workspace it was made in, and gzl cannot rewrite it\n"
        ),
    }
}

/// The first line of the answer.
fn explain(stage: &str, why: &Why) -> String {
    match why {
        Why::Reuses { run } => {
            format!("{stage} would reuse run {run}: it passed with the same inputs\n")
        }
        Why::NeedsRun { needs } => format!(
            "{stage} would run: it needs {}, which would run\n",
            crate::style::quoted(needs)
        ),
        Why::NeverRan => format!("{stage} would run: it has never run isolated here\n"),
        Why::Generates => format!(
            "{stage} would run: a @generates stage always runs, since what it prints decides the stages\n"
        ),
        Why::Differs { .. } => format!("{stage} would run: no passed run had the same inputs\n"),
    }
}

fn describe(difference: &Difference) -> String {
    match difference {
        Difference::Script => "the script changed".to_string(),
        Difference::Attribute {
            name,
            before,
            after,
        } => match (before, after) {
            (Some(before), Some(after)) => format!("@{name} changed: {before} -> {after}"),
            (None, Some(after)) => format!("@{name} was added: {after}"),
            (Some(before), None) => format!("@{name} was removed (was {before})"),
            (None, None) => format!("@{name} changed"),
        },
        Difference::Files { paths, count } => {
            let more = count.saturating_sub(paths.len());
            format!(
                "files it reads changed: {}{}",
                paths.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )
        }
        Difference::Source => {
            "files it reads changed (the earlier tree is gone from the repository)".to_string()
        }
        Difference::Need { name } => {
            format!("it needs `{name}`, whose inputs changed (`gzl why {name}` says how)")
        }
        Difference::SameInputs => {
            "the same inputs: that run did not pass, and failures are not reused".to_string()
        }
    }
}
