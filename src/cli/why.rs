use std::fmt::Write as _;

use super::Context;
use crate::artifacts;
use crate::cache::{self, Difference, Inputs, Why};
use crate::error::{Error, ExitCode};
use crate::pipeline;
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
    let plan = Plan::new(&gzlfile, std::slice::from_ref(&args.stage))?;
    let history = pipeline::open_history()?;
    let inputs = cache::inputs(&plan, repo, &state.tree)?;
    let matched = cache::reusable(&plan, &inputs, &vec![false; plan.len()], &history)?;
    let mut reused = matched.clone();
    artifacts::keep_reusable(&plan, 0, &mut reused, &history, &Store::of(history.home()))?;
    let index = plan
        .nodes()
        .iter()
        .position(|node| node.stage.name == args.stage)
        .unwrap_or(plan.len() - 1);
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
    let mut out = match (&why, lost) {
        (Why::NeedsRun { .. }, _) | (_, None) => explain(stage, &why),
        (_, Some(run)) => format!(
            "{stage} would run: it passed with the same inputs in run {run}, but the store no longer holds what it stored there (gzl gc)\n"
        ),
    };
    let _ = writeln!(out, "  key {}", inputs[index].key());
    if let (Why::Differs { run, differences }, None) = (&why, lost) {
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
