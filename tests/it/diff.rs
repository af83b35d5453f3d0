//! `tcprelay-cc diff` through the real binary: the golden cases of
//! `tests/golden/diff/` (each example configuration with one realistic change,
//! `NAME.old.cfg` and `NAME.new.cfg`, rendered as `NAME.out` and `NAME.json`;
//! `TCPRELAY_BLESS=1` rewrites them: review the diff), the property that a
//! configuration compared with itself, or with its own compiled plan, is no change,
//! for every file of the corpus and every example, and the exit codes.

use crate::corpus;
use crate::harness::{self, cc, cc_with_stdin, stderr, stdout};
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    harness::root().join("tests/golden/diff")
}

/// The golden cases' names, sorted.
fn cases() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(golden_dir())
        .expect("tests/golden/diff")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".old.cfg").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// Compares `got` with the golden file `name`, or rewrites it when blessing.
fn golden(name: &str, got: &str) -> Option<String> {
    let path = golden_dir().join(name);
    if std::env::var_os("TCPRELAY_BLESS").is_some() {
        std::fs::write(&path, got).expect("bless");
        return None;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    (want != got).then(|| format!("{name} differs; got:\n{got}"))
}

#[test]
fn golden_diffs_of_the_examples() {
    let names = cases();
    assert!(names.len() >= 4, "{names:?}");
    let dir = golden_dir();
    let mut problems = Vec::new();
    for name in &names {
        let (old, new) = (format!("{name}.old.cfg"), format!("{name}.new.cfg"));
        assert!(dir.join(&new).is_file(), "{new} is missing");
        for (format, file) in [
            ("human", format!("{name}.out")),
            ("json", format!("{name}.json")),
        ] {
            let out = cc(&dir, &["diff", "--format", format, &old, &new]);
            if out.status.code() != Some(1) {
                problems.push(format!(
                    "{name} ({format}): exit {:?}, wanted 1 (changes): {}",
                    out.status.code(),
                    stderr(&out)
                ));
            }
            let text = stdout(&out);
            if format == "json" {
                let value: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{name}: not JSON ({e}): {text}"));
                assert_eq!(value["changed"], true, "{name}");
            }
            problems.extend(golden(&file, &text));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// A configuration's section ids as `diff` takes them (`--id`, `-i`), from the
/// corpus entry's `# args:` line.
fn selection_args(entry: &corpus::Entry) -> Vec<String> {
    let selection = entry.selection();
    vec![
        "--id".into(),
        selection.spawnd_id,
        "-i".into(),
        selection.tcprelay_id,
    ]
}

/// `diff X X`, and `diff X PLAN` with X's compiled plan, say "no change" and exit
/// 0 for every corpus file that compiles and every example; the library's report
/// agrees.
#[test]
fn a_configuration_against_itself_or_its_plan_is_no_change() {
    let work = tempfile::tempdir().unwrap();
    let mut inputs: Vec<(PathBuf, Vec<String>)> = corpus::manifest()
        .iter()
        .filter(|e| e.errors.is_empty() && e.gap.is_none())
        .map(|e| (e.path(), selection_args(e)))
        .collect();
    for example in ["relay", "load-balancing", "tls-wrapper", "proxy-tls-checks"] {
        inputs.push((
            harness::root().join(format!("examples/{example}.cfg")),
            Vec::new(),
        ));
    }
    assert!(inputs.len() >= 15, "{}", inputs.len());
    for (path, ids) in &inputs {
        let cfg = path.to_str().unwrap();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let plan = work.path().join("x.plan");
        let mut compile = vec!["compile", cfg, "-o", "x.plan"];
        // `compile` takes the spawnd id as its trailing argument.
        if let ["--id", spawnd, "-i", relay] = ids.as_slice() {
            compile.extend([*spawnd, "-i", *relay]);
        }
        let out = cc(work.path(), &compile);
        assert_eq!(out.status.code(), Some(0), "{cfg}: {}", stderr(&out));
        for other in [cfg, plan.to_str().unwrap()] {
            let mut args = vec!["diff", cfg, other];
            args.extend(&ids);
            let out = cc(work.path(), &args);
            assert_eq!(
                out.status.code(),
                Some(0),
                "diff {cfg} {other}: {}{}",
                stdout(&out),
                stderr(&out)
            );
            assert!(
                stdout(&out).contains("\nno change: a reload from old to new changes nothing\n"),
                "{}",
                stdout(&out)
            );
            args.extend(["--format", "json"]);
            let out = cc(work.path(), &args);
            let value: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
            assert_eq!(value["changed"], false, "{cfg}");
        }
        let text = std::fs::read_to_string(path).unwrap();
        let selection = corpus_selection(&ids);
        let (plan, _) = tcprelay_cc::compile(&text, cfg, &selection);
        let side = || {
            tcprelay_cc::diff::load(cfg, &selection, false)
                .expect("loads")
                .0
        };
        assert!(plan.is_some());
        assert!(!tcprelay_cc::diff::diff(&side(), &side()).changed, "{cfg}");
    }
}

fn corpus_selection(ids: &[&str]) -> tcprelay_cc::Selection {
    match ids {
        ["--id", spawnd, "-i", relay] => tcprelay_cc::Selection {
            spawnd_id: spawnd.to_string(),
            tcprelay_id: relay.to_string(),
        },
        _ => tcprelay_cc::Selection::default(),
    }
}

const GOOD: &str = "id = spawnd {\n  listen = { address = 127.0.0.1 port = 8080 }\n}\nid = tcprelay {\n  remote = { address = 127.0.0.1 port = 9000 }\n}\n";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

/// 0 no change, 1 changes, 2 errors: what a deploy script gates on.
#[test]
fn diff_exit_codes_are_0_same_1_changed_2_errors() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.cfg", GOOD);
    write(
        d.path(),
        "b.cfg",
        &GOOD.replace("port = 9000", "port = 9001"),
    );
    write(d.path(), "bad.cfg", "id = spawnd { listen = { port = x } }");
    let code = |args: &[&str]| cc(d.path(), args).status.code();
    assert_eq!(code(&["diff", "a.cfg", "a.cfg"]), Some(0));
    let out = cc(d.path(), &["diff", "a.cfg", "b.cfg"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("  - 127.0.0.1:9000/TCP\n  + 127.0.0.1:9001/TCP\n"),
        "{}",
        stdout(&out)
    );
    // Standard input as one side.
    let out = cc_with_stdin(d.path(), &["diff", "a.cfg", "-"], Some(GOOD.as_bytes()));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // A configuration with errors: its diagnostics, then exit 2, and nothing compared.
    let out = cc(d.path(), &["diff", "bad.cfg", "b.cfg"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains("E0023"), "{err}");
    assert!(
        err.contains("bad.cfg has errors: nothing compared"),
        "{err}"
    );
    // A missing file, a broken plan, usage errors.
    assert_eq!(code(&["diff", "a.cfg", "missing.cfg"]), Some(2));
    let mut broken = tcprelay_plan::MAGIC.to_vec();
    broken.extend_from_slice(b"\x00\x01garbage");
    std::fs::write(d.path().join("broken.plan"), &broken).unwrap();
    let out = cc(d.path(), &["diff", "broken.plan", "a.cfg"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("tcprelay-cc: broken.plan: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(code(&["diff", "a.cfg"]), Some(2));
    assert_eq!(code(&["diff", "-", "-"]), Some(2));
    assert_eq!(code(&["diff", "--running", "a.cfg", "b.cfg"]), Some(2));
    assert_eq!(code(&["diff", "--control", "x", "a.cfg", "b.cfg"]), Some(2));
    // --running with no relay there: exit 2 and why.
    let out = cc(
        d.path(),
        &["diff", "--running", "--control", "no.sock", "a.cfg"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("tcprelay-cc: no control socket at no.sock"),
        "{}",
        stderr(&out)
    );
}

/// A FIFO (or a device) as OLD or NEW is refused at once: the input loader reads a
/// plan file without blocking, and never waits for a writer.
#[test]
fn a_fifo_as_an_input_is_refused_at_once() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.cfg", GOOD);
    assert!(Command::new("mkfifo")
        .arg(d.path().join("fifo"))
        .status()
        .unwrap()
        .success());
    let mut child = Command::new(harness::bin("tcprelay-cc"))
        .args(["diff", "fifo", "a.cfg"])
        .current_dir(d.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tcprelay-cc diff waited on a FIFO");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("it is a FIFO"), "{err}");
}

/// Both configurations' errors are shown in one run.
#[test]
fn diff_reports_the_errors_of_both_sides() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "x.cfg", "id = spawnd { listen = { port = x } }");
    write(d.path(), "y.cfg", "id = spawnd { listen = { port = y } }");
    let out = cc(d.path(), &["diff", "x.cfg", "y.cfg"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("x.cfg has errors") && err.contains("y.cfg has errors"),
        "{err}"
    );
}

/// `--running` through the binary: a control server in this test answers `plan`
/// with the JSON of a compiled plan (redacted, as the master sends it); NEW with a
/// remote more exits 1 and names it, the same configuration exits 0.
#[test]
fn diff_running_through_the_binary_against_a_control_server() {
    use std::io::{BufRead, Write};
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.cfg", GOOD);
    write(
        d.path(),
        "b.cfg",
        &GOOD.replace(
            "port = 9000 }\n",
            "port = 9000 }\n  remote = { address = 127.0.0.1 port = 9001 }\n",
        ),
    );
    let (plan, _) = tcprelay_cc::compile(GOOD, "a.cfg", &tcprelay_cc::Selection::default());
    let answer = serde_json::json!({
        "ok": true, "format": tcprelay_plan::FORMAT_VERSION, "generation": 2,
        "plan_hash": "0badcafe", "plan": plan.expect("compiles").redacted(),
        "certificates": [], "sessions": {"total": 0, "generations": [], "remotes": []},
    })
    .to_string();
    let socket = d.path().join("ctl");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    listener.set_nonblocking(true).unwrap();
    // Bounded: a client that never comes ends the server after 30 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let server = std::thread::spawn(move || {
        let mut requests = Vec::new();
        while requests.len() < 2 && std::time::Instant::now() < deadline {
            let Ok((stream, _)) = listener.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut line = String::new();
            let _ = std::io::BufReader::new(&stream).read_line(&mut line);
            let _ = (&stream).write_all(format!("{answer}\n").as_bytes());
            requests.push(line);
        }
        requests
    });
    let out = cc(
        d.path(),
        &["diff", "--running", "--control", "ctl", "b.cfg"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("old: the running relay (control socket ctl, generation 2, plan 0badcafe, from a.cfg)\n"),
        "{text}"
    );
    assert!(text.contains("\n  + 127.0.0.1:9001/TCP\n"), "{text}");
    let out = cc(
        d.path(),
        &["diff", "--running", "--control", "ctl", "a.cfg"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(server.join().unwrap(), ["plan\n", "plan\n"]);
}
