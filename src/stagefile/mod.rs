//! The `Gzlfile`: finding it, reading it, and checking it into a list of stages.
//!
//! `grammar/gzl.pest` gives the structure; `analyzer` gives the meaning and every diagnostic.

mod analyzer;
mod diagnostic;
mod stage;

use std::path::{Path, PathBuf};

pub use analyzer::{is_valid_stage_name, suggest};
pub use diagnostic::{Diagnostic, SHOWN, Span, escape_text, render_all};
pub use stage::{Attributes, KNOWN_ATTRIBUTES, Stage};

/// The file name gzl looks for.
pub const FILE_NAME: &str = "Gzlfile";

/// A loaded and validated Gzlfile.
#[derive(Debug, Clone)]
pub struct Gzlfile {
    pub path: PathBuf,
    pub source: String,
    /// Stages in the order the file defines them.
    pub stages: Vec<Stage>,
}

/// Why a Gzlfile could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StagefileError {
    #[error("no Gzlfile found in {}", searched.display())]
    NotFound { searched: PathBuf },
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has {} error{}", path.display(), diagnostics.len(), if diagnostics.len() == 1 { "" } else { "s" })]
    Invalid {
        path: PathBuf,
        source_text: String,
        diagnostics: Vec<Diagnostic>,
    },
}

impl Gzlfile {
    /// Reads and checks the Gzlfile at `path`.
    pub fn load(path: &Path) -> Result<Self, StagefileError> {
        let bytes = std::fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                StagefileError::NotFound {
                    searched: path.to_path_buf(),
                }
            } else {
                StagefileError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        Self::from_bytes(path, bytes)
    }

    /// Checks `bytes` as the content of the Gzlfile at `path`.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, StagefileError> {
        let source = String::from_utf8(bytes).map_err(|error| {
            // Shown with the bad bytes replaced; the text before them is unchanged, so the
            // offset still points at the first one.
            let at = error.utf8_error().valid_up_to();
            let replacement = char::REPLACEMENT_CHARACTER.len_utf8();
            StagefileError::Invalid {
                path: path.to_path_buf(),
                source_text: String::from_utf8_lossy(error.as_bytes()).into_owned(),
                diagnostics: vec![
                    Diagnostic::new("the Gzlfile is not valid UTF-8", at..at + replacement)
                        .label("not UTF-8")
                        .help("save the Gzlfile as UTF-8"),
                ],
            }
        })?;
        Self::parse(path, source)
    }

    /// Checks `source` as the text of the Gzlfile at `path`.
    pub fn parse(path: &Path, source: String) -> Result<Self, StagefileError> {
        match analyzer::analyze(&source, &[]) {
            Ok(stages) => Ok(Gzlfile {
                path: path.to_path_buf(),
                source,
                stages,
            }),
            Err(diagnostics) => Err(StagefileError::Invalid {
                path: path.to_path_buf(),
                source_text: source,
                diagnostics,
            }),
        }
    }

    /// Checks `text`, what stage `generator` printed, as stages to join to a run in which
    /// `taken` names the stages already defined. Diagnostics point into `text`.
    pub fn generated(
        generator: &str,
        text: &str,
        taken: &[&str],
    ) -> Result<Vec<Stage>, StagefileError> {
        analyzer::analyze(text, taken).map_err(|diagnostics| StagefileError::Invalid {
            path: PathBuf::from(format!("the output of `{generator}`")),
            source_text: text.to_string(),
            diagnostics,
        })
    }

    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|stage| stage.name == name)
    }

    /// The git blob id of the file's content: the same id `git hash-object` prints.
    pub fn content_id(&self) -> String {
        crate::home::blob_id(self.source.as_bytes())
    }
}
