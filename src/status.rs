//! The states of runs and stages, as history stores them and people read them.

use std::fmt;

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Running,
    Passed,
    Failed,
    /// Stopped by Ctrl-C or SIGTERM.
    Cancelled,
    /// Stopped, or one of its stages stopped, by `gzl stop`.
    Stopped,
    /// Its gzl process died before it could finish the run.
    Interrupted,
}

/// How a stage of a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageStatus {
    Pending,
    Running,
    Passed,
    /// Not run: a passed execution with the same inputs is reused.
    Cached,
    Failed,
    TimedOut,
    /// Not run because a stage it needs did not pass.
    Skipped,
    /// Stopped, or never started, because the run was cancelled.
    Cancelled,
    /// Stopped by `gzl stop`.
    Stopped,
    Interrupted,
}

macro_rules! string_forms {
    ($type:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $type {
            /// The form stored in history and shown to people.
            pub fn as_str(self) -> &'static str {
                match self { $($type::$variant => $text),* }
            }

            /// Reads the stored form back.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($type::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_forms!(RunStatus {
    Running => "running",
    Passed => "passed",
    Failed => "failed",
    Cancelled => "cancelled",
    Stopped => "stopped",
    Interrupted => "interrupted",
});

string_forms!(StageStatus {
    Pending => "pending",
    Running => "running",
    Passed => "passed",
    Cached => "cached",
    Failed => "failed",
    TimedOut => "timed-out",
    Skipped => "skipped",
    Cancelled => "cancelled",
    Stopped => "stopped",
    Interrupted => "interrupted",
});

impl StageStatus {
    /// Whether the stage has reached its final state.
    pub fn is_final(self) -> bool {
        !matches!(self, StageStatus::Pending | StageStatus::Running)
    }

    /// Whether the stage's result counts as passed: run and passed, or reused.
    pub fn is_pass(self) -> bool {
        matches!(self, StageStatus::Passed | StageStatus::Cached)
    }
}
