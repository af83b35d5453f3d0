//! `include` and `${VAR}`: the files of a configuration spliced into one token stream,
//! before the parser and the section skipper see it, as the original's lexer does.
//!
//! - `include = FILE` and `include FILE` stand anywhere a token may (top level, in
//!   sections and blocks, in sections that are skipped, even in the middle of a
//!   directive): the word `include` and its file are replaced by the tokens of the
//!   file. A quoted `"include"` is a string, as in the original.
//! - FILE is relative to the directory of the file that includes it (the original used
//!   the current directory), or to the main file's directory with the original's
//!   `$CONFDIR/` prefix; standard input includes relative to the current directory.
//!   Shell wildcards (`*`, `?`, `[...]`) include every match in sorted order; a pattern
//!   that matches nothing is a warning (E0056), a file that cannot be read an error
//!   (E0056). In a file loaded from a URL, FILE is a URL reference resolved against the
//!   file's URL (no wildcards); a remote file may not include a `file:` URL (E0059).
//! - A file that includes itself through any chain, or a chain deeper than
//!   [`MAX_DEPTH`], is an error naming the chain (E0057); at most [`MAX_FILES`] files
//!   and [`MAX_TOTAL`] bytes in all are read (E0059).
//! - `${VAR}` inside a quoted string (either quote) is replaced by the value of an
//!   earlier top-level `setenv VAR` (in token order, across files) or else of the
//!   process's environment; an unset variable is an error at `${VAR}` (E0058). The
//!   value is not scanned again; `${VAR}` outside quotes is left as it is.
//!
//! Every file has its place in one global offset space ([`SourceMap`]): a span stays a
//! plain byte range, and the renderers find its file, line and column.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use url::Url;

use crate::ast::Span;
use crate::diag::{Code, Diagnostic};
use crate::lexer::{self, Spanned, Tok};
use crate::source::{self, SourceError};

/// The deepest chain of includes: the main file includes at depth 1.
pub const MAX_DEPTH: usize = 32;
/// The most files one configuration may read, the main file among them.
pub const MAX_FILES: usize = 1024;
/// The most bytes all the files of one configuration may hold together.
pub const MAX_TOTAL: u64 = source::MAX_SIZE;

/// One file of a configuration and its place in the global offset space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The path or URL, as shown in diagnostics.
    pub name: String,
    /// The offset of its first byte.
    pub base: usize,
    /// Its length in bytes.
    pub len: usize,
    /// The `include` that brought it in (the file name's token, in the including
    /// file), `None` for the main file.
    pub included_at: Option<Span>,
}

/// The files of a configuration in one offset space: file `k` holds the global
/// offsets `base_k .. base_k + len_k`, with a gap of one byte (a `\n` in [`Self::text`])
/// between files, so that every token of every file has a span of its own.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    text: String,
    files: Vec<SourceFile>,
    /// The strings whose value came from `${VAR}`: their span and their value, for the
    /// renderers to mask when they are secrets.
    expanded: Vec<(Span, String)>,
}

impl SourceMap {
    /// A configuration of one file.
    pub fn single(name: &str, text: &str) -> SourceMap {
        let mut map = SourceMap::default();
        map.add(name, text, None);
        map
    }

    fn add(&mut self, name: &str, text: &str, included_at: Option<Span>) -> usize {
        if !self.files.is_empty() {
            self.text.push('\n');
        }
        self.files.push(SourceFile {
            name: name.to_string(),
            base: self.text.len(),
            len: text.len(),
            included_at,
        });
        self.text.push_str(text);
        self.files.len() - 1
    }

    /// Every file's text, in the order they were read, one `\n` between two: byte `o`
    /// of it is global offset `o`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The files, the main one first.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// The text of file `k`.
    pub fn file_text(&self, k: usize) -> &str {
        let f = &self.files[k];
        &self.text[f.base..f.base + f.len]
    }

    /// The file that global `offset` lies in: the last whose base is at most
    /// `offset` (the gap after a file belongs to it, as its end).
    pub fn file_at(&self, offset: usize) -> usize {
        self.files
            .partition_point(|f| f.base <= offset)
            .saturating_sub(1)
    }

    /// `span` in its file: the file's index and the range in the file's text (the end
    /// clamped to the file, for a span that runs on into another file).
    pub fn local(&self, span: Span) -> (usize, Span) {
        let k = self.file_at(span.start);
        let f = &self.files[k];
        let start = span.start.saturating_sub(f.base).min(f.len);
        let end = span.end.saturating_sub(f.base).clamp(start, f.len);
        (k, Span::new(start, end))
    }

    /// The strings whose value came from `${VAR}`, with that value.
    pub fn expanded(&self) -> &[(Span, String)] {
        &self.expanded
    }

    /// The names of the files from the main one to `k`, through the includes.
    pub fn chain(&self, k: usize) -> Vec<&str> {
        let mut names = vec![self.files[k].name.as_str()];
        let mut at = self.files[k].included_at;
        while let Some(span) = at {
            let parent = self.file_at(span.start);
            names.push(&self.files[parent].name);
            at = self.files[parent].included_at;
        }
        names.reverse();
        names
    }
}

/// Where a file came from, to resolve the names it includes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Standard input: names relative to the current directory.
    Stdin,
    /// A local file: names relative to its directory.
    Path(PathBuf),
    /// A URL: names are URL references.
    Url(Url),
}

impl Origin {
    /// The origin of a configuration named as on the command line: `-` (or
    /// `<stdin>`), a `file:`, `http:` or `https:` URL, or a path.
    pub fn of(name: &str) -> Origin {
        if name == "-" || name == "<stdin>" {
            return Origin::Stdin;
        }
        match as_url(name) {
            Some(url) => Origin::Url(url),
            None => Origin::Path(PathBuf::from(name)),
        }
    }

    /// The directory that relative names are resolved in ("" for the current one).
    fn dir(&self) -> PathBuf {
        match self {
            Origin::Path(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
            Origin::Stdin | Origin::Url(_) => PathBuf::new(),
        }
    }
}

/// `name` as a URL when it is one of the schemes the loader reads.
fn as_url(name: &str) -> Option<Url> {
    let url = Url::parse(name).ok()?;
    matches!(url.scheme(), "file" | "http" | "https").then_some(url)
}

/// A configuration's tokens with its includes spliced in and its strings expanded.
#[derive(Debug)]
pub struct Expanded {
    pub map: SourceMap,
    pub tokens: Vec<Spanned>,
    /// The lexer's findings in every file and those of the includes and variables.
    pub diags: Vec<Diagnostic>,
}

/// Lexes the main file `text` (named `name`, from `origin`) and every file it
/// includes; `env` gives the process environment's variables.
pub fn expand(
    name: &str,
    text: &str,
    origin: Origin,
    env: &dyn Fn(&str) -> Option<String>,
) -> Expanded {
    let mut x = Expander {
        env,
        map: SourceMap::default(),
        tokens: Vec::new(),
        diags: Vec::new(),
        vars: HashMap::new(),
        depth: 0,
        setenv: Setenv::None,
        stack: Vec::new(),
        origins: Vec::new(),
        total: text.len() as u64,
        refused: false,
    };
    let identity = identity(&origin, name);
    let k = x.map.add(name, text, None);
    x.origins.push(origin);
    let (tokens, diags) = lexer::lex_at(text, 0);
    x.diags.extend(diags);
    x.stack.push(identity);
    x.splice(k, tokens);
    Expanded {
        map: x.map,
        tokens: x.tokens,
        diags: x.diags,
    }
}

/// Where a top-level `setenv` is in its tokens.
#[derive(Debug)]
enum Setenv {
    None,
    Name,
    Value(String),
}

struct Expander<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    map: SourceMap,
    tokens: Vec<Spanned>,
    diags: Vec<Diagnostic>,
    /// The top-level `setenv`s read so far.
    vars: HashMap<String, String>,
    /// The depth of braces of the token stream so far.
    depth: usize,
    setenv: Setenv,
    /// What identifies each file of the chain being read (canonical path or URL).
    stack: Vec<String>,
    /// The origin of each file of the map.
    origins: Vec<Origin>,
    /// The bytes read so far.
    total: u64,
    /// Whether the file limit was reported already.
    refused: bool,
}

impl Expander<'_> {
    /// Appends the tokens of file `k` to the stream, with its includes spliced in.
    fn splice(&mut self, k: usize, tokens: Vec<Spanned>) {
        let mut tokens = tokens.into_iter().peekable();
        while let Some((l, tok, r)) = tokens.next() {
            match tok {
                Tok::Word(w) if w == "include" => {
                    tokens.next_if(|(_, t, _)| *t == Tok::Equals);
                    let name =
                        match tokens.next_if(|(_, t, _)| matches!(t, Tok::Word(_) | Tok::Str(_))) {
                            Some((fl, Tok::Str(s), fr)) => {
                                Some((fl, self.string(fl, fr).unwrap_or(s), fr))
                            }
                            Some((fl, Tok::Word(w), fr)) => Some((fl, w, fr)),
                            _ => {
                                self.diags.push(
                                    Diagnostic::error(
                                        Code::IncludeNotFound,
                                        Span::new(l, r),
                                        "`include` without a file name",
                                    )
                                    .with_label("a path, pattern or URL must follow")
                                    .with_help("write `include = FILE`"),
                                );
                                None
                            }
                        };
                    if let Some((fl, name, fr)) = name {
                        self.include(k, &name, Span::new(fl, fr));
                    }
                }
                Tok::Str(s) => {
                    let value = self.string(l, r).unwrap_or(s);
                    self.push((l, Tok::Str(value), r));
                }
                tok => self.push((l, tok, r)),
            }
        }
    }

    /// Appends a token, following the braces and the top-level `setenv`s.
    fn push(&mut self, token: Spanned) {
        let tok = &token.1;
        let text = match tok {
            Tok::Word(w) | Tok::Str(w) => Some(w.as_str()),
            other => other.keyword_text(),
        };
        self.setenv = match (std::mem::replace(&mut self.setenv, Setenv::None), tok) {
            (Setenv::None, Tok::Setenv) if self.depth == 0 => Setenv::Name,
            (Setenv::Name, _) => text.map_or(Setenv::None, |t| Setenv::Value(t.to_string())),
            (Setenv::Value(name), Tok::Equals) => Setenv::Value(name),
            (Setenv::Value(name), _) => {
                if let Some(value) = text {
                    self.vars.insert(name, value.to_string());
                }
                Setenv::None
            }
            (Setenv::None, _) => Setenv::None,
        };
        match tok {
            Tok::LBrace => self.depth += 1,
            Tok::RBrace => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        self.tokens.push(token);
    }

    /// The value of the quoted string at `l..r` with its `${VAR}`s replaced; `None`
    /// when it has none (the lexer's value stands).
    fn string(&mut self, l: usize, r: usize) -> Option<String> {
        let raw = self.map.text.get(l..r)?;
        if !raw.contains("${") {
            return None;
        }
        let mut places = Vec::new();
        let value = lexer::unescape(raw, Some(&mut places));
        let mut out = String::with_capacity(value.len());
        let mut rest = 0;
        let mut expanded = false;
        while let Some(at) = value[rest..].find("${").map(|at| rest + at) {
            let Some(close) = value[at..].find('}').map(|c| at + c) else {
                break;
            };
            out.push_str(&value[rest..at]);
            let name = &value[at + 2..close];
            let var = self.vars.get(name).cloned().or_else(|| (self.env)(name));
            match var {
                Some(v) => {
                    out.push_str(&v);
                    expanded = true;
                }
                None => {
                    let span = Span::new(l + places[at], l + places[close] + 1);
                    self.diags.push(unset(name, span));
                    out.push_str(&value[at..=close]);
                }
            }
            rest = close + 1;
        }
        out.push_str(&value[rest..]);
        if expanded {
            self.map.expanded.push((Span::new(l, r), out.clone()));
        }
        Some(out)
    }

    /// Splices the files that `name`, written at `at` in file `k`, names.
    fn include(&mut self, k: usize, name: &str, at: Span) {
        let targets = match self.resolve(k, name, at) {
            Ok(targets) => targets,
            Err(d) => {
                self.diags.push(*d);
                return;
            }
        };
        for target in targets {
            if let Err(d) = self.read(target, name, at) {
                self.diags.push(*d);
            }
        }
    }

    /// The files `name` names, included from file `k`.
    fn resolve(&mut self, k: usize, name: &str, at: Span) -> Result<Vec<Origin>, Box<Diagnostic>> {
        let (name, from) = match name.strip_prefix("$CONFDIR/") {
            Some(rest) => (rest, 0),
            None => (name, k),
        };
        let parent = &self.origins[from];
        if let Some(url) = as_url(name) {
            if url.scheme() == "file" && matches!(parent, Origin::Url(p) if p.scheme() != "file") {
                return Err(Box::new(remote_reads_local(name, at)));
            }
            return Ok(vec![Origin::Url(url)]);
        }
        if let Origin::Url(base) = parent {
            let url = base.join(name).map_err(|e| {
                Box::new(
                    Diagnostic::error(
                        Code::IncludeNotFound,
                        at,
                        format!("cannot include `{name}`: not a URL reference ({e})"),
                    )
                    .with_label("relative to the URL of this file"),
                )
            })?;
            if url.scheme() == "file" && base.scheme() != "file" {
                return Err(Box::new(remote_reads_local(name, at)));
            }
            return Ok(vec![Origin::Url(url)]);
        }
        let path = parent.dir().join(name);
        if !name.contains(['*', '?', '[']) {
            return Ok(vec![Origin::Path(path)]);
        }
        let found = glob(&path);
        if found.is_empty() {
            self.diags.push(
                Diagnostic::warning(
                    Code::IncludeNotFound,
                    at,
                    format!("`{}` matches no file: nothing is included", path.display()),
                )
                .with_label("this pattern")
                .with_note("a pattern may match nothing, as in nginx; a file named without a wildcard must exist"),
            );
        }
        Ok(found.into_iter().map(Origin::Path).collect())
    }

    /// Reads one included file and splices its tokens.
    fn read(&mut self, target: Origin, written: &str, at: Span) -> Result<(), Box<Diagnostic>> {
        let name = match &target {
            Origin::Path(p) => p.display().to_string(),
            Origin::Url(u) => u.to_string(),
            Origin::Stdin => "<stdin>".to_string(),
        };
        let id = identity(&target, &name);
        let including = self.map.file_at(at.start);
        if self.stack.contains(&id) {
            let mut chain = self.map.chain(including);
            chain.push(&name);
            return Err(Box::new(
                Diagnostic::error(
                    Code::IncludeCycle,
                    at,
                    format!("`{written}` includes itself: {}", chain.join(" → ")),
                )
                .with_label("this include closes the cycle")
                .with_help("remove one of the includes of the chain"),
            ));
        }
        if self.stack.len() > MAX_DEPTH {
            let mut chain = self.map.chain(including);
            chain.push(&name);
            return Err(Box::new(
                Diagnostic::error(
                    Code::IncludeCycle,
                    at,
                    format!(
                        "includes nested deeper than {MAX_DEPTH}: {}",
                        chain.join(" → ")
                    ),
                )
                .with_label(format!("include number {} of the chain", self.stack.len()))
                .with_help(format!("includes may nest {MAX_DEPTH} deep")),
            ));
        }
        if self.map.files.len() >= MAX_FILES {
            if std::mem::replace(&mut self.refused, true) {
                return Ok(());
            }
            return Err(Box::new(
                Diagnostic::error(
                    Code::IncludeRefused,
                    at,
                    format!(
                        "more than {MAX_FILES} files: `{name}` and the files after it are not read"
                    ),
                )
                .with_label("one file too many")
                .with_note(format!(
                    "a configuration may read at most {MAX_FILES} files, the main one among them"
                )),
            ));
        }
        let limit = MAX_TOTAL.saturating_sub(self.total);
        let loaded = match &target {
            Origin::Url(u) => source::load_url(u.as_str(), limit),
            Origin::Path(p) => source::load_path(p, limit),
            Origin::Stdin => return Ok(()),
        };
        let src = match loaded {
            Ok(src) => src,
            Err(SourceError::FileTooLarge { .. } | SourceError::TooLarge { .. })
                if limit < MAX_TOTAL =>
            {
                return Err(Box::new(
                    Diagnostic::error(
                        Code::IncludeRefused,
                        at,
                        format!(
                            "`{name}` takes the configuration's files past {} MiB in all",
                            MAX_TOTAL >> 20
                        ),
                    )
                    .with_label("this file is not read")
                    .with_note(format!("{} bytes were left for it", limit)),
                ));
            }
            Err(e) => {
                return Err(Box::new(
                    Diagnostic::error(
                        Code::IncludeNotFound,
                        at,
                        format!("cannot include `{written}`: {e}"),
                    )
                    .with_label("this file cannot be read"),
                ));
            }
        };
        self.total += src.text.len() as u64;
        let k = self.map.add(&name, &src.text, Some(at));
        self.origins.push(target);
        let (tokens, diags) = lexer::lex_at(&src.text, self.map.files[k].base);
        self.diags.extend(diags);
        self.stack.push(id);
        self.splice(k, tokens);
        self.stack.pop();
        Ok(())
    }
}

/// What identifies a file for the cycle check: its canonical path (the name when it
/// has none), or its URL.
fn identity(origin: &Origin, name: &str) -> String {
    match origin {
        Origin::Path(p) => {
            std::fs::canonicalize(p).map_or_else(|_| name.to_string(), |p| p.display().to_string())
        }
        Origin::Url(u) => u.to_string(),
        Origin::Stdin => "<stdin>".to_string(),
    }
}

fn remote_reads_local(name: &str, at: Span) -> Diagnostic {
    Diagnostic::error(
        Code::IncludeRefused,
        at,
        format!("a configuration loaded from the network may not include the local file `{name}`"),
    )
    .with_label("a local file")
    .with_help("name a URL relative to this file's, or load the main file locally")
}

fn unset(name: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        Code::UnsetVariable,
        span,
        format!("the variable `{name}` is not set"),
    )
    .with_label("not in the environment nor set by an earlier `setenv`")
    .with_help(format!(
        "set `{name}` in the environment of tcprelay-cc, or write `setenv {name} = VALUE` before this line"
    ))
}

/// The paths that match the shell pattern `pattern` (wildcards in any component),
/// sorted; a name starting with `.` only matches a pattern that does.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    let mut parts = pattern.components().peekable();
    while let Some(part) = parts.next() {
        let text = part.as_os_str().to_string_lossy();
        if !text.contains(['*', '?', '[']) {
            for p in &mut found {
                p.push(part);
            }
            continue;
        }
        let last = parts.peek().is_none();
        let pat: Vec<char> = text.chars().collect();
        let mut next = Vec::new();
        for dir in &found {
            let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter(|e| last || e.file_type().is_ok_and(|t| t.is_dir() || t.is_symlink()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    (!n.starts_with('.') || pat[0] == '.')
                        && matches(&pat, &n.chars().collect::<Vec<_>>())
                })
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    found.retain(|p| p.exists());
    found
}

/// Whether `name` matches the shell pattern `pat` (`*`, `?`, `[...]` with ranges and
/// `!` or `^` for the complement; no escapes, as the original's `GLOB_NOESCAPE`).
fn matches(pat: &[char], name: &[char]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some('*') => (0..=name.len()).any(|i| matches(&pat[1..], &name[i..])),
        Some('?') => !name.is_empty() && matches(&pat[1..], &name[1..]),
        Some('[') => match (class(&pat[1..]), name.first()) {
            (Some((set, len)), Some(&c)) => set(c) && matches(&pat[1 + len..], &name[1..]),
            // An unclosed `[` is a plain character.
            (None, Some('[')) => matches(&pat[1..], &name[1..]),
            _ => false,
        },
        Some(&c) => name.first() == Some(&c) && matches(&pat[1..], &name[1..]),
    }
}

/// The bracket expression that `pat` (after the `[`) starts with: whether a character
/// is in it, and its length with the closing `]`.
#[allow(clippy::type_complexity)]
fn class(pat: &[char]) -> Option<(Box<dyn Fn(char) -> bool + '_>, usize)> {
    let negated = matches!(pat.first(), Some('!' | '^'));
    let from = usize::from(negated);
    // A `]` first in the set is a member.
    let close = pat
        .iter()
        .enumerate()
        .skip(from + 1)
        .find(|(_, c)| **c == ']')
        .map(|(i, _)| i)?;
    let set = &pat[from..close];
    let member = move |c: char| {
        let mut i = 0;
        let mut found = false;
        while i < set.len() {
            if i + 2 < set.len() && set[i + 1] == '-' {
                found |= (set[i]..=set[i + 2]).contains(&c);
                i += 3;
            } else {
                found |= set[i] == c;
                i += 1;
            }
        }
        found != negated
    };
    Some((Box::new(member), close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// Expands the file `main` of `dir`.
    fn expand_file(main: &Path) -> Expanded {
        let text = fs::read_to_string(main).expect("main file");
        let name = main.display().to_string();
        expand(&name, &text, Origin::of(&name), &no_env)
    }

    /// The text of every token, in order.
    fn texts(x: &Expanded) -> Vec<String> {
        x.tokens
            .iter()
            .map(|(l, t, r)| match t {
                Tok::Word(w) | Tok::Str(w) => w.clone(),
                _ => x.map.text()[*l..*r].to_string(),
            })
            .collect()
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, text).expect("write");
        path
    }

    fn codes(x: &Expanded) -> Vec<(Code, bool)> {
        x.diags.iter().map(|d| (d.code, d.is_error())).collect()
    }

    #[test]
    fn includes_are_spliced_where_they_stand_relative_to_the_including_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = write(
            dir.path(),
            "main.cfg",
            "id = tcprelay { include = sub/a.cfg listen = { port = include port.cfg } }",
        );
        // `b.cfg` is next to `a.cfg`, not next to the main file or in the cwd.
        write(dir.path(), "sub/a.cfg", "include b.cfg\nretire limit = 3");
        write(
            dir.path(),
            "sub/b.cfg",
            "remote = { address = 10.0.0.1 port = 22 }",
        );
        write(dir.path(), "port.cfg", "2222\n");
        let x = expand_file(&main);
        assert!(x.diags.is_empty(), "{:?}", x.diags);
        assert_eq!(
            texts(&x).join(" "),
            "id = tcprelay { remote = { address = 10.0.0.1 port = 22 } retire limit = 3 listen = { port = 2222 } }"
        );
        // Every token's span is its text in its own file.
        for (l, tok, r) in &x.tokens {
            if let Tok::Word(w) = tok {
                assert_eq!(&x.map.text()[*l..*r], w);
            }
        }
        let files = x.map.files();
        assert_eq!(files.len(), 4);
        assert_eq!(
            x.map.chain(2),
            vec![files[0].name.as_str(), &files[1].name, &files[2].name]
        );
        let at = files[2].included_at.expect("included");
        assert_eq!(&x.map.text()[at.range()], "b.cfg");
        // One byte between files.
        assert_eq!(files[1].base, files[0].len + 1);
        let port = x
            .tokens
            .iter()
            .find(|(_, t, _)| *t == Tok::Word("2222".into()))
            .expect("port");
        assert_eq!(x.map.local(Span::new(port.0, port.2)), (3, Span::new(0, 4)));
    }

    #[test]
    fn confdir_is_the_main_files_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = write(dir.path(), "main.cfg", "include = 'sub/a.cfg'");
        write(dir.path(), "sub/a.cfg", "include $CONFDIR/top.cfg");
        write(dir.path(), "top.cfg", "top");
        write(dir.path(), "sub/top.cfg", "wrong");
        let x = expand_file(&main);
        assert!(x.diags.is_empty(), "{:?}", x.diags);
        assert_eq!(texts(&x), vec!["top"]);
    }

    #[test]
    fn patterns_include_every_match_sorted_and_may_match_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in [
            ("c2.cfg", "two"),
            ("c10.cfg", "ten"),
            ("c1.cfg", "one"),
            ("x.txt", "no"),
            (".c3.cfg", "hidden"),
        ] {
            write(dir.path(), &format!("conf.d/{name}"), text);
        }
        write(dir.path(), "d1/in.cfg", "d1");
        write(dir.path(), "d2/in.cfg", "d2");
        let main = write(
            dir.path(),
            "main.cfg",
            "include = conf.d/*.cfg include = conf.d/c[!1].cfg include d?/in.cfg include = none/*.cfg",
        );
        let x = expand_file(&main);
        assert_eq!(texts(&x), vec!["one", "ten", "two", "two", "d1", "d2"]);
        assert_eq!(codes(&x), vec![(Code::IncludeNotFound, false)]);
        assert_eq!(&x.map.text()[x.diags[0].span.range()], "none/*.cfg");
        assert!(matches(&['[', ']', 'a', ']'], &[']']));
        assert!(matches(
            &"a[0-9]?".chars().collect::<Vec<_>>(),
            &['a', '7', 'x']
        ));
        assert!(!matches(
            &"*.cfg".chars().collect::<Vec<_>>(),
            &"a.cfgx".chars().collect::<Vec<_>>()
        ));
    }

    #[test]
    fn a_missing_file_is_an_error_at_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let main = write(
            dir.path(),
            "main.cfg",
            "port = 1\ninclude = missing.cfg\ninclude\n",
        );
        let x = expand_file(&main);
        assert_eq!(
            codes(&x),
            vec![(Code::IncludeNotFound, true), (Code::IncludeNotFound, true)]
        );
        assert_eq!(&x.map.text()[x.diags[0].span.range()], "missing.cfg");
        assert!(
            x.diags[0].message.contains("No such file"),
            "{}",
            x.diags[0].message
        );
        assert_eq!(x.diags[1].message, "`include` without a file name");
        assert_eq!(texts(&x), vec!["port", "=", "1"]);
    }

    #[test]
    fn a_cycle_is_an_error_naming_the_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(dir.path(), "a.cfg", "a1 include b.cfg a2");
        write(dir.path(), "b.cfg", "b1 include ./a.cfg b2");
        let x = expand_file(&a);
        assert_eq!(codes(&x), vec![(Code::IncludeCycle, true)]);
        let d = &x.diags[0];
        let p = |n: &str| dir.path().join(n).display().to_string();
        assert_eq!(
            d.message,
            format!(
                "`./a.cfg` includes itself: {} → {} → {}",
                p("a.cfg"),
                p("b.cfg"),
                p("./a.cfg")
            )
        );
        assert_eq!(&x.map.text()[d.span.range()], "./a.cfg");
        assert_eq!(texts(&x), vec!["a1", "b1", "b2", "a2"]);
    }

    #[test]
    fn thirty_two_includes_deep_are_read_and_thirty_three_are_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chain = |depth: usize| {
            for i in 0..depth {
                write(
                    dir.path(),
                    &format!("f{i}.cfg"),
                    &format!("w{i} include f{}.cfg", i + 1),
                );
            }
            write(dir.path(), &format!("f{depth}.cfg"), "last");
            expand_file(&dir.path().join("f0.cfg"))
        };
        let x = chain(MAX_DEPTH);
        assert!(x.diags.is_empty(), "{:?}", x.diags);
        assert_eq!(texts(&x).last().map(String::as_str), Some("last"));
        let x = chain(MAX_DEPTH + 1);
        assert_eq!(codes(&x), vec![(Code::IncludeCycle, true)]);
        let d = &x.diags[0];
        assert!(
            d.message.starts_with("includes nested deeper than 32: "),
            "{}",
            d.message
        );
        assert_eq!(
            d.message.matches(" → ").count(),
            MAX_DEPTH + 1,
            "{}",
            d.message
        );
        assert!(d.message.ends_with("f33.cfg"), "{}", d.message);
        assert!(!texts(&x).contains(&"last".to_string()));
    }

    #[test]
    fn at_most_1024_files_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        for i in 0..MAX_FILES + 5 {
            write(dir.path(), &format!("d/{i:05}.cfg"), "x");
        }
        let main = write(dir.path(), "main.cfg", "include d/*.cfg");
        let x = expand_file(&main);
        assert_eq!(codes(&x), vec![(Code::IncludeRefused, true)]);
        assert_eq!(x.map.files().len(), MAX_FILES);
        assert!(
            x.diags[0].message.contains("01023.cfg"),
            "{}",
            x.diags[0].message
        );
    }

    fn expand_str(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Expanded {
        expand("a.cfg", text, Origin::Stdin, env)
    }

    #[test]
    fn variables_come_from_earlier_top_level_setenvs_then_the_environment() {
        let env = |name: &str| match name {
            "HOST" => Some("10.0.0.1".to_string()),
            "A" => Some("from-env".to_string()),
            _ => None,
        };
        let src = r#"s = "${A}" setenv A = one setenv B two id x { setenv C = no } s = '${A}-${B}@${HOST}' u = ${A} e = "\${A}" setenv A = later"#;
        let x = expand_str(src, &env);
        assert!(x.diags.is_empty(), "{:?}", x.diags);
        let t = texts(&x);
        assert_eq!(t[2], "from-env");
        assert!(t.contains(&"one-two@10.0.0.1".to_string()), "{t:?}");
        // Unquoted: left alone (as the original, the braces are tokens); the value of
        // an escaped `$` is expanded, as the original expands after unquoting.
        assert!(t.join(" ").contains("u = $ { A }"), "{t:?}");
        assert_eq!(t.iter().filter(|s| *s == "one").count(), 2, "{t:?}");
        assert_eq!(x.map.expanded().len(), 3);
    }

    #[test]
    fn an_unset_variable_is_an_error_at_its_place_in_the_string() {
        let src = "id = x { s = \"a\\n${NOPE} ${C\" t = '${SECTION}' }";
        let x = expand_str(src, &no_env);
        assert_eq!(
            codes(&x),
            vec![(Code::UnsetVariable, true), (Code::UnsetVariable, true)]
        );
        assert_eq!(&src[x.diags[0].span.range()], "${NOPE}");
        assert_eq!(&src[x.diags[1].span.range()], "${SECTION}");
        assert_eq!(x.diags[0].message, "the variable `NOPE` is not set");
    }

    #[test]
    fn an_unset_variable_is_one_error_and_a_set_one_compiles() {
        let src = "id = spawnd { listen = { port = 2222 } }\nsetenv P = 22\nid = tcprelay { remote = { address = \"${ADDR}\" port = '${P}' } }\n";
        let c = crate::compile_with(src, "-", &crate::Selection::default(), &no_env);
        let found: Vec<Code> = c.diags.iter().map(|d| d.code).collect();
        assert_eq!(found, vec![Code::UnsetVariable], "{:?}", c.diags);
        let env = |n: &str| (n == "ADDR").then(|| "10.0.0.7".to_string());
        let c = crate::compile_with(src, "-", &crate::Selection::default(), &env);
        assert!(c.diags.is_empty(), "{:?}", c.diags);
        let plan = c.plan.expect("plan");
        assert_eq!(plan.relay.remotes[0].address.to_string(), "10.0.0.7:22");
    }

    #[test]
    fn a_remote_file_includes_relative_urls_and_no_local_file() {
        fn route(path: &str) -> crate::source::tests::Reply {
            match path {
                "/conf/main.cfg" => (
                    200,
                    vec![],
                    b"m include inc/a.cfg include = '/top.cfg' include file:///etc/hostname"
                        .to_vec(),
                ),
                "/conf/inc/a.cfg" => (200, vec![], b"a include ../b.cfg".to_vec()),
                "/conf/b.cfg" => (200, vec![], b"b".to_vec()),
                "/top.cfg" => (200, vec![], b"top".to_vec()),
                _ => (404, vec![], Vec::new()),
            }
        }
        let (port, server) = crate::source::tests::serve(4, route);
        let url = format!("http://127.0.0.1:{port}/conf/main.cfg");
        let main = source::load_url(&url, MAX_TOTAL).expect("main");
        let x = expand(&url, &main.text, Origin::of(&url), &no_env);
        assert_eq!(texts(&x), vec!["m", "a", "b", "top"]);
        assert_eq!(codes(&x), vec![(Code::IncludeRefused, true)]);
        assert_eq!(
            x.map.files()[1].name,
            format!("http://127.0.0.1:{port}/conf/inc/a.cfg")
        );
        let paths = server.join().expect("server");
        assert_eq!(
            paths,
            vec![
                "/conf/main.cfg",
                "/conf/inc/a.cfg",
                "/conf/b.cfg",
                "/top.cfg"
            ]
        );
    }
}
