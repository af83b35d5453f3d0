//! Error recovery over the token list, around the generated parser, so that one
//! mistake is one error:
//!
//! - a line continuation (`\` at the end of a line) is reported and dropped, so the
//!   directive it split reads as the writer meant it ([`continuations`]);
//! - an unclosed `{` is reported at that brace, and a `}` is put back where the file
//!   shows it was missing ([`close_braces`]);
//! - after a broken directive the parser resumes at the next directive of the same
//!   block: the directive is cut out of the token list with its value or its whole
//!   `{ ... }` block, and the file is parsed again, so what the generated parser's own
//!   recovery made of the rest is never reported ([`parse`]).

use super::{describe, grammar, section_start};
use crate::ast::{File, Span};
use crate::diag::{Code, Diagnostic};
use crate::lexer::{LexError, Spanned, Tok};
use crate::Selection;
use lalrpop_util::{ErrorRecovery, ParseError};

/// How many times a file is parsed again after cutting out broken directives. Each
/// pass takes the first error of every block; past this, the errors of the last pass
/// are taken as the generated parser found them.
const MAX_PASSES: usize = 64;

/// How many unclosed `{` are looked for one by one; the others are closed at the end
/// of the file without a report of their own.
const MAX_UNCLOSED: usize = 16;

/// E0070 for each `\` that ends a line, outside quoted strings; the backslash is
/// left out of the tokens, so the lines it joined read as one directive (the
/// language's line breaks are spaces already).
pub(super) fn continuations(
    tokens: Vec<Spanned>,
    src: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Spanned> {
    // Almost every file has none: no copy of its tokens then.
    if !tokens
        .iter()
        .any(|(_, tok, _)| matches!(tok, Tok::Word(w) if w.ends_with('\\')))
    {
        return tokens;
    }
    let mut out = Vec::with_capacity(tokens.len());
    let mut tokens = tokens.into_iter().peekable();
    while let Some((l, tok, r)) = tokens.next() {
        let Tok::Word(w) = &tok else {
            out.push((l, tok, r));
            continue;
        };
        let next = tokens.peek().map_or(src.len(), |t| t.0);
        let line_ends = src.get(r..next).is_some_and(|gap| gap.contains('\n')) || next >= src.len();
        if !(w.ends_with('\\') && line_ends) {
            out.push((l, tok, r));
            continue;
        }
        diags.push(
            Diagnostic::error(
                Code::LineContinuation,
                Span::new(r - 1, r),
                "`\\` at the end of a line: the language has no line continuation",
            )
            .with_label("remove this `\\`")
            .with_note(
                "a directive may go on over several lines as it is: line breaks are spaces, and the next line is read as part of it without the `\\`",
            ),
        );
        if w.len() > 1 {
            let kept = w[..w.len() - 1].to_string();
            out.push((l, Tok::Word(kept), r - 1));
        }
    }
    out
}

/// Finds the `{` that are never closed: E0004 at each, and a `}` (of no width) put
/// where the file shows it was missing, so the rest of the file parses as written.
/// The place is, in reading order, the first of: a line in a block indented no
/// deeper than the line that opened it (less, for a `}`: that one was meant for the
/// block around), when the block's content is indented (on the `{`'s line, or
/// deeper); or a section start `id = NAME {` inside a block (the section before was
/// meant to end there); else the end of the file.
pub(super) fn close_braces(
    mut tokens: Vec<Spanned>,
    src: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Spanned> {
    for round in 0.. {
        // The open blocks: the `{`, the indentation of its line, and whether the
        // block's indentation tells where it ends (its content is on the `{`'s line,
        // or on lines indented deeper than that one).
        let mut stack: Vec<(usize, usize, Option<bool>)> = Vec::new();
        let mut found: Option<(usize, usize, Evidence)> = None;
        for i in 0..tokens.len() {
            let (l, tok, r) = &tokens[i];
            // A `}` put back earlier has no width and no line of its own.
            let line_start = l != r && starts_line(src, *l);
            if let Some((open, k, armed)) = stack.last_mut() {
                if armed.is_none() && *tok != Tok::RBrace {
                    *armed = Some(!line_start || indent(src, *l) > *k);
                } else if *armed == Some(true) && line_start && found.is_none() {
                    let here = indent(src, *l);
                    let out = if *tok == Tok::RBrace {
                        here < *k
                    } else {
                        here <= *k
                    };
                    if out {
                        let evidence = if *tok == Tok::RBrace {
                            Evidence::Indent
                        } else if *tok == Tok::Id && section_start(&tokens[i..]).is_some() {
                            Evidence::Section
                        } else {
                            Evidence::Line
                        };
                        found = Some((*open, i, evidence));
                    }
                }
            }
            match tok {
                Tok::LBrace => stack.push((i, indent(src, *l), None)),
                Tok::RBrace => {
                    stack.pop();
                }
                Tok::Id
                    if found.is_none()
                        && !stack.is_empty()
                        && section_start(&tokens[i..]).is_some() =>
                {
                    found = Some((stack.last().expect("not empty").0, i, Evidence::Section));
                }
                _ => {}
            }
        }
        let stack: Vec<usize> = stack.into_iter().map(|(open, _, _)| open).collect();
        let Some(&innermost) = stack.last() else {
            return tokens;
        };
        if round == MAX_UNCLOSED {
            let end = src.len();
            tokens.extend(stack.iter().map(|_| (end, Tok::RBrace, end)));
            return tokens;
        }
        let Some((open, at, evidence)) = found else {
            // Nothing shows where: the file ended. One report for all that are
            // still open, at the innermost.
            let outer: Vec<usize> = stack.iter().rev().skip(1).copied().collect();
            diags.push(unclosed(&tokens, innermost, &outer, Evidence::End, src));
            let end = src.len();
            tokens.extend(stack.iter().map(|_| (end, Tok::RBrace, end)));
            return tokens;
        };
        diags.push(unclosed(&tokens, open, &[at], evidence, src));
        let p = tokens[at].0;
        tokens.insert(at, (p, Tok::RBrace, p));
    }
    unreachable!("the loop returns")
}

/// What showed where a `}` was missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evidence {
    /// A `}` indented less than the line that opened the block it closes.
    Indent,
    /// A line inside the block indented no deeper than the line that opened it.
    Line,
    /// A section start inside a block.
    Section,
    /// Nothing: the file ended.
    End,
}

/// E0004 for the `{` at `open`, never closed; `others` are the token that showed it
/// (for every evidence but [`Evidence::End`]) or the other `{` left open at the end
/// of the file.
fn unclosed(
    tokens: &[Spanned],
    open: usize,
    others: &[usize],
    evidence: Evidence,
    src: &str,
) -> Diagnostic {
    let brace = Span::new(tokens[open].0, tokens[open].2);
    let what = match opener(tokens, open) {
        Opener::Section(id) => format!("section `{id}`"),
        Opener::Block(key) => format!("the `{key}` block"),
        Opener::Unknown => "the block".to_string(),
    };
    let end = Span::new(src.len(), src.len());
    let mut d = Diagnostic::error(
        Code::UnexpectedEof,
        brace,
        format!("unclosed `{{`: {what} never ends"),
    )
    .with_label("unclosed `{` opened here");
    let at = others.first().copied().unwrap_or(open);
    match evidence {
        Evidence::Indent => {
            let (l, _, r) = tokens[at];
            d = d
                .with_secondary(
                    Span::new(l, r),
                    "this `}`, indented as the block around it, is taken as its end",
                )
                .with_help("add the missing `}` before this line");
        }
        Evidence::Line => {
            let (l, _, r) = tokens[at];
            d = d
                .with_secondary(
                    Span::new(l, r),
                    "this line is indented as the block around it, but is inside it",
                )
                .with_help("add the missing `}` before this line");
        }
        Evidence::Section => {
            let (l, _, r) = tokens[at];
            d = d
                .with_secondary(Span::new(l, r), "the next section starts inside it")
                .with_help("add the missing `}` before the next section");
        }
        Evidence::End => {
            for &outer in others {
                let (l, _, r) = tokens[outer];
                d = d.with_secondary(Span::new(l, r), "this `{` is not closed either");
            }
            d = d.with_help("add the missing `}`");
        }
    }
    d.with_secondary(end, "the file ends here")
}

/// What a `{` opens, from the tokens before it.
enum Opener {
    Section(String),
    Block(&'static str),
    Unknown,
}

fn opener(tokens: &[Spanned], open: usize) -> Opener {
    let mut j = open;
    if j > 0 && tokens[j - 1].1 == Tok::Equals {
        j -= 1;
    }
    let Some(k) = j.checked_sub(1) else {
        return Opener::Unknown;
    };
    let before = k.checked_sub(1).map(|b| &tokens[b].1);
    let before2 = k.checked_sub(2).map(|b| &tokens[b].1);
    if before == Some(&Tok::Id) || (before == Some(&Tok::Equals) && before2 == Some(&Tok::Id)) {
        let name = match &tokens[k].1 {
            Tok::Word(w) | Tok::Str(w) => w.clone(),
            other => other.keyword_text().unwrap_or("?").to_string(),
        };
        return Opener::Section(name);
    }
    match tokens[k].1.keyword_text() {
        Some(key) => Opener::Block(key),
        None => Opener::Unknown,
    }
}

/// Whether only white space precedes byte `at` on its line.
fn starts_line(src: &str, at: usize) -> bool {
    let line = src[..at].rfind('\n').map_or(0, |n| n + 1);
    src[line..at].bytes().all(|b| b == b' ' || b == b'\t')
}

/// The width of the white space that starts the line holding byte `at` (a tab
/// counts 8).
fn indent(src: &str, at: usize) -> usize {
    let line = src[..at].rfind('\n').map_or(0, |n| n + 1);
    src[line..]
        .bytes()
        .take_while(|b| *b == b' ' || *b == b'\t')
        .map(|b| if b == b'\t' { 8 } else { 1 })
        .sum()
}

/// The brace structure of a token list in which every `{` is closed.
pub(super) struct Tree {
    /// For a brace, the index of its partner.
    matching: Vec<Option<usize>>,
    /// For every token, the `{` of the innermost block it stands in (for a `}`, the
    /// block it closes).
    open_of: Vec<Option<usize>>,
}

impl Tree {
    pub(super) fn new(tokens: &[Spanned]) -> Tree {
        let n = tokens.len();
        let mut matching = vec![None; n];
        let mut open_of = vec![None; n];
        let mut stack: Vec<usize> = Vec::new();
        for (i, (_, tok, _)) in tokens.iter().enumerate() {
            match tok {
                Tok::LBrace => {
                    open_of[i] = stack.last().copied();
                    stack.push(i);
                }
                Tok::RBrace => match stack.pop() {
                    Some(o) => {
                        matching[o] = Some(i);
                        matching[i] = Some(o);
                        open_of[i] = Some(o);
                    }
                    None => open_of[i] = None,
                },
                _ => open_of[i] = stack.last().copied(),
            }
        }
        Tree { matching, open_of }
    }

    /// The `{` of the innermost block token `i` stands in.
    pub(super) fn open_of(&self, i: usize) -> Option<usize> {
        self.open_of.get(i).copied().flatten()
    }

    /// The index of the `}` that ends the top-level section token `i` stands in
    /// (the file's length at the top level).
    fn outermost_close(&self, i: usize) -> usize {
        let mut open = self.open_of(i);
        while let Some(outer) = open.and_then(|o| self.open_of(o)) {
            open = Some(outer);
        }
        open.and_then(|o| self.matching[o])
            .unwrap_or(self.matching.len())
    }

    /// The index of the `}` that ends the block token `i` stands in (the file's
    /// length at the top level).
    fn close_of(&self, i: usize) -> usize {
        self.open_of(i)
            .and_then(|o| self.matching[o])
            .unwrap_or(self.matching.len())
    }
}

/// Whether `tok` is a keyword (a word of a directive's key).
fn is_keyword(tok: &Tok) -> bool {
    tok.keyword_text().is_some()
}

/// The first token of the directive that token `i` (where the parser failed) is in:
/// the words of its key before `i` on the same line (`tls` of `tls certfiel`), or
/// the misspelled word before an `=`.
pub(super) fn directive_start(tokens: &[Spanned], tree: &Tree, src: &str, i: usize) -> usize {
    let same_line = |a: usize, b: usize| !src[tokens[a].2..tokens[b].0].contains('\n');
    let mut s = i.min(tokens.len());
    if s == tokens.len() {
        return s;
    }
    let closing = tokens[s].1 == Tok::RBrace && tree.matching[s].is_some();
    if !closing && tokens[s].1 != Tok::LBrace && tree.open_of(s).is_none() {
        // At the top level an item starts with `setenv` or `id`: back to the one
        // this token belongs to, not past a section's end.
        let mut t = s;
        while t > 0 && !matches!(tokens[t - 1].1, Tok::LBrace | Tok::RBrace) {
            t -= 1;
            if matches!(tokens[t].1, Tok::Setenv | Tok::Id) {
                return t;
            }
        }
        return s;
    }
    match &tokens[s].1 {
        Tok::Equals if s > 0 && matches!(tokens[s - 1].1, Tok::Word(_)) => s -= 1,
        // `tls certfile = }`: the directive before the block's end lacks its value.
        _ if closing && s > 0 && tokens[s - 1].1 == Tok::Equals => s -= 1,
        _ => {}
    }
    // A keyword right after an `=` is that directive's value, not part of this key.
    while s > 0
        && is_keyword(&tokens[s - 1].1)
        && (s == tokens.len() || same_line(s - 1, s) || tokens[s].1 == Tok::Equals)
        && !(s > 1 && tokens[s - 2].1 == Tok::Equals)
    {
        s -= 1;
    }
    s
}

/// The index after the last token of the broken directive at `i`: its value after
/// an `=`, or its whole `{ ... }` block; else the rest of its line, and never past
/// the end of the block it stands in. A stray `}` is a directive of its own.
pub(super) fn directive_end(tokens: &[Spanned], tree: &Tree, src: &str, i: usize) -> usize {
    let n = tokens.len();
    if i >= n {
        return n;
    }
    if tokens[i].1 == Tok::RBrace {
        return if tree.matching[i].is_some() { i } else { i + 1 };
    }
    let limit = tree.close_of(i);
    let mut j = i;
    while j < n && j < limit {
        if j > i
            && src[tokens[j - 1].2..tokens[j].0].contains('\n')
            && tokens[j - 1].1 != Tok::Equals
        {
            break;
        }
        // A key after a word (`zqfrob port = 1`, `zqfrob id = spawnd {`) starts the
        // next directive.
        if j > i
            && is_keyword(&tokens[j].1)
            && matches!(tokens[j - 1].1, Tok::Word(_) | Tok::Str(_))
        {
            break;
        }
        match tokens[j].1 {
            Tok::LBrace => return tree.matching[j].map_or(limit, |c| c + 1),
            Tok::RBrace => return if tree.matching[j].is_some() { j } else { j + 1 },
            Tok::Equals => {
                let mut end = match tokens.get(j + 1).map(|t| &t.1) {
                    Some(Tok::LBrace) => return tree.matching[j + 1].map_or(limit, |c| c + 1),
                    Some(Tok::RBrace) | None => return j + 1,
                    Some(_) if j + 1 < limit => j + 2,
                    Some(_) => return j + 1,
                };
                // A value written as several words (`= S3cr3t Pa55`): the words after
                // it on its line, up to the next key.
                while end < limit
                    && matches!(tokens[end].1, Tok::Word(_) | Tok::Str(_))
                    && !src[tokens[end - 1].2..tokens[end].0].contains('\n')
                    && tokens.get(end + 1).is_none_or(|t| t.1 != Tok::Equals)
                {
                    end += 1;
                }
                return end;
            }
            _ => j += 1,
        }
    }
    j
}

/// The token index of the error `e` (the first of the tokens at its place), or
/// `None` for the end of the file.
fn error_index(e: &ParseError<usize, Tok, LexError>, tokens: &[Spanned]) -> Option<usize> {
    let (l, r) = match e {
        ParseError::UnrecognizedToken {
            token: (l, _, r), ..
        }
        | ParseError::ExtraToken { token: (l, _, r) } => (*l, *r),
        ParseError::InvalidToken { location } => (*location, *location + 1),
        ParseError::UnrecognizedEof { .. } | ParseError::User { .. } => return None,
    };
    let first = tokens.partition_point(|t| t.0 < l);
    (first..tokens.len())
        .take_while(|&k| tokens[k].0 == l)
        .find(|&k| tokens[k].2 == r)
        .or((first < tokens.len()).then_some(first))
}

/// Parses `tokens`, resuming after each broken directive at the next directive of
/// its block: the diagnostics are one per broken directive.
pub(super) fn parse(
    tokens: &[Spanned],
    src: &str,
    selection: Option<&Selection>,
) -> (Option<File>, Vec<Diagnostic>) {
    let tree = Tree::new(tokens);
    let mut cut = vec![false; tokens.len()];
    let mut reported: Vec<Diagnostic> = Vec::new();
    for pass in 0..MAX_PASSES {
        let kept = tokens
            .iter()
            .zip(&cut)
            .filter(|(_, c)| !**c)
            .map(|(t, _)| Ok::<Spanned, LexError>(t.clone()));
        let mut recovered: Vec<ErrorRecovery<usize, Tok, LexError>> = Vec::new();
        let result = grammar::ConfigParser::new().parse(&mut recovered, kept);
        let mut errors: Vec<ParseError<usize, Tok, LexError>> =
            recovered.into_iter().map(|r| r.error).collect();
        let file = match result {
            Ok(file) => Some(file),
            Err(e) => {
                errors.push(e);
                None
            }
        };
        if errors.is_empty() {
            return (file, reported);
        }
        let last = pass + 1 == MAX_PASSES;
        let mut new = 0;
        // Past the end of the block of the last error taken, the parser's own
        // recovery may have misread the structure: those wait for the next pass.
        let mut resume = 0usize;
        for e in errors {
            let at = error_index(&e, tokens);
            let from = at.unwrap_or(tokens.len());
            if !last && from < resume {
                continue;
            }
            let d = describe(e, src, tokens, &tree, selection);
            if reported
                .iter()
                .any(|r| r.span == d.span && r.code == d.code)
            {
                continue;
            }
            reported.push(d);
            new += 1;
            let Some(i) = at else { continue };
            let start = directive_start(tokens, &tree, src, i);
            let end = directive_end(tokens, &tree, src, i).max(start);
            let braces = tokens[start..end]
                .iter()
                .any(|t| matches!(t.1, Tok::LBrace | Tok::RBrace));
            for c in &mut cut[start..end] {
                *c = true;
            }
            // The parser's own recovery may have left the block (a keyword of the
            // top level in it, `id`, makes it unwind to there) or, after a `{ ... }`,
            // lost count of the braces up to the section's end: later errors of the
            // block, or of the section, wait for the next pass.
            resume = if braces || start == end {
                (tree.outermost_close(i) + 1).max(end)
            } else {
                (tree.close_of(i) + 1).max(end)
            };
        }
        if last || new == 0 {
            return (file, reported);
        }
    }
    unreachable!("the last pass returns")
}
