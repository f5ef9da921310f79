//! The release sources the user allowed, per repository.
//!
//! A repository's gzl.toml may name where its pinned gzl comes from (`release_url`). A cloned
//! repository is someone else's text, so gzl fetches from that source only once the user
//! trusted it for that repository (`gzl pin --trust`, or yes at the prompt), as direnv allow
//! and mise trust do. What is remembered is the repository's path and the URL trusted: when
//! gzl.toml names another URL, it needs trust again. The list is `trusted.toml` in gzl's config
//! directory, a file the user may read and edit:
//!
//! ```toml
//! [release_url]
//! "/home/me/src/project" = "https://releases.example.com/gzl"
//! ```

use std::path::{Path, PathBuf};

use super::PinError;
use crate::home::Home;

/// The table of `trusted.toml` that maps a repository to the release source trusted for it.
const TABLE: &str = "release_url";

/// The user's list of trusted release sources.
#[derive(Debug, Clone)]
pub struct Trust {
    path: PathBuf,
}

impl Trust {
    pub fn of(home: &Home) -> Trust {
        Trust {
            path: home.config().join("trusted.toml"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the user trusted `url` as the release source of the repository at `root`.
    pub fn trusts(&self, root: &Path, url: &str) -> bool {
        // An unreadable list trusts nothing: the user is asked again.
        self.read()
            .ok()
            .and_then(|document| {
                document
                    .get(TABLE)?
                    .get(key(root))?
                    .as_str()
                    .map(|trusted| same(trusted, url))
            })
            .unwrap_or(false)
    }

    /// Remembers that the user trusts `url` as the release source of the repository at `root`.
    pub fn allow(&self, root: &Path, url: &str) -> Result<(), PinError> {
        let mut document = self.read()?;
        if !document.contains_table(TABLE) {
            document[TABLE] = toml_edit::table();
        }
        document[TABLE][key(root).as_str()] = toml_edit::value(url);
        self.write(&document)
    }

    /// Forgets the release source trusted for the repository at `root`; returns it, if any.
    pub fn revoke(&self, root: &Path) -> Result<Option<String>, PinError> {
        let mut document = self.read()?;
        let removed = document
            .get_mut(TABLE)
            .and_then(toml_edit::Item::as_table_like_mut)
            .and_then(|table| table.remove(&key(root)))
            .and_then(|item| item.as_str().map(str::to_string));
        if removed.is_some() {
            self.write(&document)?;
        }
        Ok(removed)
    }

    fn error(&self, message: impl std::fmt::Display) -> PinError {
        PinError::Write {
            path: self.path.clone(),
            message: message.to_string(),
        }
    }

    fn read(&self) -> Result<toml_edit::DocumentMut, PinError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text.parse().map_err(|e| self.error(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(
                "# Release sources you trusted, per repository (`gzl pin --trust`, `gzl pin --untrust`).\n"
                    .parse()
                    .map_err(|e| self.error(e))?,
            ),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Replaces the file whole, so a concurrent reader sees the old list or the new one.
    fn write(&self, document: &toml_edit::DocumentMut) -> Result<(), PinError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| self.error(e))?;
        std::io::Write::write_all(&mut file, document.to_string().as_bytes())
            .map_err(|e| self.error(e))?;
        file.persist(&self.path).map_err(|e| self.error(e))?;
        Ok(())
    }
}

/// A repository as `trusted.toml` names it: its absolute path, symbolic links resolved.
fn key(root: &Path) -> String {
    std::fs::canonicalize(root)
        .unwrap_or_else(|_| root.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// Whether two release URLs name the same source (`release_url` is read without a trailing
/// slash).
fn same(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}
