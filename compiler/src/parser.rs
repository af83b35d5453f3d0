//! The parser: tokens to an AST plus syntax diagnostics.
//!
//! This is the one module that touches the parser lalrpop generates from
//! `grammar/tcprelay.lalrpop`. It feeds it the logos tokens, turns every recovered
//! and the final parse error into a [`Diagnostic`] (with "did you mean" over the
//! keywords the grammar expected at that point), and returns whatever AST could be
//! recovered.

use crate::ast::{Body, Directive, File, ForeignListen, Item, Key, Sp, Span, Value};
use crate::diag::{Code, Diagnostic};
use crate::lexer::{self, LexError, Spanned, Tok};
use crate::suggest;
use crate::Selection;
use lalrpop_util::{lalrpop_mod, ParseError};

mod recover;

lalrpop_mod!(
    #[allow(
        clippy::all,
        clippy::pedantic,
        unused_parens,
        missing_debug_implementations
    )]
    grammar,
    "/tcprelay.rs"
);

/// Parses `src`. The file is `None` only when the parser could not recover at all;
/// the diagnostics then still say why.
///
/// With a `selection`, a top-level section whose id it does not name is skipped to
/// its matching `}` (see [`foreign_sections`]) and recorded as [`Item::Skipped`]:
/// its directives are another program's, so neither the lexer's findings inside it
/// nor the grammar apply. `None` parses every section.
pub fn parse(src: &str, selection: Option<&Selection>) -> (Option<File>, Vec<Diagnostic>) {
    let (tokens, diags) = lexer::lex(src);
    parse_tokens(src, tokens, diags, selection)
}

/// Parses `tokens`, lexed from `src` with the findings `diags`: the tokens of a
/// configuration whose includes are spliced in ([`crate::include`]), `src` the text of
/// its global offset space.
pub fn parse_tokens(
    src: &str,
    tokens: Vec<Spanned>,
    mut diags: Vec<Diagnostic>,
    selection: Option<&Selection>,
) -> (Option<File>, Vec<Diagnostic>) {
    let foreign = match selection {
        Some(selection) => foreign_sections(&tokens, selection),
        None => Foreign::default(),
    };
    let mut skipped = Vec::new();
    let tokens = if foreign.sections.is_empty() && foreign.unclosed.is_none() {
        tokens
    } else {
        let spans = foreign.spans(&tokens, src.len());
        // What the lexer found in a skipped section is not an error, except a string
        // left open in one that never closes: that string is why it never closes.
        diags.retain(|d| {
            let at = spans.partition_point(|s| s.end <= d.span.start);
            let inside = spans.get(at).is_some_and(|s| s.start <= d.span.start);
            !inside
                || (d.code == Code::UnterminatedString
                    && at + 1 == spans.len()
                    && foreign.unclosed.is_some())
        });
        if let Some((id, brace)) = &foreign.unclosed {
            diags.push(unclosed_foreign(id, *brace, src.len()));
        }
        let listens: Vec<Vec<ForeignListen>> = foreign
            .sections
            .iter()
            .map(|(_, r)| foreign_listens(&tokens[r.clone()]))
            .collect();
        let mut kept = Vec::with_capacity(tokens.len());
        let mut ranges = foreign.token_ranges().peekable();
        for (i, token) in tokens.into_iter().enumerate() {
            while ranges.next_if(|r| r.end <= i).is_some() {}
            if ranges.peek().is_some_and(|r| r.contains(&i)) {
                continue;
            }
            kept.push(token);
        }
        for (((id, _), span), listens) in foreign.sections.iter().zip(&spans).zip(listens) {
            let item = Item::Skipped {
                id: id.clone(),
                listens,
            };
            skipped.push(Sp::new(item, *span));
        }
        kept
    };
    let tokens = source_sticky(tokens);
    let tokens = recover::continuations(tokens, src, &mut diags);
    let tokens = recover::close_braces(tokens, src, &mut diags);
    let (mut file, syntax) = recover::parse(&tokens, src, selection);
    diags.extend(syntax);
    // A misspelled key in a block (`wieght = 2`) was reported at the word; were it
    // left in the tokens, the parser would take the word as a bare address: drop that
    // phantom (the recovery above cuts such directives out, but its last pass keeps
    // what the generated parser made of a file with very many errors).
    let mut misspelled = Vec::new();
    for d in diags.iter().filter(|d| d.code == Code::UnexpectedToken) {
        let at = tokens.partition_point(|(l, _, _)| *l < d.span.start);
        if let [(_, Tok::Word(_), _), (_, Tok::Equals, _), value, ..] =
            &tokens[at.min(tokens.len())..]
        {
            misspelled.push(d.span);
            misspelled.push(Span::new(value.0, value.2));
        }
    }
    if let Some(file) = file.as_mut() {
        prune_bare_addresses(file, &misspelled);
        lost_regex_backslashes(file, src, &mut diags);
        if !skipped.is_empty() {
            // In reading order among the parsed items (a stable sort of sorted runs).
            file.items.extend(skipped);
            file.items.sort_by_key(|item| item.span.start);
        }
    }
    // A string left open swallows the rest of the file: the end of file and the
    // unclosed blocks that follow are its consequence, not other mistakes.
    if let Some(open) = diags
        .iter()
        .filter(|d| d.code == Code::UnterminatedString)
        .map(|d| d.span.start)
        .min()
    {
        diags.retain(|d| {
            d.code != Code::UnexpectedEof
                && !(d.code == Code::UnexpectedToken && d.span.start >= open)
        });
    }
    diags.sort_by_key(|d| (d.span.start, d.span.end));
    // A broken token can be reported by both the lexer and the parser at one place:
    // keep the first report of each place.
    diags.dedup_by(|b, a| a.span == b.span && a.code == b.code);
    (file, diags)
}

/// `balance = source sticky`: the value is two words, the second the keyword that
/// also starts `sticky cache ...`, which one token of look-ahead cannot tell apart.
/// Where `balance =` is followed by the word `source` and `sticky`, and `sticky` is
/// not followed by `cache`, the two become one word `source sticky` spanning both.
fn source_sticky(mut tokens: Vec<Spanned>) -> Vec<Spanned> {
    let joined = |tokens: &[Spanned], at: usize| {
        matches!(
            &tokens[at..],
            [(_, Tok::Balance, _), (_, Tok::Equals, _), (_, Tok::Word(w), _), (_, Tok::Sticky, _), ..]
                if w == "source"
        ) && !matches!(tokens.get(at + 4), Some((_, Tok::Cache, _)))
    };
    // Rebuilt only when there is something to join, and then in one pass (a file may
    // hold many routes, each with its `balance`).
    if !(0..tokens.len()).any(|at| joined(&tokens, at)) {
        return tokens;
    }
    let mut out = Vec::with_capacity(tokens.len());
    let mut at = 0;
    while at < tokens.len() {
        if joined(&tokens, at) {
            let (start, end) = (tokens[at + 2].0, tokens[at + 3].2);
            out.push(std::mem::replace(&mut tokens[at], (0, Tok::Equals, 0)));
            out.push(std::mem::replace(&mut tokens[at + 1], (0, Tok::Equals, 0)));
            out.push((start, Tok::Word("source sticky".to_string()), end));
            at += 4;
        } else {
            out.push(std::mem::replace(&mut tokens[at], (0, Tok::Equals, 0)));
            at += 1;
        }
    }
    out
}

/// The top-level sections of `tokens` that the selection does not name.
#[derive(Debug, Default)]
struct Foreign {
    /// Each skipped section's id and the indices of its tokens, `id` to `}`.
    sections: Vec<(Sp<Value>, std::ops::Range<usize>)>,
    /// A section that is never closed: its id and its `{`. Its tokens run from its
    /// `id` (the index after the last of `sections`, or later) to the end.
    unclosed: Option<(Sp<Value>, Span)>,
    /// The index of the unclosed section's `id` token.
    unclosed_from: usize,
}

impl Foreign {
    /// The token ranges to leave out, in order: the sections, then the unclosed one.
    fn token_ranges(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let tail = self
            .unclosed
            .as_ref()
            .map(|_| self.unclosed_from..usize::MAX);
        self.sections.iter().map(|(_, r)| r.clone()).chain(tail)
    }

    /// The byte spans of [`Foreign::token_ranges`]; the unclosed one ends at `len`.
    fn spans(&self, tokens: &[Spanned], len: usize) -> Vec<Span> {
        self.token_ranges()
            .map(|r| {
                let end = tokens.get(r.end.wrapping_sub(1)).map_or(len, |t| t.2);
                Span::new(tokens[r.start].0, end)
            })
            .collect()
    }
}

/// Finds the sections to skip: at the top level (outside every brace), `id = NAME {`
/// or `id NAME {` whose NAME the selection does not name, to the `}` that closes it,
/// counting the braces between. The tokens already honour quoted strings and
/// comments, so a `}` in either does not count; a character the lexer refused is
/// simply not a token.
fn foreign_sections(tokens: &[Spanned], selection: &Selection) -> Foreign {
    let mut found = Foreign::default();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        if depth == 0 {
            if let Some((id, brace)) = section_start(&tokens[i..]) {
                if !selection.selects(&id.node.text) {
                    let open = i + brace;
                    let mut inner = 0usize;
                    let close = tokens[open..].iter().position(|(_, tok, _)| {
                        match tok {
                            Tok::LBrace => inner += 1,
                            Tok::RBrace => inner -= 1,
                            _ => {}
                        }
                        inner == 0
                    });
                    match close {
                        Some(n) => {
                            found.sections.push((id, i..open + n + 1));
                            i = open + n + 1;
                            continue;
                        }
                        None => {
                            let (l, _, r) = &tokens[open];
                            found.unclosed = Some((id, Span::new(*l, *r)));
                            found.unclosed_from = i;
                            return found;
                        }
                    }
                }
            }
        }
        match tokens[i].1 {
            Tok::LBrace => depth += 1,
            Tok::RBrace => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    found
}

/// The `listen` blocks directly in a skipped section (`tokens` from its `id` to its
/// `}`): `listen [=] {` and, at the block's own level, `address`, `port` and `path`
/// with or without `=`, and a bare IP address first in the block. Anything else is
/// another program's and passed over.
fn foreign_listens(tokens: &[Spanned]) -> Vec<ForeignListen> {
    let value = |t: Option<&Spanned>| match t {
        Some((l, Tok::Word(w), r)) => Some(Sp::new(Value::word(w.clone()), Span::new(*l, *r))),
        Some((l, Tok::Str(s), r)) => Some(Sp::new(
            Value {
                text: s.clone(),
                quoted: true,
            },
            Span::new(*l, *r),
        )),
        _ => None,
    };
    let mut found = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i].1 {
            Tok::LBrace => depth += 1,
            Tok::RBrace => depth = depth.saturating_sub(1),
            Tok::Listen if depth == 1 => {
                let mut at = i + 1;
                if matches!(tokens.get(at), Some((_, Tok::Equals, _))) {
                    at += 1;
                }
                if !matches!(tokens.get(at), Some((_, Tok::LBrace, _))) {
                    i += 1;
                    continue;
                }
                let mut l = ForeignListen {
                    key: Span::new(tokens[i].0, tokens[i].2),
                    address: None,
                    port: None,
                    path: None,
                };
                let open = at;
                let mut inner = 0usize;
                while at < tokens.len() {
                    match &tokens[at].1 {
                        Tok::LBrace => inner += 1,
                        Tok::RBrace => {
                            inner -= 1;
                            if inner == 0 {
                                break;
                            }
                        }
                        key @ (Tok::Address | Tok::Port | Tok::Path) if inner == 1 => {
                            let mut v = at + 1;
                            if matches!(tokens.get(v), Some((_, Tok::Equals, _))) {
                                v += 1;
                            }
                            let slot = match key {
                                Tok::Address => &mut l.address,
                                Tok::Port => &mut l.port,
                                _ => &mut l.path,
                            };
                            if let Some(val) = value(tokens.get(v)) {
                                *slot = Some(val);
                                at = v;
                            }
                        }
                        Tok::Word(w) if at == open + 1 && w.parse::<std::net::IpAddr>().is_ok() => {
                            l.address = value(tokens.get(at));
                        }
                        _ => {}
                    }
                    at += 1;
                }
                found.push(l);
                // Past the block's `}`.
                i = at + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// `id = NAME {` or `id NAME {` at the start of `tokens`: the id, and the index of
/// the `{`.
fn section_start(tokens: &[Spanned]) -> Option<(Sp<Value>, usize)> {
    let [(_, Tok::Id, _), rest @ ..] = tokens else {
        return None;
    };
    let (skip, rest) = match rest {
        [(_, Tok::Equals, _), rest @ ..] => (2, rest),
        rest => (1, rest),
    };
    let [(l, tok, r), (_, Tok::LBrace, _), ..] = rest else {
        return None;
    };
    let value = match tok {
        Tok::Word(w) => Value::word(w.clone()),
        Tok::Str(s) => Value {
            text: s.clone(),
            quoted: true,
        },
        other => Value::word(other.keyword_text()?),
    };
    Some((Sp::new(value, Span::new(*l, *r)), skip + 1))
}

/// E0004 for a skipped section with no matching `}`, at its `{`.
fn unclosed_foreign(id: &Sp<Value>, brace: Span, len: usize) -> Diagnostic {
    Diagnostic::error(
        Code::UnexpectedEof,
        brace,
        format!("unclosed `{{`: section `{}` never ends", id.node.text),
    )
    .with_label("this `{` has no matching `}`")
    .with_secondary(Span::new(len, len), "the file ends here")
    .with_help("add the missing `}`")
    .with_note(format!(
        "`{}` is not a selected section, so it is skipped to its matching `}}` unread; the braces in its quoted strings and comments do not count",
        id.node.text
    ))
}

/// Removes the bare-address items whose span is one of `spans`, in every block.
fn prune_bare_addresses(file: &mut File, spans: &[Span]) {
    if spans.is_empty() {
        return;
    }
    // A set, not a list: a file may have thousands of misspelled keys.
    let spans: std::collections::HashSet<Span> = spans.iter().copied().collect();
    fn prune(items: &mut Vec<Sp<Directive>>, spans: &std::collections::HashSet<Span>) {
        items.retain(|d| !(d.node.key.node == Key::BareAddress && spans.contains(&d.span)));
        for d in items.iter_mut() {
            if let Body::Block(inner) = &mut d.node.body {
                prune(inner, spans);
            }
        }
    }
    for item in &mut file.items {
        if let Item::Section(section) = &mut item.node {
            prune(&mut section.body, &spans);
        }
    }
}

/// E0055 for an `expect regex` string with an escape the language resolves to the
/// plain character (`"\d+"` is the expression `d+`): the expression was most likely
/// meant to keep its backslash (`"\\d+"`). A warning, once per string, at the
/// first such escape; read from the source, as the AST holds the resolved text.
fn lost_regex_backslashes(file: &File, src: &str, diags: &mut Vec<Diagnostic>) {
    fn walk(items: &[Sp<Directive>], src: &str, diags: &mut Vec<Diagnostic>) {
        for d in items {
            match &d.node.body {
                Body::Block(inner) => walk(inner, src, diags),
                Body::Value(v) if d.node.key.node == Key::ExpectRegex && v.node.quoted => {
                    if let Some(diag) = lost_backslash(src, v.span) {
                        diags.push(diag);
                    }
                }
                _ => {}
            }
        }
    }
    for item in &file.items {
        if let Item::Section(section) = &item.node {
            walk(&section.body, src, diags);
        }
    }
}

/// The E0055 warning for the quoted string at `span` of `src`, if it has an escape
/// other than the language's own (`\"`, `\\`, `\n`, `\t`, `\r`).
fn lost_backslash(src: &str, span: Span) -> Option<Diagnostic> {
    let raw = src.get(span.range())?;
    let mut chars = raw.char_indices();
    let mut found: Option<(usize, char)> = None;
    let mut count = 0;
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            continue;
        }
        match chars.next() {
            Some((_, '"' | '\'' | '\\' | 'n' | 't' | 'r' | '\n')) | None => {}
            Some((_, other)) => {
                count += 1;
                found.get_or_insert((i, other));
            }
        }
    }
    let (at, c) = found?;
    // The original's escapes of control characters (`\b` is a backspace).
    let control = matches!(c, 'a' | 'b' | 'e' | 'v' | 'f' | '0'..='7');
    let start = span.start + at;
    let end = start + 1 + c.len_utf8();
    let more = match count {
        1 => String::new(),
        2 => " (and 1 more escape like it)".to_string(),
        n => format!(" (and {} more escapes like it)", n - 1),
    };
    Some(
        Diagnostic::warning(
            Code::LostRegexBackslash,
            Span::new(start, end),
            if control {
                format!("`\\{c}` in a quoted string is a control character: the regular expression gets no backslash{more}")
            } else {
                format!("`\\{c}` in a quoted string is a plain `{c}`: the regular expression gets no backslash{more}")
            },
        )
        .with_label(if control {
            "the expression sees a control character".to_string()
        } else {
            format!("the expression sees `{c}`")
        })
        .with_help(format!("write `\\\\{c}` for the expression's `\\{c}`"))
        .with_note("in a quoted string `\\\\` is one backslash; `\\\"`, `\\'`, `\\n`, `\\t`, `\\r`, `\\a`, `\\b`, `\\e`, `\\v`, `\\f` and octal `\\NNN` are the other escapes"),
    )
}

/// The terminals lalrpop expected, as the user writes them (`"address"` → `address`).
fn expected_texts(expected: &[String]) -> Vec<String> {
    expected
        .iter()
        .map(|e| match e.as_str() {
            "Word" => "a word".to_string(),
            "QuotedString" => "a quoted string".to_string(),
            quoted => quoted.trim_matches('"').to_string(),
        })
        .collect()
}

/// "one of `a`, `b` or `c`", at most eight named.
fn one_of(expected: &[String]) -> String {
    let shown: Vec<String> = expected
        .iter()
        .take(8)
        .map(|e| {
            if e.starts_with("a ") {
                e.clone()
            } else {
                format!("`{e}`")
            }
        })
        .collect();
    let more = expected.len().saturating_sub(shown.len());
    match shown.as_slice() {
        [] => "nothing more".to_string(),
        [one] => one.clone(),
        [init @ .., last] if more == 0 => format!("one of {} or {last}", init.join(", ")),
        all => format!("one of {}, … ({more} more)", all.join(", ")),
    }
}

/// The key of the directive spelled `spelling` (`"tls cert-file"`), as the grammar
/// reads it in a section or in a `remote` block; `None` when it is not a key.
pub(crate) fn key_of(spelling: &str) -> Option<Key> {
    let texts = [
        format!("id = x {{ {spelling} = v }}"),
        format!("id = x {{ {spelling} = {{ }} }}"),
        format!("id = x {{ remote = {{ {spelling} = v }} }}"),
    ];
    for text in texts {
        let (tokens, diags) = lexer::lex(&text);
        if !diags.is_empty() {
            continue;
        }
        let mut errors = Vec::new();
        let Ok(file) = grammar::ConfigParser::new()
            .parse(&mut errors, tokens.into_iter().map(Ok::<Spanned, LexError>))
        else {
            continue;
        };
        if !errors.is_empty() {
            continue;
        }
        let Some(Item::Section(section)) = file.items.first().map(|i| &i.node) else {
            continue;
        };
        let Some(d) = section.body.first() else {
            continue;
        };
        let key = match (&d.node.key.node, &d.node.body) {
            (Key::Remote, Body::Block(items)) if !items.is_empty() => items[0].node.key.node,
            (key, _) => *key,
        };
        if key != Key::BareAddress {
            return Some(key);
        }
    }
    None
}

/// Where token `i` stands: the top level, a section (its roles from the selection)
/// or a block (its key).
fn place_of(
    tokens: &[Spanned],
    tree: &recover::Tree,
    i: usize,
    selection: Option<&Selection>,
) -> suggest::Place {
    let Some(open) = tree.open_of(i.min(tokens.len().saturating_sub(1))) else {
        return suggest::Place::Top;
    };
    // For a `{` itself, `open_of` is the block around it: the right place too.
    let mut j = open;
    if j > 0 && tokens[j - 1].1 == Tok::Equals {
        j -= 1;
    }
    let Some(k) = j.checked_sub(1) else {
        return suggest::Place::Top;
    };
    let is_id = |b: Option<usize>| b.is_some_and(|b| tokens[b].1 == Tok::Id);
    if is_id(k.checked_sub(1)) || (k >= 2 && tokens[k - 1].1 == Tok::Equals && is_id(Some(k - 2))) {
        let name = match &tokens[k].1 {
            Tok::Word(w) | Tok::Str(w) => w.as_str(),
            other => other.keyword_text().unwrap_or(""),
        };
        return match selection {
            Some(s) => suggest::Place::Section {
                spawnd: s.spawnd_id == name,
                tcprelay: s.tcprelay_id == name,
            },
            None => suggest::Place::Section {
                spawnd: true,
                tcprelay: true,
            },
        };
    }
    // The key words before the `{`: `listen`, `remote`, `check`...
    let mut s = k;
    while s > 0 && tokens[s - 1].1.keyword_text().is_some() {
        s -= 1;
    }
    let words: Vec<&str> = tokens[s..=k]
        .iter()
        .filter_map(|t| t.1.keyword_text())
        .collect();
    match key_of(&words.join(" ")) {
        Some(key) if crate::check::block_keys(key).is_some() => suggest::Place::Block(key),
        _ => suggest::Place::Top,
    }
}

/// The key words before token `i` in its directive (`tls` of `tls certfiel`).
fn key_prefix<'t>(
    tokens: &'t [Spanned],
    tree: &recover::Tree,
    src: &str,
    i: usize,
) -> Vec<&'t str> {
    let start = recover::directive_start(tokens, tree, src, i);
    tokens[start.min(i)..i]
        .iter()
        .map_while(|t| t.1.keyword_text())
        .collect()
}

fn describe(
    e: ParseError<usize, Tok, LexError>,
    src: &str,
    tokens: &[Spanned],
    tree: &recover::Tree,
    selection: Option<&Selection>,
) -> Diagnostic {
    let index = |l: usize| tokens.partition_point(|t| t.0 < l);
    match e {
        ParseError::UnrecognizedToken {
            token: (l, Tok::Equals, r),
            expected,
        } => match misspelled_key(tokens, l) {
            // `wieght = 2` in a block parses `wieght` as a bare address and fails at
            // the `=`; the word is the mistake, and the keywords that were valid at
            // the word are the ones expected after it.
            Some((wl, word, wr)) => {
                // Only keys can stand where the word is.
                let keys: Vec<String> = expected
                    .into_iter()
                    .filter(|e| e != "Word" && e != "QuotedString")
                    .collect();
                let i = index(wl);
                let place = place_of(tokens, tree, i, selection);
                let prefix = key_prefix(tokens, tree, src, i);
                unexpected(Span::new(wl, wr), &Tok::Word(word), &keys, &prefix, place)
            }
            None => {
                let i = index(l);
                let place = place_of(tokens, tree, i, selection);
                unexpected(Span::new(l, r), &Tok::Equals, &expected, &[], place)
            }
        },
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => {
            let i = index(l);
            let place = place_of(tokens, tree, i, selection);
            let prefix = key_prefix(tokens, tree, src, i);
            unexpected(Span::new(l, r), &tok, &expected, &prefix, place)
        }
        ParseError::ExtraToken { token: (l, tok, r) } => {
            unexpected(Span::new(l, r), &tok, &[], &[], suggest::Place::Top)
        }
        ParseError::UnrecognizedEof { location, expected } => {
            let at = Span::new(location.min(src.len()), location.min(src.len()));
            let expected = expected_texts(&expected);
            Diagnostic::error(Code::UnexpectedEof, at, "unexpected end of file")
                .with_label(format!("expected {}", one_of(&expected)))
        }
        ParseError::InvalidToken { location } => Diagnostic::error(
            Code::InvalidToken,
            Span::new(location, location + 1),
            "invalid token",
        ),
        ParseError::User { error } => Diagnostic::error(
            match error {
                LexError::InvalidToken => Code::InvalidToken,
                LexError::UnterminatedString => Code::UnterminatedString,
            },
            Span::new(0, 0),
            "invalid token",
        ),
    }
}

/// The word just before the `=` at `eq`, when it stands where a key should be.
fn misspelled_key(tokens: &[Spanned], eq: usize) -> Option<(usize, String, usize)> {
    let at = tokens.partition_point(|(l, _, _)| *l < eq);
    match at.checked_sub(1).map(|i| &tokens[i]) {
        Some((l, Tok::Word(w), r)) => Some((*l, w.clone(), *r)),
        _ => None,
    }
}

/// E0003 for `tok` where the grammar `expected` other tokens; the key words valid at
/// `place` (after the key words `prefix`) filter what is listed and suggested.
fn unexpected(
    span: Span,
    tok: &Tok,
    expected: &[String],
    prefix: &[&str],
    place: suggest::Place,
) -> Diagnostic {
    let written = match tok {
        Tok::Word(w) => Some(w.as_str()),
        other => other.keyword_text(),
    };
    let advice = written.map(|w| suggest::advise(w, prefix, place));
    let mut expected = expected_texts(expected);
    if !prefix.is_empty() {
        // After a key's first words the rest of the key is expected: a `}` there
        // only ends a block after a bare `tls` (the spawnd manual's `tls = yes`).
        expected.retain(|e| e != "}");
    }
    if let Some(valid) = advice.as_ref().and_then(|a| a.valid_words.as_ref()) {
        // Keywords the grammar takes here but the place does not admit are not
        // "expected"; punctuation and values are.
        expected.retain(|e| {
            e.starts_with("a ")
                || matches!(e.as_str(), "=" | "{" | "}")
                || valid.contains(&e.as_str())
                || crate::suggest::universe()
                    .iter()
                    .all(|k| !k.spelling().split(' ').any(|w| w == e))
        });
    }
    let mut d = Diagnostic::error(Code::UnexpectedToken, span, format!("unexpected {tok}"));
    d = if expected.is_empty() {
        d.with_label("nothing may follow here")
    } else {
        d.with_label(format!("expected {}", one_of(&expected)))
    };
    match (written, advice) {
        (Some(_), Some(advice)) if advice.valid_words.is_some() => {
            if let Some(help) = advice.help {
                d = d.with_help(help);
            }
            if let Some(note) = advice.note {
                d = d.with_note(note);
            }
        }
        (Some(word), _) => {
            // At the top level the grammar's own expectations are exact.
            let keywords = expected
                .iter()
                .map(String::as_str)
                .filter(|e| !e.starts_with("a "));
            if let Some(fix) = suggest::closest(word, keywords) {
                d = d.with_help(format!("did you mean `{fix}`?"));
            }
        }
        (None, _) => {}
    }
    d
}

#[cfg(test)]
mod tests {
    use crate::diag::Severity;

    /// The E0055 warnings of `src`: (the text under each, its message).
    fn lost(src: &str) -> Vec<(String, String)> {
        let (_, diags) = super::parse(src, None);
        diags
            .iter()
            .filter(|d| d.code == Code::LostRegexBackslash)
            .inspect(|d| assert_eq!(d.severity, Severity::Warning))
            .map(|d| (src[d.span.range()].to_string(), d.message.clone()))
            .collect()
    }

    #[test]
    fn a_regex_escape_the_language_takes_for_a_plain_character_is_warned_about() {
        let block = |regex: &str| {
            format!("id = tcprelay {{ remote = {{ address = 10.0.0.1 port = 1 check = {{ expect regex = {regex} }} }} check = {{ expect regex = {regex} }} }}")
        };
        // In a remote's check and in the section's, once per string, at the first.
        let found = lost(&block(r#""^\d+ \w OK""#));
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, r"\d");
        assert!(
            found[0].1.ends_with("(and 1 more escape like it)"),
            "{}",
            found[0].1
        );
        // The language's own escapes, a doubled backslash, and other directives: none.
        assert!(lost(&block(r#""^\\d+\r\n\t\"x\"\'""#)).is_empty());
        // `\b` (a word boundary to the expression) is the original's backspace.
        let found = lost(&block(r#"'\bOK'"#));
        assert_eq!(found[0].0, r"\b");
        assert!(found[0].1.contains("control character"), "{}", found[0].1);
        assert!(lost(&block("unquoted\\d")).is_empty());
        assert!(lost(r#"id = tcprelay { check = { expect = "\d" send = "\d" } }"#).is_empty());
    }
    use super::*;

    fn ok(src: &str) -> File {
        let (file, diags) = parse(src, None);
        assert!(diags.is_empty(), "{diags:#?}");
        file.expect("a file")
    }

    fn section(file: &File, n: usize) -> &crate::ast::Section {
        match &file.items[n].node {
            Item::Section(s) => s,
            other => panic!("not a section: {other:?}"),
        }
    }

    #[test]
    fn the_manual_sample_parses() {
        let src = "#!/usr/local/sbin/spawnd\nid = spawnd {\n listen = { port = 2222 }\n listen = { address = ::0 port = 2222 }\n listen = { ::0 port = 2224 }\n listen = { port = 2225 tls = yes }\n spawn {\n users max = 4000\n users min = 10\n servers min = 1\n servers max = 20\n }\n}\nid = tcprelay {\n remote = { address = 169.254.1.2 port = 22 }\n ssl cert = /some/where/sample.pem\n ssl passphrase =  12345\n}\n";
        let file = ok(src);
        assert_eq!(file.items.len(), 2);
        let spawnd = section(&file, 0);
        assert_eq!(spawnd.id.node.text, "spawnd");
        assert_eq!(spawnd.body.len(), 5);
        let Body::Block(items) = &spawnd.body[2].node.body else {
            panic!()
        };
        assert_eq!(items[0].node.key.node, Key::BareAddress);
        assert_eq!(&src[items[0].span.range()], "::0");
        let relay = section(&file, 1);
        assert_eq!(relay.body[1].node.key.node, Key::SslCert);
        assert_eq!(&src[relay.body[1].node.key.span.range()], "ssl cert");
    }

    #[test]
    fn spans_cover_whole_directives() {
        let src = "id = x { tls cert-file = \"/a b\" }";
        let file = ok(src);
        let d = &section(&file, 0).body[0];
        assert_eq!(&src[d.span.range()], "tls cert-file = \"/a b\"");
        let Body::Value(v) = &d.node.body else {
            panic!()
        };
        assert_eq!(v.node.text, "/a b");
        assert!(v.node.quoted);
    }

    #[test]
    fn optional_equals_in_spawn_and_blocks() {
        let file = ok("id = s { spawn { exec /usr/libexec/tcprelay users max 10 } acl = deny not 10.0.0.0/8 }");
        let body = &section(&file, 0).body;
        assert_eq!(
            body[1].node.key.node,
            Key::Acl {
                permit: false,
                negate: true
            }
        );
    }

    #[test]
    fn keywords_are_values_after_equals() {
        let file = ok("setenv port = listen\nid = x { syslog ident = remote }");
        let Item::Setenv { name, value } = &file.items[0].node else {
            panic!()
        };
        assert_eq!(
            (name.node.text.as_str(), value.node.text.as_str()),
            ("port", "listen")
        );
    }

    #[test]
    fn typo_gets_did_you_mean_from_the_keywords_valid_there() {
        let (_, diags) = parse("id = t { remote = { adress = 1.2.3.4 port = 1 } }", None);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!(diags[0].code, Code::UnexpectedToken);
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `address`?"));
        assert_eq!(diags[0].span, Span::new(20, 26));
    }

    #[test]
    fn every_error_in_the_file_is_reported() {
        let src = "id = a { rebalanse = 3 }\nid = b { remote = { port = 1 wieght = 2 } }\n";
        let (file, diags) = parse(src, None);
        assert!(file.is_some());
        let texts: Vec<&str> = diags.iter().map(|d| &src[d.span.range()]).collect();
        assert_eq!(texts, vec!["rebalanse", "wieght"], "{diags:#?}");
    }

    /// The (code, text at the primary span) of each diagnostic of `src`, parsed for
    /// the default selection.
    fn found(src: &str) -> Vec<(Code, &str)> {
        let (_, diags) = parse(src, Some(&Selection::default()));
        diags
            .iter()
            .map(|d| (d.code, &src[d.span.range()]))
            .collect()
    }

    #[test]
    fn unclosed_blocks_at_the_end_are_one_error_at_the_innermost_brace() {
        let src = "id = a {\n remote = { port = 1\n";
        let (_, diags) = parse(src, None);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        let d = &diags[0];
        assert_eq!(d.code, Code::UnexpectedEof);
        assert_eq!(d.span, Span::new(19, 20));
        assert_eq!(d.label, "unclosed `{` opened here");
        assert_eq!(d.message, "unclosed `{`: the `remote` block never ends");
        let labels: Vec<(Span, &str)> = d
            .labels
            .iter()
            .map(|l| (l.span, l.message.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                (Span::new(7, 8), "this `{` is not closed either"),
                (Span::new(src.len(), src.len()), "the file ends here")
            ]
        );
    }

    #[test]
    fn an_unclosed_brace_is_found_by_the_indentation_of_the_lines_after_it() {
        // The listener's `}` is missing: by counting, the section's `}` closes it and
        // the section never ends; by indentation, the listener is the one.
        let src = "id = spawnd {\n  listen = { port = 1\n  listen = { port = 2 }\n}\nid = tcprelay {\n  remote = { address = 10.0.0.1 port = 1 }\n}\n";
        let (file, diags) = parse(src, Some(&Selection::default()));
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!(diags[0].code, Code::UnexpectedEof);
        assert_eq!(diags[0].span.start, src.find("{ port = 1").unwrap());
        assert_eq!(
            diags[0].message,
            "unclosed `{`: the `listen` block never ends"
        );
        // The next line, as indented as the listener's, is inside it.
        let next = src.find("listen = { port = 2").unwrap();
        assert_eq!(diags[0].labels[0].span, Span::new(next, next + 6));
        assert_eq!(
            diags[0].labels[0].message,
            "this line is indented as the block around it, but is inside it"
        );
        // With the `}` put back there, the rest of the file is read as written.
        let file = file.expect("a file");
        assert_eq!(section(&file, 0).body.len(), 2);
        assert_eq!(section(&file, 1).id.node.text, "tcprelay");
    }

    #[test]
    fn a_section_starting_inside_a_block_shows_the_unclosed_one() {
        let src = "id = spawnd {\n  listen = { port = 1 }\nid = tcprelay { rebalanse = 1 }\n";
        let d = found(src);
        // The section's `{`, and the typo in the next section, which is read.
        assert_eq!(
            d,
            [
                (Code::UnexpectedEof, "{"),
                (Code::UnexpectedToken, "rebalanse")
            ]
        );
        let (_, diags) = parse(src, Some(&Selection::default()));
        assert_eq!(diags[0].span.start, 12);
        assert_eq!(
            diags[0].message,
            "unclosed `{`: section `spawnd` never ends"
        );
        assert_eq!(
            diags[0].labels[0].message,
            "the next section starts inside it"
        );
    }

    #[test]
    fn a_broken_directive_is_one_error_with_its_value_or_block() {
        let ok = "  listen = { address = 10.0.0.1 port = 1 }\n";
        let file = |spawnd: &str, relay: &str| {
            format!("id = spawnd {{\n{ok}{spawnd}}}\nid = tcprelay {{\n  remote = {{ address = 10.0.0.1 port = 2 }}\n{relay}}}\n")
        };
        for (spawnd, relay, word) in [
            // An unknown key with a block: the block goes with it (it was `unexpected
            // `}`` at the section's end too).
            ("  lsten = { port = 1 }\n", "", "lsten"),
            ("  lsten { port = 1 tls = yes }\n", "", "lsten"),
            // A key of another place with its block.
            // (`remote` blocks nest, in a `route`: the check stage places them.)
            (
                "  listen = { port = 3 control = { mode = 4 } }\n",
                "",
                "control",
            ),
            // A missing `=` (it was also "`address` is not valid in a `remote` block"
            // at the value).
            // (`port 9001` is the spawnd manual's form, taken with a warning.)
            (
                "",
                "  remote = { address = 10.0.0.1 port = 9001 weight 2 }\n",
                "2",
            ),
            // A key without its value before the block's end.
            ("", "  tls certfile =\n", "}"),
            // An unknown word alone on its line, and one with a value.
            ("  frobnicate\n  background = no\n", "", "frobnicate"),
            ("", "  rebalanse = 3 retire = 4\n", "rebalanse"),
        ] {
            let src = file(spawnd, relay);
            assert_eq!(found(&src), [(Code::UnexpectedToken, word)], "{src}");
        }
        // Two broken directives in two blocks of one section are two errors, and so
        // are two in one block when neither has a block.
        let src = file(
            "  listen = { port = 3 wieght = 1 }\n  listen = { prot = 5 }\n",
            "  rebalanse = 3\n  retier = 4\n",
        );
        let words: Vec<&str> = found(&src).iter().map(|(_, w)| *w).collect();
        assert_eq!(words, ["wieght", "prot", "rebalanse", "retier"], "{src}");
        // Two keys of another place in one section: two errors, and not the
        // section's `}` after them, where the parser's recovery had unwound to the
        // top level at the `id`.
        // (`exec` and `id` there are the spawnd manual's, taken as `spawn`'s.)
        let src = "id = spawnd2 { weight = 2 backlog = 5 }\n";
        let (_, diags) = parse(src, None);
        let words: Vec<&str> = diags.iter().map(|d| &src[d.span.range()]).collect();
        assert_eq!(words, ["weight", "backlog"], "{src}");
        let src = "id = spawnd2 { exec = /path/to/ftpd id = myftpd }\n";
        assert_eq!(parse(src, None).1.len(), 0, "{src}");
        // A broken top-level item: up to its `setenv`, and nothing else.
        let src = format!("setenv A B C\n{}", file("", ""));
        assert_eq!(found(&src).len(), 1, "{src}");
    }

    #[test]
    fn a_line_continuation_is_one_error_and_the_lines_read_as_one() {
        let src = "id = spawnd {\n  listen = { address = 10.0.0.1 \\\n    port = 1 }\n  listen = { address = 10.0.0.2\\\n port = 1 }\n}\n";
        let (file, diags) = parse(src, Some(&Selection::default()));
        let texts: Vec<(Code, &str)> = diags
            .iter()
            .map(|d| (d.code, &src[d.span.range()]))
            .collect();
        assert_eq!(
            texts,
            [
                (Code::LineContinuation, "\\"),
                (Code::LineContinuation, "\\")
            ]
        );
        assert!(diags[0].notes[0].contains("line breaks are spaces"));
        // Both listeners have their address and port, the second's without the `\`.
        let file = file.expect("a file");
        let spawnd = section(&file, 0);
        for (n, address) in [(0, "10.0.0.1"), (1, "10.0.0.2")] {
            let Body::Block(items) = &spawnd.body[n].node.body else {
                panic!()
            };
            let values: Vec<(Key, &str)> = items
                .iter()
                .map(|d| match &d.node.body {
                    Body::Value(v) => (d.node.key.node, v.node.text.as_str()),
                    _ => panic!(),
                })
                .collect();
            assert_eq!(values, [(Key::Address, address), (Key::Port, "1")]);
        }
        // Inside a quoted string, or not at a line's end, a backslash is no
        // continuation.
        assert!(found("setenv A = \"x \\\n y\"\nsetenv B = a\\b\n").is_empty());
    }

    #[test]
    fn suggestions_are_keys_valid_at_the_place() {
        let src = "id = spawnd {\n  rebalanse = 1\n  listen = { port = 1 wieght = 2 }\n}\nid = tcprelay {\n  remote = { address = 10.0.0.1 port = 1 }\n  tls certfiel = x\n}\n";
        let (_, diags) = parse(src, Some(&Selection::default()));
        let said: Vec<(&str, Option<&str>, Option<&str>)> = diags
            .iter()
            .map(|d| {
                (
                    &src[d.span.range()],
                    d.help.as_deref(),
                    d.notes.first().map(String::as_str),
                )
            })
            .collect();
        assert_eq!(
            said,
            [
                (
                    "rebalanse",
                    None,
                    Some("the closest key, `rebalance`, is valid only in the tcprelay section, not in the spawnd section")
                ),
                (
                    "wieght",
                    None,
                    Some("the closest key, `weight`, is valid only in a `remote` block, not in a `listen` block")
                ),
                ("certfiel", Some("did you mean `tls certfile`?"), None),
            ]
        );
        // The listed expectations are the place's: not `rebalance` in spawnd.
        assert!(
            !diags[0].label.contains("`rebalance`"),
            "{}",
            diags[0].label
        );
        assert!(diags[0].label.contains("`listen`"), "{}", diags[0].label);
    }

    /// Parses `src` for the default selection (`spawnd` and `tcprelay`).
    fn selected(src: &str) -> (Option<File>, Vec<Diagnostic>) {
        parse(src, Some(&Selection::default()))
    }

    /// The skipped sections of `file`: (id, the text of the item's span).
    fn skipped<'s>(file: &File, src: &'s str) -> Vec<(String, &'s str)> {
        file.items
            .iter()
            .filter_map(|i| match &i.node {
                Item::Skipped { id, .. } => Some((id.node.text.clone(), &src[i.span.range()])),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_section_not_selected_is_skipped_to_its_matching_brace_unread() {
        // Another program's directives, a `}` in a string and in a comment, nested
        // blocks, characters the lexer refuses (NUL too), and the `id NAME {` form.
        let foreign = "id = tac_plus {\n host = world { welcome banner = \"}} bye {\" }\n # a } in a comment\n user = x { password = clear \u{1}\u{7f}\0 \"\0\" }\n}";
        let src = format!("setenv A = b\n{foreign}\nid tcprelay {{ remote = {{ address = 10.0.0.1 port = 1 }} }}\nid ftpd {{ deny }}\n");
        let (file, diags) = selected(&src);
        assert!(diags.is_empty(), "{diags:#?}");
        let file = file.expect("a file");
        assert_eq!(
            skipped(&file, &src),
            vec![
                ("tac_plus".to_string(), foreign),
                ("ftpd".to_string(), "id ftpd { deny }")
            ]
        );
        // In reading order, and the selected section and `setenv` are parsed.
        assert!(matches!(file.items[0].node, Item::Setenv { .. }));
        assert!(matches!(file.items[1].node, Item::Skipped { .. }));
        assert_eq!(section(&file, 2).id.node.text, "tcprelay");
        assert_eq!(section(&file, 2).body[0].node.key.node, Key::Remote);
        assert!(matches!(file.items[3].node, Item::Skipped { .. }));
        // Without a selection the same foreign section is read, and rejected.
        let (_, all) = parse(&src, None);
        assert!(all.iter().any(|d| d.code == Code::InvalidToken), "{all:#?}");
    }

    #[test]
    fn a_skipped_sections_listen_blocks_are_kept_for_where_they_bind() {
        // With and without `=`, a bare address first, a quoted path; a `listen` in a
        // nested block and another key's `address` are not listeners.
        let src = "id = ftpd {\n listen { port 21 }\n listen = { 192.0.2.1 port = ssh tls = yes }\n listen = { address = ::1 port = \"7\" path = '/run/x' }\n host = h { listen = { port = 9 } address = 10.0.0.1 }\n}\nid tcprelay { }\n";
        let (file, diags) = selected(src);
        assert!(diags.is_empty(), "{diags:#?}");
        let file = file.expect("a file");
        let Item::Skipped { listens, .. } = &file.items[0].node else {
            panic!("{:?}", file.items[0]);
        };
        fn text(v: &Option<Sp<Value>>) -> Option<&str> {
            v.as_ref().map(|v| v.node.text.as_str())
        }
        type Bound<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);
        let got: Vec<Bound> = listens
            .iter()
            .map(|l| {
                (
                    &src[l.key.range()],
                    text(&l.address),
                    text(&l.port),
                    text(&l.path),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("listen", None, Some("21"), None),
                ("listen", Some("192.0.2.1"), Some("ssh"), None),
                ("listen", Some("::1"), Some("7"), Some("/run/x")),
            ]
        );
        assert_eq!(listens[0].key.start, src.find("listen").unwrap());
    }

    #[test]
    fn selected_sections_are_parsed_however_often_they_appear() {
        // A section named for either role is parsed, even a second time (the check
        // stage reports the repetition), and in the `id NAME {` form too.
        let src = "id = tcprelay { rebalanse = 1 }\nid = other { rebalanse = 1 }\nid tcprelay { retire = 1 }\nid spawnd { background = yes }\n";
        let (file, diags) = selected(src);
        let texts: Vec<&str> = diags.iter().map(|d| &src[d.span.range()]).collect();
        assert_eq!(texts, vec!["rebalanse"], "{diags:#?}");
        assert_eq!(diags[0].span.start, 16);
        let file = file.expect("a file");
        let ids: Vec<_> = file
            .items
            .iter()
            .map(|i| match &i.node {
                Item::Section(s) => format!("parsed {}", s.id.node.text),
                Item::Skipped { id, .. } => format!("skipped {}", id.node.text),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            ids,
            [
                "parsed tcprelay",
                "skipped other",
                "parsed tcprelay",
                "parsed spawnd"
            ]
        );
    }

    #[test]
    fn a_skipped_section_that_never_closes_is_reported_at_its_brace() {
        let src = "id = tcprelay { }\nid = tac_plus { host = x { \u{1}\n key = \"}\"\n";
        let (_, diags) = selected(src);
        assert_eq!(diags.len(), 1, "{diags:#?}");
        let d = &diags[0];
        assert_eq!(d.code, Code::UnexpectedEof);
        assert_eq!(d.span, Span::new(32, 33));
        assert_eq!(&src[d.span.range()], "{");
        assert_eq!(d.labels[0].span, Span::new(src.len(), src.len()));
        assert!(d.message.contains("`tac_plus`"), "{}", d.message);
        // A string left open in it is why it never closes: that one is reported.
        let src = "id = tac_plus { key = \"}\n}\nid = tcprelay { }\n";
        let (_, diags) = selected(src);
        let codes: Vec<Code> = diags.iter().map(|d| d.code).collect();
        assert_eq!(codes, [Code::UnterminatedString], "{diags:#?}");
        assert_eq!(diags[0].span, Span::new(22, 23));
    }

    #[test]
    fn only_a_complete_section_start_at_the_top_level_is_skipped() {
        // Inside a selected section, `id = x {` is not a section start; nor is an `id`
        // with no `{` after its name at the top level.
        let src = "id = tcprelay { remote = { id = x { } } }\nid = y\n";
        let (file, diags) = selected(src);
        assert!(!diags.is_empty());
        assert!(skipped(&file.unwrap_or_default(), src).is_empty());
        // A stray `}` at the top level does not keep the next section from being
        // skipped.
        let src = "}\nid = y { \u{1} }\n";
        let (file, diags) = selected(src);
        let texts: Vec<&str> = diags.iter().map(|d| &src[d.span.range()]).collect();
        assert_eq!(texts, ["}"], "{diags:#?}");
        assert_eq!(
            skipped(&file.unwrap(), src),
            [("y".to_string(), "id = y { \u{1} }")]
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        /// One piece of another program's section: words, keywords, `=`, strings and
        /// comments holding braces, characters tcprelay refuses; or a nested block.
        fn soup() -> impl Strategy<Value = String> {
            let atom = prop_oneof![
                "[a-z_./:@$-]{1,8}",
                Just("listen".to_string()),
                Just("id".to_string()),
                Just("setenv".to_string()),
                Just("=".to_string()),
                "\"[^\"\\\\]{0,6}\"",
                "#[^\n]{0,6}\n",
                Just("\u{1}".to_string()),
                Just("\u{7f}".to_string()),
                Just("'x'".to_string()),
                Just("€".to_string()),
            ];
            atom.prop_recursive(3, 24, 6, |inner| {
                prop::collection::vec(inner, 0..6)
                    .prop_map(|parts| format!("{{ {} }}", parts.join(" ")))
            })
        }

        proptest! {
            #[test]
            fn any_token_soup_in_a_foreign_section_gives_no_diagnostic(
                parts in prop::collection::vec(soup(), 0..12),
                spaced in any::<bool>(),
            ) {
                let id = if spaced { "id tac_plus" } else { "id = tac_plus" };
                let src = format!(
                    "id = spawnd {{ listen = {{ address = 127.0.0.1 port = 1 }} }}\n{id} {{ {} }}\nid = tcprelay {{ remote = {{ address = 10.0.0.1 port = 1 }} }}\n",
                    parts.join(" ")
                );
                let (plan, diags) = crate::compile(&src, "x", &Selection::default());
                prop_assert!(diags.is_empty(), "{:?}\n{}", diags, src);
                prop_assert!(plan.is_some());
            }
        }
    }
}
