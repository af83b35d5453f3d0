//! tcprelay-cc: compiles a spawnd/tcprelay configuration into a validated plan.
//!
//! One module per stage, named for what it produces, and one function per stage here:
//!
//! | stage   | module      | produces                                   |
//! |---------|-------------|--------------------------------------------|
//! | load    | [`source`]  | the configuration text (path, `-`, URL)    |
//! | lex     | [`lexer`]   | tokens with byte spans (logos)             |
//! | include | [`include`] | every file's tokens in one stream, `${}`   |
//! | parse   | [`parser`]  | [`ast::File`] plus syntax diagnostics      |
//! | check   | [`check`]   | [`check::Model`]: typed values with spans  |
//! | lower   | [`lower`]   | [`tcprelay_plan::Plan`]                    |
//! | emit    | [`emit`]    | the plan file                              |
//!
//! Every stage pushes diagnostics and goes on, so that one run reports every problem;
//! only [`diag::render`] prints them.
//!
//! Beside the stages: [`cli`] is the command line (`main.rs` only calls it, and the man
//! pages and completions are generated from its definition), [`explain`] prints a
//! plan, and [`diagram`] and [`manual`] draw the language's documentation.

#![forbid(unsafe_code)]

pub mod ast;
pub mod check;
pub mod cli;
pub mod diag;
pub mod diagram;
pub mod diff;
pub mod explain;
pub mod include;
pub mod input;
pub mod lexer;
pub mod lower;
pub mod manual;
pub mod parser;
pub mod route;
pub mod source;
pub mod suggest;
pub mod tlscheck;

use diag::Diagnostic;
use tcprelay_plan::Plan;

/// The section ids to use, as the original's `-i child_id` and trailing `id` select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub spawnd_id: String,
    pub tcprelay_id: String,
}

impl Default for Selection {
    fn default() -> Selection {
        Selection {
            spawnd_id: "spawnd".to_string(),
            tcprelay_id: "tcprelay".to_string(),
        }
    }
}

impl Selection {
    /// Whether the section `id` is one of the two selected.
    pub fn selects(&self, id: &str) -> bool {
        id == self.spawnd_id || id == self.tcprelay_id
    }
}

/// The compiler's version, recorded in every plan header.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Parses `src` into an AST. `None` only when nothing at all could be recovered.
/// Sections whose id `selection` does not name are skipped, not parsed.
pub fn parse(src: &str, selection: &Selection) -> (Option<ast::File>, Vec<Diagnostic>) {
    parser::parse(src, Some(selection))
}

/// Checks a parsed file for the selected sections and gives the values their types.
pub fn check(
    file: &ast::File,
    selection: &Selection,
    diags: &mut Vec<Diagnostic>,
) -> Option<check::Model> {
    check::check(file, selection, diags)
}

/// Lowers a checked model to the plan. `source` names where the configuration came
/// from.
pub fn lower(model: &check::Model, source: &str) -> Plan {
    lower::lower(model, source)
}

/// Runs every stage up to the plan. The plan is `Some` only when there was no error,
/// and it has passed [`Plan::validate`]. `source` names the main file (a path, a URL,
/// or `-` for standard input), against which its includes are resolved; `${VAR}` reads
/// the process's environment. The diagnostics' spans are in the offset space of the
/// files read ([`include::SourceMap`]): [`compile_with`] gives it to render them.
pub fn compile(src: &str, source: &str, selection: &Selection) -> (Option<Plan>, Vec<Diagnostic>) {
    let compiled = compile_with(src, source, selection, &process_env);
    (compiled.plan, compiled.diags)
}

/// A variable of the process's environment, for `${VAR}` (a value that is not UTF-8
/// is taken with U+FFFD for its bad bytes).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// What [`compile_with`] gives: the plan (only without errors), the diagnostics, and
/// the files they point into.
#[derive(Debug)]
pub struct Compiled {
    pub plan: Option<Plan>,
    pub diags: Vec<Diagnostic>,
    pub map: include::SourceMap,
    /// Where the plan's listeners, access rules and remotes are written (with the
    /// plan, `None` without one).
    pub spans: Option<PlanSpans>,
}

/// The places in the source of the plan's listeners, access rules and remotes, each
/// vector aligned with the plan's (`spans.listeners[i]` is where
/// `plan.spawnd.listeners[i]` was written: its `listen` key; a host name that
/// resolves to several addresses gives each of its listeners the same place), in
/// the offset space of the [`Compiled::map`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanSpans {
    pub listeners: Vec<ast::Span>,
    /// Each `acl = ...` rule.
    pub acl: Vec<ast::Span>,
    /// Each remote's `remote` key.
    pub remotes: Vec<ast::Span>,
    /// Each discovered name's `remote` key.
    pub discovered: Vec<ast::Span>,
}

impl PlanSpans {
    fn of(model: &check::Model) -> PlanSpans {
        PlanSpans {
            listeners: model.spawnd.listeners.iter().map(|l| l.key).collect(),
            acl: model.spawnd.acl.iter().map(|r| r.span).collect(),
            remotes: model.relay.remotes.iter().map(|r| r.key).collect(),
            discovered: model.relay.discovered.iter().map(|r| r.key).collect(),
        }
    }
}

impl Compiled {
    /// `span` as `file:line:col` (1-based, columns in characters), in the file it
    /// is in.
    pub fn place(&self, span: ast::Span) -> String {
        if self.map.files().is_empty() {
            return String::new();
        }
        let (k, local) = self.map.local(span);
        let at = diag::lines::LineIndex::new(self.map.file_text(k)).position(local.start);
        format!("{}:{}:{}", self.map.files()[k].name, at.line, at.column)
    }
}

/// [`compile`] with the files read kept for the renderers, and `env` for the
/// environment's variables.
pub fn compile_with(
    src: &str,
    source: &str,
    selection: &Selection,
    env: &dyn Fn(&str) -> Option<String>,
) -> Compiled {
    let expanded = include::expand(source, src, include::Origin::of(source), env);
    let map = expanded.map;
    let (file, diags) =
        parser::parse_tokens(map.text(), expanded.tokens, expanded.diags, Some(selection));
    // A string with an unset variable is reported at the variable (E0058), not again
    // as the bad value it leaves.
    let unset: Vec<ast::Span> = diags
        .iter()
        .filter(|d| d.code == diag::Code::UnsetVariable)
        .map(|d| d.span)
        .collect();
    let (plan, spans, mut diags) = finish(map.text(), file, diags, source, selection);
    if !unset.is_empty() {
        diags.retain(|d| {
            d.code == diag::Code::UnsetVariable
                || !unset
                    .iter()
                    .any(|u| d.span.start <= u.start && u.end <= d.span.end)
        });
    }
    Compiled {
        plan,
        diags,
        map,
        spans,
    }
}

/// The stages after the parser.
fn finish(
    src: &str,
    file: Option<ast::File>,
    mut diags: Vec<Diagnostic>,
    source: &str,
    selection: &Selection,
) -> (Option<Plan>, Option<PlanSpans>, Vec<Diagnostic>) {
    // An unterminated string or an unclosed block leaves the file's structure unknown;
    // checking what was recovered would only report the damage again.
    let broken = diags.iter().any(|d| {
        matches!(
            d.code,
            diag::Code::UnterminatedString | diag::Code::UnexpectedEof
        )
    });
    let model = match &file {
        Some(file) if !broken => {
            let mut syntax_errors: Vec<ast::Span> = diags
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.span)
                .collect();
            syntax_errors.sort_unstable();
            let mut found = Vec::new();
            let model = check(file, selection, &mut found);
            drop_cascades(file, &syntax_errors, &mut found);
            diags.extend(found);
            model
        }
        _ => None,
    };
    // Report in reading order, whichever stage found what.
    diags.sort_by_key(|d| (d.span.start, d.span.end));
    one_per_place(&mut diags);
    quoting_notes(src, &mut diags);
    if diag::has_errors(&diags) {
        return (None, None, diags);
    }
    let Some(model) = model else {
        return (None, None, diags);
    };
    let plan = lower(&model, source);
    debug_assert!(
        plan.validate().is_ok(),
        "a checked model lowers to a valid plan: {:?}",
        plan.validate()
    );
    match plan.validate() {
        Ok(()) => (Some(plan), Some(PlanSpans::of(&model)), diags),
        Err(_) => (None, None, diags),
    }
}

/// One mistake, one report: of the diagnostics at one place of the text (the same
/// primary span), the first error is kept (the parser's before the checks', then in
/// the order they were found) and the others go, errors and warnings alike (a
/// warning beside an error at the same place says something the error contradicts
/// or repeats); several warnings at one place, with no error, all stay. What a block
/// lacks (its address, its port) is said at its key, each: those stay too, as do
/// findings with no place in the text (an empty span). An error whose secondary
/// place holds an earlier error goes too. `diags` is in reading order.
fn one_per_place(diags: &mut Vec<Diagnostic>) {
    let lacks =
        |d: &Diagnostic| matches!(d.code, diag::Code::MissingAddress | diag::Code::MissingPort);
    let mut keep = vec![true; diags.len()];
    let mut i = 0;
    while i < diags.len() {
        let mut j = i;
        while j < diags.len() && diags[j].span == diags[i].span {
            j += 1;
        }
        let first = (i..j).find(|&k| diags[k].is_error() && !lacks(&diags[k]));
        if let (Some(first), false) = (first, diags[i].span.start == diags[i].span.end) {
            for (k, kept) in keep.iter_mut().enumerate().take(j).skip(i) {
                *kept = k == first || lacks(&diags[k]);
            }
        }
        i = j;
    }
    // An error that relates its place to another (`first address`, `first defined
    // here`) where an error was already reported is a consequence of that one: the
    // address given twice when the first was a word that is no address.
    let mut errors_at: std::collections::HashSet<ast::Span> = std::collections::HashSet::new();
    for (d, kept) in diags.iter().zip(keep.iter_mut()) {
        if !*kept || !d.is_error() {
            continue;
        }
        if d.labels.iter().any(|l| errors_at.contains(&l.span)) {
            *kept = false;
            continue;
        }
        errors_at.insert(d.span);
    }
    let mut k = 0;
    diags.retain(|_| {
        k += 1;
        keep[k - 1]
    });
}

/// A note on each error whose place is an unquoted word with a quote character or a
/// backslash inside: the language reads them as part of the word.
fn quoting_notes(src: &str, diags: &mut [Diagnostic]) {
    for d in diags.iter_mut().filter(|d| d.is_error()) {
        let Some(text) = src.get(d.span.range()) else {
            continue;
        };
        if text.starts_with(['"', '\'']) || text.chars().any(char::is_whitespace) {
            continue;
        }
        if text.contains('\'') {
            d.notes.push(
                "a `'` inside a word is part of the word: to quote a value, put quotes around all of it (`\"...\"`)".to_string(),
            );
        }
    }
}

/// The codes that say something is absent (an address, a listener, a certificate):
/// after a syntax error in the file, the directive was most likely written but
/// misspelled, and is reported already.
const ABSENCES: &[diag::Code] = &[
    diag::Code::UnknownSection,
    diag::Code::NoListener,
    diag::Code::NoRemote,
    diag::Code::TlsWithoutCertificate,
    diag::Code::TlsUnused,
];

/// Drops "missing address/port" findings for blocks that had a syntax error inside:
/// the directive was most likely there, misspelled, and is reported already. Drops
/// the findings of [`ABSENCES`] when the file has any syntax error.
/// `syntax_errors` are in reading order. Linear in the directives and findings, so
/// that a file of 10,000 broken blocks checks as fast as a clean one.
fn drop_cascades(file: &ast::File, syntax_errors: &[ast::Span], found: &mut Vec<Diagnostic>) {
    if syntax_errors.is_empty() {
        return;
    }
    found.retain(|d| !ABSENCES.contains(&d.code));
    // Whether a syntax error lies inside `span`: the errors that start in it are
    // looked at in order, and the first one usually ends in it too.
    let has_error = |span: ast::Span| {
        let first = syntax_errors.partition_point(|e| e.start < span.start);
        syntax_errors[first..]
            .iter()
            .take_while(|e| e.start <= span.end)
            .any(|e| e.end <= span.end)
    };
    // The keys of the directives, at any depth, with a syntax error inside.
    fn collect(
        body: &[ast::Sp<ast::Directive>],
        has_error: &dyn Fn(ast::Span) -> bool,
        keys: &mut std::collections::HashSet<ast::Span>,
    ) {
        for d in body {
            if has_error(d.span) {
                keys.insert(d.node.key.span);
            }
            if let ast::Body::Block(items) = &d.node.body {
                collect(items, has_error, keys);
            }
        }
    }
    let mut damaged = std::collections::HashSet::new();
    for item in &file.items {
        if let ast::Item::Section(s) = &item.node {
            collect(&s.body, &has_error, &mut damaged);
        }
    }
    found.retain(|d| {
        !matches!(d.code, diag::Code::MissingAddress | diag::Code::MissingPort)
            || !damaged.contains(&d.span)
    });
}

pub mod emit {
    //! Writes a plan file: mode 0600 when the plan holds a secret, else 0644, written
    //! to a temporary file in the same directory and renamed, so a reader never sees a
    //! half-written plan.

    use std::fs;
    use std::io::{self, Write};
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    use std::path::Path;
    use tcprelay_plan::Plan;

    /// Encodes `plan` and writes it to `path`.
    pub fn write(plan: &Plan, path: &Path) -> io::Result<()> {
        let bytes = tcprelay_plan::encode(plan, crate::VERSION);
        let mode = if plan.has_secret() { 0o600 } else { 0o644 };
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the output path names no file")
        })?;
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)?;
            // The umask may have removed bits; set exactly the mode asked for.
            f.set_permissions(fs::Permissions::from_mode(mode))?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}
