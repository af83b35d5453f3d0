use super::*;
use crate::diag::{Code, Severity};
use crate::diagram::Symbol;
use std::collections::BTreeSet;
use std::path::PathBuf;

/// The keywords at the start of a code span: `tcp keepalive idle = N` gives `tcp
/// keepalive idle`, `IP` gives nothing.
fn key_words(span: &str) -> String {
    span.split_whitespace()
        .take_while(|w| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '-' || c == '.')
                && *w != "-"
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The code spans of a cell.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// Every spelling of a directive the grammar accepts, as its keywords.
fn grammar_spellings() -> BTreeSet<String> {
    let rules = diagram::rules();
    let rule = |name: &str| {
        rules
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no rule {name}"))
    };
    fn spell(rules: &dyn Fn(&str) -> Vec<Vec<Symbol>>, name: &str, out: &mut BTreeSet<String>) {
        for alternative in rules(name) {
            match alternative.as_slice() {
                [Symbol::NonTerminal(inner)] => spell(rules, inner, out),
                symbols => {
                    let words: Vec<&str> = symbols
                        .iter()
                        .map(|s| match s {
                            Symbol::Terminal(t) => t.as_str(),
                            other => panic!("{name}: a key with {other:?}"),
                        })
                        .collect();
                    out.insert(words.join(" "));
                }
            }
        }
    }
    let alternatives = |name: &str| rule(name).alternatives.clone();
    let mut out = BTreeSet::new();
    for name in [
        "BlockKey",
        "ItemKey",
        "SpawnKey",
        "SectionKey",
        "ControlKey",
        "CheckKey",
        "CommonKey",
        "DebugKey",
        "AliasKey",
        "BufsizeKey",
    ] {
        spell(&alternatives, name, &mut out);
    }
    // The directives that are rules of their own.
    for (name, word) in [("Setenv", "setenv"), ("SectionItem", "id"), ("Acl", "acl")] {
        assert!(
            matches!(rule(name).alternatives[0].first(), Some(Symbol::Terminal(t)) if t == word),
            "{name} starts with `{word}`"
        );
        out.insert(word.to_string());
    }
    // `permit NET` and `deny NET` start with the rule that tells them apart.
    assert!(matches!(
        rule("AclRule").alternatives[0].first(),
        Some(Symbol::NonTerminal(n)) if n == "AclAction"
    ));
    for alternative in rule("AclAction").alternatives.clone() {
        let [Symbol::Terminal(word)] = alternative.as_slice() else {
            panic!("AclAction: {alternative:?}");
        };
        out.insert(word.clone());
    }
    out
}

#[test]
fn every_spelling_the_grammar_accepts_has_a_row() {
    let documented: BTreeSet<String> = directives()
        .iter()
        .flat_map(|d| code_spans(&d.directive).into_iter().map(key_words))
        .filter(|k| !k.is_empty())
        .collect();
    let spellings = grammar_spellings();
    assert!(spellings.len() > 50, "{spellings:?}");
    let missing: Vec<&String> = spellings.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "directives without a row in docs/language.md: {missing:?}"
    );
    let unknown: Vec<&String> = documented.difference(&spellings).collect();
    assert!(
        unknown.is_empty(),
        "rows of docs/language.md the grammar does not accept: {unknown:?}"
    );
}

/// A configuration that checks clean, with `example` added where its role says.
fn with_example(d: &Directive, example: &str) -> String {
    let (mut top, mut spawnd, mut relay) = (String::new(), String::new(), String::new());
    match d.role {
        Role::TopLevel => top = example.to_string(),
        Role::Spawnd => spawnd = example.to_string(),
        Role::Tcprelay => relay = example.to_string(),
    }
    // A TLS listener needs a certificate; an absent one is only a warning.
    if ["tls = yes", "tls = TLSv", "tls = auto"]
        .iter()
        .any(|on| example.contains(on))
    {
        relay.push_str("\n  tls cert-file = /nonexistent/tcprelay/cert.pem");
    }
    // Routes by SNI route the clients of a TLS listener.
    if example.contains("route = {") {
        spawnd.push_str("\n  listen = { address = 127.0.0.1 port = 18443 tls = yes }");
        relay.push_str("\n  tls cert-file = /nonexistent/tcprelay/cert.pem");
    }
    format!(
        "{top}\nid = spawnd {{\n  listen = {{ address = 127.0.0.1 port = 18080 }}\n  {spawnd}\n}}\n\
         id = tcprelay {{\n  remote = {{ address = 127.0.0.1 port = 9000 }}\n  {relay}\n}}\n"
    )
}

/// Each example compiles in its section without an error, and shows its row's
/// directive. Warnings are allowed where the row is about them: deprecated spellings
/// (E0040), directives without effect (E0041), and certificates absent on this machine
/// (E0033) or not used by a listener (E0043).
#[test]
fn every_example_compiles_in_its_section() {
    let rows = directives();
    assert!(rows.len() > 40, "{} rows", rows.len());
    let allowed = [
        Code::CertificateUnreadable,
        Code::Deprecated,
        Code::Ignored,
        Code::TlsUnused,
    ];
    let mut failures = Vec::new();
    for d in &rows {
        let examples = code_spans(&d.example);
        let [example] = examples.as_slice() else {
            failures.push(format!(
                "{}: one example in backticks: {}",
                d.directive, d.example
            ));
            continue;
        };
        let keys: Vec<String> = code_spans(&d.directive)
            .into_iter()
            .map(key_words)
            .filter(|k| !k.is_empty())
            .collect();
        if !keys.iter().any(|k| example.contains(k.as_str())) {
            failures.push(format!("{example}: does not show any of {keys:?}"));
        }
        let src = with_example(d, example);
        let (plan, diags) = crate::compile(&src, "example.cfg", &crate::Selection::default());
        let unexpected: Vec<String> = diags
            .iter()
            .filter(|x| x.severity == Severity::Error || !allowed.contains(&x.code))
            .map(|x| format!("{}: {}", x.code, x.message))
            .collect();
        if plan.is_none() || !unexpected.is_empty() {
            failures.push(format!("{example} ({}): {unexpected:?}", d.heading));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_row_has_a_default_and_a_value() {
    for d in directives() {
        assert!(!d.value.is_empty(), "{}: no value", d.directive);
        assert!(!d.default.is_empty(), "{}: no default", d.directive);
    }
}

#[test]
fn the_grammar_links_name_rules_and_headings_that_exist() {
    let names: BTreeSet<String> = diagram::rules().into_iter().map(|r| r.name).collect();
    let headings: BTreeSet<String> = blocks(LANGUAGE)
        .into_iter()
        .filter_map(|b| match b {
            Block::Heading(_, title) => Some(title),
            _ => None,
        })
        .collect();
    for (heading, rules) in GRAMMAR_OF {
        assert!(headings.contains(*heading), "no heading `{heading}`");
        for rule in *rules {
            assert!(names.contains(*rule), "no rule `{rule}`");
        }
    }
}

#[test]
fn the_page_has_every_diagram_and_no_external_resource() {
    let page = html();
    for rule in diagram::rules() {
        let section = format!("<section class=\"rule\" id=\"rule-{}\">", rule.name);
        assert_eq!(page.matches(&section).count(), 1, "{}", rule.name);
    }
    assert_eq!(
        page.matches("<svg ").count(),
        diagram::rules().len(),
        "one SVG per rule"
    );
    for external in ["src=", "<link", "@import", "url(", "http://", "https://"] {
        let outside_svg_namespaces = page
            .replace("xmlns=\"http://www.w3.org/2000/svg\"", "")
            .replace("xmlns:xlink=\"http://www.w3.org/1999/xlink\"", "");
        assert!(
            !outside_svg_namespaces.contains(external),
            "external resource: {external}"
        );
    }
    // Every Markdown construct was converted: no backtick or link syntax is left in
    // the text (code blocks may hold anything).
    let text: String = page
        .split("<pre>")
        .map(|part| part.split_once("</pre>").map_or(part, |(_, after)| after))
        .collect();
    assert!(!text.contains('`'), "a backtick left");
    assert!(!text.contains("]("), "a link left");
    // An installed system has this page and the man pages only: no link leaves the
    // page, no paragraph about the source tree, no developer footer.
    for href in page.split(" href=\"").skip(1) {
        assert!(
            href.starts_with('#'),
            "a link out of the page: {}",
            &href[..40.min(href.len())]
        );
    }
    assert!(
        !page.contains("In the source tree"),
        "a source-tree paragraph"
    );
    for word in [".md", "<footer", "docs/", "cargo ", "grammar/"] {
        assert!(!page.contains(word), "{word}");
    }
    for code in Code::ALL {
        assert!(
            page.contains(&format!("<code>{}</code>", code.as_str())),
            "{code:?}"
        );
    }
    for d in directives() {
        let id = markdown::slug(&d.heading);
        assert!(page.contains(&format!("id=\"{id}\"")), "no anchor {id}");
    }
}

#[test]
fn output_is_deterministic() {
    assert_eq!(html(), html());
}

/// `docs/manual/index.html` is what [`html`] gives now.
/// `TCPRELAY_BLESS=1 cargo test -p tcprelay-cc --lib manual` rewrites it.
#[test]
fn docs_copy_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/manual/index.html");
    let want = html();
    if std::env::var_os("TCPRELAY_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("docs/manual");
        std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/manual/index.html is out of date; refresh it with \
         `TCPRELAY_BLESS=1 cargo test -p tcprelay-cc --lib manual`"
    );
}

/// The man page `tcprelay.conf(5)`: every directive's spellings, as the HTML page
/// has them, every diagnostic code, no Markdown left, nothing about the source tree;
/// and groff renders it without a warning.
#[test]
fn man_page_has_every_directive_and_renders_cleanly() {
    let page = man_page();
    assert!(page.starts_with(".TH tcprelay.conf 5 "), "{}", &page[..80]);
    let plain = page
        .replace("\\-", "-")
        .replace("\\fB", "")
        .replace("\\fR", "");
    for d in directives() {
        for span in code_spans(&d.directive) {
            let words = key_words(span);
            assert!(plain.contains(&words), "{}: {words}", d.directive);
        }
    }
    for code in Code::ALL {
        assert!(
            page.contains(&format!(".B {}\n", code.as_str())),
            "{code:?}"
        );
    }
    assert!(!page.contains('`'), "a backtick left");
    assert!(!page.contains("]("), "a link left");
    for word in ["In the source tree", ".md", "docs/", "manual/index.html"] {
        assert!(!page.contains(word), "{word}");
    }
    let mut groff = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-P", "-cbou"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("groff runs (apt-get install groff-base)");
    let mut stdin = groff.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin
            .write_all(page.as_bytes())
            .expect("groff reads the page");
    });
    let out = groff.wait_with_output().expect("groff finishes");
    writer.join().expect("the page was written");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && warnings.trim().is_empty(),
        "{warnings}"
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    for heading in ["LEXICAL STRUCTURE", "TOP LEVEL", "DIAGNOSTICS", "SEE ALSO"] {
        assert!(shown.contains(heading), "{heading}:\n{shown}");
    }
}

/// `docs/man/tcprelay.conf.5` is what [`man_page`] gives now; the bless variable
/// rewrites it as it does the HTML page.
#[test]
fn man_page_copy_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/man")
        .join(man_page_file());
    let want = man_page();
    if std::env::var_os("TCPRELAY_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is out of date; refresh it with \
         `TCPRELAY_BLESS=1 cargo test -p tcprelay-cc --lib manual`",
        path.display()
    );
}
