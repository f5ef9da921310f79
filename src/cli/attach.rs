use super::Context;
use super::logs::find_run;
use crate::attach;
use crate::error::{Error, ExitCode};
use crate::pipeline;
use crate::report::{ProgressMode, Terminal, View};
use crate::status::RunStatus;

#[derive(clap::Args)]
pub struct Args {
    /// A run id, `last`, or a commit-ish [default: the newest running run of this repository]
    run: Option<String>,
}

pub fn run(context: &Context, args: &Args) -> Result<ExitCode, Error> {
    let mut history = pipeline::open_history()?;
    let run = match &args.run {
        Some(selector) => find_run(context, &history, selector)?,
        None => history
            .runs(Some(&context.project.identity()), 100)?
            .into_iter()
            .find(|r| r.status == RunStatus::Running)
            .ok_or_else(|| {
                Error::usage(
                    "no run of this repository is running",
                    Some("`gzl ls` lists the runs; `gzl logs RUN` shows a finished one".into()),
                )
            })?,
    };
    super::note(&format!(
        "gzl: attached to run {} ({}); Ctrl-C detaches, the run goes on",
        run.id, run.status
    ));
    let status = attach::attach(
        &mut history,
        &run,
        View::Terminal(Terminal::new(false, ProgressMode::Auto)),
    )?;
    Ok(match status {
        RunStatus::Passed => ExitCode::Success,
        RunStatus::Cancelled | RunStatus::Interrupted => ExitCode::Interrupted,
        RunStatus::Failed | RunStatus::Stopped | RunStatus::Running => ExitCode::Failure,
    })
}
