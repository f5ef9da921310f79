//! `gzl debug`: a shell where a stage ran, as it left it, with the environment it had.
//!
//! The stage's working directory and what gzl added to its environment are recorded when the
//! run starts. The workspace is used as the run left it when no later run has used it (a
//! failed run's workspace is kept for this); otherwise gzl checks the run's source state out
//! in a workspace again, and says so. A run in place opens in the repository.

use std::path::PathBuf;

use crate::config::{Clean, Config};
use crate::error::Error;
use crate::git::SourceState;
use crate::history::{History, RunRecord, StageRecord};
use crate::project::Project;
use crate::workspace::{Hold, Pool, Workspace};

/// Where a debug shell opens, and what keeps its workspace from other runs meanwhile.
pub struct Session {
    pub cwd: PathBuf,
    /// What gzl added to the stage's environment.
    pub env: Vec<(String, String)>,
    /// The workspace had to be made again at the run's source state.
    pub rebuilt: bool,
    /// The kept workspace, locked while the shell is open.
    _kept: Option<Hold>,
    /// The workspace made again, leased while the shell is open.
    _rebuilt: Option<Workspace>,
}

/// Opens `shell` interactively in `cwd` with `env` added to gzl's environment (and
/// `GZL_DEBUG=1`), waiting until it exits. Returns whether it exited with 0.
pub fn open_shell(
    shell: &std::path::Path,
    cwd: &std::path::Path,
    env: &[(String, String)],
) -> std::io::Result<bool> {
    let mut command = std::process::Command::new(shell);
    command
        .current_dir(cwd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("GZL_DEBUG", "1");
    for name in crate::git::LOCATION_VARIABLES {
        command.env_remove(name);
    }
    // A run may be going on around the shell (`gzl run --debug`): its sweeps leave it alone.
    Ok(crate::exec::run_spared(&mut command)?.success())
}

/// The shell to open: `$SHELL`, else `/bin/sh`.
pub fn default_shell() -> PathBuf {
    std::env::var_os("SHELL")
        .filter(|s| !s.is_empty())
        .map_or_else(|| PathBuf::from("/bin/sh"), PathBuf::from)
}

/// Why a debug session cannot open.
#[derive(Debug, thiserror::Error)]
pub enum DebugError {
    #[error("run {run} was recorded before gzl kept stage environments; run it again to debug it")]
    Unrecorded { run: i64 },
    #[error("stage `{stage}` of run {run} never started ({status}), so it has nothing to debug")]
    NeverStarted {
        run: i64,
        stage: String,
        status: crate::status::StageStatus,
    },
    #[error("run {run} is a run of {repo}; run gzl debug there")]
    OtherRepository { run: i64, repo: String },
}

/// Prepares the place where `stage` of `run` ran.
pub fn session(
    project: &Project,
    history: &History,
    run: &RunRecord,
    stage: &StageRecord,
) -> Result<Session, Error> {
    if run.repo != project.root.display().to_string() {
        return Err(DebugError::OtherRepository {
            run: run.id,
            repo: run.repo.clone(),
        }
        .into());
    }
    let Some(cwd) = stage.cwd.clone() else {
        return Err(DebugError::Unrecorded { run: run.id }.into());
    };
    if stage.started_at.is_none() {
        return Err(DebugError::NeverStarted {
            run: run.id,
            stage: stage.name.clone(),
            status: stage.status,
        }
        .into());
    }
    let (Some(workspace), Some(tree), Some(repo)) = (&run.workspace, &run.tree, &project.repo)
    else {
        // In place: the repository itself.
        return Ok(Session {
            cwd,
            env: stage.env.clone(),
            rebuilt: false,
            _kept: None,
            _rebuilt: None,
        });
    };
    let config = Config::load(&project.root)?;
    let pool = Pool::of(history.home(), repo, &config.workspaces);
    let workspace = PathBuf::from(workspace);
    if let Some(hold) = pool.hold(&workspace, run.id)? {
        return Ok(Session {
            cwd,
            env: stage.env.clone(),
            rebuilt: false,
            _kept: Some(hold),
            _rebuilt: None,
        });
    }
    // Gone, or used since: the run's source state in a workspace again.
    let state = SourceState {
        commit: run.commit.clone(),
        tree: tree.clone(),
        dirty: run.dirty,
        checkout: if run.dirty { None } else { run.commit.clone() },
        branch: run.branch.clone(),
    };
    let lease = pool.lease(&mut |line| tracing::info!("{line}"))?;
    lease.prepare(repo, &repo.checkout_commit(&state)?, Clean::Untracked, &[])?;
    // What the shell does there is the user's: no result stays known to be in it.
    lease.set_results(Default::default())?;
    let relative = cwd.strip_prefix(&workspace).unwrap_or(&cwd).to_path_buf();
    let moved = |value: &str| {
        value.replace(
            &workspace.display().to_string(),
            &lease.path.display().to_string(),
        )
    };
    let env = stage
        .env
        .iter()
        .map(|(key, value)| (key.clone(), moved(value)))
        .collect();
    Ok(Session {
        cwd: lease.path.join(relative),
        env,
        rebuilt: true,
        _kept: None,
        _rebuilt: Some(lease),
    })
}
