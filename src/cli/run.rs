use std::time::Duration;

use super::Context;
use crate::error::{Error, ExitCode};
use crate::pipeline::{self, RunOptions};
use crate::report::{Json, Terminal, View};
use crate::status::RunStatus;

#[derive(clap::Args)]
pub struct Args {
    /// Stages to run, each with everything it needs [default: every stage]
    #[arg(value_name = "STAGE")]
    stages: Vec<String>,

    /// How many stages may run at once [default: the number of CPUs]
    #[arg(short, long, value_name = "N", env = "GZL_JOBS", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,

    /// Cancel the whole run as soon as one stage fails
    #[arg(long)]
    fail_fast: bool,

    /// Time stopped stages get between SIGTERM and SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    grace: Duration,

    /// Print only the final summary
    #[arg(short, long, help_heading = "Output")]
    quiet: bool,

    /// Print the run as JSON lines events on stdout (see docs/json.md)
    #[arg(long, conflicts_with = "quiet", help_heading = "Output")]
    json: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration such as `500ms`, `10s` or `1m30s`"))
}

pub fn run(context: &Context, args: Args) -> Result<ExitCode, Error> {
    let gzlfile = context.load()?;
    let jobs = args
        .jobs
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let view = if args.json {
        View::Json(Json::default())
    } else {
        View::Terminal(Terminal::new(args.quiet))
    };
    let options = RunOptions {
        targets: args.stages,
        jobs,
        fail_fast: args.fail_fast,
        grace: args.grace,
    };
    let result = pipeline::run(&context.project, &gzlfile, &options, view)?;
    Ok(match result.status {
        RunStatus::Passed => ExitCode::Success,
        RunStatus::Cancelled | RunStatus::Interrupted => ExitCode::Interrupted,
        RunStatus::Failed | RunStatus::Running => ExitCode::Failure,
    })
}
