//! A stage's declared outputs (`@outputs PATTERN...`): the paths it leaves for the stages
//! after it. When the stage passes in a run that offers its results, gzl stores what the
//! patterns match as the stage's artifacts; when the stage is reused and a stage running in
//! this run's workspace needs it, gzl restores them there (see `pipeline::reuse`).
//!
//! Patterns are globs relative to the stage's directory, matched one path component at a
//! time, as gitignore matches: `*`, `?` and `[...]` within a name, `**` for any number of
//! directories. A pattern names paths (files, directories or symbolic links), ignored ones
//! included; a matched directory is stored whole.

use std::path::{Path, PathBuf};

use crate::api;
use crate::exec::{self, Job};
use crate::store::{Store, StoreError, Stored};

/// Stores the outputs of the stages that pass, and registers them as their artifacts.
pub struct Keeper {
    pub stages: api::Stages,
    /// The workspace the stages run in.
    pub root: PathBuf,
}

impl exec::Keeper for Keeper {
    fn keep(&self, stage: usize, job: &Job) -> Result<Vec<String>, String> {
        let (found, unmatched) = expand(&job.cwd, &job.outputs);
        // A pattern that matches nothing is not an error: what a tool writes can depend on
        // the project (no `dist/*.map` without source maps). Said in the log, and nothing
        // is restored for it.
        let mut lines: Vec<String> = unmatched
            .iter()
            .map(|pattern| format!("@outputs `{pattern}` matched nothing"))
            .collect();
        if found.is_empty() {
            return Ok(lines);
        }
        let sources: Vec<PathBuf> = found.iter().map(|path| job.cwd.join(path)).collect();
        let stored = put(self.stages.store(), &sources, &self.root)
            .map_err(|error| format!("cannot store the stage's @outputs: {}", chain(&error)))?;
        let (mut files, mut size) = (0, 0);
        for (path, stored) in found.iter().zip(&stored) {
            self.stages
                .register(stage, path, stored)
                .map_err(|message| format!("cannot keep `{path}` as an output: {message}"))?;
            files += stored.files;
            size += stored.size;
        }
        lines.push(format!(
            "kept @outputs {} ({files} file{}, {})",
            crate::style::quoted(&found),
            if files == 1 { "" } else { "s" },
            indicatif::DecimalBytes(size)
        ));
        Ok(lines)
    }
}

/// An error with its causes, on one line.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Stores `paths`, which a stage in the workspace `root` left, recording that workspace as
/// their origin: where restored elsewhere, what names it is moved there.
fn put(store: &Store, paths: &[PathBuf], root: &Path) -> Result<Vec<Stored>, StoreError> {
    store.put(paths, Some(root))
}

/// Restores the stored `digest` at `path` below `base`, moved to the workspace `root`.
fn get(
    store: &Store,
    digest: &str,
    base: &Path,
    path: &str,
    root: &Path,
) -> Result<Stored, StoreError> {
    store.get(digest, None, base, path, Some(root))
}

/// Why a stored artifact cannot be restored into a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `file` embeds the path of the workspace it was made in, and gzl cannot rewrite it.
    NotRelocatable { file: String },
    /// The store cannot say (an object is missing or damaged), for this reason.
    Fails(String),
}

/// Whether the stored `artifact` can be restored into the workspace at `root`: as stored, or
/// with what names its origin moved there (see docs/design/relocation.md).
pub fn relocatable(
    store: &Store,
    artifact: &crate::history::ArtifactRecord,
    root: &Path,
) -> Result<(), Refusal> {
    match store.relocation(&artifact.digest, None, root) {
        Ok(()) => Ok(()),
        // Named as the stage's directory holds it.
        Err(StoreError::NotRelocatable { file, .. }) => Err(Refusal::NotRelocatable {
            file: if file.is_empty() {
                artifact.path.clone()
            } else {
                format!("{}/{file}", artifact.path)
            },
        }),
        Err(error) => Err(Refusal::Fails(chain(&error))),
    }
}

/// Why a pattern cannot be an output, for a Gzlfile diagnostic.
pub fn check_pattern(pattern: &str) -> Result<(), &'static str> {
    if pattern.starts_with('/') {
        return Err("absolute: outputs are relative to the stage's directory");
    }
    if pattern.starts_with('!') {
        return Err("`!` patterns are not outputs: name the paths to keep");
    }
    let components = components(pattern);
    if components.is_empty() {
        return Err("names nothing below the stage's directory");
    }
    for component in components {
        match component {
            ".." => return Err("leaves the stage's directory"),
            "" | "." => return Err("has an empty or `.` part"),
            ".git" => return Err("git's own directory is not an output"),
            _ if !crate::cache::Matcher::is_valid(component) => return Err("not a glob"),
            _ => {}
        }
    }
    Ok(())
}

/// The parts of `pattern` between `/`s, a trailing `/` dropped.
fn components(pattern: &str) -> Vec<&str> {
    let trimmed = pattern.strip_suffix('/').unwrap_or(pattern);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split('/').collect()
}

/// Whether `name` (one path component) matches the glob `pattern` (one component).
fn matches_name(pattern: &str, name: &str) -> bool {
    use gix::bstr::ByteSlice as _;
    if !is_glob(pattern) {
        return pattern == name;
    }
    gix::glob::wildmatch(
        pattern.as_bytes().as_bstr(),
        name.as_bytes().as_bstr(),
        gix::glob::wildmatch::Mode::NO_MATCH_SLASH_LITERAL,
    )
}

fn is_glob(component: &str) -> bool {
    component.contains(['*', '?', '[', '\\'])
}

/// Whether `path` (relative, `/`-separated) is a path `patterns` name: what
/// [`expand`] could have returned for it.
pub fn matches(patterns: &[String], path: &str) -> bool {
    let path: Vec<&str> = path.split('/').collect();
    patterns
        .iter()
        .any(|pattern| matches_components(&components(pattern), &path))
}

fn matches_components(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| matches_components(rest, &path[skip..])),
        Some((first, rest)) => path.split_first().is_some_and(|(name, after)| {
            matches_name(first, name) && matches_components(rest, after)
        }),
    }
}

/// What `patterns` match below `dir`: each matched path once, sorted, none inside another
/// (a matched directory holds what else matched in it); and the patterns that matched
/// nothing. Symbolic links are matched as themselves and never followed.
pub fn expand(dir: &Path, patterns: &[String]) -> (Vec<String>, Vec<String>) {
    let mut found = Vec::new();
    let mut unmatched = Vec::new();
    for pattern in patterns {
        let before = found.len();
        expand_from(dir, String::new(), &components(pattern), &mut found);
        if found.len() == before {
            unmatched.push(pattern.clone());
        }
    }
    found.sort();
    found.dedup();
    let mut outermost: Vec<String> = Vec::with_capacity(found.len());
    for path in found {
        let inside = outermost.last().is_some_and(|outer| {
            path.starts_with(outer.as_str()) && path.as_bytes().get(outer.len()) == Some(&b'/')
        });
        if !inside {
            outermost.push(path);
        }
    }
    (outermost, unmatched)
}

fn join(relative: &str, name: &str) -> String {
    if relative.is_empty() {
        name.to_string()
    } else {
        format!("{relative}/{name}")
    }
}

/// Adds to `found` the paths below `dir/relative` that `pattern` matches.
fn expand_from(dir: &Path, relative: String, pattern: &[&str], found: &mut Vec<String>) {
    let Some((first, rest)) = pattern.split_first() else {
        if !relative.is_empty() {
            found.push(relative);
        }
        return;
    };
    let here = dir.join(&relative);
    if *first == "**" {
        if rest.is_empty() {
            // Everything below: the directory itself, or what it holds at the top.
            if relative.is_empty() {
                for name in names(&here) {
                    found.push(name);
                }
            } else {
                found.push(relative);
            }
            return;
        }
        expand_from(dir, relative.clone(), rest, found);
        for name in names(&here) {
            let path = join(&relative, &name);
            if is_dir(&dir.join(&path)) {
                expand_from(dir, path, pattern, found);
            }
        }
        return;
    }
    let candidates: Vec<String> = if is_glob(first) {
        names(&here)
            .into_iter()
            .filter(|name| matches_name(first, name))
            .collect()
    } else if std::fs::symlink_metadata(here.join(first)).is_ok() {
        vec![(*first).to_string()]
    } else {
        Vec::new()
    };
    for name in candidates {
        let path = join(&relative, &name);
        if rest.is_empty() {
            found.push(path);
        } else if is_dir(&dir.join(&path)) {
            expand_from(dir, path, rest, found);
        }
    }
}

/// The names in directory `dir` but git's own, sorted; none when it cannot be read.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| name != ".git")
        .collect();
    names.sort();
    names
}

/// A directory, not a link to one.
fn is_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Restores `artifacts` (a cached stage's outputs) into its directory `dir` in the workspace
/// `root`, each replacing what is at its path: that is moved into `aside` (a directory the
/// caller removes later), so the restored path holds exactly what the stage left. Returns
/// how many files it restored.
pub fn restore(
    store: &Store,
    artifacts: &[&crate::history::ArtifactRecord],
    dir: &Path,
    root: &Path,
    aside: &Path,
) -> Result<u64, String> {
    let mut files = 0;
    static ASIDE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    for artifact in artifacts {
        let target = dir.join(&artifact.path);
        // Moved aside through no link: the path's directories are plain ones below `dir`.
        let mut parent = dir.to_path_buf();
        let parts: Vec<&str> = artifact.path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            parent.push(part);
            if std::fs::symlink_metadata(&parent).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(format!(
                    "{} is a symbolic link, and gzl does not restore through links",
                    parent.display()
                ));
            }
        }
        if std::fs::symlink_metadata(&target).is_ok() {
            std::fs::create_dir_all(aside)
                .and_then(|()| {
                    let name = ASIDE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::fs::rename(&target, aside.join(name.to_string()))
                })
                .map_err(|error| format!("cannot move {} aside: {error}", target.display()))?;
        }
        let restored = get(store, &artifact.digest, dir, &artifact.path, root)
            .map_err(|error| format!("`{}`: {}", artifact.path, chain(&error)))?;
        files += restored.files;
    }
    Ok(files)
}

/// `patterns` of a stage whose directory is `dir` (relative to the workspace root) as
/// patterns `git clean -e` takes: anchored at the root, so they name the same paths.
pub fn clean_excludes(dir: Option<&Path>, patterns: &[String]) -> Vec<String> {
    let prefix = dir
        .map(|d| {
            d.components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(part) => part.to_str(),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .filter(|p| !p.is_empty());
    patterns
        .iter()
        .map(|pattern| {
            let pattern = pattern.strip_suffix('/').unwrap_or(pattern);
            match &prefix {
                Some(prefix) => format!("/{prefix}/{pattern}"),
                None => format!("/{pattern}"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "/abs", "../up", "a/../b", "!x", ".", "./a", "a//b", ".git", "x/.git",
        ] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
        for good in [
            "node_modules",
            ".venv/",
            "dist/*.js",
            "**/*.pyc",
            "build/**",
        ] {
            assert!(check_pattern(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn patterns_match_paths_by_component() {
        let patterns = strings(&["deps", "dist/*.js", "**/__pycache__"]);
        assert!(matches(&patterns, "deps"));
        assert!(!matches(&patterns, "deps/lib"));
        assert!(matches(&patterns, "dist/app.js"));
        assert!(!matches(&patterns, "dist/sub/app.js"));
        assert!(matches(&patterns, "__pycache__"));
        assert!(matches(&patterns, "a/b/__pycache__"));
    }

    #[test]
    fn expansion_finds_outermost_matches_and_reports_unmatched() {
        let dir = tempfile::tempdir().unwrap();
        for file in [
            "deps/lib",
            "dist/a.js",
            "dist/b.css",
            "src/x/__pycache__/m.pyc",
        ] {
            let path = dir.path().join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        let (found, unmatched) = expand(
            dir.path(),
            &strings(&["deps", "deps/lib", "dist/*.js", "**/__pycache__", "missing"]),
        );
        assert_eq!(found, strings(&["deps", "dist/a.js", "src/x/__pycache__"]));
        assert_eq!(unmatched, strings(&["missing"]));
    }
}
