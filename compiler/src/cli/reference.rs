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
/// The manual the pages belong to (the centre of the page footer).
const MANUAL: &str = "tcprelay manual";

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn bless() -> bool {
    std::env::var_os("TCPRELAY_BLESS").is_some_and(|v| v == "1")
}

/// The exit status section shared by every page.
fn exit_status(roff: &mut Roff) {
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
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
            "Usage error, or a file or URL could not be read or written.",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([roman(meaning)]);
    }
}

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
    roff.text([roman(
        "The configuration reference, with railroad diagrams of the language: \
         docs/manual/index.html in the source tree. Diagnostic codes: \
         docs/diagnostics.md; editor and CI integration: docs/editors.md.",
    )]);
}

/// A page rendered from the definition, followed by the sections clap does not have.
fn page(man: &Man, subcommands: bool, extra: impl FnOnce(&mut Roff)) -> String {
    let mut out = Vec::new();
    let rendered = (|| {
        man.render_title(&mut out)?;
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
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
    let text = page(&top, true, |roff| {
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
            "tcprelay-cc diagram -o grammar.html",
        ] {
            roff.text([roman(line)]);
        }
        roff.control("EE", []);
        let mut pages: Vec<&str> = names.iter().map(String::as_str).collect();
        pages.push("tcprelay(1)");
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
        let text = page(&man, false, |roff| {
            exit_status(roff);
            see_also(roff, &["tcprelay-cc(1)", "tcprelay(1)"]);
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
