//! The configuration manual as a man page, `docs/man/tcprelay.conf.5`: the text and
//! directive tables of `docs/language.md`, as the HTML page has them, without the
//! diagrams. A directive table becomes one `.TP` entry per directive (its spellings,
//! then what it takes, its default and an example), which reads well on a terminal
//! and needs no tbl(1).

use super::markdown::{blocks, styled, Block, Style};
use super::{diagnostics, is_source_tree_only, COLUMNS, LANGUAGE};

/// The page's name and section.
pub const NAME: &str = "tcprelay.conf";
pub const SECTION: &str = "5";

/// Text for roff: backslashes as `\e`, hyphens as `\-` (so they are not hyphenation
/// points and copy as ASCII), other non-ASCII characters as `\[uXXXX]` (groff reads
/// the page as Latin-1 unless preconv(1) runs).
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            c if c.is_ascii() => out.push(c),
            c => out.push_str(&format!("\\[u{:04X}]", u32::from(c))),
        }
    }
    out
}

const ROFF: Style = Style {
    escape,
    code: ["\\fB", "\\fR"],
    em: ["\\fI", "\\fR"],
};

/// Inline Markdown as roff: code in bold, emphasis in italics, a link as its text.
fn inline(text: &str) -> String {
    styled(text, &ROFF, &|_, label| label.to_string())
}

/// One line of text, protected from being read as a request: a line starting with
/// `.` or `'` would be one.
fn text_line(text: &str) -> String {
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}\n")
    } else {
        format!("{text}\n")
    }
}

/// The page.
pub fn page() -> String {
    let mut out = format!(
        ".TH {NAME} {SECTION} \"\" \"tcprelay {}\" \"tcprelay manual\"\n",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str(
        ".SH NAME\ntcprelay.conf \\- the configuration language of tcprelay and tcprelay\\-cc\n",
    );
    out.push_str(".SH SYNOPSIS\n.I /etc/tcprelay/relay.cfg\n");
    out.push_str(".SH DESCRIPTION\n");
    // Whether the next paragraph needs a `.PP` before it.
    let mut after_text = false;
    for block in blocks(LANGUAGE) {
        match block {
            Block::Heading(1, _) => {}
            Block::Heading(2, title) => {
                out.push_str(&format!(".SH \"{}\"\n", escape(&title.to_uppercase())));
                after_text = false;
            }
            Block::Heading(_, title) => {
                out.push_str(&format!(".SS \"{}\"\n", escape(&title)));
                after_text = false;
            }
            Block::Paragraph(text) if is_source_tree_only(&text) => {}
            Block::Paragraph(text) => {
                if after_text {
                    out.push_str(".PP\n");
                }
                out.push_str(&text_line(&inline(&text)));
                after_text = true;
            }
            Block::List(items) => {
                for item in items {
                    out.push_str(".IP \\(bu 2\n");
                    out.push_str(&text_line(&inline(&item)));
                }
                out.push_str(".PP\n");
                after_text = false;
            }
            Block::Code(code) => {
                out.push_str(".PP\n.EX\n");
                for line in code.lines() {
                    out.push_str(&text_line(&escape(line)));
                }
                out.push_str(".EE\n.PP\n");
                after_text = false;
            }
            Block::Table(header, rows) => {
                for row in rows {
                    let (first, rest) = row.split_first().expect("a row has cells");
                    out.push_str(".TP\n");
                    out.push_str(&text_line(&inline(first)));
                    for (i, (name, cell)) in header[1..].iter().zip(rest).enumerate() {
                        if i > 0 {
                            out.push_str(".br\n");
                        }
                        // What a directive takes needs no label; the rest do.
                        let label = if header == COLUMNS && i == 0 {
                            String::new()
                        } else {
                            format!("{}: ", escape(&capitalised(name)))
                        };
                        out.push_str(&text_line(&format!("{label}{}", inline(cell))));
                    }
                }
                out.push_str(".PP\n");
                after_text = false;
            }
        }
    }
    out.push_str(".SH DIAGNOSTICS\n");
    out.push_str(&text_line(&escape(
        "tcprelay-cc check, and tcprelay when it compiles a configuration, report each \
         problem, error or warning, with one of these stable codes.",
    )));
    for (code, title) in diagnostics() {
        out.push_str(&format!(".TP\n.B {code}\n"));
        out.push_str(&text_line(&escape(title)));
    }
    out.push_str(
        ".SH \"SEE ALSO\"\n.BR tcprelay\\-cc (1),\n.BR tcprelay\\-cc\\-check (1),\n\
         .BR tcprelay (1)\n.PP\n\
         The same reference with railroad diagrams of the language is the HTML manual \
         installed beside these pages.\n",
    );
    out
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}
