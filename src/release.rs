//! The release source: where gzl binaries come from, and how one is fetched.
//!
//! A release source is a plain directory served over HTTP(S) (docs/releasing.md):
//! `manifest.json` lists the releases, their archives and the release tracks ("channels"),
//! and every release has a `SHA256SUMS` file. Archives are fetched, verified against
//! `SHA256SUMS` and their zipsign signature, and unpacked by self_update; gzl only reads the
//! manifest itself, for the channels self_update knows nothing of. What an archive holds is
//! installed only when it is a program for this machine that answers the version it was
//! fetched as.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

/// How long a fetched gzl may take to say its version.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// The public half of the key the project signs its releases with (ed25519, zipsign's raw
/// format; docs/releasing.md). A release is taken only when this key, or one the user named
/// (`release_public_key`), signed it.
pub const PROJECT_KEY: &[u8; 32] = include_bytes!("release.pub");

/// An ed25519 public key that signs releases.
pub type PublicKey = [u8; 32];

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
    #[error(
        "gzl {version} from {url} is not signed by a key gzl trusts (the project's, or your release_public_key); nothing was installed: {message}"
    )]
    Signature {
        version: String,
        url: String,
        message: String,
    },
    #[error(
        "the archive of gzl {version} from {url} holds {found} as `gzl`, not a program for this machine; nothing was installed"
    )]
    NotAProgram {
        version: String,
        url: String,
        found: String,
    },
    #[error("the gzl fetched as {version} from {url} {answered}; nothing was installed")]
    WrongVersion {
        version: String,
        url: String,
        answered: String,
    },
    #[error("cannot install gzl {version} into {}: {message}", path.display())]
    Install {
        version: String,
        path: PathBuf,
        message: String,
    },
}

/// A release source, by its base URL, with the keys its releases must be signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    url: String,
    /// Empty: the user took unsigned releases (`verify_signatures = false`).
    keys: Vec<PublicKey>,
}

impl Source {
    /// The source at `url`, whose releases must be signed by a key the user's settings trust.
    pub fn new(url: &str, user: &crate::config::UserConfig) -> Source {
        let keys = match user.verify_signatures {
            true => std::iter::once(*PROJECT_KEY)
                .chain(user.release_public_key.map(|key| key.0))
                .collect(),
            false => Vec::new(),
        };
        Source {
            url: url.trim_end_matches('/').to_string(),
            keys,
        }
    }

    /// The source the user chose, if any: `GZL_RELEASE_URL`, then the user's `release_url`.
    pub fn users_url(user: &crate::config::UserConfig) -> Option<String> {
        std::env::var(URL_VARIABLE)
            .ok()
            .filter(|url| !url.trim().is_empty())
            .or_else(|| user.release_url.clone())
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
        let mut manifest =
            Manifest::parse(&body, &url).map_err(|message| ReleaseError::BadManifest {
                url: url.clone(),
                message,
            })?;
        manifest.keys = self.keys.clone();
        Ok(manifest)
    }
}

/// What a release source offers.
#[derive(Debug, Clone)]
pub struct Manifest {
    url: String,
    releases: Vec<self_update::update::Release>,
    channels: BTreeMap<String, String>,
    /// The keys its archives must be signed with; none to take them unsigned.
    keys: Vec<PublicKey>,
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
            keys: Vec::new(),
        })
    }

    fn versions(&self) -> impl Iterator<Item = semver::Version> + '_ {
        self.releases
            .iter()
            .filter_map(|release| semver::Version::parse(release.version()).ok())
    }

    /// The newest few releases, newest first, for an error that names what there is.
    fn available(&self) -> String {
        const SHOWN: usize = 5;
        let mut versions: Vec<_> = self.versions().collect();
        versions.sort_by(|a, b| b.cmp(a));
        let newest = versions
            .iter()
            .take(SHOWN)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        match versions.len() {
            0 => "no releases".into(),
            1..=SHOWN => newest,
            count => format!("{newest} and {} older", count - SHOWN),
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

    /// Downloads `version`, verifies it against the release's `SHA256SUMS` and its signature,
    /// and installs the binary at `destination` (a path that does not exist yet, on the
    /// filesystem the binary is used from) when it is a program for this machine that answers
    /// `version`; otherwise nothing is left at `destination`.
    pub fn fetch(&self, version: &semver::Version, destination: &Path) -> Result<(), ReleaseError> {
        self.download(version, destination)?;
        let refused = |error: ReleaseError| {
            // A symbolic link or a directory is removed itself, never what it points to.
            let _ = match std::fs::symlink_metadata(destination) {
                Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(destination),
                _ => std::fs::remove_file(destination),
            };
            error
        };
        if let Some(found) = not_a_program(destination) {
            return Err(refused(ReleaseError::NotAProgram {
                version: version.to_string(),
                url: self.url.clone(),
                found,
            }));
        }
        if let Err(answered) = answers(destination, version) {
            return Err(refused(ReleaseError::WrongVersion {
                version: version.to_string(),
                url: self.url.clone(),
                answered,
            }));
        }
        Ok(())
    }

    /// Downloads, verifies and unpacks `version`'s archive, leaving what it holds as `gzl` at
    /// `destination`.
    fn download(&self, version: &semver::Version, destination: &Path) -> Result<(), ReleaseError> {
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
            .verifying_keys(self.keys.clone())
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
            self_update::errors::Error::Signature(_)
            | self_update::errors::Error::NoSignatures(_)
            | self_update::errors::Error::SignatureNonUTF8 => ReleaseError::Signature {
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

/// What the file at `path` is, when it is not a program for this machine: a symbolic link, a
/// directory, an empty file, a script, or an executable of another platform.
fn not_a_program(path: &Path) -> Option<String> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) => return Some(format!("nothing gzl can read ({error})")),
    };
    if metadata.file_type().is_symlink() {
        let target = std::fs::read_link(path).unwrap_or_default();
        return Some(format!("a symbolic link to `{}`", target.display()));
    }
    if !metadata.is_file() {
        return Some("a directory or special file".into());
    }
    if metadata.len() == 0 {
        return Some("an empty file".into());
    }
    let mut head = Vec::with_capacity(64);
    if let Err(error) =
        std::fs::File::open(path).and_then(|file| file.take(64).read_to_end(&mut head))
    {
        return Some(format!("a file gzl cannot read ({error})"));
    }
    if head.starts_with(b"#!") {
        let line = head.split(|byte| *byte == b'\n').next().unwrap_or_default();
        return Some(format!(
            "a script (`{}`)",
            String::from_utf8_lossy(line).escape_debug()
        ));
    }
    executable::foreign(&head)
}

/// Executable formats: what this machine runs.
mod executable {
    /// Why the file that starts with `head` is not an executable for this machine, if it is not.
    #[cfg(not(target_os = "macos"))]
    pub fn foreign(head: &[u8]) -> Option<String> {
        if !head.starts_with(b"\x7fELF") || head.len() < 20 {
            return Some(format!(
                "a file that is not an executable ({})",
                start(head)
            ));
        }
        let class = if cfg!(target_pointer_width = "64") {
            2
        } else {
            1
        };
        if head[4] != class {
            let bits = match head[4] {
                1 => "32-bit",
                2 => "64-bit",
                _ => "unknown-class",
            };
            return Some(format!("a {bits} ELF executable"));
        }
        let machine = match head[5] {
            2 => u16::from_be_bytes([head[18], head[19]]),
            _ => u16::from_le_bytes([head[18], head[19]]),
        };
        match MACHINE {
            Some(wanted) if machine != wanted => Some(format!(
                "an ELF executable for machine {machine}, not for {} (machine {wanted})",
                std::env::consts::ARCH
            )),
            _ => None,
        }
    }

    /// This machine's `e_machine` in ELF headers, where gzl knows it.
    #[cfg(not(target_os = "macos"))]
    const MACHINE: Option<u16> = match std::env::consts::ARCH.as_bytes() {
        b"x86_64" => Some(62),
        b"aarch64" => Some(183),
        b"x86" => Some(3),
        b"arm" => Some(40),
        b"riscv64" => Some(243),
        b"powerpc64" => Some(21),
        b"s390x" => Some(22),
        b"loongarch64" => Some(258),
        _ => None,
    };

    /// Why the file that starts with `head` is not an executable for this Mac, if it is not.
    #[cfg(target_os = "macos")]
    pub fn foreign(head: &[u8]) -> Option<String> {
        // A universal binary holds several architectures; the kernel picks this Mac's.
        if head.starts_with(&[0xca, 0xfe, 0xba, 0xbe]) {
            return None;
        }
        if !head.starts_with(&[0xcf, 0xfa, 0xed, 0xfe]) || head.len() < 8 {
            return Some(format!(
                "a file that is not a Mach-O executable ({})",
                start(head)
            ));
        }
        let cpu = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let wanted = match std::env::consts::ARCH {
            "aarch64" => 0x0100_000c,
            _ => 0x0100_0007,
        };
        (cpu != wanted).then(|| {
            format!(
                "a Mach-O executable for CPU type {cpu:#x}, not for {}",
                std::env::consts::ARCH
            )
        })
    }

    /// The first bytes of a file, as a person can read them.
    fn start(head: &[u8]) -> String {
        let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("it starts with {}", shown.join(" "))
    }
}

/// Whether the gzl at `path` answers `version` to `--version`; what it answered instead if not.
/// It runs as a handed-over gzl with the pin off, so it cannot hand over in turn, and it has
/// `VERSION_TIMEOUT` to answer.
fn answers(path: &Path, version: &semver::Version) -> Result<(), String> {
    let mut child = Command::new(path)
        .arg("--version")
        .env(crate::pin::HANDED_OVER, "1")
        .env("GZL_NO_PIN", "1")
        .current_dir(path.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|error| format!("cannot be run ({error})"))?;
    let deadline = Instant::now() + VERSION_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "did not say its version within {}s",
                    VERSION_TIMEOUT.as_secs()
                ));
            }
            Err(error) => return Err(format!("cannot be waited for ({error})")),
        }
    };
    let mut answer = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = stdout.take(4096).read_to_end(&mut answer);
    }
    let answer = String::from_utf8_lossy(&answer);
    let first = answer.lines().next().unwrap_or_default().trim();
    if status.success() && first == format!("gzl {version}") {
        return Ok(());
    }
    Err(match first {
        "" => format!("answers nothing to `gzl --version` ({status})"),
        first => format!(
            "answers `{}` to `gzl --version`, not `gzl {version}`",
            first.escape_debug()
        ),
    })
}
