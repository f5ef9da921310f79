//! Showing a run to people and programs: the terminal view and the JSON lines stream.
//! Both are subscribers of the executor's events; neither touches history.

mod json;
mod lines;
mod progress;
mod terminal;

pub use json::Json;
pub use progress::ProgressMode;
pub use terminal::Terminal;

use crate::exec::Event;
use crate::history::Unrecorded;

/// Where a run's progress goes while it runs.
pub enum View {
    Terminal(Terminal),
    Json(Json),
    /// Nothing shown: the caller reports the run its own way (`gzl bisect`'s probes).
    Silent,
}

impl View {
    pub fn event(&mut self, event: &Event) {
        match self {
            View::Terminal(view) => view.event(event),
            View::Json(view) => view.event(event),
            View::Silent => {}
        }
    }

    /// Moves progress along; called a few times a second while a run goes on.
    pub fn tick(&mut self) {
        if let View::Terminal(view) = self {
            view.tick();
        }
    }

    /// Tells, on stderr and at once, that gzl failed to record something while the run goes
    /// on (a full disk, too many open files).
    pub fn warn(&mut self, text: &str) {
        let line = format!("gzl: warning: {text}\n");
        match self {
            View::Terminal(view) => view.warn(&line),
            View::Json(_) | View::Silent => {
                use std::io::Write as _;
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    /// What history could not record of the run, given before the run's end so the summary
    /// says it.
    pub fn unrecorded(&mut self, unrecorded: Unrecorded) {
        match self {
            View::Terminal(view) => view.unrecorded(unrecorded),
            View::Json(view) => view.unrecorded(&unrecorded),
            View::Silent => {}
        }
    }

    pub fn flush(&mut self) {
        match self {
            View::Terminal(view) => view.flush(),
            View::Json(view) => view.flush(),
            View::Silent => {}
        }
    }
}
