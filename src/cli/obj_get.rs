use std::path::Path;

use crate::artifacts;
use crate::error::{Error, ExitCode};

#[derive(clap::Args)]
pub struct Args {
    /// Paths a stage this one needs stored, relative to that stage's directory; restored at
    /// the same paths relative to this one's
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
}

pub fn run(directory: Option<&Path>, args: &Args) -> Result<ExitCode, Error> {
    let dir = super::current_dir(directory)?;
    for (path, restored, stage) in artifacts::get(&dir, &args.paths)? {
        super::note(&format!(
            "gzl: restored {path} from `{stage}` ({})",
            super::artifacts::files_and_size(restored.files, restored.size)
        ));
    }
    Ok(ExitCode::Success)
}
