//! Where a shell's error lines point: bash and sh name the script file they run and a line of
//! it (`/…/scripts/6b53…: line 1: foo: command not found`, dash: `/…/scripts/6b53…: 1: …`).
//! That file is gzl's stored copy of a stage's body, shared by every stage with the same text,
//! so the line is rewritten, in the stage's output as it is read, to the place people edit:
//! `Gzlfile:12 (test): foo: command not found`.
//!
//! Only a line that starts with the script's path, then `: line N: ` or `: N: `, is rewritten,
//! and only for a line of the script: a program that prints the path (`echo $0`) is left as it
//! is. A chunk ending in what may be the start of such a line holds it back until the next
//! chunk says; other output passes at once.

/// Where a stage's script comes from, for its shell's error lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptOrigin {
    /// The script file, as the shell was given it.
    pub script: String,
    /// What names the script's source: `Gzlfile`, or for a generated stage, its generator's
    /// output.
    pub file: String,
    /// The line of `file` the script's first line is.
    pub first_line: usize,
    /// How many lines the script has.
    pub lines: usize,
    pub stage: String,
}

impl ScriptOrigin {
    /// What a shell's `SCRIPT: line N: ` becomes. The line after the last is where bash finds
    /// the end of a script that ends too early (`unexpected end of file`): the last line.
    fn label(&self, line: usize) -> Option<String> {
        (1..=self.lines + 1).contains(&line).then(|| {
            format!(
                "{}:{} ({}): ",
                self.file,
                self.first_line + line.min(self.lines) - 1,
                self.stage
            )
        })
    }
}

/// Rewrites the shell's error lines of one stage's output.
#[derive(Debug)]
pub struct Relabeler {
    origin: Option<ScriptOrigin>,
    /// The start of a line not shown yet: it may be the start of an error line.
    held: Vec<u8>,
    /// Whether the next byte read starts a line.
    line_start: bool,
}

/// What the bytes at the start of a line are.
enum Prefix {
    /// An error line's prefix, `len` bytes long, and its replacement.
    Error { len: usize, label: String },
    /// May become one: more bytes are needed.
    Partial,
    /// Not an error line.
    Other,
}

impl Relabeler {
    pub fn new(origin: Option<ScriptOrigin>) -> Self {
        Relabeler {
            origin,
            held: Vec::new(),
            line_start: true,
        }
    }

    /// The bytes of `bytes` (after what was held back) that can be shown now, rewritten.
    /// Output is searched for the script's path (a vectorised search); only where it starts a
    /// line is more looked at, so ordinary output costs next to nothing.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        let Some(origin) = &self.origin else {
            return bytes.to_vec();
        };
        let data: std::borrow::Cow<'_, [u8]> = match self.held.is_empty() {
            true => bytes.into(),
            false => {
                let mut data = std::mem::take(&mut self.held);
                data.extend_from_slice(bytes);
                data.into()
            }
        };
        let starts_line = |at: usize| match at {
            0 => self.line_start,
            _ => data[at - 1] == b'\n',
        };
        let mut shown = Vec::with_capacity(data.len());
        let mut done = 0;
        for at in memchr::memmem::find_iter(&data, origin.script.as_bytes()) {
            if at < done || !starts_line(at) {
                continue;
            }
            match prefix(origin, &data[at..]) {
                Prefix::Error { len, label } => {
                    shown.extend_from_slice(&data[done..at]);
                    shown.extend_from_slice(label.as_bytes());
                    done = at + len;
                }
                Prefix::Partial => {
                    shown.extend_from_slice(&data[done..at]);
                    self.held = data[at..].to_vec();
                    self.line_start = true;
                    return shown;
                }
                Prefix::Other => {}
            }
        }
        // The last line may be the start of the script's path.
        let last_line = memchr::memrchr(b'\n', &data[done..]).map_or(done, |nl| done + nl + 1);
        let tail = &data[last_line..];
        let keep = match !tail.is_empty() && starts_line(last_line) {
            true if matches!(prefix(origin, tail), Prefix::Partial) => last_line,
            _ => data.len(),
        };
        shown.extend_from_slice(&data[done..keep]);
        self.held = data[keep..].to_vec();
        self.line_start = match self.held.is_empty() {
            true => data.last().map_or(self.line_start, |&last| last == b'\n'),
            false => true,
        };
        shown
    }

    /// What was held back, as it is: the output ended, or gzl writes a line of its own (after
    /// which a line starts).
    pub fn finish(&mut self) -> Vec<u8> {
        self.line_start = true;
        std::mem::take(&mut self.held)
    }
}

/// Whether `line` (the rest of the output from a line's start) starts with an error line's
/// prefix: `SCRIPT: line N: ` (bash, also as sh) or `SCRIPT: N: ` (dash).
fn prefix(origin: &ScriptOrigin, line: &[u8]) -> Prefix {
    let script = origin.script.as_bytes();
    if line.len() < script.len() {
        return match script.starts_with(line) {
            true => Prefix::Partial,
            false => Prefix::Other,
        };
    }
    if !line.starts_with(script) {
        return Prefix::Other;
    }
    let mut rest = &line[script.len()..];
    let mut len = script.len();
    for expected in [&b": "[..], b"line "] {
        let common = rest.len().min(expected.len());
        if rest[..common] != expected[..common] {
            // `line ` is optional (dash); `: ` is not.
            if expected == b"line " {
                break;
            }
            return Prefix::Other;
        }
        if common < expected.len() {
            return Prefix::Partial;
        }
        rest = &rest[common..];
        len += common;
    }
    // A line number, then `: `; ten digits is more lines than any script has.
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == rest.len() {
        return match digits <= 10 {
            true => Prefix::Partial,
            false => Prefix::Other,
        };
    }
    if digits == 0 || digits > 10 {
        return Prefix::Other;
    }
    let after = &rest[digits..];
    match after {
        [b':'] => return Prefix::Partial,
        [b':', b' ', ..] => {}
        _ => return Prefix::Other,
    }
    let number = std::str::from_utf8(&rest[..digits])
        .ok()
        .and_then(|n| n.parse::<usize>().ok());
    match number.and_then(|n| origin.label(n)) {
        Some(label) => Prefix::Error {
            len: len + digits + 2,
            label,
        },
        None => Prefix::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::{Relabeler, ScriptOrigin};

    fn relabeler() -> Relabeler {
        Relabeler::new(Some(ScriptOrigin {
            script: "/h/scripts/6b53".into(),
            file: "Gzlfile".into(),
            first_line: 12,
            lines: 3,
            stage: "test".into(),
        }))
    }

    fn through(relabeler: &mut Relabeler, chunks: &[&str]) -> String {
        let mut shown = Vec::new();
        for chunk in chunks {
            shown.extend(relabeler.push(chunk.as_bytes()));
        }
        shown.extend(relabeler.finish());
        String::from_utf8(shown).unwrap()
    }

    #[test]
    fn bash_and_dash_error_lines_name_the_gzlfile_line() {
        let text = "ok\n/h/scripts/6b53: line 1: foo: command not found\n/h/scripts/6b53: 3: bar: not found\n";
        assert_eq!(
            through(&mut relabeler(), &[text]),
            "ok\nGzlfile:12 (test): foo: command not found\nGzlfile:14 (test): bar: not found\n"
        );
    }

    #[test]
    fn an_error_line_split_across_reads_is_rewritten_whole() {
        let text = "/h/scripts/6b53: line 2: x\n";
        for split in 1..text.len() {
            let (a, b) = text.split_at(split);
            assert_eq!(
                through(&mut relabeler(), &[a, b]),
                "Gzlfile:13 (test): x\n",
                "split at {split}"
            );
        }
    }

    #[test]
    fn anything_else_passes_as_it_is() {
        for text in [
            "/h/scripts/6b53\n",
            "/h/scripts/6b53: line 5: past the script\n",
            "/h/scripts/6b53: line x: y\n",
            "/h/scripts/6b53 is $0\n",
            "see /h/scripts/6b53: line 1: not at a line start\n",
            "/h/scripts/6b5",
            "/h/scripts/6b53: line 1",
        ] {
            assert_eq!(through(&mut relabeler(), &[text]), text);
        }
        let mut none = Relabeler::new(None);
        assert_eq!(
            through(&mut none, &["/h/scripts/6b53: line 1: x\n"]),
            "/h/scripts/6b53: line 1: x\n"
        );
    }

    #[test]
    fn only_a_possible_error_line_is_held_back() {
        let mut relabeler = relabeler();
        assert_eq!(relabeler.push(b"progress /h/"), b"progress /h/");
        assert_eq!(relabeler.push(b"\n/h/scr"), b"\n");
        assert_eq!(
            relabeler.push(b"ipts/6b53: 2: e\n"),
            b"Gzlfile:13 (test): e\n"
        );
    }
}
