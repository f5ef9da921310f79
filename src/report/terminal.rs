use std::io::{BufWriter, Write};
use std::time::Duration;

use super::lines::LineSplitter;
use super::progress::{Progress, ProgressMode};
use crate::duration::format_duration;
use crate::exec::{Event, Outcome};
use crate::history::Unrecorded;
use crate::status::RunStatus;
use crate::style::Style;

/// The terminal view of a run: stage output on stdout (prefixed by the stage's name when
/// stages run side by side), then a summary on stderr. Quiet, only the summary's failures and
/// counts.
pub struct Terminal {
    quiet: bool,
    style: Style,
    run: i64,
    names: Vec<String>,
    /// The longest stage name, in characters.
    width: usize,
    prefixes: Option<Vec<String>>,
    splitters: Vec<LineSplitter>,
    results: Vec<Option<(Outcome, Option<Duration>)>>,
    /// The order of the summary: plan order, with joined stages after their generator.
    order: Vec<usize>,
    /// Which stage generated each joined stage.
    joined_by: std::collections::HashMap<usize, usize>,
    out: BufWriter<std::io::Stdout>,
    /// Set once stdout is gone (a closed pipe): the run goes on without it.
    out_closed: bool,
    mode: ProgressMode,
    progress: Option<Box<Progress>>,
    /// What history could not record, for the summary.
    unrecorded: Unrecorded,
}

const PREFIX_COLORS: [&str; 6] = ["36", "33", "35", "32", "34", "31"];

impl Terminal {
    /// The view; `mode` says how progress shows (nothing with `quiet`).
    pub fn new(quiet: bool, mode: ProgressMode) -> Self {
        Terminal {
            quiet,
            style: Style::for_stdout(),
            run: 0,
            names: Vec::new(),
            width: 0,
            prefixes: None,
            splitters: Vec::new(),
            results: Vec::new(),
            order: Vec::new(),
            joined_by: std::collections::HashMap::new(),
            out: BufWriter::with_capacity(64 * 1024, std::io::stdout()),
            out_closed: false,
            mode: if quiet {
                ProgressMode::None
            } else {
                mode.resolve()
            },
            progress: None,
            unrecorded: Unrecorded::default(),
        }
    }

    /// Writes a warning line on stderr now, after the output so far and around progress bars.
    pub fn warn(&mut self, line: &str) {
        self.flush();
        let write = || {
            let _ = std::io::stderr().write_all(line.as_bytes());
        };
        match &self.progress {
            Some(progress) => progress.suspend(write),
            None => write(),
        }
    }

    pub fn unrecorded(&mut self, unrecorded: Unrecorded) {
        self.unrecorded = unrecorded;
    }

    /// Moves progress along between events.
    pub fn tick(&mut self) {
        if let Some(progress) = &mut self.progress {
            progress.tick();
        }
    }

    pub fn event(&mut self, event: &Event) {
        match event {
            Event::RunStarted(info) => {
                self.run = info.id;
                if self.mode != ProgressMode::None {
                    self.progress = Some(Box::new(Progress::new(self.mode, info)));
                }
                self.names = info.stages.iter().map(|(name, _)| name.clone()).collect();
                self.results = vec![None; self.names.len()];
                self.order = (0..self.names.len()).collect();
                self.splitters = self.names.iter().map(|_| LineSplitter::default()).collect();
                self.width = self
                    .names
                    .iter()
                    .map(|n| n.chars().count())
                    .max()
                    .unwrap_or(0);
                if info.parallel {
                    let width = self.width;
                    let prefixes = self
                        .names
                        .iter()
                        .enumerate()
                        .map(|(i, name)| {
                            let padded = format!("{name:<width$} | ");
                            self.style
                                .paint(PREFIX_COLORS[i % PREFIX_COLORS.len()], &padded)
                        })
                        .collect();
                    self.prefixes = Some(prefixes);
                }
            }
            Event::StagesJoined(joined) => {
                // The summary shows them right after what generated them (and after what it
                // generated before).
                let at = match joined.generator {
                    Some(generator) => {
                        let mut at = self
                            .order
                            .iter()
                            .position(|&i| i == generator)
                            .map_or(self.order.len(), |p| p + 1);
                        while at < self.order.len()
                            && self.joined_by.get(&self.order[at]) == Some(&generator)
                        {
                            at += 1;
                        }
                        at
                    }
                    None => self.order.len(),
                };
                for (offset, stage) in joined.stages.iter().enumerate() {
                    let index = self.names.len();
                    self.order.insert(at + offset, index);
                    if let Some(generator) = joined.generator {
                        self.joined_by.insert(index, generator);
                    }
                    self.names.push(stage.name.clone());
                    self.results.push(None);
                    self.splitters.push(LineSplitter::default());
                    self.width = self.width.max(stage.name.chars().count());
                    if let Some(prefixes) = &mut self.prefixes {
                        let padded = format!("{:<width$} | ", stage.name, width = self.width);
                        prefixes.push(
                            self.style
                                .paint(PREFIX_COLORS[index % PREFIX_COLORS.len()], &padded),
                        );
                    }
                }
                if let Some(progress) = &mut self.progress {
                    progress.joined(joined);
                }
            }
            Event::Output { stage, bytes } => {
                if self.quiet || self.out_closed {
                    return;
                }
                if self.prefixes.is_some() {
                    self.write_prefixed(*stage, Some(bytes));
                } else {
                    self.write(bytes);
                }
            }
            Event::StageFinished {
                stage,
                outcome,
                duration,
                ..
            } => {
                if self.prefixes.is_some() && !self.quiet {
                    self.write_prefixed(*stage, None);
                }
                self.results[*stage] = Some((*outcome, *duration));
                if self.progress.is_some() {
                    // The stage's output lands before the line saying it ended.
                    self.flush();
                }
                if let Some(progress) = &mut self.progress {
                    progress.finished(*stage, *outcome, *duration);
                }
            }
            Event::RunFinished {
                status, duration, ..
            } => {
                self.flush();
                if let Some(progress) = &mut self.progress {
                    progress.finish();
                }
                self.summary(*status, *duration);
            }
            Event::StageStarted { stage, .. } => {
                // Output so far lands before the line saying the stage started.
                self.flush();
                if let Some(progress) = &mut self.progress {
                    progress.started(*stage);
                }
            }
        }
    }

    /// Writes the complete lines of `bytes` (or, at the stage's end, its unfinished last
    /// line) with the stage's prefix.
    fn write_prefixed(&mut self, stage: usize, bytes: Option<&[u8]>) {
        let Some(prefixes) = &self.prefixes else {
            return;
        };
        let prefix = prefixes[stage].as_bytes();
        let mut out = Vec::with_capacity(bytes.map_or(0, <[u8]>::len) + 64);
        let mut emit = |line: &[u8]| {
            out.extend_from_slice(prefix);
            out.extend_from_slice(line);
            out.push(b'\n');
        };
        match bytes {
            Some(bytes) => self.splitters[stage].push(bytes, &mut emit),
            None => self.splitters[stage].finish(&mut emit),
        }
        self.write(&out);
    }

    fn write(&mut self, bytes: &[u8]) {
        if !self.out_closed && self.out.write_all(bytes).is_err() {
            self.out_closed = true;
        }
    }

    pub fn flush(&mut self) {
        if self.out_closed {
            return;
        }
        let out = &mut self.out;
        let flushed = match &self.progress {
            Some(progress) => progress.suspend(|| out.flush()),
            None => out.flush(),
        };
        if flushed.is_err() {
            self.out_closed = true;
        }
    }

    fn summary(&self, status: RunStatus, duration: Duration) {
        let painter = Style::for_stderr();
        let width = self.width;
        let mut text = String::new();
        let mut first_failure = None;
        for &index in &self.order {
            let name = &self.names[index];
            let Some((outcome, duration)) = self.results[index] else {
                continue;
            };
            let (word, code, detail) = match outcome {
                Outcome::Passed => ("passed", "32", String::new()),
                Outcome::Cached { from } => ("cached", "32", format!("reuses run {from}")),
                Outcome::Failed {
                    exit_code: Some(code),
                    ..
                } => ("failed", "1;31", format!("exit code {code}")),
                Outcome::Failed {
                    signal: Some(signal),
                    ..
                } => ("failed", "1;31", format!("killed by signal {signal}")),
                Outcome::Failed { .. } => ("failed", "1;31", "could not start".to_string()),
                Outcome::TimedOut { limit, idle: false } => (
                    "timed out",
                    "1;31",
                    format!("@timeout {}", humantime::format_duration(limit)),
                ),
                Outcome::TimedOut { limit, idle: true } => (
                    "timed out",
                    "1;31",
                    format!("no output for {}", humantime::format_duration(limit)),
                ),
                Outcome::Skipped { because } => (
                    "skipped",
                    "33",
                    format!("{} did not pass", self.names[because]),
                ),
                Outcome::Cancelled => ("cancelled", "33", String::new()),
                Outcome::Stopped => ("stopped", "33", "by gzl stop".to_string()),
            };
            let failure = matches!(outcome, Outcome::Failed { .. } | Outcome::TimedOut { .. });
            if failure {
                first_failure.get_or_insert(name.as_str());
            }
            // Quiet: the failures, and the counts below for the rest.
            if self.quiet && !failure {
                continue;
            }
            let took = duration.map(format_duration).unwrap_or_default();
            let word = painter.paint(code, &format!("{word:<9}"));
            let line = format!("  {word} {name:<width$}  {took:>7}  {detail}");
            text.push_str(line.trim_end());
            text.push('\n');
        }
        let count = |wanted: fn(&Outcome) -> bool| {
            self.results
                .iter()
                .flatten()
                .filter(|(o, _)| wanted(o))
                .count()
        };
        let passed = count(|o| *o == Outcome::Passed);
        let cached = count(|o| matches!(o, Outcome::Cached { .. }));
        // "2 cached", not "0 passed, 2 cached", when nothing had to run.
        let mut parts = Vec::new();
        if passed > 0 || cached == 0 {
            parts.push(format!("{passed} passed"));
        }
        for (label, n) in [
            ("cached", cached),
            ("failed", count(|o| matches!(o, Outcome::Failed { .. }))),
            (
                "timed out",
                count(|o| matches!(o, Outcome::TimedOut { .. })),
            ),
            ("skipped", count(|o| matches!(o, Outcome::Skipped { .. }))),
            ("cancelled", count(|o| *o == Outcome::Cancelled)),
            ("stopped", count(|o| *o == Outcome::Stopped)),
        ] {
            if n > 0 {
                parts.push(format!("{n} {label}"));
            }
        }
        let code = if status == RunStatus::Passed && self.unrecorded.is_empty() {
            "1;32"
        } else {
            "1;31"
        };
        // How the stages ended is true; a run history does not hold as such must not read as
        // recorded.
        let word = if self.unrecorded.end {
            format!("{status}, not recorded")
        } else {
            status.to_string()
        };
        text.push_str(&format!(
            "{} {}: {} in {}\n",
            painter.paint("1", &format!("run {}", self.run)),
            painter.paint(code, &word),
            parts.join(", "),
            format_duration(duration)
        ));
        if !self.unrecorded.is_empty() {
            text.push_str(&format!("  {}\n", self.unrecorded));
        }
        if let Some(stage) = first_failure {
            text.push_str(&format!("  see its log: gzl logs {} {stage}\n", self.run));
        }
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}
