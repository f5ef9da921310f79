//! The git program, for what gix cannot do yet: staging into a temporary index (`add -A`
//! with all of git's ignore rules and filters), checking out into and cleaning a non-empty
//! worktree, submodules, and resolving every revision syntax git accepts.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

use super::GitError;

/// Variables that point git at a particular repository or index. A git hook sets them for
/// the repository it runs in; gzl's own git commands, and its stages, must not inherit them.
pub const LOCATION_VARIABLES: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
];

/// A git command run in `dir`, with hooks off and no prompts.
pub fn git(dir: &Path) -> Command {
    let mut command = git_as_configured(dir);
    command.args(["-c", "core.hooksPath=/dev/null"]);
    command
}

/// A git command run in `dir` with the repository's own settings, hooks included: for
/// asking git where it looks for things.
pub fn git_as_configured(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command.current_dir(dir);
    for name in LOCATION_VARIABLES {
        command.env_remove(name);
    }
    command
        .env("GIT_TERMINAL_PROMPT", "0")
        // Reading commands must not refresh the user's index behind their back.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .stdin(Stdio::null());
    command
}

/// Runs `command` and returns its stdout, or an error with what git printed on stderr.
pub fn output(command: &mut Command) -> Result<String, GitError> {
    let shown = describe(command);
    let output = command.output().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            GitError::NoGit
        } else {
            GitError::Command {
                command: shown.clone(),
                message: source.to_string(),
            }
        }
    })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let message = stderr.trim();
        Err(GitError::Command {
            command: shown,
            message: if message.is_empty() {
                format!("exited with {}", output.status)
            } else {
                message.to_string()
            },
        })
    }
}

/// `git ARGS` as shown in errors, without the options gzl adds to every command.
fn describe(command: &Command) -> String {
    let args: Vec<&OsStr> = command.get_args().collect();
    let shown = args
        .iter()
        .skip_while(|arg| **arg == "-c" || arg.to_string_lossy().starts_with("core.hooksPath"))
        .map(|arg| arg.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    format!("git {shown}")
}
