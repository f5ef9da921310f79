use super::Context;
use crate::error::{Error, ExitCode};
use crate::templates;

#[derive(clap::Args)]
pub struct Args {
    /// Overwrite an existing Gzlfile
    #[arg(long)]
    force: bool,
}

pub fn run(context: &Context, args: &Args) -> Result<ExitCode, Error> {
    let project = &context.project;
    if let Some(repo) = &project.repo {
        repo.needs_worktree("gzl init")?;
    }
    let path = &project.gzlfile;
    if path.exists() && !args.force {
        return Err(Error::usage(
            format!("{} already exists", path.display()),
            Some("pass --force to overwrite it".into()),
        ));
    }
    let template = templates::choose(&project.root);
    std::fs::write(path, template.text).map_err(|source| Error::Io {
        message: format!("cannot write {}", path.display()),
        source,
    })?;
    super::note(&format!(
        "wrote {} from the {} template; `gzl check` shows its stages, `gzl run` runs them",
        super::render::shown_path(path),
        template.name
    ));
    Ok(ExitCode::Success)
}
