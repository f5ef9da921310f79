//! The library's error, and the exit code each kind of failure gives.

use crate::artifacts::ArtifactError;
use crate::bisect::BisectError;
use crate::config::ConfigError;
use crate::debug::DebugError;
use crate::git::GitError;
use crate::history::HistoryError;
use crate::hooks::HookError;
use crate::pin::PinError;
use crate::plan::PlanError;
use crate::release::ReleaseError;
use crate::secrets::SecretError;
use crate::stagefile::StagefileError;
use crate::stop::StopError;
use crate::workspace::WorkspaceError;

/// gzl's exit codes; docs/cli.md lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitCode {
    /// Everything passed.
    Success = 0,
    /// A stage failed or timed out (or `gzl stop`-like commands found nothing to do).
    Failure = 1,
    /// Bad usage or a bad Gzlfile: nothing ran.
    Usage = 2,
    /// gzl itself failed: history, files, git.
    Internal = 3,
    /// Interrupted by Ctrl-C or SIGTERM.
    Interrupted = 130,
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code as u8)
    }
}

/// Any failure of a gzl command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Stagefile(#[from] StagefileError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Bisect(#[from] BisectError),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error(transparent)]
    Debug(#[from] DebugError),
    #[error(transparent)]
    Stop(#[from] StopError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error("interrupted")]
    Interrupted,
    #[error("{message}")]
    Usage {
        message: String,
        help: Option<String>,
    },
    #[error("{message}")]
    Io {
        message: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn usage(message: impl Into<String>, help: Option<String>) -> Self {
        Error::Usage {
            message: message.into(),
            help,
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Stagefile(StagefileError::Read { .. }) => ExitCode::Internal,
            Error::Stagefile(_) | Error::Plan(_) | Error::Usage { .. } => ExitCode::Usage,
            Error::Config(ConfigError::Invalid { .. }) => ExitCode::Usage,
            Error::Bisect(BisectError::NoGood { .. } | BisectError::NotAncestor { .. }) => {
                ExitCode::Usage
            }
            Error::Bisect(_) => ExitCode::Failure,
            Error::Hook(HookError::Unknown { .. }) => ExitCode::Usage,
            Error::Hook(_) => ExitCode::Internal,
            Error::Debug(_) => ExitCode::Usage,
            Error::Stop(_) => ExitCode::Failure,
            Error::Artifact(error) if error.is_usage() => ExitCode::Usage,
            Error::Artifact(_) => ExitCode::Internal,
            Error::Secret(SecretError::BadName { .. } | SecretError::TooShort { .. }) => {
                ExitCode::Usage
            }
            Error::Secret(_) => ExitCode::Internal,
            Error::Pin(
                PinError::Write { .. }
                | PinError::Cache { .. }
                | PinError::Trial { .. }
                | PinError::Unchecked { .. },
            ) => ExitCode::Internal,
            Error::Pin(_) => ExitCode::Usage,
            // The network failed, not the command line: trying again may do.
            Error::Release(
                ReleaseError::Install { .. }
                | ReleaseError::Unreachable { .. }
                | ReleaseError::Fetch { .. },
            ) => ExitCode::Internal,
            // Unreachable, unknown or damaged releases: what to fetch, or from where, must change.
            Error::Release(_) => ExitCode::Usage,
            Error::Interrupted => ExitCode::Interrupted,
            Error::Git(GitError::NotACommit { .. } | GitError::Bare { .. }) => ExitCode::Usage,
            Error::History(_)
            | Error::Git(_)
            | Error::Config(_)
            | Error::Workspace(_)
            | Error::Io { .. } => ExitCode::Internal,
        }
    }
}
