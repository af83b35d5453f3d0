//! Draws rules with the `railroad` crate: one diagram per rule, as a standalone SVG
//! page of all of them or as an HTML page with a section per rule.
//!
//! Keywords are rounded boxes, token classes (`word`, `"string"`) rounded and in
//! italics, other rules square; in the HTML page a rule's box links to its section.
//! The output depends only on the rules, so it is the same bytes on every run.

use super::{Alternative, Rule, Symbol};
use railroad::svg::{self, HDir};
use railroad::{
    Choice, Diagram, Empty, End, Link, MultiChoice, Node, NonTerminal, Optional, Repeat, Sequence,
    Start, Terminal, DEFAULT_CSS,
};

/// The page title, and the heading of the SVG page.
const TITLE: &str = "tcprelay configuration language";

/// Styles added to railroad's: colours that tell keywords, token classes and rules
/// apart, and the headings and captions of the SVG page.
const EXTRA_CSS: &str = r#"
svg.railroad g.terminal rect {
fill: hsl(45, 100%, 87%);
}
svg.railroad g.terminal[data-kind="token"] rect {
fill: hsl(130, 45%, 87%);
}
svg.railroad g.terminal[data-kind="token"] text {
font-style: italic;
}
svg.railroad g.nonterminal rect {
fill: hsl(210, 80%, 90%);
}
svg.railroad a:hover g.nonterminal rect {
fill: hsl(210, 80%, 80%);
}
svg.railroad text.rule-name {
font: bold 18px sans-serif;
text-anchor: start;
}
svg.railroad text.rule-comment {
font: italic 13px sans-serif;
text-anchor: start;
}
svg.railroad text.rule-comment tspan.code {
font: 13px monospace;
}
"#;

/// Styles of the HTML page around the diagrams.
const PAGE_CSS: &str = r"
body {
font-family: sans-serif;
margin: 2em auto;
max-width: 70em;
padding: 0 1em;
color: #222;
}
section {
margin: 2.5em 0;
}
h2 {
font-family: monospace;
font-size: 1.3em;
margin-bottom: 0.3em;
}
nav a {
font-family: monospace;
margin-right: 0.8em;
}
svg.railroad {
display: block;
max-width: 100%;
height: auto;
}
";

/// A choice with more alternatives than this is laid out in several columns.
const MAX_ROWS: usize = 16;

/// Margin of the SVG page, and the space between its diagrams.
const MARGIN: i64 = 20;
/// Lines of a rule's comment on the SVG page are wrapped at this many characters.
const CAPTION_CHARS: usize = 100;
/// Roughly how wide a caption character is, for the width of the SVG page.
const CAPTION_CHAR_WIDTH: i64 = 7;

type BoxNode = Box<dyn Node>;

/// The diagram of one rule, in a standalone SVG document with its own styles.
pub(super) fn rule_svg(rule: &Rule) -> String {
    let mut diagram = diagram(rule, false);
    diagram.add_css(DEFAULT_CSS);
    diagram.add_css(EXTRA_CSS);
    diagram.to_string()
}

/// One SVG document with every rule's diagram under its name and comment.
pub(super) fn svg(rules: &[Rule]) -> String {
    let mut body = String::new();
    let mut y = MARGIN;
    let mut width = text_width(TITLE, 11);
    body.push_str(&text("rule-name", MARGIN, y + 20, TITLE));
    y += 50;
    for rule in rules {
        body.push_str(&format!("<g id=\"rule-{}\">\n", esc(&rule.name)));
        body.push_str(&text("rule-name", MARGIN, y + 18, &rule.name));
        y += 28;
        let mut in_code = false;
        for line in wrap(rule.comment.as_deref().unwrap_or(""), CAPTION_CHARS) {
            body.push_str(&format!(
                "<text class=\"rule-comment\" x=\"{MARGIN}\" y=\"{}\">{}</text>\n",
                y + 13,
                caption_markup(&line, &mut in_code)
            ));
            width = width.max(text_width(&line, CAPTION_CHAR_WIDTH));
            y += 18;
        }
        let root = root(rule, false);
        body.push_str(&root.draw(MARGIN, y + 6, HDir::LTR).to_string());
        body.push_str("</g>\n");
        width = width.max(root.width());
        y += 6 + root.height() + 2 * MARGIN;
    }
    let (width, height) = (width + 2 * MARGIN, y);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" \
         class=\"railroad\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">\n\
         <title>{TITLE}</title>\n\
         <style type=\"text/css\">\n{DEFAULT_CSS}{EXTRA_CSS}</style>\n\
         <rect width=\"100%\" height=\"100%\" class=\"railroad_canvas\"/>\n\
         {body}</svg>\n"
    )
}

/// An HTML page with a section per rule: its name, its comment and its diagram.
pub(super) fn html(rules: &[Rule]) -> String {
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{TITLE}</title>\n<style>\n{PAGE_CSS}{DEFAULT_CSS}{EXTRA_CSS}</style>\n\
         </head>\n<body>\n<h1>The {TITLE}</h1>\n\
         <p>Railroad diagrams of every rule of the configuration language, drawn by \
         <code>tcprelay-cc diagram</code> from <code>grammar/tcprelay.lalrpop</code>, the \
         grammar the parser is generated from. Rounded boxes are written as shown; \
         rounded boxes in italics are a <em>word</em> (unquoted text) or a \
         <em>\"string\"</em> (quoted text); square boxes are rules, and link to their \
         diagrams.</p>\n<nav>\n"
    );
    for rule in rules {
        let name = esc(&rule.name);
        page.push_str(&format!("<a href=\"#rule-{name}\">{name}</a>\n"));
    }
    page.push_str("</nav>\n");
    for rule in rules {
        let name = esc(&rule.name);
        page.push_str(&format!("<section id=\"rule-{name}\">\n<h2>{name}</h2>\n"));
        if let Some(comment) = &rule.comment {
            page.push_str(&format!("<p>{}</p>\n", inline_code(&esc(comment))));
        }
        page.push_str(&diagram(rule, true).to_string());
        page.push_str("</section>\n");
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// A rule's diagram, sized, with its name as the SVG title and without styles.
fn diagram(rule: &Rule, links: bool) -> Diagram<Sequence<BoxNode>> {
    let mut diagram = Diagram::new(root(rule, links));
    let (width, height) = (diagram.width(), diagram.height());
    diagram
        .attr("width".to_string())
        .or_insert(width.to_string());
    diagram
        .attr("height".to_string())
        .or_insert(height.to_string());
    diagram.add_element(svg::Element::new("title").text(&rule.name));
    diagram
}

/// Start, the rule's body, End.
fn root(rule: &Rule, links: bool) -> Sequence<BoxNode> {
    let mut nodes: Vec<BoxNode> = vec![Box::new(Start)];
    match rule.alternatives.as_slice() {
        [] => {}
        [one] => nodes.extend(one.iter().map(|s| node(s, links))),
        many => nodes.push(choice(many, links)),
    }
    nodes.push(Box::new(End));
    Sequence::new(nodes)
}

fn node(symbol: &Symbol, links: bool) -> BoxNode {
    match symbol {
        Symbol::Terminal(text) => Box::new(Terminal::new(text.clone())),
        Symbol::Token(label) => {
            let mut terminal = Terminal::new(label.clone());
            terminal
                .attr("data-kind".to_string())
                .or_insert("token".to_string());
            Box::new(terminal)
        }
        Symbol::NonTerminal(name) if links => Box::new(Link::new(
            NonTerminal::new(name.clone()),
            format!("#rule-{name}"),
        )),
        Symbol::NonTerminal(name) => Box::new(NonTerminal::new(name.clone())),
        Symbol::Sequence(symbols) => sequence(symbols, links),
        Symbol::Choice(alternatives) => choice(alternatives, links),
        Symbol::Optional(inner) => Box::new(Optional::new(node(inner, links))),
        Symbol::ZeroOrMore(inner) => {
            Box::new(Optional::new(Repeat::new(node(inner, links), Empty)))
        }
        Symbol::OneOrMore(inner) => Box::new(Repeat::new(node(inner, links), Empty)),
    }
}

fn sequence(symbols: &[Symbol], links: bool) -> BoxNode {
    match symbols {
        [] => Box::new(Empty),
        [one] => node(one, links),
        many => Box::new(Sequence::new(many.iter().map(|s| node(s, links)).collect())),
    }
}

/// A choice, in columns of at most [`MAX_ROWS`] when it is long.
fn choice(alternatives: &[Alternative], links: bool) -> BoxNode {
    let nodes: Vec<BoxNode> = alternatives.iter().map(|a| sequence(a, links)).collect();
    if nodes.len() <= MAX_ROWS {
        return Box::new(Choice::new(nodes));
    }
    let columns = nodes.len().div_ceil(MAX_ROWS);
    let rows = nodes.len().div_ceil(columns);
    let mut grid: Vec<Vec<BoxNode>> = Vec::new();
    for node in nodes {
        match grid.last_mut() {
            Some(column) if column.len() < rows => column.push(node),
            _ => grid.push(vec![node]),
        }
    }
    Box::new(MultiChoice::new(grid))
}

/// A `<text>` element of the SVG page.
fn text(class: &str, x: i64, y: i64, content: &str) -> String {
    format!(
        "<text class=\"{class}\" x=\"{x}\" y=\"{y}\">{}</text>\n",
        esc(content)
    )
}

fn text_width(text: &str, char_width: i64) -> i64 {
    i64::try_from(text.chars().count()).unwrap_or(i64::MAX / 2 / char_width) * char_width
}

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + 1 + word.chars().count() <= width => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

/// A caption line for the SVG page, escaped, with its `` `code` `` spans in a
/// monospace `<tspan>`. `in_code` carries a span that goes on past the line's end.
fn caption_markup(line: &str, in_code: &mut bool) -> String {
    let mut out = String::new();
    if *in_code {
        out.push_str("<tspan class=\"code\">");
    }
    for (i, part) in esc(line).split('`').enumerate() {
        if i > 0 {
            *in_code = !*in_code;
            out.push_str(if *in_code {
                "<tspan class=\"code\">"
            } else {
                "</tspan>"
            });
        }
        out.push_str(part);
    }
    if *in_code {
        out.push_str("</tspan>");
    }
    out
}

fn esc(text: &str) -> String {
    svg::encode_minimal(text).into_owned()
}

/// Escaped text with its `` `code` `` spans set as `<code>`.
fn inline_code(escaped: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for (i, part) in escaped.split('`').enumerate() {
        if i > 0 {
            in_code = !in_code;
            out.push_str(if in_code { "<code>" } else { "</code>" });
        }
        out.push_str(part);
    }
    if in_code {
        // An unpaired backtick: leave the text as it is.
        return escaped.to_string();
    }
    out
}
