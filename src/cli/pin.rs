use super::Context;
use crate::error::{Error, ExitCode};
use crate::home::Home;
use crate::pin::{self, Serving};

#[derive(clap::Args)]
pub struct PinArgs {
    /// The version (`0.4.2`, exactly) or requirement (`0.4`) this repository is written for
    #[arg(value_name = "VERSION", required_unless_present = "channel")]
    release: Option<String>,

    /// Follow a release track instead of a version
    #[arg(long, value_name = "NAME", conflicts_with = "release")]
    channel: Option<String>,
}

/// `gzl pin`: writes the pin into gzl.toml, keeping the rest of the file.
pub fn pin(context: &Context, args: &PinArgs) -> Result<ExitCode, Error> {
    let (key, value) = match (&args.release, &args.channel) {
        (Some(version), _) => {
            pin::requirement(version)?;
            ("version", version.clone())
        }
        (None, Some(channel)) => ("channel", channel.clone()),
        (None, None) => unreachable!("clap requires one"),
    };
    let path = pin::write(&context.project.root, key, &value)?;
    super::note(&format!(
        "pinned gzl {key} = \"{value}\" in {}",
        path.display()
    ));
    Ok(ExitCode::Success)
}

/// `gzl version`: this gzl, the repository's pin, and which gzl serves it.
pub fn version(context: &Context) -> Result<ExitCode, Error> {
    let home = Home::locate()?;
    let this = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "?".into());
    let mut out = format!("gzl {} ({this})\n", pin::running());
    match pin::serving(&context.project.root, &home) {
        Ok((None, _)) => out.push_str("this repository pins no version (gzl.toml [gzl] version)\n"),
        Ok((Some(wanted), Serving::This)) => {
            out.push_str(&format!("pinned: {wanted}; this gzl serves it\n"));
        }
        Ok((Some(_), Serving::Cached { version, path })) => out.push_str(&format!(
            "pinned: gzl {version} serves this repository, from {}\n",
            path.display()
        )),
        Err(error) => out.push_str(&format!("pinned: {error}\n")),
    }
    super::print(&out);
    Ok(ExitCode::Success)
}

/// Before a command runs in a repository: hand over to the pinned gzl when this one is not
/// it. Returns only when this gzl goes on.
pub fn obey(context: &Context, no_pin: bool) -> Result<(), Error> {
    if std::env::var_os(pin::HANDED_OVER).is_some() {
        return Ok(());
    }
    let home = Home::locate()?;
    let path = match (pin::serving(&context.project.root, &home), no_pin) {
        (Ok((_, Serving::This)), _) => return Ok(()),
        (Ok((Some(wanted), Serving::Cached { .. })), true)
        | (
            Err(Error::Pin(pin::PinError::Unavailable {
                requirement: wanted,
                ..
            })),
            true,
        ) => {
            super::note(&format!(
                "gzl: warning: this repository pins gzl {wanted}; running gzl {} anyway (--no-pin)",
                pin::running()
            ));
            return Ok(());
        }
        (Ok((_, Serving::Cached { path, .. })), _) => path,
        (Err(error), _) => return Err(error),
    };
    use std::os::unix::process::CommandExt as _;
    let error = std::process::Command::new(&path)
        .args(std::env::args_os().skip(1))
        .env(pin::HANDED_OVER, "1")
        .exec();
    Err(Error::Io {
        message: format!("cannot hand over to {}", path.display()),
        source: error,
    })
}
