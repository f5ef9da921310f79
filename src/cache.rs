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
use crate::history::{History, HistoryError};
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
    let mut all = Vec::with_capacity(plan.len());
    extend_inputs(plan, &mut all, repo, tree)?;
    Ok(all)
}

/// Adds the inputs of the stages of `plan` past those `all` has: stages joined to the plan
/// during the run. What they need has inputs already.
pub fn extend_inputs(
    plan: &Plan,
    all: &mut Vec<Inputs>,
    repo: &Repo,
    tree: &str,
) -> Result<(), GitError> {
    let mut files: Option<Vec<TreeFile>> = None;
    // Each stage's key once: its dependents all name it.
    let mut keys: Vec<String> = all.iter().map(Inputs::key).collect();
    for node in &plan.nodes()[all.len()..] {
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
            .map(|&need| (plan.nodes()[need].stage.name.clone(), keys[need].clone()))
            .collect();
        let inputs = Inputs {
            script: stage
                .script
                .as_deref()
                .map(|s| crate::home::blob_id(s.as_bytes())),
            attributes: attributes(stage),
            source,
            needs,
        };
        keys.push(inputs.key());
        all.push(inputs);
    }
    Ok(())
}

/// For each stage, the run whose passed result it reuses: one with the same key, when
/// every stage it needs is reused too and it is not forced. A stage whose need runs again
/// runs again as well, and so does a `@generates` stage: what it prints decides the graph.
pub fn reusable(
    plan: &Plan,
    inputs: &[Inputs],
    forced: &[bool],
    history: &History,
) -> Result<Vec<Option<i64>>, HistoryError> {
    let mut reused: Vec<Option<i64>> = Vec::with_capacity(plan.len());
    extend_reusable(plan, inputs, forced, &mut reused, history)?;
    Ok(reused)
}

/// Adds to `reused` what the stages of `plan` past those it has reuse.
pub fn extend_reusable(
    plan: &Plan,
    inputs: &[Inputs],
    forced: &[bool],
    reused: &mut Vec<Option<i64>>,
    history: &History,
) -> Result<(), HistoryError> {
    for index in reused.len()..plan.len() {
        let node = &plan.nodes()[index];
        let candidate = !forced[index]
            && !node.stage.attributes.generates
            && node.needs.iter().all(|&need| reused[need].is_some());
        reused.push(if candidate {
            history.passed_with_key(&inputs[index].key())?
        } else {
            None
        });
    }
    Ok(())
}

/// Why a stage would run, or which result it would reuse.
#[derive(Debug, Clone)]
pub enum Why {
    /// A passed execution in run `run` has the same key.
    Reuses { run: i64 },
    /// The stage would run: what it needs runs (these stages).
    NeedsRun { needs: Vec<String> },
    /// No execution has this key; history has none of this stage to compare with.
    NeverRan,
    /// A `@generates` stage, which always runs: what it prints decides the stages.
    Generates,
    /// No passed execution has this key; this is how it differs from the newest one.
    Differs {
        run: i64,
        differences: Vec<Difference>,
    },
}

/// One way a stage's inputs differ from an earlier execution's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    Script,
    Attribute {
        name: String,
        before: Option<String>,
        after: Option<String>,
    },
    /// Files it reads changed (the first few, and how many in all).
    Files {
        paths: Vec<String>,
        count: usize,
    },
    /// The files differ, and the earlier tree is no longer in the repository to say how.
    Source,
    Need {
        name: String,
    },
    /// The same inputs: the earlier execution did not pass.
    SameInputs,
}

/// How many changed paths `gzl why` names.
const SHOWN_PATHS: usize = 5;

/// Explains stage `index` of `plan`: the inputs of all stages come from [`inputs`], `reused`
/// says which stages would be reused, and `earlier` is the stage's newest recorded execution
/// with its run's tree.
pub fn explain(
    repo: &Repo,
    plan: &Plan,
    index: usize,
    all: &[Inputs],
    reused: &[Option<i64>],
    earlier: Option<(i64, Option<&str>, Inputs)>,
    tree: &str,
) -> Why {
    if let Some(run) = reused[index] {
        return Why::Reuses { run };
    }
    if plan.nodes()[index].stage.attributes.generates {
        return Why::Generates;
    }
    let running_needs: Vec<String> = plan.nodes()[index]
        .needs
        .iter()
        .filter(|&&need| reused[need].is_none())
        .map(|&need| plan.nodes()[need].stage.name.clone())
        .collect();
    let Some((run, earlier_tree, before)) = earlier else {
        return if running_needs.is_empty() {
            Why::NeverRan
        } else {
            Why::NeedsRun {
                needs: running_needs,
            }
        };
    };
    let now = &all[index];
    if before == *now && !running_needs.is_empty() {
        return Why::NeedsRun {
            needs: running_needs,
        };
    }
    let mut differences = Vec::new();
    if before.script != now.script {
        differences.push(Difference::Script);
    }
    let names: std::collections::BTreeSet<&String> = before
        .attributes
        .keys()
        .chain(now.attributes.keys())
        .collect();
    for name in names {
        let (was, is) = (before.attributes.get(name), now.attributes.get(name));
        if was != is {
            differences.push(Difference::Attribute {
                name: name.clone(),
                before: was.cloned(),
                after: is.cloned(),
            });
        }
    }
    if before.source != now.source {
        differences.push(changed_files(
            repo,
            earlier_tree,
            tree,
            &plan.nodes()[index].stage,
        ));
    }
    for (name, key) in &now.needs {
        if before.needs.get(name) != Some(key) {
            differences.push(Difference::Need { name: name.clone() });
        }
    }
    if differences.is_empty() {
        differences.push(Difference::SameInputs);
    }
    Why::Differs { run, differences }
}

/// The files `stage` reads that differ between `before` and `after`.
fn changed_files(repo: &Repo, before: Option<&str>, after: &str, stage: &Stage) -> Difference {
    let Some(before) = before.filter(|tree| repo.has_object(tree)) else {
        return Difference::Source;
    };
    let (Ok(old), Ok(new)) = (repo.files_in_tree(before), repo.files_in_tree(after)) else {
        return Difference::Source;
    };
    let matcher = stage.attributes.when.as_deref().map(Matcher::new);
    let selected = |file: &&TreeFile| matcher.as_ref().is_none_or(|m| m.matches(&file.path));
    let old: BTreeMap<&str, &TreeFile> = old
        .iter()
        .filter(selected)
        .map(|f| (f.path.as_str(), f))
        .collect();
    let new: BTreeMap<&str, &TreeFile> = new
        .iter()
        .filter(selected)
        .map(|f| (f.path.as_str(), f))
        .collect();
    let paths: Vec<String> = old
        .keys()
        .chain(new.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|path| old.get(**path) != new.get(**path))
        .map(|path| (*path).to_string())
        .collect();
    Difference::Files {
        count: paths.len(),
        paths: paths.into_iter().take(SHOWN_PATHS).collect(),
    }
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
    put("outputs", a.outputs.as_ref().map(|p| p.join(" ")));
    put("clean", a.clean.map(|c| format!("{c:?}").to_lowercase()));
    // Names, not values: a new token does not run the tests again.
    put(
        "secret",
        (!a.secrets.is_empty()).then(|| a.secrets.join(" ")),
    );
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
