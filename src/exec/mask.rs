//! Masking secrets in what a stage prints: every occurrence of a secret's value, and of the
//! forms it takes when a program passes it on, becomes `***` before any subscriber sees the
//! output (log file, terminal, attached views, JSON, what a `@generates` stage generates).
//!
//! The forms: the value itself; its base64 at each of the three alignments it can have inside
//! longer encoded data (`user:TOKEN` in a Basic auth header), standard and URL-safe alphabets;
//! its URL encodings (Python's `quote` and `quote_plus`, `encodeURIComponent`, `encodeURI`,
//! HTML forms; upper and lower case hex); its JSON string escapes; its shell quotings.
//!
//! Output is searched for all forms at once (Aho-Corasick). A single line break between two
//! characters (`\n` or `\r\n`) does not stop a match, so base64 wrapped at any width is masked
//! too: each masked piece becomes `***` and the line breaks stay. A value split across two
//! reads is caught: the end of a chunk that could begin a form is held back until the next
//! chunk says; a chunk ending in a line break holds its last line back only when that line
//! looks like wrapped base64, so ordinary lines are never delayed.

use aho_corasick::{AhoCorasick, Input, MatchKind, Span, packed};

/// What replaces a secret.
const MASK: &[u8] = b"***";

/// The shortest form masked (a secret is at least 4 characters long; shorter ones are refused
/// earlier).
const MIN_FORM: usize = 4;

/// The shortest base64 form masked: its stable middle part has about 4/3 the secret's length,
/// less the characters it shares with its neighbours, so a secret of 4 bytes gets none at the
/// unaligned offsets, where 4 or 5 base64 characters would turn up by chance in long
/// base64 data.
const MIN_BASE64: usize = 6;

/// A line break continues a masked base64 run across a read only after a line of at least
/// this many base64 characters (base64 wraps at 76 columns, PEM at 64): a shorter line is
/// shown at once. (Within a read, every single line break continues it.)
const WRAPPED_LINE: usize = 16;

/// The masking state of one stage's output.
#[derive(Debug)]
pub struct Masker {
    /// Finds every form; `None` when there are no secrets.
    searcher: Option<Searcher>,
    /// Why the forms cannot be searched for (too many to build a searcher): then nothing of
    /// the output is shown, as the secrets could not be kept out of it; `finish` says why,
    /// once.
    broken: Option<(String, bool)>,
    /// Every form, sorted: to tell whether the end of a chunk may begin one.
    forms: Vec<Vec<u8>>,
    /// The bytes a form begins with.
    first: Vec<bool>,
    /// The pairs of bytes a form begins with, a bit each: most places where a chunk ends are
    /// ruled out by these two tables, not by a search through the forms.
    pairs: Vec<u64>,
    longest: usize,
    /// Bytes not shown yet: they may begin a form.
    held: Vec<u8>,
    flat: Flat,
    /// The number of base64 characters the line shown last is made of so far; `None` when
    /// it holds other characters.
    line: Option<usize>,
}

impl Masker {
    /// A masker for `secrets`.
    pub fn new(secrets: &[String]) -> Self {
        let mut forms: Vec<Vec<u8>> = secrets.iter().flat_map(|s| forms(s)).collect();
        forms.sort();
        forms.dedup();
        let mut first = vec![false; 256];
        let mut pairs = vec![0; 1 << 10];
        for form in &forms {
            first[usize::from(form[0])] = true;
            let pair = pair(form[0], form[1]);
            pairs[pair >> 6] |= 1 << (pair & 63);
        }
        let searcher = match forms.is_empty() {
            true => Ok(None),
            false => Searcher::new(&forms).map(Some),
        };
        Masker {
            broken: searcher
                .as_ref()
                .err()
                .map(|error| (error.to_string(), false)),
            searcher: searcher.ok().flatten(),
            longest: forms.iter().map(Vec::len).max().unwrap_or(0),
            forms,
            first,
            pairs,
            held: Vec::new(),
            flat: Flat::default(),
            line: Some(0),
        }
    }

    /// What of `bytes` (after what was held back) can be shown now, masked.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.broken.is_some() {
            return Vec::new();
        }
        if self.searcher.is_none() {
            return bytes.to_vec();
        }
        if self.held.is_empty() {
            return self.mask(bytes, false);
        }
        let mut buffer = std::mem::take(&mut self.held);
        buffer.extend_from_slice(bytes);
        self.mask(&buffer, false)
    }

    /// What was held back, at the end of the output.
    pub fn finish(&mut self) -> Vec<u8> {
        if let Some((error, told)) = &mut self.broken {
            let note = format!("gzl: output hidden: cannot search it for secrets ({error})\n");
            return match std::mem::replace(told, true) {
                false => note.into_bytes(),
                true => Vec::new(),
            };
        }
        let held = std::mem::take(&mut self.held);
        self.mask(&held, true)
    }

    /// Masks `buffer`; unless at the `end`, holds back the part that may begin a form.
    fn mask(&mut self, buffer: &[u8], end: bool) -> Vec<u8> {
        let Some(searcher) = &self.searcher else {
            return buffer.to_vec();
        };
        // The flat text's memory is kept from chunk to chunk.
        let mut flat = std::mem::take(&mut self.flat);
        flat.fill(buffer, !end);
        // The union of every match: forms of different secrets, and a secret's forms at its
        // different alignments, may overlap. The leftmost-longest match from each position on
        // finds them (an overlapping search would too, but it cannot skip ahead as fast).
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut from = 0;
        while let Some((start, stop)) = searcher.find(&flat.bytes, from) {
            match spans.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(stop),
                _ => spans.push((start, stop)),
            }
            from = start + 1;
        }
        // A trailing line break continues a form only at the end of a wrapped base64 line.
        let may_continue = !end
            && flat
                .trailing
                .is_none_or(|at| self.wrapped_line_ends(&buffer[..at]));
        let mut hold = self.hold_point(&flat.bytes, 0, may_continue);
        let mut shown = Vec::with_capacity(buffer.len() + MASK.len());
        let mut done = 0;
        for (start, stop) in spans {
            if start >= hold {
                break;
            }
            let (from, to) = (flat.original(start), flat.original(stop - 1) + 1);
            shown.extend_from_slice(&buffer[done..from]);
            // Each piece between line breaks becomes a mask; the line breaks stay.
            for (i, piece) in buffer[from..to].split(|&b| b == b'\n').enumerate() {
                if i > 0 {
                    shown.push(b'\n');
                }
                let (text, cr) = match piece.strip_suffix(b"\r") {
                    Some(text) => (text, true),
                    None => (piece, false),
                };
                if !text.is_empty() {
                    shown.extend_from_slice(MASK);
                }
                if cr {
                    shown.push(b'\r');
                }
            }
            done = to;
            if stop > hold {
                hold = self.hold_point(&flat.bytes, stop, may_continue);
            }
        }
        let cut = flat.original(hold);
        shown.extend_from_slice(&buffer[done..cut]);
        self.shown(&buffer[..cut]);
        self.held = buffer[cut..].to_vec();
        self.flat = flat;
        shown
    }

    /// Where the longest end of `text` (from `from` on) that is the beginning of a form starts;
    /// the end of `text` when none is.
    fn hold_point(&self, text: &[u8], from: usize, may_continue: bool) -> usize {
        if !may_continue {
            return text.len();
        }
        let start = from.max(text.len().saturating_sub(self.longest.saturating_sub(1)));
        (start..text.len())
            .find(|&i| {
                let rest = &text[i..];
                let candidate = match rest {
                    [a] => self.first[usize::from(*a)],
                    [a, b, ..] => {
                        let pair = pair(*a, *b);
                        self.pairs[pair >> 6] & (1 << (pair & 63)) != 0
                    }
                    [] => false,
                };
                candidate && self.begins_form(rest)
            })
            .unwrap_or(text.len())
    }

    /// Whether `text` is a proper beginning of some form.
    fn begins_form(&self, text: &[u8]) -> bool {
        // The forms that begin with `text` and are longer come right after it in order.
        let after = self.forms.partition_point(|form| form.as_slice() <= text);
        self.forms.get(after).is_some_and(|f| f.starts_with(text))
    }

    /// Whether `before` ends a line of wrapped base64 (with the line shown so far).
    fn wrapped_line_ends(&self, before: &[u8]) -> bool {
        let (line, shown) = match memchr::memrchr2(b'\r', b'\n', before) {
            Some(at) => (&before[at + 1..], Some(0)),
            None => (before, self.line),
        };
        shown.is_some_and(|n| n + line.len() >= WRAPPED_LINE) && line.iter().all(|&b| is_base64(b))
    }

    /// Notes what of the line being written was shown.
    fn shown(&mut self, bytes: &[u8]) {
        self.line = match memchr::memrchr2(b'\r', b'\n', bytes) {
            Some(at) => {
                let line = &bytes[at + 1..];
                line.iter().all(|&b| is_base64(b)).then_some(line.len())
            }
            None => self
                .line
                .filter(|_| bytes.iter().all(|&b| is_base64(b)))
                .map(|n| n + bytes.len()),
        };
    }
}

/// Finds the leftmost-longest form.
#[derive(Debug)]
enum Searcher {
    /// SIMD (Teddy), for up to 64 forms where the CPU has it: it stays fast whatever the
    /// output, where the automaton's prefilter may stop at every other byte.
    Packed(packed::Searcher),
    Automaton(AhoCorasick),
}

impl Searcher {
    fn new(forms: &[Vec<u8>]) -> Result<Self, aho_corasick::BuildError> {
        let packed = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostLongest)
            .builder()
            .extend(forms)
            .build();
        match packed {
            Some(packed) => Ok(Searcher::Packed(packed)),
            None => AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(forms)
                .map(Searcher::Automaton),
        }
    }

    /// The leftmost-longest form in `text` from `from` on: where it starts and ends.
    fn find(&self, text: &[u8], from: usize) -> Option<(usize, usize)> {
        let found = match self {
            Searcher::Packed(packed) => packed.find_in(text, Span::from(from..text.len())),
            Searcher::Automaton(automaton) => {
                automaton.find(Input::new(text).range(from..text.len()))
            }
        };
        found.map(|m| (m.start(), m.end()))
    }
}

/// Output with its single line breaks taken out, as forms are searched for in it.
#[derive(Debug, Default)]
struct Flat {
    bytes: Vec<u8>,
    /// The breaks taken out: the index in `bytes` each stood before, and how many bytes were
    /// taken out up to it and with it.
    breaks: Vec<(usize, usize)>,
    /// Where a line break that ends the output starts, when it was taken out: it is single
    /// or not depending on what comes next.
    trailing: Option<usize>,
}

impl Flat {
    /// `output` without the line breaks (`\n`, `\r\n`) that stand alone between two other
    /// characters; with `more` to come, also without one that ends it.
    fn fill(&mut self, output: &[u8], more: bool) {
        self.bytes.clear();
        self.breaks.clear();
        self.trailing = None;
        let mut copied = 0;
        let mut next = 0;
        for at in memchr::memchr2_iter(b'\r', b'\n', output) {
            if at < next {
                continue;
            }
            let end = output[at..]
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')
                .map_or(output.len(), |n| at + n);
            next = end;
            let run = &output[at..end];
            let single = run == b"\n" || run == b"\r\n";
            let last = end == output.len();
            let taken = at > 0 && ((single && !last) || (last && more && (single || run == b"\r")));
            if taken {
                self.bytes.extend_from_slice(&output[copied..at]);
                let removed = self.breaks.last().map_or(0, |b| b.1) + run.len();
                self.breaks.push((self.bytes.len(), removed));
                copied = end;
                if last {
                    self.trailing = Some(at);
                }
            }
        }
        self.bytes.extend_from_slice(&output[copied..]);
    }

    /// The index in the output of `bytes[at]` (of the output's end, for the end).
    fn original(&self, at: usize) -> usize {
        let before = self.breaks.partition_point(|&(index, _)| index <= at);
        at + before.checked_sub(1).map_or(0, |i| self.breaks[i].1)
    }
}

/// The index of two bytes in a table of pairs.
fn pair(a: u8, b: u8) -> usize {
    (usize::from(a) << 8) | usize::from(b)
}

fn is_base64(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"+/-_=".contains(&byte)
}

/// Every form of `secret` that is masked.
fn forms(secret: &str) -> Vec<Vec<u8>> {
    let value = secret.as_bytes();
    let mut forms = vec![value.to_vec()];
    for ascii_only in [false, true] {
        forms.push(json_escaped(secret, ascii_only));
    }
    for (keep, plus) in URL_ENCODINGS {
        for hex in [UPPER_HEX, LOWER_HEX] {
            forms.push(url_encoded(value, keep, plus, hex));
        }
    }
    forms.push(secret.replace('\'', r"'\''").into_bytes());
    forms.push(backslash_quoted(value));
    forms.retain(|form| form.len() >= MIN_FORM);
    for alphabet in [BASE64, BASE64_URL] {
        let mut encoded = vec![base64(value, alphabet, 0)];
        encoded.extend((0..3).map(|offset| base64_middle(value, alphabet, offset)));
        forms.extend(encoded.into_iter().filter(|form| form.len() >= MIN_BASE64));
    }
    // Output is searched without its single line breaks, so forms are too.
    for form in &mut forms {
        form.retain(|&b| b != b'\r' && b != b'\n');
    }
    forms.retain(|form| form.len() >= MIN_FORM);
    forms
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The base64 of `offset` bytes and then `bytes`, without padding: every character, also the
/// last one, which the bytes only partly decide.
fn base64(bytes: &[u8], alphabet: &[u8; 64], offset: usize) -> Vec<u8> {
    let mut data = vec![0; offset];
    data.extend_from_slice(bytes);
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize]);
        }
    }
    out
}

/// The base64 characters of `bytes` that are the same whatever data surrounds them, when
/// `offset` bytes (modulo 3) come before them: the ones whose 6 bits all come from `bytes`.
fn base64_middle(bytes: &[u8], alphabet: &[u8; 64], offset: usize) -> Vec<u8> {
    let encoded = base64(bytes, alphabet, offset);
    let first = (8 * offset).div_ceil(6);
    let end = (8 * (offset + bytes.len())) / 6;
    encoded.get(first..end).unwrap_or_default().to_vec()
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

/// URL encodings: the characters besides letters and digits each keeps, and whether a space
/// becomes `+`.
const URL_ENCODINGS: [(&[u8], bool); 6] = [
    // Python's urllib.parse.quote (safe='/' by default), Go's url.PathEscape, curl.
    (b"-._~/", false),
    // quote(safe=''), RFC 3986 unreserved characters.
    (b"-._~", false),
    // Python's quote_plus, Go's url.QueryEscape.
    (b"-._~", true),
    // JavaScript's encodeURIComponent.
    (b"-._~!*'()", false),
    // HTML forms (application/x-www-form-urlencoded), URLSearchParams, Java's URLEncoder.
    (b"-._*", true),
    // JavaScript's encodeURI.
    (b"-._~!*'();/?:@&=+$,#", false),
];

fn url_encoded(bytes: &[u8], keep: &[u8], plus: bool, hex: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b);
        } else if b == b' ' && plus {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[b'%', hex[usize::from(b >> 4)], hex[usize::from(b & 15)]]);
        }
    }
    out
}

/// The inside of a JSON string holding `value` (as serde_json and JSON.stringify write it;
/// with `ascii_only`, as Python's json.dumps does by default).
fn json_escaped(value: &str, ascii_only: bool) -> Vec<u8> {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c < ' ' || (ascii_only && !c.is_ascii()) => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// `value` with a backslash before each character a shell would take specially, as bash's
/// `printf %q` and `set -x` write it.
fn backslash_quoted(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 2);
    for &b in value {
        if b" \t!\"$&'()*,;<>?[\\]^`{|}".contains(&b) {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{BASE64, Masker, base64};

    fn mask(secret: &str, chunks: &[&str]) -> String {
        mask_all(&[secret], chunks)
    }

    fn mask_all(secrets: &[&str], chunks: &[&str]) -> String {
        let secrets: Vec<String> = secrets.iter().map(ToString::to_string).collect();
        let mut masker = Masker::new(&secrets);
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(masker.push(chunk.as_bytes()));
        }
        out.extend(masker.finish());
        String::from_utf8(out).unwrap()
    }

    /// Standard base64, padded, as `base64` prints it; wrapped at `width` columns with `eol`
    /// when some.
    fn encoded(data: &[u8], wrap: Option<(usize, &str)>) -> String {
        let mut text = String::from_utf8(base64(data, BASE64, 0)).unwrap();
        while !text.len().is_multiple_of(4) {
            text.push('=');
        }
        match wrap {
            Some((width, eol)) => text
                .as_bytes()
                .chunks(width)
                .map(|line| format!("{}{eol}", std::str::from_utf8(line).unwrap()))
                .collect(),
            None => text,
        }
    }

    /// How many base64 characters of `encoded` that carry bits of the secret (which starts
    /// `offset` bytes into the encoded data and is `length` long) `masked` still shows; line
    /// breaks aside. Panics unless `masked` is `encoded` with one part masked.
    fn secret_characters_shown(encoded: &str, masked: &str, offset: usize, length: usize) -> usize {
        let flat = |text: &str| text.replace(['\r', '\n'], "");
        let (encoded, masked) = (flat(encoded), flat(masked));
        let before = encoded
            .bytes()
            .zip(masked.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let after = encoded
            .bytes()
            .rev()
            .zip(masked.bytes().rev())
            .take_while(|(a, b)| a == b)
            .count()
            .min(masked.len() - before);
        let hidden = &masked[before..masked.len() - after];
        assert!(
            !hidden.is_empty() && hidden.bytes().all(|b| b == b'*'),
            "not masked in one place: {masked}"
        );
        let bits = 8 * offset..8 * (offset + length);
        (0..encoded.len())
            .filter(|&i| i < before || i >= encoded.len() - after)
            .filter(|&i| 6 * i < bits.end && 6 * i + 6 > bits.start)
            .count()
    }

    #[test]
    fn secrets_are_masked_whole_split_and_encoded() {
        assert_eq!(encoded(b"hunter22", None), "aHVudGVyMjI=");
        assert_eq!(mask("hunter22", &["token=hunter22 ok\n"]), "token=*** ok\n");
        assert_eq!(
            mask("hunter22", &["token=hun", "ter22 ok\n"]),
            "token=*** ok\n"
        );
        assert_eq!(mask("hunter22", &["b64 aHVudGVyMjI=\n"]), "b64 ***=\n");
        assert_eq!(mask("p@ss word", &["url p%40ss%20word\n"]), "url ***\n");
        assert_eq!(
            mask("hunter22", &["hunt", "ing season\n"]),
            "hunting season\n"
        );
        assert_eq!(mask("hunter22", &["ends with hunt"]), "ends with hunt");
    }

    // Basic auth encodes `user:TOKEN`: the token's base64 depends on the user's length mod 3.
    #[test]
    fn base64_of_a_secret_inside_basic_auth_is_masked() {
        let secret = "s3cr3t-t0ken-value";
        for user in ["", "u", "us", "usr", "user", "admin", "gzl-bot"] {
            for after in ["", "\n", "@example.com"] {
                let data = format!("{user}:{secret}{after}");
                let header = encoded(data.as_bytes(), None);
                let masked = mask(secret, &[&format!("Authorization: Basic {header}\n")]);
                let masked = masked
                    .strip_prefix("Authorization: Basic ")
                    .and_then(|m| m.strip_suffix('\n'))
                    .unwrap();
                let shown = secret_characters_shown(&header, masked, user.len() + 1, secret.len());
                // At most the two characters it shares with what comes before and after.
                assert!(shown <= 2, "{data:?}: {header} shows {shown} in {masked}");
            }
        }
    }

    // `base64` wraps at 76 columns, PEM at 64, MIME with \r\n; a read may end at any byte.
    #[test]
    fn line_wrapped_base64_of_a_secret_is_masked() {
        let secret = "a-much-longer-secret-value-0123456789-abcdefghijklmnopqrstuvwxyz";
        let data = format!(
            "{{\"auths\":{{\"registry.example.com\":{{\"auth\":\"{secret}\",\"x\":\"{}\"}}}}}}",
            "y".repeat(100)
        );
        let offset = data.find(secret).unwrap();
        for (width, eol) in [(76, "\n"), (64, "\n"), (76, "\r\n"), (16, "\n")] {
            let text = encoded(data.as_bytes(), Some((width, eol)));
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let chunkings: Vec<Vec<&str>> = [1, 2, 7, 75, 76, 77, 4096]
                .iter()
                .map(|&size| {
                    text.as_bytes()
                        .chunks(size)
                        .map(|c| std::str::from_utf8(c).unwrap())
                        .collect()
                })
                .chain([lines.clone()])
                .collect();
            for chunks in chunkings {
                let masked = mask(secret, &chunks);
                assert_eq!(masked.lines().count(), text.lines().count(), "{masked}");
                let shown = secret_characters_shown(&text, &masked, offset, secret.len());
                assert!(shown <= 2, "width {width}: shows {shown} in\n{masked}");
            }
        }
    }

    #[test]
    fn url_encoded_secret_is_masked_in_its_common_variants() {
        let secret = "p@ss w/rd+é~*'x";
        for encoded in [
            // Python: quote, quote(safe=''), quote_plus; lower case hex as some encoders write.
            "p%40ss%20w/rd%2B%C3%A9~%2A%27x",
            "p%40ss%20w%2Frd%2B%C3%A9~%2A%27x",
            "p%40ss+w%2Frd%2B%C3%A9~%2A%27x",
            "p%40ss%20w/rd%2b%c3%a9~%2a%27x",
            "p%40ss+w%2frd%2b%c3%a9~%2a%27x",
            // JavaScript: encodeURIComponent, encodeURI; HTML forms.
            "p%40ss%20w%2Frd%2B%C3%A9~*'x",
            "p@ss%20w/rd+%C3%A9~*'x",
            "p%40ss+w%2Frd%2B%C3%A9%7E*%27x",
        ] {
            assert_eq!(
                mask(secret, &[&format!("GET /login?pw={encoded}&next=1\n")]),
                "GET /login?pw=***&next=1\n",
                "{encoded}"
            );
        }
    }

    #[test]
    fn json_and_shell_escaped_secrets_are_masked() {
        let secret = "it's \"a\" \\$ecret é";
        for escaped in [
            // serde_json and JSON.stringify; Python's json.dumps.
            r#"it's \"a\" \\$ecret é"#,
            r#"it's \"a\" \\$ecret \u00e9"#,
            // bash's printf %q and set -x; inside single quotes.
            r#"it\'s\ \"a\"\ \\\$ecret\ é"#,
            r#"it'\''s "a" \$ecret é"#,
        ] {
            assert_eq!(mask(secret, &[&format!("[{escaped}]\n")]), "[***]\n");
        }
    }

    // A secret with a line break in it (a key) is masked line by line.
    #[test]
    fn a_secret_of_several_lines_is_masked_line_by_line() {
        let secret = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n-----END KEY-----";
        assert_eq!(
            mask(secret, &["key:\n", secret, "\ndone\n"]),
            "key:\n***\n***\n***\ndone\n"
        );
    }

    // Secrets that overlap in the output are masked as one.
    #[test]
    fn overlapping_secrets_are_masked_whole() {
        assert_eq!(
            mask_all(&["abcdef12", "ef12ghij"], &["[abcdef12ghij]\n"]),
            "[***]\n"
        );
        assert_eq!(
            mask_all(&["pass", "password"], &["[pass", "word]\n"]),
            "[***]\n"
        );
    }

    // A line ending like a secret begins is shown at once: only wrapped base64 waits.
    #[test]
    fn ordinary_lines_are_not_held_back() {
        let mut masker = Masker::new(&["hunter22".to_string()]);
        assert_eq!(masker.push(b"waiting for hun\n"), b"waiting for hun\n");
        assert_eq!(masker.push(b"ter22\n"), b"ter22\n");
        assert_eq!(masker.push(b"prompt: hun"), b"prompt: ");
        assert_eq!(masker.finish(), b"hun");
    }

    // Past 64 forms the search is an automaton instead of SIMD: it masks the same.
    #[test]
    fn many_secrets_are_masked_like_few() {
        let secrets: Vec<String> = (0..20).map(|i| format!("secret-{i:02}/x y")).collect();
        let masker = Masker::new(&secrets);
        assert!(matches!(
            masker.searcher,
            Some(super::Searcher::Automaton(_))
        ));
        let text = "a secret-07/x y, b c2VjcmV0LTE5L3ggeQ, c secret-11%2Fx+y\n";
        let names: Vec<&str> = secrets.iter().map(String::as_str).collect();
        assert_eq!(mask_all(&names, &[text]), "a ***, b ***, c ***\n");
    }

    // A 4-character secret masks its own text, not every short run of base64.
    #[test]
    fn a_short_secret_does_not_mask_everyday_text() {
        let text = "YWJj WWJj Ymi abc ab%63 YmNk\n";
        assert_eq!(mask("abcd", &[text]), text);
        assert_eq!(mask("abcd", &["[YWJjZA]\n"]), "[***]\n");
    }
}
