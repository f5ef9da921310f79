use super::Context;
use crate::config::UserConfig;
use crate::error::{Error, ExitCode};
use crate::home::Home;
use crate::pin::{self, Cache, Origin, Pin, PinError, Serving, Trust, Wanted};
use crate::release::{ReleaseError, Source};

#[derive(clap::Args)]
pub struct PinArgs {
    /// The version (`0.4.2`, exactly) or requirement (`0.4`) this repository is written for;
    /// the latest release when omitted
    #[arg(value_name = "VERSION")]
    release: Option<String>,

    /// Follow a release track instead of a version
    #[arg(long, value_name = "NAME", conflicts_with = "release")]
    channel: Option<String>,

    /// First run the stages that passed at HEAD with that gzl, in a workspace; pin it only
    /// when they all pass
    #[arg(long, requires = "release")]
    verify: bool,

    /// Trust the release source this repository's gzl.toml names (release_url), for this
    /// repository: gzl may then fetch the pinned gzl from it
    #[arg(long, conflicts_with_all = ["release", "channel", "verify", "untrust"])]
    trust: bool,

    /// Stop trusting the release source this repository's gzl.toml names
    #[arg(long, conflicts_with_all = ["release", "channel", "verify"])]
    untrust: bool,
}

/// `gzl pin`: writes the pin into gzl.toml, keeping the rest of the file.
pub fn pin(context: &Context, args: &PinArgs) -> Result<ExitCode, Error> {
    if args.trust || args.untrust {
        return trust(context, args.trust);
    }
    let (key, value) = match (&args.release, &args.channel) {
        (Some(version), _) => {
            let requirement = pin::requirement(version).map_err(|_| PinError::NotAVersion {
                written: version.clone(),
            })?;
            released(
                context,
                &Wanted::Version {
                    written: version.clone(),
                    requirement: requirement.clone(),
                },
            )?;
            if args.verify && !verify(context, version, requirement)? {
                return Ok(ExitCode::Failure);
            }
            ("version", version.clone())
        }
        (None, Some(channel)) => {
            released(context, &Wanted::Channel(channel.clone()))?;
            ("channel", channel.clone())
        }
        (None, None) => {
            let (source, _) = sources(context, "the latest gzl")?;
            let manifest = source.manifest("the latest gzl")?;
            ("version", manifest.latest()?.to_string())
        }
    };
    let path = pin::write(&context.project.root, key, &value)?;
    super::note(&format!(
        "pinned gzl {key} = \"{value}\" in {}",
        path.display()
    ));
    Ok(ExitCode::Success)
}

/// Checks that `wanted` can be served before it is pinned: this gzl or a cached one serves it,
/// or the release source has a release for it. A pin nothing serves would stop every later
/// command in the repository.
fn released(context: &Context, wanted: &Wanted) -> Result<(), Error> {
    let home = Home::locate()?;
    if let Wanted::Version { .. } = wanted
        && pin::serving(wanted, &Cache::of(&home)) != Serving::Missing
    {
        return Ok(());
    }
    let (source, _) = sources(context, &format!("gzl {wanted}"))?;
    let manifest = source
        .manifest(&format!("gzl {wanted}"))
        .map_err(|error| match error {
            error @ ReleaseError::Unreachable { .. } => Error::from(PinError::Unchecked {
                wanted: wanted.to_string(),
                source: error,
            }),
            error => error.into(),
        })?;
    let found = match wanted {
        Wanted::Version {
            written,
            requirement,
        } => manifest.newest(requirement, written),
        Wanted::Channel(name) => manifest.channel(name),
    };
    found.map_err(|release| PinError::Unreleased { release })?;
    Ok(())
}

/// `gzl pin --verify`: whether the gzl that would serve `version` passes every stage that
/// passed at HEAD. Says which do not.
fn verify(
    context: &Context,
    version: &str,
    requirement: semver::VersionReq,
) -> Result<bool, Error> {
    let project = &context.project;
    let head = project.repo.as_ref().and_then(|repo| repo.head_commit());
    let Some(head) = head else {
        return Err(Error::usage(
            "--verify runs the stages that passed at HEAD, and there is no commit here",
            Some("commit, run the pipeline, then verify".into()),
        ));
    };
    let passed = crate::pipeline::open_history()?.passed_at(&project.identity(), &head)?;
    if passed.is_empty() {
        return Err(PinError::NothingPassed { commit: head }.into());
    }
    let wanted = Wanted::Version {
        written: version.into(),
        requirement,
    };
    let home = Home::locate()?;
    let cache = Cache::of(&home);
    let (version, candidate) = match pin::serving(&wanted, &cache) {
        Serving::Cached { version, path } => (version, path),
        _ => {
            let (source, _) = sources(context, &format!("gzl {wanted}"))?;
            let (version, serving) = pin::obtain(&wanted, &source, &cache, &mut |_| {})?;
            (version, binary(serving)?)
        }
    };
    let stages: Vec<String> = passed.iter().cloned().collect();
    super::note(&format!(
        "gzl: trying gzl {version} on the {} stages that passed at {}: {}",
        stages.len(),
        &head[..head.len().min(12)],
        stages.join(", ")
    ));
    let trial = pin::trial(&candidate, &project.root, &head, &stages)?;
    let differences = trial.differences(&passed);
    let run = trial.run.map_or_else(String::new, |run| run.to_string());
    if differences.is_empty() {
        super::note(&format!(
            "gzl {version} passes all {} (run {run})",
            stages.len()
        ));
        return Ok(true);
    }
    let mut text = String::new();
    for (stage, status) in &differences {
        text.push_str(&format!(
            "  {stage}: passed before, {status} with gzl {version}\n"
        ));
    }
    text.push_str(&format!(
        "gzl {version} differs on {} of {} stages; the pin stays as it was (`gzl logs {run} STAGE` shows why)",
        differences.len(),
        stages.len()
    ));
    super::note(&text);
    Ok(false)
}

/// `gzl pin --trust` and `--untrust`: whether gzl may fetch from the release source this
/// repository's gzl.toml names.
fn trust(context: &Context, allow: bool) -> Result<ExitCode, Error> {
    let root = &context.project.root;
    let home = Home::locate()?;
    let trust = Trust::of(&home);
    if !allow {
        match trust.revoke(root)? {
            Some(url) => super::note(&format!(
                "no longer trusting {url} as the release source of {}",
                root.display()
            )),
            None => super::note(&format!(
                "no release source was trusted for {}",
                root.display()
            )),
        }
        return Ok(ExitCode::Success);
    }
    let Some(url) = Pin::read(root)?.release_url else {
        return Err(Error::usage(
            format!(
                "{} names no release_url: there is nothing to trust",
                root.join(crate::config::FILE_NAME).display()
            ),
            Some(
                "gzl fetches from your release source or the project's, which need no trust".into(),
            ),
        ));
    };
    trust.allow(root, &url)?;
    super::note(&format!(
        "trusted {url} as the release source of {} (remembered in {})",
        root.display(),
        trust.path().display()
    ));
    let user = UserConfig::load(home.config())?;
    if let Some(yours) = Source::users_url(&user) {
        super::note(&format!(
            "your own release source {yours} (GZL_RELEASE_URL or config.toml) still wins over it"
        ));
    }
    Ok(ExitCode::Success)
}

/// The release source for this repository, and the user's settings, for a command that needs
/// one to get `wanted`: a source the repository names that the user has not trusted for it is
/// an error, unless the user trusts it at the prompt.
pub(super) fn sources(context: &Context, wanted: &str) -> Result<(Source, UserConfig), Error> {
    let home = Home::locate()?;
    let user = UserConfig::load(home.config())?;
    let pin = Pin::read(&context.project.root)?;
    match consented(context, &pin, &user, wanted)? {
        Ok(source) => Ok((source, user)),
        Err(refused) => Err(refused.into()),
    }
}

/// The release source for this repository, or why it may not be used: the repository names one
/// the user has not trusted for it. On a terminal, the user is asked, and a yes is remembered.
fn consented(
    context: &Context,
    pin: &Pin,
    user: &UserConfig,
    wanted: &str,
) -> Result<Result<Source, PinError>, Error> {
    let home = Home::locate()?;
    let trust = Trust::of(&home);
    let root = &context.project.root;
    let origin = Origin::of(pin, user, &trust, root);
    let url = match origin.source(user) {
        Ok(source) => return Ok(Ok(source)),
        Err(url) => url.to_string(),
    };
    let untrusted = PinError::Untrusted {
        wanted: wanted.into(),
        url: url.clone(),
        repository: root.clone(),
    };
    if !ask(&untrusted)? {
        return Ok(Err(untrusted));
    }
    trust.allow(root, &url)?;
    super::note(&format!(
        "gzl: trusted {url} for {} (remembered in {}; `gzl pin --untrust` forgets it)",
        root.display(),
        trust.path().display()
    ));
    Ok(Ok(Source::new(&url, user)))
}

/// Asks the user at the terminal whether to trust the source `untrusted` names; false without
/// a terminal (stdin and stderr) to ask at.
fn ask(untrusted: &PinError) -> Result<bool, Error> {
    use std::io::IsTerminal as _;
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Ok(false);
    }
    super::note_raw(&format!(
        "gzl: {untrusted}.\ngzl: trust it for this repository, and run what it serves? [y/N] "
    ));
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|source| Error::Io {
            message: "cannot read the answer".into(),
            source,
        })?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// `gzl version`: this gzl, the repository's pin, and which gzl serves it.
pub fn version(context: &Context) -> Result<ExitCode, Error> {
    let home = Home::locate()?;
    let cache = Cache::of(&home);
    let this = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "?".into());
    let mut out = format!("gzl {} ({this})\n", pin::running());
    let root = &context.project.root;
    let pin = Pin::read(root);
    let user = UserConfig::load(home.config()).unwrap_or_default();
    let origin = pin
        .as_ref()
        .ok()
        .map(|pin| Origin::of(pin, &user, &Trust::of(&home), root));
    match pin {
        Ok(Pin { wanted: None, .. }) => {
            out.push_str("this repository pins no version (gzl.toml [gzl] version)\n");
        }
        Ok(Pin {
            wanted: Some(wanted),
            ..
        }) => match pin::serving(&wanted, &cache) {
            Serving::This => out.push_str(&format!("pinned: {wanted}; this gzl serves it\n")),
            Serving::Cached { version, path } => out.push_str(&format!(
                "pinned: {wanted}; gzl {version} serves this repository, from {}\n",
                path.display()
            )),
            Serving::Missing if matches!(origin, Some(Origin::Untrusted(_))) => {
                out.push_str(&format!(
                    "pinned: {wanted}; not in {} yet, and gzl does not fetch it from a release source you have not trusted\n",
                    cache.dir().display()
                ))
            }
            Serving::Missing => out.push_str(&format!(
                "pinned: {wanted}; not in {} yet: the next gzl command fetches it\n",
                cache.dir().display()
            )),
        },
        Err(error) => out.push_str(&format!("pinned: {error}\n")),
    }
    if let Some(origin) = origin {
        out.push_str(&format!("release source: {origin}\n"));
    }
    super::print(&out);
    Ok(ExitCode::Success)
}

/// The name of `command` when it only reads history: a pin that cannot be served does not
/// stop it, as nothing it does depends on which gzl wrote the history.
pub(super) fn reads_only(command: &super::Command) -> Option<&'static str> {
    use super::Command;
    Some(match command {
        Command::Ls(_) => "ls",
        Command::Logs(_) => "logs",
        Command::Why(_) => "why",
        Command::Check(_) => "check",
        Command::Artifacts(_) => "artifacts",
        Command::Attach(_) => "attach",
        Command::Ui(_) => "ui",
        _ => return None,
    })
}

/// Before a command runs in a repository: hand over to the pinned gzl when this one is not
/// it, fetching it first when the cache lacks it. Returns only when this gzl goes on. For a
/// command that only reads history (`reading` names it), a pin that cannot be served is a
/// warning, and this gzl goes on.
pub fn obey(context: &Context, no_pin: bool, reading: Option<&str>) -> Result<(), Error> {
    match hand_over(context, no_pin) {
        Err(error) if let Some(command) = reading => {
            super::note(&format!(
                "gzl: warning: {error}; `gzl {command}` only reads history, so gzl {} goes on",
                pin::running()
            ));
            Ok(())
        }
        result => result,
    }
}

fn hand_over(context: &Context, no_pin: bool) -> Result<(), Error> {
    if std::env::var_os(pin::HANDED_OVER).is_some() {
        return Ok(());
    }
    let pin = Pin::read(&context.project.root)?;
    let Some(wanted) = &pin.wanted else {
        return Ok(());
    };
    let home = Home::locate()?;
    let cache = Cache::of(&home);
    let serving = pin::serving(wanted, &cache);
    if no_pin && serving != Serving::This {
        super::note(&format!(
            "gzl: warning: this repository pins gzl {wanted}; running gzl {} anyway (--no-pin)",
            pin::running()
        ));
        return Ok(());
    }
    let serving = match serving {
        Serving::Missing => provide(context, wanted, &cache)?,
        serving => serving,
    };
    let Serving::Cached { version, path } = serving else {
        return Ok(());
    };
    cache.mark_used(&version);
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

/// Finds out from the release source which gzl serves `wanted`, and fetches it, unless the
/// user's settings forbid fetching. A release source the repository names that the user has
/// not trusted for it is not used: this gzl goes on, with a warning that says how to allow it.
fn provide(context: &Context, wanted: &Wanted, cache: &Cache) -> Result<Serving, Error> {
    let home = Home::locate()?;
    let user = UserConfig::load(home.config())?;
    let pin = Pin::read(&context.project.root)?;
    if !user.auto_update {
        // A channel's last known release still serves, however old the knowledge.
        if let Wanted::Channel(name) = wanted
            && let Some((version, _)) = cache.channel(name)
            && let serving @ (Serving::This | Serving::Cached { .. }) =
                pin::serving_version(&version, cache)
        {
            return Ok(serving);
        }
        return Err(PinError::NotCached {
            wanted: wanted.to_string(),
            running: pin::running().to_string(),
            cache: cache.dir().to_path_buf(),
            settings: home.config().join(UserConfig::FILE_NAME),
        }
        .into());
    }
    let source = match consented(context, &pin, &user, &format!("gzl {wanted}"))? {
        Ok(source) => source,
        Err(untrusted) => {
            super::note(&format!(
                "gzl: warning: {untrusted}; running gzl {} instead (`gzl pin --trust` allows it)",
                pin::running()
            ));
            return Ok(Serving::This);
        }
    };
    let (_, serving) = pin::obtain(wanted, &source, cache, &mut |version| {
        super::note(&format!(
            "gzl: this repository pins gzl {wanted}; fetching gzl {version} from {}",
            source.url()
        ));
    })?;
    Ok(serving)
}

/// The binary of a gzl `pin::obtain` gave: a cached one, or this one.
pub(super) fn binary(serving: Serving) -> Result<std::path::PathBuf, Error> {
    match serving {
        Serving::Cached { path, .. } => Ok(path),
        _ => std::env::current_exe().map_err(|source| Error::Io {
            message: "cannot find this gzl's binary".into(),
            source,
        }),
    }
}
