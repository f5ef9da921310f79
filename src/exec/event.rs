use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::status::{RunStatus, StageStatus};

/// What happens during a run, in order. The executor sends the stage events; the pipeline
/// sends the run events around them. Subscribers (log files, history, the terminal, JSON
/// lines) each turn the same stream into their own output.
#[derive(Debug, Clone)]
pub enum Event {
    RunStarted(Arc<RunInfo>),
    /// Sent before any output of the stage.
    StageStarted {
        stage: usize,
        at: SystemTime,
        /// The stage's process, which leads its process group; `None` when none was started.
        pid: Option<u32>,
    },
    /// Bytes the stage wrote to stdout or stderr, as they came, in chunks of any size.
    Output {
        stage: usize,
        bytes: Vec<u8>,
    },
    /// A `@generates` stage passed and its stages joined the run, at plan indices from
    /// `first` on; sent before any event of theirs.
    StagesJoined(Arc<Joined>),
    StageFinished {
        stage: usize,
        outcome: Outcome,
        at: SystemTime,
        /// How long it ran; `None` for a stage that never started.
        duration: Option<Duration>,
    },
    RunFinished {
        status: RunStatus,
        at: SystemTime,
        duration: Duration,
    },
}

/// What subscribers need to know about a run as it starts.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub id: i64,
    /// Where the run's logs and scripts go.
    pub dir: PathBuf,
    /// Where the stages run: a workspace, or the repository itself with `--in-place`.
    pub root: PathBuf,
    pub commit: Option<String>,
    /// The source tree; `None` for a run in place.
    pub tree: Option<String>,
    pub branch: Option<String>,
    pub dirty: bool,
    /// The planned stages in plan order: name, and the names of what each needs.
    pub stages: Vec<(String, Vec<String>)>,
    /// Whether stages may run at the same time, so their output needs telling apart.
    pub parallel: bool,
    /// Each stage's median duration in history, for progress and the time left.
    pub expected: Vec<Option<Duration>>,
}

/// Stages a `@generates` stage added to the run.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The plan index of the stage that generated them; `None` where that is not known
    /// (`gzl attach` learns of them from history).
    pub generator: Option<usize>,
    /// The plan index of the first of them; the rest follow in order.
    pub first: usize,
    pub stages: Vec<JoinedStage>,
}

/// One stage joined to a run, with what history and the views need of it.
#[derive(Debug, Clone)]
pub struct JoinedStage {
    pub name: String,
    /// What it needs, by name.
    pub needs: Vec<String>,
    /// Its input key and what it is made of (JSON), when it ran isolated.
    pub key: Option<String>,
    pub inputs: Option<String>,
    /// Where it runs and what gzl adds to its environment (secrets masked).
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Its median duration in history.
    pub expected: Option<Duration>,
}

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// Not run: run `from` passed with the same inputs.
    Cached {
        from: i64,
    },
    /// Exited non-zero, was killed by a signal, or could not be started (neither is set).
    Failed {
        exit_code: Option<i32>,
        signal: Option<i32>,
    },
    /// Ran past `@timeout` (or `@idle-timeout` without output, when `idle`).
    TimedOut {
        limit: Duration,
        idle: bool,
    },
    /// Not run: the stage at this plan index, which it needs, did not pass.
    Skipped {
        because: usize,
    },
    /// Stopped, or never started, because the run was cancelled.
    Cancelled,
    /// Stopped by `gzl stop` from another process.
    Stopped,
}

impl Outcome {
    pub fn status(self) -> StageStatus {
        match self {
            Outcome::Passed => StageStatus::Passed,
            Outcome::Cached { .. } => StageStatus::Cached,
            Outcome::Failed { .. } => StageStatus::Failed,
            Outcome::TimedOut { .. } => StageStatus::TimedOut,
            Outcome::Skipped { .. } => StageStatus::Skipped,
            Outcome::Cancelled => StageStatus::Cancelled,
            Outcome::Stopped => StageStatus::Stopped,
        }
    }

    /// Whether what needs this stage may run.
    pub fn is_pass(self) -> bool {
        matches!(self, Outcome::Passed | Outcome::Cached { .. })
    }

    pub fn exit_code(self) -> Option<i32> {
        match self {
            Outcome::Passed => Some(0),
            Outcome::Cached { .. } => None,
            Outcome::Failed { exit_code, .. } => exit_code,
            _ => None,
        }
    }
}
