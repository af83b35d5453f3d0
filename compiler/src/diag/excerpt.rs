//! The text ariadne draws a diagnostic from, in the human format, with lines of
//! bounded width.
//!
//! ariadne prints each line it draws in full, so a configuration written on one line
//! of 180 KB printed 180 KB per diagnostic. A line longer than [`MAX_LINE`] characters
//! is therefore shown as windows of [`CONTEXT`] characters each side of every place
//! of the diagnostic on it, joined by `…`. ariadne numbers lines by their position in
//! the text it is given, so the excerpt keeps every line up to the last one drawn:
//! the lines drawn, and the others empty. The places' byte offsets are mapped into the
//! excerpt; the line and column that ariadne prints above the excerpt are put right
//! by the renderer.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use super::lines::LineIndex;

/// Lines longer than this, in characters, are shown as windows around the places.
pub const MAX_LINE: usize = 200;
/// The characters shown each side of a place on a long line.
pub const CONTEXT: usize = 40;

/// The text for one diagnostic and its places in it.
#[derive(Debug)]
pub struct Excerpt {
    pub text: String,
    /// The places given to [`excerpt`], in the same order, as offsets into `text`.
    pub places: Vec<Range<usize>>,
}

/// The excerpt of `display` for `places` (byte ranges on character boundaries), or
/// `None` when every line they touch is short enough to be drawn from `display`
/// itself. `index` indexes `display`.
pub fn excerpt(display: &str, index: &LineIndex<'_>, places: &[Range<usize>]) -> Option<Excerpt> {
    // The points to show on each line touched: the ends of every place.
    let mut touched: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for place in places {
        for at in [place.start, place.end] {
            touched.entry(index.line_of(at)).or_default().push(at);
        }
    }
    let is_long = |line: usize| {
        let range = index.line_range(line);
        range.len() > MAX_LINE && display[range].chars().nth(MAX_LINE).is_some()
    };
    if !touched.keys().any(|&line| is_long(line)) {
        return None;
    }
    let mut text = String::new();
    // (start in `display`, end in `display`, start in `text`), in order.
    let mut segments: Vec<(usize, usize, usize)> = Vec::new();
    let mut next_line = 0;
    for (&line, points) in &touched {
        // Line breaks for the lines not drawn, and the one that ends the previous line.
        let breaks = line - next_line + usize::from(next_line > 0);
        text.extend(std::iter::repeat_n('\n', breaks));
        next_line = line + 1;
        let range = index.line_range(line);
        if !is_long(line) {
            segments.push((range.start, range.end, text.len()));
            text.push_str(&sanitize(&display[range]));
            continue;
        }
        let windows = windows(display, range.clone(), points);
        if windows[0].start > range.start {
            text.push('…');
        }
        for (i, window) in windows.iter().enumerate() {
            if i > 0 {
                text.push('…');
            }
            segments.push((window.start, window.end, text.len()));
            text.push_str(&sanitize(&display[window.clone()]));
        }
        if windows.last().is_some_and(|w| w.end < range.end) {
            text.push('…');
        }
    }
    let map = |at: usize| {
        let i = segments
            .partition_point(|&(start, _, _)| start <= at)
            .saturating_sub(1);
        let (start, end, to) = segments[i];
        to + at.clamp(start, end) - start
    };
    let places = places
        .iter()
        .map(|place| map(place.start)..map(place.end))
        .collect();
    Some(Excerpt { text, places })
}

/// The windows of `display[line]` around `points`, merged where they meet, in order.
fn windows(display: &str, line: Range<usize>, points: &[usize]) -> Vec<Range<usize>> {
    let mut windows: Vec<Range<usize>> = points
        .iter()
        .map(|&at| {
            let at = at.clamp(line.start, line.end);
            let start = display[line.start..at]
                .char_indices()
                .rev()
                .nth(CONTEXT - 1)
                .map_or(line.start, |(i, _)| line.start + i);
            let end = display[at..line.end]
                .char_indices()
                .nth(CONTEXT)
                .map_or(line.end, |(i, _)| at + i);
            start..end
        })
        .collect();
    windows.sort_by_key(|w| w.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(windows.len());
    for window in windows {
        match merged.last_mut() {
            Some(last) if window.start <= last.end => last.end = last.end.max(window.end),
            _ => merged.push(window),
        }
    }
    merged
}

/// `text` as it may be drawn, every byte offset kept: the characters that ariadne
/// takes for line breaks but the lexer and the other formats do not (`\r`, vertical
/// tab, form feed, U+0085, U+2028, U+2029) become as many spaces as they have bytes, so
/// that every format numbers the lines alike; every other control character but the
/// tab (a NUL, an escape that would drive the terminal or the log viewer) becomes as
/// many `?`.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    let breaks = |c: char| {
        matches!(
            c,
            '\r' | '\x0B' | '\x0C' | '\u{85}' | '\u{2028}' | '\u{2029}'
        )
    };
    let unsafe_char = |c: char| breaks(c) || (c.is_control() && c != '\t' && c != '\n');
    if !text.contains(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if breaks(c) {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        } else if unsafe_char(c) {
            out.extend(std::iter::repeat_n('?', c.len_utf8()));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str, places: &[Range<usize>]) -> Option<Excerpt> {
        excerpt(src, &LineIndex::new(src), places)
    }

    #[test]
    fn short_lines_are_drawn_from_the_source() {
        let src = "a = 1\nb = 2\n";
        assert!(run(src, &[6..7, 0..1]).is_none());
    }

    #[test]
    fn a_long_line_is_windowed_around_each_place() {
        let long = format!(
            "{} bad {} worse {}",
            "x".repeat(1000),
            "y".repeat(1000),
            "z".repeat(1000)
        );
        let src = format!("first\n{long}\nlast\n");
        let bad = src.find("bad").unwrap();
        let worse = src.find("worse").unwrap();
        let e = run(&src, &[bad..bad + 3, worse..worse + 5]).expect("an excerpt");
        let lines: Vec<&str> = e.text.split('\n').collect();
        assert_eq!(lines.len(), 2, "{:?}", e.text);
        assert_eq!(lines[0], "", "lines before keep their number");
        let line = lines[1];
        // Two windows of a place and its context each, and three marks.
        assert!(line.chars().count() <= 2 * (2 * CONTEXT + 5) + 3, "{line}");
        assert!(line.starts_with('…') && line.ends_with('…'), "{line}");
        assert_eq!(line.matches('…').count(), 3, "{line}");
        assert_eq!(&e.text[e.places[0].clone()], "bad");
        assert_eq!(&e.text[e.places[1].clone()], "worse");
    }

    #[test]
    fn a_long_place_shows_both_ends_and_the_underline_spans_the_gap() {
        let src = format!("k = {}\n", "v".repeat(5_000));
        let value = 4..src.len() - 1;
        let e = run(&src, std::slice::from_ref(&value)).expect("an excerpt");
        let shown = &e.text[e.places[0].clone()];
        assert!(shown.contains('…') && shown.starts_with('v') && shown.ends_with('v'));
        assert!(
            e.text.starts_with("k = v") && !e.text.ends_with('…'),
            "{}",
            e.text
        );
    }

    #[test]
    fn places_on_several_lines_keep_their_line_numbers() {
        let src = format!("a\n{}\nb\nc {}\n", "x".repeat(300), "y".repeat(300));
        let c = src.find('c').unwrap();
        let e = run(&src, &[c..c + 1, 0..1]).expect("an excerpt");
        let lines: Vec<&str> = e.text.split('\n').collect();
        assert_eq!(lines, ["a", "", "", lines[3]]);
        assert!(lines[3].starts_with("c yyy") && lines[3].ends_with('…'));
        assert_eq!(&e.text[e.places[0].clone()], "c");
        assert_eq!(&e.text[e.places[1].clone()], "a");
    }

    #[test]
    fn line_breaks_of_ariadne_only_become_spaces_and_controls_marks() {
        assert_eq!(sanitize("a\rb\x0Bc\u{2028}d\n"), "a b c   d\n");
        assert_eq!(sanitize("\0x\x1b[31m\u{9b}2J\t\x7f\n"), "?x?[31m??2J\t?\n");
        assert!(matches!(sanitize("plain\té\n"), Cow::Borrowed(_)));
    }
}
