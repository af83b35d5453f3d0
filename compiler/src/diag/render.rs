//! Renders diagnostics in the three formats of `tcprelay-cc check --format`: `human`
//! (ariadne, for people), `short` (one line each, for CI logs and grep) and `json`
//! (JSON Lines, for editors). This is the only module that knows about ariadne.
//!
//! Spans are byte ranges produced by the earlier stages. They are clamped into the
//! source and onto character boundaries here, so a span that is empty, reversed, at the
//! end of the file or past it is rendered as well as it can be and never panics.

use std::fmt::Write as _;
use std::ops::Range;

use ariadne::{Color, Config, Fmt, IndexType, Label as AriadneLabel, Report, ReportKind, Source};
use serde_json::{json, Value};

use super::{Diagnostic, Severity};
use crate::ast::Span;

/// Renders `diags` for a person: one ariadne report each, with the source lines, then a
/// summary line. Without `color` the output contains no ANSI escapes, so it can be
/// compared with golden files.
pub fn human(diags: &[Diagnostic], file_name: &str, src: &str, color: bool) -> String {
    // Built once per call: ariadne indexes the lines of the source here.
    let source = Source::from(src);
    let config = Config::default()
        .with_color(color)
        .with_index_type(IndexType::Byte);
    let mut out = Vec::new();
    for d in diags {
        let report = report(d, file_name, src, config, color);
        if report.write((file_name, &source), &mut out).is_err() {
            // Writing into a `Vec` does not fail; should ariadne ever refuse, the
            // diagnostic is still shown, in the short form.
            out.extend_from_slice(short(std::slice::from_ref(d), file_name, src).as_bytes());
        }
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push_str(&summary(diags, color));
    text
}

/// Renders `diags` one line each: `file:line:col: error[E0003]: message (help: ...)`.
/// Lines and columns are 1-based; columns count characters.
pub fn short(diags: &[Diagnostic], file_name: &str, src: &str) -> String {
    let index = LineIndex::new(src);
    let mut out = String::new();
    for d in diags {
        let start = index.position(d.span.start);
        // Writing into a `String` cannot fail.
        let _ = write!(
            out,
            "{file_name}:{}:{}: {}[{}]: {}",
            start.line,
            start.column,
            d.severity.as_str(),
            d.code,
            one_line(&d.message)
        );
        if let Some(help) = &d.help {
            let _ = write!(out, " (help: {})", one_line(help));
        }
        out.push('\n');
    }
    out
}

/// Renders `diags` as JSON Lines: one object per diagnostic, each on its own line.
/// Positions are 1-based, columns count characters, and `end` is exclusive.
pub fn json(diags: &[Diagnostic], file_name: &str, src: &str) -> String {
    let index = LineIndex::new(src);
    let mut out = String::new();
    for d in diags {
        let primary = index.range(d.span);
        let labels: Vec<Value> = d
            .labels
            .iter()
            .map(|label| {
                let range = index.range(label.span);
                json!({
                    "message": label.message,
                    "byte_start": range.start,
                    "byte_end": range.end,
                    "start": index.position(range.start).to_json(),
                    "end": index.position(range.end).to_json(),
                })
            })
            .collect();
        let value = json!({
            "file": file_name,
            "severity": d.severity.as_str(),
            "code": d.code.as_str(),
            "message": d.message,
            "start": index.position(primary.start).to_json(),
            "end": index.position(primary.end).to_json(),
            "byte_start": primary.start,
            "byte_end": primary.end,
            "label": if d.label.is_empty() { None } else { Some(&d.label) },
            "labels": labels,
            "notes": d.notes,
            "help": d.help,
        });
        // `Value`'s `Display` is compact JSON: no newline inside an object.
        let _ = writeln!(out, "{value}");
    }
    out
}

/// Builds the ariadne report for one diagnostic. The config is set before the labels
/// are added, because ariadne drops label colours according to the config in force
/// when a label is added.
fn report<'a>(
    d: &Diagnostic,
    file_name: &'a str,
    src: &str,
    config: Config,
    color: bool,
) -> Report<'static, (&'a str, Range<usize>)> {
    let (kind, primary_color) = match d.severity {
        Severity::Error => (ReportKind::Error, Color::Red),
        Severity::Warning => (ReportKind::Warning, Color::Yellow),
    };
    let primary = clamp(d.span, src);
    let primary_text = if d.label.is_empty() {
        &d.message
    } else {
        &d.label
    };
    // ariadne draws labels in `order`, and starts a new excerpt whenever a label lies
    // on an earlier line than the one before it: order them by position, so that a
    // "first defined here" above the primary label shares its excerpt.
    let rank = |start: usize| -> i32 {
        let before = d.labels.iter().filter(|l| l.span.start < start).count()
            + usize::from(d.span.start < start);
        i32::try_from(before).unwrap_or(i32::MAX)
    };
    let mut primary_label = AriadneLabel::new((file_name, primary.clone()))
        .with_message(primary_text)
        .with_priority(1)
        .with_order(rank(d.span.start));
    if color {
        primary_label = primary_label.with_color(primary_color);
    }
    let mut builder = Report::build(kind, (file_name, primary))
        .with_config(config)
        .with_code(d.code)
        .with_message(&d.message)
        .with_label(primary_label);
    for label in &d.labels {
        let mut secondary = AriadneLabel::new((file_name, clamp(label.span, src)))
            .with_message(&label.message)
            .with_order(rank(label.span.start));
        if color {
            secondary = secondary.with_color(Color::Cyan);
        }
        builder = builder.with_label(secondary);
    }
    for note in &d.notes {
        builder = builder.with_note(note);
    }
    if let Some(help) = &d.help {
        builder = builder.with_help(help);
    }
    builder.finish()
}

/// The closing line of the human format, e.g. `error: 2 errors and 1 warning emitted`;
/// empty when there is nothing to report.
fn summary(diags: &[Diagnostic], color: bool) -> String {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let mut parts = Vec::new();
    if errors > 0 {
        parts.push(plural(errors, "error"));
    }
    if warnings > 0 {
        parts.push(plural(warnings, "warning"));
    }
    if parts.is_empty() {
        return String::new();
    }
    let (word, word_color) = if errors > 0 {
        ("error", Color::Red)
    } else {
        ("warning", Color::Yellow)
    };
    let word = word.fg(Some(word_color).filter(|_| color));
    format!("{word}: {} emitted\n", parts.join(" and "))
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Replaces line breaks so that a message stays on its line in the short format.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// Clamps `span` into `src`: both ends at most `src.len()`, the end not before the
/// start, the start moved back and the end moved forward to character boundaries.
fn clamp(span: Span, src: &str) -> Range<usize> {
    let start = floor_char_boundary(src, span.start);
    let end = ceil_char_boundary(src, span.end.max(start));
    start..end
}

fn floor_char_boundary(src: &str, offset: usize) -> usize {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn ceil_char_boundary(src: &str, offset: usize) -> usize {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset += 1;
    }
    offset
}

/// A 1-based line and column; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    line: usize,
    column: usize,
}

impl Position {
    fn to_json(self) -> Value {
        json!({ "line": self.line, "column": self.column })
    }
}

/// The byte offset of every line start, computed once per render so that each lookup
/// is a binary search plus a walk along one line.
#[derive(Debug)]
struct LineIndex<'a> {
    src: &'a str,
    /// `starts[i]` is the byte offset where line `i + 1` begins; `starts[0] == 0`.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(src: &'a str) -> LineIndex<'a> {
        let starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { src, starts }
    }

    /// The clamped byte range of `span`.
    fn range(&self, span: Span) -> Range<usize> {
        clamp(span, self.src)
    }

    /// The line and column of byte `offset`, clamped into the source first.
    fn position(&self, offset: usize) -> Position {
        let offset = floor_char_boundary(self.src, offset);
        // `starts[0] == 0 <= offset`, so the partition point is at least 1.
        let line = self.starts.partition_point(|&start| start <= offset) - 1;
        let column = self.src[self.starts[line]..offset].chars().count() + 1;
        Position {
            line: line + 1,
            column,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Code;

    const SRC: &str = "id = spawnd {\n  listen = { address = \"é\" port = x }\n}\n";

    fn span_of(src: &str, needle: &str) -> Span {
        let start = src.find(needle).expect("needle in source");
        Span::new(start, start + needle.len())
    }

    fn port_error() -> Diagnostic {
        Diagnostic::error(Code::InvalidPort, span_of(SRC, "x"), "invalid port `x`")
            .with_label("not a port number or service name")
            .with_secondary(span_of(SRC, "listen"), "in this listener")
            .with_note("ports are 1 to 65535")
            .with_help("write a number such as `port = 8080`")
    }

    #[test]
    fn short_counts_lines_and_characters() {
        let out = short(&[port_error()], "relay.cfg", SRC);
        // `x` is byte 36 of line 2 but character 35: `é` takes two bytes.
        assert_eq!(
            out,
            "relay.cfg:2:35: error[E0023]: invalid port `x` (help: write a number such as `port = 8080`)\n"
        );
    }

    #[test]
    fn short_without_help_and_for_warnings() {
        let d = Diagnostic::warning(
            Code::DuplicateDirective,
            Span::new(0, 2),
            "`id` given twice",
        );
        assert_eq!(
            short(&[d], "a.cfg", SRC),
            "a.cfg:1:1: warning[E0028]: `id` given twice\n"
        );
        assert_eq!(short(&[], "a.cfg", SRC), "");
    }

    #[test]
    fn short_keeps_each_diagnostic_on_one_line() {
        let d = Diagnostic::error(Code::InvalidToken, Span::new(0, 1), "two\nlines")
            .with_help("a\r\nb");
        assert_eq!(
            short(&[d], "a.cfg", SRC),
            "a.cfg:1:1: error[E0001]: two lines (help: a  b)\n"
        );
    }

    #[test]
    fn json_fields_round_trip() {
        let plain = Diagnostic::warning(Code::Deprecated, Span::new(0, 2), "old");
        let out = json(&[port_error(), plain], "relay.cfg", SRC);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(out.ends_with('\n'));

        let v: Value = serde_json::from_str(lines[0]).expect("valid JSON");
        let x = SRC.find('x').expect("x in source");
        let listen = SRC.find("listen").expect("listen in source");
        assert_eq!(v["file"], "relay.cfg");
        assert_eq!(v["severity"], "error");
        assert_eq!(v["code"], "E0023");
        assert_eq!(v["message"], "invalid port `x`");
        assert_eq!(v["start"], json!({"line": 2, "column": 35}));
        assert_eq!(v["end"], json!({"line": 2, "column": 36}));
        assert_eq!(v["byte_start"], x);
        assert_eq!(v["byte_end"], x + 1);
        assert_eq!(v["label"], "not a port number or service name");
        assert_eq!(
            v["labels"],
            json!([{
                "message": "in this listener",
                "byte_start": listen,
                "byte_end": listen + 6,
                "start": {"line": 2, "column": 3},
                "end": {"line": 2, "column": 9},
            }])
        );
        assert_eq!(v["notes"], json!(["ports are 1 to 65535"]));
        assert_eq!(v["help"], "write a number such as `port = 8080`");

        let v: Value = serde_json::from_str(lines[1]).expect("valid JSON");
        assert_eq!(v["severity"], "warning");
        assert_eq!(v["label"], Value::Null);
        assert_eq!(v["labels"], json!([]));
        assert_eq!(v["notes"], json!([]));
        assert_eq!(v["help"], Value::Null);
    }

    #[test]
    fn human_without_color_shows_everything_and_no_escapes() {
        let out = human(&[port_error()], "relay.cfg", SRC, false);
        for expected in [
            "E0023",
            "invalid port `x`",
            "not a port number or service name",
            "in this listener",
            "ports are 1 to 65535",
            "write a number such as `port = 8080`",
            "relay.cfg:2:35",
            "error: 1 error emitted\n",
        ] {
            assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
        }
        assert!(!out.contains('\x1b'), "escape in:\n{out}");
        assert_eq!(
            out,
            human(&[port_error()], "relay.cfg", SRC, false),
            "deterministic"
        );
    }

    #[test]
    fn human_uses_the_message_when_the_label_is_empty() {
        let d = Diagnostic::error(
            Code::NoRemote,
            span_of(SRC, "spawnd"),
            "no remote in section `spawnd`",
        );
        let out = human(&[d], "a.cfg", SRC, false);
        assert_eq!(
            out.matches("no remote in section `spawnd`").count(),
            2,
            "{out}"
        );
    }

    #[test]
    fn human_with_color_uses_escapes() {
        let d = port_error();
        let warning = Diagnostic::warning(Code::Ignored, span_of(SRC, "id"), "no effect");
        let out = human(&[d, warning], "relay.cfg", SRC, true);
        assert!(out.contains('\x1b'));
        assert!(out.contains("E0023") && out.contains("E0041"));
    }

    #[test]
    fn empty_span_at_end_of_file_renders_everywhere() {
        for src in [SRC, SRC.trim_end(), ""] {
            let end = src.len();
            let d = Diagnostic::error(
                Code::UnexpectedEof,
                Span::new(end, end),
                "unexpected end of file",
            )
            .with_label("the block is not closed")
            .with_secondary(Span::new(0, 0), "opened here");
            let diags = [d];
            for color in [false, true] {
                let out = human(&diags, "a.cfg", src, color);
                assert!(out.contains("E0004"), "{out}");
            }
            let line = src.matches('\n').count() + 1;
            let column = src.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            assert_eq!(
                short(&diags, "a.cfg", src),
                format!("a.cfg:{line}:{column}: error[E0004]: unexpected end of file\n")
            );
            let v: Value =
                serde_json::from_str(json(&diags, "a.cfg", src).trim_end()).expect("valid JSON");
            assert_eq!(v["byte_start"], end);
            assert_eq!(v["byte_end"], end);
            assert_eq!(v["start"], json!({"line": line, "column": column}));
            assert_eq!(v["end"], v["start"]);
        }
    }

    #[test]
    fn bad_spans_are_clamped() {
        let e = SRC.find('é').expect("é in source");
        let spans = [
            Span::new(1_000, 2_000),
            Span::new(e + 1, e + 1),
            Span::new(e + 1, e + 2),
            Span::new(10, 3),
            Span::new(SRC.len(), usize::MAX),
        ];
        for span in spans {
            let d = Diagnostic::error(Code::InvalidToken, span, "bad").with_secondary(span, "here");
            let diags = [d];
            let _ = human(&diags, "a.cfg", SRC, false);
            let _ = short(&diags, "a.cfg", SRC);
            let v: Value =
                serde_json::from_str(json(&diags, "a.cfg", SRC).trim_end()).expect("valid JSON");
            let (start, end) = (
                v["byte_start"].as_u64().unwrap_or(0),
                v["byte_end"].as_u64().unwrap_or(0),
            );
            assert!(
                start <= end && end <= SRC.len() as u64,
                "{span:?} gave {start}..{end}"
            );
            assert!(SRC.is_char_boundary(start as usize) && SRC.is_char_boundary(end as usize));
        }
        assert_eq!(clamp(Span::new(e + 1, e + 1), SRC), e..e + 2);
    }

    #[test]
    fn summary_pluralises_and_omits_zero_counts() {
        let error = || Diagnostic::error(Code::InvalidToken, Span::new(0, 1), "e");
        let warning = || Diagnostic::warning(Code::Deprecated, Span::new(0, 1), "w");
        assert_eq!(summary(&[], false), "");
        assert_eq!(summary(&[error()], false), "error: 1 error emitted\n");
        assert_eq!(
            summary(&[error(), error()], false),
            "error: 2 errors emitted\n"
        );
        assert_eq!(summary(&[warning()], false), "warning: 1 warning emitted\n");
        assert_eq!(
            summary(&[warning(), warning()], false),
            "warning: 2 warnings emitted\n"
        );
        assert_eq!(
            summary(&[error(), warning(), error()], false),
            "error: 2 errors and 1 warning emitted\n"
        );
        assert_eq!(
            summary(&[warning(), error(), warning()], false),
            "error: 1 error and 2 warnings emitted\n"
        );
        assert_eq!(human(&[], "a.cfg", SRC, false), "");
        assert!(human(&[warning(), warning()], "a.cfg", SRC, false)
            .ends_with("\nwarning: 2 warnings emitted\n"));
    }

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
    }

    proptest::proptest! {
        #[test]
        fn any_span_renders_without_panic(
            src in "[a-z \n\t{}=é\"]{0,40}",
            start in 0usize..48,
            len in 0usize..48,
        ) {
            let d = Diagnostic::error(Code::UnexpectedToken, Span::new(start, start + len), "m")
                .with_label("l")
                .with_secondary(Span::new(len, start), "s");
            let diags = [d];
            let _ = human(&diags, "p.cfg", &src, false);
            proptest::prop_assert_eq!(short(&diags, "p.cfg", &src).lines().count(), 1);
            proptest::prop_assert_eq!(json(&diags, "p.cfg", &src).lines().count(), 1);
        }
    }
}
