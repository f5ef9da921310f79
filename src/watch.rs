//! `gzl watch`: a run for every new commit on the watched branches, in workspaces, while the
//! user keeps working.
//!
//! notify watches the repository's git directory (HEAD, packed-refs, reflogs) and `refs/`,
//! which every commit, amend, rebase, merge, pull and branch switch writes. On each batch of
//! changes gzl reads the branch tips again and queues what moved. Runs go one at a time; by
//! default only the newest pending commit of a branch runs (`--every-commit` runs each one),
//! a branch deleted drops its pending commits, and a commit already run is all cached.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use notify::Watcher as _;

use crate::error::Error;
use crate::git::{self, Repo};
use crate::pipeline::{self, Force, RunOptions};
use crate::project::{Project, Source, SourceRequest};
use crate::report::View;
use crate::status::RunStatus;

/// What `gzl watch` was asked.
pub struct Options {
    pub stages: Vec<String>,
    /// Glob patterns of branch names; empty for the checked-out branch.
    pub branches: Vec<String>,
    pub all_branches: bool,
    pub every_commit: bool,
    pub jobs: usize,
    pub grace: Duration,
}

/// What the watch reports as it goes.
pub enum Report<'a> {
    Started {
        commit: &'a str,
        branch: &'a str,
    },
    Finished {
        commit: &'a str,
        branch: &'a str,
        run: Option<i64>,
        status: RunStatus,
        duration: Duration,
        /// Why a commit could not run (its Gzlfile), when so.
        error: Option<String>,
    },
    /// A line for people: a workspace taken over, …
    Note(String),
}

/// How long changes to the repository are gathered before its refs are read again.
const SETTLE: Duration = Duration::from_millis(50);

/// Watches until interrupted; returns the status that ends it (`Cancelled` on Ctrl-C).
pub fn watch(
    project: &Project,
    repo: &Repo,
    options: &Options,
    report: &mut dyn FnMut(Report<'_>),
) -> Result<RunStatus, Error> {
    let runtime = pipeline::runtime()?;
    let mut termination = {
        let _inside = runtime.enter();
        Termination::listen()
    };
    let (sender, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = watcher(
        |_| true,
        move || {
            let _ = sender.send(());
        },
    )?;
    let common = repo.common_dir();
    let mut paths = vec![
        (common.clone(), notify::RecursiveMode::NonRecursive),
        (common.join("refs"), notify::RecursiveMode::Recursive),
    ];
    if repo.git_dir() != common.as_path() {
        // A linked worktree keeps its own HEAD.
        paths.push((
            repo.git_dir().to_path_buf(),
            notify::RecursiveMode::NonRecursive,
        ));
    }
    for (path, mode) in &paths {
        watcher
            .watch(path, *mode)
            .map_err(|error| watch_error(&error))?;
    }

    let mut queue = Queue::default();
    queue.refresh(repo, options)?;
    loop {
        while let Some((branch, commit)) = queue.pending.pop_front() {
            let status = run_commit(project, options, &branch, &commit, report)?;
            if status == RunStatus::Cancelled {
                return Ok(RunStatus::Cancelled);
            }
            if status == RunStatus::Stopped {
                let _inside = runtime.enter();
                termination.forget();
            }
            // Commits that came during the run are queued now, coalesced.
            while changes.try_recv().is_ok() {}
            queue.refresh(repo, options)?;
        }
        let interrupted = runtime.block_on(async {
            tokio::select! {
                _ = changes.recv() => {
                    let settle = tokio::time::sleep(SETTLE);
                    tokio::pin!(settle);
                    loop {
                        tokio::select! {
                            () = &mut settle => break,
                            _ = changes.recv() => {}
                        }
                    }
                    false
                }
                () = termination.recv() => true,
            }
        });
        if interrupted {
            return Ok(RunStatus::Cancelled);
        }
        queue.refresh(repo, options)?;
    }
}

/// SIGINT, SIGTERM and SIGHUP, listened to for the whole watch, as a run treats them. A
/// signal that comes while gzl is not waiting (reading the repository, or a run that has
/// already ended taking it as a cancel too late to stop anything) is kept until the next wait
/// sees it: listening afresh at each wait lost such a signal, and the watch went on.
struct Termination(Option<[tokio::signal::unix::Signal; 3]>);

impl Termination {
    /// Starts listening; must be called inside the runtime that waits.
    fn listen() -> Termination {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(int), Ok(term), Ok(hup)) => Termination(Some([int, term, hup])),
            _ => Termination(None),
        }
    }

    /// Forgets the signals received so far: the SIGTERM with which `gzl stop RUN` stops one
    /// run of the watch is not the watch's end.
    fn forget(&mut self) {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        for signal in self.0.iter_mut().flatten() {
            while let std::task::Poll::Ready(Some(())) = signal.poll_recv(&mut context) {}
        }
    }

    /// Resolves on the first of the signals since listening began (or last forgotten).
    async fn recv(&mut self) {
        match &mut self.0 {
            Some([int, term, hup]) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
            }
            None => std::future::pending().await,
        }
    }
}

/// A file watcher that calls `changed` for each event `relevant` keeps. Reads are never
/// changes: notify reports every open of HEAD and refs, gzl's own among them.
fn watcher(
    relevant: impl Fn(&notify::Event) -> bool + Send + 'static,
    changed: impl Fn() + Send + 'static,
) -> Result<notify::RecommendedWatcher, Error> {
    notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
            && relevant(&event)
        {
            changed();
        }
    })
    .map_err(|error| watch_error(&error))
}

fn watch_error(error: &notify::Error) -> Error {
    Error::Io {
        message: "cannot watch the repository for commits".into(),
        source: std::io::Error::other(error.to_string()),
    }
}

/// The commits waiting to run, and the tip each watched branch had when last read.
#[derive(Default)]
struct Queue {
    seen: HashMap<String, String>,
    pending: VecDeque<(String, String)>,
}

impl Queue {
    /// Reads the watched branches' tips and queues what moved.
    fn refresh(&mut self, repo: &Repo, options: &Options) -> Result<(), Error> {
        let tips = watched_tips(repo, options)?;
        // A branch gone (deleted, or no longer checked out) takes its pending commits along.
        self.seen.retain(|branch, _| tips.contains_key(branch));
        self.pending.retain(|(branch, _)| tips.contains_key(branch));
        let mut branches: Vec<&String> = tips.keys().collect();
        branches.sort();
        for branch in branches {
            let tip = &tips[branch];
            let previous = self.seen.insert(branch.clone(), tip.clone());
            if previous.as_ref() == Some(tip) {
                continue;
            }
            let commits = match previous {
                Some(previous) if options.every_commit => {
                    // The new commits, oldest first; a branch moved back: its tip.
                    let range = repo.commits_between(tip, &previous, false)?;
                    if range.is_empty() {
                        vec![tip.clone()]
                    } else {
                        range.into_iter().rev().map(|(c, _)| c).collect()
                    }
                }
                _ => {
                    // Only the newest pending commit of a branch runs.
                    self.pending.retain(|(b, _)| b != branch);
                    vec![tip.clone()]
                }
            };
            for commit in commits {
                self.pending.push_back((branch.clone(), commit));
            }
        }
        Ok(())
    }
}

/// The tips of the watched branches, by name: the checked-out branch (or `HEAD` when
/// detached) by default, else the branches matching the patterns, or all.
fn watched_tips(repo: &Repo, options: &Options) -> Result<HashMap<String, String>, Error> {
    if options.branches.is_empty() && !options.all_branches {
        let mut tips = HashMap::new();
        if let Some(head) = repo.head_commit() {
            tips.insert(repo.branch().unwrap_or_else(|| "HEAD".into()), head);
        }
        return Ok(tips);
    }
    let refs = git::output(git::git(repo.root()).args([
        "for-each-ref",
        "--format=%(refname:short) %(objectname)",
        "refs/heads",
    ]))?;
    let patterns: Vec<gix::glob::Pattern> = options
        .branches
        .iter()
        .filter_map(|p| gix::glob::Pattern::from_bytes(p.as_bytes()))
        .collect();
    Ok(refs
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(name, _)| {
            options.all_branches
                || patterns.iter().any(|p| {
                    p.matches(
                        gix::bstr::BStr::new(name.as_bytes()),
                        gix::glob::wildmatch::Mode::NO_MATCH_SLASH_LITERAL,
                    )
                })
        })
        .map(|(name, id)| (name.to_string(), id.to_string()))
        .collect())
}

/// Runs `commit` as `gzl run --at COMMIT` would, quietly, reporting its start and end. A
/// commit whose Gzlfile cannot be used is reported, and watching goes on.
fn run_commit(
    project: &Project,
    options: &Options,
    branch: &str,
    commit: &str,
    report: &mut dyn FnMut(Report<'_>),
) -> Result<RunStatus, Error> {
    report(Report::Started { commit, branch });
    let started = Instant::now();
    let finished = |report: &mut dyn FnMut(Report<'_>), run, status, error| {
        report(Report::Finished {
            commit,
            branch,
            run,
            status,
            duration: started.elapsed(),
            error,
        });
    };
    let mut source = project.source(SourceRequest::At(commit))?;
    if let Source::Isolated(state) = &mut source
        && branch != "HEAD"
    {
        state.branch = Some(branch.to_string());
    }
    let Source::Isolated(state) = &source else {
        return Ok(RunStatus::Failed);
    };
    let gzlfile = match project.load_at(state, commit) {
        Ok(gzlfile) => gzlfile,
        Err(error) => {
            let gzlfile_id = match &error {
                crate::stagefile::StagefileError::Invalid { source_text, .. } => {
                    crate::home::blob_id(source_text.as_bytes())
                }
                _ => String::new(),
            };
            let run = pipeline::record_unusable(project, state, gzlfile_id, &options.stages)?;
            let message = match &error {
                crate::stagefile::StagefileError::Invalid { diagnostics, .. } => {
                    let first = diagnostics.first().map(|d| d.message.clone());
                    format!(
                        "its Gzlfile has {} error(s){}",
                        diagnostics.len(),
                        first.map(|m| format!(", first: {m}")).unwrap_or_default()
                    )
                }
                crate::stagefile::StagefileError::NotFound { .. } => "it has no Gzlfile".into(),
                other => other.to_string(),
            };
            finished(report, Some(run), RunStatus::Failed, Some(message));
            return Ok(RunStatus::Failed);
        }
    };
    match execute(project, options, &gzlfile, &source, None, report)? {
        Ok((run, status)) => {
            finished(report, Some(run), status, None);
            Ok(status)
        }
        // A stage the watch names that this commit lacks: the commit fails, watching goes on.
        Err(error) => {
            let run =
                pipeline::record_unusable(project, state, gzlfile.content_id(), &options.stages)?;
            finished(
                report,
                Some(run),
                RunStatus::Failed,
                Some(error.to_string()),
            );
            Ok(RunStatus::Failed)
        }
    }
}

/// The tree the current run executes, and how to stop it: the change thread reads both.
type Current = (Option<String>, Option<tokio::sync::watch::Sender<bool>>);

/// How long saved changes to the working tree are gathered before gzl looks at them: editors
/// write a file in several steps.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// `gzl watch --worktree`: a run of the working tree's snapshot now, and again after every
/// saved change to what git tracks or would track. A change while a run goes on stops that
/// run (its process groups terminated, as Ctrl-C does) and starts one of the new state.
/// Changes git ignores (build output) change no snapshot, so they start nothing.
pub fn watch_worktree(
    project: &Project,
    repo: &Repo,
    options: &Options,
    report: &mut dyn FnMut(Report<'_>),
) -> Result<RunStatus, Error> {
    use std::sync::{Arc, Mutex};

    let runtime = pipeline::runtime()?;
    let mut termination = {
        let _inside = runtime.enter();
        Termination::listen()
    };
    let current: Arc<Mutex<Current>> = Arc::new(Mutex::new((None, None)));
    let (changed_tx, mut changed) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (events_tx, events) = std::sync::mpsc::channel::<()>();
    let git_dir = repo.git_dir().to_path_buf();
    let dot_git = repo.root().join(".git");
    let mut watcher = watcher(
        // git's own files are not the working tree.
        move |event| {
            !event
                .paths
                .iter()
                .all(|p| p.starts_with(&git_dir) || p.starts_with(&dot_git))
        },
        move || {
            let _ = events_tx.send(());
        },
    )?;
    watcher
        .watch(repo.root(), notify::RecursiveMode::Recursive)
        .map_err(|error| watch_error(&error))?;

    // The change thread makes a snapshot after each batch of changes, with a repository of
    // its own, and stops the run when the tree moved on.
    let root = repo.root().to_path_buf();
    let shared = Arc::clone(&current);
    std::thread::spawn(move || {
        let Ok(Some(repo)) = Repo::discover(&root) else {
            return;
        };
        while events.recv().is_ok() {
            while events.recv_timeout(DEBOUNCE).is_ok() {}
            let Ok(state) = repo.working_tree_state() else {
                continue;
            };
            let mut guard = shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if guard.0.as_deref() == Some(state.tree.as_str()) {
                continue;
            }
            if let Some(stop) = &guard.1 {
                let _ = stop.send(true);
            }
            guard.0 = Some(state.tree);
            drop(guard);
            if changed_tx.send(()).is_err() {
                return;
            }
        }
    });

    loop {
        let state = repo.working_tree_state()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        {
            let mut guard = current
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *guard = (Some(state.tree.clone()), Some(stop_tx));
        }
        let label = if state.dirty {
            "working tree"
        } else {
            "HEAD, no changes"
        };
        let status = run_state(project, options, state, label, stop_rx, report)?;
        if status == RunStatus::Stopped {
            let _inside = runtime.enter();
            termination.forget();
        }
        current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1 = None;
        // Stopped for a change: the next run starts at once. Stopped by Ctrl-C: the end.
        let stopped_for_change = changed.try_recv().is_ok();
        while changed.try_recv().is_ok() {}
        if status == RunStatus::Cancelled && !stopped_for_change {
            return Ok(RunStatus::Cancelled);
        }
        if stopped_for_change {
            continue;
        }
        let interrupted = runtime.block_on(async {
            tokio::select! {
                _ = changed.recv() => false,
                () = termination.recv() => true,
            }
        });
        if interrupted {
            return Ok(RunStatus::Cancelled);
        }
    }
}

/// Runs `gzlfile` on `source` quietly, as the watch does: the run and how it ended, or the
/// plan error when the source lacks a stage the watch names.
fn execute(
    project: &Project,
    options: &Options,
    gzlfile: &crate::stagefile::Gzlfile,
    source: &Source,
    stop: Option<tokio::sync::watch::Receiver<bool>>,
    report: &mut dyn FnMut(Report<'_>),
) -> Result<Result<(i64, RunStatus), crate::plan::PlanError>, Error> {
    let run_options = RunOptions {
        targets: options.stages.clone(),
        jobs: options.jobs,
        fail_fast: false,
        grace: options.grace,
        force: Force::Nothing,
        no_cache: false,
        stop,
        debug: false,
        keep_failed: true,
    };
    match pipeline::run(
        project,
        gzlfile,
        source,
        &run_options,
        View::Silent,
        &mut |line| report(Report::Note(line)),
    ) {
        Ok(result) => Ok(Ok((result.id, result.status))),
        Err(Error::Plan(error)) => Ok(Err(error)),
        Err(error) => Err(error),
    }
}

/// Runs a snapshot of the working tree, reporting its start and end.
fn run_state(
    project: &Project,
    options: &Options,
    state: crate::git::SourceState,
    label: &str,
    stop: tokio::sync::watch::Receiver<bool>,
    report: &mut dyn FnMut(Report<'_>),
) -> Result<RunStatus, Error> {
    let tree = state.tree.clone();
    report(Report::Started {
        commit: &tree,
        branch: label,
    });
    let started = Instant::now();
    let gzlfile = match project.load() {
        Ok(gzlfile) => gzlfile,
        Err(error) => {
            report(Report::Finished {
                commit: &tree,
                branch: label,
                run: None,
                status: RunStatus::Failed,
                duration: started.elapsed(),
                error: Some(error.to_string()),
            });
            return Ok(RunStatus::Failed);
        }
    };
    let result = execute(
        project,
        options,
        &gzlfile,
        &Source::Isolated(state),
        Some(stop),
        report,
    )?;
    let (run, status, error) = match result {
        Ok((run, status)) => (Some(run), status, None),
        Err(error) => (None, RunStatus::Failed, Some(error.to_string())),
    };
    report(Report::Finished {
        commit: &tree,
        branch: label,
        run,
        status,
        duration: started.elapsed(),
        error,
    });
    Ok(status)
}
