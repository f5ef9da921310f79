//! `gzl attach`: the live view of a run another gzl is running (a hook, `gzl watch`, another
//! terminal), from its start.
//!
//! The runner writes each stage's output to its log file as it comes and its progress to
//! history in batches at most 50 ms apart; attaching reads both every `POLL` and turns them
//! into the same events the runner's own view gets, so it looks the same: output prefixed by
//! stage, then the summary.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::exec::{Event, Joined, JoinedStage, Outcome, RunInfo};
use crate::history::{History, RunRecord, StageRecord};
use crate::pipeline;
use crate::report::View;
use crate::status::{RunStatus, StageStatus};

/// How often the run's logs and history are read.
const POLL: Duration = Duration::from_millis(25);

/// Shows run `run` in `view` until it ends; returns how it ended.
pub fn attach(history: &mut History, run: &RunRecord, mut view: View) -> Result<RunStatus, Error> {
    let stages = history.stages(run.id)?;
    let mut names: Vec<String> = stages.iter().map(|s| s.name.clone()).collect();
    let info = RunInfo {
        id: run.id,
        dir: history.home().run_dir(run.id),
        root: run
            .workspace
            .as_ref()
            .map_or_else(|| PathBuf::from(&run.repo), PathBuf::from),
        commit: run.commit.clone(),
        tree: run.tree.clone(),
        branch: run.branch.clone(),
        dirty: run.dirty,
        stages: stages
            .iter()
            .map(|s| (s.name.clone(), s.needs.clone()))
            .collect(),
        parallel: true,
        expected: vec![None; stages.len()],
    };
    view.event(&Event::RunStarted(Arc::new(info)));
    let mut offsets = vec![0u64; stages.len()];
    let mut started = vec![false; stages.len()];
    let mut finished = vec![false; stages.len()];
    loop {
        // Read the run's state first, then the logs: output written before a stage ended is
        // shown before its end.
        let current = history.run(run.id)?;
        let stages = history.stages(run.id)?;
        if stages.len() > names.len() {
            // A `@generates` stage joined these to the run.
            let joined: Vec<JoinedStage> = stages[names.len()..]
                .iter()
                .map(|stage| JoinedStage {
                    name: stage.name.clone(),
                    needs: stage.needs.clone(),
                    key: None,
                    inputs: None,
                    cwd: PathBuf::new(),
                    env: Vec::new(),
                    expected: None,
                })
                .collect();
            view.event(&Event::StagesJoined(Arc::new(Joined {
                generator: None,
                first: names.len(),
                stages: joined,
            })));
            names.extend(stages[names.len()..].iter().map(|s| s.name.clone()));
            offsets.resize(names.len(), 0);
            started.resize(names.len(), false);
            finished.resize(names.len(), false);
        }
        for stage in &stages {
            let index = stage.position;
            if index >= names.len() {
                continue;
            }
            if !started[index] && stage.status != StageStatus::Pending {
                started[index] = true;
                view.event(&Event::StageStarted {
                    stage: index,
                    at: stage.started_at.unwrap_or_else(SystemTime::now),
                    pid: None,
                });
            }
            if let Some(bytes) = read_more(stage, &mut offsets[index]) {
                view.event(&Event::Output {
                    stage: index,
                    bytes,
                });
            }
            if !finished[index] && stage.status.is_final() {
                finished[index] = true;
                view.event(&Event::StageFinished {
                    stage: index,
                    outcome: outcome(stage, &stages),
                    at: stage.finished_at.unwrap_or_else(SystemTime::now),
                    duration: stage.duration,
                });
            }
        }
        view.flush();
        let Some(current) = current else {
            return Ok(RunStatus::Interrupted);
        };
        if current.status != RunStatus::Running {
            let duration = current
                .finished_at
                .unwrap_or_else(SystemTime::now)
                .duration_since(current.started_at)
                .unwrap_or_default();
            view.event(&Event::RunFinished {
                status: current.status,
                at: current.finished_at.unwrap_or_else(SystemTime::now),
                duration,
            });
            view.flush();
            return Ok(current.status);
        }
        std::thread::sleep(POLL);
        // A runner that died shows as interrupted, not running forever.
        pipeline::settle_interrupted(history)?;
    }
}

/// What the stage's log holds past `offset`.
fn read_more(stage: &StageRecord, offset: &mut u64) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(stage.log_path.as_ref()?).ok()?;
    file.seek(SeekFrom::Start(*offset)).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    if bytes.is_empty() {
        return None;
    }
    *offset += bytes.len() as u64;
    Some(bytes)
}

/// The outcome history's record of a stage stands for.
fn outcome(stage: &StageRecord, stages: &[StageRecord]) -> Outcome {
    match stage.status {
        StageStatus::Passed => Outcome::Passed,
        StageStatus::Cached => Outcome::Cached {
            from: stage.cached_from.unwrap_or_default(),
        },
        StageStatus::Failed => Outcome::Failed {
            exit_code: stage.exit_code,
            signal: None,
        },
        StageStatus::TimedOut => Outcome::TimedOut {
            // The limit is not recorded; it took that long.
            limit: stage.duration.unwrap_or_default(),
            idle: false,
        },
        StageStatus::Skipped => Outcome::Skipped {
            because: stages
                .iter()
                .find(|s| stage.needs.contains(&s.name) && !s.status.is_pass())
                .map_or(0, |s| s.position),
        },
        StageStatus::Stopped => Outcome::Stopped,
        StageStatus::Cancelled
        | StageStatus::Interrupted
        | StageStatus::Pending
        | StageStatus::Running => Outcome::Cancelled,
    }
}
