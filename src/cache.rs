//! Results that are not run twice. Every stage execution has an input key: a hash of the
//! stage's text (script, shell, attributes), the content of its inputs, and the keys of the
//! stages it needs. A stage whose key matches a passed execution in history is `cached`:
//! not executed, and shown with the run it reuses.
//!
//! Inputs are the whole source tree, or with `@when PATTERN...` only the files the patterns
//! match. Content is read as git object ids (git hashed every file already), so a key costs
//! no file hashing: the whole tree is one id, and `@when` hashes the ids of matching files.

use std::collections::BTreeMap;

use crate::git::{GitError, Repo, TreeFile};
use crate::plan::Plan;
use crate::stagefile::Stage;

/// Bumped whenever what goes into a key changes, so old results are not reused wrongly.
const KEY_VERSION: &str = "gzl stage key 1";

/// What a stage's key is made of, as recorded in history for `gzl why`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Inputs {
    /// The git blob id of the script; `None` for a group.
    pub script: Option<String>,
    /// Every attribute that changes what the stage does, as written (`@when` included).
    pub attributes: BTreeMap<String, String>,
    /// The id of the files the stage reads: the source tree, or a hash of the files its
    /// `@when` patterns match.
    pub source: String,
    /// The key of each stage it needs, by name.
    pub needs: BTreeMap<String, String>,
}

impl Inputs {
    /// The key: a hash of everything above.
    pub fn key(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        hash(&[KEY_VERSION.as_bytes(), text.as_bytes()])
    }
}

/// The inputs of every stage of `plan` (plan order) for the source tree `tree`.
pub fn inputs(plan: &Plan, repo: &Repo, tree: &str) -> Result<Vec<Inputs>, GitError> {
    let mut files: Option<Vec<TreeFile>> = None;
    let mut all: Vec<Inputs> = Vec::with_capacity(plan.len());
    for node in plan.nodes() {
        let stage = &node.stage;
        let source = match &stage.attributes.when {
            Some(patterns) => {
                if files.is_none() {
                    files = Some(repo.files_in_tree(tree)?);
                }
                let matcher = Matcher::new(patterns);
                matched_digest(files.iter().flatten().filter(|f| matcher.matches(&f.path)))
            }
            None => tree.to_string(),
        };
        let needs = node
            .needs
            .iter()
            .map(|&need| (plan.nodes()[need].stage.name.clone(), all[need].key()))
            .collect();
        all.push(Inputs {
            script: stage
                .script
                .as_deref()
                .map(|s| crate::home::blob_id(s.as_bytes())),
            attributes: attributes(stage),
            source,
            needs,
        });
    }
    Ok(all)
}

/// The attributes that shape what a stage does, by name.
fn attributes(stage: &Stage) -> BTreeMap<String, String> {
    let a = &stage.attributes;
    let mut map = BTreeMap::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            map.insert(name.to_string(), value);
        }
    };
    put(
        "timeout",
        a.timeout.map(|d| humantime::format_duration(d).to_string()),
    );
    put(
        "idle-timeout",
        a.idle_timeout
            .map(|d| humantime::format_duration(d).to_string()),
    );
    put(
        "env",
        (!a.env.is_empty()).then(|| {
            a.env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n")
        }),
    );
    put("shell", a.shell.as_ref().map(|words| words.join(" ")));
    put("dir", a.dir.as_ref().map(|d| d.display().to_string()));
    put("when", a.when.as_ref().map(|p| p.join(" ")));
    put("clean", a.clean.map(|c| format!("{c:?}").to_lowercase()));
    map
}

/// Decides which stages `@when` patterns select: gitignore-style globs against paths from
/// the repository root; a pattern naming a directory selects everything below it; a later
/// pattern overrides an earlier one, and `!PATTERN` leaves matching files out.
pub struct Matcher {
    patterns: Vec<gix::glob::Pattern>,
}

impl Matcher {
    pub fn new(patterns: &[String]) -> Self {
        Matcher {
            patterns: patterns
                .iter()
                .filter_map(|p| gix::glob::Pattern::from_bytes(p.as_bytes()))
                .collect(),
        }
    }

    /// Whether `pattern` is a glob gzl can use.
    pub fn is_valid(pattern: &str) -> bool {
        gix::glob::Pattern::from_bytes(pattern.as_bytes()).is_some()
    }

    pub fn matches(&self, path: &str) -> bool {
        let mut selected = false;
        for pattern in &self.patterns {
            if matches_path(pattern, path) {
                selected = !pattern.is_negative();
            }
        }
        selected
    }
}

/// Whether `pattern` matches the file `path` or one of the directories holding it.
fn matches_path(pattern: &gix::glob::Pattern, path: &str) -> bool {
    use gix::bstr::ByteSlice as _;
    let candidates = path
        .match_indices('/')
        .map(|(at, _)| (&path[..at], true))
        .chain(std::iter::once((path, false)));
    for (candidate, is_dir) in candidates {
        let candidate = candidate.as_bytes().as_bstr();
        let basename = candidate.rfind_byte(b'/').map(|at| at + 1);
        if pattern.matches_repo_relative_path(
            candidate,
            basename,
            Some(is_dir),
            gix::glob::pattern::Case::Sensitive,
            gix::glob::wildmatch::Mode::NO_MATCH_SLASH_LITERAL,
        ) {
            return true;
        }
    }
    false
}

/// A hash of the matched files' modes, ids and paths.
fn matched_digest<'a>(files: impl Iterator<Item = &'a TreeFile>) -> String {
    let mut text = String::new();
    for file in files {
        text.push_str(&format!("{:o} {} {}\n", file.mode, file.id, file.path));
    }
    hash(&[b"files\n", text.as_bytes()])
}

fn hash(parts: &[&[u8]]) -> String {
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    for part in parts {
        hasher.update(part);
    }
    hasher
        .try_finalize()
        .map(|id| id.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::Matcher;

    fn matcher(patterns: &[&str]) -> Matcher {
        Matcher::new(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn patterns_select_like_gitignore() {
        let m = matcher(&["src/**", "Cargo.toml", "docs", "!src/generated/**"]);
        assert!(m.matches("src/main.rs"));
        assert!(m.matches("src/a/b/c.rs"));
        assert!(m.matches("Cargo.toml"));
        assert!(m.matches("crates/x/Cargo.toml"));
        assert!(m.matches("docs/guide/intro.md"));
        assert!(!m.matches("src/generated/out.rs"));
        assert!(!m.matches("README.md"));
        assert!(!m.matches("srcs/main.rs"));
        let rooted = matcher(&["/Cargo.toml", "*.md"]);
        assert!(rooted.matches("Cargo.toml"));
        assert!(!rooted.matches("crates/x/Cargo.toml"));
        assert!(rooted.matches("docs/a.md"));
    }
}
