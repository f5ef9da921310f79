//! `gzl.toml`: a repository's settings for gzl, at its root next to the Gzlfile.
//!
//! Every key is optional; unknown keys are errors, so a typo never silently does nothing.
//! docs/config.md describes each one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::stagefile::Diagnostic;

/// The file name gzl looks for.
pub const FILE_NAME: &str = "gzl.toml";

/// The settings of one repository.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub workspaces: Workspaces,
    pub history: HistorySettings,
    pub hooks: Hooks,
    pub gzl: Pin,
    pub artifacts: ArtifactSettings,
}

/// `[gzl]`: the gzl this repository is written for.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pin {
    /// `"X.Y.Z"` (that version exactly) or a requirement such as `"0.4"` or `">=0.4, <0.6"`.
    pub version: Option<String>,
    /// A release track; the newest release published on it.
    pub channel: Option<String>,
    /// Where releases are fetched from, instead of the project's releases.
    pub release_url: Option<String>,
}

/// `[hooks]`: the stages each git hook runs; every stage when a hook is not listed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Hooks {
    pub post_commit: Vec<String>,
    pub post_merge: Vec<String>,
    pub post_checkout: Vec<String>,
    pub pre_commit: Vec<String>,
    pub pre_push: Vec<String>,
}

impl Hooks {
    /// The stages hook `name` runs; empty for all.
    pub fn stages(&self, name: &str) -> &[String] {
        match name {
            "post-commit" => &self.post_commit,
            "post-merge" => &self.post_merge,
            "post-checkout" => &self.post_checkout,
            "pre-commit" => &self.pre_commit,
            "pre-push" => &self.pre_push,
            _ => &[],
        }
    }
}

/// `[workspaces]`: the pool of checkouts runs execute in.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workspaces {
    /// How many workspaces gzl keeps for the repository. Overlapping runs may make more for a
    /// while; `gzl gc` brings the pool back to this size.
    pub pool: usize,
    /// What a reused workspace loses before a run.
    pub clean: Clean,
    /// How long `gzl gc` keeps the workspace of a failed run for debugging.
    #[serde(deserialize_with = "duration")]
    pub keep_failed: Duration,
}

impl Default for Workspaces {
    fn default() -> Self {
        Workspaces {
            pool: 4,
            clean: Clean::Untracked,
            keep_failed: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What is removed from a reused workspace before a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Clean {
    /// Files git does not track and does not ignore: ignored build output stays, so
    /// incremental builds stay fast.
    #[default]
    Untracked,
    /// Every file git does not track, ignored ones too: a pristine checkout.
    All,
}

/// `[history]`: how long `gzl gc` keeps what runs leave.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistorySettings {
    /// Logs and snapshots of runs older than this are deleted by `gzl gc`; the runs stay
    /// listed, and their results are still reused.
    #[serde(deserialize_with = "duration")]
    pub keep: Duration,
}

impl Default for HistorySettings {
    fn default() -> Self {
        HistorySettings {
            keep: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// `[artifacts]`: how long `gzl gc` keeps what stages stored with `gzl obj-store`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ArtifactSettings {
    /// The artifacts of runs that started within this time are kept.
    #[serde(deserialize_with = "duration")]
    pub keep: Duration,
    /// The artifacts of the newest this many runs (with artifacts) of each branch are kept,
    /// however old.
    pub keep_last: usize,
}

impl Default for ArtifactSettings {
    fn default() -> Self {
        ArtifactSettings {
            keep: Duration::from_secs(30 * 24 * 3600),
            keep_last: 5,
        }
    }
}

/// Why `gzl.toml` could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not valid", path.display())]
    Invalid {
        path: PathBuf,
        source_text: String,
        diagnostic: Box<Diagnostic>,
    },
}

impl Config {
    /// Reads `gzl.toml` in `root`; the defaults when there is none.
    pub fn load(root: &Path) -> Result<Self, ConfigError> {
        let path = root.join(FILE_NAME);
        match read_optional(&path)? {
            Some(text) => Self::parse(&path, &text),
            None => Ok(Config::default()),
        }
    }

    /// Checks `text` as the content of the `gzl.toml` at `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: Config = parse_toml(path, text)?;
        if config.workspaces.pool == 0 {
            let mut offset = 0;
            let mut span = 0..0;
            for line in text.split_inclusive('\n') {
                let key = line.trim_start();
                if key.starts_with("pool") && key[4..].trim_start().starts_with('=') {
                    let at = offset + (line.len() - key.len());
                    span = at..at + 4;
                }
                offset += line.len();
            }
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                source_text: text.to_string(),
                diagnostic: Box::new(
                    Diagnostic::new("`pool` must be at least 1", span)
                        .help("runs need a workspace; `pool = 1` keeps one"),
                ),
            });
        }
        Ok(config)
    }
}

/// The user's own settings: `config.toml` in gzl's config directory (`Home::config`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserConfig {
    /// Whether gzl may fetch the gzl a repository pins when it is not cached.
    pub auto_update: bool,
    /// The release track `gzl self-update` follows.
    pub channel: Option<String>,
    /// Where releases are fetched from, unless `GZL_RELEASE_URL` says; wins over a
    /// repository's `release_url`.
    pub release_url: Option<String>,
    /// Whether a release must be signed by the project's key or `release_public_key`.
    pub verify_signatures: bool,
    /// Another key whose signature makes a release good (a team's own builds, say).
    pub release_public_key: Option<ReleaseKey>,
}

impl Default for UserConfig {
    fn default() -> Self {
        UserConfig {
            auto_update: true,
            channel: None,
            release_url: None,
            verify_signatures: true,
            release_public_key: None,
        }
    }
}

/// An ed25519 public key that signs gzl releases, written in base64 (44 characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseKey(pub crate::release::PublicKey);

impl<'de> Deserialize<'de> for ReleaseKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let text = String::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(ReleaseKey)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{text}` is not an ed25519 public key in base64, 44 characters such as `gzl-release-sign keygen` prints"
                ))
            })
    }
}

impl UserConfig {
    /// The file name in gzl's config directory.
    pub const FILE_NAME: &str = "config.toml";

    /// Reads `config.toml` in `dir`; the defaults when there is none.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let path = dir.join(Self::FILE_NAME);
        match read_optional(&path)? {
            Some(text) => parse_toml(&path, &text),
            None => Ok(UserConfig::default()),
        }
    }
}

/// The text of the settings file at `path`; `None` when there is none.
fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Deserializes `text`, the content of `path`, reporting a mistake with its span.
fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|error| {
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim_end().to_string();
        let help = if message.starts_with("unknown field") {
            "see docs/config.md for the settings gzl knows"
        } else {
            "see docs/config.md for the form of each setting"
        };
        ConfigError::Invalid {
            path: path.to_path_buf(),
            source_text: text.to_string(),
            diagnostic: Box::new(Diagnostic::new(message, span).help(help)),
        }
    })
}

fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::duration::parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration such as `12h`, `7d` or `30d`"
        ))
    })
}
