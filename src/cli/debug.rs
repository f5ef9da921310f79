use std::path::PathBuf;

use super::Context;
use super::logs::{find_run, find_stage};
use crate::debug;
use crate::error::{Error, ExitCode};
use crate::pipeline;

#[derive(clap::Args)]
pub struct Args {
    /// A run id, `last`, or a commit-ish (its newest run)
    run: String,

    /// The stage whose place and environment to open
    stage: String,

    /// Print the stage's environment (what gzl added to it) instead of opening a shell
    #[arg(long)]
    print_env: bool,

    /// The shell to open [default: $SHELL, else /bin/sh]
    #[arg(long, value_name = "PROGRAM")]
    shell: Option<PathBuf>,
}

pub fn run(context: &Context, args: &Args) -> Result<ExitCode, Error> {
    let history = pipeline::open_history()?;
    let run = find_run(context, &history, &args.run)?;
    let stages = history.stages(run.id)?;
    let stage = find_stage(&run, &stages, &args.stage)?;
    let session = debug::session(&context.project, &history, &run, stage)?;
    if args.print_env {
        let mut out = String::new();
        for (key, value) in &session.env {
            out.push_str(&format!("{key}={value}\n"));
        }
        super::print(&out);
        return Ok(ExitCode::Success);
    }
    let shell = args
        .shell
        .clone()
        .or_else(|| {
            std::env::var_os("SHELL")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("/bin/sh"));
    super::note(&format!(
        "gzl debug: run {}, stage `{}` ({}), in {}",
        run.id,
        stage.name,
        stage.status,
        session.cwd.display()
    ));
    if session.rebuilt {
        super::note(
            "gzl debug: the run's workspace is gone or used since; this is its source state checked out again, without what the stages left",
        );
    }
    super::note("gzl debug: exit the shell to leave");
    // The shell sees the stage's secrets again; --print-env shows them masked.
    let env = crate::secrets::unmask(history.home(), &session.env);
    let passed = debug::open_shell(&shell, &session.cwd, &env).map_err(|source| Error::Io {
        message: format!("cannot start the shell {}", shell.display()),
        source,
    })?;
    drop(session);
    Ok(if passed {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}
