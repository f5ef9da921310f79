//! The command line: clap types, one file per command, and how errors are shown.
//! Commands parse their arguments and call the library; they hold no behaviour of their own.

mod artifacts;
mod attach;
mod bisect;
mod cache;
mod check;
mod complete;
mod debug;
mod gc;
mod hook;
mod init;
mod logs;
mod ls;
mod man;
mod obj_get;
mod obj_store;
mod pin;
mod render;
mod run;
mod secret;
mod self_update;
mod stop;
mod ui;
mod watch;
mod why;

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::error::{Error, ExitCode};
use crate::project::{Project, Source, SourceRequest};
use crate::stagefile::{Gzlfile, StagefileError};

/// gzl runs a repository's pipeline (its Gzlfile) on your machine the way a CI server would,
/// and remembers every run.
#[derive(Parser)]
#[command(name = "gzl", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Act as if gzl was started in DIR
    #[arg(short = 'C', value_name = "DIR", global = true)]
    directory: Option<PathBuf>,

    /// Use this Gzlfile instead of the one at the repository root
    #[arg(long, value_name = "PATH", global = true, env = "GZL_FILE")]
    file: Option<PathBuf>,

    /// Show what gzl itself does on stderr (-vv for more); GZL_LOG takes a full filter
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    /// Run this gzl even where gzl.toml pins another version (one warning line)
    #[arg(long, global = true, env = "GZL_NO_PIN", value_parser = clap::builder::FalseyValueParser::new())]
    no_pin: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline, or the named stages and everything they need
    Run(run::Args),
    /// Check the Gzlfile and show its stages in the order they can run
    Check(check::Args),
    /// List recent runs, newest first
    Ls(ls::Args),
    /// Show what a run's stages printed
    Logs(logs::Args),
    /// Say why a stage would run, or which run's result it would reuse
    Why(why::Args),
    /// Open a shell where a stage ran, as it left it, with its environment
    Debug(debug::Args),
    /// Stop a running run, or one stage of it, from any terminal
    Stop(stop::Args),
    /// Watch a run another gzl runs, live, from its start
    Attach(attach::Args),
    /// A full-screen view of this repository's runs, stages and logs, live
    Ui(ui::Args),
    /// In a stage: store files or directories for the stages after it
    ObjStore(obj_store::Args),
    /// In a stage: restore files or directories a stage it needs stored
    ObjGet(obj_get::Args),
    /// List a run's artifacts, or write them into a directory
    Artifacts(artifacts::Args),
    /// Manage the secrets stages ask for with `@secret NAME`
    #[command(subcommand)]
    Secret(secret::Command),
    /// Pin the gzl version this repository is written for (gzl.toml [gzl])
    Pin(pin::PinArgs),
    /// This gzl's version, the repository's pin, and which gzl serves it
    Version,
    /// Update this gzl to the newest release on its channel, or to VERSION
    SelfUpdate(self_update::Args),
    /// The gzl binaries kept for pinned repositories
    #[command(subcommand)]
    Cache(cache::Command),
    /// Remove old workspaces, snapshots and logs, as gzl.toml's retention says
    Gc(gc::Args),
    /// Find the first commit where a stage fails, reusing known results
    Bisect(bisect::Args),
    /// Run every new commit on the watched branches, as they come
    Watch(watch::Args),
    /// Run gzl from git hooks: after each commit, or before a push
    #[command(subcommand)]
    Hook(hook::Command),
    /// Write a Gzlfile for this project from a template
    Init(init::Args),
    /// Print gzl's manual page, or write a page for every command into a directory
    Man(man::Args),
    /// Print the script that makes a shell complete gzl's commands, stages and runs
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
    },
}

/// Parses the command line, runs the command, and turns the result into an exit code.
pub fn main() -> std::process::ExitCode {
    // A shell asking for completions (`COMPLETE=bash gzl -- gzl run te`) gets them and nothing
    // else: no pin hand-over, no history.
    complete::complete_if_asked();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // The pinned gzl may know arguments this one does not (a newer command, say), and
            // its help is the one that applies here: hand over before refusing or helping.
            hand_over_unparsed();
            error.exit()
        }
    };
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Completions { shell } => complete::registration(shell).map(|script| {
            print(&script);
            ExitCode::Success
        }),
        Command::Man(args) => man::run(cli.directory.as_deref(), &args),
        // Stage commands need no project: they talk to the runner, whose version they
        // negotiate over the job API.
        Command::ObjStore(args) => obj_store::run(cli.directory.as_deref(), &args),
        Command::ObjGet(args) => obj_get::run(cli.directory.as_deref(), &args),
        command => match Context::new(cli.directory, cli.file) {
            // Commands about the pin itself run in any gzl; the rest in the pinned one.
            Ok(context)
                if !matches!(
                    command,
                    Command::Pin(_)
                        | Command::Version
                        | Command::SelfUpdate(_)
                        | Command::Cache(_)
                        | Command::Secret(_)
                ) && let Err(error) =
                    pin::obey(&context, cli.no_pin, pin::reads_only(&command)) =>
            {
                Err(error)
            }
            Ok(context) => match command {
                Command::Pin(args) => pin::pin(&context, &args),
                Command::Version => pin::version(&context),
                Command::SelfUpdate(args) => self_update::run(&args),
                Command::Cache(command) => cache::run(&context, &command),
                Command::Run(args) => run::run(&context, args),
                Command::Check(args) => check::run(&context, &args),
                Command::Ls(args) => ls::run(&context, &args),
                Command::Logs(args) => logs::run(&context, &args),
                Command::Why(args) => why::run(&context, &args),
                Command::Debug(args) => debug::run(&context, &args),
                Command::Stop(args) => stop::run(&context, &args),
                Command::Attach(args) => attach::run(&context, &args),
                Command::Ui(args) => ui::run(&context, &args),
                Command::Secret(command) => secret::run(&command),
                Command::Gc(args) => gc::run(&context, &args),
                Command::Artifacts(args) => artifacts::run(&context, &args),
                Command::Bisect(args) => bisect::run(&context, &args),
                Command::Hook(command) => hook::run(&context, &command),
                Command::Watch(args) => watch::run(&context, &args),
                Command::Init(args) => init::run(&context, &args),
                Command::Completions { .. }
                | Command::Man(_)
                | Command::ObjStore(_)
                | Command::ObjGet(_) => {
                    unreachable!("handled above")
                }
            },
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(code) => code.into(),
        Err(error) => {
            render::error(&error);
            error.exit_code().into()
        }
    }
}

/// Hands over to the gzl the repository pins, for a command line this gzl cannot parse; returns
/// when this gzl is the one, or when the pinned one cannot be had.
fn hand_over_unparsed() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let directory =
        arguments
            .iter()
            .enumerate()
            .find_map(|(at, argument)| match argument.strip_prefix("-C") {
                Some("") => arguments.get(at + 1).cloned(),
                Some(dir) => Some(dir.to_string()),
                None => None,
            });
    let no_pin = arguments.iter().any(|argument| argument == "--no-pin")
        || std::env::var_os("GZL_NO_PIN").is_some_and(|value| !value.is_empty() && value != "0");
    if let Ok(context) = Context::new(directory.map(PathBuf::from), None) {
        let _ = pin::obey(&context, no_pin, None);
    }
}

/// What every command starts from.
pub struct Context {
    pub project: Project,
}

impl Context {
    fn new(directory: Option<PathBuf>, file: Option<PathBuf>) -> Result<Self, Error> {
        let cwd = std::env::current_dir().map_err(|source| Error::Io {
            message: "cannot read the current directory".into(),
            source,
        })?;
        let dir = match directory {
            Some(dir) => {
                let dir = cwd.join(dir);
                if !dir.is_dir() {
                    return Err(Error::usage(
                        format!("-C {}: no such directory", dir.display()),
                        None,
                    ));
                }
                dir
            }
            None => cwd,
        };
        let project = Project::discover(&dir, file.as_deref())?;
        tracing::debug!(root = %project.root.display(), gzlfile = %project.gzlfile.display(), git = project.repo.is_some(), "project");
        Ok(Context { project })
    }

    /// The source a run asks for, and the Gzlfile that goes with it: the working tree's,
    /// or for a commit, the one the commit holds.
    pub fn load_source(&self, request: SourceRequest<'_>) -> Result<(Source, Gzlfile), Error> {
        let SourceRequest::At(rev) = request else {
            let gzlfile = self.load()?;
            return Ok((self.project.source(request)?, gzlfile));
        };
        if self.project.explicit_file() {
            return Err(Error::usage(
                format!(
                    "--at {rev} runs the Gzlfile of that commit; it cannot be combined with --file"
                ),
                Some("drop --file, or run the working tree with --file".into()),
            ));
        }
        if self.project.repo.is_none() {
            return Err(Error::usage(
                format!(
                    "--at {rev}: {} is not in a git repository",
                    self.project.root.display()
                ),
                Some("--at runs a commit; without git, run the working tree".into()),
            ));
        }
        let source = self.project.source(request)?;
        let Source::Isolated(state) = &source else {
            unreachable!("a commit is always captured");
        };
        let gzlfile = self
            .project
            .load_at(state, rev)
            .map_err(|error| match error {
                StagefileError::NotFound { searched } => Error::usage(
                    format!(
                        "{} does not exist: commit {rev} has no Gzlfile",
                        searched.display()
                    ),
                    Some("run a commit that has one, or add one".into()),
                ),
                error => error.into(),
            })?;
        Ok((source, gzlfile))
    }

    /// Reads and checks the project's Gzlfile.
    pub fn load(&self) -> Result<Gzlfile, Error> {
        self.project.load().map_err(|error| match error {
            StagefileError::NotFound { .. } => Error::usage(
                format!("no Gzlfile found {}", self.project.searched()),
                Some(
                    match self.project.repo.as_ref().is_some_and(|r| r.is_bare()) {
                        true => "push a commit that has one, or pass `--file PATH`".into(),
                        false => {
                            "run `gzl init` to write one for this project, or pass `--file PATH`"
                                .into()
                        }
                    },
                ),
            ),
            error => error.into(),
        })
    }
}

/// The directory gzl was started in, or `-C DIR` from there.
fn current_dir(directory: Option<&std::path::Path>) -> Result<PathBuf, Error> {
    let cwd = std::env::current_dir().map_err(|source| Error::Io {
        message: "cannot read the current directory".into(),
        source,
    })?;
    Ok(directory.map_or_else(|| cwd.clone(), |dir| cwd.join(dir)))
}

/// Writes a line for people to stderr. A closed stderr is no reason to fail (or panic, as
/// `eprintln!` does).
fn note(line: &str) {
    note_raw(&format!("{line}\n"));
}

fn note_raw(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Writes a command's output to stdout; a closed pipe (`gzl ls | head`) is not an error.
fn print(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn init_tracing(verbose: u8) {
    let filter = match std::env::var("GZL_LOG") {
        Ok(filter) if !filter.is_empty() => filter,
        _ => match verbose {
            0 => "warn".to_string(),
            1 => "gzl=debug".to_string(),
            _ => "gzl=trace".to_string(),
        },
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(|| QuietStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Diagnostics go to stderr; when stderr is gone they are dropped (tracing-subscriber would
/// otherwise report the failure with `eprintln!`, which panics).
struct QuietStderr;

impl std::io::Write for QuietStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
