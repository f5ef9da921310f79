use super::Context;
use crate::config::UserConfig;
use crate::error::{Error, ExitCode};
use crate::home::Home;
use crate::pin::{self, Cache, Pin, PinError, Serving, Wanted};
use crate::release::Source;

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
}

/// `gzl pin`: writes the pin into gzl.toml, keeping the rest of the file.
pub fn pin(context: &Context, args: &PinArgs) -> Result<ExitCode, Error> {
    let (key, value) = match (&args.release, &args.channel) {
        (Some(version), _) => {
            let requirement = pin::requirement(version)?;
            if args.verify && !verify(context, version, requirement)? {
                return Ok(ExitCode::Failure);
            }
            ("version", version.clone())
        }
        (None, Some(channel)) => ("channel", channel.clone()),
        (None, None) => {
            let (source, _) = sources(context)?;
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
            let (source, _) = sources(context)?;
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

/// The release source in force for this repository, and the user's settings.
pub(super) fn sources(context: &Context) -> Result<(Source, UserConfig), Error> {
    let home = Home::locate()?;
    let user = UserConfig::load(home.config())?;
    let pin = Pin::read(&context.project.root)?;
    let source = Source::choose(pin.release_url.as_deref(), user.release_url.as_deref());
    Ok((source, user))
}

/// `gzl version`: this gzl, the repository's pin, and which gzl serves it.
pub fn version(context: &Context) -> Result<ExitCode, Error> {
    let home = Home::locate()?;
    let cache = Cache::of(&home);
    let this = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "?".into());
    let mut out = format!("gzl {} ({this})\n", pin::running());
    match Pin::read(&context.project.root) {
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
            Serving::Missing => out.push_str(&format!(
                "pinned: {wanted}; not in {} yet: the next gzl command fetches it\n",
                cache.dir().display()
            )),
        },
        Err(error) => out.push_str(&format!("pinned: {error}\n")),
    }
    if let Ok((source, _)) = sources(context) {
        out.push_str(&format!("release source: {}\n", source.url()));
    }
    super::print(&out);
    Ok(ExitCode::Success)
}

/// Before a command runs in a repository: hand over to the pinned gzl when this one is not
/// it, fetching it first when the cache lacks it. Returns only when this gzl goes on.
pub fn obey(context: &Context, no_pin: bool) -> Result<(), Error> {
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
/// user's settings forbid fetching.
fn provide(context: &Context, wanted: &Wanted, cache: &Cache) -> Result<Serving, Error> {
    let (source, user) = sources(context)?;
    if !user.auto_update {
        // A channel's last known release still serves, however old the knowledge.
        if let Wanted::Channel(name) = wanted
            && let Some((version, _)) = cache.channel(name)
            && let serving @ (Serving::This | Serving::Cached { .. }) =
                pin::serving_version(&version, cache)
        {
            return Ok(serving);
        }
        let home = Home::locate()?;
        return Err(PinError::NotCached {
            wanted: wanted.to_string(),
            running: pin::running().to_string(),
            cache: cache.dir().to_path_buf(),
            settings: home.config().join(UserConfig::FILE_NAME),
        }
        .into());
    }
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
