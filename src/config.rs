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
    /// The most disk space the pool may take, in bytes: `gzl gc` removes free workspaces,
    /// least recently used first, until it takes no more.
    #[serde(deserialize_with = "size")]
    pub max_size: Option<u64>,
}

impl Default for Workspaces {
    fn default() -> Self {
        Workspaces {
            pool: 4,
            clean: Clean::Untracked,
            keep_failed: Duration::from_secs(7 * 24 * 3600),
            max_size: None,
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

/// A size: a number of bytes, or a string such as `"20G"`, `"500M"` or `"1.5TiB"` (K, M, G and T
/// are powers of 1024, as `du -h` shows them; `B` and `iB` may follow).
fn size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    struct Size;
    impl serde::de::Visitor<'_> for Size {
        type Value = Option<u64>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a size such as `\"20G\"`, `\"500M\"` or a number of bytes")
        }

        fn visit_u64<E: serde::de::Error>(self, bytes: u64) -> Result<Self::Value, E> {
            Ok(Some(bytes))
        }

        fn visit_i64<E: serde::de::Error>(self, bytes: i64) -> Result<Self::Value, E> {
            u64::try_from(bytes).map(Some).map_err(|_| {
                E::custom(format!(
                    "`{bytes}` is not a size: write a number of bytes, or a size such as `\"20G\"`"
                ))
            })
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            parse_size(text).map(Some).ok_or_else(|| {
                E::custom(format!(
                    "`{text}` is not a size such as `20G`, `500M` or `1.5T`"
                ))
            })
        }
    }
    deserializer.deserialize_any(Size)
}

/// Parses `"20G"`-style sizes; see [`size`].
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim_start();
    let unit = unit
        .strip_suffix("iB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "K" | "k" => 1,
        "M" => 2,
        "G" => 3,
        "T" => 4,
        _ => return None,
    };
    let bytes = number * 1024f64.powi(power);
    // Whole bytes, within u64; `as` saturates, the check keeps nonsense out.
    (bytes.is_finite() && bytes < u64::MAX as f64).then_some(bytes.round() as u64)
}

fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    crate::duration::parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration such as `12h`, `7d` or `30d`"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_du_shows_them() {
        assert_eq!(parse_size("20G"), Some(20 << 30));
        assert_eq!(parse_size("20GiB"), Some(20 << 30));
        assert_eq!(parse_size("500 MB"), Some(500 << 20));
        assert_eq!(parse_size("1.5T"), Some(3 << 39));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("20 gigs"), None);
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size("-1G"), None);
    }

    #[test]
    fn max_size_takes_bytes_or_a_size() {
        let path = Path::new("gzl.toml");
        let config = Config::parse(path, "[workspaces]\nmax_size = \"2G\"\n").unwrap();
        assert_eq!(config.workspaces.max_size, Some(2 << 30));
        let config = Config::parse(path, "[workspaces]\nmax_size = 1000\n").unwrap();
        assert_eq!(config.workspaces.max_size, Some(1000));
        assert_eq!(Config::default().workspaces.max_size, None);
        let Err(ConfigError::Invalid { diagnostic, .. }) =
            Config::parse(path, "[workspaces]\nmax_size = \"lots\"\n")
        else {
            panic!("`lots` is no size");
        };
        assert!(
            diagnostic.message.contains("`lots` is not a size"),
            "{}",
            diagnostic.message
        );
        let Err(ConfigError::Invalid { diagnostic, .. }) =
            Config::parse(path, "[workspaces]\nmax_size = -1\n")
        else {
            panic!("-1 is no size");
        };
        assert!(
            diagnostic.message.contains("`-1` is not a size"),
            "{}",
            diagnostic.message
        );
    }
}
