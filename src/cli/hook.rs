use std::io::BufRead as _;
use std::path::PathBuf;

use super::Context;
use crate::config::Config;
use crate::error::{Error, ExitCode};
use crate::hooks::{self, HookState};
use crate::pipeline::{self, Force, RunOptions};
use crate::project::{Source, SourceRequest};
use crate::report::{ProgressMode, Terminal, View};
use crate::status::RunStatus;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Install gzl's hooks (default: post-commit), chaining hooks already there
    Install {
        /// post-commit, post-merge, post-checkout, pre-commit or pre-push
        #[arg(value_name = "HOOK")]
        hooks: Vec<String>,
    },
    /// Remove gzl's hooks (default: post-commit) and put back the ones they chained
    Uninstall {
        #[arg(value_name = "HOOK")]
        hooks: Vec<String>,
    },
    /// Show which hooks are installed, and where
    Status,
    /// What an installed hook runs (git calls it)
    #[command(hide = true)]
    Run {
        hook: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

pub fn run(context: &Context, command: &Command) -> Result<ExitCode, Error> {
    let Some(repo) = &context.project.repo else {
        return Err(Error::usage("gzl hooks need a git repository", None));
    };
    // What git runs must be quick: it asks git nothing it does not need.
    if let Command::Run { hook, args } = command {
        return run_hook(context, hook, args);
    }
    let dir = hooks::directory(repo)?;
    match command {
        Command::Install { hooks: names } => {
            let gzl = current_exe()?;
            for name in hooks::names(names)? {
                let before = hooks::state(&dir, name);
                let before_text = hook_text(&dir, name);
                let after = hooks::install(&dir, name, &gzl)?;
                let what = match (before, after) {
                    (HookState::Installed { .. }, _) if before_text == hook_text(&dir, name) => {
                        "already installed".to_string()
                    }
                    (HookState::Installed { .. }, _) => "updated".to_string(),
                    (HookState::Other, _) => {
                        format!(
                            "installed; the hook that was there runs first ({name}.gzl-chained)"
                        )
                    }
                    _ => "installed".to_string(),
                };
                super::print(&format!("{name}: {what} in {}\n", dir.display()));
            }
            Ok(ExitCode::Success)
        }
        Command::Uninstall { hooks: names } => {
            for name in hooks::names(names)? {
                let chained = matches!(
                    hooks::state(&dir, name),
                    HookState::Installed { chained: true }
                );
                let absent = hooks::state(&dir, name) == HookState::Absent;
                let what = if absent {
                    "not installed"
                } else if hooks::uninstall(&dir, name)? {
                    if chained {
                        "removed; the hook it chained is back"
                    } else {
                        "removed"
                    }
                } else {
                    "not gzl's hook, left alone"
                };
                super::print(&format!("{name}: {what}\n"));
            }
            Ok(ExitCode::Success)
        }
        Command::Status => {
            let mut out = format!("hooks directory: {}\n", dir.display());
            for name in hooks::HOOKS {
                let state = match hooks::state(&dir, name) {
                    HookState::Absent => "not installed",
                    HookState::Installed { chained: false } => "installed",
                    HookState::Installed { chained: true } => {
                        "installed, chaining the hook that was there"
                    }
                    HookState::Other => "another hook (not gzl's)",
                };
                out.push_str(&format!("  {name:<14} {state}\n"));
            }
            super::print(&out);
            Ok(ExitCode::Success)
        }
        Command::Run { .. } => unreachable!("handled above"),
    }
}

/// The text of hook `name` in `dir`, to tell whether installing changed it.
fn hook_text(dir: &std::path::Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name)).ok()
}

fn current_exe() -> Result<PathBuf, Error> {
    std::env::current_exe().map_err(|source| Error::Io {
        message: "cannot tell where the gzl program is".into(),
        source,
    })
}

/// What a hook does when git runs it.
fn run_hook(context: &Context, hook: &str, args: &[String]) -> Result<ExitCode, Error> {
    let project = &context.project;
    let Some(repo) = &project.repo else {
        return Ok(ExitCode::Success);
    };
    let config = Config::load(&project.root)?;
    let stages = config.hooks.stages(hook).to_vec();
    match hook {
        "post-commit" | "post-merge" | "post-checkout" => {
            // post-checkout gets the previous and new HEAD: nothing to do if they are one.
            if hook == "post-checkout" && args.len() >= 2 && args[0] == args[1] {
                return Ok(ExitCode::Success);
            }
            // A rebase or cherry-pick in progress commits many times over: its commits are
            // not ones to run one by one.
            let busy = ["rebase-merge", "rebase-apply", "sequencer"]
                .iter()
                .any(|dir| repo.git_dir().join(dir).exists());
            let Some(head) = repo.head_commit().filter(|_| !busy) else {
                return Ok(ExitCode::Success);
            };
            let mut run_args = vec!["run".to_string(), "--at".into(), head, "--quiet".into()];
            run_args.extend(stages);
            hooks::start_detached(&current_exe()?, &project.root, &run_args).map_err(|source| {
                Error::Io {
                    message: "cannot start gzl in the background".into(),
                    source,
                }
            })?;
            Ok(ExitCode::Success)
        }
        "pre-push" => pre_push(context, &stages),
        "pre-commit" => pre_commit(context, repo, &stages),
        _ => Err(Error::usage(
            format!("gzl has no `{hook}` hook"),
            Some(format!("its hooks: {}", hooks::HOOKS.join(", "))),
        )),
    }
}

/// Runs `stages` on the staged tree, as the commit will hold it; a failure blocks the commit.
fn pre_commit(
    context: &Context,
    repo: &crate::git::Repo,
    stages: &[String],
) -> Result<ExitCode, Error> {
    let index = std::env::var_os("GIT_INDEX_FILE");
    let state = repo.staged_state(index.as_deref())?;
    let gzlfile = context
        .project
        .load_at(&state, "INDEX")
        .map_err(Error::from)?;
    super::note(&format!(
        "gzl pre-commit: checking the staged tree {}",
        &state.tree[..state.tree.len().min(10)]
    ));
    let status = check(context, &gzlfile, Source::Isolated(state), stages)?;
    match status {
        RunStatus::Passed => Ok(ExitCode::Success),
        RunStatus::Cancelled | RunStatus::Interrupted => Ok(ExitCode::Interrupted),
        RunStatus::Failed | RunStatus::Stopped | RunStatus::Running => {
            super::note(
                "gzl pre-commit: the commit is blocked (`git commit --no-verify` skips this check)",
            );
            Ok(ExitCode::Failure)
        }
    }
}

/// Runs `stages` of `source` for a hook that waits: quietly, stopping at the first failure.
fn check(
    context: &Context,
    gzlfile: &crate::stagefile::Gzlfile,
    source: Source,
    stages: &[String],
) -> Result<RunStatus, Error> {
    let options = RunOptions {
        targets: stages.to_vec(),
        jobs: std::thread::available_parallelism().map_or(1, usize::from),
        fail_fast: true,
        grace: std::time::Duration::from_secs(10),
        force: Force::Nothing,
        no_cache: false,
        stop: None,
        debug: false,
        keep_failed: true,
    };
    let result = pipeline::run(
        &context.project,
        gzlfile,
        &source,
        &options,
        View::Terminal(Terminal::new(true, ProgressMode::None)),
        &mut |line| super::note(&line),
    )?;
    Ok(result.status)
}

/// Runs `stages` for every pushed commit (the refs git gives on stdin); a failure blocks the
/// push.
fn pre_push(context: &Context, stages: &[String]) -> Result<ExitCode, Error> {
    let mut tips: Vec<(String, String)> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|source| Error::Io {
            message: "cannot read the refs git pushes".into(),
            source,
        })?;
        let words: Vec<&str> = line.split_whitespace().collect();
        // `<local ref> <local sha> <remote ref> <remote sha>`; a deletion pushes no commit.
        if let [local_ref, local_sha, ..] = words[..]
            && !local_sha.chars().all(|c| c == '0')
            && !tips.iter().any(|(sha, _)| sha == local_sha)
        {
            tips.push((local_sha.to_string(), local_ref.to_string()));
        }
    }
    let mut blocked = false;
    for (sha, local_ref) in &tips {
        super::note(&format!(
            "gzl pre-push: checking {} ({local_ref})",
            &sha[..sha.len().min(10)]
        ));
        let (source, gzlfile) = context.load_source(SourceRequest::At(sha))?;
        let status = check(context, &gzlfile, source, stages)?;
        match status {
            RunStatus::Passed => {}
            RunStatus::Cancelled | RunStatus::Interrupted => return Ok(ExitCode::Interrupted),
            RunStatus::Failed | RunStatus::Stopped | RunStatus::Running => blocked = true,
        }
    }
    if blocked {
        super::note("gzl pre-push: the push is blocked (`git push --no-verify` skips this check)");
        return Ok(ExitCode::Failure);
    }
    Ok(ExitCode::Success)
}
