//! The configuration manual, `docs/manual/index.html`: one self-contained HTML page
//! with the reference of every directive and the railroad diagram of every rule; and
//! the same text as the man page `docs/man/tcprelay.conf.5` ([`man_page`], in
//! `manual/roff.rs`).
//!
//! The text comes from `docs/language.md`, the one place where the directives, their
//! defaults and their examples are written down; the diagrams come from
//! [`diagram::rules`], drawn from the grammar the parser is generated from. So the page
//! has no text of its own to drift: the tests check that the committed copies are
//! what [`html`] and [`man_page`] give now (`TCPRELAY_BLESS=1 cargo test -p
//! tcprelay-cc --lib manual` rewrites them), that every spelling the grammar accepts
//! has a row, and that every example compiles. Both leave out the paragraphs of
//! `language.md` about the source tree ([`is_source_tree_only`]) and link nothing but
//! their own sections: an installed system has the HTML and man pages only. Both end
//! with the diagnostic codes, from [`Code::ALL`].

mod markdown;
mod roff;
#[cfg(test)]
mod tests;

use crate::diag::Code;
use crate::diagram;
use markdown::{blocks, escape, inline, slug, Block};

/// The source of the reference.
const LANGUAGE: &str = include_str!("../../docs/language.md");

/// The page title.
const TITLE: &str = "tcprelay configuration reference";

/// The grammar rules that draw what a heading of `language.md` describes, shown as
/// links under the heading.
const GRAMMAR_OF: &[(&str, &[&str])] = &[
    ("Lexical structure", &["Value", "BareAddress", "Keyword"]),
    ("Structure", &["Config", "TopItem"]),
    (
        "Top level",
        &[
            "Setenv",
            "SectionItem",
            "CommonDirective",
            "DebugKey",
            "Flag",
            "CommonKey",
            "Alias",
            "AliasKey",
            "AliasToken",
        ],
    ),
    (
        "spawnd section",
        &[
            "SectionDirective",
            "BlockKey",
            "SectionKey",
            "Keepalive",
            "Syslog",
            "Acl",
            "AclRule",
            "AclAction",
            "BufsizeKey",
            "Sticky",
            "Control",
            "ControlKey",
        ],
    ),
    (
        "listen blocks",
        &["BlockItem", "ItemKey", "BareAddress", "Proxy"],
    ),
    ("the spawn block", &["BlockItem", "SpawnKey"]),
    (
        "tcprelay section",
        &[
            "SectionDirective",
            "BlockKey",
            "SectionKey",
            "Syslog",
            "TlsKey",
            "Check",
        ],
    ),
    (
        "remote blocks",
        &["BlockItem", "ItemKey", "Proxy", "TlsKey", "Check"],
    ),
    ("check blocks", &["Check", "CheckKey", "CheckItemKey"]),
];

/// The section of a configuration a directive is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Outside any section.
    TopLevel,
    /// The section selected as spawnd.
    Spawnd,
    /// The section selected as tcprelay.
    Tcprelay,
}

/// One row of a directive table of `language.md`, cells as written (inline Markdown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The heading the table is under.
    pub heading: String,
    pub role: Role,
    /// The spellings, e.g. `` `user = NAME|UID` (deprecated: `userid`) ``.
    pub directive: String,
    pub value: String,
    pub default: String,
    /// A configuration fragment to write in `role`'s section, in backticks.
    pub example: String,
}

/// The header of a directive table.
const COLUMNS: [&str; 4] = ["directive", "value", "default", "example"];

/// Every row of every directive table of `language.md`, in order.
pub fn directives() -> Vec<Directive> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut role = Role::TopLevel;
    for block in blocks(LANGUAGE) {
        match block {
            Block::Heading(level, title) => {
                if level == 2 {
                    role = match title.as_str() {
                        "spawnd section" => Role::Spawnd,
                        "tcprelay section" => Role::Tcprelay,
                        _ => Role::TopLevel,
                    };
                }
                heading = title;
            }
            Block::Table(header, rows) if header == COLUMNS => {
                for row in rows {
                    let [directive, value, default, example] = <[String; 4]>::try_from(row)
                        .unwrap_or_else(|row| {
                            panic!("docs/language.md: a row with other than 4 cells: {row:?}")
                        });
                    out.push(Directive {
                        heading: heading.clone(),
                        role,
                        directive,
                        value,
                        default,
                        example,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// A paragraph of `language.md` about the files of the source tree (it starts with
/// "In the source tree,"), which the installed manuals leave out.
fn is_source_tree_only(paragraph: &str) -> bool {
    paragraph.starts_with("In the source tree,")
}

/// The links of `docs/language.md` the manual keeps: those to its own sections. A
/// link to another file becomes its text (`""`), as the file is not installed.
fn link(url: &str) -> String {
    if url.starts_with('#') {
        url.to_string()
    } else {
        String::new()
    }
}

/// Every diagnostic code and its title, in catalogue order.
fn diagnostics() -> Vec<(&'static str, &'static str)> {
    Code::ALL.iter().map(|c| (c.as_str(), c.title())).collect()
}

/// The man page `tcprelay.conf(5)`: the text and tables of `language.md`, and the
/// diagnostic codes.
pub fn man_page() -> String {
    roff::page()
}

/// The file name of [`man_page`] under `docs/man/`.
pub fn man_page_file() -> String {
    format!("{}.{}", roff::NAME, roff::SECTION)
}

/// The manual: `docs/language.md` as HTML, a table of contents, and every rule's
/// diagram as inline SVG. No external resources.
pub fn html() -> String {
    let rules = diagram::rules();
    let mut body = String::new();
    // The table of contents: (id, title) of each `##` heading, with its `###` ones.
    type Entry = (String, String);
    let mut contents: Vec<(Entry, Vec<Entry>)> = Vec::new();
    for block in blocks(LANGUAGE) {
        match block {
            // The page has its own title.
            Block::Heading(1, _) => {}
            Block::Heading(level, title) => {
                let id = slug(&title);
                let entry = (id.clone(), inline(&title, &link));
                match (level, contents.last_mut()) {
                    (2, _) | (_, None) => contents.push((entry, Vec::new())),
                    (_, Some((_, subsections))) => subsections.push(entry),
                }
                body.push_str(&format!(
                    "<h{level} id=\"{id}\">{}</h{level}>\n",
                    inline(&title, &link)
                ));
                if let Some((_, names)) = GRAMMAR_OF.iter().find(|(h, _)| *h == title) {
                    let links: Vec<String> = names
                        .iter()
                        .map(|n| format!("<a href=\"#rule-{n}\">{n}</a>"))
                        .collect();
                    body.push_str(&format!(
                        "<p class=\"grammar\">Diagrams: {}</p>\n",
                        links.join(", ")
                    ));
                }
            }
            Block::Paragraph(text) if is_source_tree_only(&text) => {}
            Block::Paragraph(text) => {
                body.push_str(&format!("<p>{}</p>\n", inline(&text, &link)));
            }
            Block::List(items) => {
                body.push_str("<ul>\n");
                for item in items {
                    body.push_str(&format!("<li>{}</li>\n", inline(&item, &link)));
                }
                body.push_str("</ul>\n");
            }
            Block::Code(code) => {
                body.push_str(&format!("<pre><code>{}</code></pre>\n", escape(&code)));
            }
            Block::Table(header, rows) => body.push_str(&table(&header, &rows)),
        }
    }
    let mut toc = String::new();
    contents.push((
        ("diagnostics".to_string(), "Diagnostics".to_string()),
        Vec::new(),
    ));
    for ((id, title), subsections) in &contents {
        toc.push_str(&format!("<li><a href=\"#{id}\">{title}</a>"));
        if !subsections.is_empty() {
            toc.push_str("\n<ul>\n");
            for (id, title) in subsections {
                toc.push_str(&format!("<li><a href=\"#{id}\">{title}</a></li>\n"));
            }
            toc.push_str("</ul>\n");
        }
        toc.push_str("</li>\n");
    }
    toc.push_str("<li><a href=\"#railroad-diagrams\">Railroad diagrams</a>\n<p class=\"rules\">");
    let rule_links: Vec<String> = rules
        .iter()
        .map(|r| format!("<a href=\"#rule-{0}\">{0}</a>", escape(&r.name)))
        .collect();
    toc.push_str(&rule_links.join(", "));
    toc.push_str("</p></li>\n");

    body.push_str(
        "<h2 id=\"diagnostics\">Diagnostics</h2>\n\
         <p><code>tcprelay-cc check</code>, and <code>tcprelay</code> when it compiles a \
         configuration, report each problem, error or warning, with one of these stable \
         codes.</p>\n<table class=\"codes\">\n\
         <thead><tr><th>code</th><th>meaning</th></tr></thead>\n<tbody>\n",
    );
    for (code, title) in diagnostics() {
        body.push_str(&format!(
            "<tr><td><code>{code}</code></td><td>{}</td></tr>\n",
            escape(title)
        ));
    }
    body.push_str("</tbody>\n</table>\n");

    body.push_str(
        "<section id=\"railroad-diagrams\">\n<h2>Railroad diagrams</h2>\n\
         <p>Every rule of the grammar the parser is generated from, drawn by \
         <code>tcprelay-cc diagram</code>. \
         Read a diagram from left to right along the lines. Yellow rounded boxes are \
         written as shown; green italic boxes are a <em>word</em> (unquoted text) or a \
         <em>\"string\"</em> (quoted text); blue square boxes are other rules.</p>\n",
    );
    for rule in &rules {
        let name = escape(&rule.name);
        body.push_str(&format!(
            "<section class=\"rule\" id=\"rule-{name}\">\n<h3>{name}</h3>\n"
        ));
        if let Some(comment) = &rule.comment {
            body.push_str(&format!("<p>{}</p>\n", inline(comment, &link)));
        }
        body.push_str("<div class=\"diagram\">\n");
        body.push_str(diagram::rule_svg(rule).trim_end());
        body.push_str("\n</div>\n</section>\n");
    }
    body.push_str("</section>\n");

    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{TITLE}</title>\n<style>\n{PAGE_CSS}</style>\n</head>\n<body>\n\
         <header>\n<h1>The {TITLE}</h1>\n\
         <p>Every directive of the spawnd/tcprelay configuration language, with its \
         default and an example, and the railroad diagram of every rule. Check a \
         configuration with <code>tcprelay-cc check FILE</code>; the codes of the \
         diagnostics it prints are listed under <a href=\"#diagnostics\">Diagnostics</a>. \
         The same reference is the man page <b>tcprelay.conf</b>(5); the programs are \
         described in <b>tcprelay-cc</b>(1) and <b>tcprelay</b>(1).</p>\n\
         </header>\n<div class=\"layout\">\n\
         <nav>\n<h2>Contents</h2>\n<ul>\n{toc}</ul>\n</nav>\n\
         <main>\n{body}</main>\n</div>\n</body>\n</html>\n"
    )
}

fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let class = if header == COLUMNS {
        " class=\"directives\""
    } else {
        ""
    };
    let mut out = format!("<table{class}>\n<thead><tr>");
    for cell in header {
        out.push_str(&format!("<th>{}</th>", inline(cell, &link)));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(&format!("<td>{}</td>", inline(cell, &link)));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// The page's styles; the diagrams carry their own.
const PAGE_CSS: &str = r"
body {
font-family: sans-serif;
line-height: 1.45;
color: #222;
margin: 0 auto;
max-width: 90em;
padding: 1em 1.5em 3em;
}
h1 {
font-size: 1.8em;
margin-bottom: 0.2em;
}
h2 {
border-bottom: 1px solid #ccc;
margin-top: 2em;
padding-bottom: 0.2em;
}
code, pre {
font-family: monospace;
font-size: 0.95em;
}
code {
background: #f3f3f3;
border-radius: 3px;
padding: 0 0.2em;
}
pre {
background: #f6f6f6;
border: 1px solid #e2e2e2;
padding: 0.6em 0.9em;
overflow-x: auto;
}
pre code {
background: none;
padding: 0;
}
nav {
background: #f8f8f8;
border: 1px solid #e2e2e2;
padding: 0.2em 1.2em 0.6em;
}
nav h2 {
border: none;
font-size: 1.1em;
margin-top: 0.6em;
}
nav ul {
margin: 0;
padding-left: 1.2em;
}
nav p.rules {
font-size: 0.9em;
margin: 0.2em 0 0;
}
/* On a wide screen the contents are a column beside the text that stays in view
   while the text scrolls; on a narrow one, a list above it. */
@media (min-width: 60em) {
div.layout {
display: grid;
grid-template-columns: 17em minmax(0, 1fr);
gap: 2em;
align-items: start;
}
nav {
position: sticky;
top: 0;
max-height: 100vh;
box-sizing: border-box;
overflow-y: auto;
}
main h2:first-child {
margin-top: 0.6em;
}
}
table {
border-collapse: collapse;
margin: 1em 0;
width: 100%;
}
th, td {
border: 1px solid #d6d6d6;
padding: 0.35em 0.5em;
text-align: left;
vertical-align: top;
}
th {
background: #eef2f7;
}
table.directives td:first-child {
width: 27%;
}
table.directives td:nth-child(3) {
width: 14%;
}
table.directives td:last-child {
width: 25%;
}
p.grammar {
color: #555;
font-size: 0.9em;
margin-top: -0.5em;
}
section.rule {
margin: 1.8em 0;
}
section.rule h3 {
font-family: monospace;
font-size: 1.2em;
margin-bottom: 0.2em;
}
div.diagram {
overflow-x: auto;
}
svg.railroad {
display: block;
max-width: 100%;
height: auto;
}
";
