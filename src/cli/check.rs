use std::fmt::Write as _;

use serde_json::json;

use super::Context;
use crate::config::Clean;
use crate::error::{Error, ExitCode};
use crate::plan::Plan;

#[derive(clap::Args)]
pub struct Args {
    /// Print the stages as JSON (see docs/json.md)
    #[arg(long, conflicts_with = "dot")]
    json: bool,

    /// Print the stage graph in Graphviz's dot language
    #[arg(long)]
    dot: bool,
}

/// The version of `gzl check --json`'s output.
const SCHEMA: u32 = 1;

pub fn run(context: &Context, args: &Args) -> Result<ExitCode, Error> {
    let gzlfile = context.load()?;
    let plan = Plan::new(&gzlfile, &[])?;
    let mut out = String::new();
    if args.json {
        let stages: Vec<_> = plan
            .nodes()
            .iter()
            .map(|node| {
                let stage = &node.stage;
                let a = &stage.attributes;
                json!({
                    "name": stage.name,
                    "needs": stage.needs,
                    "line": stage.line,
                    "group": stage.is_group(),
                    "timeout_ms": a.timeout.map(|d| d.as_millis() as u64),
                    "idle_timeout_ms": a.idle_timeout.map(|d| d.as_millis() as u64),
                    "env": a.env.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                    "shell": a.shell,
                    "dir": a.dir,
                    "when": a.when,
                    "outputs": a.outputs,
                    "clean": a.clean.map(|c| if c == Clean::All { "all" } else { "untracked" }),
                })
            })
            .collect();
        let value = json!({ "schema": SCHEMA, "gzlfile": gzlfile.path, "stages": stages });
        out = format!("{value}\n");
    } else if args.dot {
        out.push_str("digraph gzl {\n  rankdir=LR;\n");
        for node in plan.nodes() {
            let _ = writeln!(out, "  \"{}\";", node.stage.name);
            for need in &node.stage.needs {
                let _ = writeln!(out, "  \"{need}\" -> \"{}\";", node.stage.name);
            }
        }
        out.push_str("}\n");
    } else {
        let width = plan
            .nodes()
            .iter()
            .map(|n| n.stage.name.len())
            .max()
            .unwrap_or(0);
        for node in plan.nodes() {
            let stage = &node.stage;
            let mut line = format!("{:<width$}", stage.name);
            if !stage.needs.is_empty() {
                let _ = write!(line, "  needs {}", stage.needs.join(", "));
            }
            if stage.is_group() {
                line.push_str("  (group)");
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        super::note(&format!(
            "{}: {} stage{}, valid",
            context.project.display_path(),
            plan.len(),
            if plan.len() == 1 { "" } else { "s" }
        ));
    }
    super::print(&out);
    Ok(ExitCode::Success)
}
