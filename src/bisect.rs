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
//! skipped, as `git bisect run` does; so is one whose stage did not run because a stage it
//! needs failed. A bad verdict whose failure does not look like the bad end's is run again
//! with its needs forced (see `check`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::cache;
use crate::config::Config;
use crate::duration::format_duration;
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
    /// A failure that stays suspicious after a re-run is a skip, not bad.
    pub strict: bool,
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
    /// Why its failure does not look like the bad end's, and what its re-run with its needs
    /// forced said.
    pub suspicious: Option<String>,
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
    let first = decide(project, repo, options, &mut history, &bad, false)?;
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

    // What the bad end's failure looked like, and how long known runs of the stage took.
    let reference = first
        .run
        .map(|run| Reference::of(&history, &options.stage, run));
    let mut known: Vec<(i64, Duration)> = reference
        .iter()
        .filter_map(|r| r.took.map(|took| (r.run, took)))
        .collect();

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
        let mut decided = if next.len() == 1 {
            vec![decide(
                project,
                repo,
                options,
                &mut history,
                next[0],
                false,
            )?]
        } else {
            decide_at_once(project, options, &next)?
        };
        for (commit, probe) in next.iter().zip(decided.iter_mut()) {
            if let Some(reference) = &reference {
                *probe = check(
                    project,
                    repo,
                    options,
                    &mut history,
                    commit,
                    probe.clone(),
                    reference,
                    &known,
                )?;
            }
            // A verdict taken as it is tells how long the stage takes.
            if probe.verdict != Verdict::Skip
                && probe.suspicious.is_none()
                && let Some(run) = probe.run
                && let Some(took) = Reference::of(&history, &options.stage, run).took
            {
                known.push((run, took));
            }
        }
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
                    decide(&project, repo, options, &mut history, commit, false)
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
    forced: bool,
) -> Result<Probe, Error> {
    let stage = &options.stage;
    let skip = |reason: String| Probe {
        commit: commit.to_string(),
        verdict: Verdict::Skip,
        ran: false,
        run: None,
        duration: None,
        reason: Some(reason),
        suspicious: None,
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
    let known = if forced {
        None
    } else {
        history.result_with_key(&inputs[index].key())?
    };
    if let Some((run, status, exit_code)) = known {
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
                suspicious: None,
            });
        }
    }
    let options = RunOptions {
        targets: vec![stage.clone()],
        jobs: options.jobs,
        fail_fast: false,
        grace: options.grace,
        // A forced probe runs what the stage needs too, so nothing reused stands in for it.
        force: if forced {
            Force::Stages(plan.nodes().iter().map(|n| n.stage.name.clone()).collect())
        } else if options.recheck_failures {
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
        suspicious: None,
    })
}

fn serialize_millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}

/// How a failure of the stage looked at one run: how long the stage ran, and its last lines.
struct Reference {
    run: i64,
    took: Option<Duration>,
    last_lines: Vec<String>,
}

/// How many of a failure's last log lines are compared with the bad end's.
const LAST_LINES: usize = 5;

/// Below this, how long a stage took is noise (a process starting on a busy machine), not a
/// sign of how it failed.
const TIMING_FLOOR: Duration = Duration::from_millis(100);

impl Reference {
    fn of(history: &History, stage: &str, run: i64) -> Reference {
        let record = history
            .stages(run)
            .ok()
            .and_then(|stages| stages.into_iter().find(|s| s.name == stage));
        let took = record.as_ref().and_then(|r| r.duration);
        let path = record
            .and_then(|r| r.log_path)
            .unwrap_or_else(|| history.home().run_dir(run).join(format!("{stage}.log")));
        let text = std::fs::read(path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        let lines: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(without_numbers)
            .collect();
        let last_lines = lines[lines.len().saturating_sub(LAST_LINES)..].to_vec();
        Reference {
            run,
            took,
            last_lines,
        }
    }

    /// Why a failure at `probe` does not look like this one, if it does not: it ended in under
    /// a tenth of the fastest known run, or its last lines share none with this one's.
    fn differs(
        &self,
        history: &History,
        stage: &str,
        probe: i64,
        known: &[(i64, Duration)],
    ) -> Option<String> {
        let failure = Reference::of(history, stage, probe);
        let mut evidence: Vec<String> = Vec::new();
        if let (Some(took), Some((fastest_run, fastest))) =
            (failure.took, known.iter().min_by_key(|(_, d)| *d))
            && *fastest >= TIMING_FLOOR
            && took * 10 < *fastest
        {
            evidence.push(format!(
                "it ended in {}, under a tenth of run {fastest_run}'s {}",
                format_duration(took),
                format_duration(*fastest)
            ));
        }
        if !self.last_lines.is_empty()
            && !failure.last_lines.is_empty()
            && !failure
                .last_lines
                .iter()
                .any(|l| self.last_lines.contains(l))
        {
            evidence.push(format!(
                "its last lines share none with run {}'s (it ended with `{}`)",
                self.run,
                failure.last_lines.last().map_or("", String::as_str)
            ));
        }
        (!evidence.is_empty()).then(|| format!("run {probe}: {}", evidence.join("; ")))
    }
}

/// A bad probe whose failure does not look like the bad end's is run once more with what the
/// stage needs forced (a reused install may be what failed it); one that stays suspicious is
/// bad, with the evidence, or a skip with `--strict`.
#[allow(clippy::too_many_arguments)]
fn check(
    project: &Project,
    repo: &Repo,
    options: &Options,
    history: &mut History,
    commit: &str,
    probe: Probe,
    reference: &Reference,
    known: &[(i64, Duration)],
) -> Result<Probe, Error> {
    // One history decided is checked too: it may be such a failure, recorded.
    let (Verdict::Bad, Some(run)) = (probe.verdict, probe.run) else {
        return Ok(probe);
    };
    let Some(evidence) = reference.differs(history, &options.stage, run, known) else {
        return Ok(probe);
    };
    let first = probe.duration;
    let mut again = decide(project, repo, options, history, commit, true)?;
    let still = match (again.verdict, again.run) {
        (Verdict::Bad, Some(rerun)) => reference.differs(history, &options.stage, rerun, known),
        _ => None,
    };
    let verdict = match again.verdict {
        Verdict::Good => "good",
        Verdict::Bad => "bad",
        Verdict::Skip => "skip",
    };
    let mut said = format!(
        "{evidence}; ran again with its needs forced (run {}): {verdict}",
        again.run.unwrap_or_default()
    );
    if let Some(still) = &still {
        said.push_str(&format!(", still suspicious ({still})"));
        if options.strict {
            again.verdict = Verdict::Skip;
            again.reason = Some("its failure stays suspicious (--strict)".into());
        }
    }
    again.duration = match (first, again.duration) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    again.suspicious = Some(said);
    Ok(again)
}

/// A log line with each run of digits as `#`: timings, counts and line numbers change from
/// commit to commit in failures that are the same.
fn without_numbers(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}
