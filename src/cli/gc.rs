use super::Context;
use crate::error::{Error, ExitCode};
use crate::{gc, pipeline};

#[derive(clap::Args)]
pub struct Args {}

pub fn run(context: &Context, _args: &Args) -> Result<ExitCode, Error> {
    let mut history = pipeline::open_history()?;
    let report = gc::collect(&context.project, &mut history)?;
    let mut out = String::new();
    for (slot, reason) in &report.workspaces {
        out.push_str(&format!("removed workspace {slot}: {reason}\n"));
    }
    for pool in &report.orphaned_pools {
        out.push_str(&format!(
            "removed {}: its repository is gone\n",
            pool.display()
        ));
    }
    if report.busy > 0 {
        out.push_str(&format!(
            "left {} workspace{} in use by a running run\n",
            report.busy,
            if report.busy == 1 { "" } else { "s" }
        ));
    }
    out.push_str(&format!(
        "removed {} workspace{}, {} snapshot{}, the logs of {} run{}\n",
        report.workspaces.len(),
        plural(report.workspaces.len()),
        report.snapshots,
        plural(report.snapshots),
        report.logs,
        plural(report.logs),
    ));
    out.push_str(&format!(
        "let go {} artifact{}; removed {} object{} ({}) from the store\n",
        report.artifacts,
        plural(report.artifacts),
        report.objects.objects,
        plural(report.objects.objects),
        indicatif::DecimalBytes(report.objects.bytes),
    ));
    super::print(&out);
    Ok(ExitCode::Success)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
