use std::time::Duration;

use super::Context;
use crate::error::{Error, ExitCode};
use crate::pipeline::{self, Force, RunOptions};
use crate::project::SourceRequest;
use crate::report::{Json, ProgressMode, Terminal, View};
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

    /// Run this commit (anything git accepts: HEAD~3, a tag, a short id, main@{1})
    #[arg(
        long,
        value_name = "REV",
        conflicts_with = "in_place",
        help_heading = "Source"
    )]
    at: Option<String>,

    /// Run in the working tree itself, as it is, instead of an isolated workspace
    #[arg(long, help_heading = "Source")]
    in_place: bool,

    /// Run STAGE and what needs it even when history has a result for them; without other
    /// stages named, the run is of the forced stages (repeatable)
    // The value is optional to clap only so that a bare `--force` (which once forced every
    // stage) gets an error pointing to `--force-all`, not clap's generic one.
    #[arg(long, value_name = "STAGE", num_args = 0..=1, default_missing_value = "", action = clap::ArgAction::Append, help_heading = "Reuse")]
    force: Vec<String>,

    /// Run every stage of the run even when history has a result for it
    #[arg(long, conflicts_with = "force", help_heading = "Reuse")]
    force_all: bool,

    /// Open a shell where a stage fails, right then; the run goes on when it exits (a terminal only)
    #[arg(long, conflicts_with = "json")]
    debug: bool,

    /// Neither reuse results nor record this run's for reuse
    #[arg(long, help_heading = "Reuse")]
    no_cache: bool,

    /// Time stopped stages get between SIGTERM and SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    grace: Duration,

    /// Print only the failures and the summary line
    #[arg(short, long, help_heading = "Output")]
    quiet: bool,

    /// How progress shows: bars on a terminal, else a line per stage start and end
    #[arg(
        long,
        value_name = "MODE",
        value_enum,
        default_value = "auto",
        help_heading = "Output"
    )]
    progress: ProgressMode,

    /// Print the run as JSON lines events on stdout (see docs/json.md)
    #[arg(long, conflicts_with = "quiet", help_heading = "Output")]
    json: bool,
}

pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::duration::parse_duration(text)
        .ok_or_else(|| format!("`{text}` is not a duration such as `500ms`, `10s` or `1m30s`"))
}

/// What the run is of, and what it forces. `--force STAGE` means "force STAGE", as `make -B
/// STAGE` does: with no stage named otherwise, the run is of the forced stages; with stages
/// named, it forces those of the run.
fn targets_and_force(
    stages: Vec<String>,
    forced: Vec<String>,
    force_all: bool,
) -> Result<(Vec<String>, Force), Error> {
    if force_all {
        return Ok((stages, Force::Everything));
    }
    if forced.iter().any(String::is_empty) {
        return Err(Error::usage(
            "--force needs a stage: `--force STAGE` forces that stage and what needs it",
            Some("to run every stage even when results could be reused, use `--force-all`".into()),
        ));
    }
    if forced.is_empty() {
        return Ok((stages, Force::Nothing));
    }
    let targets = if stages.is_empty() {
        forced.clone()
    } else {
        stages
    };
    Ok((targets, Force::Stages(forced)))
}

pub fn run(context: &Context, args: Args) -> Result<ExitCode, Error> {
    use std::io::IsTerminal as _;
    if args.debug && !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Error::usage(
            "--debug opens a shell, so it needs a terminal",
            Some("use `gzl debug RUN STAGE` after the run instead".into()),
        ));
    }
    let request = match (&args.at, args.in_place) {
        (Some(rev), _) => SourceRequest::At(rev),
        (None, true) => SourceRequest::InPlace,
        (None, false) => SourceRequest::WorkingTree,
    };
    let (targets, force) = targets_and_force(args.stages, args.force, args.force_all)?;
    let (source, gzlfile) = context.load_source(request)?;
    let jobs = args
        .jobs
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let view = if args.json {
        View::Json(Json::default())
    } else {
        // Bars would draw over the shell --debug opens.
        View::Terminal(Terminal::new(
            args.quiet,
            if args.debug && args.progress == ProgressMode::Auto {
                ProgressMode::Plain
            } else {
                args.progress
            },
        ))
    };
    let options = RunOptions {
        targets,
        jobs,
        fail_fast: args.fail_fast,
        grace: args.grace,
        force,
        no_cache: args.no_cache,
        stop: None,
        debug: args.debug,
        keep_failed: true,
    };
    let result = pipeline::run(
        &context.project,
        &gzlfile,
        &source,
        &options,
        view,
        &mut |line| super::note(&line),
    )?;
    Ok(match result.status {
        RunStatus::Passed => ExitCode::Success,
        RunStatus::Cancelled | RunStatus::Interrupted => ExitCode::Interrupted,
        RunStatus::Failed | RunStatus::Stopped | RunStatus::Running => ExitCode::Failure,
    })
}
