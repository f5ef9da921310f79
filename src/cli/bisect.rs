use std::time::Duration;

use serde_json::json;

use super::Context;
use crate::bisect::{self, Options, Probe, Progress, Verdict};
use crate::duration::format_duration;
use crate::error::{Error, ExitCode};
use crate::status::StageStatus;

#[derive(clap::Args)]
pub struct Args {
    /// The stage to bisect: the first commit where it fails is wanted
    stage: String,

    /// A commit where the stage passes [default: the newest ancestor of --bad where it passed in history]
    #[arg(long, value_name = "REV")]
    good: Option<String>,

    /// A commit where the stage fails [default: HEAD]
    #[arg(long, value_name = "REV")]
    bad: Option<String>,

    /// Follow only the first parent of merges
    #[arg(long)]
    first_parent: bool,

    /// Probe N commits at once, splitting what is in question into N+1 parts
    #[arg(short, long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,

    /// Run again commits history says failed, instead of trusting those results
    #[arg(long)]
    recheck_failures: bool,

    /// Treat a probe whose failure stays suspicious after a re-run as untestable (skip)
    #[arg(long)]
    strict: bool,

    /// Time stopped stages get between SIGTERM and SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::run::parse_duration)]
    grace: Duration,

    /// Print the result as JSON (see docs/json.md)
    #[arg(long)]
    json: bool,
}

/// The version of `gzl bisect --json`'s output.
const SCHEMA: u32 = 1;

pub fn run(context: &Context, args: &Args) -> Result<ExitCode, Error> {
    let Some(repo) = &context.project.repo else {
        return Err(Error::usage("gzl bisect needs a git repository", None));
    };
    if context.project.explicit_file() {
        return Err(Error::usage(
            "gzl bisect runs the Gzlfile of each commit; it cannot be combined with --file",
            None,
        ));
    }
    let options = Options {
        stage: args.stage.clone(),
        good: args.good.clone(),
        bad: args.bad.clone(),
        first_parent: args.first_parent,
        jobs: std::thread::available_parallelism().map_or(1, usize::from),
        parallel: usize::from(args.jobs),
        grace: args.grace,
        recheck_failures: args.recheck_failures,
        strict: args.strict,
    };
    let short = |commit: &str| commit[..commit.len().min(10)].to_string();
    let quiet = args.json;
    let result = bisect::bisect(&context.project, repo, &options, &mut |progress| {
        if quiet {
            return;
        }
        match progress {
            Progress::Probing(commit) => {
                let subject = repo.subject(commit).unwrap_or_default();
                super::note(&format!("probing {}  {subject}", short(commit)));
            }
            Progress::Decided(probe) => {
                let verdict = match probe.verdict {
                    Verdict::Good => "good",
                    Verdict::Bad => "bad",
                    Verdict::Skip => "skip",
                };
                let how = match (probe.ran, probe.run) {
                    (true, _) => "ran",
                    (false, Some(_)) => "reused",
                    (false, None) => "-",
                };
                let took = probe.duration.map(format_duration).unwrap_or_default();
                let mut line = format!(
                    "  {}  {verdict:<4}  {how:<6}  {took:>7}",
                    short(&probe.commit)
                );
                if let Some(run) = probe.run {
                    line.push_str(&format!("  run {run}"));
                }
                if let Some(reason) = &probe.reason {
                    line.push_str(&format!("  ({reason})"));
                }
                super::note(line.trim_end());
                if let Some(suspicious) = &probe.suspicious {
                    super::note(&format!("    suspicious: {suspicious}"));
                }
            }
        }
    })?;
    let executed = result.probes.iter().filter(|p| p.ran).count();
    let reused = result
        .probes
        .iter()
        .filter(|p| !p.ran && p.run.is_some())
        .count();
    if args.json {
        super::print(&format!(
            "{}\n",
            json!({
                "schema": SCHEMA,
                "stage": args.stage,
                "first_bad": result.first_bad,
                "last_good": result.last_good,
                "candidates": result.candidates,
                "probes": result.probes,
            })
        ));
    } else {
        let mut out = String::new();
        match &result.first_bad {
            Some(bad) => {
                let (subject, author, date) = repo.commit_summary(bad)?;
                out.push_str(&format!(
                    "first bad commit: {bad}\n  {subject}\n  author: {author}\n  date:   {date}\n"
                ));
                out.push_str(&format!("last good commit: {}\n", result.last_good));
                let failing = result
                    .probes
                    .iter()
                    .find(|p| p.commit == *bad && p.verdict == Verdict::Bad)
                    .and_then(|p| p.run);
                if let Some(run) = failing {
                    // The stage that failed: the one asked for, or one it needs.
                    let history = crate::pipeline::open_history()?;
                    let stage = history
                        .stages(run)?
                        .into_iter()
                        .find(|s| matches!(s.status, StageStatus::Failed | StageStatus::TimedOut))
                        .map_or_else(|| args.stage.clone(), |s| s.name);
                    out.push_str(&format!("see its log: gzl logs {run} {stage}\n"));
                    match &result.debug {
                        Some((probe, Some(_))) if *probe == run => out.push_str(&format!(
                            "workspace of {} kept for gzl debug: gzl debug {run} {stage}\n",
                            short(bad)
                        )),
                        Some((probe, None)) if *probe == run => out.push_str(&format!(
                            "its workspace went on to later probes: gzl debug {run} {stage} checks {} out again\n",
                            short(bad)
                        )),
                        _ => {}
                    }
                }
            }
            None => {
                out.push_str(
                    "the first bad commit is one of these (the others could not be tested):\n",
                );
                for commit in &result.candidates {
                    let subject = repo.subject(commit).unwrap_or_default();
                    out.push_str(&format!("  {}  {subject}\n", short(commit)));
                }
            }
        }
        out.push_str(&format!(
            "{} probes: {executed} ran, {reused} from history\n",
            result.probes.len(),
        ));
        // Every verdict the answer rests on, and whether a run said it or history did.
        for probe in &result.probes {
            out.push_str(&format!("  {}\n", summary(probe)));
        }
        super::print(&out);
    }
    Ok(if result.first_bad.is_some() {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

/// A probe in the final answer: its commit, verdict, and how it was decided, as
/// `1234abcd56  bad   ran in 1.2s (run 5)` or `…  good  inferred from run 3`.
fn summary(probe: &Probe) -> String {
    let verdict = match probe.verdict {
        Verdict::Good => "good",
        Verdict::Bad => "bad",
        Verdict::Skip => "skip",
    };
    let how = match (probe.ran, probe.run, probe.duration) {
        (true, Some(run), Some(took)) => format!("ran in {} (run {run})", format_duration(took)),
        (true, Some(run), None) => format!("ran (run {run})"),
        (true, None, _) => "ran".to_string(),
        (false, Some(run), _) => format!("inferred from run {run}"),
        (false, None, _) => "not run".to_string(),
    };
    let commit = &probe.commit[..probe.commit.len().min(10)];
    let mut line = format!("{commit}  {verdict:<4}  {how}");
    if let Some(reason) = &probe.reason {
        line.push_str(&format!(": {reason}"));
    }
    if let Some(suspicious) = &probe.suspicious {
        line.push_str(&format!("\n    suspicious: {suspicious}"));
    }
    line
}
