//! From stages to jobs: the command line each stage runs, and its environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::exec::{Job, ScriptOrigin};
use crate::git;
use crate::history::RunLease;
use crate::home::Home;
use crate::plan::Node;
use crate::stagefile::Stage;

/// How a stage starts: the command line, and the one to fall back to when it cannot start.
pub(super) struct Command {
    words: Vec<String>,
    fallback: Option<Vec<String>>,
    origin: Option<ScriptOrigin>,
}

/// The command of each stage of `plan` (`None` for a group), with every script stored.
///
/// A script runs as `SHELL... SCRIPT_FILE`. A body that is a single simple command under the
/// default shell runs without the shell, as make does, saving the shell's start-up (about a
/// millisecond for bash), which dominates short stages. Should the program not start (not
/// found, or a file without `#!`), the stage runs through the shell after all, so it behaves
/// as the shell would.
///
/// `file` names where the stages are written (`Gzlfile`, or a generator's output): bash and sh
/// name the stored script in their error lines, which gzl rewrites to that file's lines.
pub(super) fn commands(
    nodes: &[Node],
    home: &Home,
    file: &str,
) -> Result<Vec<Option<Command>>, Error> {
    let mut programs = Programs::default();
    let mut stored: HashMap<&str, PathBuf> = HashMap::new();
    nodes
        .iter()
        .map(|node| {
            let stage = &node.stage;
            let Some(text) = stage.script.as_deref() else {
                return Ok(None);
            };
            let path = match stored.get(text) {
                Some(path) => path.clone(),
                None => {
                    let path = home.store_script(text)?;
                    stored.insert(text, path.clone());
                    path
                }
            };
            let mut shell = match &stage.attributes.shell {
                Some(words) => programs.resolve(words.clone()),
                None => programs.default_shell(),
            };
            let origin = names_script_lines(&shell).then(|| ScriptOrigin {
                script: path.display().to_string(),
                file: file.to_string(),
                first_line: stage.script_line,
                lines: text.lines().count(),
                stage: stage.name.clone(),
            });
            shell.push(path.display().to_string());
            // With `@env PATH=…` the program is not the one gzl's PATH finds: leave it to bash.
            let sets_path = stage.attributes.env.iter().any(|(key, _)| key == "PATH");
            let direct = (stage.attributes.shell.is_none() && !sets_path)
                .then(|| simple_command(text))
                .flatten();
            Ok(Some(match direct {
                Some(words) => Command {
                    words: programs.resolve(words),
                    fallback: Some(shell),
                    origin,
                },
                None => Command {
                    words: shell,
                    fallback: None,
                    origin,
                },
            }))
        })
        .collect()
}

/// Whether the shell `words` names the script's lines in its errors as
/// `SCRIPT: line N:` (bash, and sh that is bash or busybox) or `SCRIPT: N:` (dash): the shells
/// whose lines gzl points at the Gzlfile. Others (python, zsh, ...) are left alone.
fn names_script_lines(words: &[String]) -> bool {
    let program = words
        .first()
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(|name| name.to_str());
    matches!(program, Some("bash" | "sh" | "dash" | "ash"))
}

/// What every job of a run shares.
pub(super) struct RunContext<'a> {
    /// Where the stages run: the workspace, or the repository for a run in place.
    pub root: &'a Path,
    pub run: &'a RunLease,
    pub commit: Option<&'a str>,
    pub tree: Option<&'a str>,
    pub dirty: bool,
    /// Where secrets are looked up.
    pub home: &'a Home,
    /// The run's job API: its socket and the stages' credentials.
    pub api: &'a crate::api::Credentials,
    /// Whether the run offers its results for reuse, and so keeps stages' `@outputs`.
    pub keeps_outputs: bool,
}

/// The job for `stage` of a run.
pub(super) fn job(
    stage: &Stage,
    command: Option<Command>,
    reused: Option<i64>,
    run: &RunContext<'_>,
) -> Job {
    let attributes = &stage.attributes;
    let origin = command.as_ref().and_then(|c| c.origin.clone());
    let cwd = attributes
        .dir
        .as_ref()
        .map_or_else(|| run.root.to_path_buf(), |d| run.root.join(d));
    let root = run.root.display().to_string();
    let mut env = vec![
        ("CI".to_string(), "true".to_string()),
        ("GZL".to_string(), "1".to_string()),
        ("GZL_RUN_ID".to_string(), run.run.id.to_string()),
        (
            crate::exec::RUN_TOKEN_VARIABLE.to_string(),
            run.run.token.clone(),
        ),
        (
            "GZL_API".to_string(),
            run.api.address().display().to_string(),
        ),
        ("GZL_STAGE".to_string(), stage.name.clone()),
        (
            crate::api::STAGE_TOKEN_VARIABLE.to_string(),
            run.api.stage_token(&stage.name),
        ),
        ("GZL_REPO_ROOT".to_string(), root.clone()),
        ("GZL_WORKSPACE".to_string(), root),
        (
            "GZL_COMMIT".to_string(),
            run.commit.unwrap_or_default().to_string(),
        ),
        (
            "GZL_TREE".to_string(),
            run.tree.unwrap_or_default().to_string(),
        ),
        (
            "GZL_DIRTY".to_string(),
            if run.dirty { "1" } else { "0" }.to_string(),
        ),
        // What a shell would set; a command run without one must see the same.
        ("PWD".to_string(), cwd.display().to_string()),
    ];
    env.extend(attributes.env.iter().cloned());
    // A secret that cannot be had fails the stage before it starts, saying why.
    let mut secrets = Vec::new();
    let mut refuse = None;
    for name in &attributes.secrets {
        match crate::secrets::resolve(run.home, name) {
            Ok(Some((_, value))) => secrets.push((name.clone(), value)),
            Ok(None) => {
                refuse.get_or_insert(format!(
                    "secret `{name}` is not set; gzl looked in {}",
                    crate::secrets::searched(run.home, name)
                ));
            }
            Err(error) => {
                refuse.get_or_insert(error.to_string());
            }
        }
    }
    Job {
        secrets,
        refuse,
        name: stage.name.clone(),
        fallback: command.as_ref().and_then(|c| c.fallback.clone()),
        command: command.map(|c| c.words),
        cwd,
        env,
        reused,
        // Set by a git hook for the user's repository, a stage works in its own checkout;
        // a gzl a stage starts obeys its own repository's pin; and secrets given to gzl reach
        // only the stages that name them, under their own name.
        env_remove: git::LOCATION_VARIABLES
            .iter()
            .chain(&[crate::pin::HANDED_OVER])
            .map(|name| (*name).to_string())
            .chain(
                std::env::vars_os()
                    .filter_map(|(key, _)| key.into_string().ok())
                    .filter(|key| key.starts_with("GZL_SECRET_")),
            )
            .collect(),
        timeout: attributes.timeout,
        idle_timeout: attributes.idle_timeout,
        generates: attributes
            .generates
            .then(|| generated_path(run, &stage.name)),
        outputs: attributes
            .outputs
            .clone()
            .filter(|_| run.keeps_outputs)
            .unwrap_or_default(),
        origin,
    }
}

/// Where what a `@generates` stage prints goes, kept with the run's logs.
pub(super) fn generated_path(run: &RunContext<'_>, stage: &str) -> PathBuf {
    run.run.dir.join(format!("{stage}.generated"))
}

/// What gzl added to a job's environment, as history records it: secrets by name only.
pub(super) fn recorded_env(job: &Job) -> Vec<(String, String)> {
    let mut env = job.env.clone();
    env.extend(
        job.secrets
            .iter()
            .map(|(name, _)| (name.clone(), "***".to_string())),
    );
    env
}

/// The words of `script` when it is one simple command that needs no shell: one line of
/// plain words (no quoting, expansion, redirection, globbing or operators), not starting
/// with a variable assignment or a shell builtin.
fn simple_command(script: &str) -> Option<Vec<String>> {
    let mut lines = script.lines().filter(|line| !line.trim().is_empty());
    let line = lines.next()?;
    if lines.next().is_some() {
        return None;
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+%@".contains(c);
    if !line.chars().all(|c| plain(c) || c == ' ' || c == '\t') {
        return None;
    }
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    let program = words.first()?;
    // `true` and `false` are builtins with identical programs; other builtins are not run
    // outside bash, nor is `NAME=value`, an assignment.
    let shell_only = program.contains('=')
        || (BASH_BUILTINS.contains(&program.as_str())
            && !matches!(program.as_str(), "true" | "false"));
    (!shell_only).then_some(words)
}

/// Bash's builtins and reserved words: commands that mean something else outside bash.
const BASH_BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "case",
    "cd",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "coproc",
    "declare",
    "dirs",
    "disown",
    "do",
    "done",
    "echo",
    "elif",
    "else",
    "enable",
    "esac",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "fi",
    "for",
    "function",
    "getopts",
    "hash",
    "help",
    "history",
    "if",
    "in",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "select",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "then",
    "time",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "until",
    "wait",
    "while",
];

/// Interpreters looked up on `PATH` once per run, not once per stage in each child.
#[derive(Default)]
struct Programs {
    found: HashMap<String, Option<PathBuf>>,
}

impl Programs {
    /// `words` with the program replaced by its full path when `PATH` has it.
    fn resolve(&mut self, mut words: Vec<String>) -> Vec<String> {
        if let Some(program) = words.first_mut()
            && let Some(path) = self.find(program)
        {
            *program = path.display().to_string();
        }
        words
    }

    fn find(&mut self, program: &str) -> Option<PathBuf> {
        if program.contains('/') {
            return None;
        }
        self.found
            .entry(program.to_string())
            .or_insert_with(|| {
                let path = std::env::var_os("PATH")?;
                std::env::split_paths(&path)
                    .map(|dir| dir.join(program))
                    .find(|candidate| is_executable(candidate))
            })
            .clone()
    }

    /// `bash -e -o pipefail`, or `sh -e` where bash is missing.
    fn default_shell(&mut self) -> Vec<String> {
        let words: &[&str] = if self.find("bash").is_some() {
            &["bash", "-e", "-o", "pipefail"]
        } else {
            &["sh", "-e"]
        };
        self.resolve(words.iter().map(|w| (*w).to_string()).collect())
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::simple_command;

    #[test]
    fn plain_single_commands_need_no_shell() {
        assert_eq!(
            simple_command("cargo test --all-targets\n"),
            Some(vec!["cargo".into(), "test".into(), "--all-targets".into()])
        );
        assert_eq!(simple_command("\ntrue\n\n"), Some(vec!["true".into()]));
        assert_eq!(
            simple_command("make -j4 CFLAGS=-O2\n"),
            Some(vec!["make".into(), "-j4".into(), "CFLAGS=-O2".into()])
        );
    }

    #[test]
    fn anything_a_shell_would_interpret_goes_to_the_shell() {
        for script in [
            "echo hi\n",
            "cd sub\n",
            "FOO=1 make\n",
            "ls *.rs\n",
            "cat a > b\n",
            "a && b\n",
            "echo $HOME\n",
            "printf 'x'\n",
            "ls ~\n",
            "make # comment\n",
            "one\ntwo\n",
            "exit 3\n",
        ] {
            assert_eq!(simple_command(script), None, "{script:?}");
        }
    }
}
