use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::Context;
use crate::duration::format_duration;
use crate::error::{Error, ExitCode};
use crate::history::{MEDIAN_SAMPLES, RunRecord, StageCounts, StageRecord, median};
use crate::pipeline;
use crate::status::{RunStatus, StageStatus};

#[derive(clap::Args)]
pub struct Args {
    /// How many runs to show
    #[arg(short = 'n', long, value_name = "N", default_value_t = 20)]
    limit: usize,

    /// Show runs of every repository, not only this one
    #[arg(short, long)]
    all_repos: bool,

    /// Print the runs as JSON (see docs/json.md)
    #[arg(long)]
    json: bool,
}

/// The version of `gzl ls --json`'s output.
const SCHEMA: u32 = 1;

pub fn run(context: &Context, args: &Args) -> Result<ExitCode, Error> {
    let history = pipeline::open_history_to_read()?;
    let project = &context.project;
    // Outside any repository or Gzlfile there is no "this repository": show them all.
    let located = project.repo.is_some() || project.gzlfile.is_file();
    let all = args.all_repos || !located;
    let identity = project.identity();
    let runs = history.runs((!all).then_some(identity.as_str()), args.limit)?;
    let stages = runs
        .iter()
        .map(|run| history.stages(run.id))
        .collect::<Result<Vec<_>, _>>()?;
    if args.json {
        let runs: Vec<serde_json::Value> = runs
            .iter()
            .zip(&stages)
            .map(|(run, stages)| {
                let mut value = json!(run);
                value["stages"] = stages.iter().map(stage_json).collect();
                value
            })
            .collect();
        super::print(&format!("{}\n", json!({ "schema": SCHEMA, "runs": runs })));
        return Ok(ExitCode::Success);
    }
    if runs.is_empty() {
        super::note(&format!(
            "no runs yet{}; `gzl run` starts one",
            if all { "" } else { " in this repository" }
        ));
        return Ok(ExitCode::Success);
    }
    let subject = |commit: &str| {
        project
            .repo
            .as_ref()
            .filter(|_| !all)
            .and_then(|repo| repo.subject(commit))
    };
    // Enough samples for the oldest run shown to have its own, from runs before it.
    let samples = if all {
        HashMap::new()
    } else {
        history.duration_samples(&identity, MEDIAN_SAMPLES.saturating_add(args.limit))?
    };
    super::print(&table(&runs, &stages, all, &subject, &samples));
    Ok(ExitCode::Success)
}

fn stage_json(stage: &StageRecord) -> serde_json::Value {
    json!({
        "name": stage.name,
        "status": stage.status,
        "exit_code": stage.exit_code,
        "duration_ms": stage.duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        "key": stage.key,
        "cached_from": stage.cached_from,
        "flaky": stage.flaky,
    })
}

/// Runs grouped by commit, groups in the order of their newest run: a header line with the
/// commit, its subject and branch, then a line per run.
fn table(
    runs: &[RunRecord],
    stages: &[Vec<StageRecord>],
    with_repo: bool,
    subject: &dyn Fn(&str) -> Option<String>,
    samples: &Samples,
) -> String {
    let now = SystemTime::now();
    let mut groups: Vec<(Option<&str>, &str, Vec<usize>)> = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        let key = (run.commit.as_deref(), run.repo.as_str());
        match groups.iter_mut().find(|(c, r, _)| (*c, *r) == key) {
            Some(group) => group.2.push(index),
            None => groups.push((key.0, key.1, vec![index])),
        }
    }
    let mut rows: Vec<(usize, Vec<String>)> = Vec::new();
    for (commit, repo, members) in &groups {
        let mut header = match commit {
            Some(commit) => {
                let short = &commit[..commit.len().min(8)];
                match subject(commit) {
                    Some(subject) => format!("{short}  {subject}"),
                    None => short.to_string(),
                }
            }
            None => "(no commit)".to_string(),
        };
        if let Some(branch) = members.iter().find_map(|&i| runs[i].branch.as_deref()) {
            let _ = write!(header, "  ({branch})");
        }
        if with_repo {
            let _ = write!(header, "  {repo}");
        }
        rows.push((usize::MAX, vec![header]));
        for &index in members {
            let run = &runs[index];
            let mut notes = Vec::new();
            let duration = match (run.status, run.finished_at) {
                // When its gzl died is not known: it ran at least until last seen.
                (RunStatus::Interrupted, noticed) => {
                    let seen = last_seen(run, &stages[index]);
                    let ago = |at: SystemTime| {
                        super::render::ago(now.duration_since(at).unwrap_or_default())
                    };
                    notes.push(match noticed.map(ago) {
                        Some(found) if found != ago(seen) => {
                            format!("gzl died: last seen {}, found dead {found}", ago(seen))
                        }
                        _ => format!("gzl died about {}", ago(seen)),
                    });
                    format!(
                        "≥{}",
                        format_duration(seen.duration_since(run.started_at).unwrap_or_default())
                    )
                }
                (_, end) => format_duration(
                    end.unwrap_or(now)
                        .duration_since(run.started_at)
                        .unwrap_or_default(),
                ),
            };
            let in_place = run.tree.is_none();
            match (in_place, run.dirty) {
                (true, true) => notes.push("in place, with changes".to_string()),
                (true, false) => notes.push("in place".to_string()),
                (false, true) => notes.push("snapshot of changes".to_string()),
                (false, false) => {}
            }
            let flaky: Vec<&str> = stages[index]
                .iter()
                .filter(|s| s.flaky)
                .map(|s| s.name.as_str())
                .collect();
            if !flaky.is_empty() {
                notes.push(format!("flaky: {}", flaky.join(", ")));
            }
            if let Some(note) = timing(run, &stages[index], samples, now) {
                notes.push(note);
            }
            rows.push((
                index,
                vec![
                    format!("  {}", run.id),
                    run.status.to_string(),
                    counts(&run.stage_counts),
                    duration,
                    super::render::ago(now.duration_since(run.started_at).unwrap_or_default()),
                    notes.join("; "),
                ],
            ));
        }
    }
    let columns = 6;
    let widths: Vec<usize> = (0..columns)
        .map(|column| {
            rows.iter()
                .filter(|(index, _)| *index != usize::MAX)
                .map(|(_, row)| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (index, row) in rows {
        if index == usize::MAX {
            out.push_str(&row[0]);
            out.push('\n');
            continue;
        }
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A stage's durations in passed executions, newest first, with their runs, by name.
type Samples = HashMap<String, Vec<(i64, Duration)>>;

/// How many earlier passed executions of each stage that counts a finished run is compared
/// with: fewer say little about what is usual (a first run, every run after an edit to the
/// Gzlfile's stage names).
const COMPARED_AFTER: usize = 5;

/// The last time an interrupted run was seen alive: its newest stage event, or its start.
fn last_seen(run: &RunRecord, stages: &[StageRecord]) -> SystemTime {
    stages
        .iter()
        .flat_map(|s| [s.started_at, s.finished_at])
        .flatten()
        .fold(run.started_at, SystemTime::max)
}

/// The usual duration of stage `name` as of run `run`: the median of its newest passed
/// executions in runs before it, when there are at least `at_least` of them.
fn usual(samples: &Samples, name: &str, run: i64, at_least: usize) -> Option<Duration> {
    let earlier: Vec<Duration> = samples
        .get(name)?
        .iter()
        .filter(|(id, _)| *id < run)
        .take(MEDIAN_SAMPLES)
        .map(|(_, d)| *d)
        .collect();
    if earlier.len() < at_least {
        return None;
    }
    median(earlier.into_iter())
}

/// For a running run, the time left; for a passed one, how its duration compares with the
/// usual. Both come from the stages' median durations in earlier runs along the graph's
/// longest path; nothing when a stage that counts has no median (a finished run: fewer than
/// [`COMPARED_AFTER`] samples).
fn timing(
    run: &RunRecord,
    stages: &[StageRecord],
    samples: &Samples,
    now: SystemTime,
) -> Option<String> {
    let running = run.status == RunStatus::Running;
    // A failed run stopped early, or ran what failed: passed runs' times are not its usual.
    if !running && run.status != RunStatus::Passed {
        return None;
    }
    let at_least = if running { 1 } else { COMPARED_AFTER };
    // The longest path through what is left (running) or what ran (finished).
    let mut finish: Vec<Duration> = Vec::with_capacity(stages.len());
    for stage in stages {
        let weight = match stage.status {
            StageStatus::Cached | StageStatus::Skipped => Duration::ZERO,
            _ if running && stage.status.is_final() => Duration::ZERO,
            StageStatus::Running if running => {
                let elapsed = stage
                    .started_at
                    .and_then(|at| now.duration_since(at).ok())
                    .unwrap_or_default();
                usual(samples, &stage.name, run.id, at_least)?.saturating_sub(elapsed)
            }
            _ => usual(samples, &stage.name, run.id, at_least)?,
        };
        let after = stages
            .iter()
            .zip(&finish)
            .filter(|(s, _)| stage.needs.contains(&s.name))
            .map(|(_, f)| *f)
            .max()
            .unwrap_or_default();
        finish.push(after + weight);
    }
    let expected = finish.into_iter().max().unwrap_or_default();
    if running {
        // Past what the medians say: no guess.
        return (!expected.is_zero()).then(|| format!("about {} left", format_duration(expected)));
    }
    let took = run.finished_at?.duration_since(run.started_at).ok()?;
    if expected.is_zero() {
        return None;
    }
    let ratio = took.as_secs_f64() / expected.as_secs_f64();
    (!(0.8..=1.25).contains(&ratio)).then(|| {
        format!(
            "{}% {} than usual ({})",
            ((ratio - 1.0).abs() * 100.0).round(),
            if ratio > 1.0 { "slower" } else { "faster" },
            format_duration(expected)
        )
    })
}

/// "3 passed, 2 cached, 1 failed" for a run's stages.
fn counts(counts: &StageCounts) -> String {
    let mut parts = Vec::new();
    for (n, label) in [
        (counts.passed, "passed"),
        (counts.cached, "cached"),
        (counts.failed + counts.timed_out, "failed"),
        (counts.skipped, "skipped"),
        (counts.cancelled, "cancelled"),
        (counts.stopped, "stopped"),
        (counts.interrupted, "interrupted"),
        (counts.running, "running"),
        (counts.pending, "pending"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {label}"));
        }
    }
    if parts.is_empty() {
        "no stages".to_string()
    } else {
        parts.join(", ")
    }
}
