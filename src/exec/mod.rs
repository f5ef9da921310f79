//! The executor: runs a plan's stages in parallel, as the graph allows.
//!
//! One scheduler loop owns the state of every stage. It starts ready stages while slots are
//! free, taking the one with the heaviest remaining path first (weights from recorded median
//! durations), and each started stage gets a task running a [`Supervisor`](supervisor) that
//! owns the stage's process group: it streams output, enforces `@timeout` and
//! `@idle-timeout`, and on a stop sends SIGTERM to the whole group, waits the grace period,
//! then sends SIGKILL. When a task ends, the loop records the outcome: a pass makes
//! dependents ready, anything else skips every stage that needs it, and with `fail_fast`
//! cancels the rest.
//!
//! The executor never prints. It sends [`Event`]s down a bounded channel; when subscribers
//! fall behind, the channel fills, supervisors stop reading, and stages block on their pipes,
//! so memory does not grow with output.

mod event;
mod mask;
mod supervisor;

use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use event::{Event, Outcome, RunInfo};
pub use mask::Masker;
pub use supervisor::Job;

use crate::plan::Plan;
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

/// Runs `jobs` (one per plan node, same order) and returns each stage's outcome.
///
/// A job with `reused` set is reported `cached` at once and never started; the stages it
/// needs must be reused too. `priorities` gives each stage's remaining critical-path weight. `cancel` is watched for
/// stop requests; the executor sends on it itself for `fail_fast`.
pub async fn execute(
    plan: &Plan,
    jobs: Vec<Job>,
    priorities: Vec<u64>,
    options: &Options,
    events: mpsc::Sender<Event>,
    cancel: watch::Sender<Cancel>,
) -> Vec<Outcome> {
    let mut scheduler = Scheduler {
        plan,
        jobs: Arc::new(jobs),
        priorities,
        options,
        waiting_on: plan.nodes().iter().map(|n| n.needs.len()).collect(),
        outcomes: vec![None; plan.len()],
        started_at: vec![None; plan.len()],
        ready: BinaryHeap::new(),
        events,
        cancel,
    };
    scheduler.run().await;
    scheduler
        .outcomes
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Cancelled))
        .collect()
}

struct Scheduler<'a> {
    plan: &'a Plan,
    jobs: Arc<Vec<Job>>,
    priorities: Vec<u64>,
    options: &'a Options,
    /// For each stage, how many of its needs have not passed yet.
    waiting_on: Vec<usize>,
    outcomes: Vec<Option<Outcome>>,
    started_at: Vec<Option<tokio::time::Instant>>,
    /// Ready stages: heaviest remaining path first, then plan order.
    ready: BinaryHeap<(u64, std::cmp::Reverse<usize>)>,
    events: mpsc::Sender<Event>,
    cancel: watch::Sender<Cancel>,
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
        for (index, waiting) in self.waiting_on.iter().enumerate() {
            if *waiting == 0 && self.outcomes[index].is_none() {
                self.ready
                    .push((self.priorities[index], std::cmp::Reverse(index)));
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
        let jobs = Arc::clone(&self.jobs);
        let events = self.events.clone();
        let cancel = self.cancel.subscribe();
        let grace = self.options.grace;
        running.spawn(async move {
            let job = &jobs[index];
            let secrets: Vec<String> = job.secrets.iter().map(|(_, v)| v.clone()).collect();
            let supervisor = Supervisor {
                job,
                stage: index,
                events: &events,
                cancel,
                grace,
                masker: std::sync::Mutex::new(Masker::new(&secrets)),
            };
            (index, supervisor.run().await)
        });
    }

    async fn finish(&mut self, index: usize, outcome: Outcome) {
        let duration = self.started_at[index].map(|at| at.elapsed());
        tracing::debug!(stage = %self.jobs[index].name, ?outcome, ?duration, "stage finished");
        self.record(index, outcome, SystemTime::now(), duration)
            .await;
        if outcome.is_pass() {
            for &dependent in &self.plan.nodes()[index].dependents {
                self.waiting_on[dependent] -= 1;
                if self.waiting_on[dependent] == 0 {
                    self.ready
                        .push((self.priorities[dependent], std::cmp::Reverse(dependent)));
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

/// Kills every process still running for a run whose gzl died, so nobody stopped its
/// stages. Stage processes are recognised by the run's `GZL_TOKEN` in the environment they
/// started with (children inherit it); Linux only, where `/proc` shows it.
pub fn kill_abandoned(token: &str) {
    if token.is_empty() {
        return;
    }
    let marker = format!("GZL_TOKEN={token}");
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|&b| b == 0)
            .any(|var| var == marker.as_bytes())
        {
            tracing::debug!(pid, "killing a process left by an interrupted run");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
