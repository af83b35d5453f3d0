//! The parser: tokens to an AST plus syntax diagnostics.
//!
//! This is the one module that touches the parser lalrpop generates from
//! `grammar/tcprelay.lalrpop`. It feeds it the logos tokens, turns every recovered
//! and the final parse error into a [`Diagnostic`] (with "did you mean" over the
//! keywords the grammar expected at that point), and returns whatever AST could be
//! recovered.

use crate::ast::{Body, Directive, File, Item, Key, Sp, Span};
use crate::diag::{Code, Diagnostic};
use crate::lexer::{self, LexError, Spanned, Tok};
use crate::suggest;
use lalrpop_util::{lalrpop_mod, ErrorRecovery, ParseError};

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
pub fn parse(src: &str) -> (Option<File>, Vec<Diagnostic>) {
    let (tokens, mut diags) = lexer::lex(src);
    let unclosed = unclosed_braces(&tokens);
    let mut recovered: Vec<ErrorRecovery<usize, Tok, LexError>> = Vec::new();
    let result = grammar::ConfigParser::new().parse(
        &mut recovered,
        tokens.iter().cloned().map(Ok::<Spanned, LexError>),
    );
    let mut add =
        |e: ParseError<usize, Tok, LexError>| diags.push(describe(e, src, &unclosed, &tokens));
    for r in recovered {
        add(r.error);
    }
    let mut file = match result {
        Ok(file) => Some(file),
        Err(e) => {
            add(e);
            None
        }
    };
    // A misspelled key in a block (`wieght = 2`) was reported at the word, but the
    // parser had already taken the word as a bare address: drop that phantom, or the
    // check stage would report it again as a bad address.
    // The same goes for its value, which error recovery resumed at and also took as
    // a bare address.
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
    }
    // A string left open swallows the rest of the file: the end of file that follows
    // is its consequence, not another mistake.
    if diags.iter().any(|d| d.code == Code::UnterminatedString) {
        diags.retain(|d| d.code != Code::UnexpectedEof);
    }
    diags.sort_by_key(|d| (d.span.start, d.span.end));
    // A broken token can be reported by both the lexer and the parser at one place:
    // keep the first report of each place.
    diags.dedup_by(|b, a| a.span == b.span && a.code == b.code);
    (file, diags)
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
            Some((_, '"' | '\\' | 'n' | 't' | 'r' | '\n')) | None => {}
            Some((_, other)) => {
                count += 1;
                found.get_or_insert((i, other));
            }
        }
    }
    let (at, c) = found?;
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
            format!("`\\{c}` in a quoted string is a plain `{c}`: the regular expression gets no backslash{more}"),
        )
        .with_label(format!("the expression sees `{c}`"))
        .with_help(format!("write `\\\\{c}` for the expression's `\\{c}`"))
        .with_note("in a quoted string `\\\\` is one backslash; `\\\"`, `\\n`, `\\t` and `\\r` are the other escapes"),
    )
}

/// The `{` tokens that have no matching `}`, innermost last.
fn unclosed_braces(tokens: &[Spanned]) -> Vec<Span> {
    let mut stack = Vec::new();
    for (l, tok, r) in tokens {
        match tok {
            Tok::LBrace => stack.push(Span::new(*l, *r)),
            Tok::RBrace => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack
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

fn describe(
    e: ParseError<usize, Tok, LexError>,
    src: &str,
    unclosed: &[Span],
    tokens: &[Spanned],
) -> Diagnostic {
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
                unexpected(Span::new(wl, wr), &Tok::Word(word), &keys)
            }
            None => unexpected(Span::new(l, r), &Tok::Equals, &expected),
        },
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => unexpected(Span::new(l, r), &tok, &expected),
        ParseError::ExtraToken { token: (l, tok, r) } => unexpected(Span::new(l, r), &tok, &[]),
        ParseError::UnrecognizedEof { location, expected } => {
            let at = Span::new(location.min(src.len()), location.min(src.len()));
            let expected = expected_texts(&expected);
            let d = Diagnostic::error(Code::UnexpectedEof, at, "unexpected end of file");
            match unclosed.last() {
                Some(open) => d
                    .with_label("the file ends inside a block")
                    .with_secondary(*open, "this block is never closed")
                    .with_help("add the missing `}`"),
                None => d.with_label(format!("expected {}", one_of(&expected))),
            }
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

fn unexpected(span: Span, tok: &Tok, expected: &[String]) -> Diagnostic {
    let expected = expected_texts(expected);
    let mut d = Diagnostic::error(Code::UnexpectedToken, span, format!("unexpected {tok}"));
    d = if expected.is_empty() {
        d.with_label("nothing may follow here")
    } else {
        d.with_label(format!("expected {}", one_of(&expected)))
    };
    let written = match tok {
        Tok::Word(w) => Some(w.as_str()),
        other => other.keyword_text(),
    };
    if let Some(word) = written {
        let keywords = expected
            .iter()
            .map(String::as_str)
            .filter(|e| !e.starts_with("a "));
        if let Some(fix) = suggest::closest(word, keywords) {
            d = d.with_help(format!("did you mean `{fix}`?"));
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use crate::diag::Severity;

    /// The E0055 warnings of `src`: (the text under each, its message).
    fn lost(src: &str) -> Vec<(String, String)> {
        let (_, diags) = super::parse(src);
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
        assert!(lost(&block(r#""^\\d+\r\n\t\"x\"""#)).is_empty());
        assert!(lost(&block("unquoted\\d")).is_empty());
        assert!(lost(r#"id = tcprelay { check = { expect = "\d" send = "\d" } }"#).is_empty());
    }
    use super::*;

    fn ok(src: &str) -> File {
        let (file, diags) = parse(src);
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
        let (_, diags) = parse("id = t { remote = { adress = 1.2.3.4 port = 1 } }");
        assert_eq!(diags.len(), 1, "{diags:#?}");
        assert_eq!(diags[0].code, Code::UnexpectedToken);
        assert_eq!(diags[0].help.as_deref(), Some("did you mean `address`?"));
        assert_eq!(diags[0].span, Span::new(20, 26));
    }

    #[test]
    fn every_error_in_the_file_is_reported() {
        let src = "id = a { rebalanse = 3 }\nid = b { remote = { port = 1 wieght = 2 } }\n";
        let (file, diags) = parse(src);
        assert!(file.is_some());
        let texts: Vec<&str> = diags.iter().map(|d| &src[d.span.range()]).collect();
        assert_eq!(texts, vec!["rebalanse", "wieght"], "{diags:#?}");
    }

    #[test]
    fn unclosed_block_points_at_its_brace() {
        let src = "id = a {\n remote = { port = 1\n";
        let (_, diags) = parse(src);
        let d = diags
            .iter()
            .find(|d| d.code == Code::UnexpectedEof)
            .expect("E0004");
        assert_eq!(d.labels[0].span, Span::new(19, 20));
    }
}
