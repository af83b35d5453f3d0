//! The corpus (`tests/corpus/`): configurations taken from every example of the
//! original's two manuals, in their words, and the family's multi-daemon layout, each
//! checked against the verdict in `tests/corpus/MANIFEST`. The property that one
//! unknown word inserted into any of them is one error is in `props.rs`.

use crate::harness::{self, cc};
use std::path::PathBuf;

/// One line of the manifest.
#[derive(Debug, Clone)]
pub struct Entry {
    pub file: String,
    /// The error codes expected, in reading order; empty for `ok`.
    pub errors: Vec<String>,
    /// Who is to close the gap, and what it is, for a file not taken as the manual
    /// implies yet.
    pub gap: Option<String>,
}

impl Entry {
    pub fn path(&self) -> PathBuf {
        dir().join(&self.file)
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(self.path()).expect("corpus file")
    }

    /// The section ids of the file's `# args:` line, as `tcprelay-cc check` takes them.
    pub fn args(&self) -> Vec<String> {
        self.text()
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# args:"))
            .map(|a| a.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// The selection the `# args:` line makes (`SPAWND_ID -i TCPRELAY_ID`).
    pub fn selection(&self) -> tcprelay_cc::Selection {
        let mut selection = tcprelay_cc::Selection::default();
        let args = self.args();
        let mut words = args.iter();
        while let Some(word) = words.next() {
            if word == "-i" {
                selection.tcprelay_id = words.next().expect("-i ID").clone();
            } else {
                selection.spawnd_id = word.clone();
            }
        }
        selection
    }
}

pub fn dir() -> PathBuf {
    harness::root().join("tests/corpus")
}

/// The manifest's entries, in its order.
pub fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(dir().join("MANIFEST")).expect("tests/corpus/MANIFEST");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (head, gap) = match line.find(" gap ") {
                Some(at) => (&line[..at], Some(line[at + 5..].trim().to_string())),
                None => (line, None),
            };
            let mut words = head.split_whitespace();
            let file = words.next().expect("a file").to_string();
            let verdict: Vec<String> = words.map(str::to_string).collect();
            let errors = match verdict.as_slice() {
                [ok] if ok == "ok" => Vec::new(),
                codes => {
                    assert!(
                        !codes.is_empty() && codes.iter().all(|c| c.starts_with('E')),
                        "{line}: the verdict is `ok` or error codes"
                    );
                    codes.to_vec()
                }
            };
            Entry { file, errors, gap }
        })
        .collect()
}

/// The error codes `tcprelay-cc check` prints for `entry`, in reading order, and its
/// exit code.
fn verdict(entry: &Entry) -> (Vec<String>, Option<i32>, String) {
    let mut args = vec![
        "check".to_string(),
        "-q".into(),
        "--format".into(),
        "short".into(),
    ];
    args.push(entry.file.clone());
    args.extend(entry.args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cc(&dir(), &args);
    let text = harness::stdout(&out);
    let errors = text
        .lines()
        .filter_map(|l| {
            l.split_once(": error[")
                .map(|(_, rest)| rest[..5].to_string())
        })
        .collect();
    (errors, out.status.code(), text)
}

/// Every file of `tests/corpus/` is in the manifest, and gets its verdict: the error
/// codes in order (exit 1), or none (exit 0). A gap's file does not get it yet; the
/// test fails when it does, so that the gap is taken off the manifest.
#[test]
fn every_corpus_configuration_gets_the_verdict_the_manuals_imply() {
    let entries = manifest();
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .expect("tests/corpus")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cfg"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = entries.iter().map(|e| e.file.clone()).collect();
    listed.sort();
    assert_eq!(files, listed, "tests/corpus/*.cfg and MANIFEST differ");
    assert!(entries.iter().filter(|e| e.gap.is_none()).count() >= 10);
    let mut failures = Vec::new();
    let mut gaps = Vec::new();
    for entry in &entries {
        let (errors, code, text) = verdict(entry);
        let want_code = if entry.errors.is_empty() { 0 } else { 1 };
        let holds = errors == entry.errors && code == Some(want_code);
        match (&entry.gap, holds) {
            (None, true) => {}
            (None, false) => failures.push(format!(
                "{}: wanted {:?}, got {errors:?} (exit {code:?}):\n{text}",
                entry.file, entry.errors
            )),
            (Some(gap), false) => gaps.push(format!("{}: {gap}; got {errors:?}", entry.file)),
            (Some(gap), true) => failures.push(format!(
                "{}: the gap is closed ({gap}): make it an ordinary entry",
                entry.file
            )),
        }
    }
    for gap in &gaps {
        eprintln!("corpus gap: {gap}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
