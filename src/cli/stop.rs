use std::time::Duration;

use super::Context;
use super::logs::{find_run, find_stage};
use crate::error::{Error, ExitCode};
use crate::{pipeline, stop};

#[derive(clap::Args)]
pub struct Args {
    /// A run id, `last`, or a commit-ish (its newest run)
    run: String,

    /// Stop only this stage; what needs it is skipped, the rest goes on
    stage: Option<String>,

    /// Time the stopped processes get between SIGTERM and SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::run::parse_duration)]
    grace: Duration,
}

pub fn run(context: &Context, args: &Args) -> Result<ExitCode, Error> {
    let mut history = pipeline::open_history()?;
    let run = find_run(context, &history, &args.run)?;
    match &args.stage {
        Some(name) => {
            let stages = history.stages(run.id)?;
            let stage = find_stage(&run, &stages, name)?.clone();
            stop::stop_stage(&mut history, &run, &stage, args.grace)?;
            super::note(&format!("stopped stage `{name}` of run {}", run.id));
        }
        None => {
            stop::stop_run(&mut history, &run, args.grace)?;
            super::note(&format!("stopped run {}", run.id));
        }
    }
    Ok(ExitCode::Success)
}
