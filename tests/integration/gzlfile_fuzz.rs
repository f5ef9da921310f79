//! A seeded fuzz test of the Gzlfile checker: tens of thousands of generated and mutated
//! Gzlfiles, checked in-process (parser, analyzer, plan and diagnostic renderer) and, for a
//! few hundred of them, by the built `gzl check`. Every input must give a verdict (stages, or
//! diagnostics: exit 0 or 2), never a panic, within bounded time and output, and the rendered
//! diagnostics must hold no control character that could drive a terminal.
//!
//! Set `GZL_FUZZ_SEED` to replay another seed and `GZL_FUZZ_INPUTS` to change the count; a
//! failure prints the seed and the input. `cargo fuzz` runs the same checks without bounds:
//! see fuzz/README.md.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gzl::stagefile::{Gzlfile, KNOWN_ATTRIBUTES, SHOWN, StagefileError, render_all};

use crate::harness::Test;

const SEED: u64 = 0x677a_6c5f_6675_7a7a;
const INPUTS: usize = 30_000;
/// One in this many inputs also goes through the built `gzl check`.
const THROUGH_THE_BINARY: usize = 100;

/// Not a speed check: a generous bound that only an input making the checker hang, or blow
/// up quadratically, would cross.
const MAX_TIME: Duration = Duration::from_secs(10);
/// Rendered diagnostics for any input: at most `SHOWN` of them, each a few lines, each line
/// bounded whatever the input's size.
const MAX_OUTPUT: usize = SHOWN * 8 * 1024;

/// SplitMix64: small, fast and deterministic, so a seed replays the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// Valid Gzlfiles: the templates gzl init writes, the repository's own, and the examples of
/// docs/gzlfile.md.
fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut corpus = Vec::new();
    let mut templates: Vec<PathBuf> = std::fs::read_dir(root.join("templates"))
        .expect("templates")
        .map(|entry| entry.expect("template").path())
        .collect();
    templates.sort();
    templates.push(root.join("Gzlfile"));
    for path in templates {
        corpus.push(std::fs::read(path).expect("a corpus file"));
    }
    let docs = std::fs::read_to_string(root.join("docs/gzlfile.md")).expect("docs/gzlfile.md");
    for (i, block) in docs.split("```").enumerate() {
        if i % 2 == 1 {
            let text = block.split_once('\n').map_or("", |(_, text)| text);
            corpus.push(text.as_bytes().to_vec());
        }
    }
    corpus
}

const NAMES: [&str; 8] = ["build", "test", "lint", "a", "b", "deploy", "gen", "x-1.2"];
const ODD: [&[u8]; 24] = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\t",
    b"\0",
    b"\x1b[2J",
    b"\x07",
    b"\xff",
    b"\xc3",
    b"\xe2\x80\xae",
    "\u{feff}".as_bytes(),
    "é".as_bytes(),
    "日本".as_bytes(),
    b"@",
    b"@when ",
    b":",
    b": ",
    b"#",
    b" ",
    b"    ",
    b"\n  @timeout 5s\n",
    b"\n\t@env A=1\n",
    b"=",
    b"..",
];

/// A Gzlfile made of plausible lines in a random order.
fn generate(rng: &mut Rng) -> Vec<u8> {
    let mut text = String::new();
    for _ in 0..rng.below(30) {
        let line = match rng.below(12) {
            0 | 1 => {
                let mut header = format!("{}:", rng.pick(&NAMES));
                for _ in 0..rng.below(4) {
                    header.push(' ');
                    header.push_str(rng.pick(&NAMES));
                }
                header
            }
            2 => format!(
                "{}@{} {}",
                rng.pick(&["  ", "\t", "    "]),
                // The attributes gzl knows, and now and then one it does not.
                if rng.below(10) == 0 {
                    "timout"
                } else {
                    rng.pick(&KNOWN_ATTRIBUTES)
                },
                rng.pick(&[
                    "",
                    "5s",
                    "1h30m",
                    "0s",
                    "A=1",
                    "1X=2",
                    "python3",
                    "'x",
                    "../up",
                    "/abs",
                    "src/**",
                    "!docs/**",
                    "all",
                    "untracked",
                    "TOKEN",
                    "a b",
                ])
            ),
            3 => "# a comment".into(),
            4 => String::new(),
            5 => format!("{}x={}", rng.pick(&["", "  "]), rng.below(9)),
            _ => format!(
                "{}{}",
                rng.pick(&["  ", "\t", "    ", "  \t", ""]),
                rng.pick(&[
                    "echo hi",
                    "cargo test",
                    "@decorator",
                    "exit 1",
                    "\"quoted\""
                ])
            ),
        };
        text.push_str(&line);
        text.push_str(rng.pick(&["\n", "\n", "\n", "\r\n", "\r", ""]));
    }
    text.into_bytes()
}

/// `base` with a few byte-level changes.
fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(10) {
            0..=3 => {
                let odd = rng.pick(&ODD);
                bytes.splice(at..at, odd.iter().copied());
            }
            4 => {
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            5 => {
                let end = (at + rng.below(80)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                let to = rng.below(bytes.len() + 1);
                bytes.splice(to..to, copy);
            }
            6 => {
                // Re-indent a line: spaces to a tab, or one space less.
                let start = bytes[..at]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                if bytes.get(start) == Some(&b' ') {
                    let replacement: &[u8] = if rng.one_in(2) { b"\t" } else { b"" };
                    bytes.splice(start..start + 1, replacement.iter().copied());
                }
            }
            7 => {
                if let Some(byte) = bytes.get_mut(at) {
                    *byte = rng.next() as u8;
                }
            }
            8 => bytes.truncate(at),
            _ if rng.one_in(4) => {
                // A very long line, of a token or of many words.
                let word = rng.pick(&[b"x".as_slice(), b" x", b" build", b"\t@", b"\r"]);
                let long = word.repeat(200 + rng.below(3_000));
                bytes.splice(at..at, long);
            }
            _ => {
                let line = format!("\n{}: {}\n", rng.pick(&NAMES), rng.pick(&NAMES));
                bytes.splice(at..at, line.bytes());
            }
        }
    }
    bytes
}

/// What `gzl check` would answer for `bytes`: `Ok` for exit 0, the rendered diagnostics for
/// exit 2. Panics on anything else.
fn check(bytes: &[u8]) -> Result<(), String> {
    let path = Path::new("Gzlfile");
    match Gzlfile::from_bytes(path, bytes.to_vec()) {
        Ok(gzlfile) => {
            // The grammar and `Lines` agree on where lines start: every header starts one.
            for stage in &gzlfile.stages {
                let before = &gzlfile.source[..stage.name_span.start];
                assert!(
                    before.is_empty() || before == "\u{feff}" || before.ends_with('\n'),
                    "the header of `{}` does not start a line",
                    stage.name
                );
            }
            let verdict = gzl::plan::Plan::new(&gzlfile, &[]).map(|_| ());
            // A file without stages is an error of the plan's. What a generator printing this
            // text would get, next to a Gzlfile's stages:
            let generated = Gzlfile::generated("gen", &gzlfile.source, &["build", "gen"]);
            if let Err(error) = generated {
                assert!(matches!(error, StagefileError::Invalid { .. }), "{error}");
            }
            verdict.map_err(|error| error.to_string())
        }
        Err(StagefileError::Invalid {
            source_text,
            diagnostics,
            ..
        }) => {
            assert!(!diagnostics.is_empty(), "an invalid Gzlfile says why");
            let shown = render_all(&diagnostics, &source_text, "Gzlfile", false);
            assert!(
                shown.len() <= MAX_OUTPUT,
                "{} bytes of diagnostics",
                shown.len()
            );
            if let Some(raw) = shown.chars().find(|&c| c.is_control() && c != '\n') {
                panic!("{raw:?} unescaped in diagnostics:\n{shown}");
            }
            // With colour too.
            render_all(&diagnostics, &source_text, "Gzlfile", true);
            Err(shown)
        }
        Err(error) => panic!("neither stages nor diagnostics: {error}"),
    }
}

fn from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

// Any byte sequence as a Gzlfile gives stages or diagnostics: a lone `\r` once made the
// renderer panic, and thousands of errors once took seconds and printed hundreds of MB.
#[test]
fn any_bytes_as_a_gzlfile_give_a_verdict_without_panic() {
    let seed = from_env("GZL_FUZZ_SEED", SEED);
    let inputs = from_env("GZL_FUZZ_INPUTS", INPUTS as u64) as usize;
    let corpus = corpus();
    let mut rng = Rng(seed);
    let test = Test::new();
    let (mut valid, mut invalid, mut through_binary) = (0, 0, 0);
    let started = Instant::now();
    for case in 0..inputs {
        let input = if rng.one_in(3) {
            generate(&mut rng)
        } else {
            let base = rng.below(corpus.len());
            mutate(&mut rng, &corpus[base])
        };
        let replay = format!(
            "GZL_FUZZ_SEED={seed} input {case}: {:?}",
            String::from_utf8_lossy(&input[..input.len().min(2_000)])
        );
        let clock = Instant::now();
        let verdict = std::panic::catch_unwind(|| check(&input))
            .unwrap_or_else(|_| panic!("checking panicked; {replay}"));
        let took = clock.elapsed();
        assert!(took < MAX_TIME, "checking took {took:?}; {replay}");
        match &verdict {
            Ok(()) => valid += 1,
            Err(_) => invalid += 1,
        }
        if case % THROUGH_THE_BINARY == 0 {
            through_binary += 1;
            test.write("Gzlfile", &input);
            let run = test.gzl(&["check"]);
            let expected = if verdict.is_ok() { 0 } else { 2 };
            assert_eq!(run.code, Some(expected), "{}\n{replay}", run.stderr);
            assert!(
                run.stderr.len() <= MAX_OUTPUT + 1024,
                "{} bytes on stderr; {replay}",
                run.stderr.len()
            );
        }
    }
    eprintln!(
        "fuzzed {inputs} Gzlfiles (seed {seed}) in {:?}: {valid} valid, {invalid} with diagnostics, {through_binary} through gzl check",
        started.elapsed()
    );
    // The mutations must not all break the file, nor leave it all valid.
    assert!(
        valid > inputs / 50 && invalid > inputs / 50,
        "{valid} valid, {invalid} invalid"
    );
}
