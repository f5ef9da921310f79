//! `gzl bisect`: the first commit where a stage fails, found with runs in workspaces (never
//! in the user's checkout, never with `git bisect`'s state) and with the results history
//! already holds instead of running them again.
//!
//! The search is git's: of the commits still in question (reachable from the known bad one
//! and not from a good one), probe the one whose ancestors in question are closest to half of
//! them, so each probe halves the question in any shape of history, merges included. A
//! probe's verdict comes from history when a result with the stage's input key is there, else
//! from a run of the stage (with what it needs) at that commit. Exit code 125, a Gzlfile that
//! is missing or does not parse, or one without the stage means "cannot test": the commit is
//! skipped, as `git bisect run` does.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::cache;
use crate::config::Config;
use crate::error::Error;
use crate::exec::Outcome;
use crate::git::Repo;
use crate::history::History;
use crate::pipeline::{self, Force, RunOptions};
use crate::plan::{Plan, PlanError};
use crate::project::{Project, Source};
use crate::report::View;
use crate::status::StageStatus;
use crate::workspace::Pool;

/// What `gzl bisect` was asked.
pub struct Options {
    pub stage: String,
    pub good: Option<String>,
    pub bad: Option<String>,
    pub first_parent: bool,
    /// How many stages each probe runs at once.
    pub jobs: usize,
    /// How many commits are probed at once.
    pub parallel: usize,
    pub grace: Duration,
    /// Run again the commits history says failed, instead of trusting that.
    pub recheck_failures: bool,
}

/// What one commit says about the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Good,
    Bad,
    /// Cannot be tested there.
    Skip,
}

/// One commit looked at.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Probe {
    pub commit: String,
    pub verdict: Verdict,
    /// Whether the stage ran for this probe (else history said).
    pub ran: bool,
    /// The run holding the result, when there is one.
    pub run: Option<i64>,
    #[serde(rename = "duration_ms", serialize_with = "serialize_millis")]
    pub duration: Option<Duration>,
    /// Why a commit was skipped.
    pub reason: Option<String>,
}

/// How a bisection ended.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Bisection {
    /// The first bad commit, when it could be told.
    pub first_bad: Option<String>,
    /// The newest good commit that is a parent of the first bad one, or the good end.
    pub last_good: String,
    /// When skipped commits leave it open: the commits one of which is the first bad one.
    pub candidates: Vec<String>,
    pub probes: Vec<Probe>,
    /// The first bad commit's probe: its run, and its workspace when it is kept for
    /// `gzl debug` (no later probe moved it on).
    #[serde(skip)]
    pub debug: Option<(i64, Option<PathBuf>)>,
}

/// Why a bisection cannot start.
#[derive(Debug, thiserror::Error)]
pub enum BisectError {
    #[error(
        "no known good commit for `{stage}`: history has no passed run of it in the ancestry of {bad}"
    )]
    NoGood { stage: String, bad: String },
    #[error("--good {good} is not an ancestor of --bad {bad}")]
    NotAncestor { good: String, bad: String },
    #[error("`{stage}` passes at {bad}: there is no failure to look for")]
    BadPasses { stage: String, bad: String },
    #[error("`{stage}` cannot be tested at {bad}: {reason}")]
    BadUntestable {
        stage: String,
        bad: String,
        reason: String,
    },
}

/// How far back `gzl bisect` looks in history for a good commit.
const GOOD_SEARCH: usize = 10_000;

/// What `gzl bisect` reports as it goes.
pub enum Progress<'a> {
    /// A probe starts at this commit.
    Probing(&'a str),
    Decided(&'a Probe),
}

/// Finds the first commit where `options.stage` fails. `progress` hears of each probe.
pub fn bisect(
    project: &Project,
    repo: &Repo,
    options: &Options,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Bisection, Error> {
    let mut history = pipeline::open_history()?;
    let bad = repo.resolve_commit(options.bad.as_deref().unwrap_or("HEAD"))?;
    let good = match &options.good {
        Some(good) => repo.resolve_commit(good)?,
        None => newest_good(project, repo, &history, options, &bad)?,
    };
    if good == bad || !repo.is_ancestor(&good, &bad)? {
        return Err(BisectError::NotAncestor { good, bad }.into());
    }
    // A stage the bad end does not have is a typo, not a commit to skip.
    let bad_state = repo.commit_state(&bad)?;
    if let Ok(gzlfile) = project.load_at(&bad_state, &bad) {
        Plan::new(&gzlfile, std::slice::from_ref(&options.stage))?;
    }
    let range = repo.commits_between(&bad, &good, options.first_parent)?;
    let mut probes: Vec<Probe> = Vec::new();

    progress(Progress::Probing(&bad));
    let first = decide(project, repo, options, &mut history, &bad)?;
    progress(Progress::Decided(&first));
    probes.push(first.clone());
    match first.verdict {
        Verdict::Bad => {}
        Verdict::Good => {
            return Err(BisectError::BadPasses {
                stage: options.stage.clone(),
                bad,
            }
            .into());
        }
        Verdict::Skip => {
            return Err(BisectError::BadUntestable {
                stage: options.stage.clone(),
                bad,
                reason: first.reason.unwrap_or_default(),
            }
            .into());
        }
    }

    let parents: HashMap<&str, &[String]> = range
        .iter()
        .map(|(commit, parents)| (commit.as_str(), parents.as_slice()))
        .collect();
    // Commits in question: ancestors of the current bad one that no good one reaches.
    let mut open: HashSet<&str> = parents.keys().copied().collect();
    let mut bad_now: &str = &bad;
    let mut skipped: HashSet<&str> = HashSet::new();
    // Commits a good probe vouches for: it and its ancestors.
    let mut known_good: HashSet<&str> = HashSet::new();
    loop {
        open = ancestors_within(bad_now, &parents, &open);
        let testable: Vec<&str> = open
            .iter()
            .copied()
            .filter(|c| *c != bad_now && !skipped.contains(c))
            .collect();
        let next = split_points(&testable, &open, &parents, options.parallel.max(1));
        if next.is_empty() {
            break;
        }
        for commit in &next {
            progress(Progress::Probing(commit));
        }
        let decided = if next.len() == 1 {
            vec![decide(project, repo, options, &mut history, next[0])?]
        } else {
            decide_at_once(project, options, &next)?
        };
        // Goods first (they only remove), then the lowest bad, so verdicts agree whatever
        // order they came in.
        let mut bads: Vec<&str> = Vec::new();
        for (commit, probe) in next.iter().zip(&decided) {
            progress(Progress::Decided(probe));
            probes.push(probe.clone());
            match probe.verdict {
                Verdict::Bad => bads.push(commit),
                Verdict::Good if open.contains(commit) => {
                    let reached = ancestors_within(commit, &parents, &open);
                    open.retain(|c| !reached.contains(c));
                    known_good.extend(reached);
                }
                Verdict::Good => {}
                Verdict::Skip => {
                    skipped.insert(commit);
                }
            }
        }
        if let Some(lowest) = bads
            .into_iter()
            .filter(|c| open.contains(c))
            .min_by_key(|c| ancestors_within(c, &parents, &open).len())
        {
            bad_now = lowest;
        }
    }
    // Left in question: the bad commit and skipped ones that may come before it.
    let mut candidates: Vec<String> = range
        .iter()
        .map(|(commit, _)| commit.clone())
        .filter(|c| open.contains(c.as_str()))
        .collect();
    let first_bad = (candidates.len() == 1).then(|| candidates[0].clone());
    if first_bad.is_some() {
        candidates.clear();
    }
    // A parent of the first bad commit that is good: one a good probe vouches for, or one
    // outside the range (the good end reaches it).
    let last_good = first_bad
        .as_deref()
        .and_then(|bad| {
            parents.get(bad).and_then(|ps| {
                ps.iter()
                    .find(|p| !parents.contains_key(p.as_str()) || known_good.contains(p.as_str()))
                    .cloned()
            })
        })
        .unwrap_or(good);
    // Probes released their workspaces to the next one; the answer's is kept, when it
    // still holds what that probe left.
    let debug = match first_bad.as_deref().and_then(|bad| {
        probes
            .iter()
            .find(|p| p.commit == bad && p.ran && p.verdict == Verdict::Bad)
            .and_then(|p| p.run)
    }) {
        Some(run) => {
            let pool = Pool::of(
                history.home(),
                repo,
                &Config::load(&project.root)?.workspaces,
            );
            Some((run, pool.keep(run)?))
        }
        None => None,
    };
    Ok(Bisection {
        first_bad,
        last_good,
        candidates,
        probes,
        debug,
    })
}

/// The newest ancestor of `bad` at which the stage passed in history.
fn newest_good(
    project: &Project,
    repo: &Repo,
    history: &History,
    options: &Options,
    bad: &str,
) -> Result<String, Error> {
    let passed = history.commits_where_passed(&project.identity(), &options.stage)?;
    repo.ancestors(bad, options.first_parent, GOOD_SEARCH)?
        .into_iter()
        .skip(1)
        .find(|commit| passed.contains(commit))
        .ok_or_else(|| {
            BisectError::NoGood {
                stage: options.stage.clone(),
                bad: bad.to_string(),
            }
            .into()
        })
}

/// `commit` and its ancestors, as far as they are in `within`.
fn ancestors_within<'a>(
    commit: &'a str,
    parents: &HashMap<&'a str, &'a [String]>,
    within: &HashSet<&'a str>,
) -> HashSet<&'a str> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack = vec![commit];
    while let Some(next) = stack.pop() {
        if !within.contains(next) || !seen.insert(next) {
            continue;
        }
        if let Some(ps) = parents.get(next) {
            stack.extend(ps.iter().map(String::as_str));
        }
    }
    seen
}

/// Up to `count` commits of `testable` whose ancestors in `open` split it most evenly: for one,
/// the commit closest to half (a verdict there halves the question whichever it is); for `n`,
/// those closest to `k / (n + 1)` of it.
fn split_points<'a>(
    testable: &[&'a str],
    open: &HashSet<&'a str>,
    parents: &HashMap<&'a str, &'a [String]>,
    count: usize,
) -> Vec<&'a str> {
    let total = open.len();
    let mut below: Vec<(usize, &str)> = testable
        .iter()
        .map(|&c| (ancestors_within(c, parents, open).len(), c))
        .collect();
    // Ties go to the smallest id, so the search is the same every time.
    below.sort();
    let mut chosen: Vec<&str> = Vec::new();
    for k in 1..=count.min(below.len()) {
        let target = total * k / (count + 1);
        let best = below
            .iter()
            .filter(|(_, c)| !chosen.contains(c))
            .min_by_key(|(n, c)| (n.abs_diff(target), *c));
        if let Some((_, c)) = best {
            chosen.push(c);
        }
    }
    chosen
}

/// Decides several commits at once, each probe in a thread of its own (with its own
/// repository and history handles), in the order given.
fn decide_at_once(
    project: &Project,
    options: &Options,
    commits: &[&str],
) -> Result<Vec<Probe>, Error> {
    let root = project.root.clone();
    std::thread::scope(|scope| {
        let handles: Vec<_> = commits
            .iter()
            .map(|commit| {
                let root = root.clone();
                scope.spawn(move || -> Result<Probe, Error> {
                    let project = Project::discover(&root, None)?;
                    let Some(repo) = project.repo.as_ref() else {
                        return Err(Error::usage("gzl bisect needs a git repository", None));
                    };
                    let mut history = pipeline::open_history()?;
                    decide(&project, repo, options, &mut history, commit)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    Err(Error::Io {
                        message: "a probe failed".into(),
                        source: std::io::Error::other("its thread panicked"),
                    })
                })
            })
            .collect()
    })
}

/// Decides `commit`: from history when it holds a result with the stage's key, else by
/// running the stage there.
fn decide(
    project: &Project,
    repo: &Repo,
    options: &Options,
    history: &mut History,
    commit: &str,
) -> Result<Probe, Error> {
    let stage = &options.stage;
    let skip = |reason: String| Probe {
        commit: commit.to_string(),
        verdict: Verdict::Skip,
        ran: false,
        run: None,
        duration: None,
        reason: Some(reason),
    };
    let state = repo.commit_state(commit)?;
    let gzlfile = match project.load_at(&state, commit) {
        Ok(gzlfile) => gzlfile,
        Err(crate::stagefile::StagefileError::NotFound { .. }) => {
            return Ok(skip("no Gzlfile".into()));
        }
        Err(crate::stagefile::StagefileError::Invalid { .. }) => {
            return Ok(skip("its Gzlfile has errors".into()));
        }
        Err(error) => return Err(error.into()),
    };
    let plan = match Plan::new(&gzlfile, std::slice::from_ref(stage)) {
        Ok(plan) => plan,
        Err(PlanError::UnknownStage { .. } | PlanError::Empty { .. }) => {
            return Ok(skip(format!("its Gzlfile has no stage `{stage}`")));
        }
    };
    let inputs = cache::inputs(&plan, repo, &state.tree)?;
    let index = plan
        .nodes()
        .iter()
        .position(|node| node.stage.name == *stage)
        .unwrap_or(plan.len() - 1);
    if let Some((run, status, exit_code)) = history.result_with_key(&inputs[index].key())? {
        let verdict = match status {
            StageStatus::Passed => Some(Verdict::Good),
            _ if exit_code == Some(125) => Some(Verdict::Skip),
            _ if options.recheck_failures => None,
            _ => Some(Verdict::Bad),
        };
        if let Some(verdict) = verdict {
            return Ok(Probe {
                commit: commit.to_string(),
                verdict,
                ran: false,
                run: Some(run),
                duration: None,
                reason: (verdict == Verdict::Skip).then(|| "it exited 125".into()),
            });
        }
    }
    let options = RunOptions {
        targets: vec![stage.clone()],
        jobs: options.jobs,
        fail_fast: false,
        grace: options.grace,
        force: if options.recheck_failures {
            Force::Stages(vec![stage.clone()])
        } else {
            Force::Nothing
        },
        no_cache: false,
        stop: None,
        debug: false,
        // Probes share one warm workspace; the answer's is kept at the end.
        keep_failed: false,
    };
    let started = std::time::Instant::now();
    let result = pipeline::run(
        project,
        &gzlfile,
        &Source::Isolated(state),
        &options,
        View::Silent,
        &mut |line| tracing::info!("{line}"),
    )?;
    let outcome = result
        .outcomes
        .iter()
        .find(|(name, _)| name == stage)
        .map(|(_, outcome)| *outcome);
    let verdict = match outcome {
        Some(outcome) if outcome.is_pass() => Verdict::Good,
        Some(Outcome::Failed {
            exit_code: Some(125),
            ..
        }) => Verdict::Skip,
        Some(Outcome::Cancelled) | None => return Err(Error::Interrupted),
        // Stopped with `gzl stop`: this commit was not tested.
        Some(Outcome::Stopped) => Verdict::Skip,
        // A stage it needs failed, so the stage did not run: that says nothing of it here
        // (as `git bisect skip`), else a broken install would pass for the regression.
        Some(Outcome::Skipped { .. }) => Verdict::Skip,
        // Failed or timed out.
        Some(_) => Verdict::Bad,
    };
    Ok(Probe {
        commit: commit.to_string(),
        verdict,
        ran: true,
        run: Some(result.id),
        duration: Some(started.elapsed()),
        reason: (verdict == Verdict::Skip).then(|| match outcome {
            Some(Outcome::Stopped) => "it was stopped".into(),
            Some(Outcome::Skipped { because }) => {
                let need = result
                    .outcomes
                    .get(because)
                    .map_or("a stage", |(name, _)| name.as_str());
                format!("`{need}`, which it needs, failed")
            }
            _ => "it exited 125".into(),
        }),
    })
}

fn serialize_millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}
