//! `gzl stop`: stopping a run, or one stage of it, from another process.
//!
//! The stopper leaves a marker in the run's directory, so the runner records what ends as
//! `stopped` rather than failed or cancelled, then signals: SIGTERM to the runner for a whole
//! run (it stops its stages as on Ctrl-C), or to the stage's processes for one stage (its
//! process group, and on Linux what left it: see `exec::stage_processes`). After the grace
//! period, whatever is left is killed: every process carrying the run's token, or the stage's
//! processes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use crate::error::Error;
use crate::history::{History, RunRecord, StageRecord};
use crate::home::Home;
use crate::status::{RunStatus, StageStatus};

/// Why a stop cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error("run {run} is not running (it is {status})")]
    NotRunning { run: i64, status: RunStatus },
    #[error("stage `{stage}` of run {run} is not running (it is {status})")]
    StageNotRunning {
        run: i64,
        stage: String,
        status: StageStatus,
    },
    #[error("run {run} runs on host {host}; stop it there")]
    OtherHost { run: i64, host: String },
}

/// How long the runner gets to record the end after its processes are gone.
const RECORD_WAIT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);
/// Longer than the runner takes to write what happened (it batches for 50 ms).
const BATCH_WAIT: Duration = Duration::from_millis(500);

/// The marker saying the whole run was stopped. Markers live in the run's own directory for
/// gzl ([`Home::gzl_dir`]), apart from the stages' logs, so no stage name can hit one.
pub fn run_marker(dir: &Path) -> PathBuf {
    Home::gzl_dir(dir).join("stop-run")
}

/// The marker saying stage `name` was stopped: a file named as the stage, in a directory of
/// its own, so one stage's marker is never another's.
pub fn stage_marker(dir: &Path, name: &str) -> PathBuf {
    Home::gzl_dir(dir).join("stop").join(name)
}

/// Stops run `run` (every stage; pending ones never start), waiting until it is recorded.
pub fn stop_run(history: &mut History, run: &RunRecord, grace: Duration) -> Result<(), Error> {
    check_running(history, run)?;
    mark(&run_marker(&history.home().run_dir(run.id)))?;
    let _ = kill(
        Pid::from_raw(i32::try_from(run.pid).unwrap_or(0)),
        Signal::SIGTERM,
    );
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && still_running(history, run.id)? {
        std::thread::sleep(POLL);
    }
    // What the grace period did not end, ends now.
    crate::exec::kill_abandoned(&run.token);
    let deadline = Instant::now() + RECORD_WAIT;
    while Instant::now() < deadline && still_running(history, run.id)? {
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// Stops stage `stage` of run `run`: its process group, and what left it, get SIGTERM, then
/// SIGKILL after `grace`.
/// What needs it is skipped; the rest of the run goes on.
pub fn stop_stage(
    history: &mut History,
    run: &RunRecord,
    stage: &StageRecord,
    grace: Duration,
) -> Result<(), Error> {
    check_running(history, run)?;
    // The runner writes history in batches: a stage that just started may show pending for
    // a moment.
    let mut stage = stage.clone();
    let deadline = Instant::now() + BATCH_WAIT;
    while stage.status == StageStatus::Pending && Instant::now() < deadline {
        std::thread::sleep(POLL);
        if let Some(now) = history
            .stages(run.id)?
            .into_iter()
            .find(|s| s.position == stage.position)
        {
            stage = now;
        }
    }
    let (StageStatus::Running, Some(group)) = (stage.status, stage.pid) else {
        return Err(StopError::StageNotRunning {
            run: run.id,
            stage: stage.name.clone(),
            status: stage.status,
        }
        .into());
    };
    mark(&stage_marker(&history.home().run_dir(run.id), &stage.name))?;
    let group = Pid::from_raw(i32::try_from(group).unwrap_or(0));
    // Also what left the stage's group or session (Linux: found through the runner's
    // process tree and the stage's markers).
    let escaped = || crate::exec::stage_processes(run.pid, &run.token, &stage.name, group.as_raw());
    let _ = killpg(group, Signal::SIGTERM);
    signal_each(&escaped(), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline
        && (killpg(group, None) != Err(Errno::ESRCH) || !escaped().is_empty())
    {
        std::thread::sleep(POLL);
    }
    let _ = killpg(group, Signal::SIGKILL);
    signal_each(&escaped(), Signal::SIGKILL);
    let deadline = Instant::now() + RECORD_WAIT;
    while Instant::now() < deadline {
        let status = history
            .stages(run.id)?
            .into_iter()
            .find(|s| s.position == stage.position)
            .map(|s| s.status);
        if status.is_none_or(StageStatus::is_final) {
            break;
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

fn signal_each(pids: &[i32], signal: Signal) {
    for &pid in pids {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

fn check_running(history: &History, run: &RunRecord) -> Result<(), Error> {
    if run.status != RunStatus::Running {
        return Err(StopError::NotRunning {
            run: run.id,
            status: run.status,
        }
        .into());
    }
    if run.host != history.host() {
        return Err(StopError::OtherHost {
            run: run.id,
            host: run.host.clone(),
        }
        .into());
    }
    Ok(())
}

fn still_running(history: &History, run: i64) -> Result<bool, Error> {
    Ok(history
        .run(run)?
        .is_some_and(|r| r.status == RunStatus::Running))
}

fn mark(path: &Path) -> Result<(), Error> {
    let error = |source| Error::Io {
        message: format!("cannot write {}", path.display()),
        source,
    };
    if let Some(parent) = path.parent() {
        crate::home::create_private_dir(parent).map_err(error)?;
    }
    std::fs::write(path, b"").map_err(error)
}
