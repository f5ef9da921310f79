//! Turns the parse tree into validated stages, collecting every problem of the file.

use std::collections::{HashMap, HashSet};
use std::path::{Component, PathBuf};

use pest::Parser as _;
use pest::iterators::Pair;

use super::diagnostic::{Lines, SHOWN};
use super::stage::{Attributes, KNOWN_ATTRIBUTES, Stage};
use super::{Diagnostic, Span};
use crate::cache::Matcher;
use crate::config::Clean;
use crate::duration::parse_duration;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/gzl.pest"]
struct GzlParser;

/// Parses and checks a Gzlfile's text: the stages in file order, or every problem found.
/// `elsewhere` names stages defined outside the text (the Gzlfile, for stages a stage
/// generates): the text may need them, and must not define them again.
pub fn analyze(source: &str, elsewhere: &[&str]) -> Result<Vec<Stage>, Vec<Diagnostic>> {
    let file = match GzlParser::parse(Rule::file, source) {
        Ok(mut pairs) => pairs.next().map(Pair::into_inner),
        Err(error) => return Err(vec![syntax_error(&error)]),
    };
    let mut analyzer = Analyzer {
        diagnostics: Vec::new(),
        stages: Vec::new(),
    };
    let lines = Lines::new(source);
    let mut current: Option<Draft> = None;
    // After a line that should have been a header, its body is not reported again.
    let mut after_bad_line = false;
    // The column-0 comment lines seen last, one after the other: a stage's description when
    // the stage's header follows them directly.
    let mut comments: Vec<(usize, &str)> = Vec::new();
    for pair in file.into_iter().flatten() {
        match pair.as_rule() {
            Rule::comment_line => {
                let line = lines.number(pair.as_span().start());
                if comments.last().is_some_and(|&(last, _)| last + 1 != line) {
                    comments.clear();
                }
                comments.push((line, pair.as_str()));
            }
            Rule::stage_header => {
                if let Some(draft) = current.take() {
                    analyzer.finish(draft);
                }
                let mut draft = Draft::from_header(pair, &lines);
                if comments.last().is_some_and(|&(last, _)| last + 1 == draft.line) {
                    draft.description = description(&comments);
                }
                comments.clear();
                current = Some(draft);
                after_bad_line = false;
            }
            Rule::body_line => match current.as_mut() {
                Some(draft) => draft.lines.push(BodyLine::from_pair(pair, source, &lines)),
                None if after_bad_line => {}
                // An indented `# comment` above the first stage is a comment still, as make
                // reads it; only text there is a mistake.
                None if pair.as_str().trim_start().starts_with('#') => {}
                None => analyzer.diagnostics.push(
                    Diagnostic::new("indented line outside of any stage", span_of(&pair))
                        .label("no stage header above this line")
                        .help("a stage starts with an unindented header such as `build:`; remove the indentation if this was meant as one"),
                ),
            },
            Rule::bad_line => {
                let in_stage = current.is_some();
                analyzer.diagnostics.push(bad_line(&pair, in_stage));
                if let Some(draft) = current.take() {
                    analyzer.finish(draft);
                }
                after_bad_line = true;
            }
            _ => {}
        }
    }
    if let Some(draft) = current.take() {
        analyzer.finish(draft);
    }
    analyzer.check_graph(elsewhere);
    if analyzer.diagnostics.is_empty() {
        Ok(analyzer
            .stages
            .into_iter()
            .map(|(stage, _)| stage)
            .collect())
    } else {
        analyzer.diagnostics.sort_by_key(|d| d.span.start);
        Err(analyzer.diagnostics)
    }
}

/// Whether `name` may name a stage: letters, digits, `_`, then also `-` and `.`.
pub fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The closest of `candidates` to `name` (the first of the closest), if any is close enough to
/// be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name_chars: Vec<char> = name.chars().collect();
    let mut candidate_chars = Vec::new();
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let close_enough = (name.len().max(candidate.len()) / 3).max(1);
        // Only a closer candidate than the best so far is of interest.
        let limit = match best {
            Some((0, _)) => break,
            Some((distance, _)) => close_enough.min(distance - 1),
            None => close_enough,
        };
        candidate_chars.clear();
        candidate_chars.extend(candidate.chars());
        if let Some(distance) = distance_within(&name_chars, &candidate_chars, limit) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// The edit distance between `a` and `b`, counting a swap of neighbours as one edit (optimal
/// string alignment), or `None` when it is above `limit`, which is found out early.
fn distance_within(a: &[char], b: &[char], limit: usize) -> Option<usize> {
    // The difference in length is a lower bound, and cheap.
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    // Three rows of the table: two rows up, the row above, and this one.
    let mut before = vec![0; b.len() + 1];
    let mut above: Vec<usize> = (0..=b.len()).collect();
    let mut row = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        row[0] = i;
        for j in 1..=b.len() {
            let substitution = above[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut distance = substitution.min(above[j] + 1).min(row[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                distance = distance.min(before[j - 2] + 1);
            }
            row[j] = distance;
        }
        std::mem::swap(&mut before, &mut above);
        std::mem::swap(&mut above, &mut row);
        // No entry of later rows is below the smallest of the last two.
        let smallest = |row: &[usize]| row.iter().copied().min().unwrap_or(0);
        if smallest(&above) > limit && smallest(&before) > limit {
            return None;
        }
    }
    let distance = above[b.len()];
    (distance <= limit).then_some(distance)
}

/// A stage's description from the comment lines right above its header: each line without its
/// `#` and the spaces around the text, the lines joined by `\n`; `None` when all are empty.
fn description(comments: &[(usize, &str)]) -> Option<String> {
    let text: Vec<&str> = comments
        .iter()
        .map(|(_, comment)| comment.trim_start_matches('#').trim())
        .collect();
    let first = text.iter().position(|line| !line.is_empty())?;
    let last = text.iter().rposition(|line| !line.is_empty())?;
    Some(text[first..=last].join("\n"))
}

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let span = pair.as_span();
    span.start()..span.end()
}

fn syntax_error(error: &pest::error::Error<Rule>) -> Diagnostic {
    let at = match error.location {
        pest::error::InputLocation::Pos(pos) => pos..pos,
        pest::error::InputLocation::Span((start, end)) => start..end,
    };
    Diagnostic::new(format!("syntax error: {}", error.variant.message()), at)
}

fn bad_line(pair: &Pair<'_, Rule>, in_stage: bool) -> Diagnostic {
    // A bad line holds no line break; a lone `\r` in it is shown (escaped), not dropped.
    let text = pair.as_str();
    let span = span_of(pair);
    let diagnostic = Diagnostic::new(
        format!("expected a stage header, found `{}`", truncate(text, 40)),
        span,
    );
    if let Some((name, _)) = text.split_once(':') {
        let name = name.trim_end();
        if !is_valid_stage_name(name) {
            return diagnostic
                .label("not a valid stage name")
                .help("stage names use letters, digits, `_`, `-` and `.`, and start with a letter, digit or `_`");
        }
        return diagnostic
            .label("stage headers are `name: needs...`")
            .help("put a space between the `:` and each stage this one needs");
    }
    if text.contains('=') {
        return diagnostic
            .label("not a stage header")
            .help("gzl has no variables; set environment variables with `@env KEY=VALUE` in a stage's body");
    }
    if in_stage {
        return diagnostic
            .label("not indented, so not part of the stage above")
            .help("indent the lines of a stage's body with spaces or tabs");
    }
    let first_word = text.split_whitespace().next().unwrap_or_default();
    if is_valid_stage_name(first_word) && text.split_whitespace().all(is_valid_stage_name) {
        return diagnostic
            .label("no `:` after the stage name")
            .help(format!(
                "a stage header is the name, a colon, then what it needs: `{first_word}:`"
            ));
    }
    diagnostic.label("not a stage header").help(
        "a Gzlfile is a list of stages: a header such as `test: build`, then an indented body",
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// A stage as written, before its body is checked.
struct Draft<'a> {
    name: &'a str,
    name_span: Span,
    line: usize,
    needs: Vec<(&'a str, Span)>,
    lines: Vec<BodyLine<'a>>,
    description: Option<String>,
}

impl<'a> Draft<'a> {
    fn from_header(pair: Pair<'a, Rule>, lines: &Lines<'_>) -> Self {
        let line = lines.number(pair.as_span().start());
        let mut inner = pair.into_inner();
        let name = inner.next().expect("the grammar gives every header a name");
        let needs = inner.map(|need| (need.as_str(), span_of(&need))).collect();
        Draft {
            name: name.as_str(),
            name_span: span_of(&name),
            line,
            needs,
            lines: Vec::new(),
            description: None,
        }
    }
}

/// One indented line of a body.
struct BodyLine<'a> {
    line: usize,
    indent: &'a str,
    indent_span: Span,
    /// The text after the indentation, without a trailing `\r`.
    text: &'a str,
    text_span: Span,
    /// Set when the line parsed as `@name value`.
    attribute: Option<AttributeLine<'a>>,
}

struct AttributeLine<'a> {
    name: &'a str,
    name_span: Span,
    value: &'a str,
    value_span: Span,
}

impl<'a> BodyLine<'a> {
    fn from_pair(pair: Pair<'a, Rule>, source: &'a str, lines: &Lines<'_>) -> Self {
        let line = lines.number(pair.as_span().start());
        let mut inner = pair.into_inner();
        let indent = inner
            .next()
            .expect("the grammar gives every body line an indent");
        let content = inner
            .next()
            .expect("the grammar gives every body line content");
        let content_span = span_of(&content);
        let text = source[content_span.clone()].trim_end_matches('\r');
        let text_span = content_span.start..content_span.start + text.len();
        let attribute = (content.as_rule() == Rule::attribute).then(|| {
            let mut parts = content.into_inner();
            let name = parts
                .next()
                .expect("the grammar gives every attribute a name");
            let (value, value_span) = match parts.next() {
                Some(value) => {
                    let raw = value.as_str();
                    let trimmed = raw.trim_end();
                    let start = value.as_span().start();
                    (trimmed, start..start + trimmed.len())
                }
                None => ("", text_span.end..text_span.end),
            };
            AttributeLine {
                name: name.as_str(),
                name_span: span_of(&name),
                value,
                value_span,
            }
        });
        BodyLine {
            line,
            indent: indent.as_str(),
            indent_span: span_of(&indent),
            text,
            text_span,
            attribute,
        }
    }

    fn is_comment(&self) -> bool {
        self.text.starts_with('#')
    }
}

/// What a stage's attributes gave so far, to report what is given twice.
#[derive(Default)]
struct Given<'a> {
    /// The line of each attribute that may be given once.
    attributes: HashMap<&'a str, usize>,
    /// The variables `@env` set.
    env: HashSet<&'a str>,
    /// The secrets `@secret` named.
    secrets: HashSet<&'a str>,
}

struct Analyzer {
    diagnostics: Vec<Diagnostic>,
    /// Stages with the spans of their needs, for the graph checks.
    stages: Vec<(Stage, Vec<Span>)>,
}

impl<'a> Analyzer {
    fn finish(&mut self, draft: Draft<'a>) {
        let mut lines = draft.lines;
        self.check_indentation(draft.name, &mut lines);

        let mut attributes = Attributes::default();
        let mut given = Given::default();
        let mut script_lines: Vec<String> = Vec::new();
        let mut first_line = None;
        let base_len = lines.first().map_or(0, |l| l.indent.len());
        for line in &lines {
            if script_lines.is_empty() {
                if let Some(attribute) = &line.attribute {
                    self.attribute(attribute, line, &mut attributes, &mut given);
                    continue;
                }
                // Comments above the attributes (or above the script) are the Gzlfile's.
                if line.is_comment() {
                    continue;
                }
                if line.text.starts_with('@') {
                    self.diagnostics.push(
                        Diagnostic::new(
                            format!("malformed attribute `{}`", truncate(line.text, 40)),
                            line.text_span.clone(),
                        )
                        .label("expected `@name` or `@name value`")
                        .help(format!("known attributes: {}", known_attributes())),
                    );
                    continue;
                }
            }
            let first = *first_line.get_or_insert(line.line);
            // Blank lines and column-0 comments between body lines come back as empty lines,
            // so heredocs and Python bodies keep their shape.
            while first + script_lines.len() < line.line {
                script_lines.push(String::new());
            }
            let relative_indent = line.indent.get(base_len..).unwrap_or("");
            script_lines.push(format!("{relative_indent}{}", line.text));
        }

        let script = if script_lines.is_empty() {
            if let Some(first) = lines.iter().find(|line| line.text.starts_with('@')) {
                self.diagnostics.push(
                    Diagnostic::new(format!("stage `{}` has attributes but no script", draft.name), first.text_span.clone())
                        .label("has no effect on a group")
                        .help("a stage without script lines only gathers the stages it needs; add a script or remove the attributes"),
                );
            }
            None
        } else {
            let mut script = script_lines.join("\n");
            script.push('\n');
            Some(script)
        };

        let mut needs = Vec::new();
        let mut need_spans = Vec::new();
        let mut listed = HashSet::new();
        for (need, span) in draft.needs {
            if !is_valid_stage_name(need) {
                self.diagnostics.push(
                    Diagnostic::new(format!("`{need}` is not a valid stage name"), span)
                        .label("needed here")
                        .help("stage names use letters, digits, `_`, `-` and `.`; separate needed stages with spaces"),
                );
            } else if listed.insert(need) {
                needs.push(need.to_string());
                need_spans.push(span);
            }
        }
        self.stages.push((
            Stage {
                name: draft.name.to_string(),
                name_span: draft.name_span,
                line: draft.line,
                description: draft.description,
                needs,
                attributes,
                script,
                script_line: first_line.unwrap_or(0),
            },
            need_spans,
        ));
    }

    /// Body lines must start with the first line's indentation and not mix tabs and spaces.
    /// Comment lines that break the rule are dropped instead: they were never script.
    fn check_indentation(&mut self, stage: &str, lines: &mut Vec<BodyLine<'a>>) {
        let Some(base) = lines.first().map(|l| l.indent) else {
            return;
        };
        let base_char = base.chars().next().unwrap_or(' ');
        let kind = |c: char| if c == '\t' { "tabs" } else { "spaces" };
        let mut reported_mix = false;
        lines.retain(|line| {
            let mixed = line.indent.chars().any(|c| c != base_char);
            let shallower = !line.indent.starts_with(base);
            if !mixed && !shallower {
                return true;
            }
            if line.is_comment() {
                return false;
            }
            if mixed {
                if !reported_mix {
                    reported_mix = true;
                    self.diagnostics.push(
                        Diagnostic::new(format!("the body of `{stage}` mixes tabs and spaces"), line.indent_span.clone())
                            .label(format!("this indentation mixes in {}", kind(if base_char == '\t' { ' ' } else { '\t' })))
                            .help(format!("the body's first line is indented with {}; indent every line of the body the same way", kind(base_char))),
                    );
                }
            } else {
                self.diagnostics.push(
                    Diagnostic::new(format!("line indented less than the start of the body of `{stage}`"), line.indent_span.clone())
                        .label("less indented than the body's first line")
                        .help("indent every line of a body at least as deeply as its first line"),
                );
            }
            true
        });
    }

    fn attribute(
        &mut self,
        attribute: &AttributeLine<'a>,
        line: &BodyLine<'a>,
        attributes: &mut Attributes,
        given: &mut Given<'a>,
    ) {
        let name = attribute.name;
        let value = attribute.value;
        let value_span = attribute.value_span.clone();
        if !KNOWN_ATTRIBUTES.contains(&name) {
            let help = match suggest(name, KNOWN_ATTRIBUTES) {
                Some(known) => format!(
                    "did you mean `@{known}`? known attributes: {}",
                    known_attributes()
                ),
                None if name == "echo" => format!(
                    "gzl does not echo script lines, so make's `@` prefix is not needed; known attributes: {}",
                    known_attributes()
                ),
                None => format!("known attributes: {}", known_attributes()),
            };
            self.diagnostics.push(
                Diagnostic::new(
                    format!("unknown attribute `@{name}`"),
                    attribute.name_span.clone(),
                )
                .label("not an attribute gzl knows")
                .help(help),
            );
            return;
        }
        if name != "env"
            && name != "secret"
            && let Some(first) = given.attributes.insert(name, line.line)
        {
            self.diagnostics.push(
                Diagnostic::new(
                    format!("`@{name}` is given twice"),
                    attribute.name_span.clone(),
                )
                .label("second time here")
                .help(format!("first given on line {first}; keep one")),
            );
            return;
        }
        if name == "generates" {
            if value.is_empty() {
                attributes.generates = true;
            } else {
                self.diagnostics.push(
                    Diagnostic::new("`@generates` takes no value", value_span)
                        .label("not expected here")
                        .help("write `@generates` alone; the stage's output on stdout is the Gzlfile text it generates"),
                );
            }
            return;
        }
        if value.is_empty() {
            let example = match name {
                "timeout" | "idle-timeout" => "a duration such as `90s`, `10m` or `1h30m`",
                "env" => "`KEY=VALUE`",
                "shell" => "a program and its arguments, such as `python3` or `bash -eux`",
                "when" => "the paths the stage reads, such as `src/** Cargo.toml`",
                "outputs" => {
                    "the paths the stage leaves for the stages after it, such as `node_modules` or `dist/*.js`"
                }
                "clean" => "`all` (remove ignored files too) or `untracked`",
                "secret" => "the name of a secret, such as `DEPLOY_TOKEN`",
                _ => "a path relative to the repository root",
            };
            self.diagnostics.push(
                Diagnostic::new(
                    format!("`@{name}` needs a value"),
                    attribute.name_span.clone(),
                )
                .label("missing value")
                .help(format!("write {example} after `@{name}`")),
            );
            return;
        }
        match name {
            "timeout" | "idle-timeout" => match parse_duration(value).filter(|d| !d.is_zero()) {
                Some(duration) if name == "timeout" => attributes.timeout = Some(duration),
                Some(duration) => attributes.idle_timeout = Some(duration),
                None => self.diagnostics.push(
                    Diagnostic::new(format!("invalid duration `{value}`"), value_span)
                        .label("not a duration")
                        .help("write a whole number and a unit, above zero, largest unit first: `500ms`, `90s`, `10m`, `1h30m`, `2d`"),
                ),
            },
            "env" => self.env(value, value_span, attributes, &mut given.env),
            "shell" => match shlex::split(value) {
                Some(words) if !words.is_empty() => attributes.shell = Some(words),
                _ => self.diagnostics.push(
                    Diagnostic::new(format!("cannot split `{value}` into a program and arguments"), value_span)
                        .label("unbalanced quotes")
                        .help("quote arguments the way a POSIX shell would"),
                ),
            },
            "when" => self.when(value, value_span, attributes),
            "outputs" => self.outputs(value, value_span, attributes),
            "secret" => {
                if crate::secrets::check_name(value).is_err() {
                    self.diagnostics.push(
                        Diagnostic::new(format!("`{value}` is not a secret name"), value_span)
                            .label("not a variable name")
                            .help("name one secret per `@secret` line, in letters, digits and `_`, such as `@secret DEPLOY_TOKEN`"),
                    );
                } else if !given.secrets.insert(value) {
                    self.diagnostics.push(
                        Diagnostic::new(format!("secret `{value}` is named twice"), value_span)
                            .label("named again here")
                            .help("keep one `@secret` line for it"),
                    );
                } else {
                    attributes.secrets.push(value.to_string());
                }
            }
            "clean" => match value {
                "all" => attributes.clean = Some(Clean::All),
                "untracked" => attributes.clean = Some(Clean::Untracked),
                _ => self.diagnostics.push(
                    Diagnostic::new(format!("`@clean {value}` is not a way to clean"), value_span)
                        .label("expected `all` or `untracked`")
                        .help("`@clean all` starts from a pristine tree; `@clean untracked` (the default) keeps ignored build output"),
                ),
            },
            _ => self.dir(value, value_span, attributes),
        }
    }

    fn when(&mut self, value: &str, span: Span, attributes: &mut Attributes) {
        let mut patterns = Vec::new();
        let mut offset = 0;
        for word in value.split_whitespace() {
            let at = offset + value[offset..].find(word).unwrap_or(0);
            offset = at + word.len();
            let escapes = word
                .trim_start_matches('!')
                .trim_start_matches('/')
                .starts_with("../")
                || word.split('/').any(|part| part == "..");
            if escapes || !Matcher::is_valid(word) {
                self.diagnostics.push(
                    Diagnostic::new(format!("`{word}` is not a path pattern gzl can use"), span.start + at..span.start + offset)
                        .label(if escapes { "leaves the repository" } else { "not a pattern" })
                        .help("write gitignore-style patterns relative to the repository root, such as `src/**`, `*.md` or `!docs/**`"),
                );
                return;
            }
            patterns.push(word.to_string());
        }
        attributes.when = Some(patterns);
    }

    fn outputs(&mut self, value: &str, span: Span, attributes: &mut Attributes) {
        let mut patterns = Vec::new();
        let mut offset = 0;
        for word in value.split_whitespace() {
            let at = offset + value[offset..].find(word).unwrap_or(0);
            offset = at + word.len();
            if let Err(reason) = crate::outputs::check_pattern(word) {
                self.diagnostics.push(
                    Diagnostic::new(format!("`{word}` is not an output gzl can keep"), span.start + at..span.start + offset)
                        .label(reason)
                        .help("write paths or globs relative to the stage's directory, such as `node_modules`, `.venv` or `dist/*.js`"),
                );
                return;
            }
            patterns.push(word.to_string());
        }
        attributes.outputs = Some(patterns);
    }

    fn env(
        &mut self,
        value: &'a str,
        span: Span,
        attributes: &mut Attributes,
        set: &mut HashSet<&'a str>,
    ) {
        let Some((key, val)) = value.split_once('=') else {
            self.diagnostics.push(
                Diagnostic::new(format!("`@env {value}` has no value"), span)
                    .label("expected `KEY=VALUE`")
                    .help(format!("write `@env {value}=...`")),
            );
            return;
        };
        let valid_key = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            self.diagnostics.push(
                Diagnostic::new(
                    format!("invalid environment variable name `{key}`"),
                    span.start..span.start + key.len(),
                )
                .label("not a variable name")
                .help("names use letters, digits and `_`, and do not start with a digit"),
            );
            return;
        }
        if !set.insert(key) {
            self.diagnostics.push(
                Diagnostic::new(
                    format!("`{key}` is set twice in this stage"),
                    span.start..span.start + key.len(),
                )
                .label("set again here")
                .help(format!(
                    "an earlier `@env` line sets `{key}` already; keep one"
                )),
            );
            return;
        }
        attributes.env.push((key.to_string(), val.to_string()));
    }

    fn dir(&mut self, value: &str, span: Span, attributes: &mut Attributes) {
        let path = PathBuf::from(value);
        let escapes = path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if escapes {
            self.diagnostics.push(
                Diagnostic::new(format!("`@dir {value}` leaves the repository"), span)
                    .label("absolute, or uses `..`")
                    .help("give a directory relative to the repository root, such as `@dir web` or `@dir crates/core`"),
            );
            return;
        }
        attributes.dir = Some(path);
    }

    /// Duplicate stages, unknown needs and cycles.
    fn check_graph(&mut self, elsewhere: &[&str]) {
        let elsewhere: HashSet<&str> = elsewhere.iter().copied().collect();
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        for (stage, _) in &self.stages {
            if elsewhere.contains(&stage.name.as_str()) {
                self.diagnostics.push(
                    Diagnostic::new(
                        format!("stage `{}` is already defined in the Gzlfile", stage.name),
                        stage.name_span.clone(),
                    )
                    .label("defined again here")
                    .help("generate stages under names the Gzlfile does not use"),
                );
            } else if let Some(first) = first_seen.get(stage.name.as_str()) {
                self.diagnostics.push(
                    Diagnostic::new(
                        format!("stage `{}` is defined twice", stage.name),
                        stage.name_span.clone(),
                    )
                    .label("defined again here")
                    .help(format!(
                        "first defined on line {first}; rename or merge one of them"
                    )),
                );
            } else {
                first_seen.insert(&stage.name, stage.line);
            }
        }
        let index: HashMap<&str, usize> = self
            .stages
            .iter()
            .enumerate()
            .rev()
            .map(|(i, (stage, _))| (stage.name.as_str(), i))
            .collect();
        let mut edges: Vec<Vec<(usize, Span)>> = vec![Vec::new(); self.stages.len()];
        // A suggestion compares a name with every stage, so only as many names are looked up
        // as diagnostics are shown; the first unknown needs in the file get them, which are
        // the ones shown, as diagnostics are shown in file order.
        let mut suggestions: HashMap<&str, Option<&str>> = HashMap::new();
        for (i, (stage, spans)) in self.stages.iter().enumerate() {
            for (need, span) in stage.needs.iter().zip(spans) {
                if let Some(&target) = index.get(need.as_str()) {
                    edges[i].push((target, span.clone()));
                    continue;
                }
                if elsewhere.contains(&need.as_str()) {
                    continue;
                }
                let suggestion = match suggestions.get(need.as_str()) {
                    Some(&suggestion) => suggestion,
                    None if suggestions.len() < SHOWN => {
                        let names = self.stages.iter().map(|(s, _)| s.name.as_str());
                        let suggestion = suggest(need, names);
                        suggestions.insert(need, suggestion);
                        suggestion
                    }
                    None => None,
                };
                let help = match suggestion {
                    Some(known) => format!("did you mean `{known}`?"),
                    None => format!(
                        "define a stage `{need}:`, or remove it from what `{}` needs",
                        stage.name
                    ),
                };
                self.diagnostics.push(
                    Diagnostic::new(format!("unknown stage `{need}`"), span.clone())
                        .label(format!(
                            "needed by `{}` but not defined in this Gzlfile",
                            stage.name
                        ))
                        .help(help),
                );
            }
        }
        for cycle in find_cycles(&edges) {
            let name = |node: usize| self.stages[node].0.name.as_str();
            let mut names: Vec<&str> = cycle.head.iter().map(|&node| name(node)).collect();
            if cycle.length > cycle.head.len() + cycle.tail.len() {
                names.push("…");
            }
            names.extend(cycle.tail.iter().map(|&node| name(node)));
            names.push(name(cycle.head[0]));
            let length = if names.contains(&"…") {
                format!(" ({} stages)", cycle.length)
            } else {
                String::new()
            };
            self.diagnostics.push(
                Diagnostic::new(format!("dependency cycle: {}{length}", names.join(" -> ")), cycle.closing)
                    .label("this need closes the cycle")
                    .help("a stage cannot need itself, directly or through other stages; remove one of these needs"),
            );
        }
    }
}

fn known_attributes() -> String {
    KNOWN_ATTRIBUTES.map(|a| format!("@{a}")).join(", ")
}

/// A cycle in the graph of needs: its first and last stages (all of them when it is short),
/// how many stages it has, and the span of the need that closes it. A long cycle is kept
/// abbreviated, so that a file with many long cycles stays linear to check.
struct Cycle {
    head: Vec<usize>,
    tail: Vec<usize>,
    length: usize,
    closing: Span,
}

/// Stages kept at each end of a long cycle.
const CYCLE_ENDS: usize = 3;

/// One cycle for each need that closes one in a depth-first walk of the graph. Each of them
/// is a different cycle, since the stages on the walk's path are in the same order for as long
/// as they stay on it.
fn find_cycles(edges: &[Vec<(usize, Span)>]) -> Vec<Cycle> {
    /// Where a node is: not reached yet, on the walk's path (at this depth), or done.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath(usize),
        Done,
    }
    let mut marks = vec![Mark::New; edges.len()];
    let mut cycles = Vec::new();
    for root in 0..edges.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // Iterative depth-first search: (node, next edge to follow); `path` holds the nodes
        // from the root.
        let mut stack = vec![(root, 0)];
        let mut path = vec![root];
        marks[root] = Mark::OnPath(0);
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some((target, span)) = edges[node].get(*next) {
                *next += 1;
                match marks[*target] {
                    Mark::New => {
                        marks[*target] = Mark::OnPath(path.len());
                        path.push(*target);
                        stack.push((*target, 0));
                    }
                    Mark::OnPath(depth) => {
                        let on_cycle = &path[depth..];
                        let short = on_cycle.len() <= 2 * CYCLE_ENDS + 1;
                        let (head, tail) = if short {
                            (on_cycle, &[][..])
                        } else {
                            (
                                &on_cycle[..CYCLE_ENDS],
                                &on_cycle[on_cycle.len() - CYCLE_ENDS..],
                            )
                        };
                        cycles.push(Cycle {
                            head: head.to_vec(),
                            tail: tail.to_vec(),
                            length: on_cycle.len(),
                            closing: span.clone(),
                        });
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                stack.pop();
                path.pop();
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggest_finds_typos_and_swaps_but_not_other_names() {
        assert_eq!(suggest("biuld", ["test", "build"]), Some("build"));
        assert_eq!(suggest("timout", KNOWN_ATTRIBUTES), Some("timeout"));
        assert_eq!(suggest("ab", ["ac", "ad", "ab"]), Some("ab"));
        assert_eq!(suggest("ab", ["ac", "ad"]), Some("ac"));
        assert_eq!(suggest("deploy", ["build", "test"]), None);
    }

    // Each stage of a chain needing the first made a cycle as long as the chain: quadratic
    // time, memory and output.
    /// Stage descriptions are what `gzl check` lists, as `just --list` lists recipes' comments.
    #[test]
    fn the_comment_right_above_a_header_describes_the_stage() {
        let source = "\
# The file's own comment

# Build the binary
build:
    cargo build
    # a comment in the body, not about `test`
test: build
    cargo test
# Checks the style,
#   strictly
#
lint:
    cargo clippy
# Not about `all`: a blank line follows

all: test lint
";
        let stages = analyze(source, &[]).unwrap();
        let descriptions: Vec<_> = stages
            .iter()
            .map(|stage| (stage.name.as_str(), stage.description.as_deref()))
            .collect();
        assert_eq!(
            descriptions,
            [
                ("build", Some("Build the binary")),
                ("test", None),
                ("lint", Some("Checks the style,\nstrictly")),
                ("all", None),
            ]
        );
        // A body's script is not changed by the comment that follows it.
        assert_eq!(stages[1].script.as_deref(), Some("cargo test\n"));
    }

    #[test]
    fn long_dependency_cycles_are_abbreviated() {
        let chain: String = (0..3_000)
            .map(|i| format!("s{i}: s{} s0\n  true\n", i + 1))
            .collect();
        let diagnostics = analyze(&format!("{chain}s3000:\n  true\n"), &[]).unwrap_err();
        assert_eq!(diagnostics.len(), 3_000);
        assert_eq!(
            diagnostics[6].message,
            "dependency cycle: s0 -> s1 -> s2 -> s3 -> s4 -> s5 -> s6 -> s0"
        );
        assert_eq!(
            diagnostics[2_999].message,
            "dependency cycle: s0 -> s1 -> s2 -> … -> s2997 -> s2998 -> s2999 -> s0 (3000 stages)"
        );
    }

    #[test]
    fn distance_within_is_the_optimal_string_alignment_distance() {
        let words = [
            "", "a", "ab", "ba", "abc", "ca", "build", "biuld", "test-1", "tset-12", "é日x",
        ];
        for a in words {
            for b in words {
                let expected = strsim::osa_distance(a, b);
                let (a_chars, b_chars): (Vec<char>, Vec<char>) =
                    (a.chars().collect(), b.chars().collect());
                for limit in 0..8 {
                    assert_eq!(
                        distance_within(&a_chars, &b_chars, limit),
                        (expected <= limit).then_some(expected),
                        "{a:?} {b:?} within {limit}"
                    );
                }
            }
        }
    }
}
