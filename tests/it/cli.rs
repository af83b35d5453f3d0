//! The command lines: `tcprelay-cc` (exit codes, formats, files, sections, sources) and,
//! at the end, the runtime's `tcprelay`.

use crate::harness::{self, cc, cc_with_stdin, stderr, stdout};
use std::os::unix::fs::PermissionsExt;

const GOOD: &str = "id = spawnd {\n  listen = { address = 127.0.0.1 port = 8080 }\n}\nid = tcprelay {\n  remote = { address = 127.0.0.1 port = 9000 }\n}\n";

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

#[test]
fn check_clean_config_exits_0_and_prints_nothing() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.cfg", GOOD);
    let out = cc(d.path(), &["check", "a.cfg"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

/// A clean `check` says so in one line on standard error, like `nginx -t`, counting
/// what the plan holds; with warnings it says how many; `-q` leaves the line out
/// (never the diagnostics); a configuration with errors gets no such line.
#[test]
fn check_prints_one_summary_line_on_success_unless_quiet() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.cfg", GOOD);
    let out = cc(d.path(), &["check", "a.cfg"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "ok: 1 listener, 1 remote\n");
    for quiet in ["-q", "--quiet"] {
        let out = cc(d.path(), &["check", quiet, "a.cfg"]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!((stdout(&out).as_str(), stderr(&out).as_str()), ("", ""));
    }
    // Two warnings (E0028 twice), three listeners, two remotes and a certificate
    // shared by the listeners.
    harness::make_certs(&d.path().join("certs"));
    write(
        d.path(),
        "w.cfg",
        "id = spawnd {\n  listen = { address = 127.0.0.1 port = 8080 tls = yes }\n  listen = { address = 127.0.0.1 port = 8081 }\n  listen = { address = 127.0.0.1 port = 8082 }\n  background = no\n  background = no\n}\nid = tcprelay {\n  remote = { address = 127.0.0.1 port = 9000 }\n  remote = { address = 127.0.0.1 port = 9001 }\n  tls cert-file = certs/cert.pem\n  tls key-file = certs/key.pem\n  retire = 5\n  retire = 6\n}\n",
    );
    let out = cc(d.path(), &["check", "--format", "short", "w.cfg"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "ok with 2 warnings: 3 listeners, 2 remotes, 1 TLS certificate\n"
    );
    let out = cc(d.path(), &["check", "-q", "--format", "short", "w.cfg"]);
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    assert_eq!(stderr(&out), "");
    // Errors: no summary. `compile` prints none either (its stderr is diagnostics).
    write(d.path(), "bad.cfg", "id = spawnd { listen = { port = x } }");
    let out = cc(d.path(), &["check", "bad.cfg"]);
    assert_eq!((out.status.code(), stderr(&out).as_str()), (Some(1), ""));
    let out = cc(d.path(), &["compile", "a.cfg", "-o", "a.plan"]);
    assert_eq!((out.status.code(), stderr(&out).as_str()), (Some(0), ""));
}

/// `--deny-warnings` makes a configuration with warnings fail: `check` exits 1 and
/// says why, `compile` exits 1 and writes no plan; a clean configuration passes with
/// it, and without it warnings never change the exit status.
#[test]
fn deny_warnings_fails_check_and_compile_on_a_warning() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.cfg", GOOD);
    // One lint (E0076): idle timeout 5 s below the default connect timeout of 10 s.
    let warned = GOOD.replace("id = tcprelay {\n", "id = tcprelay {\n  idle timeout = 5\n");
    write(d.path(), "w.cfg", &warned);
    let out = cc(d.path(), &["check", "--format", "short", "w.cfg"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("warning[E0076]"), "{}", stdout(&out));
    let out = cc(
        d.path(),
        &["check", "--deny-warnings", "--format", "short", "w.cfg"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("warning[E0076]"), "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "tcprelay-cc: 1 warning denied by --deny-warnings: check failed\n"
    );
    let out = cc(
        d.path(),
        &["compile", "w.cfg", "-o", "w.plan", "--deny-warnings"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no plan written"), "{}", stderr(&out));
    assert!(!d.path().join("w.plan").exists());
    let out = cc(d.path(), &["compile", "w.cfg", "-o", "w.plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(d.path().join("w.plan").exists());
    for args in [
        &["check", "--deny-warnings", "a.cfg"][..],
        &["compile", "--deny-warnings", "a.cfg", "-o", "a.plan"],
    ] {
        let out = cc(d.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    assert!(d.path().join("a.plan").exists());
}

/// `--explain CODE` prints the code's section of docs/diagnostics.md (embedded in
/// the binary): heading, text and example; the code may be written `e0023`, `0023`
/// or `23`; an unknown code is a usage error naming the range.
#[test]
fn explain_prints_a_codes_explanation_and_example() {
    let d = tempfile::tempdir().unwrap();
    let catalogue =
        std::fs::read_to_string(harness::root().join("docs/diagnostics.md")).expect("catalogue");
    let section = catalogue
        .split("\n## ")
        .find(|s| s.starts_with("E0023: "))
        .expect("E0023's section");
    for code in ["E0023", "e0023", "0023", "23"] {
        let out = cc(d.path(), &["--explain", code]);
        assert_eq!(out.status.code(), Some(0), "{code}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.starts_with("E0023: invalid port or unknown service name\n"),
            "{text}"
        );
        // Every line of the section's prose is printed as written; the example's
        // lines indented by four spaces.
        let (prose, example) = section.split_once("```text\n").expect("an example");
        for line in prose.lines().skip(1).filter(|l| !l.is_empty()) {
            assert!(
                text.contains(&format!("\n{line}\n")),
                "{line:?} missing:\n{text}"
            );
        }
        let example = example.split("```").next().unwrap();
        for line in example.lines() {
            assert!(
                text.contains(&format!("\n    {line}\n")),
                "{line:?} missing:\n{text}"
            );
        }
    }
    for bad in ["E9999", "port", ""] {
        let out = cc(d.path(), &["--explain", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(
            stderr(&out).contains("is not a diagnostic code"),
            "{}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("E0001"), "{}", stderr(&out));
    }
    // With a command it is a usage error; no command at all, too.
    let out = cc(d.path(), &["--explain", "E0023", "check", "a.cfg"]);
    assert_eq!(out.status.code(), Some(2));
    let out = cc(d.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--explain"), "{}", stderr(&out));
}

#[test]
fn check_errors_exit_1_and_short_format_is_one_line_each() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "bad.cfg",
        "id = spawnd {\n  listen = { port = 99999 }\n}\nid = tcprelay {\n  remote = { address = 300.1.1.1 port = 22 }\n}\n",
    );
    let out = cc(d.path(), &["check", "--format", "short", "bad.cfg"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("bad.cfg:2:21: error[E0023]"), "{text}");
    assert!(lines[1].starts_with("bad.cfg:5:24: error[E0022]"), "{text}");
}

#[test]
fn json_format_is_one_object_per_diagnostic() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "bad.cfg",
        "id = tcprelay {\n  remote = { adress = 1.2.3.4 port = 1 }\n}\n",
    );
    let out = cc(
        d.path(),
        &[
            "check", "--format", "json", "bad.cfg", "-i", "tcprelay", "tcprelay",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let objs: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let typo = objs.iter().find(|o| o["code"] == "E0003").expect("E0003");
    assert_eq!(typo["file"], "bad.cfg");
    assert_eq!(typo["start"]["line"], 2);
    assert_eq!(typo["start"]["column"], 14);
    assert_eq!(typo["help"], "did you mean `address`?");
}

#[test]
fn sections_the_command_line_does_not_select_are_skipped_in_every_format() {
    // `front -i back` selects two sections; `tcprelay` and `tac_plus` are then
    // another program's and hold what tcprelay's grammar refuses.
    let d = tempfile::tempdir().unwrap();
    let selected = "id front { listen = { address = 127.0.0.1 port = 8080 } }\nid = back { remote = { address = 127.0.0.1 port = 9000 } }\n";
    let foreign = "id = tcprelay { = = }\nid = tac_plus { host = x { banner = \"}\" } # }\n}\n";
    write(d.path(), "multi.cfg", &format!("{foreign}{selected}"));
    for format in ["human", "short", "json"] {
        let out = cc(
            d.path(),
            &[
                "check",
                "--format",
                format,
                "multi.cfg",
                "front",
                "-i",
                "back",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{format}: {}", stdout(&out));
        assert_eq!(stdout(&out), "", "{format}");
    }
    // Selecting `tcprelay` reads it, and its mistake is reported.
    let out = cc(
        d.path(),
        &["check", "--format", "short", "multi.cfg", "front"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("multi.cfg:1:17: error[E0003]"),
        "{}",
        stdout(&out)
    );
    // One that never closes: one object, at its `{`, the file's end as its label.
    write(
        d.path(),
        "open.cfg",
        &format!("{selected}id = tac_plus {{\n  x {{ }}\n"),
    );
    let out = cc(
        d.path(),
        &[
            "check", "--format", "json", "open.cfg", "front", "-i", "back",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let objs: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(objs.len(), 1, "{}", stdout(&out));
    assert_eq!(objs[0]["code"], "E0004");
    assert_eq!(objs[0]["start"]["line"], 3);
    assert_eq!(objs[0]["start"]["column"], 15);
    assert_eq!(objs[0]["labels"][0]["message"], "the file ends here");
    assert_eq!(objs[0]["labels"][0]["start"]["line"], 5);
}

#[test]
fn human_output_has_no_colour_when_not_a_terminal() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "bad.cfg", "id = spawnd { listen = { port = x } }");
    let out = cc(d.path(), &["check", "bad.cfg"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stdout(&out).contains('\x1b'));
    let forced = cc(d.path(), &["check", "--color", "always", "bad.cfg"]);
    assert!(stdout(&forced).contains('\x1b'));
}

#[test]
fn missing_file_is_a_usage_error_naming_the_path() {
    let d = tempfile::tempdir().unwrap();
    let out = cc(d.path(), &["check", "nope.cfg"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nope.cfg"), "{}", stderr(&out));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    let out = cc(d.path(), &["check", "--format", "xml", "a.cfg"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_from_stdin() {
    let d = tempfile::tempdir().unwrap();
    let out = cc_with_stdin(
        d.path(),
        &["check", "--format", "short", "-"],
        Some(b"id = spawnd { bogus }"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l == "<stdin>:1:15: error[E0003]: unexpected `bogus`"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn failed_url_fetch_names_the_url() {
    // A loopback port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/relay.cfg");
    let d = tempfile::tempdir().unwrap();
    let out = cc(d.path(), &["check", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));
}

#[test]
fn sections_are_selected_by_child_id_and_trailing_id() {
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "two.cfg",
        "id = front { listen = { port = 1234 } }\nid = back { remote = { address = ::1 port = 80 } }\n",
    );
    let out = cc(d.path(), &["check", "two.cfg", "front", "-i", "back"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = cc(d.path(), &["check", "--format", "short", "two.cfg"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("E0010"), "{}", stdout(&out));
}

#[test]
fn compile_writes_a_plan_that_explain_reads() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.cfg", GOOD);
    let out = cc(d.path(), &["compile", "a.cfg", "-o", "a.plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mode = std::fs::metadata(d.path().join("a.plan"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let out = cc(d.path(), &["explain", "a.plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("listener #1: 127.0.0.1:8080 TCP"), "{text}");
    assert!(
        text.contains("remote #1: 127.0.0.1:9000 TCP weight 1"),
        "{text}"
    );
    // The issue 14 settings, at their defaults.
    for line in [
        "control socket default (the runtime directory's ctl) mode 0600",
        "metrics none, log format text",
        "connect timeout 10 s, tls handshake timeout 10 s, half close timeout never",
        "drain timeout never, drain generations 8, connection log yes",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

#[test]
fn compile_with_errors_writes_no_plan() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "bad.cfg", "id = spawnd { listen = { port = 0 } }");
    let out = cc(d.path(), &["compile", "bad.cfg", "-o", "bad.plan"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!d.path().join("bad.plan").exists());
    assert!(stderr(&out).contains("E0023"), "{}", stderr(&out));
}

#[test]
fn plan_with_a_passphrase_is_0600_and_explain_redacts_it() {
    let d = tempfile::tempdir().unwrap();
    harness::make_certs(&d.path().join("certs"));
    let cfg = format!(
        "id = spawnd {{ listen = {{ port = 8443 tls = yes }} }}\nid = tcprelay {{\n remote = {{ address = 127.0.0.1 port = 80 }}\n tls cert-file = certs/cert.pem\n tls key-file = certs/enc-key.pem\n tls passphrase = \"{}\"\n}}\n",
        harness::PASSPHRASE
    );
    write(d.path(), "tls.cfg", &cfg);
    let out = cc(d.path(), &["compile", "tls.cfg", "-o", "tls.plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mode = std::fs::metadata(d.path().join("tls.plan"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = cc(d.path(), &["explain", "tls.plan"]);
    let text = stdout(&out);
    assert!(text.contains("passphrase <redacted>"), "{text}");
    assert!(!text.contains(harness::PASSPHRASE), "{text}");
}

#[test]
fn wrong_passphrase_is_reported_without_the_passphrase() {
    let d = tempfile::tempdir().unwrap();
    harness::make_certs(&d.path().join("certs"));
    write(
        d.path(),
        "tls.cfg",
        "id = spawnd { listen = { port = 8443 tls = yes } }\nid = tcprelay {\n remote = { address = 127.0.0.1 port = 80 }\n tls cert-file = certs/cert.pem\n tls key-file = certs/enc-key.pem\n tls passphrase = hunter2hunter2\n}\n",
    );
    for format in ["human", "short", "json"] {
        let out = cc(d.path(), &["check", "--format", format, "tls.cfg"]);
        assert_eq!(out.status.code(), Some(1));
        let text = stdout(&out);
        assert!(text.contains("E0035"), "{text}");
        assert!(!text.contains("hunter2"), "{format}: {text}");
    }
}

#[test]
fn corrupted_plans_are_refused_with_one_line() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.cfg", GOOD);
    assert_eq!(
        cc(d.path(), &["compile", "a.cfg", "-o", "a.plan"])
            .status
            .code(),
        Some(0)
    );
    let good = std::fs::read(d.path().join("a.plan")).unwrap();
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x40;
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("truncated", good[..good.len() / 2].to_vec(), "truncated"),
        ("flipped", flipped, "corrupted"),
        (
            "body",
            harness::plan_with_an_undecodable_body(&good),
            "body cannot be decoded (invalid value: integer `7`",
        ),
        (
            "foreign",
            b"#!/bin/sh\necho hello\n".to_vec(),
            "not a tcprelay plan",
        ),
        ("empty", Vec::new(), "not a tcprelay plan"),
    ];
    for (name, bytes, says) in cases {
        std::fs::write(d.path().join(name), bytes).unwrap();
        let out = cc(d.path(), &["explain", name]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(says), "{name}: {err}");
        // In words, never the Debug form of a library's error.
        assert!(
            !err.contains("OtherString") && !err.contains('{'),
            "{name}: {err}"
        );
    }
}

#[test]
fn diagram_writes_svg_and_html() {
    let d = tempfile::tempdir().unwrap();
    let out = cc(d.path(), &["diagram", "-o", "g.svg"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let svg = std::fs::read_to_string(d.path().join("g.svg")).unwrap();
    assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let out = cc(d.path(), &["diagram", "-o", "g.html"]);
    assert_eq!(out.status.code(), Some(0));
    let html = std::fs::read_to_string(d.path().join("g.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("SectionDirective"));
    let out = cc(d.path(), &["diagram", "-o", "g.txt"]);
    assert_eq!(out.status.code(), Some(2));
}

// The runtime's command line (`runtime/src/args.rs`): what the binary prints and how it
// exits, for the forms its unit tests parse.

/// Runs `tcprelay` with `args` in `dir`, with no standard input.
fn relay(dir: &std::path::Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(harness::bin("tcprelay"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("tcprelay runs")
}

fn words(args: &[&'static str]) -> Vec<&'static std::ffi::OsStr> {
    args.iter().map(|a| std::ffi::OsStr::new(*a)).collect()
}

#[test]
fn runtime_help_and_version_exit_0_on_stdout() {
    let d = tempfile::tempdir().unwrap();
    let help = relay(d.path(), &words(&["--help"]));
    assert_eq!(help.status.code(), Some(0), "{}", stderr(&help));
    let text = stdout(&help);
    assert!(
        text.contains(
            "Usage: tcprelay run [-f|-b] [-d LEVEL] <PLAN>\n       \
             tcprelay ctl [-s PATH] [--json] <COMMAND> [ARGS]...\n       tcprelay [-P]"
        ),
        "{text}"
    );
    let help = relay(d.path(), &words(&["ctl", "--help"]));
    assert_eq!(help.status.code(), Some(0), "{}", stderr(&help));
    assert!(
        stdout(&help).contains("Usage: tcprelay ctl [-s PATH] [--json] <COMMAND> [ARGS]...\n"),
        "{}",
        stdout(&help)
    );
    let version = format!("tcprelay {}\n", env!("CARGO_PKG_VERSION"));
    for args in [&["-v"][..], &["-V"], &["--version"], &["run", "-v"]] {
        let out = relay(d.path(), &words(args));
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(stdout(&out), version, "{args:?}");
    }
}

#[test]
fn runtime_usage_errors_exit_2_with_the_usage() {
    let d = tempfile::tempdir().unwrap();
    for (args, says) in [
        (&[][..], "<CONFIGURATION>"),
        (&["-x", "a.cfg"], "unexpected argument '-x'"),
        (&["run", "-P", "a.plan"], "unexpected argument '-P'"),
        (&["a.cfg", "b", "c"], "unexpected argument 'c'"),
    ] {
        let out = relay(d.path(), &words(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let text = stderr(&out);
        assert!(text.contains(says), "{args:?}: {text}");
        assert!(text.contains("Usage: tcprelay run"), "{args:?}: {text}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }
}

/// A file that does not exist is the same exit status for both programs (2), and
/// tcprelay says so in those words, for a configuration (`-f`, `-P`) and a plan
/// (`run`, `-P run`); a plan given as a configuration and a configuration given to
/// `run` are named with the command to use (exit 2), where they were "not UTF-8
/// text" and "wrong magic bytes" with exit 1.
#[test]
fn runtime_file_errors_say_what_to_do_and_exit_as_the_compiler_does() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.cfg", GOOD);
    let out = cc(d.path(), &["compile", "a.cfg", "-o", "a.plan"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cc_missing = cc(d.path(), &["check", "missing.cfg"]).status.code();
    assert_eq!(cc_missing, Some(2));
    for (args, says) in [
        (&["-f", "missing.cfg"][..], "tcprelay: missing.cfg does not exist\n"),
        (&["-P", "missing.cfg"], "tcprelay: missing.cfg does not exist\n"),
        (&["run", "-f", "missing.plan"], "tcprelay: missing.plan does not exist\n"),
        (&["-f", "a.plan"], "tcprelay: a.plan is a plan file, not a configuration: run it with `tcprelay run a.plan`\n"),
        (&["-P", "a.plan"], "tcprelay: a.plan is a plan file, not a configuration: run it with `tcprelay run a.plan`\n"),
        (&["run", "-f", "a.cfg"], "tcprelay: a.cfg is a configuration, not a plan: run `tcprelay a.cfg` (it compiles it, and again on every reload), or compile it first with `tcprelay-cc compile a.cfg -o PLAN`\n"),
    ] {
        let out = relay(d.path(), &words(args));
        assert_eq!(out.status.code(), cc_missing, "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out), says, "{args:?}");
    }
    // A plan with a bad body is still a bad plan: 1.
    let mut bytes = std::fs::read(d.path().join("a.plan")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(d.path().join("bad.plan"), bytes).unwrap();
    let out = relay(d.path(), &words(&["run", "-f", "bad.plan"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// A configuration path that is not UTF-8 is a usage error naming the problem; the
/// hand-written parser read `std::env::args`, which panicked (exit 101).
#[test]
fn runtime_argument_that_is_not_utf8_is_a_usage_error() {
    use std::os::unix::ffi::OsStrExt;
    let d = tempfile::tempdir().unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"caf\xe9.cfg");
    let out = relay(d.path(), &[std::ffi::OsStr::new("-P"), bad]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid UTF-8"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

/// The original parsed its options with getopt(3): `-Pfd3` is `-P -f -d 3`, and the
/// check runs (exit 0 on a clean configuration, 1 on errors).
#[test]
fn runtime_original_form_takes_grouped_options() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.cfg", GOOD);
    write(d.path(), "bad.cfg", "id = spawnd { listen = { port = x } }");
    let out = relay(d.path(), &words(&["-Pfd3", "a.cfg"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = relay(
        d.path(),
        &words(&["-Pfd", "3", "-i", "tcprelay", "bad.cfg"]),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// Broken directives around a passphrase, through the real binary: `check` in every
/// format, `compile` (diagnostics on standard error) and standard input never print
/// it. The library-level generator is `props::no_variant_of_a_secret_directive_prints_the_secret`.
#[test]
fn a_passphrase_is_masked_in_every_output_of_the_binary() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        // A misspelt key, junk after the value, a forgotten `=`.
        "id = spawnd { listen = { port = 1 } }\nid = tcprelay {\n remote = { address = 127.0.0.1 port = 22 }\n tls passphrse = S3cr3t-Pa55 junk\n tls passphrase S3cr3t-Pa55\n}\n",
        // The closing quote missing on the line before.
        "id = spawnd { listen = { port = 1 } }\nid = tcprelay {\n tls cert-file = \"/etc/c.pem\n tls passphrase = \"S3cr3t-Pa55\"\n}\n",
        // In the wrong section, in a listen block, on one line.
        "id = spawnd { listen = { port = 1 tls passphrase = S3cr3t-Pa55 } ssl passphrase = {S3cr3t-Pa55} }",
    ];
    for (i, cfg) in cases.iter().enumerate() {
        let name = format!("s{i}.cfg");
        write(d.path(), &name, cfg);
        let mut outputs = Vec::new();
        for format in ["human", "short", "json"] {
            let out = cc(d.path(), &["check", "--format", format, &name]);
            assert_eq!(out.status.code(), Some(1), "{name} {format}");
            outputs.push((format!("check {format}"), stdout(&out)));
        }
        let out = cc(
            d.path(),
            &["compile", "--format", "short", &name, "-o", "p"],
        );
        outputs.push(("compile".to_string(), stderr(&out)));
        let out = cc_with_stdin(d.path(), &["check", "-"], Some(cfg.as_bytes()));
        outputs.push(("stdin".to_string(), stdout(&out)));
        for (what, text) in outputs {
            assert!(text.contains("E0"), "{name} {what}: no diagnostic:\n{text}");
            for piece in ["S3cr3t", "Pa55"] {
                assert!(!text.contains(piece), "{name} {what} shows it:\n{text}");
            }
        }
    }
}

/// The output of a file with 10,000 errors on one 160 KB line, and of a megabyte of
/// NUL bytes, is bounded in every format: 50 diagnostics, snippets cut around their
/// place, a count of the rest. It was 1.8 GB over 50 s (human) and 343 MB (JSON).
#[test]
fn huge_broken_files_print_a_bounded_output_quickly() {
    let d = tempfile::tempdir().unwrap();
    let line = format!("id = spawnd {{{} }}\n", " listen={port=x}".repeat(10_000));
    assert!(line.len() > 160_000);
    write(d.path(), "line.cfg", &line);
    std::fs::write(d.path().join("nul.cfg"), vec![0u8; 1 << 20]).unwrap();
    for (name, omitted) in [("line.cfg", "9951 more errors not shown"), ("nul.cfg", "")] {
        for format in ["human", "short", "json"] {
            let started = std::time::Instant::now();
            let out = cc(d.path(), &["check", "--format", format, name]);
            let elapsed = started.elapsed();
            assert_eq!(out.status.code(), Some(1), "{name} {format}");
            let text = stdout(&out);
            assert!(
                text.len() < 64 * 1024,
                "{name} {format}: {} bytes:\n{}",
                text.len(),
                &text[..text.len().min(2_000)]
            );
            assert!(text.contains(omitted), "{name} {format}:\n{text}");
            // A debug build on a busy machine; a release build takes a fraction of it.
            assert!(elapsed.as_secs() < 15, "{name} {format}: {elapsed:?}");
        }
    }
    // The human format: the snippet of an error far along the line is a window
    // around it, and its column is the real one.
    let out = stdout(&cc(d.path(), &["check", "--format", "human", "line.cfg"]));
    let column = line.find("x}").unwrap() + 1;
    assert!(out.contains(&format!("line.cfg:1:{column} ")), "{out}");
    assert!(out.lines().all(|l| l.chars().count() < 400), "{out}");
    // One diagnostic for the whole run of NUL bytes.
    let out = stdout(&cc(d.path(), &["check", "--format", "short", "nul.cfg"]));
    assert!(
        out.contains("nul.cfg:1:1: error[E0001]: 1048576 unexpected characters"),
        "{out}"
    );
}

/// Runs `tcprelay-cc` with `args` in `dir`; `None` when it has not finished within
/// 10 s (it is killed then).
fn cc_within_10_s(dir: &std::path::Path, args: &[&str]) -> Option<std::process::Output> {
    let mut child = std::process::Command::new(harness::bin("tcprelay-cc"))
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcprelay-cc starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().expect("try_wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some(child.wait_with_output().expect("output"))
}

/// A configuration or plan that is a symlink to /dev/zero or /dev/urandom, a FIFO or
/// a directory is refused at once with one line and exit status 2, by `check`,
/// `compile` and `explain` (it was read until memory ran out, or waited for forever).
#[test]
fn what_is_not_a_regular_file_is_refused_at_once_by_every_command() {
    let d = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.path().join("zero")).unwrap();
    std::os::unix::fs::symlink("/dev/urandom", d.path().join("random")).unwrap();
    std::fs::create_dir(d.path().join("dir")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(d.path().join("fifo"))
        .status()
        .unwrap();
    assert!(made.success());
    for (name, kind) in [
        ("zero", "a character device"),
        ("random", "a character device"),
        ("fifo", "a FIFO"),
        ("dir", "a directory"),
    ] {
        let url = format!("file://{}", d.path().join(name).display());
        for args in [
            vec!["check", name],
            vec!["check", &url],
            vec!["compile", name, "-o", "out.plan"],
            vec!["explain", name],
        ] {
            let out = cc_within_10_s(d.path(), &args)
                .unwrap_or_else(|| panic!("{args:?} did not finish within 10 s"));
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            let err = stderr(&out);
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(
                err.contains(&format!("it is {kind}")) && err.contains("not a regular file"),
                "{args:?}: {err}"
            );
        }
    }
    assert!(!d.path().join("out.plan").exists());
}

/// Standard input is capped like a file: one byte over 64 MiB is refused naming the
/// limit (exit 2), after reading at most that byte more.
#[test]
fn standard_input_over_the_limit_is_refused_naming_it() {
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(harness::bin("tcprelay-cc"))
        .args(["check", "--format", "short", "-"])
        .current_dir(d.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcprelay-cc starts");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    // A comment one byte longer than the limit: it would check (and fail with exit 1,
    // no sections) if it were read whole.
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'#'; 1 << 20];
        for _ in 0..64 {
            if pipe.write_all(&chunk).is_err() {
                return;
            }
        }
        // The child may have stopped reading: that is the point.
        let _ = pipe.write_all(b"#");
    });
    let out = child.wait_with_output().expect("tcprelay-cc runs");
    writer.join().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        "tcprelay-cc: cannot read <stdin>: it is larger than 64 MiB, the limit for a configuration\n"
    );
}
