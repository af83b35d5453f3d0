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
            #[regex(r#"'([^'\\]|\\(.|\n))*'"#, unquote)]
            Str(String),
            #[regex(r#""([^"\\]|\\(.|\n))*"#, unterminated)]
            #[regex(r#"'([^'\\]|\\(.|\n))*"#, unterminated)]
            Unterminated,
            #[regex(r##"[^ \t\r\n\x0c={}"'#\x00-\x08\x0e-\x1f\x7f][^ \t\r\n\x0c={}"\x00-\x08\x0e-\x1f\x7f]*"##, |lex| lex.slice().to_string(), priority = 1)]
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
    Silent = "silent",
    Interval = "interval",
    Syslog = "syslog",
    Ident = "ident",
    Facility = "facility",
    Level = "level",
    Severity = "severity",
    Local = "local",
    Rebalance = "rebalance",
    Balance = "balance",
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
    Control = "control",
    Metrics = "metrics",
    Log = "log",
    Format = "format",
    Connect = "connect",
    Handshake = "handshake",
    Half = "half",
    Close = "close",
    Drain = "drain",
    Generations = "generations",
    Connection = "connection",
    Haproxy = "haproxy",
    Accept = "accept",
    Proxy = "proxy",
    From = "from",
    Send = "send",
    Sni = "sni",
    Verify = "verify",
    CaFile = "ca-file",
    Check = "check",
    Rise = "rise",
    Fall = "fall",
    Expect = "expect",
    Regex = "regex",
    Trace = "trace",
    Redirect = "redirect",
    Proctitle = "proctitle",
    Coredump = "coredump",
    Gcore = "gcore",
    DebugCmd = "debug-cmd",
    Cleanup = "cleanup",
    Alias = "alias",
    RegexMatchCase = "regex-match-case",
    Default = "default",
    Filter = "filter",
    PidFile = "pid-file",
    Bufsize = "bufsize",
    Sticky = "sticky",
    Cache = "cache",
    Period = "period",
    Size = "size",
    Dscp = "dscp",
    Vrf = "vrf",
    Psk = "psk",
    AaaProtocol = "aaa.protocol",
    Flag = "flag",
    Type = "type",
    Ipc = "ipc",
    Config = "config",
    Minimum = "minimum",
    Maximum = "maximum",
    // DNS discovery (issue 18).
    Srv = "srv",
    Resolvers = "resolvers",
    Nameserver = "nameserver",
    Attempts = "attempts",
    Resolve = "resolve",
    Start = "start",
    Route = "route",
}

/// An opening quote with no closing one: the rest of the file is the string.
fn unterminated(_: &mut logos::Lexer<Tok>) -> Result<(), LexError> {
    Err(LexError::UnterminatedString)
}

/// Removes the quotes of a string token (`"..."` or `'...'`, the same in every
/// respect) and resolves its escapes.
fn unquote(lex: &mut logos::Lexer<Tok>) -> String {
    unescape(lex.slice(), None)
}

/// The value of the quoted string `raw` (with its quotes), as the original read it:
/// `\a \b \e \t \n \v \f \r \\ \" \'` and octal `\N`, `\NN`, `\NNN` (up to three
/// digits 0-7; a value above `\177` is the character U+0080 to U+00FF of its low
/// byte, as the original's byte in a UTF-8 text); any other escaped character stands
/// for itself (`\d` is `d`; the original dropped both characters). With `map`, the
/// byte offset in `raw` of what made each byte of the value is pushed to it, so that a
/// place in the value (a `${VAR}`) can be shown in the source.
pub fn unescape(raw: &str, mut map: Option<&mut Vec<usize>>) -> String {
    let inner = raw
        .get(1..raw.len().saturating_sub(1).max(1))
        .unwrap_or_default();
    let mut out = String::with_capacity(inner.len());
    let mut push = |out: &mut String, c: char, at: usize| {
        out.push(c);
        if let Some(map) = map.as_deref_mut() {
            map.extend(std::iter::repeat_n(at + 1, c.len_utf8()));
        }
    };
    let mut chars = inner.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            push(&mut out, c, at);
            continue;
        }
        let Some((_, e)) = chars.next() else { break };
        let c = match e {
            'a' => '\x07',
            'b' => '\x08',
            'e' => '\x1b',
            't' => '\t',
            'n' => '\n',
            'v' => '\x0b',
            'f' => '\x0c',
            'r' => '\r',
            '0'..='7' => {
                let mut value = e as u32 - '0' as u32;
                for _ in 0..2 {
                    match chars.peek() {
                        Some(&(_, d @ '0'..='7')) => {
                            value = value * 8 + (d as u32 - '0' as u32);
                            chars.next();
                        }
                        _ => break,
                    }
                }
                char::from((value & 0xff) as u8)
            }
            other => other,
        };
        push(&mut out, c, at);
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
    lex_at(src, 0)
}

/// Lexes `src`, a file that starts at offset `base` of the configuration's global
/// offset space ([`crate::include::SourceMap`]): every span is moved by `base`.
pub fn lex_at(src: &str, base: usize) -> (Vec<Spanned>, Vec<Diagnostic>) {
    let (mut tokens, mut diags) = lex_local(src);
    if base != 0 {
        for (l, _, r) in &mut tokens {
            *l += base;
            *r += base;
        }
        for d in &mut diags {
            d.span = Span::new(d.span.start + base, d.span.end + base);
        }
    }
    (tokens, diags)
}

fn lex_local(src: &str) -> (Vec<Spanned>, Vec<Diagnostic>) {
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
                        .with_help(if src[span.clone()].starts_with('\'') {
                            "add the closing `'`; write `\\'` for a quote inside a string"
                        } else {
                            "add the closing `\"`; write `\\\"` for a quote inside a string"
                        }),
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

/// The places of `src` that may hold a secret, for the renderers to mask
/// ([`crate::check::redact`], [`crate::diag::mask`]). Found from the text alone, so
/// that it works on files that do not parse, and generous by design: a secret shown in
/// a diagnostic cannot be taken back, a few masked characters can.
///
/// A *secret key* is a word that [`is_secret_key`] accepts (`passphrase` and its
/// misspellings, `password`, `pwd`, `secret`, ...) or any word right after `tls` or
/// `ssl` on its line that is not one of the keywords (`tls passwort`). Masked are:
///
/// - on every line that holds a secret key, everything after the first one (and
///   after the `=` that follows it) up to the end of the line: the value, junk after
///   it, a `}`. The line is read as plain text, so a key inside a string that an
///   unclosed quote on an earlier line runs on into, or inside a comment, counts too;
/// - the value after the key in full, even when it is a quoted string over several
///   lines;
/// - when the key's line ends before its value (`tls passphrase =` with the value on
///   the next line, or the `=` forgotten), the next token and the rest of its line.
pub fn secret_spans(src: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut line_start = 0;
    for line in src.split_inclusive('\n') {
        let Some((key_end, from)) = secret_key_in_line(line) else {
            line_start += line.len();
            continue;
        };
        let body = line.trim_end_matches(['\n', '\r']);
        let line_end = line_start + body.len();
        if from < body.len() {
            out.push(Span::new(line_start + from, line_end));
        }
        // A key in a comment (`# the TLS passphrase:`) has no value after it.
        let in_comment = comment_start(line).is_some_and(|c| c < key_end);
        if let Some(value) =
            value_after(src, line_start + key_end, line_end).filter(|_| !in_comment)
        {
            out.push(value);
        }
        line_start += line.len();
    }
    out
}

/// Whether byte `offset` of `src` is in a comment, by the rule of [`secret_spans`]
/// (a `#` where a token could start, earlier on the line).
pub fn in_comment(src: &str, offset: usize) -> bool {
    let offset = offset.min(src.len());
    let start = src.as_bytes()[..offset]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    src.get(start..offset).and_then(comment_start).is_some()
}

/// Where a comment starts on `line`: a `#` where a token could start (at the start
/// of the line, or after white space, `=`, a brace or a quote).
fn comment_start(line: &str) -> Option<usize> {
    line.match_indices('#').map(|(i, _)| i).find(|&i| {
        line[..i]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || matches!(c, '=' | '{' | '}' | '"' | '\''))
    })
}

/// The value of the key that ends at `key_end`, when it reaches past `line_end`: a
/// string that goes on over more lines, or a value on a later line (then with the
/// rest of its line, whatever the value starts with: `{S3cr3t}` is a secret too).
fn value_after(src: &str, key_end: usize, line_end: usize) -> Option<Span> {
    let mut tokens = Tok::lexer(&src[key_end..]).spanned();
    let (mut tok, mut span) = tokens.next()?;
    if tok == Ok(Tok::Equals) {
        (tok, span) = tokens.next()?;
    }
    let (l, r) = (key_end + span.start, key_end + span.end);
    let end = match tok {
        // The end of the block: there is no value.
        Ok(Tok::RBrace) => return None,
        // An unclosed string runs to the end of the file: its own line is masked,
        // the lines after it are the rest of the configuration.
        Err(LexError::UnterminatedString) => line_end_at(src, l),
        Ok(_) | Err(LexError::InvalidToken) => r.max(line_end_at(src, l)),
    };
    (l > line_end || end > line_end).then(|| Span::new(l, end))
}

/// The byte offset of the end of the line `at` is on: its `\n` (or `\r\n`), or the
/// end of `src`.
fn line_end_at(src: &str, at: usize) -> usize {
    let at = at.min(src.len());
    let end = src.as_bytes()[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(src.len(), |n| at + n);
    if end > at && src.as_bytes()[end - 1] == b'\r' {
        end - 1
    } else {
        end
    }
}

/// Where the first secret key of `line` ends, and where the masking of the line
/// starts: after the key and the blanks and the `=` that follow it. The line is split into
/// words as the lexer would (at white space, `=`, braces, quotes and `#`) whether or
/// not the text is inside a string or a comment, so that a key is found where an
/// unclosed quote on an earlier line has made the rest of the file a string.
fn secret_key_in_line(line: &str) -> Option<(usize, usize)> {
    // Bytes, not characters: every separator is ASCII, and this runs over every line
    // of every file that has a diagnostic.
    let bytes = line.as_bytes();
    let is_separator = |b: u8| {
        matches!(
            b,
            b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'=' | b'{' | b'}' | b'"' | b'#'
        )
    };
    let blank = |b: u8| b == b' ' || b == b'\t';
    // Whether the word before was `tls` or `ssl`, with only blanks since.
    let mut after_tls = false;
    let mut i = 0;
    while i < bytes.len() {
        if is_separator(bytes[i]) {
            after_tls &= blank(bytes[i]);
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_separator(bytes[i]) {
            i += 1;
        }
        let word = &line[start..i];
        if (after_tls && Tok::KEYWORDS.iter().all(|(k, _)| *k != word)) || is_secret_key(word) {
            let mut from = i;
            while from < bytes.len() && blank(bytes[from]) {
                from += 1;
            }
            if bytes.get(from) == Some(&b'=') {
                from += 1;
                while from < bytes.len() && blank(bytes[from]) {
                    from += 1;
                }
            }
            return Some((i, from));
        }
        after_tls = word == "tls" || word == "ssl";
    }
    None
}

/// Whether `word` looks like the key of a secret. Each alphanumeric part of it is
/// compared without regard to ASCII case: one that starts with `pass` or `pw`, or
/// holds `phrase` or `secret`, or starts with `p` and is at most two edits from
/// `passphrase` or `password` (`pasphrase`, `passphrse`, `pasword`), makes the word a
/// secret key.
pub fn is_secret_key(word: &str) -> bool {
    // Non-ASCII bytes count as letters: no key to compare with has any.
    word.as_bytes()
        .split(|b| b.is_ascii() && !b.is_ascii_alphanumeric())
        .any(|part| {
            let starts =
                |p: &[u8]| part.len() >= p.len() && part[..p.len()].eq_ignore_ascii_case(p);
            let holds = |p: &[u8]| {
                part.len() >= p.len() && part.windows(p.len()).any(|w| w.eq_ignore_ascii_case(p))
            };
            // `mode = passthrough` (an SNI route) names no secret.
            (starts(b"pass") && !part.eq_ignore_ascii_case(b"passthrough"))
                || starts(b"pw")
                || holds(b"phrase")
                || holds(b"secret")
                || near_a_secret_key(part)
        })
}

/// Whether `part` is at most two edits from `passphrase` or `password`. Most words
/// are turned away before the edit distance is computed: two edits from a word of
/// eight or ten letters leave six to twelve, and a typo seldom changes the first.
fn near_a_secret_key(part: &[u8]) -> bool {
    if !(6..=12).contains(&part.len()) || !part[0].eq_ignore_ascii_case(&b'p') {
        return false;
    }
    let part = String::from_utf8_lossy(part).to_lowercase();
    ["passphrase", "password"]
        .iter()
        .any(|key| crate::suggest::distance(&part, key) <= 2)
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
    fn single_quoted_strings_are_double_quoted_ones() {
        assert_eq!(
            toks(r#"'a b' 'it\'s "x"' "it's""#),
            vec![
                Tok::Str("a b".into()),
                Tok::Str("it's \"x\"".into()),
                Tok::Str("it's".into())
            ]
        );
        // A quote inside a word is a word character, as in the original.
        assert_eq!(toks("ab'c'"), vec![Tok::Word("ab'c'".into())]);
        assert_eq!(toks("'port'"), vec![Tok::Str("port".into())]);
        let (t, d) = lex("x = 'open\n}");
        assert_eq!(t.len(), 2);
        assert_eq!(d[0].code, Code::UnterminatedString);
        assert_eq!(d[0].span, Span::new(4, 5));
        assert!(d[0].help.as_deref().unwrap_or("").contains("`'`"), "{d:?}");
    }

    #[test]
    fn the_originals_escapes() {
        assert_eq!(
            toks(r#""\a\b\e\t\n\v\f\r\\\"\'" '\101\60\0x\1011\9'"#),
            vec![
                Tok::Str("\x07\x08\x1b\t\n\x0b\x0c\r\\\"'".into()),
                // `\1011` is `A` and `1`; `\9` is not octal.
                Tok::Str("A0\0xA19".into()),
            ]
        );
        // An unknown escape stands for its character; above \177, the low byte.
        assert_eq!(toks(r#""1\d27""#), vec![Tok::Str("1d27".into())]);
        assert_eq!(toks(r#""\377\400""#), vec![Tok::Str("\u{ff}\0".into())]);
    }

    #[test]
    fn unescape_maps_every_byte_of_the_value_to_the_source() {
        let raw = r#""a\n${X}é\101""#;
        let mut map = Vec::new();
        let value = unescape(raw, Some(&mut map));
        assert_eq!(value, "a\n${X}éA");
        assert_eq!(map.len(), value.len());
        let dollar = value.find('$').expect("$");
        assert_eq!(&raw[map[dollar]..map[dollar] + 4], "${X}");
        assert_eq!(&raw[map[value.len() - 1]..], r#"\101""#);
        assert_eq!(&raw[map[1]..map[1] + 2], r"\n");
    }

    #[test]
    fn lex_at_moves_every_span_by_the_files_base() {
        let (t, d) = lex_at("port \u{1} 'x'", 100);
        assert_eq!(t[0].0..t[0].2, 100..104);
        assert_eq!(t[1].0..t[1].2, 107..110);
        assert_eq!(d[0].span, Span::new(105, 106));
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

    fn secrets(src: &str) -> Vec<&str> {
        secret_spans(src).iter().map(|s| &src[s.range()]).collect()
    }

    #[test]
    fn passphrases_are_found_even_in_broken_files() {
        let src = "tls passphrase = s3cret }\nssl passphrase = \"open sesame\"\ntls passphrase = \"never closed\n}";
        assert_eq!(
            secrets(src),
            vec!["s3cret }", "\"open sesame\"", "\"never closed"]
        );
    }

    #[test]
    fn misspelt_and_unknown_secret_keys_mask_the_rest_of_their_line() {
        for (src, masked) in [
            ("tls passphrse = s3cret\n", "s3cret"),
            (
                "  ssl pasphrase = \"s3 cret\" junk }\n",
                "\"s3 cret\" junk }",
            ),
            ("tls passwort s3cret", "s3cret"),
            (
                "tls frase = s3cret # the passphrase\n",
                "s3cret # the passphrase",
            ),
            ("TLS PASSPHRASE=s3cret\r\n", "s3cret"),
            (
                "listen = { port = 1 tls passphrase = s3cret }\n",
                "s3cret }",
            ),
            ("setenv DB_PASSWORD = s3cret\n", "s3cret"),
            ("# old: tls passphrase = s3cret\n", "s3cret"),
        ] {
            assert_eq!(secrets(src), vec![masked], "{src:?}");
        }
        // A key with nothing after it, and `tls = yes`, mask nothing; nor does a key
        // in a comment above a directive.
        for src in [
            "tls passphrase\n}\n",
            "listen = { port = 1 tls = yes }",
            "tls cert-file = /a.pem",
            "# The TLS passphrase:\ntls cert-file = /a.pem\n",
            // The words after `tls` in a remote are keywords, not unknown secret keys.
            "remote = { tls = yes tls sni = db.example.com tls verify = no tls ca-file = /a.pem }",
        ] {
            assert!(secrets(src).is_empty(), "{src:?}: {:?}", secrets(src));
        }
        // A remote's client key passphrase is masked like the section's.
        assert_eq!(
            secrets("remote = { tls = yes tls passphrase = \"s3 cret\" tls sni = a.example }\n"),
            vec!["\"s3 cret\" tls sni = a.example }"]
        );
    }

    #[test]
    fn a_key_inside_a_string_left_open_on_an_earlier_line_counts() {
        let src = "tls cert-file = \"/etc/a.pem\n  tls passphrase = \"s3cret\"\n}\n";
        assert_eq!(secrets(src), vec!["\"s3cret\""]);
    }

    #[test]
    fn a_value_on_the_next_line_or_over_several_lines_is_masked() {
        let src = "tls passphrase =\n  s3cret junk\n}";
        assert_eq!(secrets(src), vec!["s3cret junk"]);
        let src = "tls passphrase\ns3cret\n}";
        assert_eq!(secrets(src), vec!["s3cret"]);
        let src = "tls passphrase = \"first\nsecond\" x\n}";
        assert_eq!(secrets(src), vec!["\"first", "\"first\nsecond\""]);
        // An unclosed string as the value on the next line: that line only.
        let src = "tls passphrase =\n\"s3cret\n}\n";
        assert_eq!(secrets(src), vec!["\"s3cret"]);
    }

    #[test]
    fn secret_keys_by_resemblance() {
        for key in [
            "passphrase",
            "passphrse",
            "pasphrase",
            "Passphase",
            "paspharse",
            "password",
            "pasword",
            "passwd",
            "pwd",
            "pw",
            "pass-phrase",
            "DB_PASSWORD",
            "secret",
            "client_secret",
            "phrase",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        for word in [
            "port",
            "address",
            "spawnd",
            "tcprelay",
            "cert-file",
            "keyfile",
            "protocol",
            "bypass.pem",
            "passthrough",
            "permit",
            "",
            "=",
        ] {
            assert!(!is_secret_key(word), "{word}");
        }
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
