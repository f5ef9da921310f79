//! The release source: where gzl binaries come from, and how one is fetched.
//!
//! A release source is a plain directory served over HTTP(S) (docs/releasing.md):
//! `manifest.json` lists the releases, their archives and the release tracks ("channels"),
//! and every release has a `SHA256SUMS` file. Archives are fetched, verified against
//! `SHA256SUMS` and unpacked by self_update; gzl only reads the manifest itself, for the
//! channels self_update knows nothing of.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use self_update::http_client::HttpClient as _;

/// The project's own release server, used when nothing names another.
pub const DEFAULT_URL: &str = "https://releases.gzl.dev";

/// Overrides every configured release source: a mirror or an internal server.
pub const URL_VARIABLE: &str = "GZL_RELEASE_URL";

/// The name of the release listing at the root of a release source.
pub const MANIFEST: &str = "manifest.json";

/// The checksums file every release carries.
pub const CHECKSUMS: &str = "SHA256SUMS";

/// How long a request may take before the source counts as unreachable.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why a release could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("cannot reach the gzl release source {url} for {wanted}: {message}")]
    Unreachable {
        url: String,
        wanted: String,
        message: String,
    },
    #[error("the gzl release source {url} sent a manifest gzl cannot read: {message}")]
    BadManifest { url: String, message: String },
    #[error("no gzl release at {url} satisfies {wanted} (it has {available})")]
    NoSuchVersion {
        url: String,
        wanted: String,
        available: String,
    },
    #[error("the gzl release source {url} has no channel `{name}` (it has {available})")]
    NoSuchChannel {
        url: String,
        name: String,
        available: String,
    },
    #[error(
        "gzl {version} from {url} does not match its published SHA-256 checksum; the download was deleted: {message}"
    )]
    Checksum {
        version: String,
        url: String,
        message: String,
    },
    #[error("cannot fetch gzl {version} from {url}: {message}")]
    Fetch {
        version: String,
        url: String,
        message: String,
    },
    #[error("cannot install gzl {version} into {}: {message}", path.display())]
    Install {
        version: String,
        path: PathBuf,
        message: String,
    },
}

/// A release source, by its base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    url: String,
}

impl Source {
    /// The source in force: `GZL_RELEASE_URL`, then the repository's `release_url`, then the
    /// user's, then the project's.
    pub fn choose(repository: Option<&str>, user: Option<&str>) -> Source {
        let from_environment = std::env::var(URL_VARIABLE).ok();
        let url = from_environment
            .as_deref()
            .filter(|url| !url.trim().is_empty())
            .or(repository)
            .or(user)
            .unwrap_or(DEFAULT_URL);
        Source {
            url: url.trim_end_matches('/').to_string(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn manifest_url(&self) -> String {
        format!("{}/{MANIFEST}", self.url)
    }

    /// Reads the source's manifest, to find `wanted` (what the user asked for, for errors).
    pub fn manifest(&self, wanted: &str) -> Result<Manifest, ReleaseError> {
        let url = self.manifest_url();
        let unreachable = |message: String| ReleaseError::Unreachable {
            url: self.url.clone(),
            wanted: wanted.into(),
            message,
        };
        let response = self_update::http_client::UreqClient::default()
            .get(&url, &Default::default(), Some(TIMEOUT))
            .map_err(|error| unreachable(error.to_string()))?;
        let mut body = String::new();
        std::io::Read::read_to_string(&mut response.body(), &mut body)
            .map_err(|error| unreachable(error.to_string()))?;
        Manifest::parse(&body, &url).map_err(|message| ReleaseError::BadManifest {
            url: url.clone(),
            message,
        })
    }
}

/// What a release source offers.
#[derive(Debug, Clone)]
pub struct Manifest {
    url: String,
    releases: Vec<self_update::update::Release>,
    channels: BTreeMap<String, String>,
}

/// The part of the manifest self_update does not read.
#[derive(serde::Deserialize)]
struct Channels {
    #[serde(default)]
    channels: BTreeMap<String, String>,
}

impl Manifest {
    fn parse(body: &str, url: &str) -> Result<Manifest, String> {
        let releases = self_update::backends::manifest::parse_manifest(body, url)
            .map_err(|error| error.to_string())?;
        let Channels { channels } =
            serde_json::from_str(body).map_err(|error| error.to_string())?;
        Ok(Manifest {
            url: url.trim_end_matches(MANIFEST).trim_end_matches('/').into(),
            releases,
            channels,
        })
    }

    fn versions(&self) -> impl Iterator<Item = semver::Version> + '_ {
        self.releases
            .iter()
            .filter_map(|release| semver::Version::parse(release.version()).ok())
    }

    fn available(&self) -> String {
        let mut versions: Vec<_> = self.versions().collect();
        versions.sort();
        match versions.len() {
            0 => "no releases".into(),
            _ => versions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// The newest release that satisfies `wanted` (written as the user wrote it, for errors).
    pub fn newest(
        &self,
        wanted: &semver::VersionReq,
        written: &str,
    ) -> Result<semver::Version, ReleaseError> {
        self.versions()
            .filter(|version| wanted.matches(version))
            .max()
            .ok_or_else(|| ReleaseError::NoSuchVersion {
                url: self.url.clone(),
                wanted: written.into(),
                available: self.available(),
            })
    }

    /// The newest release that is not a pre-release.
    pub fn latest(&self) -> Result<semver::Version, ReleaseError> {
        self.versions()
            .filter(|version| version.pre.is_empty())
            .max()
            .ok_or_else(|| ReleaseError::NoSuchVersion {
                url: self.url.clone(),
                wanted: "a release".into(),
                available: self.available(),
            })
    }

    /// The release a channel names.
    pub fn channel(&self, name: &str) -> Result<semver::Version, ReleaseError> {
        let no_such = || ReleaseError::NoSuchChannel {
            url: self.url.clone(),
            name: name.into(),
            available: match self.channels.len() {
                0 => "none".into(),
                _ => crate::style::quoted(self.channels.keys()),
            },
        };
        let version = self.channels.get(name).ok_or_else(no_such)?;
        semver::Version::parse(version).map_err(|_| ReleaseError::BadManifest {
            url: self.url.clone(),
            message: format!("channel `{name}` names `{version}`, which is not a version"),
        })
    }

    /// Downloads `version`, verifies it against the release's `SHA256SUMS`, and installs the
    /// binary at `destination` (a path that does not exist yet, on the filesystem the binary
    /// is used from).
    pub fn fetch(&self, version: &semver::Version, destination: &Path) -> Result<(), ReleaseError> {
        let fetch_error = |message: String| ReleaseError::Fetch {
            version: version.to_string(),
            url: self.url.clone(),
            message,
        };
        let updater = self_update::backends::custom::Update::configure()
            .source(Listing(self.releases.clone()))
            .bin_name("gzl")
            .bin_path_in_archive("gzl")
            .current_version(env!("CARGO_PKG_VERSION"))
            .release_tag(version.to_string())
            .bin_install_path(destination)
            .checksum_from_asset(CHECKSUMS)
            .timeout(TIMEOUT)
            .no_confirm(true)
            .show_output(false)
            .show_download_progress(false)
            .build()
            .map_err(|error| fetch_error(error.to_string()))?;
        updater.update().map(drop).map_err(|error| match error {
            self_update::errors::Error::ChecksumMismatch { .. }
            | self_update::errors::Error::ChecksumSourceInvalid { .. } => ReleaseError::Checksum {
                version: version.to_string(),
                url: self.url.clone(),
                message: error.to_string(),
            },
            self_update::errors::Error::Io(error) => ReleaseError::Install {
                version: version.to_string(),
                path: destination.to_path_buf(),
                message: error.to_string(),
            },
            error => fetch_error(error.to_string()),
        })
    }
}

impl Manifest {
    /// Replaces the gzl at `exe` with `version`: fetched and verified beside it, then renamed
    /// over it, so the file is always one whole gzl or the other.
    pub fn replace(&self, version: &semver::Version, exe: &Path) -> Result<(), ReleaseError> {
        let install_error = |message: String| ReleaseError::Install {
            version: version.to_string(),
            path: exe.to_path_buf(),
            message,
        };
        let dir = exe.parent().unwrap_or(Path::new("."));
        let aside = tempfile::Builder::new()
            .prefix(".gzl-update-")
            .tempdir_in(dir)
            .map_err(|e| install_error(e.to_string()))?;
        let fetched = aside.path().join("gzl");
        self.fetch(version, &fetched)?;
        std::fs::rename(&fetched, exe).map_err(|e| install_error(e.to_string()))
    }
}

/// The manifest's releases, handed to self_update so it does not fetch the manifest again.
struct Listing(Vec<self_update::update::Release>);

impl self_update::update::ReleaseSource for Listing {
    fn get_releases(&self) -> self_update::errors::Result<Vec<self_update::update::Release>> {
        Ok(self.0.clone())
    }
}
