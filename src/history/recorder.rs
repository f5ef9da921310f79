//! Writes a run into history as its events arrive: one log file per stage, and the stage and
//! run rows, batched into one transaction per [`Recorder::flush`].
//!
//! A failure to write (a full disk, too many open files) never stops the run, and never stops
//! more recording than it must: a log that cannot be written stops that stage's log only (what
//! it holds so far stays), and a batch of rows that cannot be written is kept and written again
//! with the next one. Each failure is handed to the caller once, as it happens
//! ([`Recorder::take_faults`]), naming the file, what gzl was doing and the system's error.

use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::{History, HistoryError, Update};
use crate::exec::Event;

/// How often, and after how long, the run's last rows are written again before gzl gives up.
const FINAL_RETRIES: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
];

/// The history subscriber of a run.
pub struct Recorder {
    history: History,
    run: i64,
    dir: PathBuf,
    names: Vec<String>,
    logs: Vec<Log>,
    /// Bytes logged so far by each started stage.
    sizes: Vec<Option<u64>>,
    /// Row changes not written yet: since the last flush, and those a failed write kept.
    pending: Vec<Update>,
    /// Whether the last write of rows failed (its failure is told once, not at every retry).
    history_failing: bool,
    /// Failures not yet handed to the caller.
    faults: Vec<String>,
    /// Stages whose log lost output.
    lost_logs: Vec<String>,
}

/// The log file of one stage.
enum Log {
    /// Not made yet: the stage has printed nothing.
    None,
    Open(File),
    /// Writing it failed: it keeps what it holds, and the rest of the stage's output is not
    /// logged (a log with a hole would read as the stage's output, and be wrong).
    Broken,
}

/// What recording a run left undone, told at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unrecorded {
    /// History could not record how the run ended (nor, so, what came before it and was
    /// still waiting): it shows it `running` until another gzl marks it `interrupted`.
    pub end: bool,
    /// Stages whose log misses output.
    pub logs: Vec<String>,
}

impl Unrecorded {
    pub fn is_empty(&self) -> bool {
        *self == Unrecorded::default()
    }
}

impl std::fmt::Display for Unrecorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if self.end {
            parts.push(
                "history could not record how it ended: it shows it as running, and as \
                 interrupted once this gzl has exited"
                    .to_string(),
            );
        }
        if let [name] = self.logs.as_slice() {
            parts.push(format!(
                "the log of `{name}` misses output (it keeps what was written before)"
            ));
        } else if !self.logs.is_empty() {
            let names: Vec<String> = self.logs.iter().map(|n| format!("`{n}`")).collect();
            parts.push(format!(
                "the logs of {} miss output (they keep what was written before)",
                names.join(", ")
            ));
        }
        f.write_str(&parts.join("; "))
    }
}

impl Recorder {
    pub fn new(history: History) -> Self {
        Recorder {
            history,
            run: 0,
            dir: PathBuf::new(),
            names: Vec::new(),
            logs: Vec::new(),
            sizes: Vec::new(),
            pending: Vec::new(),
            history_failing: false,
            faults: Vec::new(),
            lost_logs: Vec::new(),
        }
    }

    pub fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted(info) => {
                self.run = info.id;
                self.dir.clone_from(&info.dir);
                self.names = info.stages.iter().map(|(name, _)| name.clone()).collect();
                self.logs = (0..self.names.len()).map(|_| Log::None).collect();
                self.sizes = vec![None; self.names.len()];
            }
            Event::StagesJoined(joined) => {
                for (offset, stage) in joined.stages.iter().enumerate() {
                    self.names.push(stage.name.clone());
                    self.logs.push(Log::None);
                    self.sizes.push(None);
                    self.pending.push(Update::StageAdded {
                        run: self.run,
                        position: joined.first + offset,
                        stage: super::NewStage {
                            name: stage.name.clone(),
                            needs: stage.needs.clone(),
                            key: stage.key.clone(),
                            inputs: stage.inputs.clone(),
                        },
                        cwd: stage.cwd.clone(),
                        env: stage.env.clone(),
                    });
                }
            }
            Event::StageStarted { stage, at, pid } => {
                self.sizes[*stage] = Some(0);
                self.pending.push(Update::StageStarted {
                    run: self.run,
                    position: *stage,
                    at: *at,
                    log_path: self.log_path(*stage),
                    pid: *pid,
                });
            }
            Event::Output { stage, bytes } => self.log(*stage, bytes),
            Event::StageFinished {
                stage,
                outcome,
                at,
                duration,
            } => {
                if matches!(self.logs[*stage], Log::Open(_)) {
                    self.logs[*stage] = Log::None;
                }
                let log_size = self.sizes[*stage].take();
                self.pending.push(Update::StageFinished {
                    run: self.run,
                    position: *stage,
                    status: outcome.status(),
                    exit_code: outcome.exit_code(),
                    at: *at,
                    duration: *duration,
                    log_size,
                    cached_from: match outcome {
                        crate::exec::Outcome::Cached { from } => Some(*from),
                        _ => None,
                    },
                });
            }
            Event::RunFinished { status, at, .. } => self.pending.push(Update::RunFinished {
                run: self.run,
                status: *status,
                at: *at,
            }),
        }
    }

    /// Appends output to a stage's log, made on the first output: a silent stage costs no file.
    fn log(&mut self, stage: usize, bytes: &[u8]) {
        if matches!(self.logs[stage], Log::None) {
            match crate::home::create_private_file(&self.log_path(stage)) {
                Ok(file) => self.logs[stage] = Log::Open(file),
                Err(error) => return self.log_failed(stage, "create", &error),
            }
        }
        let Log::Open(file) = &mut self.logs[stage] else {
            return;
        };
        // Counted as written, so the recorded size is what the file holds when writing fails.
        let mut rest = bytes;
        let mut written = 0;
        let failure = loop {
            if rest.is_empty() {
                break None;
            }
            match file.write(rest) {
                Ok(0) => break Some(std::io::Error::from(std::io::ErrorKind::WriteZero)),
                Ok(n) => {
                    written += n as u64;
                    rest = &rest[n..];
                }
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => break Some(error),
            }
        };
        if let Some(size) = &mut self.sizes[stage] {
            *size += written;
        }
        if let Some(error) = failure {
            self.log_failed(stage, "write", &error);
        }
    }

    fn log_failed(&mut self, stage: usize, operation: &str, error: &std::io::Error) {
        self.logs[stage] = Log::Broken;
        let name = &self.names[stage];
        self.faults.push(format!(
            "cannot {operation} the log of `{name}` ({}): {error}; the stage goes on, but the \
             rest of its output is not kept",
            self.log_path(stage).display()
        ));
        self.lost_logs.push(name.clone());
    }

    fn log_path(&self, stage: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.names[stage]))
    }

    /// Whether recorded updates wait for a flush.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes what has been recorded since the last flush, and what earlier flushes could not
    /// write. Returns whether everything is written.
    pub fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        tracing::trace!(updates = self.pending.len(), "writing to history");
        // One transaction: it is written whole or not at all, so a failed batch is kept and
        // written again whole.
        match self.history.apply(&self.pending) {
            Ok(()) => {
                self.pending.clear();
                if self.history_failing {
                    self.history_failing = false;
                    self.faults.push(format!(
                        "history ({}) is written again, with what it missed",
                        self.history.home().database().display()
                    ));
                }
                true
            }
            Err(error) => {
                if !self.history_failing {
                    self.history_failing = true;
                    self.faults.push(format!(
                        "cannot write run {} to history: {}; the run goes on, and gzl tries \
                         again with its next changes",
                        self.run,
                        describe(&error)
                    ));
                }
                false
            }
        }
    }

    /// Writes what is left at the end of the run, trying again a few times if writing fails.
    pub fn flush_final(&mut self) {
        for wait in FINAL_RETRIES {
            if self.flush() {
                return;
            }
            std::thread::sleep(wait);
        }
        self.flush();
    }

    /// Failures met since the last call, each told once, as lines for people.
    pub fn take_faults(&mut self) -> Vec<String> {
        std::mem::take(&mut self.faults)
    }

    /// What recording left undone; call after [`Recorder::flush_final`].
    pub fn unrecorded(&self) -> Unrecorded {
        let end = self
            .pending
            .iter()
            .any(|update| matches!(update, Update::RunFinished { .. }));
        Unrecorded {
            end,
            logs: self.lost_logs.clone(),
        }
    }
}

/// An error with its causes, on one line, and what SQLite was doing when it failed.
fn describe(error: &HistoryError) -> String {
    let mut text = error.to_string();
    let mut last = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // rusqlite's causes repeat SQLite's message with its code.
        if last.is_empty() || !cause_text.ends_with(&last) {
            text.push_str(&format!(": {cause_text}"));
        }
        last = cause_text;
        source = cause.source();
    }
    if let HistoryError::Database {
        source: rusqlite::Error::SqliteFailure(failure, _),
        ..
    } = error
        && let Some(doing) = sqlite_operation(failure.extended_code)
    {
        text.push_str(&format!(" ({doing})"));
    }
    text
}

/// What SQLite was doing, from the extended code of an error: its message alone ("disk I/O
/// error") does not say.
fn sqlite_operation(code: std::ffi::c_int) -> Option<&'static str> {
    use rusqlite::ffi;
    Some(match code {
        ffi::SQLITE_FULL => "no space left for the database or its -wal file",
        ffi::SQLITE_IOERR_READ | ffi::SQLITE_IOERR_SHORT_READ => "reading the database",
        ffi::SQLITE_IOERR_WRITE => "writing the database or its -wal file",
        ffi::SQLITE_IOERR_FSYNC | ffi::SQLITE_IOERR_DIR_FSYNC => "syncing the database",
        ffi::SQLITE_IOERR_TRUNCATE => "truncating the database or its -wal file",
        ffi::SQLITE_IOERR_SHMOPEN => "opening the database's -shm file",
        ffi::SQLITE_IOERR_SHMSIZE | ffi::SQLITE_IOERR_SHMMAP => "growing the database's -shm file",
        ffi::SQLITE_CANTOPEN => "opening a file of the database (too many open files?)",
        ffi::SQLITE_READONLY => "writing a database it may only read",
        _ => return None,
    })
}
