//! What the renderers may print of a diagnostic: its texts with every secret masked
//! and every quotation kept short.
//!
//! The places that may hold a secret are [`crate::lexer::secret_spans`]; the renderers
//! show the source with those places masked ([`crate::check::redact`]). A message can
//! quote the same text ("unexpected `S3cr3t`", "`S3cr3t` is not an IP address"), so
//! the words found there are masked in every message, label, note and help too:
//!
//! - a quotation (in backquotes, or a string in double quotes as the lexer's tokens
//!   print) that is one of those words, or the whole of such a place, whatever its
//!   length;
//! - inside any other quotation, a run of letters and digits of at least
//!   [`MIN_PIECE`] characters, not a keyword, that is a run of such a place, so that
//!   a secret is masked wherever a quotation takes part of it. Shorter runs are left,
//!   or every `1` and `a` quoted would go.
//!
//! Messages quote what the user wrote, and only in quotations; the text around them
//! is the compiler's own words, which are left alone. Comments are masked in the
//! source but give no words: no message quotes a comment.
//!
//! A quotation longer than [`MAX_QUOTE`] characters is shortened around an ellipsis
//! and a text longer than [`MAX_TEXT`] is cut, so that a token of a megabyte does not
//! make a message of a megabyte.

use std::collections::HashSet;

use super::{Diagnostic, Label};
use crate::ast::Span;
use crate::lexer::{LexError, Tok};
use logos::Logos;

/// The shortest run of letters and digits masked outside a quotation.
pub const MIN_PIECE: usize = 3;
/// The longest quotation shown whole, in characters.
pub const MAX_QUOTE: usize = 80;
/// The longest message, label, note or help shown whole, in characters.
pub const MAX_TEXT: usize = 1_000;

/// The secret words of one source, and what masks them in texts.
#[derive(Debug, Default)]
pub struct Mask {
    /// Whole quotations to mask: the words and strings of the secret places.
    quoted: HashSet<String>,
    /// Runs of letters and digits (of [`MIN_PIECE`] characters or more) to mask.
    pieces: HashSet<String>,
    /// Texts masked wherever they appear, in a quotation or not: the values that
    /// `${VAR}` gave a secret (of [`MIN_PIECE`] characters or more), which the source
    /// does not show and no word of the compiler's contains.
    anywhere: Vec<String>,
}

impl Mask {
    /// The mask for `src`, whose secret places are `spans`.
    pub fn new(src: &str, spans: &[Span]) -> Mask {
        let mut mask = Mask::default();
        for span in spans {
            // A comment is masked in the source lines shown, but no message quotes
            // one: its words would only mask the same words in every message.
            if crate::lexer::in_comment(src, span.start) {
                continue;
            }
            let Some(text) = src.get(span.range()) else {
                continue;
            };
            mask.add(text);
        }
        mask
    }

    /// Adds `text` as a secret: a value that reached a secret place without being
    /// written there (the value of a `${VAR}`).
    pub fn add_secret(&mut self, text: &str) {
        self.add(text);
        let text = text.trim();
        if text.chars().count() >= MIN_PIECE && !self.anywhere.iter().any(|a| a == text) {
            self.anywhere.push(text.to_string());
        }
    }

    fn add(&mut self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        self.quoted.insert(text.to_string());
        for word in text.split_whitespace() {
            self.quoted.insert(word.to_string());
        }
        // The place read as tokens: a quoted string is quoted in messages without its
        // quotes (`string "..."` prints the value with Rust's escapes).
        for (tok, span) in Tok::lexer(text).spanned() {
            let value = match tok {
                Ok(Tok::Str(s)) => s,
                Ok(Tok::Word(w)) => w,
                Ok(other) => match other.keyword_text() {
                    Some(k) => k.to_string(),
                    None => continue,
                },
                Err(LexError::UnterminatedString) => text[span.start + 1..].to_string(),
                Err(LexError::InvalidToken) => text[span].to_string(),
            };
            self.quoted.insert(format!("{value:?}"));
            for word in value.split_whitespace() {
                self.quoted.insert(word.to_string());
            }
            self.quoted.insert(value);
        }
        // The keywords are left out: the language's own words are quoted in many
        // messages ("`tls passphrase` is a tcprelay directive").
        for run in runs(text) {
            if run.chars().count() >= MIN_PIECE && Tok::KEYWORDS.iter().all(|(k, _)| *k != run) {
                self.pieces.insert(run.to_string());
            }
        }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.quoted.is_empty() && self.pieces.is_empty() && self.anywhere.is_empty()
    }

    /// `d` as it may be printed: every text masked and kept short.
    pub fn diagnostic(&self, d: &Diagnostic) -> Diagnostic {
        Diagnostic {
            code: d.code,
            severity: d.severity,
            message: self.text(&d.message),
            span: d.span,
            label: self.text(&d.label),
            labels: d
                .labels
                .iter()
                .map(|l| Label {
                    span: l.span,
                    message: self.text(&l.message),
                })
                .collect(),
            notes: d.notes.iter().map(|n| self.text(n)).collect(),
            help: d.help.as_deref().map(|h| self.text(h)),
        }
    }

    /// `text` with the secrets masked, long quotations shortened and the whole cut
    /// at [`MAX_TEXT`] characters.
    pub fn text(&self, text: &str) -> String {
        let mut owned;
        let mut text = text;
        for secret in &self.anywhere {
            if text.contains(secret.as_str()) {
                owned = text.replace(secret.as_str(), &"*".repeat(secret.chars().count()));
                text = owned.as_str();
            }
        }
        let mut out = String::with_capacity(text.len().min(4 * MAX_TEXT));
        let mut rest = text;
        while let Some(at) = rest.find(['`', '"']) {
            out.push_str(&rest[..at]);
            let quote = &rest[at..];
            let len = quotation_len(quote);
            if len == 0 {
                out.push_str(&quote[..1]);
                rest = &quote[1..];
                continue;
            }
            self.quotation(&quote[..len], &mut out);
            rest = &quote[len..];
        }
        out.push_str(rest);
        cut(escape_controls(out), MAX_TEXT)
    }

    /// The inside of a quotation that is not a secret word as a whole: runs that are
    /// pieces of a secret are masked.
    fn plain(&self, text: &str, out: &mut String) {
        if self.pieces.is_empty() {
            out.push_str(text);
            return;
        }
        let mut at = 0;
        for (start, run) in run_indices(text) {
            out.push_str(&text[at..start]);
            if self.pieces.contains(run) {
                stars(run, out);
            } else {
                out.push_str(run);
            }
            at = start + run.len();
        }
        out.push_str(&text[at..]);
    }

    /// A quotation with its marks: masked whole when it is a secret word, else as
    /// plain text, shortened when long.
    fn quotation(&self, quote: &str, out: &mut String) {
        let mark = &quote[..1];
        let inner = &quote[1..quote.len() - 1];
        let secret = if mark == "`" {
            self.quoted.contains(inner)
        } else {
            self.quoted.contains(quote)
        };
        out.push_str(mark);
        if secret {
            stars(inner, out);
        } else {
            let mut masked = String::with_capacity(inner.len().min(4 * MAX_QUOTE));
            self.plain(inner, &mut masked);
            out.push_str(&shorten(&masked, MAX_QUOTE));
        }
        out.push_str(mark);
    }
}

/// The length in bytes of the quotation `text` starts with (a backquote to the next
/// backquote, or a double quote to the next one not escaped with `\`), or 0 when it
/// is not closed.
fn quotation_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mark = bytes[0];
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if mark == b'"' => i += 2,
            b if b == mark => return i + 1,
            _ => i += 1,
        }
    }
    0
}

/// The maximal runs of letters and digits of `text`.
fn runs(text: &str) -> impl Iterator<Item = &str> {
    run_indices(text).map(|(_, run)| run)
}

fn run_indices(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = &text[at..];
        let start = at + rest.find(char::is_alphanumeric)?;
        let len = text[start..]
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(text.len() - start);
        at = start + len;
        Some((start, &text[start..start + len]))
    })
}

/// `text` with its control characters but line breaks (`\n`, `\r`) and tabs written as escapes
/// (`\u{1b}`): a quoted word may hold one, and an escape must not reach a terminal.
fn escape_controls(text: String) -> String {
    let escaped = |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t');
    if !text.contains(escaped) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// One `*` per character of `text`.
fn stars(text: &str, out: &mut String) {
    out.extend(std::iter::repeat_n('*', text.chars().count()));
}

/// `text` if it has at most `max` characters, else its beginning and end around `…`.
pub fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let head = max * 2 / 3;
    let tail = max - head - 1;
    let mut out: String = text.chars().take(head).collect();
    out.push('…');
    out.extend(text.chars().skip(count - tail));
    out
}

/// `text` cut to `max` characters, with `…` at the end when something was cut.
fn cut(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_of(src: &str) -> Mask {
        Mask::new(src, &crate::lexer::secret_spans(src))
    }

    #[test]
    fn quotations_of_a_secret_are_masked() {
        let m = mask_of("tls passphrase = S3cr3t-Pa55 junk\n");
        assert_eq!(
            m.text("unexpected `S3cr3t-Pa55`"),
            "unexpected `***********`"
        );
        assert_eq!(m.text("unexpected `junk`"), "unexpected `****`");
        assert_eq!(
            m.text("`S3cr3t-Pa55` is not an IP address"),
            "`***********` is not an IP address"
        );
        // Part of it, in a quotation.
        assert_eq!(m.text("near `S3cr3t/Pa55x`"), "near `******/Pa55x`");
        // The compiler's own words around quotations are left.
        assert_eq!(m.text("the S3cr3t"), "the S3cr3t");
        // Short runs elsewhere are left alone.
        let m = mask_of("tls passphrase = a-1\n");
        assert_eq!(m.text("`a-1` at `1` of `a`"), "`***` at `1` of `a`");
        assert_eq!(m.text("`a-12` at `10`"), "`a-12` at `10`");
        // Comments give no words, keywords are no pieces.
        let m = mask_of("# the passphrase is below\ntls passphrase = \"not the passphrase\"\n");
        assert_eq!(
            m.text("the `tls passphrase` of the"),
            "the `tls passphrase` of the"
        );
        assert_eq!(m.text("unexpected `below`"), "unexpected `below`");
    }

    #[test]
    fn strings_are_masked_as_tokens_print_them() {
        let m = mask_of("ssl passphrase = \"open \\\"sesame\\\" {x}\"\n");
        let printed = format!("unexpected string {:?}", "open \"sesame\" {x}");
        let out = m.text(&printed);
        assert!(!out.contains("sesame") && !out.contains("open"), "{out}");
        assert_eq!(m.text("unexpected `sesame`"), "unexpected `******`");
    }

    #[test]
    fn texts_without_secrets_are_unchanged_but_kept_short() {
        let m = mask_of("id = spawnd { }\n");
        assert!(m.is_empty());
        let text = "expected one of `}`, `listen` or a \"word\"";
        assert_eq!(m.text(text), text);
        let long = format!("unexpected `{}`", "x".repeat(10_000));
        let out = m.text(&long);
        assert!(out.chars().count() < MAX_QUOTE + 20, "{out}");
        assert!(
            out.starts_with("unexpected `xxx") && out.ends_with("xxx`"),
            "{out}"
        );
        let out = m.text(&"y".repeat(10_000));
        assert_eq!(out.chars().count(), MAX_TEXT + 1);
        // An unclosed quotation is plain text.
        assert_eq!(m.text("a ` b \" c"), "a ` b \" c");
        // Control characters reach no terminal.
        assert_eq!(m.text("unexpected `a\u{9b}2J`"), "unexpected `a\\u{9b}2J`");
    }
}
