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
//! Spans are byte ranges into the source; lines are those of [`Lines`], the one notion of a
//! line that the analyzer numbers and the renderer shows. Rendering is total: any span on any
//! text renders, and what the text quotes cannot drive a terminal (control characters are
//! shown escaped, as `\r` or `\x1b`).

use std::fmt::Write as _;
use std::ops::Range;

use unicode_width::UnicodeWidthChar as _;

use crate::style::Style;

/// A byte range in a Gzlfile's source.
pub type Span = Range<usize>;

/// How many diagnostics are shown; the rest are only counted, so that a file with thousands
/// of errors stays readable (and cheap to print).
pub const SHOWN: usize = 50;

/// The longest message, label or help kept, in characters: they quote the file's text.
const MAX_TEXT: usize = 300;

/// The widest source line shown, in columns; a longer line is cut to a window around the span.
const MAX_LINE: usize = 120;

/// Columns kept before the span when a line is cut.
const CONTEXT: usize = 40;

/// One problem found in a Gzlfile, pointing at the text that causes it.
///
/// The message, label and help are kept with control characters escaped and cut to a
/// bounded length, since they quote the file's text and are printed as they are.
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
            message: escape_text(&message.into()),
            span,
            label: None,
            help: None,
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(escape_text(&label.into()));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(escape_text(&help.into()));
        self
    }

    /// Renders the diagnostic for a terminal. `path` is shown as given, escaped.
    pub fn render(&self, source: &str, path: &str, color: bool) -> String {
        self.render_in(&Lines::new(source), path, color)
    }

    fn render_in(&self, lines: &Lines<'_>, path: &str, color: bool) -> String {
        let paint = Style::new(color);
        let source = lines.source;
        let start = source.floor_char_boundary(self.span.start);
        let line_no = lines.number(start);
        let text = lines.text(line_no);
        let start = start.clamp(text.start, text.end);
        let end = source
            .floor_char_boundary(self.span.end)
            .clamp(start, text.end);
        let column = source[text.start..start].chars().count() + 1;
        let shown = ShownLine::new(&source[text.clone()], start - text.start, end - text.start);
        let gutter = " ".repeat(line_no.to_string().len());
        let path = escape_text(path);

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
            "{} {} {}",
            paint.accent(&line_no.to_string()),
            paint.accent("|"),
            shown.text
        );
        let carets = "^".repeat(shown.caret_len);
        let label = self
            .label
            .as_deref()
            .map(|l| format!(" {l}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{gutter} {} {}{}",
            paint.accent("|"),
            " ".repeat(shown.caret_offset),
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

/// Renders the first [`SHOWN`] of `diagnostics`, each followed by a blank line, then how many
/// more there are. The caller says how many there are in all.
pub fn render_all(diagnostics: &[Diagnostic], source: &str, path: &str, color: bool) -> String {
    let lines = Lines::new(source);
    let mut out = String::new();
    for diagnostic in diagnostics.iter().take(SHOWN) {
        out.push_str(&diagnostic.render_in(&lines, path, color));
        out.push('\n');
    }
    let more = diagnostics.len().saturating_sub(SHOWN);
    if more > 0 {
        let _ = writeln!(
            out,
            "... and {more} more error{}\n",
            if more == 1 { "" } else { "s" }
        );
    }
    out
}

/// The lines of a Gzlfile's text as the grammar (grammar/gzl.pest) reads them: a line ends at
/// `\n`, and a `\r` right before that `\n` is part of the line break; a lone `\r` is text in
/// its line. The analyzer numbers lines and the renderer shows them with this type only, so
/// the two cannot disagree about where a line ends.
pub struct Lines<'a> {
    source: &'a str,
    /// The byte offset where each line starts.
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub fn new(source: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(
                source
                    .bytes()
                    .enumerate()
                    .filter(|(_, b)| *b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        Lines { source, starts }
    }

    /// The 1-based number of the line holding byte `offset`; an offset past the end is on the
    /// last line.
    pub fn number(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }

    /// The byte range of line `number`'s text, without its line break.
    fn text(&self, number: usize) -> Range<usize> {
        let bytes = self.source.as_bytes();
        let start = self.starts[number.clamp(1, self.starts.len()) - 1];
        let Some(&next) = self.starts.get(number) else {
            // The last line has no line break (a `\r` at the very end is a lone one).
            return start..bytes.len();
        };
        // `next - 1` is the `\n`.
        let mut end = next - 1;
        if end > start && bytes[end - 1] == b'\r' {
            end -= 1;
        }
        start..end
    }
}

/// A source line as shown under the `-->`: control characters escaped, tabs as four spaces,
/// and cut to a window around the span when long; with where the carets go.
struct ShownLine {
    text: String,
    caret_offset: usize,
    caret_len: usize,
}

impl ShownLine {
    /// `start..end` is the span within `line`, on character boundaries.
    fn new(line: &str, start: usize, end: usize) -> Self {
        let (mut start_col, mut end_col, mut total) = (None, None, 0);
        for (i, c) in line.char_indices() {
            if i == start {
                start_col = Some(total);
            }
            if i == end {
                end_col = Some(total);
            }
            total += width(c);
        }
        let start_col = start_col.unwrap_or(total);
        let end_col = end_col.unwrap_or(total);
        let (from, to) = if total <= MAX_LINE {
            (0, total)
        } else {
            let from = start_col.saturating_sub(CONTEXT);
            (from, (from + MAX_LINE).min(total))
        };

        let mut text = String::new();
        if from > 0 {
            text.push('…');
        }
        let mut col = 0;
        for c in line.chars() {
            let w = width(c);
            let (left, right) = (col, col + w);
            col = right;
            if right <= from {
                continue;
            }
            if right > to {
                break;
            }
            if left < from {
                // Cut in two by the window's start: blanks keep the carets in place.
                text.extend(std::iter::repeat_n(' ', right - from));
                continue;
            }
            push_shown(&mut text, c, "    ");
        }
        if to < total {
            text.push('…');
        }
        let prefix = usize::from(from > 0);
        ShownLine {
            text,
            caret_offset: start_col - from + prefix,
            caret_len: (end_col.min(to).saturating_sub(start_col)).max(1),
        }
    }
}

/// The escape a terminal needs for `c` (a tab aside), or `None` when `c` may be printed as it
/// is: control characters (C0, DEL, C1), line and paragraph separators, and the bidirectional controls
/// that can make text read differently from what it is.
fn escape(c: char) -> Option<String> {
    match c {
        '\r' => Some("\\r".into()),
        '\n' => Some("\\n".into()),
        '\0' => Some("\\0".into()),
        _ if c.is_ascii_control() => Some(format!("\\x{:02x}", u32::from(c))),
        '\u{80}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => Some(format!("\\u{{{:x}}}", u32::from(c))),
        _ => None,
    }
}

/// Appends `c` as shown, with a tab written as `tab`.
fn push_shown(out: &mut String, c: char, tab: &str) {
    if c == '\t' {
        out.push_str(tab);
    } else if let Some(escaped) = escape(c) {
        out.push_str(&escaped);
    } else {
        out.push(c);
    }
}

/// The columns `c` takes in a shown source line, where a tab is four spaces.
fn width(c: char) -> usize {
    if c == '\t' {
        4
    } else if let Some(escaped) = escape(c) {
        escaped.len()
    } else {
        c.width().unwrap_or(0)
    }
}

/// `text` with control characters escaped (a tab as `\t`), cut to [`MAX_TEXT`] characters:
/// text from a Gzlfile as it may be shown on a terminal.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT));
    for (count, c) in text.chars().enumerate() {
        if count == MAX_TEXT {
            out.push('…');
            break;
        }
        push_shown(&mut out, c, "\\t");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str, span: Span) -> String {
        Diagnostic::new("m", span)
            .label("here")
            .render(source, "Gzlfile", false)
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

    #[test]
    fn columns_count_characters_not_bytes() {
        let source = "a:\n  é: x\n";
        let offset = source.find('x').unwrap_or_default();
        assert!(render(source, offset..offset + 1).contains("Gzlfile:2:6"));
    }

    // A lone `\r` does not end a line for the parser, so it must not for the renderer either:
    // a span after one made the renderer panic.
    #[test]
    fn a_span_after_a_lone_carriage_return_is_on_the_same_line() {
        let source = "a: x\r y!\n  true\n";
        let text = render(source, 6..8);
        assert!(text.contains("1 | a: x\\r y!\n"), "{text}");
        assert!(text.contains("  |        ^^ here\n"), "{text}");
    }

    #[test]
    fn a_carriage_return_before_a_line_feed_is_part_of_the_line_break() {
        let text = render("a:\r\n  @x\r\n", 5..7);
        assert!(text.contains("2 |   @x\n"), "{text}");
    }

    #[test]
    fn any_span_renders() {
        let sources = ["", "\r", "\n", "\r\n", "é\r\né", "a\tb\x1bc", "日本\r語\n"];
        for source in sources {
            for start in 0..source.len() + 3 {
                for end in 0..source.len() + 3 {
                    #[allow(clippy::reversed_empty_ranges)]
                    let text = render(source, start..end);
                    assert!(text.contains("^ here"), "{source:?} {start}..{end}: {text}");
                }
            }
        }
    }

    #[test]
    fn carets_line_up_under_escapes_tabs_and_wide_characters() {
        let source = "a: \x1b[2J\t日本 x\n";
        let offset = source.find('x').unwrap_or_default();
        let text = render(source, offset..offset + 1);
        let shown = "a: \\x1b[2J    日本 x";
        assert!(text.contains(&format!("1 | {shown}\n")), "{text}");
        // `日本` takes four columns.
        let column = "a: \\x1b[2J    ".len() + 4 + 1;
        assert!(
            text.contains(&format!("  | {}^ here", " ".repeat(column))),
            "{text}"
        );
    }

    #[test]
    fn messages_are_escaped_and_bounded() {
        let diagnostic = Diagnostic::new("`\x1b]0;x\x07\t`", 0..0).help("x".repeat(10_000));
        assert_eq!(diagnostic.message, "`\\x1b]0;x\\x07\\t`");
        assert_eq!(
            diagnostic.help.map(|h| h.chars().count()),
            Some(MAX_TEXT + 1)
        );
    }

    #[test]
    fn a_long_line_is_shown_around_the_span() {
        let source = format!("a: {}bad{}\n", "x ".repeat(5_000), " y".repeat(5_000));
        let offset = source.find("bad").unwrap_or_default();
        let text = render(&source, offset..offset + 3);
        let shown = text.lines().nth(3).unwrap_or_default();
        assert!(shown.chars().count() < MAX_LINE + 10, "{text}");
        let carets = text.lines().nth(4).unwrap_or_default();
        let column = |s: &str, pattern: &str| s.find(pattern).map(|i| s[..i].chars().count());
        assert_eq!(column(shown, "bad"), column(carets, "^"), "{text}");
    }

    #[test]
    fn only_the_first_diagnostics_are_rendered_and_the_rest_counted() {
        let diagnostics = vec![Diagnostic::new("m", 0..1); SHOWN + 7];
        let text = render_all(&diagnostics, "a\n", "Gzlfile", false);
        assert_eq!(text.matches("error: m").count(), SHOWN);
        assert!(text.ends_with("... and 7 more errors\n\n"), "{text}");
    }
}
