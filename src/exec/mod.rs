//! The executor: runs a plan's stages in parallel, as the graph allows.
//!
//! One scheduler loop owns the state of every stage. It starts ready stages while slots are
//! free, taking the one with the heaviest remaining path first (weights from recorded median
//! durations), and each started stage gets a task running a [`Supervisor`](supervisor) that
//! owns the stage's process group: it streams output, enforces `@timeout` and
//! `@idle-timeout`, and on a stop sends SIGTERM to the whole group, waits the grace period,
//! then sends SIGKILL. When a task ends, the loop records the outcome: a pass makes
//! dependents ready, anything else skips every stage that needs it, and with `fail_fast`
//! cancels the rest. When a `@generates` stage passes, an [`Expander`] joins the stages it
//! printed to the plan; what needs the generator waits for them too.
//!
//! The executor never prints. It sends [`Event`]s down a bounded channel; when subscribers
//! fall behind, the channel fills, supervisors stop reading, and stages block on their pipes,
//! so memory does not grow with output.

mod event;
mod generator;
mod mask;
mod reaper;
mod relabel;
mod supervisor;

use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use event::{Event, Joined, JoinedStage, Outcome, RunInfo};
pub use mask::Masker;
pub use reaper::{kill_abandoned, run_spared, stage_processes};
pub use relabel::ScriptOrigin;
pub use supervisor::Job;

/// The variable that carries a run's token into its stages' environments: how gzl tells its
/// stages' processes from others', even from another gzl (`gzl stop`, the clean-up after a
/// dead gzl).
pub const RUN_TOKEN_VARIABLE: &str = "GZL_TOKEN";

use crate::plan::Plan;
use reaper::Reaper;
use supervisor::Supervisor;

/// A request to stop the run, sent by signal handlers or by `fail_fast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancel {
    None,
    /// Stop starting stages; stop running ones with SIGTERM, then SIGKILL after the grace period.
    Graceful,
    /// SIGKILL running stages now.
    Now,
}

/// How the executor runs a plan.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many stages may run at once (at least 1).
    pub jobs: usize,
    /// Cancel everything on the first stage that does not pass.
    pub fail_fast: bool,
    /// Between SIGTERM and SIGKILL when stopping a stage.
    pub grace: Duration,
}

/// Joins the stages a `@generates` stage printed to the run.
pub trait Expander {
    /// Adds to `plan` the stages that `generator` (which passed) generated, and returns what
    /// the executor needs of them; or, when they cannot join, why, for the stage's output.
    fn expand(&mut self, plan: &mut Plan, generator: usize) -> Result<Expansion, String>;
}

/// Keeps what a stage that passed declared it leaves for the stages after it (`@outputs`).
pub trait Keeper: Send + Sync {
    /// Keeps the outputs of stage `stage`, which passed: lines for its log, or why it fails.
    /// Called off the scheduler's thread: it may take a while.
    fn keep(&self, stage: usize, job: &Job) -> Result<Vec<String>, String>;
}

/// The stages an [`Expander`] joined to the plan, in plan order from `joined.first`.
pub struct Expansion {
    pub jobs: Vec<Job>,
    pub priorities: Vec<u64>,
    pub joined: Arc<Joined>,
    /// Lines for the generator's log: what reuse did for the workspace.
    pub notes: Vec<String>,
}

/// Runs `jobs` (one per plan node, same order) and returns the plan, which `@generates`
/// stages may have extended through `expander`, and each of its stages' outcome.
///
/// A job with `reused` set is reported `cached` at once and never started; the stages it
/// needs must be reused too. `priorities` gives each stage's remaining critical-path
/// weight. `cancel` is watched for stop requests; the executor sends on it itself for
/// `fail_fast`.
#[allow(clippy::too_many_arguments)]
pub async fn execute(
    plan: Plan,
    jobs: Vec<Job>,
    priorities: Vec<u64>,
    options: &Options,
    expander: &mut dyn Expander,
    keeper: Option<Arc<dyn Keeper>>,
    events: mpsc::Sender<Event>,
    cancel: watch::Sender<Cancel>,
) -> (Plan, Vec<Outcome>) {
    let reaper = Arc::new(Reaper::new());
    let mut scheduler = Scheduler {
        waiting_on: plan.nodes().iter().map(|n| n.needs.len()).collect(),
        outcomes: vec![None; plan.len()],
        started_at: vec![None; plan.len()],
        queued: vec![false; plan.len()],
        plan,
        jobs: jobs.into_iter().map(Arc::new).collect(),
        priorities,
        options,
        expander,
        keeper,
        ready: BinaryHeap::new(),
        events,
        cancel,
        reaper: Arc::clone(&reaper),
    };
    tokio::select! {
        () = scheduler.run() => {}
        () = reaper.reap_orphans() => {}
    }
    // Whatever the stages' own ends did not reach (unclaimed orphans) ends with the run.
    reaper
        .end_run(options.grace, scheduler.cancel.subscribe())
        .await;
    let outcomes = scheduler
        .outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Cancelled))
        .collect();
    (scheduler.plan, outcomes)
}

/// Keeps a passed stage's outputs before anything that needs it starts, on a thread of its
/// own; what it says goes to the stage's log. A stage whose outputs cannot be kept fails:
/// reused later, it would provide nothing.
async fn keep(
    keeper: Arc<dyn Keeper>,
    stage: usize,
    job: Arc<Job>,
    events: &mpsc::Sender<Event>,
) -> Outcome {
    let kept = tokio::task::spawn_blocking(move || keeper.keep(stage, &job))
        .await
        .unwrap_or_else(|_| Err("gzl failed keeping the stage's outputs (a bug in gzl)".into()));
    let (lines, outcome) = match kept {
        Ok(lines) => (lines, Outcome::Passed),
        Err(message) => (
            vec![message],
            Outcome::Failed {
                exit_code: Some(0),
                signal: None,
            },
        ),
    };
    for line in lines {
        let _ = events
            .send(Event::Output {
                stage,
                bytes: format!("gzl: {line}\n").into_bytes(),
            })
            .await;
    }
    outcome
}

struct Scheduler<'a> {
    plan: Plan,
    jobs: Vec<Arc<Job>>,
    priorities: Vec<u64>,
    options: &'a Options,
    expander: &'a mut dyn Expander,
    keeper: Option<Arc<dyn Keeper>>,
    /// For each stage, how many of its needs have not passed yet.
    waiting_on: Vec<usize>,
    outcomes: Vec<Option<Outcome>>,
    started_at: Vec<Option<tokio::time::Instant>>,
    /// Whether the stage went into `ready` (it does once).
    queued: Vec<bool>,
    /// Ready stages: heaviest remaining path first, then plan order.
    ready: BinaryHeap<(u64, std::cmp::Reverse<usize>)>,
    events: mpsc::Sender<Event>,
    cancel: watch::Sender<Cancel>,
    reaper: Arc<Reaper>,
}

impl Scheduler<'_> {
    async fn run(&mut self) {
        let now = SystemTime::now();
        for index in 0..self.plan.len() {
            if let Some(from) = self.jobs[index].reused {
                self.record(index, Outcome::Cached { from }, now, None)
                    .await;
                for &dependent in &self.plan.nodes()[index].dependents {
                    self.waiting_on[dependent] -= 1;
                }
            }
        }
        for index in 0..self.plan.len() {
            if self.waiting_on[index] == 0 && self.outcomes[index].is_none() {
                self.queue(index);
            }
        }
        let mut running: JoinSet<(usize, Outcome)> = JoinSet::new();
        let mut cancel_rx = self.cancel.subscribe();
        loop {
            while !self.cancelled() && running.len() < self.options.jobs.max(1) {
                let Some((_, std::cmp::Reverse(index))) = self.ready.pop() else {
                    break;
                };
                self.start(index, &mut running).await;
            }
            if running.is_empty() && (self.ready.is_empty() || self.cancelled()) {
                break;
            }
            tokio::select! {
                Some(joined) = running.join_next() => {
                    let (index, outcome) = joined.unwrap_or_else(|error| {
                        // A supervisor task cannot panic short of a bug; the stage counts as failed.
                        tracing::error!(%error, "stage supervisor failed");
                        (usize::MAX, Outcome::Failed { exit_code: None, signal: None })
                    });
                    if index != usize::MAX {
                        self.finish(index, outcome).await;
                    }
                }
                _ = cancel_rx.changed() => {}
            }
        }
        let now = SystemTime::now();
        for index in 0..self.plan.len() {
            if self.outcomes[index].is_none() {
                self.record(index, Outcome::Cancelled, now, None).await;
            }
        }
    }

    fn cancelled(&self) -> bool {
        *self.cancel.borrow() != Cancel::None
    }

    async fn start(&mut self, index: usize, running: &mut JoinSet<(usize, Outcome)>) {
        self.started_at[index] = Some(tokio::time::Instant::now());
        if self.jobs[index].command.is_none() {
            // A group passes as soon as it is ready: everything it needs has passed.
            let _ = self
                .events
                .send(Event::StageStarted {
                    stage: index,
                    at: SystemTime::now(),
                    pid: None,
                })
                .await;
            self.finish(index, Outcome::Passed).await;
            return;
        }
        let job = Arc::clone(&self.jobs[index]);
        let events = self.events.clone();
        let cancel = self.cancel.subscribe();
        let grace = self.options.grace;
        let reaper = Arc::clone(&self.reaper);
        let keeper = self.keeper.clone().filter(|_| !job.outputs.is_empty());
        running.spawn(async move {
            let secrets: Vec<String> = job.secrets.iter().map(|(_, v)| v.clone()).collect();
            let supervisor = Supervisor {
                job: &job,
                stage: index,
                events: &events,
                cancel,
                grace,
                masker: std::sync::Mutex::new(Masker::new(&secrets)),
                relabeler: std::sync::Mutex::new(relabel::Relabeler::new(job.origin.clone())),
                reaper,
            };
            let outcome = supervisor.run().await;
            match keeper {
                Some(keeper) if outcome == Outcome::Passed => {
                    (index, keep(keeper, index, job, &events).await)
                }
                _ => (index, outcome),
            }
        });
    }

    fn queue(&mut self, index: usize) {
        if !self.queued[index] {
            self.queued[index] = true;
            self.ready
                .push((self.priorities[index], std::cmp::Reverse(index)));
        }
    }

    async fn finish(&mut self, index: usize, mut outcome: Outcome) {
        let duration = self.started_at[index].map(|at| at.elapsed());
        tracing::debug!(stage = %self.jobs[index].name, ?outcome, ?duration, "stage finished");
        let mut expansion = None;
        if outcome == Outcome::Passed && self.jobs[index].generates.is_some() {
            match self.expander.expand(&mut self.plan, index) {
                Ok(joined) => {
                    let names: Vec<&str> = joined
                        .joined
                        .stages
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect();
                    let mut line = match names.len() {
                        0 => "gzl: generated no stages\n".to_string(),
                        n => format!(
                            "gzl: generated {n} stage{}: {}\n",
                            if n == 1 { "" } else { "s" },
                            names.join(", ")
                        ),
                    };
                    for note in &joined.notes {
                        line.push_str(&format!("gzl: {note}\n"));
                    }
                    let _ = self
                        .events
                        .send(Event::Output {
                            stage: index,
                            bytes: line.into_bytes(),
                        })
                        .await;
                    expansion = Some(joined);
                }
                Err(message) => {
                    // What it generated cannot run: the stage fails, saying why (its script
                    // did exit 0).
                    let _ = self
                        .events
                        .send(Event::Output {
                            stage: index,
                            bytes: format!("gzl: {message}\n").into_bytes(),
                        })
                        .await;
                    outcome = Outcome::Failed {
                        exit_code: Some(0),
                        signal: None,
                    };
                }
            }
        }
        self.record(index, outcome, SystemTime::now(), duration)
            .await;
        if let Some(expansion) = expansion {
            self.join(expansion).await;
            return;
        }
        if outcome.is_pass() {
            for dependent in self.plan.nodes()[index].dependents.clone() {
                self.waiting_on[dependent] -= 1;
                if self.waiting_on[dependent] == 0 {
                    self.queue(dependent);
                }
            }
            return;
        }
        if outcome == Outcome::Cancelled {
            // The run is being cancelled: what needs this stage ends up cancelled too.
            return;
        }
        if matches!(outcome, Outcome::Failed { .. } | Outcome::TimedOut { .. })
            && self.options.fail_fast
        {
            self.cancel.send_if_modified(|cancel| {
                let idle = *cancel == Cancel::None;
                if idle {
                    *cancel = Cancel::Graceful;
                }
                idle
            });
        }
        // Everything downstream of a stage that did not pass is skipped, naming the cause.
        let mut stack: Vec<usize> = self.plan.nodes()[index].dependents.clone();
        let now = SystemTime::now();
        while let Some(dependent) = stack.pop() {
            if self.outcomes[dependent].is_some() {
                continue;
            }
            self.record(dependent, Outcome::Skipped { because: index }, now, None)
                .await;
            stack.extend(self.plan.nodes()[dependent].dependents.iter().copied());
        }
    }

    /// Takes the stages a generator joined to the plan: reused ones end at once, and what
    /// waits is counted again, since what needs the generator now needs them too.
    async fn join(&mut self, expansion: Expansion) {
        let first = expansion.joined.first;
        let _ = self
            .events
            .send(Event::StagesJoined(Arc::clone(&expansion.joined)))
            .await;
        self.jobs.extend(expansion.jobs.into_iter().map(Arc::new));
        self.priorities.extend(expansion.priorities);
        let added = self.plan.len() - first;
        self.waiting_on.extend(std::iter::repeat_n(0, added));
        self.outcomes.extend(std::iter::repeat_n(None, added));
        self.started_at.extend(std::iter::repeat_n(None, added));
        self.queued.extend(std::iter::repeat_n(false, added));
        let now = SystemTime::now();
        for index in first..self.plan.len() {
            if let Some(from) = self.jobs[index].reused {
                self.record(index, Outcome::Cached { from }, now, None)
                    .await;
            }
        }
        for index in 0..self.plan.len() {
            if self.outcomes[index].is_some() || self.started_at[index].is_some() {
                continue;
            }
            let needs = &self.plan.nodes()[index].needs;
            // A joined stage may need one that already did not pass.
            if let Some(&because) = needs
                .iter()
                .find(|&&need| self.outcomes[need].is_some_and(|o| !o.is_pass()))
            {
                self.record(index, Outcome::Skipped { because }, now, None)
                    .await;
                continue;
            }
            self.waiting_on[index] = needs
                .iter()
                .filter(|&&need| !self.outcomes[need].is_some_and(Outcome::is_pass))
                .count();
            if self.waiting_on[index] == 0 {
                self.queue(index);
            }
        }
    }

    async fn record(
        &mut self,
        index: usize,
        outcome: Outcome,
        at: SystemTime,
        duration: Option<Duration>,
    ) {
        self.outcomes[index] = Some(outcome);
        let _ = self
            .events
            .send(Event::StageFinished {
                stage: index,
                outcome,
                at,
                duration,
            })
            .await;
    }
}
