//! Renders diagnostics in the three formats of `tcprelay-cc check --format`: `human`
//! (ariadne, for people), `short` (one line each, for CI logs and grep) and `json`
//! (JSON Lines, for editors). This is the only module that knows about ariadne.
//!
//! Whatever a caller passes, what is printed is bounded and safe to log:
//!
//! - every secret is masked, in the source lines shown and in every text
//!   ([`super::mask`]), since the short format ends up in the system log;
//! - at most [`MAX_SHOWN`] diagnostics are printed (the errors first), followed by a
//!   line that counts the others, so that a file of 10,000 errors prints 50;
//! - a long source line is shown as windows around the places
//!   ([`super::excerpt`]), and long quotations in texts are shortened.
//!
//! Spans are byte ranges produced by the earlier stages. They are clamped into the
//! source and onto character boundaries here, so a span that is empty, reversed, at the
//! end of the file or past it is rendered as well as it can be and never panics.
//! Lines and columns are those of the source as given, whatever was masked or cut.

use std::fmt::Write as _;
use std::ops::Range;

use ariadne::{
    Cache, Color, Config, Fmt, IndexType, Label as AriadneLabel, Report, ReportKind, Source,
};
use serde_json::{json, Value};

use super::excerpt::{self, sanitize};
use super::lines::{ceil_char_boundary, floor_char_boundary, LineIndex, Position};
use super::mask::Mask;
use super::{Diagnostic, Label, Severity};
use crate::ast::Span;
use crate::include::SourceMap;

/// The most diagnostics printed in one run; the others are counted in a last line.
pub const MAX_SHOWN: usize = 50;

/// What is printed of the diagnostics of one file: the diagnostics chosen, moved into
/// the file and masked, and the masked source.
struct View<'a> {
    /// The file's name.
    name: &'a str,
    src: &'a str,
    shown: Vec<Diagnostic>,
    /// `src` with its secrets masked, byte for byte.
    display: String,
}
/// How many diagnostics were left out, by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Omitted {
    errors: usize,
    warnings: usize,
}

impl Omitted {
    fn is_empty(self) -> bool {
        self.errors == 0 && self.warnings == 0
    }

    /// `9950 more errors and 2 warnings not shown`.
    fn sentence(self) -> String {
        let mut parts = Vec::new();
        if self.errors > 0 {
            parts.push(plural(self.errors, "error"));
        }
        if self.warnings > 0 {
            parts.push(plural(self.warnings, "warning"));
        }
        let counts = parts.join(" and ");
        let (n, rest) = counts.split_once(' ').unwrap_or(("0", "diagnostics"));
        format!("{n} more {rest} not shown")
    }
}

impl<'a> View<'a> {
    /// The view of file `k` of `map` for `shown`, diagnostics in that file's offsets.
    /// The values that `${VAR}` gave the strings in the file's secret places are
    /// secrets too: messages may quote them, the source only shows `${VAR}`.
    fn new(map: &'a SourceMap, k: usize, shown: Vec<Diagnostic>) -> View<'a> {
        let src = map.file_text(k);
        let file = &map.files()[k];
        let secrets = crate::lexer::secret_spans(src);
        let mut mask = Mask::new(src, &secrets);
        for (span, value) in map.expanded() {
            let (at, local) = map.local(*span);
            if at == k
                && secrets
                    .iter()
                    .any(|s| s.start < local.end && local.start < s.end.max(s.start + 1))
            {
                mask.add_secret(value);
            }
        }
        let display = crate::check::redact(src, &secrets);
        let shown = shown.iter().map(|d| mask.diagnostic(d)).collect();
        View {
            name: &file.name,
            src,
            shown,
            display,
        }
    }
}

/// The diagnostics to print, each moved into its file, in runs of one file each, and
/// how many are left out. A label in another file than its diagnostic's becomes a note
/// naming the place; a diagnostic in an included file gets a note for each include
/// that led to it ("included from a.cfg:3:9"), as rustc's "in this macro invocation".
fn views<'a>(diags: &[Diagnostic], map: &'a SourceMap) -> (Vec<View<'a>>, Omitted) {
    let (chosen, omitted) = choose(diags);
    let indexes: Vec<std::cell::OnceCell<LineIndex<'_>>> = map
        .files()
        .iter()
        .map(|_| std::cell::OnceCell::new())
        .collect();
    let at = |span: Span| {
        let (k, local) = map.local(span);
        let position = indexes[k]
            .get_or_init(|| LineIndex::new(map.file_text(k)))
            .position(local.start);
        format!(
            "{}:{}:{}",
            map.files()[k].name,
            position.line,
            position.column
        )
    };
    let mut runs: Vec<(usize, Vec<Diagnostic>)> = Vec::new();
    for d in chosen {
        let (k, span) = map.local(d.span);
        let mut local = Diagnostic {
            span,
            labels: Vec::new(),
            ..d.clone()
        };
        for label in &d.labels {
            let (kl, span) = map.local(label.span);
            if kl == k {
                local.labels.push(Label {
                    span,
                    message: label.message.clone(),
                });
            } else {
                local
                    .notes
                    .push(format!("{}: {}", at(label.span), label.message));
            }
        }
        let mut from = map.files()[k].included_at;
        while let Some(span) = from {
            local.notes.push(format!("included from {}", at(span)));
            from = map.files()[map.file_at(span.start)].included_at;
        }
        match runs.last_mut() {
            Some((last, run)) if *last == k => run.push(local),
            _ => runs.push((k, vec![local])),
        }
    }
    let views = runs
        .into_iter()
        .map(|(k, run)| View::new(map, k, run))
        .collect();
    (views, omitted)
}

/// The diagnostics to print, in their order: the first [`MAX_SHOWN`] errors, then as
/// many of the first warnings as there is room for; and how many are left out.
fn choose(diags: &[Diagnostic]) -> (Vec<&Diagnostic>, Omitted) {
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let shown_errors = errors.min(MAX_SHOWN);
    let shown_warnings = warnings.min(MAX_SHOWN - shown_errors);
    let (mut e, mut w) = (0, 0);
    let chosen = diags
        .iter()
        .filter(|d| {
            let (taken, limit) = if d.is_error() {
                (&mut e, shown_errors)
            } else {
                (&mut w, shown_warnings)
            };
            *taken += 1;
            *taken <= limit
        })
        .collect();
    let omitted = Omitted {
        errors: errors - shown_errors,
        warnings: warnings - shown_warnings,
    };
    (chosen, omitted)
}

/// Renders `diags` for a person: one ariadne report each, with the source lines, then a
/// summary line. Without `color` the output contains no ANSI escapes, so it can be
/// compared with golden files.
pub fn human(diags: &[Diagnostic], file_name: &str, src: &str, color: bool) -> String {
    human_map(diags, &SourceMap::single(file_name, src), color)
}

/// [`human`] for diagnostics over the files of `map`: each shows its own file.
pub fn human_map(diags: &[Diagnostic], map: &SourceMap, color: bool) -> String {
    let (views, omitted) = views(diags, map);
    let mut out = String::new();
    for view in &views {
        human_file(view, color, &mut out);
    }
    if !omitted.is_empty() {
        let _ = writeln!(
            out,
            "{} (only the first {MAX_SHOWN} are shown)",
            omitted.sentence()
        );
    }
    out.push_str(&summary(diags, color));
    out
}

/// The reports of the diagnostics of one file.
fn human_file(view: &View<'_>, color: bool, out: &mut String) {
    let (file_name, src) = (view.name, view.src);
    let display = sanitize(&view.display);
    let display_index = LineIndex::new(&display);
    let src_index = LineIndex::new(view.src);
    // Built once per call, and only when a diagnostic is drawn from the whole source:
    // ariadne indexes the lines of the source here.
    let mut whole: Option<Source<&str>> = None;
    // Character offsets, converted here: with byte offsets ariadne 0.6 locates an
    // excerpt after the first by a character offset read as a byte offset, which
    // points into (and panics on) a multi-byte character when one stands before it.
    let config = Config::default()
        .with_color(color)
        .with_index_type(IndexType::Char);
    for d in &view.shown {
        let places: Vec<Range<usize>> = std::iter::once(d.span)
            .chain(d.labels.iter().map(|l| l.span))
            .map(|span| clamp(span, src))
            .collect();
        let groups = groups(&places, &src_index);
        let draw = |drawn: &[Range<usize>]| Draw {
            d,
            file_name,
            drawn: drawn.to_vec(),
            places: places.clone(),
            groups: groups.clone(),
            config,
            color,
        };
        let real_at = |offset| src_index.position(offset);
        let text = match excerpt::excerpt(&display, &display_index, &places) {
            Some(ex) => {
                let source = Source::from(ex.text.as_str());
                let shown_at = |offset| ariadne_position(&ex.text, offset);
                draw(&ex.places).write(&source, shown_at, real_at)
            }
            None => {
                let source = whole.get_or_insert_with(|| Source::from(&*display));
                let shown_at = |offset| display_index.position(offset);
                draw(&places).write(source, shown_at, real_at)
            }
        };
        match text {
            Some(text) => out.push_str(&text),
            // Writing into a `Vec` does not fail; should ariadne ever refuse, the
            // diagnostic is still shown, in the short form.
            None => out.push_str(&short_line(d, file_name, &src_index)),
        }
    }
}

/// Places this many lines apart or more are drawn in separate excerpts: ariadne walks
/// every line between the places of one excerpt, and a "first defined here" can be a
/// million lines above.
const GROUP_GAP: usize = 8;

/// The group of each place: places within [`GROUP_GAP`] lines of each other share
/// one, numbered in reading order.
fn groups(places: &[Range<usize>], index: &LineIndex<'_>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..places.len()).collect();
    order.sort_by_key(|&i| (places[i].start, i));
    let mut groups = vec![0; places.len()];
    let mut group = 0;
    let mut last_line: Option<usize> = None;
    for i in order {
        let first = index.line_of(places[i].start);
        if last_line.is_some_and(|last| first > last + GROUP_GAP) {
            group += 1;
        }
        groups[i] = group;
        let end = index.line_of(places[i].end);
        last_line = Some(last_line.map_or(end, |last| last.max(end)));
    }
    groups
}

/// One diagnostic to draw with ariadne: its places in the drawn text (`drawn`) and in
/// the source (`places`), primary first, and the group of each.
struct Draw<'a> {
    d: &'a Diagnostic,
    file_name: &'a str,
    drawn: Vec<Range<usize>>,
    places: Vec<Range<usize>>,
    groups: Vec<usize>,
    config: Config,
    color: bool,
}

impl Draw<'_> {
    /// The report drawn from `source`, with the line and column above each excerpt
    /// put right: ariadne prints those of the drawn text (`shown_at`), which differ
    /// from the source's (`real_at`) where a line was cut or a secret masked.
    fn write<S: AsRef<str>>(
        &self,
        source: &Source<S>,
        shown_at: impl Fn(usize) -> Position,
        real_at: impl Fn(usize) -> Position,
    ) -> Option<String> {
        let mut buf = Vec::new();
        let cache = Sources {
            name: self.file_name,
            source,
        };
        self.report(source).write(cache, &mut buf).ok()?;
        let mut text = String::from_utf8_lossy(&buf).into_owned();
        // The excerpts come in the order of their groups, the primary place's first;
        // each is located at its first place, the primary one's at the primary place.
        let name = self.file_name;
        let mut from = 0;
        let mut order: Vec<usize> = (0..=self.groups.iter().copied().max().unwrap_or(0)).collect();
        order.sort_by_key(|&g| g != self.groups[0]);
        for group in order {
            let Some(i) = (0..self.places.len())
                .filter(|&i| self.groups[i] == group)
                .min_by_key(|&i| (i != 0 || self.groups[0] != group, self.places[i].start, i))
            else {
                continue;
            };
            let (shown, real) = (shown_at(self.drawn[i].start), real_at(self.places[i].start));
            let shown = format!(" {name}:{}:{} ", shown.line, shown.column);
            let Some(at) = text[from..].find(&shown).map(|at| from + at) else {
                continue;
            };
            let real = format!(" {name}:{}:{} ", real.line, real.column);
            text.replace_range(at..at + shown.len(), &real);
            from = at + real.len();
        }
        Some(text)
    }

    /// The ariadne report. The config is set before the labels are added, because
    /// ariadne drops label colours according to the config in force when a label is
    /// added.
    fn report<S: AsRef<str>>(&self, source: &Source<S>) -> Report<'static, (usize, Range<usize>)> {
        let d = self.d;
        let (kind, primary_color) = match d.severity {
            Severity::Error => (ReportKind::Error, Color::Red),
            Severity::Warning => (ReportKind::Warning, Color::Yellow),
        };
        let primary_text = if d.label.is_empty() {
            &d.message
        } else {
            &d.label
        };
        // ariadne draws labels in `order`, and starts a new excerpt whenever a label
        // lies on an earlier line than the one before it: order them by position, so
        // that a "first defined here" above the primary label shares its excerpt, the
        // primary place's group first.
        let rank = |i: usize| -> i32 {
            let key = |j: usize| (self.groups[j] != self.groups[0], self.places[j].start);
            let before = (0..self.places.len()).filter(|&j| key(j) < key(i)).count();
            i32::try_from(before).unwrap_or(i32::MAX)
        };
        let span = |i: usize| (self.groups[i], char_range(source, &self.drawn[i]));
        let mut primary = AriadneLabel::new(span(0))
            .with_message(primary_text)
            .with_priority(1)
            .with_order(rank(0));
        if self.color {
            primary = primary.with_color(primary_color);
        }
        let mut builder = Report::build(kind, span(0))
            .with_config(self.config)
            .with_code(d.code)
            .with_message(&d.message)
            .with_label(primary);
        for (i, label) in d.labels.iter().enumerate().map(|(i, l)| (i + 1, l)) {
            let mut secondary = AriadneLabel::new(span(i))
                .with_message(&label.message)
                .with_order(rank(i));
            if self.color {
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
}

/// The text of one report under one id per group: every id is the same source and
/// shows as the file's name.
struct Sources<'a, S: AsRef<str>> {
    name: &'a str,
    source: &'a Source<S>,
}

impl<S: AsRef<str>> Cache<usize> for Sources<'_, S> {
    type Storage = S;

    fn fetch(&mut self, _: &usize) -> Result<&Source<S>, impl std::fmt::Debug> {
        Ok::<_, ()>(self.source)
    }

    fn display<'b>(&self, _: &'b usize) -> Option<impl std::fmt::Display + 'b> {
        Some(self.name.to_string())
    }
}

/// The byte range `bytes` of `source` (on character boundaries) in characters, found
/// from the line ariadne indexed, so without counting from the start of the text.
fn char_range<S: AsRef<str>>(source: &Source<S>, bytes: &Range<usize>) -> Range<usize> {
    let at = |offset: usize| {
        source
            .get_byte_line(offset)
            .and_then(|(line, _, column)| {
                let text = source.get_line_text(line)?;
                let column = floor_char_boundary(text, column);
                Some(line.offset() + text[..column].chars().count())
            })
            .unwrap_or(source.len())
    };
    at(bytes.start)..at(bytes.end.max(bytes.start))
}

/// The line and column ariadne prints for byte `offset` of an excerpt (which has no
/// line breaks but `\n`): 1-based, the column in characters.
fn ariadne_position(text: &str, offset: usize) -> Position {
    let offset = floor_char_boundary(text, offset);
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text.as_bytes()[..line_start]
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    Position {
        line: line + 1,
        column: text[line_start..offset].chars().count() + 1,
    }
}

/// Renders `diags` one line each: `file:line:col: error[E0003]: message (help: ...)`.
/// Lines and columns are 1-based; columns count characters. When diagnostics were
/// left out, a last line says how many: `file: 9950 more errors not shown`.
pub fn short(diags: &[Diagnostic], file_name: &str, src: &str) -> String {
    short_map(diags, &SourceMap::single(file_name, src))
}

/// [`short`] for diagnostics over the files of `map`: each line names its own file.
pub fn short_map(diags: &[Diagnostic], map: &SourceMap) -> String {
    let (views, omitted) = views(diags, map);
    let mut out = String::new();
    for view in &views {
        let index = LineIndex::new(view.src);
        for d in &view.shown {
            out.push_str(&short_line(d, view.name, &index));
        }
    }
    if !omitted.is_empty() {
        let _ = writeln!(out, "{}: {}", main_name(map), omitted.sentence());
    }
    out
}

/// The main file's name, for the line that counts what was left out.
fn main_name(map: &SourceMap) -> &str {
    map.files().first().map_or("", |f| f.name.as_str())
}

fn short_line(d: &Diagnostic, file_name: &str, index: &LineIndex<'_>) -> String {
    let start = index.position(d.span.start);
    // Writing into a `String` cannot fail.
    let mut out = format!(
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
    out
}

/// Renders `diags` as JSON Lines: one object per diagnostic, each on its own line.
/// Positions are 1-based, columns count characters, and `end` is exclusive. When
/// diagnostics were left out, a last object counts them:
/// `{"file": ..., "omitted": {"errors": 9950, "warnings": 2}, "message": ...}`.
pub fn json(diags: &[Diagnostic], file_name: &str, src: &str) -> String {
    json_map(diags, &SourceMap::single(file_name, src))
}

/// [`json`] for diagnostics over the files of `map`: each object names its own file,
/// and its offsets are that file's.
pub fn json_map(diags: &[Diagnostic], map: &SourceMap) -> String {
    let (views, omitted) = views(diags, map);
    let mut out = String::new();
    for view in &views {
        json_file(view, &mut out);
    }
    if !omitted.is_empty() {
        let value = json!({
            "file": main_name(map),
            "omitted": { "errors": omitted.errors, "warnings": omitted.warnings },
            "message": omitted.sentence(),
        });
        let _ = writeln!(out, "{value}");
    }
    out
}

/// The objects of the diagnostics of one file.
fn json_file(view: &View<'_>, out: &mut String) {
    let (file_name, src) = (view.name, view.src);
    let index = LineIndex::new(src);
    for d in &view.shown {
        let primary = clamp(d.span, src);
        let labels: Vec<Value> = d
            .labels
            .iter()
            .map(|label| {
                let range = clamp(label.span, src);
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
    fn human_draws_later_excerpts_after_multi_byte_characters() {
        // Characters of several bytes before a place drawn in a second excerpt: with
        // byte offsets, ariadne 0.6 located that excerpt by a character offset read as
        // a byte offset and sliced into the middle of a character (a panic).
        let mut src = String::from("\u{FFFD}é = {\n");
        src.push_str(&"  x = 1\n".repeat(12));
        src.push_str("  y = 127.0.0.1\u{FFFD}\n}\n");
        let brace = src.find('{').expect("brace");
        let y = src.find('y').expect("y");
        let d = Diagnostic::error(Code::UnexpectedEof, Span::new(brace, brace + 1), "unclosed")
            .with_label("opened here")
            .with_secondary(Span::new(y, y + 1), "this one");
        let out = human(&[d], "m.cfg", &src, false);
        assert!(out.contains("m.cfg:1:6"), "{out}");
        assert!(out.contains("m.cfg:14:3"), "{out}");
        assert!(out.contains("  y = 127.0.0.1\u{FFFD}"), "{out}");
        assert!(out.contains("this one"), "{out}");
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

    fn errors_and_warnings(errors: usize, warnings: usize) -> Vec<Diagnostic> {
        let mut diags = Vec::new();
        for i in 0..errors {
            diags.push(Diagnostic::error(
                Code::InvalidToken,
                Span::new(i, i + 1),
                "e",
            ));
        }
        for i in 0..warnings {
            diags.push(Diagnostic::warning(
                Code::Deprecated,
                Span::new(i, i + 1),
                "w",
            ));
        }
        diags.sort_by_key(|d| d.span.start);
        diags
    }

    #[test]
    fn at_most_fifty_are_shown_and_the_rest_counted_in_every_format() {
        let src = "x".repeat(200);
        let diags = errors_and_warnings(120, 7);
        let out = human(&diags, "a.cfg", &src, false);
        assert_eq!(out.matches("[E0001] Error").count(), MAX_SHOWN);
        assert!(!out.contains("Warning"), "errors come first");
        assert!(
            out.ends_with(
                "\n70 more errors and 7 warnings not shown (only the first 50 are shown)\n\
                 error: 120 errors and 7 warnings emitted\n"
            ),
            "{out}"
        );
        let out = short(&diags, "a.cfg", &src);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), MAX_SHOWN + 1);
        assert_eq!(
            lines[MAX_SHOWN],
            "a.cfg: 70 more errors and 7 warnings not shown"
        );
        let out = json(&diags, "a.cfg", &src);
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert_eq!(lines.len(), MAX_SHOWN + 1);
        assert_eq!(
            lines[MAX_SHOWN],
            json!({
                "file": "a.cfg",
                "omitted": {"errors": 70, "warnings": 7},
                "message": "70 more errors and 7 warnings not shown",
            })
        );
        // Exactly the limit: no count.
        let diags = errors_and_warnings(MAX_SHOWN, 0);
        assert_eq!(short(&diags, "a.cfg", &src).lines().count(), MAX_SHOWN);
        assert!(!human(&diags, "a.cfg", &src, false).contains("not shown"));
    }

    #[test]
    fn warnings_fill_what_room_the_errors_leave() {
        let src = "x".repeat(200);
        // 60 warnings first, one error last: the error is shown.
        let mut diags = errors_and_warnings(0, 60);
        diags.push(Diagnostic::error(
            Code::InvalidToken,
            Span::new(150, 151),
            "last",
        ));
        let out = short(&diags, "a.cfg", &src);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), MAX_SHOWN + 1);
        assert_eq!(lines[MAX_SHOWN - 1], "a.cfg:1:151: error[E0001]: last");
        assert_eq!(lines[MAX_SHOWN], "a.cfg: 11 more warnings not shown");
        let out = short(&errors_and_warnings(0, 51), "a.cfg", &src);
        assert!(
            out.ends_with("\na.cfg: 1 more warning not shown\n"),
            "{out}"
        );
    }

    #[test]
    fn a_long_line_is_shown_around_the_place_with_the_real_column() {
        // `é` takes two bytes: the column counts characters.
        let src = format!("id = {}bad{} }}\n", "é".repeat(50_000), "x".repeat(50_000));
        let at = src.find("bad").expect("bad");
        let d = Diagnostic::error(
            Code::InvalidPort,
            Span::new(at, at + 3),
            "invalid port `bad`",
        )
        .with_label("not a port")
        .with_secondary(Span::new(0, 2), "in this section");
        let out = human(std::slice::from_ref(&d), "a.cfg", &src, false);
        assert!(out.len() < 2_000, "{} bytes:\n{out}", out.len());
        assert!(out.contains("─[ a.cfg:1:50006 ]"), "{out}");
        assert!(out.contains("id = éééé") && out.contains("…éééé"), "{out}");
        assert!(out.contains("ébadxxx") && out.contains("xxx…"), "{out}");
        assert!(out.contains("not a port") && out.contains("in this section"));
        let out = short(std::slice::from_ref(&d), "a.cfg", &src);
        assert!(out.starts_with("a.cfg:1:50006: error[E0023]"), "{out}");
        let v: Value = serde_json::from_str(json(&[d], "a.cfg", &src).trim_end()).expect("JSON");
        assert_eq!(v["start"], json!({"line": 1, "column": 50_006}));
        assert_eq!(v["byte_start"], at);
    }

    #[test]
    fn places_far_apart_are_separate_excerpts_the_primary_first() {
        // "first defined here" on line 3, the primary place at column 5001 of line 900.
        let mut src = String::new();
        for i in 1..=1000 {
            if i == 900 {
                src.push_str(&"y".repeat(5_000));
            }
            src.push_str(&format!("line{i} = x\n"));
        }
        let first = src.find("line3 ").expect("line 3");
        let second = src.find("line900 ").expect("line 900");
        let d = Diagnostic::error(
            Code::DuplicateListener,
            Span::new(second, second + 7),
            "twice",
        )
        .with_label("again here")
        .with_secondary(Span::new(first, first + 5), "first here");
        let out = human(&[d], "a.cfg", &src, false);
        let primary = out.find("─[ a.cfg:900:5001 ]").expect("the primary header");
        let secondary = out.find("─[ a.cfg:3:1 ]").expect("the other header");
        assert!(primary < secondary, "{out}");
        // Two excerpts of one line each, not the 897 lines between.
        assert!(out.lines().count() < 20, "{out}");
        assert!(
            out.contains("again here") && out.contains("first here"),
            "{out}"
        );
    }

    #[test]
    fn no_control_character_of_the_source_reaches_the_output() {
        // A NUL, an escape sequence, an 8-bit CSI (in a word) and a DEL.
        let src = "id = \0x \x1b[2J a\u{9b}31m \x7f }\n";
        let at = |s: &str| src.find(s).expect("in the source");
        let diags = [
            Diagnostic::error(Code::InvalidToken, Span::new(at("\0"), at("\0") + 1), "bad"),
            Diagnostic::error(
                Code::UnexpectedToken,
                Span::new(at("a\u{9b}"), at("31m") + 3),
                "unexpected `a\u{9b}31m`",
            ),
        ];
        for out in [
            human(&diags, "a.cfg", src, false),
            short(&diags, "a.cfg", src),
            json(&diags, "a.cfg", src),
        ] {
            assert!(
                !out.contains(|c: char| c.is_control() && c != '\n'),
                "{out:?}"
            );
        }
        let out = human(&diags, "a.cfg", src, false);
        assert!(out.contains("id = ?x ?[2J a??31m ? }"), "{out}");
        assert!(out.contains("unexpected `a\\u{9b}31m`"), "{out}");
    }

    #[test]
    fn secrets_are_masked_in_the_source_and_every_text() {
        let src = "id = tcprelay {\n  tls passphrse = S3cr3t-Pa55 \"more\"\n}\n";
        let at = src.find("S3cr3t").expect("secret");
        let d = Diagnostic::error(
            Code::UnexpectedToken,
            Span::new(at, at + 11),
            "unexpected `S3cr3t-Pa55`",
        )
        .with_label("`S3cr3t-Pa55` here")
        .with_secondary(Span::new(at, at + 6), "`S3cr3t`")
        .with_note("note `S3cr3t/x`")
        .with_help("did you mean `S3cr3t-Pa55`?");
        let diags = [d];
        for out in [
            human(&diags, "a.cfg", src, false),
            human(&diags, "a.cfg", src, true),
            short(&diags, "a.cfg", src),
            json(&diags, "a.cfg", src),
        ] {
            assert!(!out.contains("S3cr3t") && !out.contains("Pa55"), "{out}");
            assert!(out.contains("***********"), "{out}");
        }
        let out = human(&diags, "a.cfg", src, false);
        assert!(out.contains("tls passphrse = ******************"), "{out}");
        // The masked text is as long as the secret: the column stays.
        assert!(out.contains("a.cfg:2:19"), "{out}");
    }

    /// A main file that includes `inc.cfg` on its line 2, both in a temporary
    /// directory, expanded; and the global span of `needle` in the included file.
    fn two_files(
        env: &dyn Fn(&str) -> Option<String>,
    ) -> (tempfile::TempDir, crate::include::Expanded) {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = dir.path().join("main.cfg");
        std::fs::write(&main, "id = tcprelay {\n  include = inc.cfg\n}\n").expect("main");
        std::fs::write(
            dir.path().join("inc.cfg"),
            "remote = { address = 10.0.0.1\n  port = x }\ntls passphrase = \"${PASS}\"\n",
        )
        .expect("inc");
        let name = main.display().to_string();
        let text = std::fs::read_to_string(&main).expect("read");
        let x = crate::include::expand(&name, &text, crate::include::Origin::of(&name), env);
        (dir, x)
    }

    fn global(x: &crate::include::Expanded, needle: &str, file: usize) -> Span {
        let f = &x.map.files()[file];
        let at = x.map.file_text(file).find(needle).expect("needle") + f.base;
        Span::new(at, at + needle.len())
    }

    #[test]
    fn a_diagnostic_in_an_included_file_names_that_file_line_and_column() {
        let (dir, x) = two_files(&|_| Some("pw".to_string()));
        let d = Diagnostic::error(Code::InvalidPort, global(&x, "x", 1), "invalid port `x`")
            .with_label("not a port")
            .with_secondary(global(&x, "remote", 1), "in this remote")
            .with_secondary(global(&x, "tcprelay", 0), "in this section");
        let main = dir.path().join("main.cfg").display().to_string();
        let inc = dir.path().join("inc.cfg").display().to_string();
        let diags = [d];
        let out = human_map(&diags, &x.map, false);
        assert!(out.contains(&format!("─[ {inc}:2:10 ]")), "{out}");
        assert!(
            out.contains("port = x }") && out.contains("in this remote"),
            "{out}"
        );
        assert!(
            out.contains(&format!(": {main}:1:6: in this section")),
            "{out}"
        );
        assert!(
            out.contains(&format!(": included from {main}:2:13")),
            "{out}"
        );
        assert_eq!(
            short_map(&diags, &x.map),
            format!("{inc}:2:10: error[E0023]: invalid port `x`\n")
        );
        let v: Value = serde_json::from_str(json_map(&diags, &x.map).trim_end()).expect("JSON");
        assert_eq!(v["file"], inc.as_str());
        assert_eq!(v["start"], json!({"line": 2, "column": 10}));
        let local = x.map.file_text(1).find(" x ").expect("x") + 1;
        assert_eq!(v["byte_start"], local);
        assert_eq!(v["labels"][0]["start"], json!({"line": 1, "column": 1}));
        assert_eq!(
            v["notes"],
            json!([
                format!("{main}:1:6: in this section"),
                format!("included from {main}:2:13")
            ])
        );
        // The main file's diagnostics name the main file, in the same run.
        let both = [
            Diagnostic::error(Code::UnexpectedToken, global(&x, "id", 0), "first"),
            diags[0].clone(),
        ];
        let out = short_map(&both, &x.map);
        assert!(
            out.starts_with(&format!("{main}:1:1: error[E0003]: first\n{inc}:2:10:")),
            "{out}"
        );
    }

    #[test]
    fn a_secret_from_a_variable_is_masked_in_every_format() {
        let (_dir, x) = two_files(&|name| (name == "PASS").then(|| "Op3nS3same".to_string()));
        assert!(x.diags.is_empty(), "{:?}", x.diags);
        let at = global(&x, "\"${PASS}\"", 1);
        let d = Diagnostic::error(
            Code::BadPassphrase,
            at,
            "the key cannot be decrypted with `Op3nS3same`",
        )
        .with_help("Op3nS3same is wrong: \"Op3nS3same\"");
        let diags = [d];
        for out in [
            human_map(&diags, &x.map, false),
            short_map(&diags, &x.map),
            json_map(&diags, &x.map),
        ] {
            assert!(!out.contains("Op3n"), "{out}");
            assert!(out.contains("`**********`"), "{out}");
        }
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
