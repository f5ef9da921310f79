//! Masking secrets in what a stage prints: every occurrence of a secret's value, and of its
//! base64 and URL-encoded forms, becomes `***` before any subscriber sees the output (log
//! file, terminal, attached views, JSON). A value split across two reads is caught: the end of
//! a chunk that could begin a secret is held back until the next chunk says.

/// What replaces a secret.
const MASK: &[u8] = b"***";

/// The masking state of one stage's output.
#[derive(Debug, Default)]
pub struct Masker {
    /// Longest first, so a longer form wins over a value it contains.
    patterns: Vec<Vec<u8>>,
    held: Vec<u8>,
}

impl Masker {
    /// A masker for `secrets` (values of at least 4 bytes; shorter ones are refused earlier).
    pub fn new(secrets: &[String]) -> Self {
        let mut patterns: Vec<Vec<u8>> = Vec::new();
        for secret in secrets {
            let value = secret.as_bytes();
            for form in [
                value.to_vec(),
                base64(value).trim_end_matches('=').as_bytes().to_vec(),
                url_encoded(value).into_bytes(),
            ] {
                if form.len() >= 4 && !patterns.contains(&form) {
                    patterns.push(form);
                }
            }
        }
        patterns.sort_by_key(|p| std::cmp::Reverse(p.len()));
        Masker {
            patterns,
            held: Vec::new(),
        }
    }

    /// What of `bytes` (after what was held back) can be shown now, masked.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<u8> {
        if self.patterns.is_empty() {
            return bytes.to_vec();
        }
        let mut buffer = std::mem::take(&mut self.held);
        buffer.extend_from_slice(bytes);
        let mut shown = Vec::with_capacity(buffer.len());
        let mut at = 0;
        while at < buffer.len() {
            let rest = &buffer[at..];
            if let Some(pattern) = self.patterns.iter().find(|p| rest.starts_with(p)) {
                shown.extend_from_slice(MASK);
                at += pattern.len();
                continue;
            }
            // The rest may be the start of a secret whose end has not come yet.
            if self
                .patterns
                .iter()
                .any(|p| rest.len() < p.len() && p.starts_with(rest))
            {
                self.held = rest.to_vec();
                break;
            }
            shown.push(buffer[at]);
            at += 1;
        }
        shown
    }

    /// What was held back, at the end of the output.
    pub fn finish(&mut self) -> Vec<u8> {
        // Held bytes are a proper prefix of a secret, not a secret: shown as they are.
        std::mem::take(&mut self.held)
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn url_encoded(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Masker, base64};

    fn mask(secret: &str, chunks: &[&str]) -> String {
        let mut masker = Masker::new(&[secret.to_string()]);
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(masker.push(chunk.as_bytes()));
        }
        out.extend(masker.finish());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn secrets_are_masked_whole_split_and_encoded() {
        assert_eq!(base64(b"hunter22"), "aHVudGVyMjI=");
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
}
