use crate::config::UserConfig;
use crate::error::{Error, ExitCode};
use crate::home::Home;
use crate::pin;
use crate::release::Source;

#[derive(clap::Args)]
pub struct Args {
    /// A version (`0.4.2`) or requirement (`0.4`); the newest release on your channel when
    /// omitted
    #[arg(value_name = "VERSION")]
    release: Option<String>,
}

/// `gzl self-update`: replaces this gzl with another release. Repositories' pins do not
/// apply: this is the user's own gzl, following the user's settings.
pub fn run(args: &Args) -> Result<ExitCode, Error> {
    let home = Home::locate()?;
    let user = UserConfig::load(home.config())?;
    let url = Source::users_url(&user).unwrap_or_else(|| crate::release::DEFAULT_URL.into());
    let source = Source::new(&url, &user);
    let wanted = match (&args.release, &user.channel) {
        (Some(version), _) => format!("gzl {version}"),
        (None, Some(channel)) => format!("gzl channel `{channel}`"),
        (None, None) => "the latest gzl".into(),
    };
    let manifest = source.manifest(&wanted)?;
    let running = pin::running();
    let target = match (&args.release, &user.channel) {
        (Some(version), _) => manifest.newest(&pin::requirement(version)?, version)?,
        (None, Some(channel)) => manifest.channel(channel)?,
        (None, None) => manifest.latest()?,
    };
    if target == running || (args.release.is_none() && target < running) {
        super::note(&format!(
            "gzl {running} is up to date ({} offers {target})",
            source.url()
        ));
        return Ok(ExitCode::Success);
    }
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|source| Error::Io {
            message: "cannot find this gzl's binary".into(),
            source,
        })?;
    manifest.replace(&target, &exe)?;
    super::note(&format!(
        "updated gzl {running} to {target} ({})",
        exe.display()
    ));
    Ok(ExitCode::Success)
}
