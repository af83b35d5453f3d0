//! The generated references of the command line: the man pages `docs/man/tcprelay-cc*.1`
//! and the shell completions in `docs/completions/`, made from [`super::command`] with
//! `clap_mangen` and `clap_complete` (development dependencies only: the program does
//! not carry its generators).
//!
//! The tests check that the committed files are what the definition gives now;
//! `TCPRELAY_BLESS=1 cargo test -p tcprelay-cc --lib cli` rewrites them. The runtime's
//! page, `docs/man/tcprelay.1`, and completions are generated the same way by
//! `runtime/src/args/reference.rs`.

use clap_complete::aot::{generate, Shell};
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The man section of every page.
const SECTION: &str = "1";
/// The manual the pages belong to (the centre of the page header).
pub(crate) const MANUAL: &str = "tcprelay manual";

/// The `.TH` line every page of `docs/man/` starts with: the name, the section, no
/// date (the version is the date of a generated page), the source `tcprelay VERSION`
/// and [`MANUAL`]. `tcprelay.conf(5)` (from [`crate::manual`]) and the runtime's page
/// write the same line; [`pages_share_one_header_and_name_no_source_tree`] checks it.
pub(crate) fn title(name: &str, section: &str) -> String {
    format!(
        ".TH {name} {section} \"\" \"tcprelay {}\" \"{MANUAL}\"\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `-s|--long VALUE` (or a positional's `VALUE`) as roff, bracketed when optional: a
/// value with a fixed set of choices is shown as the choices, `human|short|json`.
fn synopsis_arg(arg: &clap::Arg) -> String {
    let mut text = String::new();
    if arg.is_positional() {
        let name = arg
            .get_value_names()
            .and_then(|names| names.first())
            .map_or_else(
                || arg.get_id().to_string().to_uppercase(),
                |n| n.to_string(),
            );
        text.push_str(&format!("\\fI{name}\\fR"));
    } else {
        let mut names = Vec::new();
        if let Some(short) = arg.get_short() {
            names.push(format!("\\fB\\-{short}\\fR"));
        }
        if let Some(long) = arg.get_long() {
            names.push(format!("\\fB\\-\\-{}\\fR", long.replace('-', "\\-")));
        }
        text.push_str(&names.join("|"));
        if arg.get_action().takes_values() {
            let choices: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| format!("\\fI{}\\fR", v.get_name()))
                .collect();
            let value = if choices.is_empty() {
                let name = arg
                    .get_value_names()
                    .and_then(|names| names.first())
                    .map_or_else(
                        || arg.get_id().to_string().to_uppercase(),
                        |n| n.to_string(),
                    );
                format!("\\fI{name}\\fR")
            } else {
                choices.join("|")
            };
            text.push(' ');
            text.push_str(&value);
        }
    }
    if arg.is_required_set() {
        text
    } else {
        format!("[{text}]")
    }
}

/// The SYNOPSIS section: the command and every argument with its value.
fn synopsis(cmd: &clap::Command, invocation: &str) -> String {
    let mut line = vec![format!("\\fB{}\\fR", invocation.replace('-', "\\-"))];
    line.extend(
        cmd.get_arguments()
            .filter(|a| !a.is_hide_set() && !a.is_positional())
            .map(synopsis_arg),
    );
    line.extend(
        cmd.get_positionals()
            .filter(|a| !a.is_hide_set())
            .map(synopsis_arg),
    );
    if cmd.has_subcommands() {
        let subs: Vec<String> = cmd
            .get_subcommands()
            .map(|s| format!("\\fB{}\\fR", s.get_name()))
            .collect();
        line.push(format!("{} ...", subs.join("|")));
    }
    format!(".SH SYNOPSIS\n{}\n", line.join(" "))
}

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn bless() -> bool {
    std::env::var_os("TCPRELAY_BLESS").is_some_and(|v| v == "1")
}

/// The exit status section of every page but those of the commands whose status
/// says something else ([`DIFF_STATUS`], [`ROUTE_STATUS`]).
fn exit_status(roff: &mut Roff) {
    exit_rows(roff, &COMMON_STATUS);
}

/// `tcprelay-cc diff`'s exit status, which deploy scripts gate on.
const DIFF_STATUS: [(&str, &str); 3] = [
    ("0", "No change: a reload from OLD to NEW would change nothing."),
    ("1", "Changes: the report lists them."),
    (
        "2",
        "Errors: a usage error, an input that cannot be read, a configuration with errors, a plan that does not decode, or no answer from the running relay (--running).",
    ),
];

/// `tcprelay-cc route`'s exit status.
const ROUTE_STATUS: [(&str, &str); 3] = [
    ("0", "A remote would be tried: the client is relayed."),
    (
        "1",
        "The client is refused: no listener takes the connection, the PROXY header's sender is not trusted, or the access rules deny the client.",
    ),
    (
        "2",
        "Errors: a usage error, an input that cannot be read, a configuration with errors, or an argument the listener does not fit (a PROXY listener without --proxy-from).",
    ),
];

fn exit_rows(roff: &mut Roff, rows: &[(&str, &str)]) {
    roff.control("SH", ["EXIT STATUS"]);
    for &(code, meaning) in rows {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([roman(meaning)]);
    }
}

const COMMON_STATUS: [(&str, &str); 3] = [
        (
            "0",
            "No errors (warnings are allowed); the plan or diagram was written.",
        ),
        (
            "1",
            "The configuration has at least one error, or (explain) the plan file is bad.",
        ),
        (
            "2",
            "Usage error, or a file or URL could not be read (it does not exist, it is not a regular file) or written; tcprelay(1) exits 2 for a file it cannot read, too.",
        ),
];

fn see_also(roff: &mut Roff, pages: &[&str]) {
    roff.control("SH", ["SEE ALSO"]);
    let mut parts = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let (name, section) = page.split_once('(').unwrap_or((page, "1)"));
        parts.push(bold(name.to_string()));
        let sep = if i + 1 < pages.len() { ", " } else { "" };
        parts.push(roman(format!("({section}{sep}")));
    }
    roff.text(parts);
    roff.control("PP", []);
    roff.text([
        roman(
            "The configuration language, every directive with its default, and the \
               codes of the diagnostics: ",
        ),
        bold("tcprelay.conf"),
        roman(
            "(5); the same reference with railroad diagrams of the language is the \
               HTML manual installed beside these pages.",
        ),
    ]);
}

/// A page rendered from the definition, followed by the sections clap does not have.
/// `name` is the page's (`tcprelay-cc-check`), `invocation` how it is run
/// (`tcprelay-cc check`).
fn page(
    man: &Man,
    cmd: &clap::Command,
    [name, invocation]: [&str; 2],
    subcommands: bool,
    extra: impl FnOnce(&mut Roff),
) -> String {
    let mut out = title(name, SECTION).into_bytes();
    let rendered = (|| {
        man.render_name_section(&mut out)?;
        out.extend_from_slice(synopsis(cmd, invocation).as_bytes());
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
        if subcommands {
            man.render_subcommands_section(&mut out)?;
        }
        std::io::Result::Ok(())
    })();
    rendered.expect("rendering into a Vec does not fail");
    let mut roff = Roff::new();
    extra(&mut roff);
    out.extend_from_slice(roff.render().as_bytes());
    String::from_utf8(out).expect("roff is UTF-8")
}

/// Every generated file, by its path under `docs/`.
fn generated() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut cmd = super::command().disable_help_subcommand(true);
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let source = format!("tcprelay {version}");
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| format!("tcprelay-cc-{}(1)", s.get_name()))
        .collect();

    let top = Man::new(cmd.clone())
        .section(SECTION)
        .source(&source)
        .manual(MANUAL);
    let text = page(&top, &cmd, ["tcprelay-cc", "tcprelay-cc"], true, |roff| {
        roff.control("SH", ["ENVIRONMENT"]);
        roff.control("TP", []);
        roff.text([bold("NO_COLOR")]);
        roff.text([
            roman("When set, "),
            bold("--color auto"),
            roman(" does not colour diagnostics."),
        ]);
        exit_status(roff);
        roff.control("SH", ["EXAMPLES"]);
        roff.control("EX", []);
        for line in [
            "tcprelay-cc check /etc/tcprelay/relay.cfg",
            "tcprelay-cc check --format short /etc/tcprelay/relay.cfg",
            "tcprelay-cc compile /etc/tcprelay/relay.cfg -o relay.plan",
            "tcprelay-cc explain relay.plan",
            "tcprelay-cc diff relay.plan /etc/tcprelay/relay.cfg",
            "tcprelay-cc route relay.plan --from 192.0.2.7 --to 127.0.0.1:8080",
            "tcprelay-cc diagram -o grammar.html",
        ] {
            roff.text([roman(line)]);
        }
        roff.control("EE", []);
        let mut pages: Vec<&str> = names.iter().map(String::as_str).collect();
        pages.push("tcprelay(1)");
        pages.push("tcprelay.conf(5)");
        see_also(roff, &pages);
    });
    files.insert("man/tcprelay-cc.1".to_string(), text);

    for sub in cmd.get_subcommands() {
        let name = sub
            .get_display_name()
            .unwrap_or_else(|| sub.get_name())
            .to_string();
        let man = Man::new(sub.clone())
            .section(SECTION)
            .source(&source)
            .manual(MANUAL);
        let invocation = format!("tcprelay-cc {}", sub.get_name());
        let text = page(&man, sub, [&name, &invocation], false, |roff| {
            match sub.get_name() {
                "diff" => exit_rows(roff, &DIFF_STATUS),
                "route" => exit_rows(roff, &ROUTE_STATUS),
                _ => exit_status(roff),
            }
            see_also(roff, &["tcprelay-cc(1)", "tcprelay(1)", "tcprelay.conf(5)"]);
        });
        files.insert(format!("man/{name}.1"), text);
    }

    for (shell, file) in [
        (Shell::Bash, "completions/tcprelay-cc.bash"),
        (Shell::Zsh, "completions/_tcprelay-cc"),
        (Shell::Fish, "completions/tcprelay-cc.fish"),
    ] {
        let mut out = Vec::new();
        generate(shell, &mut super::command(), "tcprelay-cc", &mut out);
        let mut text = String::from_utf8(out).expect("completions are UTF-8");
        if shell == Shell::Bash {
            // clap_complete 4.6 spells the state of a subcommand of a hyphenated
            // program one way where it sets it (`tcprelay__cc__subcmd__check`) and
            // another where it matches it (`tcprelay__subcmd__cc__subcmd__check`), so
            // nothing after the subcommand completes (clap-rs/clap#6421). Spell both
            // the same; `bash_completes_subcommand_options` checks the result.
            text = text.replace("tcprelay__subcmd__cc", "tcprelay__cc");
        }
        files.insert(file.to_string(), text);
    }
    files
}

/// The committed man pages and completions are what the definition gives now, and no
/// page of a removed subcommand is left behind.
#[test]
fn man_pages_and_completions_are_current() {
    let docs = docs();
    let files = generated();
    let mut stale = Vec::new();
    for (name, want) in &files {
        let path = docs.join(name);
        if bless() {
            std::fs::create_dir_all(path.parent().expect("a parent"))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            std::fs::write(&path, want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else if std::fs::read_to_string(&path).ok().as_ref() != Some(want) {
            stale.push(name.clone());
        }
    }
    for entry in std::fs::read_dir(docs.join("man")).expect("docs/man") {
        let name = entry.expect("entry").file_name();
        let name = format!("man/{}", name.to_string_lossy());
        if name.starts_with("man/tcprelay-cc") && !files.contains_key(&name) {
            stale.push(format!("{name} (no such subcommand: delete it)"));
        }
    }
    assert!(
        stale.is_empty(),
        "out of date in docs/: {stale:?}; refresh with \
         `TCPRELAY_BLESS=1 cargo test -p tcprelay-cc --lib cli`"
    );
}

#[test]
fn pages_cover_every_subcommand_and_option() {
    let files = generated();
    let top = &files["man/tcprelay-cc.1"];
    for sub in super::command().get_subcommands() {
        let name = sub.get_name();
        assert!(
            top.contains(&format!("tcprelay\\-cc\\-{name}(1)")),
            "{name}"
        );
        let page = &files[&format!("man/tcprelay-cc-{name}.1")];
        let synopsis = page
            .split(".SH SYNOPSIS\n")
            .nth(1)
            .and_then(|rest| rest.lines().next())
            .expect("a SYNOPSIS");
        for arg in sub
            .get_arguments()
            .filter(|a| a.get_action().takes_values())
        {
            // The option's value is shown: its choices, or its name.
            let choices: Vec<String> = arg
                .get_possible_values()
                .iter()
                .map(|v| format!("\\fI{}\\fR", v.get_name()))
                .collect();
            let value = if choices.is_empty() {
                let names = arg.get_value_names().expect("a value name");
                format!("\\fI{}\\fR", names[0])
            } else {
                choices.join("|")
            };
            assert!(synopsis.contains(&value), "{name}: {value} in {synopsis}");
        }
        for arg in sub.get_arguments() {
            if let Some(long) = arg.get_long() {
                let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(page.contains(&escaped), "{name}: --{long}");
            }
        }
    }
    assert!(top.contains(".SH \"EXIT STATUS\""), "{top}");
    for (file, text) in &files {
        if file.starts_with("completions/") {
            for sub in ["check", "compile", "diagram", "explain"] {
                assert!(text.contains(sub), "{file} lacks {sub}");
            }
        }
    }
}

/// groff renders every page in `docs/man/`, the compiler's and the runtime's, without
/// a warning.
#[test]
fn groff_renders_the_pages_without_warnings() {
    let docs = docs().join("man");
    assert!(
        std::process::Command::new("groff")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "groff is missing: install it with `apt-get install groff-base`"
    );
    for entry in std::fs::read_dir(&docs).expect("docs/man") {
        let path = entry.expect("entry").path();
        let out = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&path)
            .output()
            .expect("groff runs");
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.trim().is_empty(),
            "{}: {warnings}",
            path.display()
        );
    }
}

/// Completes `words` (the last one being completed) with the bash script, as bash
/// would on TAB.
fn bash_complete(script: &str, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let program = format!(
        "{script}\nCOMP_WORDS=({words}); COMP_CWORD={cword}\n\
         _tcprelay__cc tcprelay-cc {cur} {prev}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" "),
        cur = quoted[cword],
        prev = quoted[cword - 1],
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_their_options() {
    let files = generated();
    let script = &files["completions/tcprelay-cc.bash"];
    assert_eq!(
        bash_complete(script, &["tcprelay-cc", "c"]),
        ["check", "compile"]
    );
    assert_eq!(
        bash_complete(script, &["tcprelay-cc", "check", "--format", ""]),
        ["human", "short", "json"]
    );
    let options = bash_complete(script, &["tcprelay-cc", "compile", "--"]);
    assert!(options.contains(&"--output".to_string()), "{options:?}");
}

/// The arguments of a roff request line: words, or `"quoted"` (possibly empty) ones.
fn request_args(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap_or(quoted.len());
            args.push(quoted[..end].to_string());
            rest = quoted.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            args.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    args
}

/// Every page of `docs/man/` (the compiler's, the runtime's and `tcprelay.conf(5)`)
/// starts with the same `.TH` layout: its own name and section (those of the file),
/// then the same date, source and manual fields; and none sends the reader to the
/// source tree, which an installed system does not have.
#[test]
fn pages_share_one_header_and_name_no_source_tree() {
    let mut headers = BTreeMap::new();
    for entry in std::fs::read_dir(docs().join("man")).expect("docs/man") {
        let path = entry.expect("entry").path();
        let file = path
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        let th = text
            .lines()
            .find_map(|l| l.strip_prefix(".TH "))
            .unwrap_or_else(|| panic!("{file}: no .TH line"));
        let args = request_args(th);
        let (stem, section) = file.rsplit_once('.').expect("NAME.SECTION");
        assert_eq!(args.len(), 5, "{file}: .TH {th}");
        assert_eq!(
            [args[0].as_str(), args[1].as_str()],
            [stem, section],
            "{file}"
        );
        assert_eq!(
            args[3],
            format!("tcprelay {}", env!("CARGO_PKG_VERSION")),
            "{file}"
        );
        assert_eq!(args[4], MANUAL, "{file}");
        headers.insert(file.clone(), args[2..].to_vec());
        for (n, line) in text.lines().enumerate() {
            let plain = line.replace("\\-", "-");
            for path in ["docs/", "runtime/", "compiler/", "examples/", "source tree"] {
                assert!(!plain.contains(path), "{file}:{}: {line}", n + 1);
            }
            assert!(!plain.contains("cargo "), "{file}:{}: {line}", n + 1);
            let md = plain
                .split(|c: char| c.is_whitespace() || "()[],;".contains(c))
                .any(|word| word.trim_end_matches('.').ends_with(".md"));
            assert!(!md, "{file}:{}: {line}", n + 1);
        }
    }
    let first = headers.values().next().expect("pages").clone();
    for (file, fields) in &headers {
        assert_eq!(fields, &first, "{file}: .TH fields");
    }
    assert!(headers.contains_key("tcprelay.conf.5"), "{headers:?}");
}
