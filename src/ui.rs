//! `gzl ui`: a full-screen view of this repository's runs (ratatui): runs grouped by commit
//! on the left, the selected run's stages in the middle, the selected stage's log on the
//! right. It reads history and the logs twice a second, so running runs move on their own.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, ListState, Paragraph, Wrap};

use crate::duration::format_duration;
use crate::error::Error;
use crate::history::{History, RunRecord, StageRecord};
use crate::status::{RunStatus, StageStatus};

/// How often history and logs are read again.
const REFRESH: Duration = Duration::from_millis(500);
/// The most runs listed.
const RUNS: usize = 100;
/// The most log lines kept for the log pane.
const LOG_LINES: usize = 5000;

/// Which pane keys move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Runs,
    Stages,
    Log,
}

/// What the caller does after a key: gzl's own commands run outside the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Quit,
    Stop { run: i64 },
    Debug { run: i64, stage: String },
    Rerun { commit: String },
}

/// The state of the UI.
pub struct App {
    pub runs: Vec<RunRecord>,
    pub stages: Vec<StageRecord>,
    /// The selected stage's log, last lines.
    pub log: Vec<String>,
    /// The run whose log `log` is, when the selected stage is cached and reuses it.
    pub log_from: Option<i64>,
    /// An action waiting for the user to confirm it with `y`.
    pub confirm: Option<Action>,
    pub run: usize,
    pub stage: usize,
    pub pane: Pane,
    /// The log pane shows its end and keeps up with it.
    pub follow: bool,
    /// Lines up from the end of the log when not following.
    pub scroll: usize,
    /// A line for the footer: what the last action did.
    pub message: String,
    /// Subjects of commits, by id.
    pub subjects: std::collections::HashMap<String, String>,
    /// The text being typed after `/`, while searching.
    pub typing: Option<String>,
    /// The last text searched for in the log.
    pub search: String,
    /// Each stage's median duration in this repository, by name.
    pub medians: std::collections::HashMap<String, Duration>,
    /// The runs that had finished when `medians` was read: they change only when one ends.
    medians_of: Vec<i64>,
}

impl App {
    pub fn new() -> Self {
        App {
            runs: Vec::new(),
            stages: Vec::new(),
            log: Vec::new(),
            log_from: None,
            confirm: None,
            run: 0,
            stage: 0,
            pane: Pane::Runs,
            follow: true,
            scroll: 0,
            message: String::new(),
            subjects: std::collections::HashMap::new(),
            typing: None,
            search: String::new(),
            medians: std::collections::HashMap::new(),
            medians_of: Vec::new(),
        }
    }

    /// Reads the runs, the selected run's stages and the selected stage's log again.
    pub fn refresh(&mut self, history: &History, identity: &str) -> Result<(), Error> {
        let selected = self.runs.get(self.run).map(|r| r.id);
        self.runs = history.runs(Some(identity), RUNS)?;
        let finished: Vec<i64> = self
            .runs
            .iter()
            .filter(|run| run.finished_at.is_some())
            .map(|run| run.id)
            .collect();
        if finished != self.medians_of {
            self.medians = history.median_durations(identity)?;
            self.medians_of = finished;
        }
        // Keep the same run selected as new runs come in above it.
        if let Some(id) = selected {
            self.run = self.runs.iter().position(|r| r.id == id).unwrap_or(0);
        }
        self.run = self.run.min(self.runs.len().saturating_sub(1));
        self.stages = match self.runs.get(self.run) {
            Some(run) => history.stages(run.id)?,
            None => Vec::new(),
        };
        self.stage = self.stage.min(self.stages.len().saturating_sub(1));
        // A cached stage did not run: its output is that of the run it reuses.
        let (log_path, from) = match self.stages.get(self.stage) {
            Some(stage) => match (stage.status, stage.cached_from) {
                (StageStatus::Cached, Some(from)) => (
                    history
                        .stage(from, &stage.name)?
                        .and_then(|reused| reused.log_path),
                    Some(from),
                ),
                _ => (stage.log_path.clone(), None),
            },
            None => (None, None),
        };
        self.log = log_path.map(tail).unwrap_or_default();
        self.log_from = from;
        Ok(())
    }

    /// Handles a key; returns what the caller must do, if anything.
    pub fn key(&mut self, code: KeyCode) -> Option<Action> {
        if let Some(action) = self.confirm.take() {
            if code == KeyCode::Char('y') {
                return Some(action);
            }
            self.message = "not stopped".into();
            return None;
        }
        if let Some(typed) = &mut self.typing {
            match code {
                KeyCode::Enter => {
                    self.search = std::mem::take(typed);
                    self.typing = None;
                    self.find_next();
                }
                KeyCode::Esc => self.typing = None,
                KeyCode::Backspace => {
                    typed.pop();
                }
                KeyCode::Char(c) => typed.push(c),
                _ => {}
            }
            return None;
        }
        match code {
            KeyCode::Char('/') => {
                self.pane = Pane::Log;
                self.typing = Some(String::new());
            }
            KeyCode::Char('n') => self.find_next(),
            KeyCode::Char('q') | KeyCode::Esc => return Some(Action::Quit),
            KeyCode::Down | KeyCode::Char('j') => self.move_by(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_by(-1),
            KeyCode::Tab | KeyCode::Right | KeyCode::Char('l') | KeyCode::Enter => {
                self.pane = match self.pane {
                    Pane::Runs => Pane::Stages,
                    Pane::Stages | Pane::Log => Pane::Log,
                };
            }
            KeyCode::BackTab | KeyCode::Left | KeyCode::Char('h') => {
                self.pane = match self.pane {
                    Pane::Log => Pane::Stages,
                    Pane::Stages | Pane::Runs => Pane::Runs,
                };
            }
            KeyCode::Char('f') => {
                self.follow = !self.follow;
                self.scroll = 0;
            }
            KeyCode::Char('s') => {
                // Stopping cannot be undone, and `s` is one key away from others: ask.
                let run = self.runs.get(self.run)?;
                if run.status == RunStatus::Running {
                    self.message = format!("stop run {}? y/n", run.id);
                    self.confirm = Some(Action::Stop { run: run.id });
                } else {
                    self.message = format!("run {} is not running", run.id);
                }
            }
            KeyCode::Char('d') => {
                let run = self.runs.get(self.run)?;
                let stage = self.stages.get(self.stage)?;
                return Some(Action::Debug {
                    run: run.id,
                    stage: stage.name.clone(),
                });
            }
            KeyCode::Char('r') => {
                let commit = self.runs.get(self.run)?.commit.clone()?;
                return Some(Action::Rerun { commit });
            }
            _ => {}
        }
        None
    }

    /// Scrolls the log to the next line above the one shown at the bottom that holds the
    /// search text, wrapping around to the end.
    fn find_next(&mut self) {
        if self.search.is_empty() || self.log.is_empty() {
            return;
        }
        let bottom = self
            .log
            .len()
            .saturating_sub(if self.follow { 0 } else { self.scroll });
        let above = (0..bottom.saturating_sub(1)).rev();
        let wrapped = (bottom.saturating_sub(1)..self.log.len()).rev();
        if let Some(line) = above
            .chain(wrapped)
            .find(|&i| self.log[i].contains(&self.search))
        {
            self.follow = false;
            self.scroll = self.log.len() - (line + 1);
            self.message = format!("/{}: line {}", self.search, line + 1);
        } else {
            self.message = format!("/{}: not found", self.search);
        }
    }

    fn move_by(&mut self, delta: isize) {
        let step =
            |at: usize, len: usize| at.saturating_add_signed(delta).min(len.saturating_sub(1));
        match self.pane {
            Pane::Runs => {
                self.run = step(self.run, self.runs.len());
                self.stage = 0;
            }
            Pane::Stages => self.stage = step(self.stage, self.stages.len()),
            Pane::Log => {
                self.follow = false;
                self.scroll = self.scroll.saturating_add_signed(-delta);
            }
        }
    }

    /// Draws the whole screen.
    pub fn render(&self, frame: &mut Frame<'_>) {
        let [main, footer] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
        let [runs, stages, log] = Layout::horizontal([
            Constraint::Percentage(32),
            Constraint::Percentage(28),
            Constraint::Percentage(40),
        ])
        .areas(main);
        self.render_runs(frame, runs);
        self.render_stages(frame, stages);
        self.render_log(frame, log);
        let keys = "↑↓ move  ←→ pane  f follow  / search  s stop  d debug  r re-run  q quit";
        let text = if let Some(typed) = &self.typing {
            format!("/{typed}")
        } else if self.confirm.is_some() {
            self.message.clone()
        } else if self.message.is_empty() {
            keys.to_string()
        } else {
            format!("{}  |  {keys}", self.message)
        };
        frame.render_widget(
            Paragraph::new(text).style(Style::default().add_modifier(Modifier::REVERSED)),
            footer,
        );
    }

    fn block(&self, title: &str, pane: Pane) -> Block<'static> {
        let style = if self.pane == pane {
            Style::default().fg(Color::Cyan)
        } else {
            Style::default()
        };
        Block::default()
            .borders(Borders::ALL)
            .border_style(style)
            .title(title.to_string())
    }

    fn render_runs(&self, frame: &mut Frame<'_>, area: Rect) {
        let mut items: Vec<ListItem<'_>> = Vec::new();
        let mut selected = None;
        let mut last_commit: Option<&Option<String>> = None;
        for (index, run) in self.runs.iter().enumerate() {
            if last_commit != Some(&run.commit) {
                let header = match &run.commit {
                    Some(commit) => {
                        let subject = self.subjects.get(commit).cloned().unwrap_or_default();
                        format!("{} {subject}", &commit[..commit.len().min(8)])
                    }
                    None => "(no commit)".to_string(),
                };
                items.push(ListItem::new(Line::from(Span::styled(
                    header,
                    Style::default().add_modifier(Modifier::BOLD),
                ))));
                last_commit = Some(&run.commit);
            }
            if index == self.run {
                selected = Some(items.len());
            }
            let counts = &run.stage_counts;
            let line = Line::from(vec![
                Span::raw(format!("  {:>4} ", run.id)),
                Span::styled(format!("{:<9}", run.status.as_str()), run_style(run.status)),
                Span::raw(format!(
                    " {}/{}{}",
                    counts.passed + counts.cached,
                    counts.total,
                    if run.dirty { " +changes" } else { "" }
                )),
            ]);
            items.push(ListItem::new(line));
        }
        let mut state = ListState::default().with_selected(selected);
        frame.render_stateful_widget(
            List::new(items)
                .block(self.block("runs", Pane::Runs))
                .highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
            area,
            &mut state,
        );
    }

    fn render_stages(&self, frame: &mut Frame<'_>, area: Rect) {
        let items: Vec<ListItem<'_>> = self
            .stages
            .iter()
            .map(|stage| {
                let running_for = (stage.status == StageStatus::Running)
                    .then(|| stage.started_at.and_then(|at| at.elapsed().ok()))
                    .flatten();
                let took = match (running_for, self.medians.get(&stage.name)) {
                    // Running: how long so far, and how long it usually takes.
                    (Some(elapsed), Some(median)) => format!(
                        "{} / ~{}",
                        format_duration(elapsed),
                        format_duration(*median)
                    ),
                    (Some(elapsed), None) => format_duration(elapsed),
                    (None, _) => stage.duration.map(format_duration).unwrap_or_default(),
                };
                ListItem::new(Line::from(vec![
                    Span::styled(
                        format!("{:<10}", stage.status.as_str()),
                        stage_style(stage.status),
                    ),
                    Span::raw(format!(" {} {took}", stage.name)),
                ]))
            })
            .collect();
        let title = match self.runs.get(self.run) {
            Some(run) => format!("run {}", run.id),
            None => "stages".to_string(),
        };
        let mut state =
            ListState::default().with_selected((!self.stages.is_empty()).then_some(self.stage));
        frame.render_stateful_widget(
            List::new(items)
                .block(self.block(&title, Pane::Stages))
                .highlight_style(Style::default().add_modifier(Modifier::REVERSED)),
            area,
            &mut state,
        );
    }

    fn render_log(&self, frame: &mut Frame<'_>, area: Rect) {
        let height = usize::from(area.height.saturating_sub(2));
        let end = self
            .log
            .len()
            .saturating_sub(if self.follow { 0 } else { self.scroll });
        let start = end.saturating_sub(height);
        let text: Vec<Line<'_>> = self.log[start..end]
            .iter()
            .map(|l| Line::from(l.as_str()))
            .collect();
        let title = match (self.stages.get(self.stage), self.log_from) {
            (Some(stage), Some(from)) => format!("{} (cached: log of run {from})", stage.name),
            (Some(stage), None) if self.follow => format!("{} (following)", stage.name),
            (Some(stage), None) => stage.name.clone(),
            (None, _) => "log".to_string(),
        };
        frame.render_widget(
            Paragraph::new(text)
                .block(self.block(&title, Pane::Log))
                .wrap(Wrap { trim: false }),
            area,
        );
    }
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

fn run_style(status: RunStatus) -> Style {
    Style::default().fg(match status {
        RunStatus::Passed => Color::Green,
        RunStatus::Running => Color::Cyan,
        RunStatus::Failed => Color::Red,
        RunStatus::Cancelled | RunStatus::Stopped | RunStatus::Interrupted => Color::Yellow,
    })
}

fn stage_style(status: StageStatus) -> Style {
    Style::default().fg(match status {
        StageStatus::Passed | StageStatus::Cached => Color::Green,
        StageStatus::Running => Color::Cyan,
        StageStatus::Failed | StageStatus::TimedOut => Color::Red,
        _ => Color::Yellow,
    })
}

/// The last lines of a log file.
fn tail(path: PathBuf) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(LOG_LINES);
    lines[skip..].iter().map(|l| (*l).to_string()).collect()
}

/// Runs the UI until the user quits. `act` performs the actions that leave the UI (stop,
/// debug, re-run) and returns a line for the footer.
pub fn run(
    history: &mut History,
    identity: &str,
    subject: &dyn Fn(&str) -> Option<String>,
    act: &mut dyn FnMut(&Action) -> String,
) -> Result<(), Error> {
    let io = |source| Error::Io {
        message: "the terminal failed".into(),
        source,
    };
    let mut terminal = ratatui::try_init().map_err(io)?;
    let mut app = App::new();
    let result = (|| -> Result<(), Error> {
        let mut refreshed = Instant::now() - REFRESH;
        loop {
            if refreshed.elapsed() >= REFRESH {
                crate::pipeline::settle_interrupted(history)?;
                app.refresh(history, identity)?;
                for run in &app.runs {
                    if let Some(commit) = &run.commit
                        && !app.subjects.contains_key(commit)
                    {
                        let text = subject(commit).unwrap_or_default();
                        app.subjects.insert(commit.clone(), text);
                    }
                }
                refreshed = Instant::now();
            }
            terminal.draw(|frame| app.render(frame)).map_err(io)?;
            if !event::poll(Duration::from_millis(100)).map_err(io)? {
                continue;
            }
            let Event::Key(key) = event::read().map_err(io)? else {
                continue;
            };
            if key.kind != KeyEventKind::Press {
                continue;
            }
            let before = (app.run, app.stage);
            match app.key(key.code) {
                Some(Action::Quit) => return Ok(()),
                // `gzl stop` runs without the terminal: what it prints goes to the footer,
                // not onto the screen the user returns to after quitting.
                Some(action @ Action::Stop { .. }) => {
                    app.message = "stopping…".into();
                    terminal.draw(|frame| app.render(frame)).map_err(io)?;
                    app.message = act(&action);
                    refreshed = Instant::now() - REFRESH;
                }
                Some(action) => {
                    // Commands that take the terminal get it back afterwards.
                    let _ = ratatui::try_restore();
                    app.message = act(&action);
                    terminal = ratatui::try_init().map_err(io)?;
                    // Not `Terminal::clear`, which asks the terminal where its cursor is: a
                    // terminal that does not answer would stop the UI.
                    ratatui::backend::Backend::clear(terminal.backend_mut()).map_err(io)?;
                    refreshed = Instant::now() - REFRESH;
                }
                None if before != (app.run, app.stage) => refreshed = Instant::now() - REFRESH,
                None => {}
            }
        }
    })();
    let _ = ratatui::try_restore();
    result
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::{App, Pane};
    use crate::history::{RunRecord, StageCounts, StageRecord};
    use crate::status::{RunStatus, StageStatus};

    fn run(id: i64, status: RunStatus) -> RunRecord {
        RunRecord {
            id,
            repo: "/src/app".into(),
            commit: Some("4f2a9c1e77d0c0ffee".into()),
            tree: None,
            branch: Some("main".into()),
            dirty: false,
            workspace: None,
            gzlfile_id: String::new(),
            gzl_version: String::new(),
            targets: Vec::new(),
            started_at: SystemTime::now(),
            finished_at: None,
            status,
            pid: 1,
            host: String::new(),
            stage_counts: StageCounts {
                total: 3,
                passed: 1,
                ..StageCounts::default()
            },
            token: String::new(),
        }
    }

    fn stage(position: usize, name: &str, status: StageStatus) -> StageRecord {
        StageRecord {
            position,
            name: name.into(),
            needs: Vec::new(),
            status,
            exit_code: None,
            started_at: None,
            finished_at: None,
            duration: None,
            log_path: None,
            log_size: None,
            key: None,
            inputs: None,
            cached_from: None,
            flaky: false,
            cwd: None,
            env: Vec::new(),
            pid: None,
        }
    }

    /// A run in progress: build passed, test running with output, lint pending.
    fn app() -> App {
        let mut app = App::new();
        app.runs = vec![run(2, RunStatus::Running), run(1, RunStatus::Failed)];
        app.subjects
            .insert("4f2a9c1e77d0c0ffee".into(), "Fix the parser".into());
        app.stages = vec![
            stage(0, "build", StageStatus::Passed),
            stage(1, "test", StageStatus::Running),
            stage(2, "lint", StageStatus::Pending),
        ];
        app.stages[1].started_at = Some(SystemTime::now() - std::time::Duration::from_secs(3));
        app.medians
            .insert("test".into(), std::time::Duration::from_secs(10));
        app.stage = 1;
        app.pane = Pane::Stages;
        app.log = (1..=40).map(|i| format!("test line {i}")).collect();
        app
    }

    fn screen(width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        let app = app();
        terminal.draw(|frame| app.render(frame)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn a_run_in_progress_fits_80_by_24() {
        let screen = screen(80, 24);
        assert!(screen.contains("4f2a9c1e Fix the"), "{screen}");
        assert!(screen.contains("2 running"), "{screen}");
        assert!(screen.contains("running    test 3.0s"), "{screen}");
        assert!(
            screen.contains("test line 40"),
            "the log follows its end:\n{screen}"
        );
        assert!(!screen.contains("test line 1\n"), "{screen}");
        assert!(
            screen.lines().last().unwrap().contains("q quit"),
            "{screen}"
        );
    }

    #[test]
    fn a_run_in_progress_at_200_by_50_shows_more_of_the_log() {
        let screen = screen(200, 50);
        assert!(screen.contains("4f2a9c1e Fix the parser"), "{screen}");
        assert!(screen.contains("test line 40"), "{screen}");
        assert!(
            screen.contains("test line 00") || screen.contains("test line 10"),
            "{screen}"
        );
        assert!(screen.contains("lint"), "{screen}");
        assert!(
            screen.contains("test 3.0s / ~10.0s"),
            "time against the median:\n{screen}"
        );
    }

    #[test]
    fn keys_move_between_panes_and_ask_for_actions() {
        use ratatui::crossterm::event::KeyCode;
        let mut app = app();
        app.pane = Pane::Runs;
        app.key(KeyCode::Char('j'));
        assert_eq!(app.run, 1);
        app.key(KeyCode::Tab);
        assert_eq!(app.pane, Pane::Stages);
        // Run 1 has ended: nothing to stop.
        assert_eq!(app.key(KeyCode::Char('s')), None);
        assert_eq!(app.message, "run 1 is not running");
        assert_eq!(app.key(KeyCode::Char('q')), Some(super::Action::Quit));
    }

    #[test]
    fn stopping_a_run_asks_first() {
        use ratatui::crossterm::event::KeyCode;
        let mut app = app();
        assert_eq!(app.key(KeyCode::Char('s')), None);
        assert_eq!(app.message, "stop run 2? y/n");
        assert_eq!(app.key(KeyCode::Char('n')), None);
        assert_eq!(app.message, "not stopped");
        assert_eq!(app.key(KeyCode::Char('s')), None);
        assert_eq!(
            app.key(KeyCode::Char('y')),
            Some(super::Action::Stop { run: 2 })
        );
    }

    #[test]
    fn search_scrolls_the_log_to_a_match() {
        use ratatui::crossterm::event::KeyCode;
        let mut app = app();
        for code in [KeyCode::Char('/')]
            .into_iter()
            .chain("line 3".chars().map(KeyCode::Char))
            .chain([KeyCode::Enter])
        {
            assert_eq!(app.key(code), None);
        }
        assert!(!app.follow);
        // The match nearest the end is the bottom line shown; `n` goes on to the next one up.
        assert_eq!(app.log[app.log.len() - 1 - app.scroll], "test line 39");
        app.key(KeyCode::Char('n'));
        assert_eq!(app.log[app.log.len() - 1 - app.scroll], "test line 38");
        assert_eq!(app.message, "/line 3: line 38");
    }
}
