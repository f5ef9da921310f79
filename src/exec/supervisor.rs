//! Runs one stage's process and watches over it until it and everything it started are gone.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use std::sync::Arc;

use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use super::generator::Generated;
use super::reaper::{Reaper, StageProcesses};
use super::{Cancel, Event, Outcome};

/// Everything needed to start one stage's process.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    /// The program and its arguments (a shell and the script file, usually); `None` for a
    /// group, which starts no process.
    pub command: Option<Vec<String>>,
    /// What to run instead when `command` cannot be started.
    pub fallback: Option<Vec<String>>,
    pub cwd: PathBuf,
    /// Variables added to gzl's own environment.
    pub env: Vec<(String, String)>,
    /// The run whose passed result this stage reuses instead of running.
    pub reused: Option<i64>,
    /// `@secret` variables, name and value: in the stage's environment, masked in its output,
    /// recorded nowhere.
    pub secrets: Vec<(String, String)>,
    /// Why the stage must fail without starting (a secret that cannot be had).
    pub refuse: Option<String>,
    /// Variables of gzl's own environment the stage does not get.
    pub env_remove: Vec<String>,
    pub timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// For a `@generates` stage, the file its stdout goes to, masked: the Gzlfile text of the
    /// stages it generates. Its stderr is its output as usual.
    pub generates: Option<PathBuf>,
    /// `@outputs` patterns gzl keeps when the stage passes; empty when it has none, or when
    /// the run offers no results for reuse.
    pub outputs: Vec<String>,
    /// Where the script comes from, for a shell that names its lines in errors (bash, sh).
    pub origin: Option<super::ScriptOrigin>,
}

/// Output is read in chunks of this size; memory per stage stays bounded by it.
pub(super) const CHUNK: usize = 64 * 1024;

/// After the processes of a group are killed, how long to keep reading what they wrote.
const DRAIN_AFTER_KILL: Duration = Duration::from_secs(1);

/// While a stage's processes end, the first and the longest wait between looks at what is
/// left (nothing tells gzl when a process that left the group exits).
const LOOK_FIRST: Duration = Duration::from_millis(2);
const LOOK_MAX: Duration = Duration::from_millis(50);

/// Why gzl is stopping a stage.
#[derive(Clone, Copy)]
enum Stop {
    Timeout(Duration),
    Idle(Duration),
    Cancel,
}

pub(super) struct Supervisor<'a> {
    pub job: &'a Job,
    pub stage: usize,
    pub events: &'a mpsc::Sender<Event>,
    pub cancel: watch::Receiver<Cancel>,
    pub grace: Duration,
    /// Masks the job's secrets in its output.
    pub masker: std::sync::Mutex<super::Masker>,
    /// Points the shell's error lines at the Gzlfile, before masking.
    pub relabeler: std::sync::Mutex<super::relabel::Relabeler>,
    /// Finds the stage's processes that left its group.
    pub reaper: Arc<Reaper>,
}

impl Supervisor<'_> {
    /// Runs the stage to its end. Every process the stage started is gone when this returns
    /// (on Linux also those that left its process group or session; elsewhere, those in it),
    /// or was sent SIGKILL a second before.
    pub async fn run(mut self) -> Outcome {
        let Some(words) = &self.job.command else {
            return Outcome::Passed;
        };
        if let Some(reason) = &self.job.refuse {
            return self.could_not_start(reason).await;
        }
        if !self.job.cwd.is_dir() {
            let message = format!(
                "working directory {} does not exist (set by @dir)",
                self.job.cwd.display()
            );
            return self.could_not_start(&message).await;
        }
        // A parallel run's sweep must not take the new process for an orphan before it is
        // registered (`parallel_probes_find_the_same_commit` saw probes killed at their start).
        let starting = self.reaper.starting();
        let spawned = match (self.spawn(words), &self.job.fallback) {
            (Err(error), Some(fallback)) => {
                tracing::debug!(stage = %self.job.name, %error, "starting through the shell instead");
                self.spawn(fallback)
            }
            (spawned, _) => spawned,
        };
        let (child, reader, generated) = match spawned {
            Ok(started) => started,
            Err(error) => {
                let message = format!("cannot start `{}`: {error}", words[0]);
                return self.could_not_start(&message).await;
            }
        };
        tracing::debug!(stage = %self.job.name, pid = child.id(), command = ?words, "stage started");
        let reaper = Arc::clone(&self.reaper);
        let token = self
            .job
            .env
            .iter()
            .find(|(name, _)| name == super::RUN_TOKEN_VARIABLE)
            .map(|(_, value)| value.as_str());
        let root = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(0);
        let processes = reaper.started(&self.job.name, token, root);
        drop(starting);
        self.started(child.id()).await;
        match generated {
            Some(generated) => {
                self.supervise_generator(child, reader, &processes, generated)
                    .await
            }
            None => self.supervise(child, reader, &processes).await,
        }
    }

    /// Supervises a `@generates` stage while what it prints on stdout is copied, masked, to
    /// its file; the copy is complete when this returns.
    async fn supervise_generator(
        &mut self,
        child: tokio::process::Child,
        reader: tokio::net::unix::pipe::Receiver,
        processes: &StageProcesses<'_>,
        generated: Generated,
    ) -> Outcome {
        let (done, stage_done) = tokio::sync::oneshot::channel();
        let supervised = async {
            let outcome = self.supervise(child, reader, processes).await;
            let _ = done.send(());
            outcome
        };
        let (outcome, copied) =
            tokio::join!(supervised, generated.copy(stage_done, DRAIN_AFTER_KILL));
        match copied {
            Ok(()) => outcome,
            Err(message) => {
                self.note(&message, b'\n').await;
                match outcome {
                    Outcome::Passed => Outcome::Failed {
                        exit_code: None,
                        signal: None,
                    },
                    other => other,
                }
            }
        }
    }

    fn spawn(
        &self,
        words: &[String],
    ) -> std::io::Result<(
        tokio::process::Child,
        tokio::net::unix::pipe::Receiver,
        Option<Generated>,
    )> {
        // One pipe for stdout and stderr keeps the two interleaved exactly as written.
        let (reader, writer) = std::io::pipe()?;
        let (program, args) = words
            .split_first()
            .ok_or_else(|| std::io::Error::other("no program to run"))?;
        let mut command = tokio::process::Command::new(program);
        for name in &self.job.env_remove {
            command.env_remove(name);
        }
        let (stdout, generated) = match &self.job.generates {
            Some(path) => {
                let (stdout, generated) = Generated::open(path, &self.job.secrets)?;
                (Stdio::from(stdout), Some(generated))
            }
            None => (Stdio::from(writer.try_clone()?), None),
        };
        command
            .args(args)
            .current_dir(&self.job.cwd)
            .envs(self.job.env.iter().map(|(k, v)| (k, v)))
            .envs(self.job.secrets.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(writer)
            .process_group(0);
        let child = command.spawn()?;
        // The command holds the parent's copies of the pipe's write end; without dropping them
        // the reader would never see the end of the output.
        drop(command);
        let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))?;
        Ok((child, reader, generated))
    }

    async fn supervise(
        &mut self,
        mut child: tokio::process::Child,
        mut reader: tokio::net::unix::pipe::Receiver,
        processes: &StageProcesses<'_>,
    ) -> Outcome {
        let started = Instant::now();
        let deadline = self.job.timeout.map(|limit| started + limit);
        let mut idle_deadline = self.job.idle_timeout.map(|limit| started + limit);
        let mut buffer = vec![0u8; CHUNK];
        let mut status: Option<ExitStatus> = None;
        let mut stop: Option<Stop> = None;
        let mut eof = false;
        let mut kill_at: Option<Instant> = None;
        let mut killed = false;
        let mut give_up_at: Option<Instant> = None;
        let mut last_byte = b'\n';
        let mut cancel_closed = false;
        // Whether the stage's processes other than the first may still be running: known
        // only once the first has exited, then looked at again until none is left.
        let mut left = true;
        let mut look_every = LOOK_FIRST;
        let mut look_at: Option<Instant> = None;

        loop {
            if status.is_some() && eof && !left {
                break;
            }
            let limit = match (deadline, idle_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let cancel_requested = *self.cancel.borrow();
            tokio::select! {
                read = reader.read(&mut buffer), if !eof => match read {
                    Ok(0) | Err(_) => {
                        eof = true;
                        if status.is_some() && left {
                            // The last holder of the pipe may just have ended: look now.
                            left = processes.signal(killed.then_some(Signal::SIGKILL)) > 0;
                        }
                    }
                    Ok(n) => {
                        last_byte = buffer[n - 1];
                        if let Some(limit) = self.job.idle_timeout {
                            idle_deadline = Some(Instant::now() + limit);
                        }
                        let relabeled = self.relabeler.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(&buffer[..n]);
                        let shown = self.masker.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(&relabeled);
                        if !shown.is_empty() {
                            self.output(shown).await;
                        }
                    }
                },
                exit = child.wait(), if status.is_none() => {
                    status = Some(exit.unwrap_or_else(|_| failed_status()));
                    processes.reaped();
                    // The script is done; whatever it started goes too, wherever it went:
                    // SIGTERM unless a stop sent it already (SIGKILL again once killing).
                    let signal = match (kill_at, killed) {
                        (None, _) => Some(Signal::SIGTERM),
                        (Some(_), true) => Some(Signal::SIGKILL),
                        (Some(_), false) => None,
                    };
                    left = processes.signal(signal) > 0;
                    if left {
                        kill_at.get_or_insert(Instant::now() + self.grace);
                        look_at = Some(Instant::now() + look_every);
                    }
                    give_up_at.get_or_insert(Instant::now() + self.grace + DRAIN_AFTER_KILL);
                },
                () = sleep_until_or_never(limit), if stop.is_none() && status.is_none() => {
                    let now = Instant::now();
                    let reason = match (deadline, self.job.timeout) {
                        (Some(d), Some(limit)) if d <= now => Stop::Timeout(limit),
                        _ => Stop::Idle(self.job.idle_timeout.unwrap_or_default()),
                    };
                    let message = match reason {
                        Stop::Timeout(limit) => format!("timed out after {} (@timeout); stopping it", humantime::format_duration(limit)),
                        _ => format!("no output for {} (@idle-timeout); stopping it", humantime::format_duration(self.job.idle_timeout.unwrap_or_default())),
                    };
                    self.note(&message, last_byte).await;
                    last_byte = b'\n';
                    stop = Some(reason);
                    processes.signal(Some(Signal::SIGTERM));
                    kill_at = Some(now + self.grace);
                },
                changed = self.cancel.changed(), if !cancel_closed && cancel_requested != Cancel::Now => {
                    cancel_closed = changed.is_err();
                    let request = if cancel_closed { Cancel::None } else { *self.cancel.borrow() };
                    if request != Cancel::None && stop.is_none() && status.is_none() {
                        stop = Some(Stop::Cancel);
                    }
                    match request {
                        Cancel::Graceful if kill_at.is_none() => {
                            processes.signal(Some(Signal::SIGTERM));
                            kill_at = Some(Instant::now() + self.grace);
                        }
                        Cancel::Now => kill_at = Some(Instant::now()),
                        _ => {}
                    }
                },
                () = sleep_until_or_never(kill_at), if kill_at.is_some() && !killed => {
                    killed = true;
                    left = processes.signal(Some(Signal::SIGKILL)) > 0;
                    give_up_at = Some(Instant::now() + DRAIN_AFTER_KILL);
                    look_at = Some(Instant::now() + LOOK_FIRST);
                },
                () = sleep_until_or_never(look_at), if status.is_some() && left => {
                    left = processes.signal(killed.then_some(Signal::SIGKILL)) > 0;
                    look_every = (look_every * 2).min(LOOK_MAX);
                    look_at = Some(Instant::now() + look_every);
                },
                // A process gzl cannot see (or kill) may hold the pipe open forever.
                () = sleep_until_or_never(give_up_at), if give_up_at.is_some() => break,
            }
        }
        self.release_held().await;
        let status = match status {
            Some(status) => {
                if left {
                    processes.signal(Some(Signal::SIGKILL));
                }
                status
            }
            None => {
                processes.signal(Some(Signal::SIGKILL));
                let status = child.wait().await.unwrap_or_else(|_| failed_status());
                processes.reaped();
                status
            }
        };
        match stop {
            Some(Stop::Timeout(limit)) => Outcome::TimedOut { limit, idle: false },
            Some(Stop::Idle(limit)) => Outcome::TimedOut { limit, idle: true },
            Some(Stop::Cancel) => Outcome::Cancelled,
            None => outcome_of(status),
        }
    }

    async fn output(&self, bytes: Vec<u8>) {
        // A closed channel means nobody listens any more; the stage still runs to its end.
        let _ = self
            .events
            .send(Event::Output {
                stage: self.stage,
                bytes,
            })
            .await;
    }

    /// Shows what the relabeler held back in case it began an error line, and what the masker
    /// held back in case it began a secret.
    async fn release_held(&self) {
        let relabeled = self
            .relabeler
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .finish();
        let held = {
            let mut masker = self
                .masker
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut held = masker.push(&relabeled);
            held.extend(masker.finish());
            held
        };
        if !held.is_empty() {
            self.output(held).await;
        }
    }

    /// A line from gzl itself in the stage's output, starting on a line of its own.
    async fn note(&self, message: &str, last_byte: u8) {
        self.release_held().await;
        let newline = if last_byte == b'\n' { "" } else { "\n" };
        self.output(format!("{newline}gzl: {message}\n").into_bytes())
            .await;
    }

    async fn started(&self, pid: Option<u32>) {
        let _ = self
            .events
            .send(Event::StageStarted {
                stage: self.stage,
                at: std::time::SystemTime::now(),
                pid,
            })
            .await;
    }

    async fn could_not_start(&self, message: &str) -> Outcome {
        self.started(None).await;
        self.note(message, b'\n').await;
        Outcome::Failed {
            exit_code: None,
            signal: None,
        }
    }
}

fn outcome_of(status: ExitStatus) -> Outcome {
    use std::os::unix::process::ExitStatusExt as _;
    if status.success() {
        Outcome::Passed
    } else {
        Outcome::Failed {
            exit_code: status.code(),
            signal: status.signal(),
        }
    }
}

fn failed_status() -> ExitStatus {
    use std::os::unix::process::ExitStatusExt as _;
    ExitStatus::from_raw(1 << 8)
}

async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
