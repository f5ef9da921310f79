use super::Context;
use crate::error::{Error, ExitCode};
use crate::pipeline;
use crate::ui::{self, Action};

#[derive(clap::Args)]
pub struct Args {}

pub fn run(context: &Context, _args: &Args) -> Result<ExitCode, Error> {
    use std::io::IsTerminal as _;
    if !(std::io::stdin().is_terminal() && std::io::stdout().is_terminal()) {
        return Err(Error::usage(
            "gzl ui needs a terminal",
            Some("`gzl ls` and `gzl logs` show the same history as text".into()),
        ));
    }
    let mut history = pipeline::open_history()?;
    let identity = context.project.identity();
    let gzl = std::env::current_exe().map_err(|source| Error::Io {
        message: "cannot tell where the gzl program is".into(),
        source,
    })?;
    let repo = context.project.repo.as_ref();
    let subject = |commit: &str| repo.and_then(|r| r.subject(commit));
    let root = context.project.root.clone();
    // Each action is gzl's own command, run as a child with the terminal.
    let mut act = |action: &Action| -> String {
        let mut command = std::process::Command::new(&gzl);
        command.current_dir(&root);
        let what = match action {
            Action::Stop { run } => {
                // Not on the terminal: the footer says how it went.
                let output = command
                    .args(["stop", &run.to_string()])
                    .stdin(std::process::Stdio::null())
                    .output();
                return match output {
                    Ok(output) if output.status.success() => format!("stop run {run}: done"),
                    Ok(output) => {
                        let said = String::from_utf8_lossy(&output.stderr);
                        let line = said.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                        format!("stop run {run}: {}", line.trim_start_matches("error: "))
                    }
                    Err(error) => format!("stop run {run}: {error}"),
                };
            }
            Action::Debug { run, stage } => {
                command.args(["debug", &run.to_string(), stage]);
                format!("debug {stage} of run {run}")
            }
            Action::Rerun { commit } => {
                // In the background, in a process group of its own so that closing the
                // terminal does not stop it: the UI shows it as it runs.
                let args = ["run", "--at", commit, "--quiet"].map(String::from);
                return match crate::hooks::start_detached(&gzl, &root, &args) {
                    Ok(_) => format!("started a run of {}", &commit[..commit.len().min(10)]),
                    Err(error) => format!("cannot start a run: {error}"),
                };
            }
            Action::Quit => return String::new(),
        };
        match command.status() {
            Ok(status) if status.success() => format!("{what}: done"),
            Ok(status) => format!("{what}: {status}"),
            Err(error) => format!("{what}: {error}"),
        }
    };
    ui::run(&mut history, &identity, &subject, &mut act)?;
    Ok(ExitCode::Success)
}
