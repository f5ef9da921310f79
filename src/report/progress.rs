//! Progress on the terminal while a run goes on: bars on a TTY (indicatif), or a line per
//! stage start and end elsewhere.
//!
//! Bars: a line per running stage with its elapsed time and, when history knows the stage's
//! median duration, a bar towards it; and an overall line with stages done of all and the
//! time the run has left, along the graph's longest remaining path of medians.

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::duration::format_duration;
use crate::exec::{Joined, Outcome, RunInfo};

/// How a run's progress shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, else lines.
    Auto,
    /// Bars, redrawn in place on stderr.
    Bars,
    /// A line on stderr as each stage starts and ends.
    Plain,
    /// Nothing but the stages' output and the summary.
    None,
}

impl ProgressMode {
    /// `Auto` made definite for this process.
    pub fn resolve(self) -> Self {
        use std::io::IsTerminal as _;
        match self {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bars,
            ProgressMode::Auto => ProgressMode::Plain,
            mode => mode,
        }
    }
}

#[derive(Clone, Copy)]
enum State {
    Pending,
    Running(Instant),
    Done,
}

pub(super) struct Progress {
    mode: ProgressMode,
    names: Vec<String>,
    needs: Vec<Vec<usize>>,
    expected: Vec<Option<Duration>>,
    states: Vec<State>,
    width: usize,
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    bars: Vec<Option<ProgressBar>>,
}

impl Progress {
    pub(super) fn new(mode: ProgressMode, info: &RunInfo) -> Self {
        let names: Vec<String> = info.stages.iter().map(|(n, _)| n.clone()).collect();
        let needs = info
            .stages
            .iter()
            .map(|(_, needs)| {
                needs
                    .iter()
                    .filter_map(|need| names.iter().position(|n| n == need))
                    .collect()
            })
            .collect();
        let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
        let (multi, overall) = if mode == ProgressMode::Bars {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(names.len() as u64));
            overall.set_style(
                ProgressStyle::with_template("{spinner} {pos}/{len} stages  {elapsed}  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            overall.enable_steady_tick(Duration::from_millis(120));
            (Some(multi), Some(overall))
        } else {
            (None, None)
        };
        let progress = Progress {
            mode,
            expected: info.expected.clone(),
            states: vec![State::Pending; names.len()],
            bars: names.iter().map(|_| None).collect(),
            names,
            needs,
            width,
            multi,
            overall,
        };
        progress.update_overall();
        progress
    }

    /// Runs `write` with the bars out of the way, so output lands above them.
    pub(super) fn suspend<R>(&self, write: impl FnOnce() -> R) -> R {
        match &self.multi {
            Some(multi) => multi.suspend(write),
            None => write(),
        }
    }

    /// Takes stages a `@generates` stage joined to the run.
    pub(super) fn joined(&mut self, joined: &Joined) {
        for stage in &joined.stages {
            self.names.push(stage.name.clone());
            let needs = stage
                .needs
                .iter()
                .filter_map(|need| self.names.iter().position(|n| n == need))
                .collect();
            self.needs.push(needs);
            self.expected.push(stage.expected);
            self.states.push(State::Pending);
            self.bars.push(None);
            self.width = self.width.max(stage.name.chars().count());
        }
        if let Some(overall) = &self.overall {
            overall.set_length(self.names.len() as u64);
        }
        self.update_overall();
    }

    pub(super) fn started(&mut self, stage: usize) {
        self.states[stage] = State::Running(Instant::now());
        match self.mode {
            ProgressMode::Plain => eprintln_quiet(&format!("gzl: start `{}`", self.names[stage])),
            ProgressMode::Bars => {
                let Some(multi) = &self.multi else { return };
                let width = self.width;
                let bar = match self.expected[stage] {
                    Some(expected) => {
                        let bar = multi.add(ProgressBar::new(millis(expected).max(1)));
                        bar.set_style(
                            ProgressStyle::with_template(&format!(
                                "  {{prefix:{width}}} [{{bar:24}}] {{elapsed:>4}} / ~{{msg}}"
                            ))
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                        );
                        bar.set_message(format_duration(expected));
                        bar
                    }
                    None => {
                        let bar = multi.add(ProgressBar::new_spinner());
                        bar.set_style(
                            ProgressStyle::with_template(&format!(
                                "  {{prefix:{width}}} {{spinner}} {{elapsed:>4}}"
                            ))
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        );
                        bar
                    }
                };
                bar.set_prefix(self.names[stage].clone());
                bar.enable_steady_tick(Duration::from_millis(120));
                self.bars[stage] = Some(bar);
            }
            ProgressMode::Auto | ProgressMode::None => {}
        }
        self.update_overall();
    }

    pub(super) fn finished(&mut self, stage: usize, outcome: Outcome, took: Option<Duration>) {
        self.states[stage] = State::Done;
        if self.mode == ProgressMode::Plain && !matches!(outcome, Outcome::Cached { .. }) {
            let took = took
                .map(|d| format!(" in {}", format_duration(d)))
                .unwrap_or_default();
            eprintln_quiet(&format!(
                "gzl: end `{}`: {}{took}",
                self.names[stage],
                outcome.status()
            ));
        }
        if let Some(bar) = self.bars[stage].take() {
            bar.finish_and_clear();
            if let Some(multi) = &self.multi {
                multi.remove(&bar);
            }
        }
        if let Some(overall) = &self.overall {
            overall.inc(1);
        }
        self.update_overall();
    }

    /// Moves the bars of running stages along.
    pub(super) fn tick(&mut self) {
        for (stage, bar) in self.bars.iter().enumerate() {
            if let (Some(bar), State::Running(at)) = (bar, self.states[stage])
                && let Some(length) = bar.length()
            {
                bar.set_position(millis(at.elapsed()).min(length.saturating_sub(1)));
            }
        }
        self.update_overall();
    }

    /// Clears the bars before the summary.
    pub(super) fn finish(&mut self) {
        for bar in self.bars.iter_mut().filter_map(Option::take) {
            bar.finish_and_clear();
        }
        if let Some(overall) = self.overall.take() {
            overall.finish_and_clear();
        }
    }

    fn update_overall(&self) {
        let Some(overall) = &self.overall else { return };
        match self.time_left().filter(|left| !left.is_zero()) {
            Some(left) => overall.set_message(format!("about {} left", format_duration(left))),
            // Unknown, or past what the medians say: no guess.
            None => overall.set_message(""),
        }
    }

    /// The longest path of medians through what is left; `None` when a stage on it has no
    /// median yet.
    fn time_left(&self) -> Option<Duration> {
        let mut finish: Vec<Duration> = Vec::with_capacity(self.names.len());
        for stage in 0..self.names.len() {
            let weight = match self.states[stage] {
                State::Done => Duration::ZERO,
                State::Running(at) => self.expected[stage]?.saturating_sub(at.elapsed()),
                State::Pending => self.expected[stage]?,
            };
            let after = self.needs[stage]
                .iter()
                .filter_map(|&need| finish.get(need).copied())
                .max()
                .unwrap_or_default();
            finish.push(after + weight);
        }
        finish.into_iter().max()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A line on stderr; a closed stderr is no reason to fail.
fn eprintln_quiet(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}
