//! Secrets for stages: `@secret NAME` gives the stage `NAME`, from (in this order) the
//! environment variable `GZL_SECRET_NAME`, then the user's secrets file
//! (`<config dir>/secrets.toml`, a table of names and values, readable by its owner only).
//! Values are masked in every output and recorded nowhere. (The system keyring is not
//! consulted yet.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::home::Home;

/// The shortest value gzl takes as a secret: a shorter one would mask everyday text.
pub const MIN_LENGTH: usize = 4;

/// A problem with a secret or the secrets file.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the secrets file {} can be read by others (mode {mode:o}); run `chmod 600 {}`", path.display(), path.display())]
    Readable { path: PathBuf, mode: u32 },
    #[error("cannot use the secrets file {}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error(
        "`{name}` is not a valid secret name: use letters, digits and `_`, not starting with a digit"
    )]
    BadName { name: String },
    #[error(
        "the value of secret `{name}` is shorter than {MIN_LENGTH} characters: it would mask everyday text, so gzl refuses it"
    )]
    TooShort { name: String },
}

/// The user's secrets file.
pub fn file(home: &Home) -> PathBuf {
    home.config().join("secrets.toml")
}

/// Where the value of secret `name` comes from, and the value: `None` when it is set nowhere.
pub fn resolve(home: &Home, name: &str) -> Result<Option<(String, String)>, SecretError> {
    let variable = format!("GZL_SECRET_{name}");
    let value = match std::env::var(&variable) {
        Ok(value) => Some((value, format!("${variable}"))),
        Err(_) => read(&file(home))?
            .remove(name)
            .map(|value| (value, file(home).display().to_string()))
            .or_else(|| from_keyring(name).map(|value| (value, "the system keyring".into()))),
    };
    match value {
        Some((value, _)) if value.chars().count() < MIN_LENGTH => Err(SecretError::TooShort {
            name: name.to_string(),
        }),
        other => Ok(other.map(|(value, source)| (source, value))),
    }
}

/// `env` as recorded (secrets as `NAME=***`) with the secrets' values put back, for a shell
/// that must see what the stage saw. A secret no longer set stays `***`.
pub fn unmask(home: &Home, env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(key, value)| match value.as_str() {
            "***" => match resolve(home, key) {
                Ok(Some((_, secret))) => (key.clone(), secret),
                _ => (key.clone(), value.clone()),
            },
            _ => (key.clone(), value.clone()),
        })
        .collect()
}

/// The service secrets are stored under in the system keyring; the account is the name.
pub const KEYRING_SERVICE: &str = "gzl";

/// Secret `name` from the system keyring, where there is one: the Secret Service on Linux
/// and BSD, the Keychain on macOS. No keyring, or nothing in it, is the same: none.
fn from_keyring(name: &str) -> Option<String> {
    let entry = keyring::Entry::new(KEYRING_SERVICE, name)
        .inspect_err(|error| tracing::debug!(%error, "no system keyring"))
        .ok()?;
    entry
        .get_password()
        .inspect_err(|error| tracing::debug!(%error, name, "not in the system keyring"))
        .ok()
}

/// Where gzl looks for secret `name`, for the error that it is missing.
pub fn searched(home: &Home, name: &str) -> String {
    format!(
        "the environment variable GZL_SECRET_{name}, {} (`gzl secret set {name}` stores one) and the system keyring (service `{KEYRING_SERVICE}`, account `{name}`)",
        file(home).display()
    )
}

/// The secrets in the file, by name.
pub fn read(path: &Path) -> Result<BTreeMap<String, String>, SecretError> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => {
            return Err(SecretError::File {
                path: path.to_path_buf(),
                message: error.to_string(),
            });
        }
    };
    if metadata.mode() & 0o077 != 0 {
        return Err(SecretError::Readable {
            path: path.to_path_buf(),
            mode: metadata.mode() & 0o777,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|error| SecretError::File {
        path: path.to_path_buf(),
        message: error.to_string(),
    })?;
    toml::from_str(&text).map_err(|error| SecretError::File {
        path: path.to_path_buf(),
        message: error.message().to_string(),
    })
}

/// Writes the secrets file, readable by its owner only, replacing it whole: through a new
/// temporary file in the same directory, created 0600 with O_EXCL (so never a leftover with
/// other permissions, nor a symbolic link planted there), then renamed into place.
pub fn write(path: &Path, secrets: &BTreeMap<String, String>) -> Result<(), SecretError> {
    use std::io::Write as _;
    let error = |e: std::io::Error| SecretError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(error)?;
    let text = toml::to_string(secrets).map_err(|e| SecretError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    // tempfile creates it with a random name, O_CREAT | O_EXCL and mode 0600.
    let mut file = tempfile::Builder::new()
        .prefix(".secrets.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(error)?;
    file.write_all(text.as_bytes()).map_err(error)?;
    file.as_file().sync_all().map_err(error)?;
    file.persist(path).map_err(|e| error(e.error))?;
    // The rename is durable once the directory is.
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(error)
}

/// Checks a secret's name: an environment variable name.
pub fn check_name(name: &str) -> Result<(), SecretError> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(SecretError::BadName {
            name: name.to_string(),
        })
    }
}
