//! ANSI styling for terminal output, or none: on a TTY and without `NO_COLOR` only.

/// Paints text with ANSI escapes when enabled.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    enabled: bool,
}

impl Style {
    pub fn new(enabled: bool) -> Self {
        Style { enabled }
    }

    /// Colour for a stream, decided by whether it is a terminal and by `NO_COLOR`.
    pub fn for_stream(is_terminal: bool) -> Self {
        Style::new(is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
    }

    pub fn for_stderr() -> Self {
        use std::io::IsTerminal as _;
        Style::for_stream(std::io::stderr().is_terminal())
    }

    pub fn for_stdout() -> Self {
        use std::io::IsTerminal as _;
        Style::for_stream(std::io::stdout().is_terminal())
    }

    pub fn enabled(self) -> bool {
        self.enabled
    }

    /// `text` wrapped in the SGR `code` (such as `1;31`).
    pub fn paint(self, code: &str, text: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn error(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    pub fn accent(self, text: &str) -> String {
        self.paint("1;34", text)
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// Names as messages show them: each in backticks, separated by commas.
pub fn quoted<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{}`", name.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}
