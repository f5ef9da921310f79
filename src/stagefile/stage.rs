use std::path::PathBuf;
use std::time::Duration;

use super::Span;
use crate::config::Clean;

/// One stage of a Gzlfile, as validated by the analyzer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub name: String,
    /// Where the name stands in the header line.
    pub name_span: Span,
    /// 1-based line of the header.
    pub line: usize,
    /// The comment lines right above the header, without their `#`, joined by `\n`.
    pub description: Option<String>,
    /// The stages this one needs, in the order written, without repeats.
    pub needs: Vec<String>,
    pub attributes: Attributes,
    /// The body's script with the common indentation removed; `None` for a group.
    pub script: Option<String>,
    /// The 1-based line of the file that is the script's first line (0 for a group).
    pub script_line: usize,
}

impl Stage {
    /// A stage without a script only gathers the stages it needs.
    pub fn is_group(&self) -> bool {
        self.script.is_none()
    }
}

/// The `@` attributes of a stage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// `@timeout`: the longest the whole stage may take.
    pub timeout: Option<Duration>,
    /// `@idle-timeout`: the longest the stage may go without printing.
    pub idle_timeout: Option<Duration>,
    /// `@env KEY=VALUE`, in the order written.
    pub env: Vec<(String, String)>,
    /// `@shell PROGRAM [ARGS]`: the interpreter that gets the script file as its last argument.
    pub shell: Option<Vec<String>>,
    /// `@dir PATH`: the working directory, relative to the repository root.
    pub dir: Option<PathBuf>,
    /// `@when PATTERN...`: the files the stage reads, as gitignore-style globs; every file
    /// when absent.
    pub when: Option<Vec<String>>,
    /// `@outputs PATTERN...`: the paths the stage leaves for the stages after it, as globs
    /// relative to its directory; stored when it passes, restored when it is reused.
    pub outputs: Option<Vec<String>>,
    /// `@clean all`: the run's workspace starts from a pristine tree.
    pub clean: Option<Clean>,
    /// `@secret NAME`: secrets the stage gets in its environment, in the order written.
    pub secrets: Vec<String>,
    /// `@generates`: what the stage prints on stdout is Gzlfile text, stages joined to the run.
    pub generates: bool,
}

/// The attribute names the analyzer knows, as written after `@`.
pub const KNOWN_ATTRIBUTES: [&str; 10] = [
    "timeout",
    "idle-timeout",
    "env",
    "shell",
    "dir",
    "when",
    "outputs",
    "clean",
    "secret",
    "generates",
];
