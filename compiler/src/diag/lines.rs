//! Lines and columns of byte offsets, for every format. Lines end at `\n` only;
//! columns count characters (Unicode scalar values) from 1.
//!
//! A lookup is a binary search over the line starts plus a count of the characters
//! between the line's start and the offset. On a long line (a configuration written
//! on one line of a megabyte) that count would make each lookup as slow as the line
//! is long, so past [`CHUNK`] bytes it starts from a checkpoint: the number of
//! characters before every [`CHUNK`]-th byte, counted once, on first need.

use std::cell::OnceCell;
use std::ops::Range;

use serde_json::{json, Value};

/// The distance in bytes between two checkpoints of the character count.
const CHUNK: usize = 64 * 1024;

/// A 1-based line and column; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub fn to_json(self) -> Value {
        json!({ "line": self.line, "column": self.column })
    }
}

/// The byte offset of every line start of a text, computed once per render.
#[derive(Debug)]
pub struct LineIndex<'a> {
    src: &'a str,
    /// `starts[i]` is the byte offset where line `i + 1` begins; `starts[0] == 0`.
    starts: Vec<usize>,
    /// `checkpoints[k]` is the number of characters before byte
    /// `floor_char_boundary(k * CHUNK)`.
    checkpoints: OnceCell<Vec<usize>>,
}

impl<'a> LineIndex<'a> {
    pub fn new(src: &'a str) -> LineIndex<'a> {
        let starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex {
            src,
            starts,
            checkpoints: OnceCell::new(),
        }
    }

    /// The 0-based line of byte `offset` (clamped into the text).
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.src.len());
        // `starts[0] == 0 <= offset`, so the partition point is at least 1.
        self.starts.partition_point(|&start| start <= offset) - 1
    }

    /// The bytes of 0-based `line` without its line break.
    pub fn line_range(&self, line: usize) -> Range<usize> {
        let start = self.starts[line];
        let end = self
            .starts
            .get(line + 1)
            .map_or(self.src.len(), |next| next - 1);
        start..end
    }

    /// The line and column of byte `offset`, clamped into the text first.
    pub fn position(&self, offset: usize) -> Position {
        let offset = floor_char_boundary(self.src, offset);
        let line = self.line_of(offset);
        Position {
            line: line + 1,
            column: self.chars_between(self.starts[line], offset) + 1,
        }
    }

    /// The number of characters in `src[start..end]` (both on character boundaries).
    fn chars_between(&self, start: usize, end: usize) -> usize {
        if end - start <= CHUNK {
            return self.src[start..end].chars().count();
        }
        self.chars_before(end) - self.chars_before(start)
    }

    /// The number of characters before byte `offset` (a character boundary).
    fn chars_before(&self, offset: usize) -> usize {
        let checkpoints = self.checkpoints.get_or_init(|| {
            let mut counts = vec![0];
            let mut at = 0;
            let mut total = 0;
            while at + CHUNK < self.src.len() {
                let next = floor_char_boundary(self.src, at + CHUNK);
                total += self.src[at..next].chars().count();
                counts.push(total);
                at = next;
            }
            counts
        });
        let k = (offset / CHUNK).min(checkpoints.len() - 1);
        let from = floor_char_boundary(self.src, k * CHUNK);
        checkpoints[k] + self.src[from..offset].chars().count()
    }
}

pub fn floor_char_boundary(src: &str, offset: usize) -> usize {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

pub fn ceil_char_boundary(src: &str, offset: usize) -> usize {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset += 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_on_a_long_file() {
        let src = "x = 1\n".repeat(100_000);
        let index = LineIndex::new(&src);
        assert_eq!(index.position(0), Position { line: 1, column: 1 });
        assert_eq!(
            index.position(6 * 54_321 + 4),
            Position {
                line: 54_322,
                column: 5
            }
        );
        assert_eq!(
            index.position(src.len()),
            Position {
                line: 100_001,
                column: 1
            }
        );
        assert_eq!(index.line_range(1), 6..11);
        assert_eq!(index.line_range(100_000), src.len()..src.len());
    }

    #[test]
    fn columns_on_a_long_line_count_characters() {
        // Two-byte characters across many checkpoints, on the second line.
        let line = "é".repeat(300_000);
        let src = format!("a\n{line}x{line}\n");
        let index = LineIndex::new(&src);
        let x = src.find('x').unwrap();
        assert_eq!(
            index.position(x),
            Position {
                line: 2,
                column: 300_001
            }
        );
        assert_eq!(index.position(x + 1).column, 300_002);
        assert_eq!(index.position(src.len() - 1).column, 600_002);
        // Inside a character: its start.
        assert_eq!(index.position(x - 1).column, 300_000);
        // The same answers as a plain count.
        for offset in [2, 70_001, 131_073, 400_000, 1_199_999] {
            let offset = floor_char_boundary(&src, offset);
            let plain = src[2..offset].chars().count() + 1;
            assert_eq!(index.position(offset).column, plain, "{offset}");
        }
    }
}
