//! Artifacts: paths a stage stores (`gzl obj-store`) for the stages after it (`gzl obj-get`),
//! and that the user can list and export (`gzl artifacts`).
//!
//! The bytes live in the [`Store`]; history records which stage of which run stored which
//! path under which digest. Inside a stage, the commands talk to the runner through the job
//! API: a local runner names its store, the client writes the objects there itself and then
//! registers each path; the runner checks that a path is stored by one stage only, and
//! hands a path only to stages downstream of the one that stored it.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::api::{self, ApiError, Client, Found};
use crate::history::{ArtifactRecord, History, HistoryError};
use crate::plan::Plan;
use crate::store::{Store, StoreError, Stored};

/// A failure of an artifact command.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("gzl {command} must be run inside a gzl stage ({missing} is not set)")]
    NotInStage {
        command: &'static str,
        missing: &'static str,
    },
    #[error("`{path}`: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("`{path}` does not exist in {}", dir.display())]
    NotFound { path: String, dir: PathBuf },
    #[error(
        "the runner cannot take artifacts from this gzl: it offers no local store (capabilities: {capabilities})"
    )]
    NoLocalStore { capabilities: String },
    #[error(
        "`{path}` is already stored by stage `{other}` in this run; two stages cannot store the same path"
    )]
    Duplicate { path: String, other: String },
    #[error("no stage upstream of `{stage}` stored `{path}` ({}){}",
        if upstream.is_empty() { format!("`{stage}` needs no stage") } else { format!("upstream: {}", crate::style::quoted(upstream)) },
        stored_by.as_ref().map(|other| format!("; stage `{other}` stored it, but `{stage}` does not need it")).unwrap_or_default())]
    NotUpstream {
        path: String,
        stage: String,
        upstream: Vec<String>,
        stored_by: Option<String>,
    },
    #[error("no run {run} in history")]
    NoRun { run: i64 },
    #[error("run {run} has no stage `{stage}`")]
    NoStage { run: i64, stage: String },
    #[error("run {run}: `{path}` of stage `{stage}` was removed by gzl gc")]
    Removed {
        run: i64,
        stage: String,
        path: String,
    },
    #[error("`{path}` is not in `{directory}`, the directory stage `{stage}` stored")]
    NotInside {
        path: String,
        directory: String,
        stage: String,
    },
    #[error(
        "cannot restore `{path}` into this workspace ({}): `{file}`, which stage `{stage}` stored in {}, is a binary file that embeds that workspace's path, and gzl cannot rewrite it",
        root.display(), origin.display()
    )]
    NotRelocatable {
        path: String,
        /// The file, as the stage that stored it named it.
        file: String,
        stage: String,
        origin: PathBuf,
        root: PathBuf,
    },
    #[error("cannot restore `{path}`, which stage `{stage}` stored")]
    Restore {
        path: String,
        stage: String,
        #[source]
        source: StoreError,
    },
    #[error("run {run}: cannot write `{path}` of stage `{stage}`")]
    Export {
        run: i64,
        stage: String,
        path: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    History(#[from] HistoryError),
}

impl ArtifactError {
    /// Whether the user (or the Gzlfile) can fix it, as opposed to gzl or the disk failing.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ArtifactError::NotInStage { .. }
                | ArtifactError::BadPath { .. }
                | ArtifactError::NotFound { .. }
                | ArtifactError::NoLocalStore { .. }
                | ArtifactError::Duplicate { .. }
                | ArtifactError::NotUpstream { .. }
                | ArtifactError::NoRun { .. }
                | ArtifactError::NoStage { .. }
                | ArtifactError::Removed { .. }
                | ArtifactError::NotInside { .. }
                | ArtifactError::NotRelocatable { .. }
                | ArtifactError::Api(ApiError::Refused { .. })
        ) || matches!(
            self,
            ArtifactError::Restore { source, .. } | ArtifactError::Export { source, .. }
                if source.is_in_the_way()
        )
    }
}

/// `path` as artifacts are named: relative, `/`-separated, without `.` or a trailing `/`.
pub fn normalize(path: &str) -> Result<String, ArtifactError> {
    let bad = |reason| ArtifactError::BadPath {
        path: path.to_string(),
        reason,
    };
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(part) => parts.push(
                part.to_str()
                    .ok_or_else(|| bad("artifact paths must be UTF-8"))?,
            ),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(bad(
                    "artifact paths stay inside the stage's directory; `..` is not allowed",
                ));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad(
                    "artifact paths are relative to the stage's directory; drop the leading `/`",
                ));
            }
        }
    }
    if parts.is_empty() {
        return Err(bad("name a file or directory below the stage's directory"));
    }
    Ok(parts.join("/"))
}

/// Where a stage is: its job API and its credential, from its environment.
struct InStage {
    address: String,
    token: String,
}

impl InStage {
    fn from_env(command: &'static str) -> Result<Self, ArtifactError> {
        let var = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or(ArtifactError::NotInStage {
                    command,
                    missing: name,
                })
        };
        Ok(InStage {
            address: var(api::ADDRESS_VARIABLE)?,
            token: var(api::STAGE_TOKEN_VARIABLE)?,
        })
    }

    fn connect(self) -> Result<Client, ArtifactError> {
        Ok(Client::connect(&self.address, self.token)?)
    }
}

/// The store a runner names, for a client that writes objects itself.
fn local_store(client: &Client) -> Result<Store, ArtifactError> {
    client
        .local_store()
        .map(Store::at)
        .ok_or_else(|| ArtifactError::NoLocalStore {
            capabilities: client.capabilities().join(", "),
        })
}

/// `gzl obj-store PATH...` in a stage: stores each path below `dir` and registers it with
/// the runner. Returns the paths as named, with what was stored.
pub fn store(dir: &Path, paths: &[String]) -> Result<Vec<(String, Stored)>, ArtifactError> {
    let stage = InStage::from_env("obj-store")?;
    let names = paths
        .iter()
        .map(|p| normalize(p))
        .collect::<Result<Vec<_>, _>>()?;
    let sources: Vec<PathBuf> = names.iter().map(|name| dir.join(name)).collect();
    for (name, source) in names.iter().zip(&sources) {
        if std::fs::symlink_metadata(source).is_err() {
            return Err(ArtifactError::NotFound {
                path: name.clone(),
                dir: dir.to_path_buf(),
            });
        }
    }
    let mut client = stage.connect()?;
    // Where the files may name this workspace, so another can restore them (see
    // docs/design/relocation.md).
    let root = client.root();
    let stored = local_store(&client)?.put(&sources, root.as_deref())?;
    for (name, stored) in names.iter().zip(&stored) {
        client.stored(name, stored)?;
    }
    Ok(names.into_iter().zip(stored).collect())
}

/// `gzl obj-get PATH...` in a stage: restores each path below `dir`, as the stage upstream
/// that stored it left it, moved to this run's workspace when it was stored in another and
/// names it (text rewritten, links re-pointed). Returns the paths, what was restored and
/// which stage stored it.
pub fn get(dir: &Path, paths: &[String]) -> Result<Vec<(String, Stored, String)>, ArtifactError> {
    let stage = InStage::from_env("obj-get")?;
    let names = paths
        .iter()
        .map(|p| normalize(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut client = stage.connect()?;
    let store = local_store(&client)?;
    // Every path is known before any is written: a refusal leaves the directory as it was.
    let found = names
        .iter()
        .map(|name| client.lookup(name))
        .collect::<Result<Vec<_>, _>>()?;
    let root = client.root();
    // The directory as stored, for a path inside it.
    let directory = |name: &str, found: &Found| match &found.within {
        Some(within) => name[..name.len() - within.len() - 1].to_string(),
        None => name.to_string(),
    };
    let refused = |name: &str, found: &Found, source: StoreError| match (source, &root) {
        (StoreError::NotRelocatable { file, origin }, Some(root)) => {
            let directory = directory(name, found);
            ArtifactError::NotRelocatable {
                path: name.to_string(),
                file: if file.is_empty() {
                    directory
                } else {
                    format!("{directory}/{file}")
                },
                stage: found.stored_by.clone(),
                origin,
                root: root.clone(),
            }
        }
        (source, _) => ArtifactError::Restore {
            path: name.to_string(),
            stage: found.stored_by.clone(),
            source,
        },
    };
    for (index, (name, found)) in names.iter().zip(&found).enumerate() {
        if let Some(within) = &found.within
            && !store.holds(&found.digest, within)
        {
            return Err(ArtifactError::NotInside {
                path: name.clone(),
                directory: directory(name, found),
                stage: found.stored_by.clone(),
            });
        }
        // Files that would keep naming the workspace that stored them are refused before
        // anything is written; the first path's restore decides that itself.
        if index > 0
            && let Some(root) = &root
        {
            store
                .relocation(&found.digest, found.within.as_deref(), root)
                .map_err(|source| refused(name, found, source))?;
        }
    }
    let mut restored = Vec::with_capacity(names.len());
    for (name, found) in names.iter().zip(&found) {
        let stored = store
            .get(
                &found.digest,
                found.within.as_deref(),
                dir,
                name,
                root.as_deref(),
            )
            .map_err(|source| refused(name, found, source))?;
        restored.push((name.clone(), stored, found.stored_by.clone()));
    }
    Ok(restored)
}

/// The artifacts of one run as its runner knows them: who stored what, and who may get it.
pub struct RunArtifacts {
    run: i64,
    names: Vec<String>,
    /// For each stage, the stages it needs directly, as the plan says (which grows when a
    /// `@generates` stage joins stages to the run).
    needs: Vec<Vec<usize>>,
    /// Path → the stage that stored it and its digest.
    stored: HashMap<String, (usize, String)>,
}

impl RunArtifacts {
    /// The artifacts of run `run` of `plan` as it starts: those its cached stages provide,
    /// the ones they stored in the run they reuse (`reused`), recorded in history as this
    /// run's too.
    pub fn new(
        run: i64,
        plan: &Plan,
        reused: &[Option<i64>],
        reused_runs: &ReusedRuns,
        history: &mut History,
    ) -> Result<Self, HistoryError> {
        let mut artifacts = RunArtifacts {
            run,
            names: Vec::new(),
            needs: Vec::new(),
            stored: HashMap::new(),
        };
        artifacts.join(plan, 0, reused, reused_runs, history)?;
        Ok(artifacts)
    }

    /// Follows `plan` after stages joined it at indices from `first` on: what they need,
    /// what now needs them, and the artifacts of those that are cached (`reused`), from
    /// `reused_runs` (what [`keep_reusable`] read).
    pub fn join(
        &mut self,
        plan: &Plan,
        first: usize,
        reused: &[Option<i64>],
        reused_runs: &ReusedRuns,
        history: &mut History,
    ) -> Result<(), HistoryError> {
        self.names = plan.nodes().iter().map(|n| n.stage.name.clone()).collect();
        self.needs = plan.nodes().iter().map(|n| n.needs.clone()).collect();
        let mut provided = Vec::new();
        for (stage, from) in reused.iter().enumerate().skip(first) {
            let Some(from) = *from else { continue };
            let name = self.names[stage].clone();
            for artifact in reused_runs.of_stage(from, &name) {
                match self.register(stage, &artifact.path, &artifact.digest) {
                    Ok(()) => provided.push(ArtifactRecord {
                        run: self.run,
                        ..artifact.clone()
                    }),
                    // Results from different runs can clash; the first stage keeps the path.
                    Err(error) => tracing::debug!(%error, "a cached artifact is not provided"),
                }
            }
        }
        history.record_artifacts(&provided)
    }

    /// Every stage `stage` needs, directly or through others, in plan order.
    fn upstream(&self, stage: usize) -> Vec<usize> {
        let mut seen = vec![false; self.needs.len()];
        let mut stack = self.needs[stage].clone();
        while let Some(next) = stack.pop() {
            if !std::mem::replace(&mut seen[next], true) {
                stack.extend(&self.needs[next]);
            }
        }
        (0..seen.len()).filter(|&i| seen[i]).collect()
    }

    pub fn run(&self) -> i64 {
        self.run
    }

    /// The stage named `name`, by plan index.
    pub fn stage(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// How many stages the run has.
    pub fn stage_count(&self) -> usize {
        self.names.len()
    }

    pub fn name(&self, stage: usize) -> &str {
        &self.names[stage]
    }

    /// Records that `stage` stored `path` as `digest`; refused when another stage of the run
    /// stored it.
    pub fn register(
        &mut self,
        stage: usize,
        path: &str,
        digest: &str,
    ) -> Result<(), ArtifactError> {
        let path = normalize(path)?;
        if let Some((other, _)) = self.stored.get(&path)
            && *other != stage
        {
            return Err(ArtifactError::Duplicate {
                path,
                other: self.names[*other].clone(),
            });
        }
        self.stored.insert(path, (stage, digest.to_string()));
        Ok(())
    }

    /// The digest of `path` and the stage that stored it, when that stage is upstream of
    /// `stage`. With `inside`, a path inside a directory an upstream stage stored is found
    /// too, with where it is within that directory.
    pub fn lookup(
        &self,
        stage: usize,
        path: &str,
        inside: bool,
    ) -> Result<(&str, &str, Option<String>), ArtifactError> {
        let path = normalize(path)?;
        let upstream = self.upstream(stage);
        let enclosing = || {
            self.stored
                .iter()
                .filter(|(stored, (by, _))| {
                    upstream.contains(by)
                        && path.len() > stored.len()
                        && path.starts_with(stored.as_str())
                        && path.as_bytes()[stored.len()] == b'/'
                })
                .max_by_key(|(stored, _)| stored.len())
        };
        match self.stored.get(&path) {
            Some((by, digest)) if upstream.contains(by) => {
                Ok((digest.as_str(), self.names[*by].as_str(), None))
            }
            None if inside && let Some((stored, (by, digest))) = enclosing() => Ok((
                digest.as_str(),
                self.names[*by].as_str(),
                Some(path[stored.len() + 1..].to_string()),
            )),
            found => Err(ArtifactError::NotUpstream {
                path,
                stage: self.names[stage].clone(),
                upstream: upstream.iter().map(|&s| self.names[s].clone()).collect(),
                stored_by: found.map(|(by, _)| self.names[*by].clone()),
            }),
        }
    }
}

/// Drops from `reused` every stage from `first` on whose artifacts the store no longer holds
/// whole (gc removed them), and so every stage needing one: they run again and store them
/// anew. Returns the artifacts of the runs reused, which the run then provides.
pub fn keep_reusable(
    plan: &Plan,
    first: usize,
    reused: &mut [Option<i64>],
    history: &History,
    store: &Store,
) -> Result<ReusedRuns, HistoryError> {
    let reused_runs = ReusedRuns::of(&reused[first.min(reused.len())..], history)?;
    for (index, node) in plan.nodes().iter().enumerate().skip(first) {
        let Some(from) = reused[index] else { continue };
        let needs_run = node.needs.iter().any(|&need| reused[need].is_none());
        let lost = || {
            reused_runs
                .of_stage(from, &node.stage.name)
                .any(|a| a.removed || !store.has(&a.digest))
        };
        if needs_run || lost() {
            tracing::debug!(stage = %node.stage.name, from, "not reused: its artifacts are gone");
            reused[index] = None;
        }
    }
    Ok(reused_runs)
}

/// The artifacts of the runs whose results stages reuse, read once per run rather than once
/// per stage: a fully cached pipeline of many stages mostly reuses one run.
#[derive(Default)]
pub struct ReusedRuns(HashMap<i64, Vec<ArtifactRecord>>);

impl ReusedRuns {
    fn of(reused: &[Option<i64>], history: &History) -> Result<Self, HistoryError> {
        let mut runs = HashMap::new();
        for &run in reused.iter().flatten() {
            if let std::collections::hash_map::Entry::Vacant(entry) = runs.entry(run) {
                entry.insert(history.artifacts(run, None)?);
            }
        }
        Ok(ReusedRuns(runs))
    }

    /// The artifacts stage `stage` stored in run `run`.
    pub fn of_stage<'a>(
        &'a self,
        run: i64,
        stage: &'a str,
    ) -> impl Iterator<Item = &'a ArtifactRecord> + 'a {
        self.0
            .get(&run)
            .into_iter()
            .flatten()
            .filter(move |a| a.stage == stage)
    }
}

/// The artifacts of run `run` (of one stage when `stage` is given), for `gzl artifacts`.
pub fn list(
    history: &History,
    run: i64,
    stage: Option<&str>,
) -> Result<Vec<ArtifactRecord>, ArtifactError> {
    if history.run(run)?.is_none() {
        return Err(ArtifactError::NoRun { run });
    }
    if let Some(stage) = stage
        && !history.stages(run)?.iter().any(|s| s.name == stage)
    {
        return Err(ArtifactError::NoStage {
            run,
            stage: stage.to_string(),
        });
    }
    Ok(history.artifacts(run, stage)?)
}

/// Writes the artifacts of run `run` (of one stage when `stage` is given) into `out`, each
/// at its path, with the bytes stored (never moved to another workspace). Returns them.
pub fn export(
    history: &History,
    store: &Store,
    run: i64,
    stage: Option<&str>,
    out: &Path,
) -> Result<Vec<ArtifactRecord>, ArtifactError> {
    let artifacts = list(history, run, stage)?;
    if let Some(gone) = artifacts.iter().find(|a| a.removed) {
        return Err(ArtifactError::Removed {
            run,
            stage: gone.stage.clone(),
            path: gone.path.clone(),
        });
    }
    for artifact in &artifacts {
        store
            .get(&artifact.digest, None, out, &artifact.path, None)
            .map_err(|source| ArtifactError::Export {
                run,
                stage: artifact.stage.clone(),
                path: artifact.path.clone(),
                source,
            })?;
    }
    Ok(artifacts)
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn paths_are_named_relative_and_plain() {
        assert_eq!(normalize("./target//app/").unwrap(), "target/app");
        assert!(normalize("/etc/passwd").is_err());
        assert!(normalize("a/../../b").is_err());
        assert!(normalize(".").is_err());
    }
}
