//! "Did you mean ...?": the closest candidate by edit distance, and the directive
//! keys valid at a place of a file, from which the parser's suggestions are taken
//! ([`advise`]): never the word written, never a key valid only elsewhere (that one
//! is named with where it belongs instead).

use crate::ast::{Key, Role};
use std::sync::OnceLock;

/// The edit distance between `a` and `b` in chars, where swapping two neighbours
/// counts as one edit (optimal string alignment), as typing mistakes go.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        d[i * width] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j - 1] + cost)
                .min(d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo:
/// at most a third of the word's length in edits (and at least one edit allowed).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Where a directive stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Outside every section.
    Top,
    /// Directly in a section selected for these roles (both when one section plays
    /// both, or when no selection is known).
    Section { spawnd: bool, tcprelay: bool },
    /// In a block opened by this key (`listen`, `remote`, ...).
    Block(Key),
}

impl Place {
    fn describe(self) -> String {
        match self {
            Place::Top => "the top level, outside the sections".to_string(),
            Place::Section {
                spawnd: true,
                tcprelay: false,
            } => "the spawnd section".to_string(),
            Place::Section {
                spawnd: false,
                tcprelay: true,
            } => "the tcprelay section".to_string(),
            Place::Section { .. } => "a section".to_string(),
            Place::Block(key) => format!("a `{key}` block"),
        }
    }

    /// The keys valid here; `None` at the top level, where the grammar alone knows.
    pub fn keys(self) -> Option<Vec<Key>> {
        match self {
            Place::Top => None,
            Place::Section { spawnd, tcprelay } => Some(
                universe()
                    .iter()
                    .copied()
                    .filter(|k| match k.role() {
                        Role::Either => true,
                        Role::Spawnd => spawnd,
                        Role::Tcprelay => tcprelay,
                        Role::Nested => false,
                    })
                    .collect(),
            ),
            Place::Block(key) => crate::check::block_keys(key).map(<[Key]>::to_vec),
        }
    }
}

/// Every directive key of the language, found by reading each key spelling of the
/// grammar (the terminal-only alternatives of its rules) back through the parser, so
/// that a key added to the grammar is known here with no list to keep.
pub fn universe() -> &'static [Key] {
    static KEYS: OnceLock<Vec<Key>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys: Vec<Key> = Vec::new();
        for rule in crate::diagram::rules() {
            for alternative in &rule.alternatives {
                let words: Option<Vec<&str>> = alternative
                    .iter()
                    .map(|s| match s {
                        crate::diagram::Symbol::Terminal(t) if t != "=" && t != "{" && t != "}" => {
                            Some(t.as_str())
                        }
                        _ => None,
                    })
                    .collect();
                let Some(words) = words.filter(|w| !w.is_empty()) else {
                    continue;
                };
                if let Some(key) = crate::parser::key_of(&words.join(" ")) {
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
            }
        }
        keys
    })
}

/// Where `key` may stand, in words: "the tcprelay section", "a `remote` block".
fn places_of(key: Key) -> Vec<String> {
    let mut places = Vec::new();
    match key.role() {
        Role::Spawnd => places.push("the spawnd section".to_string()),
        Role::Tcprelay => places.push("the tcprelay section".to_string()),
        Role::Either => places.push("either section".to_string()),
        Role::Nested => {}
    }
    for block in universe() {
        if crate::check::block_keys(*block).is_some_and(|keys| keys.contains(&key)) {
            places.push(format!("a `{block}` block"));
        }
    }
    places
}

/// "a, b or c".
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The word at index `at` of each key's spelling that starts with the words
/// `prefix`.
fn words_at(keys: &[Key], prefix: &[&str], at: usize) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for key in keys {
        let words: Vec<&'static str> = key.spelling().split(' ').collect();
        if words.len() > at && words[..at] == *prefix && !out.contains(&words[at]) {
            out.push(words[at]);
        }
    }
    out
}

/// What to say about `word`, written where a directive's key (after the key words
/// `prefix`) was expected at `place`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Advice {
    /// "did you mean `X`?", X valid here.
    pub help: Option<String>,
    /// Where the word, or the key closest to it, is valid instead.
    pub note: Option<String>,
    /// The key words valid here at that position, to filter what the parser
    /// expected; `None` when the place does not say.
    pub valid_words: Option<Vec<&'static str>>,
}

/// Suggestions for `word` at `place`: the closest key word valid here (never `word`
/// itself); else, when `word` or a word close to it is a key valid only elsewhere,
/// where that one belongs.
pub fn advise(word: &str, prefix: &[&str], place: Place) -> Advice {
    let Some(here) = place.keys() else {
        return Advice::default();
    };
    let at = prefix.len();
    let valid = words_at(&here, prefix, at);
    let mut advice = Advice {
        valid_words: Some(valid.clone()),
        ..Advice::default()
    };
    if valid.contains(&word) {
        // The word is right; what follows it is not.
        return advice;
    }
    if let Some(fix) = closest(word, valid.iter().copied()) {
        advice.help = Some(format!("did you mean `{}`?", join(prefix, fix)));
        return advice;
    }
    let elsewhere: Vec<Key> = universe()
        .iter()
        .copied()
        .filter(|k| !here.contains(k))
        .collect();
    let others = words_at(&elsewhere, prefix, at);
    let found = if others.contains(&word) {
        Some(word)
    } else {
        closest(word, others.iter().copied())
    };
    if let Some(other) = found {
        let mut places: Vec<String> = Vec::new();
        for key in &elsewhere {
            let words: Vec<&str> = key.spelling().split(' ').collect();
            if words.len() > at && words[..at] == *prefix && words[at] == other {
                for p in places_of(*key) {
                    if !places.contains(&p) {
                        places.push(p);
                    }
                }
            }
        }
        if !places.is_empty() {
            let which = if other == word {
                format!("`{}` is valid", join(prefix, other))
            } else {
                format!("the closest key, `{}`, is valid", join(prefix, other))
            };
            advice.note = Some(format!(
                "{which} only in {}, not in {}",
                or_list(&places),
                place.describe()
            ));
        }
    }
    advice
}

fn join(prefix: &[&str], word: &str) -> String {
    let mut words = prefix.to_vec();
    words.push(word);
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("address", "address"), 0);
        assert_eq!(distance("prot", "port"), 1);
    }

    #[test]
    fn suggests_the_nearest_plausible_keyword() {
        let kws = ["address", "port", "protocol", "weight"];
        assert_eq!(closest("adress", kws), Some("address"));
        assert_eq!(closest("prot", kws), Some("port"));
        assert_eq!(closest("banana", kws), None);
    }

    const SPAWND: Place = Place::Section {
        spawnd: true,
        tcprelay: false,
    };

    #[test]
    fn the_universe_holds_every_kind_of_key() {
        let keys = universe();
        for key in [
            Key::Listen,
            Key::Remote,
            Key::Weight,
            Key::TlsCertFile,
            Key::KeepaliveIdle,
            Key::ExpectRegex,
            Key::SyslogIdent,
            Key::BindRetryDelay,
        ] {
            assert!(keys.contains(&key), "{key:?} missing from {keys:?}");
        }
    }

    #[test]
    fn advice_suggests_only_keys_valid_at_the_place() {
        // Valid here: a plain "did you mean".
        let a = advise("lsten", &[], SPAWND);
        assert_eq!(a.help.as_deref(), Some("did you mean `listen`?"));
        // `rebalance` is the tcprelay section's: not suggested in spawnd's, named
        // with where it belongs.
        let a = advise("rebalanse", &[], SPAWND);
        assert_eq!(a.help, None);
        assert_eq!(
            a.note.as_deref(),
            Some("the closest key, `rebalance`, is valid only in the tcprelay section, not in the spawnd section")
        );
        // `weight` is a remote's, not a listener's, even written right.
        let a = advise("weight", &[], Place::Block(Key::Listen));
        assert_eq!(a.help, None);
        assert_eq!(
            a.note.as_deref(),
            Some("`weight` is valid only in a `remote` block, not in a `listen` block")
        );
        // Never the word written: `port` is valid in a listener, so nothing is said.
        assert_eq!(advise("port", &[], Place::Block(Key::Listen)).help, None);
        // After the key's first words, the next word of the keys that start so.
        let a = advise(
            "certfiel",
            &["tls"],
            Place::Section {
                spawnd: false,
                tcprelay: true,
            },
        );
        assert_eq!(a.help.as_deref(), Some("did you mean `tls certfile`?"));
        // Nothing close anywhere: nothing said.
        assert_eq!(
            advise("banana", &[], SPAWND),
            Advice {
                valid_words: advise("banana", &[], SPAWND).valid_words,
                ..Advice::default()
            }
        );
    }
}
