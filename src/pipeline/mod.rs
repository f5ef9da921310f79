//! One run of the pipeline: plan, reuse what history holds, lease a workspace, record,
//! execute, report. This is what `gzl run` does.

mod generated;
mod jobs;
pub mod reuse;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};

use crate::api;
use crate::artifacts::{self, RunArtifacts};
use crate::cache::{self, Inputs};
use crate::config::{Clean, Config};
use crate::error::Error;
use crate::exec::{self, Cancel, Event, Job, Outcome, RunInfo};
use crate::git::Repo;
use crate::history::{History, HistoryError, NewRun, NewStage, Recorder};
use crate::home::Home;
use crate::outputs;
use crate::plan::Plan;
use crate::project::{Project, Source};
use crate::report::View;
use crate::stagefile::Gzlfile;
use crate::status::RunStatus;
use crate::stop;
use crate::store::Store;
use crate::workspace::{Pool, Workspace};

/// What `gzl run` was asked to do.
pub struct RunOptions {
    /// Stages to run with all they need; empty for all.
    pub targets: Vec<String>,
    pub jobs: usize,
    pub fail_fast: bool,
    pub grace: Duration,
    /// Stages to run even when a result could be reused.
    pub force: Force,
    /// Neither reuse results nor offer this run's for reuse.
    pub no_cache: bool,
    /// Set to true by the caller to stop the run as Ctrl-C would (`gzl watch --worktree`
    /// when files change).
    pub stop: Option<watch::Receiver<bool>>,
    /// Open a shell where a stage failed, right then (`gzl run --debug`, on a terminal).
    pub debug: bool,
    /// Keep the workspace of a run that did not pass as the run left it, for `gzl debug`.
    /// `gzl bisect` says no: its probes share one warm workspace and it keeps only the
    /// answer's.
    pub keep_failed: bool,
}

/// Which stages run although history holds a result they could reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Force {
    Nothing,
    Everything,
    /// These stages, and so everything that needs them.
    Stages(Vec<String>),
}

/// How a run ended.
pub struct RunResult {
    pub id: i64,
    pub status: RunStatus,
    /// How each planned stage ended, by name, in plan order.
    pub outcomes: Vec<(String, Outcome)>,
}

/// Events queued between the executor and the subscribers before stages must wait.
const EVENT_QUEUE: usize = 256;

/// Runs the project's pipeline (or the targets' part of it) on `source`: in a workspace
/// when the source was captured, reusing every result history already holds; in the
/// repository itself otherwise. `note` gets lines for people (a workspace taken over, …).
pub fn run(
    project: &Project,
    gzlfile: &Gzlfile,
    source: &Source,
    options: &RunOptions,
    view: View,
    note: &mut dyn FnMut(String),
) -> Result<RunResult, Error> {
    let plan = Plan::new(gzlfile, &options.targets)?;
    let forced = forced_stages(&plan, &options.force)?;
    let executor = runtime()?;
    // A file grown past `ulimit -f` must fail to write with EFBIG, which gzl reports, rather
    // than kill gzl with SIGXFSZ midway. A caught signal is reset when a stage execs, so
    // stages keep the default.
    executor.block_on(async {
        let _ = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(
            nix::libc::SIGXFSZ,
        ));
    });
    let config = Config::load(&project.root)?;
    let mut history = open_history()?;

    let identity = project.identity();
    let medians = history.median_durations(&identity)?;
    let priorities = plan.critical_path_weights(|stage| median_weight(&medians, stage));
    let store = Store::of(history.home());
    let (inputs, mut reused, reused_runs) = match (source, &project.repo) {
        (Source::Isolated(state), Some(repo)) if !options.no_cache => {
            let inputs = cache::inputs(&plan, repo, &state.tree)?;
            let mut reused = cache::reusable(&plan, &inputs, &forced, &history)?;
            let reused_runs = artifacts::keep_reusable(&plan, 0, &mut reused, &history, &store)?;
            (inputs, reused, reused_runs)
        }
        _ => (
            Vec::new(),
            vec![None; plan.len()],
            artifacts::ReusedRuns::default(),
        ),
    };
    let keys: Vec<String> = inputs.iter().map(Inputs::key).collect();
    // Where restores move what was in their way, removed after the run.
    let mut aside = None;
    let workspace = match (source, &project.repo) {
        (Source::Isolated(state), Some(repo)) if reused.iter().any(Option::is_none) => {
            let pool = Pool::of(history.home(), repo, &config.workspaces);
            let workspace = pool.lease(note)?;
            let clean = if plan
                .nodes()
                .iter()
                .any(|node| node.stage.attributes.clean == Some(Clean::All))
            {
                Clean::All
            } else {
                config.workspaces.clean
            };
            aside = reuse::prepare(
                &workspace,
                repo,
                &repo.checkout_commit(state)?,
                clean,
                &plan,
                &keys,
                &mut reused,
                &reused_runs,
                &store,
                note,
            )?;
            Some(workspace)
        }
        _ => None,
    };
    let root = workspace
        .as_ref()
        .map_or_else(|| project.root.clone(), |w| w.path.clone());
    let (commit, tree, dirty, branch) = match source {
        Source::Isolated(state) => (
            state.commit.clone(),
            Some(state.tree.clone()),
            state.dirty,
            state.branch.clone(),
        ),
        Source::InPlace { commit, dirty } => (
            commit.clone(),
            None,
            *dirty,
            project.repo.as_ref().and_then(Repo::branch),
        ),
    };
    let stages: Vec<NewStage> = plan
        .nodes()
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let inputs = inputs.get(index);
            NewStage {
                name: node.stage.name.clone(),
                needs: node
                    .needs
                    .iter()
                    .map(|&n| plan.nodes()[n].stage.name.clone())
                    .collect(),
                key: inputs.map(Inputs::key),
                inputs: inputs.and_then(|i| serde_json::to_string(i).ok()),
            }
        })
        .collect();
    let commands = jobs::commands(plan.nodes(), history.home(), &shown_file(project, gzlfile))?;
    // Everything that can fail comes before the run is recorded, so no run is left `running`.
    let dispatcher = runtime()?;
    // The job API records artifacts as stages register them, on a connection of its own.
    let api_history = History::open(history.home())?;
    let started = SystemTime::now();
    let clock = Instant::now();
    let lease = history.begin_run(
        &NewRun {
            repo_identity: identity,
            repo_path: project.root.display().to_string(),
            commit: commit.clone(),
            tree: tree.clone(),
            branch: branch.clone(),
            dirty,
            workspace: workspace.as_ref().map(|w| w.path.display().to_string()),
            gzlfile_id: gzlfile.content_id(),
            targets: options.targets.clone(),
            stages: stages.clone(),
        },
        started,
    )?;
    let run_id = lease.id;
    if let Some(workspace) = &workspace {
        workspace.started(run_id)?;
    }
    let run_artifacts = RunArtifacts::new(run_id, &plan, &reused, &reused_runs, &mut history)?;
    let server = api::Server::bind(&lease.dir, &root, store, run_artifacts, api_history)
        .map_err(artifacts::ArtifactError::from)?;
    tracing::debug!(run = run_id, stages = plan.len(), jobs = options.jobs, root = %root.display(), "run started");
    let home = history.home().clone();
    let api_credentials = server.credentials();
    // Only a run whose results can be reused keeps outputs, which only reuse restores.
    let keeps_outputs = !options.no_cache && matches!(source, Source::Isolated(_));
    let context = jobs::RunContext {
        root: &root,
        run: &lease,
        commit: commit.as_deref(),
        tree: tree.as_deref(),
        dirty,
        home: &home,
        api: &api_credentials,
        keeps_outputs,
    };
    let jobs: Vec<Job> = plan
        .nodes()
        .iter()
        .zip(commands)
        .zip(&reused)
        .map(|((node, command), reused)| jobs::job(&node.stage, command, *reused, &context))
        .collect();
    let jobs_places: Vec<(std::path::PathBuf, Vec<(String, String)>)> = jobs
        .iter()
        .map(|job| (job.cwd.clone(), jobs::recorded_env(job)))
        .collect();
    history.record_environments(run_id, &jobs_places)?;
    let info = Arc::new(RunInfo {
        id: run_id,
        dir: lease.dir.clone(),
        root: root.clone(),
        commit: commit.clone(),
        tree: tree.clone(),
        branch,
        dirty,
        stages: stages
            .into_iter()
            .map(|stage| (stage.name, stage.needs))
            .collect(),
        // Generated stages may run side by side whatever the plan looks like now.
        parallel: options.jobs > 1
            && (plan.has_parallelism()
                || plan
                    .nodes()
                    .iter()
                    .any(|node| node.stage.attributes.generates)),
        expected: plan
            .nodes()
            .iter()
            .map(|node| medians.get(&node.stage.name).copied())
            .collect(),
    });

    let (events, receiver) = mpsc::channel(EVENT_QUEUE);
    // With --debug, the shell opened on a failure can stop the run.
    let (debugger, stop) = if options.debug {
        let (stop_tx, stop_rx) = watch::channel(false);
        let debugger = Debugger {
            run: run_id,
            places: jobs_places,
            stop: stop_tx,
        };
        (Some(debugger), Some(stop_rx))
    } else {
        (None, options.stop.clone())
    };
    let subscribers = std::thread::spawn({
        let recorder = Recorder::new(history);
        move || dispatcher.block_on(dispatch(receiver, recorder, view, debugger))
    });
    let _ = events.blocking_send(Event::RunStarted(info));
    let mut generated = generated::Generated {
        gzlfile,
        context: &context,
        source: match (source, &project.repo) {
            (Source::Isolated(state), Some(repo)) if !options.no_cache => {
                Some((repo, state.tree.as_str()))
            }
            _ => None,
        },
        inputs,
        reused,
        force_all: options.force == Force::Everything,
        medians: &medians,
        history: None,
        api: server.stages(),
        workspace: workspace.as_ref(),
        aside: aside.clone(),
    };
    let keeper: Option<Arc<dyn exec::Keeper>> = keeps_outputs.then(|| {
        Arc::new(outputs::Keeper {
            stages: server.stages(),
            root: root.clone(),
        }) as Arc<dyn exec::Keeper>
    });
    let (plan, outcomes, interrupted) = execute(
        &executor,
        plan,
        jobs,
        priorities,
        options,
        &mut generated,
        keeper,
        stop,
        events.clone(),
        &server,
    );
    // The API lives exactly as long as the run: its socket goes now.
    drop(server);
    // Generated stages joined the plan with keys of their own.
    let final_keys: Vec<String> = generated.inputs.iter().map(Inputs::key).collect();
    drop(generated);
    let outcomes: Vec<Outcome> = plan
        .nodes()
        .iter()
        .zip(outcomes)
        .map(|(node, outcome)| stopped_by_request(&lease.dir, &node.stage.name, outcome))
        .collect();
    let status = if stop::run_marker(&lease.dir).exists() || outcomes.contains(&Outcome::Stopped) {
        RunStatus::Stopped
    } else if interrupted {
        RunStatus::Cancelled
    } else if outcomes.iter().all(|o| o.is_pass()) {
        RunStatus::Passed
    } else {
        RunStatus::Failed
    };
    let _ = events.blocking_send(Event::RunFinished {
        status,
        at: SystemTime::now(),
        duration: clock.elapsed(),
    });
    drop(events);
    let recorder = subscribers.join().map_err(|_| Error::Io {
        message: "gzl's event thread failed".into(),
        source: std::io::Error::other("the thread panicked"),
    })?;
    let unrecorded = recorder.unrecorded();
    History::end_lease(lease);
    if let Some(workspace) = workspace {
        remember_results(&workspace, &plan, &outcomes, &final_keys);
        if let Some(aside) = aside {
            let _ = std::fs::remove_dir_all(aside);
        }
        let slot = workspace.slot;
        workspace.release(status == RunStatus::Passed || !options.keep_failed)?;
        if let (Some(max_size), Some(repo)) = (config.workspaces.max_size, &project.repo) {
            // History went to the recorder; the home is where it was.
            let pool = Pool::of(&Home::locate()?, repo, &config.workspaces);
            for (removed, bytes) in pool.trim(max_size, slot)? {
                note(format!(
                    "removed workspace {removed} ({}): the pool took more than max_size {}",
                    indicatif::BinaryBytes(bytes),
                    indicatif::BinaryBytes(max_size)
                ));
            }
        }
    }
    // The summary has said how the stages ended and what history holds; gzl failed all the
    // same, and a run that passed must not look recorded when it is not.
    if !unrecorded.is_empty() {
        return Err(HistoryError::Unrecorded {
            run: run_id,
            what: unrecorded.to_string(),
        }
        .into());
    }
    let outcomes = plan
        .nodes()
        .iter()
        .map(|node| node.stage.name.clone())
        .zip(outcomes)
        .collect();
    Ok(RunResult {
        id: run_id,
        status,
        outcomes,
    })
}

/// Records in the workspace what its stages left there: the key of each that passed, none
/// for each that ran and did not pass. Cached and skipped stages changed nothing there.
fn remember_results(workspace: &Workspace, plan: &Plan, outcomes: &[Outcome], keys: &[String]) {
    let mut held = workspace.results();
    for (index, (node, outcome)) in plan.nodes().iter().zip(outcomes).enumerate() {
        let name = &node.stage.name;
        match (outcome, keys.get(index)) {
            (Outcome::Cached { .. } | Outcome::Skipped { .. }, _) => {}
            (Outcome::Passed, Some(key)) => {
                held.insert(name.clone(), key.clone());
            }
            _ => {
                held.remove(name);
            }
        }
    }
    if let Err(error) = workspace.set_results(held) {
        // The next run then trusts an older record: what ran here this time removed its
        // entry before it started.
        tracing::warn!(%error, "cannot record what the workspace holds");
    }
}

/// A stage's weight for scheduling: its median duration in milliseconds, 1 without one.
fn median_weight(
    medians: &std::collections::HashMap<String, Duration>,
    stage: &crate::stagefile::Stage,
) -> u64 {
    medians.get(&stage.name).map_or(1, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    })
}

/// The Gzlfile as error lines name it: relative to the repository root (`Gzlfile`,
/// `ci/Gzlfile`), or as diagnostics name a commit's (`HEAD~3:Gzlfile`).
fn shown_file(project: &Project, gzlfile: &Gzlfile) -> String {
    gzlfile
        .path
        .strip_prefix(&project.root)
        .unwrap_or(&gzlfile.path)
        .display()
        .to_string()
}

/// For each stage, whether `--force` makes it run: named, or needing one that is.
fn forced_stages(plan: &Plan, force: &Force) -> Result<Vec<bool>, Error> {
    let mut forced = vec![*force == Force::Everything; plan.len()];
    if let Force::Stages(names) = force {
        for name in names {
            let Some(index) = plan.nodes().iter().position(|n| n.stage.name == *name) else {
                return Err(Error::usage(
                    format!("--force {name}: no stage `{name}` in this run"),
                    Some("name a stage the run includes; `gzl check` lists the stages".into()),
                ));
            };
            forced[index] = true;
        }
    }
    for (index, node) in plan.nodes().iter().enumerate() {
        if node.needs.iter().any(|&need| forced[need]) {
            forced[index] = true;
        }
    }
    Ok(forced)
}

/// A stage that `gzl stop` ended is `stopped`, not failed or cancelled: its marker (or the
/// whole run's) is in the run's directory.
fn stopped_by_request(dir: &std::path::Path, stage: &str, outcome: Outcome) -> Outcome {
    // A stage that shuts down cleanly on SIGTERM passes; stopped it was all the same.
    let ended = matches!(
        outcome,
        Outcome::Passed | Outcome::Failed { .. } | Outcome::TimedOut { .. } | Outcome::Cancelled
    );
    let stage_stopped = stop::stage_marker(dir, stage).exists();
    let run_stopped = outcome == Outcome::Cancelled && stop::run_marker(dir).exists();
    if ended && (stage_stopped || run_stopped) {
        Outcome::Stopped
    } else {
        outcome
    }
}

/// Records a run of `state` that could not start (its Gzlfile is missing or has errors) as
/// failed, without stages, so history shows the commit failed. Returns its id.
pub fn record_unusable(
    project: &Project,
    state: &crate::git::SourceState,
    gzlfile_id: String,
    targets: &[String],
) -> Result<i64, Error> {
    let mut history = open_history()?;
    let now = SystemTime::now();
    let lease = history.begin_run(
        &NewRun {
            repo_identity: project.identity(),
            repo_path: project.root.display().to_string(),
            commit: state.commit.clone(),
            tree: Some(state.tree.clone()),
            branch: state.branch.clone(),
            dirty: state.dirty,
            workspace: None,
            gzlfile_id,
            targets: targets.to_vec(),
            stages: Vec::new(),
        },
        now,
    )?;
    let id = lease.id;
    history.apply(&[crate::history::Update::RunFinished {
        run: id,
        status: RunStatus::Failed,
        at: now,
    }])?;
    History::end_lease(lease);
    Ok(id)
}

/// A single-threaded tokio runtime with timers, I/O and signals.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            message: "cannot start gzl's runtime".into(),
            source,
        })
}

/// Opens gzl's history, settling runs whose gzl died first.
pub fn open_history() -> Result<History, Error> {
    let mut history = History::open(&Home::locate()?)?;
    settle_interrupted(&mut history)?;
    Ok(history)
}

/// Opens gzl's history to read it (`gzl ls`, `gzl logs`): without writing, so it works on a
/// full disk or a home it cannot write. Only when there is something to settle (runs whose gzl
/// died, or a database to migrate) does it write first, and a failure to do so is no error.
pub fn open_history_to_read() -> Result<History, Error> {
    let home = Home::locate()?;
    if let Some(history) = History::open_to_read(&home)? {
        settle_from_reader(&history);
        return Ok(history);
    }
    // No database yet, or one older than this gzl: made or migrated first.
    open_history()
}

/// What [`settle_interrupted`] does, for a history opened to read: on a connection of its
/// own, and only when there is a dead run to settle. A failure to write is no error: the
/// reader goes on with what history holds.
pub fn settle_from_reader(history: &History) {
    if !history.has_dead_runs().unwrap_or(false) {
        return;
    }
    let settled = History::open(history.home())
        .map_err(Error::from)
        .and_then(|mut writer| settle_interrupted(&mut writer));
    if let Err(error) = settled {
        tracing::debug!(%error, "cannot settle interrupted runs; reading all the same");
    }
}

/// Marks runs whose gzl died as interrupted and stops what their stages left running.
pub fn settle_interrupted(history: &mut History) -> Result<(), Error> {
    for run in history.reap_interrupted()? {
        tracing::debug!(run = run.id, "marked interrupted: its gzl is gone");
        exec::kill_abandoned(&run.token);
    }
    Ok(())
}

/// Runs the executor on a single-threaded runtime, turning SIGINT, SIGTERM and SIGHUP into a
/// cancellation (the second one kills at once), and serves the job API meanwhile. Returns
/// the outcomes and whether a signal cancelled the run.
#[allow(clippy::too_many_arguments)]
fn execute(
    runtime: &tokio::runtime::Runtime,
    plan: Plan,
    jobs: Vec<Job>,
    priorities: Vec<u64>,
    options: &RunOptions,
    expander: &mut dyn exec::Expander,
    keeper: Option<Arc<dyn exec::Keeper>>,
    stop: Option<watch::Receiver<bool>>,
    events: mpsc::Sender<Event>,
    server: &api::Server,
) -> (Plan, Vec<Outcome>, bool) {
    let exec_options = exec::Options {
        jobs: options.jobs,
        fail_fast: options.fail_fast,
        grace: options.grace,
    };
    runtime.block_on(async {
        let (cancel, _) = watch::channel(Cancel::None);
        let (interrupted_tx, interrupted_rx) = watch::channel(false);
        let signals = tokio::spawn(forward_signals(cancel.clone(), interrupted_tx, stop));
        // Events pass by the API on their way out, so it knows which stages are running.
        let (tee, mut teed) = mpsc::channel(EVENT_QUEUE);
        let stages = server.stages();
        let forward = async move {
            while let Some(event) = teed.recv().await {
                stages.observe(&event);
                if events.send(event).await.is_err() {
                    break;
                }
            }
        };
        let run = async {
            tokio::join!(
                exec::execute(
                    plan,
                    jobs,
                    priorities,
                    &exec_options,
                    expander,
                    keeper,
                    tee,
                    cancel
                ),
                forward
            )
            .0
        };
        let (plan, outcomes) = tokio::select! {
            done = run => done,
            never = server.serve() => match never {},
        };
        signals.abort();
        let interrupted = *interrupted_rx.borrow();
        (plan, outcomes, interrupted)
    })
}

/// Turns SIGINT, SIGTERM, SIGHUP (the terminal closed) and the caller's stop request into a
/// cancellation: graceful the first time, at once the next.
async fn forward_signals(
    cancel: watch::Sender<Cancel>,
    interrupted: watch::Sender<bool>,
    stop: Option<watch::Receiver<bool>>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) else {
        return;
    };
    let (mut stop, mut stopping) = match stop {
        Some(stop) => (stop, true),
        // Never fires: a receiver whose sender lives as long as this task.
        None => (watch::channel(false).1, false),
    };
    let mut level = Cancel::Graceful;
    loop {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {}
            changed = stop.wait_for(|stop| *stop), if stopping => {
                // One stop request is enough; a dropped sender is none.
                stopping = false;
                if changed.is_err() {
                    continue;
                }
            }
        }
        interrupted.send_replace(true);
        cancel.send_replace(level);
        level = Cancel::Now;
    }
}

/// `gzl run --debug`: a shell where a stage failed, then the choice to go on or stop.
struct Debugger {
    run: i64,
    /// Each stage's working directory and what gzl added to its environment.
    places: Vec<(std::path::PathBuf, Vec<(String, String)>)>,
    stop: watch::Sender<bool>,
}

impl Debugger {
    fn open(&self, stage: usize) {
        use std::io::BufRead as _;
        let (cwd, env) = &self.places[stage];
        let name = env
            .iter()
            .find(|(k, _)| k == "GZL_STAGE")
            .map_or("?", |(_, v)| v.as_str());
        let note = |text: &str| {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "{text}");
        };
        note(&format!(
            "gzl: `{name}` failed; a shell where it ran (run {}, {}); exit it to go on",
            self.run,
            cwd.display()
        ));
        let env = match crate::home::Home::locate() {
            Ok(home) => crate::secrets::unmask(&home, env),
            Err(_) => env.clone(),
        };
        if let Err(error) = crate::debug::open_shell(&crate::debug::default_shell(), cwd, &env) {
            note(&format!("gzl: cannot open a shell: {error}"));
        }
        {
            use std::io::Write as _;
            let _ = write!(std::io::stderr(), "gzl: go on with the run? [Y/n] ");
        }
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim().eq_ignore_ascii_case("n") {
            note("gzl: stopping the run");
            self.stop.send_replace(true);
        }
    }
}

/// How often progress moves along between events.
const PROGRESS_TICK: Duration = Duration::from_millis(200);

/// How long a history update may wait to be written with others in one transaction.
const HISTORY_BATCH: Duration = Duration::from_millis(50);

/// Hands every event to the history recorder and the view. The view is flushed whenever the
/// queue runs dry, so output shows promptly; history is written at most `HISTORY_BATCH` after
/// an update, in one transaction for all updates since the last write.
async fn dispatch(
    mut receiver: mpsc::Receiver<Event>,
    mut recorder: Recorder,
    mut view: View,
    mut debugger: Option<Debugger>,
) -> Recorder {
    let mut write_at: Option<tokio::time::Instant> = None;
    let mut ticker = tokio::time::interval(PROGRESS_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The run's directory and stage names, where `gzl stop` leaves its markers.
    let mut stops: Option<(std::path::PathBuf, Vec<String>)> = None;
    loop {
        let due = async {
            match write_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            event = receiver.recv() => {
                let Some(mut event) = event else { break };
                match &mut event {
                    Event::RunStarted(info) => {
                        stops = Some((info.dir.clone(), info.stages.iter().map(|(n, _)| n.clone()).collect()));
                    }
                    Event::StagesJoined(joined) => {
                        if let Some((_, names)) = &mut stops {
                            names.extend(joined.stages.iter().map(|s| s.name.clone()));
                        }
                        if let Some(debugger) = &mut debugger {
                            debugger.places.extend(joined.stages.iter().map(|s| (s.cwd.clone(), s.env.clone())));
                        }
                    }
                    Event::StageFinished { stage, outcome, .. } => {
                        if let Some((dir, names)) = &stops {
                            *outcome = stopped_by_request(dir, &names[*stage], *outcome);
                        }
                    }
                    _ => {}
                }
                recorder.event(&event);
                if let Event::RunFinished { .. } = event {
                    // The summary says what history holds, so history is written first.
                    recorder.flush_final();
                    write_at = None;
                    for fault in recorder.take_faults() {
                        view.warn(&fault);
                    }
                    view.unrecorded(recorder.unrecorded());
                }
                view.event(&event);
                if let (Some(debugger), Event::StageFinished { stage, outcome, .. }) = (&debugger, &event)
                    && matches!(outcome, Outcome::Failed { .. } | Outcome::TimedOut { .. })
                {
                    // The run waits meanwhile: events queue up, then stages block on output.
                    view.flush();
                    recorder.flush();
                    debugger.open(*stage);
                }
                let now = tokio::time::Instant::now();
                match write_at {
                    // Events keep coming (a stage floods output): the timer would wait for a
                    // lull, so write here.
                    Some(at) if at <= now => {
                        recorder.flush();
                        write_at = None;
                    }
                    None if recorder.has_pending() => write_at = Some(now + HISTORY_BATCH),
                    _ => {}
                }
                // Told at once: a failure to record must not wait for the end of the run.
                for fault in recorder.take_faults() {
                    view.warn(&fault);
                }
                if receiver.is_empty() {
                    view.flush();
                }
            }
            () = due => {
                recorder.flush();
                write_at = None;
                for fault in recorder.take_faults() {
                    view.warn(&fault);
                }
            }
            _ = ticker.tick() => view.tick(),
        }
    }
    view.flush();
    recorder
}
