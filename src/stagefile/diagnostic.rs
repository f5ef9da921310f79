//! Diagnostics with source spans, rendered the way rustc and just render them:
//!
//! ```text
//! error: unknown stage `biuld`
//!  --> Gzlfile:5:7
//!   |
//! 5 | test: biuld
//!   |       ^^^^^ not defined in this Gzlfile
//!   |
//!   = help: did you mean `build`?
//! ```
//!
//! Spans are byte ranges into the source; lines and columns are computed only here.

use std::fmt::Write as _;
use std::ops::Range;

use crate::style::Style;

/// A byte range in a Gzlfile's source.
pub type Span = Range<usize>;

/// One problem found in a Gzlfile, pointing at the text that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Span,
    pub label: Option<String>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, span: Span) -> Self {
        Self {
            message: message.into(),
            span,
            label: None,
            help: None,
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The 1-based line and column (in characters) where the span starts.
    pub fn line_col(&self, source: &str) -> (usize, usize) {
        let (line_start, line_no) = line_of(source, self.span.start);
        let column = source[line_start..self.span.start.min(source.len())]
            .chars()
            .count()
            + 1;
        (line_no, column)
    }

    /// Renders the diagnostic for a terminal. `path` is shown as given.
    pub fn render(&self, source: &str, path: &str, color: bool) -> String {
        let paint = Style::new(color);
        let start = self.span.start.min(source.len());
        let (line_start, line_no) = line_of(source, start);
        let line_end = source[line_start..]
            .find(['\n', '\r'])
            .map_or(source.len(), |i| line_start + i);
        let line_text = &source[line_start..line_end];
        let end = self.span.end.clamp(start, line_end);

        let column = source[line_start..start].chars().count() + 1;
        let shown = expand_tabs(line_text);
        let caret_offset = expand_tabs(&source[line_start..start]).chars().count();
        let caret_len = expand_tabs(&source[start..end]).chars().count().max(1);
        let gutter = " ".repeat(line_no.to_string().len());

        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}: {}",
            paint.error("error"),
            paint.bold(&self.message)
        );
        let _ = writeln!(
            out,
            "{gutter}{} {path}:{line_no}:{column}",
            paint.accent("-->")
        );
        let _ = writeln!(out, "{gutter} {}", paint.accent("|"));
        let _ = writeln!(
            out,
            "{} {} {shown}",
            paint.accent(&line_no.to_string()),
            paint.accent("|")
        );
        let carets = "^".repeat(caret_len);
        let label = self
            .label
            .as_deref()
            .map(|l| format!(" {l}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{gutter} {} {}{}",
            paint.accent("|"),
            " ".repeat(caret_offset),
            paint.error(&format!("{carets}{label}"))
        );
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{gutter} {}", paint.accent("|"));
            let _ = writeln!(
                out,
                "{gutter} {} {}: {help}",
                paint.accent("="),
                paint.bold("help")
            );
        }
        out
    }
}

/// The byte offset where the line holding `offset` starts, and its 1-based number.
fn line_of(source: &str, offset: usize) -> (usize, usize) {
    let before = &source.as_bytes()[..offset.min(source.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line_no = before.iter().filter(|&&b| b == b'\n').count() + 1;
    (line_start, line_no)
}

fn expand_tabs(text: &str) -> String {
    text.replace('\t', "    ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters_not_bytes() {
        let source = "a:\n  é: x\n";
        let offset = source.find('x').unwrap_or_default();
        let diagnostic = Diagnostic::new("m", offset..offset + 1);
        assert_eq!(diagnostic.line_col(source), (2, 6));
    }

    #[test]
    fn render_points_a_caret_at_the_span() {
        let source = "build:\ntest: biuld\n";
        let offset = source.find("biuld").unwrap_or_default();
        let text = Diagnostic::new("unknown stage `biuld`", offset..offset + 5)
            .label("not defined")
            .help("did you mean `build`?")
            .render(source, "Gzlfile", false);
        assert_eq!(
            text,
            "error: unknown stage `biuld`\n --> Gzlfile:2:7\n  |\n2 | test: biuld\n  |       ^^^^^ not defined\n  |\n  = help: did you mean `build`?\n"
        );
    }
}
