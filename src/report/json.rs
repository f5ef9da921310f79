use std::io::{BufWriter, Write};
use std::time::Duration;

use serde_json::{Value, json};

use super::lines::LineSplitter;
use crate::exec::{Event, Outcome};

/// The version of the JSON lines event stream of `gzl run --json`; see docs/json.md.
pub const SCHEMA: u32 = 1;

/// `gzl run --json`: one JSON object per line on stdout for each event.
pub struct Json {
    run: i64,
    names: Vec<String>,
    splitters: Vec<LineSplitter>,
    out: BufWriter<std::io::Stdout>,
    closed: bool,
    /// What history could not record, said in `run_finished`.
    unrecorded: Option<String>,
}

impl Default for Json {
    fn default() -> Self {
        Json {
            run: 0,
            names: Vec::new(),
            splitters: Vec::new(),
            out: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            closed: false,
            unrecorded: None,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn time(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

impl Json {
    pub fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted(info) => {
                self.run = info.id;
                self.names = info.stages.iter().map(|(name, _)| name.clone()).collect();
                self.splitters = self.names.iter().map(|_| LineSplitter::default()).collect();
                let stages: Vec<Value> = info
                    .stages
                    .iter()
                    .map(|(name, needs)| json!({ "name": name, "needs": needs }))
                    .collect();
                self.emit(&json!({
                    "event": "run_started",
                    "schema": SCHEMA,
                    "run": info.id,
                    "root": info.root,
                    "commit": info.commit,
                    "tree": info.tree,
                    "branch": info.branch,
                    "dirty": info.dirty,
                    "stages": stages,
                }));
            }
            Event::StagesJoined(joined) => {
                let stages: Vec<Value> = joined
                    .stages
                    .iter()
                    .map(|stage| json!({ "name": stage.name, "needs": stage.needs }))
                    .collect();
                let generator = joined.generator.map(|index| self.names[index].clone());
                for stage in &joined.stages {
                    self.names.push(stage.name.clone());
                    self.splitters.push(LineSplitter::default());
                }
                self.emit(&json!({
                    "event": "stages_joined",
                    "run": self.run,
                    "generator": generator,
                    "stages": stages,
                }));
            }
            Event::StageStarted { stage, at, .. } => self.emit(&json!({
                "event": "stage_started",
                "run": self.run,
                "stage": self.names[*stage],
                "time": time(*at),
            })),
            Event::Output { stage, bytes } => {
                let mut lines = Vec::new();
                self.splitters[*stage].push(bytes, |line| {
                    lines.push(String::from_utf8_lossy(line).into_owned())
                });
                for line in lines {
                    self.output(*stage, line);
                }
            }
            Event::StageFinished {
                stage,
                outcome,
                at,
                duration,
            } => {
                let mut rest = None;
                self.splitters[*stage]
                    .finish(|line| rest = Some(String::from_utf8_lossy(line).into_owned()));
                if let Some(line) = rest {
                    self.output(*stage, line);
                }
                let mut object = json!({
                    "event": "stage_finished",
                    "run": self.run,
                    "stage": self.names[*stage],
                    "status": outcome.status(),
                    "exit_code": outcome.exit_code(),
                    "time": time(*at),
                    "duration_ms": duration.map(millis),
                });
                match outcome {
                    Outcome::Failed {
                        signal: Some(signal),
                        ..
                    } => object["signal"] = json!(signal),
                    Outcome::TimedOut { limit, idle } => {
                        object["timeout_ms"] = json!(millis(*limit));
                        object["idle"] = json!(idle);
                    }
                    Outcome::Skipped { because } => object["because"] = json!(self.names[*because]),
                    Outcome::Cached { from } => object["cached_from"] = json!(from),
                    _ => {}
                }
                self.emit(&object);
            }
            Event::RunFinished {
                status,
                at,
                duration,
            } => {
                let mut object = json!({
                    "event": "run_finished",
                    "run": self.run,
                    "status": status,
                    "time": time(*at),
                    "duration_ms": millis(*duration),
                });
                if let Some(unrecorded) = &self.unrecorded {
                    object["unrecorded"] = json!(unrecorded);
                }
                self.emit(&object);
                self.flush();
            }
        }
    }

    /// What history could not record of the run (see [`crate::history::Unrecorded`]).
    pub fn unrecorded(&mut self, unrecorded: &crate::history::Unrecorded) {
        self.unrecorded = (!unrecorded.is_empty()).then(|| unrecorded.to_string());
    }

    fn output(&mut self, stage: usize, line: String) {
        self.emit(&json!({
            "event": "output",
            "run": self.run,
            "stage": self.names[stage],
            "line": line,
        }));
    }

    fn emit(&mut self, value: &Value) {
        if self.closed {
            return;
        }
        let mut text = value.to_string();
        text.push('\n');
        if self.out.write_all(text.as_bytes()).is_err() {
            self.closed = true;
        }
    }

    pub fn flush(&mut self) {
        if !self.closed && self.out.flush().is_err() {
            self.closed = true;
        }
    }
}
