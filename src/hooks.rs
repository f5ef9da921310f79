//! Git hooks that run gzl: installing them where git will look, chaining a hook that was
//! there before (it runs first and keeps its exit code's meaning), and restoring it exactly
//! on uninstall.
//!
//! The hook gzl writes is a small sh script that runs the chained hook, if any, then
//! `exec`s `gzl hook run NAME`. Post-commit, post-merge and post-checkout start a run of the
//! new HEAD in the background and return at once; pre-commit runs the configured stages on
//! the staged tree and pre-push for every pushed commit, and either blocks when one fails.

use std::path::{Path, PathBuf};

use crate::git::{self, GitError, Repo};

/// The hooks gzl can install.
pub const HOOKS: &[&str] = &[
    "post-commit",
    "post-merge",
    "post-checkout",
    "pre-commit",
    "pre-push",
];

/// Marks a hook file as gzl's.
const MARKER: &str = "# gzl-hook:";

/// The suffix of a hook gzl moved aside to chain it.
const CHAINED: &str = "gzl-chained";

/// A failure installing or removing hooks.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("gzl has no `{name}` hook; it has: {}", HOOKS.join(", "))]
    Unknown { name: String },
    #[error("cannot write the hook {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Git(#[from] GitError),
}

/// How a hook stands in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookState {
    /// No hook of that name.
    Absent,
    /// gzl's hook; `chained` when it runs one that was there before.
    Installed { chained: bool },
    /// Someone else's hook.
    Other,
}

/// The directory git runs hooks from: `core.hooksPath` when set, else the hooks of the
/// repository's common directory (from a linked worktree too).
pub fn directory(repo: &Repo) -> Result<PathBuf, HookError> {
    let dir = git::output(git::git_as_configured(repo.root()).args([
        "rev-parse",
        "--path-format=absolute",
        "--git-path",
        "hooks",
    ]))?;
    Ok(PathBuf::from(dir.trim_end()))
}

/// Checks hook names, defaulting to post-commit.
pub fn names(requested: &[String]) -> Result<Vec<&'static str>, HookError> {
    if requested.is_empty() {
        return Ok(vec!["post-commit"]);
    }
    requested
        .iter()
        .map(|name| {
            HOOKS
                .iter()
                .find(|known| **known == name)
                .copied()
                .ok_or_else(|| HookError::Unknown { name: name.clone() })
        })
        .collect()
}

/// The state of hook `name` in `dir`.
pub fn state(dir: &Path, name: &str) -> HookState {
    match std::fs::read_to_string(dir.join(name)) {
        Ok(text) if is_ours(&text) => HookState::Installed {
            chained: chained_path(dir, name).exists(),
        },
        Ok(_) => HookState::Other,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => HookState::Absent,
        // Unreadable, or not text: someone else's.
        Err(_) => HookState::Other,
    }
}

/// Installs hook `name` in `dir`, running `gzl` (this program's path). A hook that was there
/// is moved aside and chained; installing again rewrites gzl's hook and nothing else.
pub fn install(dir: &Path, name: &str, gzl: &Path) -> Result<HookState, HookError> {
    let path = dir.join(name);
    let io = |source| HookError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    if state(dir, name) == HookState::Other {
        std::fs::rename(&path, chained_path(dir, name)).map_err(io)?;
    }
    let temporary = dir.join(format!(".{name}.gzl-new"));
    std::fs::write(&temporary, script(name, gzl)).map_err(io)?;
    set_executable(&temporary).map_err(io)?;
    std::fs::rename(&temporary, &path).map_err(io)?;
    Ok(state(dir, name))
}

/// Removes gzl's hook `name` and puts back the one it chained. Returns false when the hook
/// there is not gzl's (it is left alone).
pub fn uninstall(dir: &Path, name: &str) -> Result<bool, HookError> {
    let path = dir.join(name);
    let io = |source| HookError::Io {
        path: path.clone(),
        source,
    };
    match state(dir, name) {
        HookState::Installed { chained } => {
            if chained {
                std::fs::rename(chained_path(dir, name), &path).map_err(io)?;
            } else {
                std::fs::remove_file(&path).map_err(io)?;
            }
            Ok(true)
        }
        HookState::Absent | HookState::Other => Ok(false),
    }
}

fn chained_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.{CHAINED}"))
}

fn is_ours(text: &str) -> bool {
    text.lines().any(|line| line.starts_with(MARKER))
}

/// The hook's script. pre-push reads the pushed refs on stdin; both the chained hook and gzl
/// need them, so the script keeps them.
fn script(name: &str, gzl: &Path) -> String {
    let gzl = shell_quote(&gzl.display().to_string());
    let chained = format!("\"$(dirname \"$0\")/{name}.{CHAINED}\"");
    let body = if name == "pre-push" {
        format!(
            "refs=$(cat)\n\
             if [ -x {chained} ]; then\n    \
                 printf '%s\\n' \"$refs\" | {chained} \"$@\" || exit $?\n\
             fi\n\
             printf '%s\\n' \"$refs\" | exec {gzl} hook run {name} \"$@\"\n"
        )
    } else if name == "pre-commit" {
        format!(
            "if [ -x {chained} ]; then\n    \
                 {chained} \"$@\" || exit $?\n\
             fi\n\
             exec {gzl} hook run {name} \"$@\"\n"
        )
    } else {
        // git ignores what post-* hooks exit with: the chained one's failure stops nothing.
        format!(
            "if [ -x {chained} ]; then\n    \
                 {chained} \"$@\"\n\
             fi\n\
             exec {gzl} hook run {name} \"$@\"\n"
        )
    };
    format!(
        "#!/bin/sh\n\
         {MARKER} {name}\n\
         # Installed by `gzl hook install`; `gzl hook uninstall` puts back what was here.\n\
         {body}"
    )
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

/// Starts `gzl ARGS` in the background, detached from the hook: its own process group (a
/// Ctrl-C in the terminal does not reach it), no stdin, and no stdout or stderr for git to
/// wait on. Results go to history.
pub fn start_detached(gzl: &Path, dir: &Path, args: &[String]) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt as _;
    let mut command = std::process::Command::new(gzl);
    command
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0);
    for name in git::LOCATION_VARIABLES {
        command.env_remove(name);
    }
    Ok(command.spawn()?.id())
}
