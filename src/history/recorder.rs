//! Writes a run into history as its events arrive: one log file per stage, and the stage and
//! run rows, batched into one transaction per [`Recorder::flush`].

use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;

use super::{History, HistoryError, Update};
use crate::exec::Event;

/// The history subscriber of a run.
pub struct Recorder {
    history: History,
    run: i64,
    dir: PathBuf,
    names: Vec<String>,
    logs: Vec<Option<(File, u64)>>,
    pending: Vec<Update>,
    /// The first failure; recording stops there, the run goes on.
    error: Option<HistoryError>,
}

impl Recorder {
    pub fn new(history: History) -> Self {
        Recorder {
            history,
            run: 0,
            dir: PathBuf::new(),
            names: Vec::new(),
            logs: Vec::new(),
            pending: Vec::new(),
            error: None,
        }
    }

    pub fn event(&mut self, event: &Event) {
        if self.error.is_some() {
            return;
        }
        match event {
            Event::RunStarted(info) => {
                self.run = info.id;
                self.dir.clone_from(&info.dir);
                self.names = info.stages.iter().map(|(name, _)| name.clone()).collect();
                self.logs = (0..self.names.len()).map(|_| None).collect();
            }
            Event::StageStarted { stage, at, pid } => {
                let log_path = self.dir.join(format!("{}.log", self.names[*stage]));
                match File::create(&log_path) {
                    Ok(file) => self.logs[*stage] = Some((file, 0)),
                    Err(source) => {
                        self.error = Some(HistoryError::Directory {
                            path: log_path,
                            source,
                        });
                        return;
                    }
                }
                self.pending.push(Update::StageStarted {
                    run: self.run,
                    position: *stage,
                    at: *at,
                    log_path,
                    pid: *pid,
                });
            }
            Event::Output { stage, bytes } => {
                if let Some((file, size)) = &mut self.logs[*stage] {
                    if let Err(source) = file.write_all(bytes) {
                        let path = self.dir.join(format!("{}.log", self.names[*stage]));
                        self.error = Some(HistoryError::Directory { path, source });
                        return;
                    }
                    *size += bytes.len() as u64;
                }
            }
            Event::StageFinished {
                stage,
                outcome,
                at,
                duration,
            } => {
                let log_size = self.logs[*stage].take().map(|(_, size)| size);
                self.pending.push(Update::StageFinished {
                    run: self.run,
                    position: *stage,
                    status: outcome.status(),
                    exit_code: outcome.exit_code(),
                    at: *at,
                    duration: *duration,
                    log_size,
                });
            }
            Event::RunFinished { status, at, .. } => self.pending.push(Update::RunFinished {
                run: self.run,
                status: *status,
                at: *at,
            }),
        }
    }

    /// Writes what has been recorded since the last flush.
    pub fn flush(&mut self) {
        if self.error.is_some() || self.pending.is_empty() {
            return;
        }
        tracing::trace!(updates = self.pending.len(), "writing to history");
        if let Err(error) = self.history.apply(&self.pending) {
            self.error = Some(error);
        }
        self.pending.clear();
    }

    /// Flushes and hands back the history, or the first error recording met.
    pub fn finish(mut self) -> Result<History, HistoryError> {
        self.flush();
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.history),
        }
    }
}
