//! The lexer (logos): configuration text to tokens with byte spans.
//!
//! The language has few punctuation tokens (`=`, `{`, `}`), quoted strings, `#`
//! comments (which also covers a `#!` first line) and words. A word is any run of
//! characters that are not white space, punctuation or quotes, so that addresses
//! (`::0`, `169.254.1.2`), paths and service names need no quoting. Keywords are
//! words with a token of their own; where the grammar expects a value it also takes a
//! keyword as plain text, so `syslog ident = port` still means the word "port".
//!
//! Lexing never stops at an error: a bad token becomes a diagnostic and is skipped,
//! so the parser still sees the rest of the file and one run reports everything.

use crate::ast::Span;
use crate::diag::{Code, Diagnostic};
use logos::Logos;
use std::fmt;
use std::ops::Range;

/// Why a piece of text is not a token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LexError {
    #[default]
    InvalidToken,
    UnterminatedString,
}

/// Defines the keyword tokens once: the logos token, the name used in the grammar's
/// `extern` block and the text (the same string), and the list of all keywords.
macro_rules! tokens {
    ($($variant:ident = $text:literal,)*) => {
        /// A token. Keywords have a variant each; `Word` and `Str` carry their text.
        #[derive(Logos, Debug, Clone, PartialEq, Eq)]
        #[logos(error = LexError)]
        #[logos(skip r"[ \t\r\n\x0c]+")]
        #[logos(skip(r"#[^\n]*", allow_greedy = true))]
        pub enum Tok {
            #[token("=")]
            Equals,
            #[token("{")]
            LBrace,
            #[token("}")]
            RBrace,
            #[regex(r#""([^"\\]|\\(.|\n))*""#, unquote)]
            Str(String),
            #[regex(r#""([^"\\]|\\(.|\n))*"#, unterminated)]
            Unterminated,
            #[regex(r##"[^ \t\r\n\x0c={}"#\x00-\x08\x0e-\x1f\x7f][^ \t\r\n\x0c={}"\x00-\x08\x0e-\x1f\x7f]*"##, |lex| lex.slice().to_string(), priority = 1)]
            Word(String),
            $(
                #[token($text, priority = 10)]
                $variant,
            )*
        }

        impl Tok {
            /// Every keyword with its text.
            pub const KEYWORDS: &'static [(&'static str, Tok)] = &[$(($text, Tok::$variant),)*];

            /// The keyword's text, or `None` for other tokens.
            pub fn keyword_text(&self) -> Option<&'static str> {
                match self {
                    $(Tok::$variant => Some($text),)*
                    _ => None,
                }
            }
        }
    };
}

tokens! {
    Id = "id",
    Setenv = "setenv",
    Listen = "listen",
    Spawn = "spawn",
    Remote = "remote",
    Address = "address",
    Port = "port",
    Path = "path",
    Tls = "tls",
    Protocol = "protocol",
    Backlog = "backlog",
    Overload = "overload",
    Realm = "realm",
    Mode = "mode",
    Users = "users",
    Servers = "servers",
    Instances = "instances",
    Min = "min",
    Max = "max",
    Exec = "exec",
    Weight = "weight",
    Background = "background",
    Pidfile = "pidfile",
    Single = "single",
    Process = "process",
    User = "user",
    Userid = "userid",
    Group = "group",
    Groupid = "groupid",
    Working = "working",
    Directory = "directory",
    Acl = "acl",
    Permit = "permit",
    Deny = "deny",
    Not = "not",
    Bind = "bind",
    Retry = "retry",
    Delay = "delay",
    Debug = "debug",
    Tcp = "tcp",
    Keepalive = "keepalive",
    Count = "count",
    Idle = "idle",
    Interval = "interval",
    Syslog = "syslog",
    Ident = "ident",
    Facility = "facility",
    Level = "level",
    Severity = "severity",
    Local = "local",
    Rebalance = "rebalance",
    Retire = "retire",
    Limit = "limit",
    Timeout = "timeout",
    CertFile = "cert-file",
    Certfile = "certfile",
    KeyFile = "key-file",
    Keyfile = "keyfile",
    Passphrase = "passphrase",
    Ssl = "ssl",
    Cert = "cert",
    Key = "key",
}

/// An opening quote with no closing one: the rest of the file is the string.
fn unterminated(_: &mut logos::Lexer<Tok>) -> Result<(), LexError> {
    Err(LexError::UnterminatedString)
}

/// Removes the quotes of a string token and resolves its escapes: `\"`, `\\`, `\n`,
/// `\t`, `\r`; any other escaped character stands for itself.
fn unquote(lex: &mut logos::Lexer<Tok>) -> String {
    let inner = &lex.slice()[1..lex.slice().len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Equals => f.write_str("`=`"),
            Tok::LBrace => f.write_str("`{`"),
            Tok::RBrace => f.write_str("`}`"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Unterminated => f.write_str("unterminated string"),
            other => write!(f, "`{}`", other.keyword_text().unwrap_or("?")),
        }
    }
}

/// A token with its byte offsets, as lalrpop's external-lexer interface wants it.
pub type Spanned = (usize, Tok, usize);

/// Lexes all of `src`. Bad tokens become diagnostics and are left out.
pub fn lex(src: &str) -> (Vec<Spanned>, Vec<Diagnostic>) {
    let mut tokens = Vec::with_capacity(src.len() / 6);
    let mut diags = Vec::new();
    let mut lexer = Tok::lexer(src);
    // The first and the last of the bad characters not reported yet.
    let mut run: Option<(Range<usize>, Range<usize>)> = None;
    while let Some(result) = lexer.next() {
        let span = lexer.span();
        match result {
            Ok(tok) => tokens.push((span.start, tok, span.end)),
            Err(LexError::UnterminatedString) => {
                let quote = Span::new(span.start, span.start + 1);
                diags.push(
                    Diagnostic::error(Code::UnterminatedString, quote, "unterminated string")
                        .with_label("this string is never closed")
                        .with_help(
                            "add the closing `\"`; write `\\\"` for a quote inside a string",
                        ),
                );
            }
            Err(LexError::InvalidToken) => {
                // A run of bad characters with only white space between them is one
                // finding, not one per character: a megabyte of NUL bytes is one
                // diagnostic, not a million.
                if let Some((first, last)) = run.as_mut() {
                    let between = &src[last.end..span.start];
                    if between.bytes().all(|b| b" \t\r\n\x0c".contains(&b)) {
                        *last = span;
                        continue;
                    }
                    diags.push(invalid(src, first.clone(), last.clone()));
                }
                run = Some((span.clone(), span));
            }
        }
    }
    if let Some((first, last)) = run {
        diags.push(invalid(src, first, last));
    }
    diags.sort_by_key(|d| d.span.start);
    (tokens, diags)
}

/// E0001 for the bad characters from `first` to `last` (runs of white space between).
fn invalid(src: &str, first: Range<usize>, last: Range<usize>) -> Diagnostic {
    let text = &src[first.clone()];
    let count = src[first.start..last.end]
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '\r' | '\n' | '\x0c'))
        .count();
    let message = if first == last {
        format!("unexpected character {text:?}")
    } else {
        format!("{count} unexpected characters, the first {text:?}")
    };
    Diagnostic::error(
        Code::InvalidToken,
        Span::new(first.start, last.end),
        message,
    )
    .with_label("not part of any token")
    .with_help("control characters are only allowed inside quoted strings")
}

/// The spans of every passphrase value in `src` (`tls passphrase = X`, `ssl
/// passphrase = X`), found from the tokens alone so that it works on files that do
/// not parse. A renderer that quotes source lines blanks these out first
/// ([`crate::check::redact`]); where the value is missing or broken (an unterminated
/// string), the rest of the line is covered.
pub fn secret_spans(src: &str) -> Vec<Span> {
    let (tokens, _) = lex(src);
    let mut out = Vec::new();
    for (i, (_, tok, _)) in tokens.iter().enumerate() {
        if *tok != Tok::Passphrase {
            continue;
        }
        let Some((_, Tok::Equals, eq_end)) = tokens.get(i + 1) else {
            continue;
        };
        let line_end = src[*eq_end..].find('\n').map_or(src.len(), |n| eq_end + n);
        match tokens.get(i + 2) {
            Some((l, value, r))
                if *l <= line_end && !matches!(value, Tok::Equals | Tok::LBrace | Tok::RBrace) =>
            {
                out.push(Span::new(*l, *r));
            }
            _ => out.push(Span::new(*eq_end, line_end)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        let (t, d) = lex(src);
        assert!(d.is_empty(), "{d:?}");
        t.into_iter().map(|(_, t, _)| t).collect()
    }

    #[test]
    fn words_keywords_and_punctuation() {
        assert_eq!(
            toks("listen = { ::0 port=2224 }"),
            vec![
                Tok::Listen,
                Tok::Equals,
                Tok::LBrace,
                Tok::Word("::0".into()),
                Tok::Port,
                Tok::Equals,
                Tok::Word("2224".into()),
                Tok::RBrace
            ]
        );
        // A keyword followed by more word characters is a word.
        assert_eq!(
            toks("addressx cert-file2"),
            vec![Tok::Word("addressx".into()), Tok::Word("cert-file2".into())]
        );
        assert_eq!(toks("tls cert-file"), vec![Tok::Tls, Tok::CertFile]);
    }

    #[test]
    fn comments_shebang_and_hash_inside_words() {
        assert_eq!(
            toks("#!/usr/local/sbin/spawnd\nport # a comment\n"),
            vec![Tok::Port]
        );
        assert_eq!(toks("pass#word"), vec![Tok::Word("pass#word".into())]);
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            toks(r#""a \"b\" \\ c\n""#),
            vec![Tok::Str("a \"b\" \\ c\n".into())]
        );
        assert_eq!(toks(r#""port""#), vec![Tok::Str("port".into())]);
    }

    #[test]
    fn spans_are_byte_offsets() {
        let (t, _) = lex("  id = \"é\" x");
        assert_eq!(t[0].0..t[0].2, 2..4);
        assert_eq!(t[2].0..t[2].2, 7..11);
        assert_eq!(t[3].0..t[3].2, 12..13);
    }

    #[test]
    fn unterminated_string_is_reported_at_its_quote() {
        let (t, d) = lex("id = \"abc\n}");
        assert_eq!(t.len(), 2);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, Code::UnterminatedString);
        assert_eq!(d[0].span, Span::new(5, 6));
    }

    #[test]
    fn passphrases_are_found_even_in_broken_files() {
        let src = "tls passphrase = s3cret }\nssl passphrase = \"open sesame\"\ntls passphrase = \"never closed\n}";
        let spans: Vec<&str> = secret_spans(src).iter().map(|s| &src[s.range()]).collect();
        assert_eq!(spans, vec!["s3cret", "\"open sesame\"", " \"never closed"]);
    }

    #[test]
    fn a_long_word_of_wide_characters_does_not_overflow_the_stack() {
        // A test thread has 2 MiB of stack; the lexer's default code generation took a
        // frame per character of a word of two-byte characters (without the tail
        // calls an optimized build may make of them).
        let src = format!("id = {} }}", "é".repeat(200_000));
        let (tokens, diags) = lex(&src);
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(tokens.len(), 4);
        assert_eq!(tokens[2].2 - tokens[2].0, 400_000);
    }

    #[test]
    fn runs_of_bad_characters_are_one_finding() {
        let src = format!("port {} = 1 \u{1}", "\0 \0\n\0".repeat(1000));
        let (tokens, diags) = lex(&src);
        assert_eq!(tokens.len(), 3);
        assert_eq!(diags.len(), 2, "{diags:#?}");
        assert_eq!(
            diags[0].message,
            "3000 unexpected characters, the first \"\\0\""
        );
        assert_eq!(&src[diags[0].span.range()], "\0 \0\n\0".repeat(1000));
        assert_eq!(diags[1].message, "unexpected character \"\\u{1}\"");
    }

    #[test]
    fn control_characters_are_invalid_but_lexing_goes_on() {
        let (t, d) = lex("port \u{1} = 1");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].code, Code::InvalidToken);
        assert_eq!(t.len(), 3);
    }
}
