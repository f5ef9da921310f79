//! The pinned tool: a repository names the gzl it is written for in `gzl.toml`
//! (`[gzl] version`), and any gzl started in it hands over to that version.
//!
//! The versions gzl can hand over to live in its cache, one folder per version
//! (`<cache>/bin/<version>/gzl`). Fetching a missing version from the release source is not
//! built yet: a pin no cached gzl satisfies is an error that says what to do.

use std::path::{Path, PathBuf};

use crate::home::Home;

/// Set in the environment of a gzl that was handed over to, so it never hands over again.
pub const HANDED_OVER: &str = "GZL_PIN_HANDED_OVER";

/// A problem with a repository's pin.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(
        "gzl.toml pins gzl version `{version}`, which is not a version or a requirement such as `0.4.2` or `0.4`"
    )]
    Invalid { version: String },
    #[error("this repository pins gzl {requirement} (gzl.toml), and this is gzl {running}; no gzl in {} satisfies it, and fetching releases is not built yet", cache.display())]
    Unavailable {
        requirement: String,
        running: String,
        cache: PathBuf,
    },
    #[error("cannot write {}: {message}", path.display())]
    Write { path: PathBuf, message: String },
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

/// Where this machine keeps gzl binaries.
pub fn cache(home: &Home) -> PathBuf {
    home.cache().join("bin")
}

/// How a pin is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    /// No pin, or this gzl satisfies it.
    This,
    /// A cached gzl satisfies it: hand over to it.
    Cached {
        version: semver::Version,
        path: PathBuf,
    },
}

/// Decides which gzl serves the repository at `root`.
pub fn serving(root: &Path, home: &Home) -> Result<(Option<String>, Serving), crate::error::Error> {
    let Some(version) = pinned_version(root) else {
        return Ok((None, Serving::This));
    };
    let wanted = requirement(&version)?;
    if wanted.matches(&running()) {
        return Ok((Some(version), Serving::This));
    }
    let cache = cache(home);
    let newest = std::fs::read_dir(&cache)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = semver::Version::parse(entry.file_name().to_str()?).ok()?;
            let path = entry.path().join("gzl");
            (wanted.matches(&version) && path.is_file()).then_some((version, path))
        })
        .max_by(|a, b| a.0.cmp(&b.0));
    match newest {
        Some((version, path)) => Ok((Some(version.to_string()), Serving::Cached { version, path })),
        None => Err(PinError::Unavailable {
            requirement: version,
            running: running().to_string(),
            cache,
        }
        .into()),
    }
}

/// The pin in `gzl.toml`, read leniently: a gzl must find the pin even in a file written for
/// a newer gzl, with settings it does not know (those are the command's to report).
fn pinned_version(root: &Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join(crate::config::FILE_NAME)).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    table
        .get("gzl")?
        .get("version")?
        .as_str()
        .map(str::to_string)
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
