use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use indicatif::BinaryBytes;

use super::Context;
use crate::error::{Error, ExitCode};
use crate::{gc, pipeline};

#[derive(clap::Args)]
pub struct Args {
    /// Change nothing: list the workspaces with the disk each takes, and what gc would remove
    #[arg(long, short = 'n')]
    dry_run: bool,
}

pub fn run(context: &Context, args: &Args) -> Result<ExitCode, Error> {
    // A dry run reads history as `gzl ls` does.
    let mut history = if args.dry_run {
        pipeline::open_history_to_read()?
    } else {
        pipeline::open_history()?
    };
    let report = gc::collect(&context.project, &mut history, args.dry_run)?;
    let (removed, did) = if report.dry_run {
        ("would remove", "would let go")
    } else {
        ("removed", "let go")
    };
    let mut out = String::new();
    if report.dry_run {
        out.push_str(&pool_table(&report));
    }
    for (slot, reason) in &report.workspaces {
        let bytes = report
            .pool
            .iter()
            .find(|w| w.slot == *slot)
            .map_or(0, |w| w.bytes);
        let _ = writeln!(
            out,
            "{removed} workspace {slot} ({}): {reason}",
            BinaryBytes(bytes)
        );
    }
    for (pool, bytes) in &report.orphaned_pools {
        let _ = writeln!(
            out,
            "{removed} {} ({}): its repository is gone",
            pool.display(),
            BinaryBytes(*bytes)
        );
    }
    if report.busy > 0 {
        let _ = writeln!(
            out,
            "left {} workspace{} in use by a running run",
            report.busy,
            plural(report.busy)
        );
    }
    let _ = writeln!(
        out,
        "{removed} {} workspace{}, {} snapshot{}, the logs of {} run{}",
        report.workspaces.len(),
        plural(report.workspaces.len()),
        report.snapshots,
        plural(report.snapshots),
        report.logs,
        plural(report.logs),
    );
    if report.dry_run {
        let _ = writeln!(
            out,
            "artifacts and stored objects are not counted by --dry-run"
        );
    } else {
        let _ = writeln!(
            out,
            "{did} {} artifact{}; removed {} object{} ({}) from the store",
            report.artifacts,
            plural(report.artifacts),
            report.objects.objects,
            plural(report.objects.objects),
            indicatif::DecimalBytes(report.objects.bytes),
        );
        if !report.pool.is_empty() {
            let _ = writeln!(out, "{}", pool_total(&report));
        }
    }
    super::print(&out);
    Ok(ExitCode::Success)
}

/// `workspaces: 3 taking 6.30 GiB (pool 4, max_size 20 GiB)`, after what gc removed.
fn pool_total(report: &gc::Report) -> String {
    let left: Vec<_> = report
        .pool
        .iter()
        .filter(|w| report.dry_run || w.removed.is_none())
        .collect();
    let bytes: u64 = left.iter().map(|w| w.bytes).sum();
    let mut line = format!("workspaces: {} taking {}", left.len(), BinaryBytes(bytes));
    if let Some(max) = report.max_size {
        let _ = write!(line, " (max_size {})", BinaryBytes(max));
    }
    line
}

/// Every workspace of the pool: its slot, the disk it takes, its state, and what gc would do.
fn pool_table(report: &gc::Report) -> String {
    let mut out = format!("{}\n", pool_total(report));
    let now = SystemTime::now();
    let sizes: Vec<String> = report
        .pool
        .iter()
        .map(|w| BinaryBytes(w.bytes).to_string())
        .collect();
    let width = sizes.iter().map(String::len).max().unwrap_or(0);
    for (workspace, size) in report.pool.iter().zip(&sizes) {
        let used = SystemTime::UNIX_EPOCH
            + Duration::from_millis(u64::try_from(workspace.used_at).unwrap_or(0));
        let ago = now
            .duration_since(used)
            .map_or_else(|_| "just now".to_string(), super::render::ago);
        let run = workspace
            .run
            .map_or_else(String::new, |run| format!(" by run {run}"));
        let state = if workspace.leased {
            "in use".to_string()
        } else if workspace.kept {
            format!("kept from a failed run, used {ago}{run}")
        } else {
            format!("free, used {ago}{run}")
        };
        let _ = writeln!(out, "  {:>3}  {size:>width$}  {state}", workspace.slot);
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
