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

    pub fn flush(&mut self) {
        match self {
            View::Terminal(view) => view.flush(),
            View::Json(view) => view.flush(),
            View::Silent => {}
        }
    }
}
