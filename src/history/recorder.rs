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
    /// Open log files of running stages that have printed something.
    logs: Vec<Option<File>>,
    /// Bytes logged so far by each started stage.
    sizes: Vec<Option<u64>>,
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
            sizes: Vec::new(),
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
                self.sizes = vec![None; self.names.len()];
            }
            Event::StagesJoined(joined) => {
                for (offset, stage) in joined.stages.iter().enumerate() {
                    self.names.push(stage.name.clone());
                    self.logs.push(None);
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
            Event::Output { stage, bytes } => {
                // The log file is made on the first output: a silent stage costs no file.
                if self.logs[*stage].is_none() {
                    match File::create(self.log_path(*stage)) {
                        Ok(file) => self.logs[*stage] = Some(file),
                        Err(source) => {
                            let path = self.log_path(*stage);
                            self.error = Some(HistoryError::Directory { path, source });
                            return;
                        }
                    }
                }
                if let Some(file) = &mut self.logs[*stage]
                    && let Err(source) = file.write_all(bytes)
                {
                    let path = self.log_path(*stage);
                    self.error = Some(HistoryError::Directory { path, source });
                    return;
                }
                if let Some(size) = &mut self.sizes[*stage] {
                    *size += bytes.len() as u64;
                }
            }
            Event::StageFinished {
                stage,
                outcome,
                at,
                duration,
            } => {
                self.logs[*stage] = None;
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

    fn log_path(&self, stage: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.names[stage]))
    }

    /// Whether recorded updates wait for a flush.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
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
