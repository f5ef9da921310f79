use std::time::Duration;

use super::Context;
use crate::duration::format_duration;
use crate::error::{Error, ExitCode};
use crate::status::RunStatus;
use crate::style::Style;
use crate::watch::{self, Options, Report};

#[derive(clap::Args)]
pub struct Args {
    /// Stages to run for each commit, each with everything it needs [default: every stage]
    #[arg(value_name = "STAGE")]
    stages: Vec<String>,

    /// Watch the branches matching this glob (repeatable) [default: the checked-out branch]
    #[arg(long, value_name = "PATTERN")]
    branch: Vec<String>,

    /// Watch every branch
    #[arg(long, conflicts_with = "branch")]
    all_branches: bool,

    /// Run each new commit, not only the newest pending one of a branch
    #[arg(long)]
    every_commit: bool,

    /// Watch the working tree instead: run its snapshot after every saved change, stopping
    /// a run the change makes stale
    #[arg(long, conflicts_with_all = ["branch", "all_branches", "every_commit"])]
    worktree: bool,

    /// How many stages may run at once [default: the number of CPUs]
    #[arg(short, long, value_name = "N", env = "GZL_JOBS", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,

    /// Time stopped stages get between SIGTERM and SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::run::parse_duration)]
    grace: Duration,
}

pub fn run(context: &Context, args: &Args) -> Result<ExitCode, Error> {
    let Some(repo) = &context.project.repo else {
        return Err(Error::usage("gzl watch needs a git repository", None));
    };
    if args.worktree {
        repo.needs_worktree("--worktree")?;
    }
    if context.project.explicit_file() && !args.worktree {
        return Err(Error::usage(
            "gzl watch runs the Gzlfile of each commit; --file goes only with --worktree",
            None,
        ));
    }
    let options = Options {
        stages: args.stages.clone(),
        branches: args.branch.clone(),
        all_branches: args.all_branches,
        every_commit: args.every_commit,
        jobs: args
            .jobs
            .map(usize::from)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
        grace: args.grace,
    };
    let style = Style::for_stderr();
    let watched = if args.worktree {
        "the working tree".to_string()
    } else if args.all_branches {
        "every branch".to_string()
    } else if args.branch.is_empty() {
        "the checked-out branch".to_string()
    } else {
        format!("branches {}", args.branch.join(", "))
    };
    super::note(&format!("gzl: watching {watched}; Ctrl-C stops"));
    let short = |commit: &str| commit[..commit.len().min(10)].to_string();
    let mut report = |report: Report<'_>| match report {
        Report::Started { commit, branch } => {
            let subject = repo
                .subject(commit)
                .map(|s| format!("  {s}"))
                .unwrap_or_default();
            super::note(&format!(
                "{} {}{subject}  ({branch})",
                style.bold("run"),
                short(commit)
            ));
        }
        Report::Finished {
            commit,
            run,
            status,
            duration,
            error,
            ..
        } => {
            let code = if status == RunStatus::Passed {
                "32"
            } else {
                "1;31"
            };
            let mut line = format!(
                "  {} {}  {}",
                style.paint(code, status.as_str()),
                short(commit),
                format_duration(duration)
            );
            if let Some(run) = run {
                line.push_str(&format!("  run {run}"));
                if status == RunStatus::Failed && error.is_none() {
                    line.push_str(&format!("  (gzl logs {run})"));
                }
            }
            if let Some(error) = error {
                line.push_str(&format!("  {error}"));
            }
            super::note(&line);
        }
        Report::Note(line) => super::note(&line),
    };
    let status = if args.worktree {
        watch::watch_worktree(&context.project, repo, &options, &mut report)?
    } else {
        watch::watch(&context.project, repo, &options, &mut report)?
    };
    Ok(match status {
        RunStatus::Cancelled | RunStatus::Interrupted => ExitCode::Interrupted,
        _ => ExitCode::Success,
    })
}
