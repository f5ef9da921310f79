use std::path::PathBuf;

use super::Context;
use crate::artifacts;
use crate::error::{Error, ExitCode};
use crate::pipeline;
use crate::store::Store;

#[derive(clap::Args)]
pub struct Args {
    /// A run id, `last`, or a commit-ish (its newest run)
    run: String,

    /// Only this stage's artifacts
    stage: Option<String>,

    /// Write the artifacts into DIR, each at its path, instead of listing them
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// List them as one JSON object (docs/json.md)
    #[arg(long, conflicts_with = "out")]
    json: bool,
}

/// The version of `gzl artifacts --json`.
const SCHEMA: u32 = 1;

pub fn run(context: &Context, args: &Args) -> Result<ExitCode, Error> {
    let history = pipeline::open_history()?;
    let run = super::logs::find_run(context, &history, &args.run)?;
    let stage = args.stage.as_deref();
    if let Some(out) = &args.out {
        let store = Store::of(history.home());
        let exported = artifacts::export(&history, &store, run.id, stage, out)?;
        for artifact in &exported {
            super::note(&format!(
                "wrote {} ({})",
                out.join(&artifact.path).display(),
                files_and_size(artifact.files, artifact.size)
            ));
        }
        if exported.is_empty() {
            super::note(&format!("run {} has no artifacts to write", run.id));
        }
        return Ok(ExitCode::Success);
    }
    let listed = artifacts::list(&history, run.id, stage)?;
    if args.json {
        let artifacts: Vec<serde_json::Value> = listed
            .iter()
            .map(|a| {
                serde_json::json!({
                    "stage": a.stage,
                    "path": a.path,
                    "files": a.files,
                    "size": a.size,
                    "digest": a.digest,
                    "stored_in": a.stored_in,
                    "removed": a.removed,
                })
            })
            .collect();
        let object = serde_json::json!({ "schema": SCHEMA, "run": run.id, "artifacts": artifacts });
        super::print(&format!("{object}\n"));
        return Ok(ExitCode::Success);
    }
    if listed.is_empty() {
        super::note(&format!("run {} stored no artifacts", run.id));
        return Ok(ExitCode::Success);
    }
    let rows: Vec<[String; 5]> = listed
        .iter()
        .map(|a| {
            [
                a.stage.clone(),
                a.path.clone(),
                a.files.to_string(),
                indicatif::DecimalBytes(a.size).to_string(),
                if a.removed {
                    "(removed by gc)".to_string()
                } else {
                    a.digest.chars().take(12).collect()
                },
            ]
        })
        .collect();
    let header = ["STAGE", "PATH", "FILES", "SIZE", "DIGEST"].map(str::to_string);
    let widths: Vec<usize> = (0..5)
        .map(|column| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    super::print(&out);
    Ok(ExitCode::Success)
}

/// `3 files, 1.2 MB`.
pub(super) fn files_and_size(files: u64, size: u64) -> String {
    format!(
        "{files} file{}, {}",
        if files == 1 { "" } else { "s" },
        indicatif::DecimalBytes(size)
    )
}
