use super::*;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn rule<'a>(rules: &'a [Rule], name: &str) -> &'a Rule {
    rules
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no rule `{name}`"))
}

fn t(text: &str) -> Symbol {
    Symbol::Terminal(text.to_string())
}

fn nt(name: &str) -> Symbol {
    Symbol::NonTerminal(name.to_string())
}

/// Every terminal a symbol draws.
fn terminals(symbol: &Symbol, out: &mut BTreeSet<String>) {
    match symbol {
        Symbol::Terminal(text) => {
            out.insert(text.clone());
        }
        Symbol::Token(_) | Symbol::NonTerminal(_) => {}
        Symbol::Sequence(symbols) => symbols.iter().for_each(|s| terminals(s, out)),
        Symbol::Choice(alternatives) => alternatives
            .iter()
            .flatten()
            .for_each(|s| terminals(s, out)),
        Symbol::Optional(inner) | Symbol::ZeroOrMore(inner) | Symbol::OneOrMore(inner) => {
            terminals(inner, out)
        }
    }
}

#[test]
fn finds_every_drawn_rule() {
    let names: BTreeSet<String> = rules().into_iter().map(|r| r.name).collect();
    for name in [
        "Config",
        "TopItem",
        "Setenv",
        "SectionItem",
        "SectionDirective",
        "BlockKey",
        "BlockItem",
        "ItemKey",
        "SpawnKey",
        "BareAddress",
        "SectionKey",
        "Keepalive",
        "Syslog",
        "TlsKey",
        "Acl",
        "AclAction",
        "Value",
        "Keyword",
    ] {
        assert!(names.contains(name), "`{name}` is not drawn: {names:?}");
    }
    for helper in ["_Items", "_Item", "Sp"] {
        assert!(!names.contains(helper), "the helper `{helper}` is drawn");
    }
}

#[test]
fn rules_are_in_grammar_order() {
    let names: Vec<String> = rules().into_iter().map(|r| r.name).collect();
    assert_eq!(names.first().map(String::as_str), Some("Config"));
    assert_eq!(names.last().map(String::as_str), Some("Keyword"));
}

#[test]
fn every_extern_keyword_is_drawn() {
    let grammar = grammar::parse(GRAMMAR).expect("the grammar reads");
    assert!(grammar.terminals.len() > 60, "{:?}", grammar.terminals);
    assert_eq!(grammar.token_names, ["Word", "QuotedString"]);
    let mut drawn = BTreeSet::new();
    for rule in rules() {
        rule.alternatives
            .iter()
            .flatten()
            .for_each(|s| terminals(s, &mut drawn));
    }
    let missing: Vec<&String> = grammar
        .terminals
        .iter()
        .filter(|t| !["=", "{", "}"].contains(&t.as_str()) && !drawn.contains(*t))
        .collect();
    assert!(missing.is_empty(), "keywords in no diagram: {missing:?}");
}

#[test]
fn span_macro_is_transparent_and_item_lists_repeat() {
    let rules = rules();
    assert_eq!(
        rule(&rules, "SectionItem").alternatives,
        [vec![
            t("id"),
            Symbol::Optional(Box::new(t("="))),
            nt("Value"),
            t("{"),
            Symbol::ZeroOrMore(Box::new(nt("SectionDirective"))),
            t("}"),
        ]]
    );
    assert_eq!(
        rule(&rules, "BareAddress").alternatives,
        [
            vec![Symbol::Token("word".to_string())],
            vec![Symbol::Token("\"string\"".to_string())]
        ]
    );
    assert_eq!(
        rule(&rules, "Config").alternatives,
        [vec![Symbol::ZeroOrMore(Box::new(nt("TopItem")))]]
    );
}

#[test]
fn error_only_alternative_is_dropped() {
    let rules = rules();
    assert_eq!(
        rule(&rules, "TopItem").alternatives,
        [
            vec![nt("Setenv")],
            vec![nt("SectionItem")],
            vec![nt("CommonDirective")]
        ]
    );
    let rules = parse_grammar(
        r#"A: () = {
            "a" => (),
            ! => (),
            <l:@L> <e:!> <r:@R> => { errors.push(e); },
            @L => (),
        };"#,
    )
    .expect("the grammar reads");
    assert_eq!(rules[0].alternatives, [vec![t("a")], vec![]]);
}

#[test]
fn nested_action_code_is_skipped() {
    let text = r##"
        // The first rule.
        A: X<'a> = {
            "a" <v:B> => {
                let s = "}";
                if v { X { c: '}', d: vec![1, 2] } } else { match v { _ => X::new("{,\"}") } }
            },
            "b" => f(a, (b, c), [d, e]), "c" => '{',
            "d" =>? Ok(r#"}"#.len()),
        };
        B: bool = "x" B? => true;
    "##;
    let rules = parse_grammar(text).expect("the grammar reads");
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0].name, "A");
    assert_eq!(rules[0].comment.as_deref(), Some("The first rule."));
    assert_eq!(
        rules[0].alternatives,
        [
            vec![t("a"), nt("B")],
            vec![t("b")],
            vec![t("c")],
            vec![t("d")]
        ]
    );
    assert_eq!(
        rules[1].alternatives,
        [vec![t("x"), Symbol::Optional(Box::new(nt("B")))]]
    );
}

#[test]
fn groups_repetition_and_macros_expand() {
    let text = r#"
        pub A: () = {
            ("a" B)+ "c"? <d:D*> Comma<"e"> _H => (),
        };
        Comma<T>: Vec<T> = { <v:(<T> ",")*> <e:T?> => v };
        _H: () = { "h" => (), "i" "j" => () };
    "#;
    let rules = parse_grammar(text).expect("the grammar reads");
    assert_eq!(rules.len(), 1);
    assert_eq!(
        rules[0].alternatives,
        [vec![
            Symbol::OneOrMore(Box::new(Symbol::Sequence(vec![t("a"), nt("B")]))),
            Symbol::Optional(Box::new(t("c"))),
            Symbol::ZeroOrMore(Box::new(nt("D"))),
            Symbol::ZeroOrMore(Box::new(Symbol::Sequence(vec![t("e"), t(",")]))),
            Symbol::Optional(Box::new(t("e"))),
            Symbol::Choice(vec![vec![t("h")], vec![t("i"), t("j")]]),
        ]]
    );
}

#[test]
fn comments_above_rules_become_captions() {
    let rules = rules();
    assert!(rule(&rules, "Config")
        .comment
        .as_deref()
        .is_some_and(|c| c.starts_with("A file:")));
    assert!(rule(&rules, "SectionDirective")
        .comment
        .as_deref()
        .is_some_and(|c| c.contains("depends on the role (spawnd or tcprelay)")));
    assert_eq!(rule(&rules, "BlockKey").comment, None);
}

#[test]
fn grammar_errors_name_the_line() {
    let err = parse_grammar("A: () = {\n  \"a\" ; \n};").expect_err("a `;` in a pattern");
    assert!(err.starts_with("line 2:"), "{err}");
    let err = parse_grammar("A: () = { X<\"a\"> => () };").expect_err("an undefined macro");
    assert!(err.contains("`X`"), "{err}");
    let err = parse_grammar("A: () = { \"a => () };").expect_err("an open string");
    assert!(err.contains("unterminated string"), "{err}");
}

#[test]
fn every_rule_svg_is_well_formed() {
    for rule in rules() {
        let svg = rule_svg(&rule);
        assert!(svg.starts_with("<svg"), "{}: {svg}", rule.name);
        assert!(svg.trim_end().ends_with("</svg>"), "{}: {svg}", rule.name);
        assert!(svg.contains(&format!("{}</title>", rule.name)));
        assert!(svg.contains("<style"), "{}: no styles", rule.name);
    }
    let all = svg();
    assert!(all.starts_with("<svg") && all.trim_end().ends_with("</svg>"));
    let page = html();
    assert!(page.contains("<title>tcprelay configuration language</title>"));
    for rule in rules() {
        let section = format!("<section id=\"rule-{0}\">\n<h2>{0}</h2>", rule.name);
        assert!(page.contains(&section), "no section for {}", rule.name);
        assert!(all.contains(&format!("<g id=\"rule-{}\">", rule.name)));
    }
    assert!(
        !page.contains("src=") && !page.contains("<link"),
        "external resources"
    );
}

#[test]
fn output_is_deterministic() {
    assert_eq!(svg(), svg());
    assert_eq!(html(), html());
}

/// `docs/grammar.svg` and `docs/grammar.html` are what `svg()` and `html()` draw now.
/// `TCPRELAY_BLESS=1 cargo test -p tcprelay-cc --lib diagram` rewrites them.
#[test]
fn docs_copy_is_current() {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let bless = std::env::var_os("TCPRELAY_BLESS").is_some_and(|v| v == "1");
    for (file, want) in [("grammar.svg", svg()), ("grammar.html", html())] {
        let path = docs.join(file);
        if bless {
            std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            continue;
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/{file} is out of date; refresh it with \
             `TCPRELAY_BLESS=1 cargo test -p tcprelay-cc --lib diagram`"
        );
    }
}
