use std::fmt::Write as _;

use serde_json::json;

use super::Context;
use crate::config::Clean;
use crate::error::{Error, ExitCode};
use crate::plan::Plan;
use crate::stagefile::escape_text;

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
                    "description": stage.description,
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
        out = listing(&plan);
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

/// One line per stage: its name, what it needs, and its description as a `# comment` in a
/// column of its own, as `just --list` shows recipes.
fn listing(plan: &Plan) -> String {
    let width = plan
        .nodes()
        .iter()
        .map(|n| n.stage.name.len())
        .max()
        .unwrap_or(0);
    let heads: Vec<String> = plan
        .nodes()
        .iter()
        .map(|node| {
            let stage = &node.stage;
            let mut head = format!("{:<width$}", stage.name);
            if !stage.needs.is_empty() {
                let _ = write!(head, "  needs {}", stage.needs.join(", "));
            }
            if stage.is_group() {
                head.push_str("  (group)");
            }
            head.trim_end().to_string()
        })
        .collect();
    // Names and needs are ASCII (the grammar says so), so bytes are columns.
    let column = heads.iter().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for (node, head) in plan.nodes().iter().zip(&heads) {
        let Some(description) = &node.stage.description else {
            let _ = writeln!(out, "{head}");
            continue;
        };
        for (at, text) in description.lines().enumerate() {
            let head = if at == 0 { head.as_str() } else { "" };
            // The Gzlfile's text: it must not drive the terminal.
            let line = format!("{head:<column$}  # {}", escape_text(text));
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out
}
