/// Cuts a stage's output into lines, holding back an unfinished last line. A line longer than
/// [`MAX_LINE`] is cut there, so memory stays bounded whatever a stage prints.
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

pub const MAX_LINE: usize = 64 * 1024;

impl LineSplitter {
    /// Calls `emit` with each complete line in `bytes` (without its `\n`).
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(&[u8])) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            if self.partial.is_empty() {
                emit(&bytes[..end]);
            } else {
                self.partial.extend_from_slice(&bytes[..end]);
                emit(&self.partial);
                self.partial.clear();
            }
            bytes = &bytes[end + 1..];
        }
        self.partial.extend_from_slice(bytes);
        while self.partial.len() >= MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            emit(&self.partial);
            self.partial = rest;
        }
    }

    /// Emits what is left of an unfinished last line.
    pub fn finish(&mut self, mut emit: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            emit(&self.partial);
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, |line| lines.push(line.to_vec()));
        }
        splitter.finish(|line| lines.push(line.to_vec()));
        lines
    }

    #[test]
    fn joins_lines_across_chunks_and_keeps_the_unfinished_one() {
        assert_eq!(
            split(&[b"a\nb", b"c\n", b"d"]),
            [b"a".to_vec(), b"bc".to_vec(), b"d".to_vec()]
        );
    }

    #[test]
    fn cuts_a_line_longer_than_the_limit() {
        let long = vec![b'x'; MAX_LINE + 10];
        let lines = split(&[&long]);
        assert_eq!(
            lines.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_LINE, 10]
        );
    }
}
