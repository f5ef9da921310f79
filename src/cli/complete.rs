//! Shell completion with clap_complete's dynamic engine: the shell calls gzl back as it
//! completes (`COMPLETE=bash gzl -- gzl run te`), so gzl offers the stages of the Gzlfile where
//! the shell stands and the runs history holds, not only commands and options.
//!
//! Completing reads and never writes: no history is created, migrated or settled, and anything
//! that cannot be read (no repository, no Gzlfile, an invalid one, no history) offers nothing
//! rather than an error.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::SystemTime;

use clap::CommandFactory as _;
use clap::builder::StyledStr;
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{CompleteEnv, Shells};

use super::Cli;
use crate::error::Error;
use crate::history::History;
use crate::home::Home;
use crate::project::Project;
use crate::stagefile::escape_text;

/// The variable the shell sets when it asks gzl for completions.
const VAR: &str = "COMPLETE";

/// How many recent runs are offered for a RUN argument.
const RUNS_OFFERED: usize = 20;

/// The arguments that name stages, by subcommand and argument id.
const STAGE_ARGUMENTS: [(&str, &str); 9] = [
    ("run", "stages"),
    ("run", "force"),
    ("why", "stage"),
    ("bisect", "stage"),
    ("watch", "stages"),
    ("logs", "stage"),
    ("debug", "stage"),
    ("stop", "stage"),
    ("artifacts", "stage"),
];

/// The arguments that name runs, by subcommand and argument id.
const RUN_ARGUMENTS: [(&str, &str); 5] = [
    ("logs", "run"),
    ("debug", "run"),
    ("stop", "run"),
    ("artifacts", "run"),
    ("attach", "run"),
];

/// Answers the shell's completion request and exits, when this is one (`COMPLETE` is set);
/// returns otherwise.
pub fn complete_if_asked() {
    CompleteEnv::with_factory(command).var(VAR).complete();
}

/// The script that makes `shell` complete gzl dynamically: what `COMPLETE=SHELL gzl` prints.
pub fn registration(shell: clap_complete::Shell) -> Result<String, Error> {
    let name = shell.to_string();
    let shells = Shells::builtins();
    let Some(completer) = shells.completer(&name) else {
        return Err(Error::usage(
            format!("gzl cannot complete for {name}"),
            Some("use bash, zsh, fish, elvish or powershell".into()),
        ));
    };
    let mut script = Vec::new();
    completer
        .write_registration(VAR, "gzl", "gzl", &completer_path(), &mut script)
        .map_err(|source| Error::Io {
            message: format!("cannot write the {name} completion script"),
            source,
        })?;
    Ok(String::from_utf8_lossy(&script).into_owned())
}

/// The gzl the shell calls back: as this one was started (`gzl`, found on the PATH when the
/// shell completes), or its absolute path when it was started by a relative path.
fn completer_path() -> String {
    let started_as = std::env::args_os()
        .next()
        .map_or_else(|| PathBuf::from("gzl"), PathBuf::from);
    let path = if started_as.components().count() > 1 {
        std::path::absolute(&started_as).unwrap_or(started_as)
    } else {
        started_as
    };
    path.to_string_lossy().into_owned()
}

/// gzl's command line with the completers for stages and runs attached.
fn command() -> clap::Command {
    let mut command = Cli::command();
    for (subcommand, argument) in STAGE_ARGUMENTS {
        command = command.mut_subcommand(subcommand, |sub| {
            // `mut_args`, not `mut_arg`: that one moves the argument last, which reorders
            // positional arguments.
            sub.mut_args(|arg| {
                if arg.get_id() == argument {
                    arg.add(ArgValueCandidates::new(stages))
                } else {
                    arg
                }
            })
        });
    }
    for (subcommand, argument) in RUN_ARGUMENTS {
        command = command.mut_subcommand(subcommand, |sub| {
            sub.mut_args(|arg| {
                if arg.get_id() == argument {
                    arg.add(ArgValueCandidates::new(runs))
                } else {
                    arg
                }
            })
        });
    }
    command
}

/// The project the command line being completed names: `-C DIR` and `--file PATH` on it (or
/// `GZL_FILE`), from the directory the shell is in.
fn project() -> Option<Project> {
    let cwd = std::env::current_dir().ok()?;
    // The shell passes the command line after `--`, `gzl` first. bash and zsh say which word
    // is being completed (the cursor may be before the end); fish cuts the line there.
    let words: Vec<OsString> = std::env::args_os()
        .skip_while(|word| word != "--")
        .skip(1)
        .collect();
    let current = std::env::var("_CLAP_COMPLETE_INDEX")
        .ok()
        .and_then(|index| index.parse().ok())
        .unwrap_or(words.len().saturating_sub(1))
        .min(words.len());
    let (directory, file) = directory_and_file(words.get(1..current).unwrap_or_default());
    let file = file.or_else(|| {
        std::env::var_os("GZL_FILE")
            .filter(|file| !file.is_empty())
            .map(PathBuf::from)
    });
    let dir = directory.map_or_else(|| cwd.clone(), |directory| cwd.join(directory));
    Project::discover(&dir, file.as_deref()).ok()
}

/// The values of `-C` and `--file` among `words`, the last of each.
fn directory_and_file(words: &[OsString]) -> (Option<PathBuf>, Option<PathBuf>) {
    let (mut directory, mut file) = (None, None);
    let mut words = words.iter();
    while let Some(word) = words.next() {
        let Some(word) = word.to_str() else {
            continue;
        };
        if word == "--" {
            break;
        }
        if word == "-C" {
            directory = words.next().map(PathBuf::from);
        } else if let Some(value) = word.strip_prefix("-C") {
            directory = Some(PathBuf::from(value));
        } else if word == "--file" {
            file = words.next().map(PathBuf::from);
        } else if let Some(value) = word.strip_prefix("--file=") {
            file = Some(PathBuf::from(value));
        }
    }
    (directory, file)
}

/// The stages of the Gzlfile, in file order, each with the first line of its description.
fn stages() -> Vec<CompletionCandidate> {
    let Some(gzlfile) = project().and_then(|project| project.load().ok()) else {
        return Vec::new();
    };
    gzlfile
        .stages
        .iter()
        .enumerate()
        .map(|(order, stage)| {
            let help = stage
                .description
                .as_deref()
                .and_then(|text| text.lines().next())
                .map(|line| StyledStr::from(escape_text(line)));
            CompletionCandidate::new(&stage.name)
                .help(help)
                .display_order(Some(order))
        })
        .collect()
}

/// `last` and the newest runs of this repository (of every repository outside one), newest
/// first, each with its status, where it ran and when.
fn runs() -> Vec<CompletionCandidate> {
    let Some(history) = Home::locate()
        .ok()
        .and_then(|home| History::open_to_read(&home).ok().flatten())
    else {
        return Vec::new();
    };
    let project = project();
    let identity = project
        .as_ref()
        .filter(|project| project.repo.is_some() || project.gzlfile.is_file())
        .map(Project::identity);
    let Ok(runs) = history.runs(identity.as_deref(), RUNS_OFFERED) else {
        return Vec::new();
    };
    if runs.is_empty() {
        return Vec::new();
    }
    let now = SystemTime::now();
    let last = CompletionCandidate::new("last")
        .help(Some("the newest run".into()))
        .display_order(Some(0));
    let each = runs.iter().enumerate().map(|(at, run)| {
        let source = match (&run.branch, &run.commit) {
            (Some(branch), _) => branch.clone(),
            (None, Some(commit)) => commit.chars().take(7).collect(),
            (None, None) => "working tree".to_string(),
        };
        let age = now
            .duration_since(run.started_at)
            .map(super::render::ago)
            .unwrap_or_default();
        let help = format!("{} · {source} · {age}", run.status.as_str());
        CompletionCandidate::new(run.id.to_string())
            .help(Some(help.trim_end_matches([' ', '·']).to_string().into()))
            .display_order(Some(at + 1))
    });
    std::iter::once(last).chain(each).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn directory_and_file_come_from_the_words_being_completed() {
        let words =
            |line: &str| -> Vec<std::ffi::OsString> { line.split(' ').map(Into::into).collect() };
        assert_eq!(
            super::directory_and_file(&words("-C ../x run --file=ci.gzl")),
            (Some("../x".into()), Some("ci.gzl".into()))
        );
        assert_eq!(
            super::directory_and_file(&words("-Cy --file f run -- -C z")),
            (Some("y".into()), Some("f".into()))
        );
        assert_eq!(super::directory_and_file(&words("run -C")), (None, None));
    }

    /// A renamed argument must be renamed here too, or it silently loses its completion.
    #[test]
    fn every_completed_argument_exists() {
        let mut command = super::command();
        command.build();
        for (subcommand, argument) in super::STAGE_ARGUMENTS
            .into_iter()
            .chain(super::RUN_ARGUMENTS)
        {
            let sub = command
                .find_subcommand(subcommand)
                .unwrap_or_else(|| panic!("no subcommand {subcommand}"));
            assert!(
                sub.get_arguments().any(|arg| arg.get_id() == argument),
                "{subcommand} has no argument {argument}"
            );
        }
    }
}
