//! Railroad diagrams of the configuration language, for `tcprelay-cc diagram` and
//! `docs/grammar.{svg,html}`.
//!
//! They are drawn from `grammar/tcprelay.lalrpop`, the file the parser is generated
//! from, so the pictures cannot drift from the language: [`grammar`] reads the part of
//! LALRPOP's syntax the file uses, [`expand`] inlines the macros and helper rules,
//! and [`render`] draws each remaining rule with the `railroad` crate.

mod expand;
mod grammar;
mod render;
#[cfg(test)]
mod tests;

/// The grammar the parser is generated from (`build.rs` reads the same file).
const GRAMMAR: &str = include_str!("../../grammar/tcprelay.lalrpop");

/// A rule of the configuration language, as its diagram shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// The `//` comment directly above the rule in the grammar, as one paragraph.
    pub comment: Option<String>,
    /// The rule's alternatives; an alternative is a sequence of symbols.
    pub alternatives: Vec<Alternative>,
}

/// One way to write a rule: symbols in order.
pub type Alternative = Vec<Symbol>;

/// A part of a rule, after macros and helper rules have been inlined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Symbol {
    /// A keyword or punctuation, written as shown (`setenv`, `=`).
    Terminal(String),
    /// A class of tokens from the lexer: `word` (unquoted text) or `"string"`.
    Token(String),
    /// Another rule, by name.
    NonTerminal(String),
    /// Symbols in order (the body of a group or of a helper).
    Sequence(Vec<Symbol>),
    /// One of several alternatives (the body of a helper with several).
    Choice(Vec<Alternative>),
    Optional(Box<Symbol>),
    ZeroOrMore(Box<Symbol>),
    OneOrMore(Box<Symbol>),
}

/// The drawn rules of the configuration language, in grammar order.
pub fn rules() -> Vec<Rule> {
    parse_grammar(GRAMMAR)
        .expect("grammar/tcprelay.lalrpop stays in the syntax the diagrams read (tested)")
}

/// One standalone SVG document with every rule's diagram, under the rule's name.
pub fn svg() -> String {
    render::svg(&rules())
}

/// An HTML page with a section (`id="rule-NAME"`) per rule, without external
/// resources.
pub fn html() -> String {
    render::html(&rules())
}

/// The diagram of one rule, as a standalone SVG document.
pub fn rule_svg(rule: &Rule) -> String {
    render::rule_svg(rule)
}

/// Reads a grammar in the LALRPOP syntax `grammar/tcprelay.lalrpop` uses and returns
/// its drawn rules: every rule except macros and helpers (names starting with `_`).
fn parse_grammar(text: &str) -> Result<Vec<Rule>, String> {
    expand::expand(&grammar::parse(text)?)
}
