//! Property tests: no input makes the compiler or the plan decoder panic, and plans
//! survive an encode/decode round trip unchanged.

use proptest::prelude::*;
use tcprelay_cc::Selection;

const VALID: &str = "#!/usr/local/sbin/spawnd\nsetenv IO_POLL_MECHANISM = 4\nid = spawnd {\n  listen = { address = 127.0.0.1 port = 8080 }\n  listen = { ::1 port = 8081 backlog = 64 }\n  spawn = { users min = 2 users max = 100 servers min = 1 servers max = 4 }\n  syslog facility = DAEMON\n}\nid = tcprelay {\n  remote = { address = 127.0.0.1 port = 9000 weight = 3 }\n  remote = { address = 127.0.0.2 port = 9000 }\n  rebalance = 100\n  retire = 5000\n  idle timeout = 60\n  local address = 127.0.0.1\n}\n";

fn valid_plan() -> tcprelay_plan::Plan {
    let (plan, diags) = tcprelay_cc::compile(VALID, "valid.cfg", &Selection::default());
    plan.unwrap_or_else(|| panic!("the sample compiles: {diags:#?}"))
}

/// Applies byte-level edits (delete, insert, replace) to `base`, keeping UTF-8.
fn mutate(base: &str, edits: &[(usize, u8, u8)]) -> String {
    let mut bytes = base.as_bytes().to_vec();
    for &(pos, op, byte) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let at = pos % bytes.len();
        match op % 3 {
            0 => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, byte),
            _ => bytes[at] = byte,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics_the_compiler(src in "\\PC{0,300}") {
        let _ = tcprelay_cc::compile(&src, "r.cfg", &Selection::default());
    }

    #[test]
    fn token_soup_never_panics_the_compiler(
        words in proptest::collection::vec(
            prop_oneof![
                Just("id"), Just("="), Just("{"), Just("}"), Just("listen"), Just("remote"),
                Just("port"), Just("address"), Just("tls"), Just("spawn"), Just("users"),
                Just("max"), Just("\""), Just("1.2.3.4"), Just("80"), Just("#"), Just("\n"),
                Just("setenv"), Just("acl"), Just("permit"), Just("not"), Just("ssl"),
                Just("cert"), Just("spawnd"), Just("tcprelay"), Just("::"),
            ],
            0..120,
        )
    ) {
        let src = words.join(" ");
        let (plan, diags) = tcprelay_cc::compile(&src, "soup.cfg", &Selection::default());
        // Either a plan or at least one error, never neither.
        prop_assert!(plan.is_some() || diags.iter().any(|d| d.is_error()));
    }

    #[test]
    fn mutated_valid_config_never_panics_and_spans_stay_in_bounds(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8)
    ) {
        let src = mutate(VALID, &edits);
        let (_, diags) = tcprelay_cc::compile(&src, "m.cfg", &Selection::default());
        for d in &diags {
            prop_assert!(d.span.start <= d.span.end && d.span.end <= src.len(), "{d:?}");
        }
        // Rendering every format must not panic either.
        let _ = tcprelay_cc::diag::render::human(&diags, "m.cfg", &src, false);
        let _ = tcprelay_cc::diag::render::json(&diags, "m.cfg", &src);
    }

    #[test]
    fn random_bytes_never_panic_the_plan_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = tcprelay_plan::decode(&bytes);
    }

    #[test]
    fn mutated_plans_are_refused_or_valid_never_a_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)
    ) {
        let mut bytes = tcprelay_plan::encode(&valid_plan(), "test");
        for (pos, byte) in edits {
            let at = pos % bytes.len();
            bytes[at] = byte;
        }
        if let Ok((_, plan)) = tcprelay_plan::decode(&bytes) {
            let _ = plan.validate();
        }
    }
}

#[test]
fn plan_round_trips_through_the_file_format() {
    let plan = valid_plan();
    let bytes = tcprelay_plan::encode(&plan, tcprelay_cc::VERSION);
    let (header, back) = tcprelay_plan::decode(&bytes).expect("decodes");
    assert_eq!(back, plan);
    assert_eq!(header.compiler_version, tcprelay_cc::VERSION);
    assert!(!header.has_secret);
    assert_eq!(
        plan.env,
        vec![("IO_POLL_MECHANISM".to_string(), "4".to_string())]
    );
    assert_eq!(plan.spawnd.listeners.len(), 2);
    assert_eq!(plan.relay.remotes[0].weight, 3);
    assert_eq!(plan.relay.rebalance, Some(100));
}

/// The pieces of the secret the generated configurations hold; none may be printed.
const SECRET_PIECES: [&str; 5] = ["S3cr3t", "Pa55", "Zq9w8", "Xy7q", "Kk3j"];

/// Every spelling of a directive that holds a secret: the right ones, misspellings
/// (by one or two edits, in other cases, split), and other words for a secret.
const SECRET_KEYS: [&str; 16] = [
    "tls passphrase",
    "ssl passphrase",
    "passphrase",
    "tls passphrse",
    "ssl pasphrase",
    "tls passphase",
    "tls paspharse",
    "TLS PASSPHRASE",
    "tls pass-phrase",
    "tls passwd",
    "tls password",
    "ssl pwd",
    "tls secret",
    "tls passwort",
    "ssl frase",
    "tls\tpassphrase",
];

/// The secret as written: bare, quoted, with spaces, quotes and braces.
const SECRET_VALUES: [&str; 6] = [
    "S3cr3t-Pa55",
    "\"S3cr3t-Pa55\"",
    "\"S3cr3t-Pa55 Zq9w8 \\\"Xy7q\\\" {Kk3j}\"",
    "S3cr3t-Pa55}Zq9w8",
    "{S3cr3t-Pa55}",
    "'S3cr3t Pa55'",
];

/// How the directive is written around the key `k` and the value `v`.
fn secret_forms(k: &str, v: &str) -> Vec<String> {
    vec![
        format!("{k} = {v}"),
        format!("{k} {v}"),
        format!("{k}={v} Zq9w8 junk"),
        format!("{k} =\n    {v}"),
        format!("{k}\n    = {v}"),
        format!("{k} = \"{v}"),
        format!("{k} = {v} # Xy7q"),
        format!("{k} = {v}\u{1}Kk3j"),
    ]
}

/// Where the directive `d` is put: in its section, in the wrong one, in a block,
/// outside any section, at the start or end of the file, after a line whose quote is
/// never closed, all on one line, in a TLS remote.
fn secret_contexts(d: &str) -> Vec<String> {
    let relay = "id = tcprelay {\n  remote = { address = 127.0.0.1 port = 22 }\n";
    let spawnd = "id = spawnd {\n  listen = { port = 2222 }\n}\n";
    vec![
        format!("{spawnd}{relay}  {d}\n}}\n"),
        format!("id = spawnd {{\n  listen = {{ port = 2222 }}\n  {d}\n}}\n{relay}}}\n"),
        format!(
            "{spawnd}id = tcprelay {{\n  remote = {{ address = 127.0.0.1 port = 22 {d} }}\n}}\n"
        ),
        format!("id = spawnd {{\n  listen = {{ port = 2222\n    {d}\n  }}\n}}\n{relay}}}\n"),
        format!("{d}\n{spawnd}{relay}}}\n"),
        format!("{spawnd}{relay}  tls cert-file = \"/etc/tcprelay/cert.pem\n  {d}\n}}\n"),
        format!("{spawnd}{relay}  {d}"),
        format!("{spawnd}{relay}  {d}\n  tls key-file = \"/k.pem\n}}\n"),
        format!("id = spawnd {{ listen = {{ port = 2222 }} }} id = tcprelay {{ {d} }}"),
        format!("{spawnd}{relay}  tls cert-file = /c.pem\n  tls key-file = /k.pem\n  {d}\n}}\n"),
        // The client key of a TLS remote (issue 15), over several lines.
        format!(
            "{spawnd}id = tcprelay {{\n  remote = {{ address = 127.0.0.1 port = 22 tls = yes tls verify = no\n    tls cert-file = /c.pem\n    {d}\n  }}\n}}\n"
        ),
    ]
}

/// Malformed variants around every secret-bearing directive, checked by the library
/// and rendered in every format: no piece of the secret is ever printed, in the
/// source lines, the messages, labels, notes or help.
#[test]
fn no_variant_of_a_secret_directive_prints_the_secret() {
    let (mut cases, mut with_output) = (0, 0);
    for (i, key) in SECRET_KEYS.iter().enumerate() {
        for (j, form) in secret_forms(key, "{value}").iter().enumerate() {
            for (c, context) in secret_contexts(form).iter().enumerate() {
                let value = SECRET_VALUES[(i + j + c) % SECRET_VALUES.len()];
                let src = context.replace("{value}", value);
                let (_, diags) = tcprelay_cc::compile(&src, "s.cfg", &Selection::default());
                cases += 1;
                with_output += usize::from(!diags.is_empty());
                for (format, out) in [
                    (
                        "human",
                        tcprelay_cc::diag::render::human(&diags, "s.cfg", &src, false),
                    ),
                    (
                        "color",
                        tcprelay_cc::diag::render::human(&diags, "s.cfg", &src, true),
                    ),
                    (
                        "short",
                        tcprelay_cc::diag::render::short(&diags, "s.cfg", &src),
                    ),
                    (
                        "json",
                        tcprelay_cc::diag::render::json(&diags, "s.cfg", &src),
                    ),
                ] {
                    for piece in SECRET_PIECES {
                        assert!(
                            !out.contains(piece),
                            "{format} output shows {piece:?} for\n{src}\n---\n{out}"
                        );
                    }
                }
            }
        }
    }
    assert_eq!(cases, 16 * 8 * 11);
    // Nearly every variant is reported on: the test looks at real diagnostics.
    assert!(with_output * 10 >= cases * 9, "{with_output} of {cases}");
}

/// The places between directives of a configuration: where each top-level item and
/// each directive of a selected section (at any depth) starts and ends.
fn directive_boundaries(src: &str, selection: &Selection) -> Vec<usize> {
    use tcprelay_cc::ast::{Body, Directive, Item, Sp};
    fn walk(body: &[Sp<Directive>], out: &mut Vec<usize>) {
        for d in body {
            out.push(d.span.start);
            out.push(d.span.end);
            if let Body::Block(items) = &d.node.body {
                walk(items, out);
            }
        }
    }
    let (file, diags) = tcprelay_cc::parse(src, selection);
    assert!(diags.is_empty(), "{diags:#?}");
    let file = file.expect("a file");
    let mut out = vec![src.len()];
    for item in &file.items {
        out.push(item.span.start);
        out.push(item.span.end);
        if let Item::Section(section) = &item.node {
            walk(&section.body, &mut out);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The corpus files whose verdict is `ok`, with their selection and boundaries.
fn valid_corpus() -> Vec<(String, String, Selection, Vec<usize>)> {
    crate::corpus::manifest()
        .into_iter()
        .filter(|e| e.errors.is_empty() && e.gap.is_none())
        .map(|e| {
            let text = e.text();
            let selection = e.selection();
            let boundaries = directive_boundaries(&text, &selection);
            (e.file.clone(), text, selection, boundaries)
        })
        .collect()
}

/// The errors of `src` with `word` put in at byte `at` (with a space each side).
fn errors_with(src: &str, at: usize, word: &str, selection: &Selection) -> (String, Vec<String>) {
    let edited = format!("{} {word} {}", &src[..at], &src[at..]);
    let (_, diags) = tcprelay_cc::compile(&edited, "corpus.cfg", selection);
    let errors = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{} at {}: {}", d.code, d.span.start, d.message))
        .collect();
    (edited, errors)
}

/// One unknown word at every directive boundary of every valid corpus file is one
/// error: recovery resumes after it, and nothing is reported as its consequence.
#[test]
fn an_unknown_word_at_any_directive_boundary_of_the_corpus_is_one_error() {
    let corpus = valid_corpus();
    assert!(corpus.len() >= 8, "{} valid corpus files", corpus.len());
    let mut tried = 0;
    for (file, src, selection, boundaries) in &corpus {
        for &at in boundaries {
            let (edited, errors) = errors_with(src, at, "zqfrob", selection);
            assert_eq!(
                errors.len(),
                1,
                "{file} at byte {at}: {errors:#?}\n{edited}"
            );
            tried += 1;
        }
    }
    assert!(tried > 150, "{tried} places tried");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The same with other words: misspellings of keys (valid here, or elsewhere),
    /// and words like none.
    #[test]
    fn any_unknown_word_inserted_into_a_valid_corpus_file_is_one_error(
        pick in any::<prop::sample::Index>(),
        place in any::<prop::sample::Index>(),
        word in prop_oneof![
            Just("lisen".to_string()),
            Just("wieght".to_string()),
            Just("tsl".to_string()),
            Just("rebalanse".to_string()),
            Just("adress".to_string()),
            "zq[a-z]{2,8}",
        ],
    ) {
        let corpus = valid_corpus();
        let (file, src, selection, boundaries) = &corpus[pick.index(corpus.len())];
        let at = boundaries[place.index(boundaries.len())];
        let (edited, errors) = errors_with(src, at, &word, selection);
        prop_assert_eq!(errors.len(), 1, "{} at byte {}: {:#?}\n{}", file, at, errors, edited);
    }
}
