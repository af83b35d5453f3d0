//! Golden UI tests: every `tests/ui/pass/*.cfg` must check clean (warnings allowed)
//! and every `tests/ui/fail/*.cfg` must fail; in both, the rendered diagnostics must
//! equal the `.out` file beside the configuration. `TCPRELAY_BLESS=1` rewrites the
//! `.out` files instead; review the diff.
//!
//! A file's name starts with the code it shows (`E0030-duplicate-listener.cfg`), and
//! its output must contain that code. A first line `# args: ...` adds arguments. The
//! configurations run in a temporary directory that holds fresh test certificates in
//! `certs/` (see `harness::make_certs`). A case may have a directory beside it, named
//! as the case with `.d` for `.cfg`, for the files it includes: it is copied beside it.

use crate::harness::{self, cc};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tcprelay_cc::diag::Code;

fn cases(kind: &str) -> Vec<PathBuf> {
    let dir = harness::root().join("tests/ui").join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "cfg"))
        .collect();
    files.sort();
    files
}

fn code_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    (name.starts_with('E') && name.len() > 5 && name[1..5].bytes().all(|b| b.is_ascii_digit()))
        .then(|| name[..5].to_string())
}

/// Runs one case; returns a failure description, or `None` when it passed.
fn run_case(path: &Path, expect_ok: bool, work: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).expect("read case");
    let name = path.file_name().unwrap().to_str().unwrap();
    std::fs::write(work.join(name), &text).expect("copy case");
    // A case may have a directory of its own beside it (`E0057-include-cycle.d/`),
    // copied next to it, for the files it includes.
    let own = path.with_extension("d");
    if own.is_dir() {
        copy_dir(&own, &work.join(own.file_name().expect("name")));
    }
    let mut args = vec!["check", "--format", "human", "--color", "never", name];
    if let Some(extra) = text.lines().next().and_then(|l| l.strip_prefix("# args:")) {
        args.extend(extra.split_whitespace());
    }
    let out = cc(work, &args);
    let got = harness::stable_dates(&harness::stdout(&out));
    let code = out.status.code();
    let mut problems = Vec::new();
    let wanted = if expect_ok { 0 } else { 1 };
    if code != Some(wanted) {
        problems.push(format!(
            "exit code {code:?}, wanted {wanted}; stderr: {}",
            harness::stderr(&out)
        ));
    }
    if let Some(c) = code_of(path) {
        if !got.contains(&format!("[{c}]")) {
            problems.push(format!("the output does not show {c}"));
        }
    }
    let golden = path.with_extension("out");
    if std::env::var_os("TCPRELAY_BLESS").is_some() {
        std::fs::write(&golden, &got).expect("bless");
    } else {
        match std::fs::read_to_string(&golden) {
            Ok(want) if want == got => {}
            Ok(want) => problems.push(format!(
                "output differs from {}:\n--- want\n{want}\n--- got\n{got}",
                golden.display()
            )),
            Err(_) => problems.push(format!(
                "{} is missing; run with TCPRELAY_BLESS=1 to create it; got:\n{got}",
                golden.display()
            )),
        }
    }
    (!problems.is_empty()).then(|| format!("{}: {}", path.display(), problems.join("; ")))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read case dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

fn run_all(kind: &str, expect_ok: bool) {
    let work = tempfile::tempdir().expect("temp dir");
    harness::make_certs(&work.path().join("certs"));
    let cases = cases(kind);
    assert!(!cases.is_empty(), "no cases in tests/ui/{kind}");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|p| run_case(p, expect_ok, work.path()))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn ui_pass_cases_check_clean_with_the_expected_output() {
    run_all("pass", true);
}

#[test]
fn ui_fail_cases_fail_with_the_expected_output() {
    run_all("fail", false);
}

#[test]
fn every_diagnostic_code_has_a_ui_case() {
    let covered: BTreeSet<String> = cases("pass")
        .iter()
        .chain(cases("fail").iter())
        .filter_map(|p| code_of(p))
        .collect();
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !covered.contains(*c))
        .collect();
    assert!(missing.is_empty(), "codes without a UI case: {missing:?}");
}

/// Every `examples/*.cfg` checks clean: no error and no warning. The one exception is
/// the certificate files of the TLS examples (names containing `tls`), which live
/// under `/etc/tcprelay/` on a real machine and are absent here: for those, warning
/// E0033 about a file under `/etc/tcprelay/` is the only output allowed. Each example
/// is then checked once more with `/etc/tcprelay/` pointing at a directory of test
/// certificates (`fullchain.pem`, `privkey.pem`), and must be entirely clean.
#[test]
fn every_example_configuration_checks_clean() {
    let dir = harness::root().join("examples");
    let etc = tempfile::tempdir().expect("temp dir");
    harness::make_certs(etc.path());
    for (from, to) in [("cert.pem", "fullchain.pem"), ("key.pem", "privkey.pem")] {
        std::fs::copy(etc.path().join(from), etc.path().join(to)).expect("copy cert");
    }
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "cfg") {
            continue;
        }
        n += 1;
        let name = path.file_name().unwrap().to_str().unwrap();
        let out = cc(&dir, &["check", "--format", "short", name]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}{}",
            harness::stdout(&out),
            harness::stderr(&out)
        );
        let unexpected: Vec<String> = harness::stdout(&out)
            .lines()
            .filter(|line| {
                !(name.contains("tls")
                    && line.contains(": warning[E0033]: ")
                    && line.contains("`/etc/tcprelay/"))
            })
            .map(str::to_string)
            .collect();
        assert!(unexpected.is_empty(), "{name} has warnings: {unexpected:?}");

        let text = std::fs::read_to_string(&path).expect("read example");
        let here = text.replace("/etc/tcprelay/", &format!("{}/", etc.path().display()));
        let copy = etc.path().join(name);
        std::fs::write(&copy, here).expect("write copy");
        let out = cc(etc.path(), &["check", "--format", "short", name]);
        assert_eq!(
            (out.status.code(), harness::stdout(&out).as_str()),
            (Some(0), ""),
            "{name} with its certificates present: {}",
            harness::stderr(&out)
        );
    }
    assert!(n >= 3, "examples/ has {n} configurations");
}
