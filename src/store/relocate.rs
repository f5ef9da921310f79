//! Where stored files name the workspace they were stored from, and how they are moved to
//! another (docs/design/relocation.md).
//!
//! In text, a workspace's path is matched only whole: followed by a byte that cannot
//! continue a file name, or by the end. `/ws/1` is found in `/ws/1/bin/python`,
//! `file:///ws/1` and `-I/ws/1/include`, not in `/ws/10` or `/ws/1.old`. In a binary file
//! every occurrence counts: there what follows a string is whatever the format puts next (a
//! length, a type code), and a binary naming the workspace is refused, so a doubtful match
//! errs on the safe side. Both the path as the run named it and its canonical form (through
//! a symbolic link such as a `/tmp` that is one) are looked for.

use std::path::Path;

use memchr::memmem::Finder;

/// How many bytes from a file's start decide whether it is binary: git's heuristic, a NUL
/// among the first 8000.
const BINARY_PROBE: usize = 8000;

/// A workspace's path in the forms stored files may name it.
pub(super) struct Origin {
    finders: Vec<Finder<'static>>,
    /// The longest form plus one byte: what a chunk keeps of the one before it.
    keep: usize,
}

impl Origin {
    /// `forms` of one path (as named first); none empty.
    pub(super) fn new<'a>(forms: impl IntoIterator<Item = &'a str>) -> Self {
        let finders: Vec<Finder<'static>> = forms
            .into_iter()
            .filter(|form| !form.is_empty())
            .map(|form| Finder::new(form.as_bytes()).into_owned())
            .collect();
        let keep = finders.iter().map(|f| f.needle().len()).max().unwrap_or(0) + 1;
        Origin { finders, keep }
    }

    /// The matches in `window`, non-overlapping, in order, as `(start, length)`. In `text`,
    /// only those followed by a byte that cannot continue a name: with `end` the window ends
    /// the file, otherwise a match that reaches its end is left for later (what follows it
    /// decides). Otherwise every occurrence.
    fn matches(&self, window: &[u8], end: bool, text: bool) -> Vec<(usize, usize)> {
        let mut found: Vec<(usize, usize)> = Vec::new();
        for finder in &self.finders {
            let length = finder.needle().len();
            for start in finder.find_iter(window) {
                let whole = !text
                    || match window.get(start + length) {
                        Some(&next) => !continues_name(next),
                        None => end,
                    };
                if whole {
                    found.push((start, length));
                }
            }
        }
        if self.finders.len() > 1 {
            // Longest first at a start, then drop what overlaps a match kept before it.
            found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            let mut reach = 0;
            found.retain(|&(start, length)| {
                let keep = start >= reach;
                if keep {
                    reach = start + length;
                }
                keep
            });
        }
        found
    }

    /// `bytes` with every match replaced by `root`.
    pub(super) fn rewrite(&self, bytes: &[u8], root: &str) -> Vec<u8> {
        let matches = self.matches(bytes, true, true);
        let mut out = Vec::with_capacity(bytes.len() + matches.len() * root.len());
        let mut at = 0;
        for (start, length) in matches {
            out.extend_from_slice(&bytes[at..start]);
            out.extend_from_slice(root.as_bytes());
            at = start + length;
        }
        out.extend_from_slice(&bytes[at..]);
        out
    }

    /// A link target in the workspace (a form, or below one) moved to `root`; `None` when it
    /// points elsewhere.
    pub(super) fn relink(&self, target: &str, root: &str) -> Option<String> {
        self.finders.iter().find_map(|finder| {
            let form = std::str::from_utf8(finder.needle()).ok()?;
            let rest = target.strip_prefix(form)?;
            (rest.is_empty() || rest.starts_with('/')).then(|| format!("{root}{rest}"))
        })
    }

    /// Whether a link target lies in the workspace.
    pub(super) fn holds_target(&self, target: &str) -> bool {
        self.relink(target, "").is_some()
    }
}

/// Whether `byte` can continue a file name, so that a match followed by it is part of a
/// longer name: `/ws/1` in `/ws/10`, `/ws/1.old`, `/ws/1-b`.
fn continues_name(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(byte, b'.' | b'_' | b'-' | b'+' | b'~' | b'@')
        || byte >= 0x80
}

/// What a file's bytes say about the workspace, read in chunks as they are hashed.
pub(super) struct Scan<'a> {
    origin: &'a Origin,
    /// The last bytes seen (up to `origin.keep`), for matches across chunks.
    tail: Vec<u8>,
    /// How many of the first 8000 bytes were looked at for a NUL.
    probed: usize,
    /// A NUL in the first 8000 bytes (decided in the first chunk, which is larger, when
    /// [`super::Store::put`] reads).
    pub(super) binary: bool,
    /// The file names the workspace.
    pub(super) names: bool,
}

impl<'a> Scan<'a> {
    pub(super) fn new(origin: &'a Origin) -> Self {
        Scan {
            origin,
            tail: Vec::new(),
            probed: 0,
            binary: false,
            names: false,
        }
    }

    /// The next `chunk` of the file; `last` when it ends the file.
    pub(super) fn feed(&mut self, chunk: &[u8], last: bool) {
        if self.probed < BINARY_PROBE {
            let probe = &chunk[..chunk.len().min(BINARY_PROBE - self.probed)];
            self.binary |= memchr::memchr(0, probe).is_some();
            self.probed += probe.len();
        }
        if self.names {
            return;
        }
        let keep = self.origin.keep;
        if !self.tail.is_empty() {
            // Matches that start in the tail and were left for what follows it.
            let head = &chunk[..chunk.len().min(keep)];
            let mut window = Vec::with_capacity(self.tail.len() + head.len());
            window.extend_from_slice(&self.tail);
            window.extend_from_slice(head);
            let end = last && head.len() == chunk.len();
            let tail = self.tail.len();
            if self
                .origin
                .matches(&window, end, !self.binary)
                .iter()
                .any(|&(start, length)| start < tail && start + length >= tail)
            {
                self.names = true;
                return;
            }
        }
        if !self.origin.matches(chunk, last, !self.binary).is_empty() {
            self.names = true;
            return;
        }
        if chunk.len() >= keep {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - keep..]);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
    }
}

/// Whether `path` (`/`-separated, in a stored tree) is CPython byte code compiled from a
/// source that `has_file` says the tree holds: `DIR/__pycache__/NAME.TAG.pyc` from
/// `DIR/NAME.py`.
pub(super) fn bytecode_with_source(path: &str, has_file: impl Fn(&str) -> bool) -> bool {
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    let Some(stem) = name.strip_suffix(".pyc") else {
        return false;
    };
    let (parent, pycache) = dir.rsplit_once('/').unwrap_or(("", dir));
    if pycache != "__pycache__" {
        return false;
    }
    // A module's name holds no dot: what follows the first is the interpreter's tag.
    let Some((module, _tag)) = stem.split_once('.') else {
        return false;
    };
    let source = if parent.is_empty() {
        format!("{module}.py")
    } else {
        format!("{parent}/{module}.py")
    };
    has_file(&source)
}

/// `path` as a store records a workspace: absolute, UTF-8, without a trailing `/`, and not
/// `/` itself (which every absolute path would name).
pub(super) fn workspace_path(path: &Path) -> Option<&str> {
    let text = path.to_str()?;
    let trimmed = text.trim_end_matches('/');
    (path.is_absolute() && !trimmed.is_empty()).then_some(trimmed)
}

#[cfg(test)]
mod tests {
    use super::{Origin, Scan, bytecode_with_source};

    fn names(origin: &Origin, bytes: &[u8], chunk: usize) -> bool {
        let mut scan = Scan::new(origin);
        let mut chunks = bytes.chunks(chunk).peekable();
        if bytes.is_empty() {
            scan.feed(&[], true);
        }
        while let Some(part) = chunks.next() {
            scan.feed(part, chunks.peek().is_none());
        }
        scan.names
    }

    // `/ws/1` must not be found inside `/ws/10` (another workspace of the pool).
    #[test]
    fn the_workspace_matches_only_at_path_boundaries() {
        let origin = Origin::new(["/ws/1"]);
        for (text, expected) in [
            ("#!/ws/1/.venv/bin/python\n", true),
            ("/ws/1", true),
            ("url = file:///ws/1\n", true),
            ("'/ws/1' ", true),
            ("/ws/1:/usr/bin", true),
            ("cflags = -I/ws/1/include", true),
            ("/ws/10/.venv", false),
            ("/ws/1.old/x", false),
            ("/ws/1-b", false),
            ("/ws/1_b", false),
        ] {
            for chunk in [1, 2, 3, 7, 64] {
                assert_eq!(
                    names(&origin, text.as_bytes(), chunk),
                    expected,
                    "{text:?} in chunks of {chunk}"
                );
            }
        }
    }

    // A symlinked /tmp: files name the canonical path as often as the one the run used.
    #[test]
    fn the_canonical_form_is_found_and_rewritten_too() {
        let origin = Origin::new(["/tmp/ws/1", "/private/tmp/ws/1"]);
        assert!(names(&origin, b"home = /private/tmp/ws/1/.venv/bin", 5));
        assert_eq!(
            origin.rewrite(b"a=/tmp/ws/1/x b=/private/tmp/ws/1 c=/tmp/ws/12", "/w/2"),
            b"a=/w/2/x b=/w/2 c=/tmp/ws/12"
        );
    }

    #[test]
    fn binary_is_a_nul_in_the_first_8000_bytes() {
        let origin = Origin::new(["/ws/1"]);
        let mut late = vec![b'a'; 9000];
        late.push(0);
        let mut scan = Scan::new(&origin);
        scan.feed(&late, true);
        assert!(!scan.binary);
        let mut scan = Scan::new(&origin);
        scan.feed(b"\x7fELF\0\0/ws/1/lib\0", true);
        assert!(scan.binary && scan.names);
        // Byte code: a string's length before it, the next object's type code after it.
        for chunk in [5, 64] {
            assert!(names(&origin, b"\xa7\r\r\n\0\0\0\0z\x05/ws/1r\x03", chunk));
        }
    }

    #[test]
    fn links_into_the_workspace_are_moved_and_others_kept() {
        let origin = Origin::new(["/ws/1"]);
        assert_eq!(origin.relink("/ws/1", "/w/22").as_deref(), Some("/w/22"));
        assert_eq!(
            origin.relink("/ws/1/src/pkg", "/w/22").as_deref(),
            Some("/w/22/src/pkg")
        );
        assert_eq!(origin.relink("/ws/10/src", "/w/22"), None);
        assert_eq!(origin.relink("../lib/x", "/w/22"), None);
        assert_eq!(origin.relink("/usr/bin/python3", "/w/22"), None);
    }

    #[test]
    fn bytecode_is_recognised_beside_its_source_only() {
        let has = |p: &str| p == "lib/site-packages/pkg/mod.py" || p == "top.py";
        assert!(bytecode_with_source(
            "lib/site-packages/pkg/__pycache__/mod.cpython-311.pyc",
            has
        ));
        assert!(bytecode_with_source(
            "lib/site-packages/pkg/__pycache__/mod.cpython-311.opt-1.pyc",
            has
        ));
        assert!(bytecode_with_source("__pycache__/top.cpython-311.pyc", has));
        assert!(!bytecode_with_source(
            "lib/site-packages/pkg/__pycache__/other.cpython-311.pyc",
            has
        ));
        assert!(!bytecode_with_source("lib/site-packages/pkg/mod.pyc", has));
        assert!(!bytecode_with_source("lib/site-packages/pkg/mod.so", has));
    }
}
