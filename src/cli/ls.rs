use std::fmt::Write as _;
use std::time::SystemTime;

use serde_json::json;

use super::Context;
use crate::duration::format_duration;
use crate::error::{Error, ExitCode};
use crate::history::RunRecord;
use crate::pipeline;

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
    let history = pipeline::open_history()?;
    let project = &context.project;
    // Outside any repository or Gzlfile there is no "this repository": show them all.
    let located = project.repo.is_some() || project.gzlfile.is_file();
    let all = args.all_repos || !located;
    let identity = project.identity();
    let runs = history.runs((!all).then_some(identity.as_str()), args.limit)?;
    if args.json {
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
    super::print(&table(&runs, all));
    Ok(ExitCode::Success)
}

fn table(runs: &[RunRecord], with_repo: bool) -> String {
    let now = SystemTime::now();
    let mut rows: Vec<Vec<String>> = vec![
        [
            "ID", "COMMIT", "BRANCH", "STATUS", "STAGES", "STARTED", "DURATION",
        ]
        .iter()
        .map(|s| (*s).to_string())
        .collect(),
    ];
    if with_repo {
        rows[0].push("REPOSITORY".into());
    }
    for run in runs {
        let commit = match &run.commit {
            Some(commit) => format!(
                "{}{}",
                &commit[..commit.len().min(8)],
                if run.dirty { "+" } else { "" }
            ),
            None => "-".into(),
        };
        let counts = &run.stage_counts;
        let mut stages = format!("{}/{}", counts.passed, counts.total);
        let not_passed = counts.failed + counts.timed_out;
        if not_passed > 0 {
            let _ = write!(stages, " ({not_passed} failed)");
        }
        let end = run.finished_at.unwrap_or(now);
        let duration = end.duration_since(run.started_at).unwrap_or_default();
        let mut row = vec![
            run.id.to_string(),
            commit,
            run.branch.clone().unwrap_or_else(|| "-".into()),
            run.status.to_string(),
            stages,
            ago(now.duration_since(run.started_at).unwrap_or_default()),
            format_duration(duration),
        ];
        if with_repo {
            row.push(run.repo.clone());
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn ago(elapsed: std::time::Duration) -> String {
    let secs = elapsed.as_secs();
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}
