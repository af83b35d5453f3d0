//! Turns the definitions read from the grammar into the rules that are drawn.
//!
//! Macros (`Sp<Rule>`, `_Items<I>`) and helper rules (names starting with `_`) are not
//! drawn; a use of one is replaced by its definition, with the arguments put in for
//! the parameters. So `Sp<X>` (`@L X @R`) draws as X, and `_Items<X>` (a list of
//! `_Item<X>`, which is `Sp<X>` or an error) draws as zero or more X. Locations and
//! error recovery match no input and vanish; an alternative that was only error
//! recovery is dropped.

use super::grammar::{Definition, Grammar, Raw};
use super::{Alternative, Rule, Symbol};
use std::collections::HashMap;

/// How deep helpers may be nested in one another before the expansion is taken to
/// be recursive.
const MAX_DEPTH: usize = 32;

/// The drawn rules, in file order.
pub(super) fn expand(grammar: &Grammar) -> Result<Vec<Rule>, String> {
    let expander = Expander {
        definitions: grammar
            .definitions
            .iter()
            .map(|d| (d.name.as_str(), d))
            .collect(),
        token_names: &grammar.token_names,
    };
    grammar
        .definitions
        .iter()
        .filter(|d| is_drawn(d))
        .map(|d| {
            Ok(Rule {
                name: d.name.clone(),
                comment: d.comment.clone(),
                alternatives: expander.alternatives(d, &HashMap::new(), 0)?,
            })
        })
        .collect()
}

/// Whether a definition gets a diagram of its own.
fn is_drawn(definition: &Definition) -> bool {
    definition.params.is_empty() && !definition.name.starts_with('_')
}

/// How a named terminal of the `extern` block is labelled.
fn token_label(name: &str) -> String {
    match name {
        "Word" => "word".to_string(),
        "QuotedString" => "\"string\"".to_string(),
        other => other.to_string(),
    }
}

struct Expander<'g> {
    definitions: HashMap<&'g str, &'g Definition>,
    token_names: &'g [String],
}

/// The macro parameters in scope and what they stand for.
type Env = HashMap<String, Vec<Symbol>>;

impl Expander<'_> {
    /// A definition's alternatives with `env` for its parameters, without those that
    /// were only error recovery.
    fn alternatives(
        &self,
        definition: &Definition,
        env: &Env,
        depth: usize,
    ) -> Result<Vec<Alternative>, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "the helper `{}` expands into itself; helpers must not be recursive",
                definition.name
            ));
        }
        let mut alternatives = Vec::new();
        for raw in &definition.alternatives {
            let symbols = self.sequence(raw, env, depth)?;
            if symbols.is_empty() && raw.iter().any(has_recovery) {
                continue;
            }
            alternatives.push(symbols);
        }
        Ok(alternatives)
    }

    fn sequence(&self, raws: &[Raw], env: &Env, depth: usize) -> Result<Vec<Symbol>, String> {
        let mut out = Vec::new();
        for raw in raws {
            out.extend(self.symbol(raw, env, depth)?);
        }
        Ok(out)
    }

    /// What one raw symbol draws as: nothing, one symbol, or (for an inlined
    /// helper) several.
    fn symbol(&self, raw: &Raw, env: &Env, depth: usize) -> Result<Vec<Symbol>, String> {
        Ok(match raw {
            Raw::Lit(text) => vec![Symbol::Terminal(text.clone())],
            Raw::Name(name) => {
                if let Some(arg) = env.get(name) {
                    arg.clone()
                } else if self.token_names.contains(name) {
                    vec![Symbol::Token(token_label(name))]
                } else if let Some(helper) = self
                    .definitions
                    .get(name.as_str())
                    .filter(|d| d.params.is_empty() && !is_drawn(d))
                {
                    self.inline(helper, &Env::new(), depth)?
                } else {
                    vec![Symbol::NonTerminal(name.clone())]
                }
            }
            Raw::Macro(name, args) => {
                let Some(definition) = self.definitions.get(name.as_str()) else {
                    return Err(format!("the macro `{name}` is used but not defined"));
                };
                if definition.params.len() != args.len() {
                    return Err(format!(
                        "the macro `{name}` takes {} arguments, given {}",
                        definition.params.len(),
                        args.len()
                    ));
                }
                let mut inner = Env::new();
                for (param, arg) in definition.params.iter().zip(args) {
                    inner.insert(param.clone(), self.sequence(arg, env, depth)?);
                }
                self.inline(definition, &inner, depth)?
            }
            Raw::Group(inner) => self.sequence(inner, env, depth)?,
            Raw::Location | Raw::Recovery => Vec::new(),
            Raw::Optional(inner) => self.wrap(inner, env, depth, Symbol::Optional)?,
            Raw::ZeroOrMore(inner) => self.wrap(inner, env, depth, Symbol::ZeroOrMore)?,
            Raw::OneOrMore(inner) => self.wrap(inner, env, depth, Symbol::OneOrMore)?,
        })
    }

    /// `inner?`, `inner*` or `inner+`; nothing if `inner` draws as nothing.
    fn wrap(
        &self,
        inner: &Raw,
        env: &Env,
        depth: usize,
        make: fn(Box<Symbol>) -> Symbol,
    ) -> Result<Vec<Symbol>, String> {
        let mut symbols = self.symbol(inner, env, depth)?;
        Ok(match symbols.len() {
            0 => Vec::new(),
            1 => vec![make(Box::new(symbols.remove(0)))],
            _ => vec![make(Box::new(Symbol::Sequence(symbols)))],
        })
    }

    /// A helper's body in place of its use: its one alternative, or a choice.
    fn inline(
        &self,
        definition: &Definition,
        env: &Env,
        depth: usize,
    ) -> Result<Vec<Symbol>, String> {
        let mut alternatives = self.alternatives(definition, env, depth + 1)?;
        Ok(match alternatives.len() {
            0 => Vec::new(),
            1 => alternatives.remove(0),
            _ => vec![Symbol::Choice(alternatives)],
        })
    }
}

fn has_recovery(raw: &Raw) -> bool {
    match raw {
        Raw::Recovery => true,
        Raw::Group(inner) => inner.iter().any(has_recovery),
        Raw::Macro(_, args) => args.iter().flatten().any(has_recovery),
        Raw::Optional(inner) | Raw::ZeroOrMore(inner) | Raw::OneOrMore(inner) => {
            has_recovery(inner)
        }
        Raw::Lit(_) | Raw::Name(_) | Raw::Location => false,
    }
}
