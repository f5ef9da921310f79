use std::path::Path;

use crate::artifacts;
use crate::error::{Error, ExitCode};

#[derive(clap::Args)]
pub struct Args {
    /// Files or directories, relative to the stage's directory
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<String>,
}

pub fn run(directory: Option<&Path>, args: &Args) -> Result<ExitCode, Error> {
    let dir = super::current_dir(directory)?;
    for (path, stored) in artifacts::store(&dir, &args.paths)? {
        super::note(&format!(
            "gzl: stored {path} ({})",
            super::artifacts::files_and_size(stored.files, stored.size)
        ));
    }
    Ok(ExitCode::Success)
}
