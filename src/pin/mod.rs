//! The pinned tool: a repository names the gzl it is written for in `gzl.toml`
//! (`[gzl] version` or `channel`), and any gzl started in it hands over to that version.
//!
//! The versions gzl can hand over to live in its binary cache, one folder per version
//! (`<cache>/bin/<version>/gzl`). Reading the pin and the cache touches no network; a
//! version the cache lacks is fetched from the release source (`crate::release`) and
//! installed so that a concurrent gzl never sees half a binary. A release source the
//! repository names is used only once the user trusted it for that repository (`trust`).

mod trust;
mod verify;

pub use trust::Trust;
pub use verify::{Trial, trial};

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::UserConfig;
use crate::home::Home;
use crate::release::{Manifest, ReleaseError, Source};

/// Set in the environment of a gzl that was handed over to, so it never hands over again.
pub const HANDED_OVER: &str = "GZL_PIN_HANDED_OVER";

/// How long a channel's newest release is trusted before gzl asks the release source again.
const CHANNEL_FRESH: Duration = Duration::from_secs(24 * 3600);

/// A problem with a repository's pin or the binary cache.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(
        "gzl.toml pins gzl version `{version}`, which is not a version or a requirement such as `0.4.2` or `0.4`"
    )]
    Invalid { version: String },
    #[error("this repository pins gzl {wanted} (gzl.toml), and this is gzl {running}; no gzl in {} serves it, and auto_update = false in {} forbids fetching it", cache.display(), settings.display())]
    NotCached {
        wanted: String,
        running: String,
        cache: PathBuf,
        settings: PathBuf,
    },
    #[error(
        "gzl.toml's [gzl] {key} holds control characters: \"{escaped}\"; gzl does not print them, or use them"
    )]
    ControlCharacters { key: &'static str, escaped: String },
    #[error("cannot write {}: {message}", path.display())]
    Write { path: PathBuf, message: String },
    #[error("the candidate gzl {} could not try the stages: {message}", candidate.display())]
    Trial { candidate: PathBuf, message: String },
    #[error(
        "no stage has passed at HEAD ({commit}) yet, so there is nothing to compare the candidate gzl with"
    )]
    NothingPassed { commit: String },
    #[error(
        "`{written}` is not a version: `gzl pin` takes a version such as `0.4.2` (that one exactly) or a requirement such as `0.4` (semver)"
    )]
    NotAVersion { written: String },
    #[error("cannot check that the release source has gzl {wanted}; gzl.toml was not changed")]
    Unchecked {
        wanted: String,
        #[source]
        source: ReleaseError,
    },
    /// The release source has no release for what `gzl pin` was asked to pin.
    #[error("{release}; gzl.toml was not changed")]
    Unreleased { release: ReleaseError },
    #[error("gzl's binary cache {}: {message}", path.display())]
    Cache { path: PathBuf, message: String },
    #[error(
        "this repository's gzl.toml asks for {wanted} from {url} (release_url), a release source you have not trusted for {}",
        repository.display()
    )]
    Untrusted {
        wanted: String,
        url: String,
        repository: PathBuf,
    },
}

/// What a repository asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// A version (`0.4.2`, exactly) or a requirement (`0.4`), as written.
    Version {
        written: String,
        requirement: semver::VersionReq,
    },
    /// The newest release on a release track.
    Channel(String),
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wanted::Version { written, .. } => f.write_str(written),
            Wanted::Channel(name) => write!(f, "channel `{name}`"),
        }
    }
}

/// The `[gzl]` table of `gzl.toml`.
#[derive(Debug, Clone, Default)]
pub struct Pin {
    pub wanted: Option<Wanted>,
    pub release_url: Option<String>,
}

impl Pin {
    /// Reads the pin of the repository at `root`, leniently: a gzl must find the pin even in a
    /// file written for a newer gzl, with settings it does not know (those are the command's
    /// to report).
    pub fn read(root: &Path) -> Result<Pin, PinError> {
        let Some(table) = std::fs::read_to_string(root.join(crate::config::FILE_NAME))
            .ok()
            .and_then(|text| toml::from_str::<toml::Table>(&text).ok())
            .and_then(|mut table| match table.remove("gzl") {
                Some(toml::Value::Table(gzl)) => Some(gzl),
                _ => None,
            })
        else {
            return Ok(Pin::default());
        };
        let text = |key: &str| table.get(key).and_then(toml::Value::as_str);
        // What gzl.toml says is printed in messages: text that could drive the terminal is
        // refused here, once, rather than escaped wherever it is shown.
        for key in ["version", "channel", "release_url"] {
            if let Some(value) = text(key)
                && value.chars().any(char::is_control)
            {
                return Err(PinError::ControlCharacters {
                    key,
                    escaped: value.escape_debug().to_string(),
                });
            }
        }
        let wanted = match (text("version"), text("channel")) {
            (Some(version), _) => Some(Wanted::Version {
                written: version.into(),
                requirement: requirement(version)?,
            }),
            (None, Some(channel)) => Some(Wanted::Channel(channel.into())),
            (None, None) => None,
        };
        Ok(Pin {
            wanted,
            release_url: text("release_url")
                .filter(|url| !url.trim().is_empty())
                .map(str::to_string),
        })
    }
}

/// Where the gzl a repository pins comes from, and whether the user agreed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `GZL_RELEASE_URL`, or `release_url` in the user's settings: the user's own choice, which
    /// wins over the repository's.
    User(String),
    /// The repository's `release_url`, which the user trusted for this repository.
    Trusted(String),
    /// The repository's `release_url`, not trusted for this repository (or not at this URL).
    Untrusted(String),
    /// The project's release server.
    Project,
}

impl Origin {
    /// Where the repository at `root`, pinning `pin`, gets its gzl from.
    pub fn of(pin: &Pin, user: &UserConfig, trust: &Trust, root: &Path) -> Origin {
        if let Some(url) = Source::users_url(user) {
            return Origin::User(url);
        }
        match &pin.release_url {
            Some(url) if trust.trusts(root, url) => Origin::Trusted(url.clone()),
            Some(url) => Origin::Untrusted(url.clone()),
            None => Origin::Project,
        }
    }

    /// The release source to fetch from; the URL of the repository's source while it is not
    /// trusted.
    pub fn source(&self, user: &UserConfig) -> Result<Source, &str> {
        match self {
            Origin::User(url) | Origin::Trusted(url) => Ok(Source::new(url, user)),
            Origin::Project => Ok(Source::new(crate::release::DEFAULT_URL, user)),
            Origin::Untrusted(url) => Err(url),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::User(url) => write!(f, "{url} (yours: GZL_RELEASE_URL or config.toml)"),
            Origin::Trusted(url) => write!(f, "{url} (gzl.toml, trusted for this repository)"),
            Origin::Untrusted(url) => write!(
                f,
                "{url} (gzl.toml, not trusted for this repository: `gzl pin --trust` allows it)"
            ),
            Origin::Project => write!(f, "{} (the project's)", crate::release::DEFAULT_URL),
        }
    }
}

/// What the pin asks for: an exact `X.Y.Z` means that version; anything else is a semver
/// requirement.
pub fn requirement(version: &str) -> Result<semver::VersionReq, PinError> {
    let invalid = || PinError::Invalid {
        version: version.to_string(),
    };
    if let Ok(exact) = semver::Version::parse(version) {
        return semver::VersionReq::parse(&format!("={exact}")).map_err(|_| invalid());
    }
    semver::VersionReq::parse(version).map_err(|_| invalid())
}

/// This gzl's version.
pub fn running() -> semver::Version {
    semver::Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or(semver::Version::new(0, 0, 0))
}

/// How a pin is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// This gzl satisfies it.
    This,
    /// A cached gzl satisfies it: hand over to it.
    Cached {
        version: semver::Version,
        path: PathBuf,
    },
    /// Only the release source can say, or give, which gzl serves it.
    Missing,
}

/// A gzl binary in the cache.
#[derive(Debug, Clone)]
pub struct Binary {
    pub version: semver::Version,
    pub path: PathBuf,
    pub size: u64,
    /// When a gzl last handed over to it, or when it was installed.
    pub used: SystemTime,
}

/// The gzl binaries this machine keeps, one folder per version, and what gzl last learnt of
/// each channel.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn of(home: &Home) -> Cache {
        Cache {
            dir: home.cache().join("bin"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn error(&self, path: &Path, error: impl std::fmt::Display) -> PinError {
        PinError::Cache {
            path: path.to_path_buf(),
            message: error.to_string(),
        }
    }

    fn folder(&self, version: &semver::Version) -> PathBuf {
        self.dir.join(version.to_string())
    }

    /// Every cached binary, oldest version first.
    pub fn binaries(&self) -> Vec<Binary> {
        let mut binaries: Vec<Binary> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let version = semver::Version::parse(entry.file_name().to_str()?).ok()?;
                let path = entry.path().join("gzl");
                let metadata = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
                let used = std::fs::metadata(entry.path().join("used"))
                    .and_then(|m| m.modified())
                    .or_else(|_| metadata.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                Some(Binary {
                    version,
                    path,
                    size: metadata.len(),
                    used,
                })
            })
            .collect();
        binaries.sort_by(|a, b| a.version.cmp(&b.version));
        binaries
    }

    /// The newest cached binary that satisfies `requirement`.
    pub fn newest(&self, requirement: &semver::VersionReq) -> Option<Binary> {
        self.binaries()
            .into_iter()
            .rfind(|binary| requirement.matches(&binary.version))
    }

    /// Records that a gzl handed over to `binary`, for `gzl cache prune`.
    pub fn mark_used(&self, version: &semver::Version) {
        let used = self.folder(version).join("used");
        // Losing this only makes prune think the binary older than it is.
        let _ = std::fs::File::create(used);
    }

    fn channel_file(&self, name: &str) -> PathBuf {
        self.dir.join("channels").join(name)
    }

    /// The release a channel named when gzl last asked, and whether that is recent enough to
    /// trust without asking again.
    pub fn channel(&self, name: &str) -> Option<(semver::Version, bool)> {
        let path = self.channel_file(name);
        let version = semver::Version::parse(std::fs::read_to_string(&path).ok()?.trim()).ok()?;
        let fresh = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_some_and(|age| age < CHANNEL_FRESH);
        Some((version, fresh))
    }

    fn remember_channel(&self, name: &str, version: &semver::Version) -> Result<(), PinError> {
        let path = self.channel_file(name);
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(|e| self.error(parent, e))?;
        let temporary = parent.join(format!(".{name}.{}", std::process::id()));
        std::fs::write(&temporary, format!("{version}\n")).map_err(|e| self.error(&path, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| self.error(&path, e))
    }

    /// Fetches `version` from `manifest`'s source into the cache and returns its path. Parallel
    /// gzl processes take turns on a lock; the binary is downloaded and verified aside, then
    /// renamed into place, so no one ever sees half of it.
    pub fn install(
        &self,
        manifest: &Manifest,
        version: &semver::Version,
    ) -> Result<PathBuf, crate::error::Error> {
        std::fs::create_dir_all(&self.dir).map_err(|e| self.error(&self.dir, e))?;
        let lock_path = self.dir.join(format!(".{version}.lock"));
        let lock = std::fs::File::create(&lock_path).map_err(|e| self.error(&lock_path, e))?;
        lock.lock().map_err(|e| self.error(&lock_path, e))?;
        let path = self.folder(version).join("gzl");
        if path.is_file() {
            return Ok(path);
        }
        let aside = tempfile::Builder::new()
            .prefix(&format!(".{version}-"))
            .tempdir_in(&self.dir)
            .map_err(|e| self.error(&self.dir, e))?;
        manifest.fetch(version, &aside.path().join("gzl"))?;
        let folder = self.folder(version);
        std::fs::create_dir_all(&folder).map_err(|e| self.error(&folder, e))?;
        std::fs::rename(aside.path().join("gzl"), &path).map_err(|e| self.error(&path, e))?;
        Ok(path)
    }

    /// Removes one cached binary.
    pub fn remove(&self, binary: &Binary) -> Result<(), PinError> {
        let folder = self.folder(&binary.version);
        std::fs::remove_dir_all(&folder).map_err(|e| self.error(&folder, e))
    }
}

/// Decides, without the network, which gzl serves `wanted`.
pub fn serving(wanted: &Wanted, cache: &Cache) -> Serving {
    match wanted {
        Wanted::Version { requirement, .. } => serving_requirement(requirement, cache),
        Wanted::Channel(name) => match cache.channel(name) {
            Some((version, true)) => serving_version(&version, cache),
            _ => Serving::Missing,
        },
    }
}

fn serving_requirement(requirement: &semver::VersionReq, cache: &Cache) -> Serving {
    if requirement.matches(&running()) {
        return Serving::This;
    }
    match cache.newest(requirement) {
        Some(binary) => Serving::Cached {
            version: binary.version,
            path: binary.path,
        },
        None => Serving::Missing,
    }
}

/// Which gzl serves exactly `version`.
pub fn serving_version(version: &semver::Version, cache: &Cache) -> Serving {
    if *version == running() {
        return Serving::This;
    }
    match cache.binaries().into_iter().find(|b| b.version == *version) {
        Some(binary) => Serving::Cached {
            version: binary.version,
            path: binary.path,
        },
        None => Serving::Missing,
    }
}

/// The gzl that serves `wanted`, as the release source says: this one or a cached one,
/// fetched into the cache first when missing (`fetching` is told of the download before it
/// starts). Never `Serving::Missing`.
pub fn obtain(
    wanted: &Wanted,
    source: &Source,
    cache: &Cache,
    fetching: &mut dyn FnMut(&semver::Version),
) -> Result<(semver::Version, Serving), crate::error::Error> {
    let (version, manifest) = resolve(wanted, source, cache)?;
    let serving = match (serving_version(&version, cache), manifest) {
        (Serving::Missing, Some(manifest)) => {
            fetching(&version);
            let path = cache.install(&manifest, &version)?;
            Serving::Cached {
                version: version.clone(),
                path,
            }
        }
        (serving, _) => serving,
    };
    Ok((version, serving))
}

/// Asks the release source which version serves `wanted`. A channel's answer is remembered
/// for a day; when the source cannot be reached, the channel's last known release serves
/// (the manifest is then `None`, and that release is at hand).
fn resolve(
    wanted: &Wanted,
    source: &Source,
    cache: &Cache,
) -> Result<(semver::Version, Option<Manifest>), crate::error::Error> {
    let manifest = match source.manifest(&format!("gzl {wanted}")) {
        Ok(manifest) => manifest,
        Err(ReleaseError::Unreachable { .. })
            if let Wanted::Channel(name) = wanted
                && let Some((version, _)) = cache.channel(name)
                && serving_version(&version, cache) != Serving::Missing =>
        {
            return Ok((version, None));
        }
        Err(error) => return Err(error.into()),
    };
    let version = match wanted {
        Wanted::Version {
            written,
            requirement,
        } => manifest.newest(requirement, written)?,
        Wanted::Channel(name) => {
            let version = manifest.channel(name)?;
            cache.remember_channel(name, &version)?;
            version
        }
    };
    Ok((version, Some(manifest)))
}

/// Writes `[gzl] version = VERSION` (or `channel`) into `gzl.toml` at `root`, keeping the
/// rest of the file, comments included.
pub fn write(root: &Path, key: &str, value: &str) -> Result<PathBuf, PinError> {
    let path = root.join(crate::config::FILE_NAME);
    let error = |message: String| PinError::Write {
        path: path.clone(),
        message,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(error(e.to_string())),
    };
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| error(e.to_string()))?;
    if !document.contains_table("gzl") {
        document["gzl"] = toml_edit::table();
    }
    document["gzl"][key] = toml_edit::value(value);
    // A version and a channel do not go together: the one set now wins.
    let other = if key == "version" {
        "channel"
    } else {
        "version"
    };
    if let Some(table) = document["gzl"].as_table_mut() {
        table.remove(other);
    }
    std::fs::write(&path, document.to_string()).map_err(|e| error(e.to_string()))?;
    Ok(path)
}
