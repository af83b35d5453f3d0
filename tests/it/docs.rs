//! Every command the documentation shows is run here, so that no example goes stale.
//!
//! Where the commands come from: the ```` ```sh ```` and ```` ```yaml ```` blocks of
//! `README.md` and `docs/*.md`, the `.EX`/`.EE` examples of the man pages in
//! `docs/man/`, and the `Exec…=` lines of `examples/tcprelay.service`. A command is a
//! line whose first word is `tcprelay-cc` or `tcprelay`, with or without a directory
//! (`target/release/tcprelay-cc`, `/usr/local/bin/tcprelay`); a trailing `&` and a
//! trailing `# comment` are dropped. Other lines (`cargo build`, `kill`) are not run.
//!
//! How they run: in order, per source file, in a fresh copy of the repository's
//! `examples/`, `docs/` and `tests/ui/` (commands name files as from the repository
//! root), with the freshly built binaries. `/etc/tcprelay/` stands for a directory that
//! holds the example configurations and test certificates (`fullchain.pem`,
//! `privkey.pem`). A command must exit 0, or `N` where its line ends in `# exits N` or a
//! line `# exits N` comes before it in its block.
//!
//! `tcprelay-cc` commands run as written, through `sh`. `tcprelay` commands would start
//! a relay (on fixed ports, never stopping), so they are checked without serving: the
//! runtime's own parser (`tcprelay::args::parse`) reads the arguments; `run PLAN` loads
//! and validates the plan as the runtime does at start (`tcprelay::load::read_plan`);
//! the original's form runs as `tcprelay -P` with the same arguments, which compiles the
//! configuration exactly as a start would; `-P`, `--help` and `--version` run as is.

use crate::harness::{self, bin};
use std::path::{Path, PathBuf};
use std::process::Command;
use tcprelay::args::{Mode, PlanSource};

/// A documented command: where it is shown, the line as written, the exit status the
/// documentation expects.
#[derive(Debug, Clone)]
struct Shown {
    source: String,
    line: String,
    exits: i32,
}

/// The program and its arguments, if `line` is a tcprelay command; comments and a
/// trailing `&` removed.
fn command(line: &str) -> Option<(String, String)> {
    let line = line.split(" #").next().unwrap_or(line).trim();
    let line = line.strip_suffix('&').unwrap_or(line).trim();
    let first = line.split_whitespace().next()?;
    let name = first.rsplit('/').next()?;
    ["tcprelay-cc", "tcprelay"]
        .contains(&name)
        .then(|| (name.to_string(), line[first.len()..].trim().to_string()))
}

/// `# exits N` at the end of `line`, or as the whole line.
fn exits(line: &str) -> Option<i32> {
    line.split("# exits ").nth(1)?.trim().parse().ok()
}

/// The commands of a Markdown file's `sh` and `yaml` blocks.
fn from_markdown(source: &str, text: &str) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    let mut default_exit = 0;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(language) = trimmed.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(language.to_string()),
            };
            default_exit = 0;
            continue;
        }
        let Some(language) = &block else { continue };
        if !["sh", "yaml"].contains(&language.as_str()) {
            continue;
        }
        if trimmed.starts_with('#') {
            default_exit = exits(trimmed).unwrap_or(default_exit);
            continue;
        }
        let text = trimmed.trim_start_matches("- ").trim_start_matches("run: ");
        if command(text).is_some() {
            out.push(Shown {
                source: source.to_string(),
                line: text.to_string(),
                exits: exits(text).unwrap_or(default_exit),
            });
        }
    }
    out
}

/// The commands of a man page's `.EX`/`.EE` examples.
fn from_man_page(source: &str, text: &str) -> Vec<Shown> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        match line {
            ".EX" => inside = true,
            ".EE" => inside = false,
            _ if inside => {
                let line = line.replace("\\-", "-");
                if command(&line).is_some() {
                    out.push(Shown {
                        source: source.to_string(),
                        exits: exits(&line).unwrap_or(0),
                        line,
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The commands of a systemd unit's `ExecStartPre=`, `ExecStart=` and `ExecReload=`.
fn from_unit(source: &str, text: &str) -> Vec<Shown> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(key, _)| ["ExecStartPre", "ExecStart", "ExecReload"].contains(key))
        .map(|(_, value)| value.trim_start_matches(['-', '@', '+', '!']).to_string())
        .filter(|line| command(line).is_some())
        .map(|line| Shown {
            source: source.to_string(),
            line,
            exits: 0,
        })
        .collect()
}

/// Every documented command, by source file.
fn documented() -> Vec<(String, Vec<Shown>)> {
    let root = harness::root();
    let read = |path: &str| {
        std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    let mut sources = vec!["README.md".to_string()];
    let mut listed = |dir: &str, ext: &str| {
        let mut names: Vec<String> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(ext))
            .map(|n| format!("{dir}/{n}"))
            .collect();
        names.sort();
        sources.extend(names);
    };
    listed("docs", ".md");
    listed("docs/man", ".1");
    sources.push("examples/tcprelay.service".to_string());
    sources
        .into_iter()
        .map(|source| {
            let text = read(&source);
            let shown = if source.ends_with(".md") {
                from_markdown(&source, &text)
            } else if source.ends_with(".1") {
                from_man_page(&source, &text)
            } else {
                from_unit(&source, &text)
            };
            (source, shown)
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A fresh copy of what the commands read; returns the directory standing for
/// `/etc/tcprelay/`.
fn workspace(work: &Path) -> PathBuf {
    let root = harness::root();
    for dir in ["examples", "docs", "tests/ui"] {
        copy_dir(&root.join(dir), &work.join(dir));
    }
    let etc = work.join("etc/tcprelay");
    harness::make_certs(&etc);
    for (from, to) in [("cert.pem", "fullchain.pem"), ("key.pem", "privkey.pem")] {
        std::fs::copy(etc.join(from), etc.join(to)).expect("copy cert");
    }
    for entry in std::fs::read_dir(root.join("examples")).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "cfg") {
            std::fs::copy(&path, etc.join(path.file_name().unwrap())).expect("copy cfg");
        }
    }
    etc
}

/// Runs one documented command in `work`; a failure description, or `None`.
fn run(shown: &Shown, work: &Path, etc: &Path) -> Option<String> {
    let line = shown
        .line
        .replace("/etc/tcprelay/", &format!("{}/", etc.display()));
    let (program, args) = command(&line).expect("a command");
    let cc = bin("tcprelay-cc");
    let bin_dir = cc.parent().expect("the binaries' directory").to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let shell = |script: &str| {
        Command::new("sh")
            .args(["-c", script])
            .current_dir(work)
            .env("PATH", &path)
            .env("TCPRELAY_CC", &cc)
            .env_remove("NO_COLOR")
            .output()
            .expect("sh runs")
    };
    let describe = |o: &std::process::Output, want: i32| {
        (o.status.code() != Some(want)).then(|| {
            format!(
                "exit {:?}, documented {want}\n{}{}",
                o.status.code(),
                harness::stdout(o),
                harness::stderr(o)
            )
        })
    };
    if program == "tcprelay-cc" {
        return describe(&shell(&format!("tcprelay-cc {args}")), shown.exits);
    }
    if args.contains(['"', '\'', '|', '<', '>', ';', '$', '`']) {
        return Some("keep tcprelay commands to plain words: no quotes or shell syntax".into());
    }
    let words: Vec<String> = args.split_whitespace().map(str::to_string).collect();
    let parsed = tcprelay::args::parse(words.clone());
    match parsed {
        // `--help` and `--version` (clap reports them as errors that exit 0).
        Err(e) if e.exit_code() == 0 => describe(
            &shell(&format!("tcprelay {}", words.join(" "))),
            shown.exits,
        ),
        Err(_) if shown.exits == 2 => None,
        Err(e) => Some(format!("tcprelay rejects the arguments: {e}")),
        Ok(args) => match args.mode {
            Mode::Run(PlanSource::Plan(plan)) => {
                let plan = work.join(plan);
                match tcprelay::load::read_plan(&plan) {
                    Ok(_) if shown.exits == 0 => None,
                    Ok(_) => Some(format!("the plan loads, documented exit {}", shown.exits)),
                    Err(_) if shown.exits == 1 => None,
                    Err(e) => Some(format!("the plan does not load: {e}")),
                }
            }
            Mode::Run(PlanSource::Config { .. }) => describe(
                &shell(&format!("tcprelay -P {}", words.join(" "))),
                shown.exits,
            ),
            Mode::ParseOnly(_) => describe(
                &shell(&format!("tcprelay {}", words.join(" "))),
                shown.exits,
            ),
            // Parsed, its request too; answering it needs a running relay, which
            // `ctl.rs` stands in for (`ctl diff` too, with a real one).
            Mode::Ctl(_) | Mode::CtlDiff(_) => None,
        },
    }
}

#[test]
fn every_command_in_the_docs_runs_as_documented() {
    let work = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    let mut counts = Vec::new();
    for (source, commands) in documented() {
        // Each source starts from a fresh copy: one page's commands may write files.
        let dir = work.path().join(source.replace('/', "_"));
        let etc = workspace(&dir);
        counts.push((source.clone(), commands.len()));
        for shown in &commands {
            if let Some(problem) = run(shown, &dir, &etc) {
                failures.push(format!("{}: `{}`: {problem}", shown.source, shown.line));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The extraction itself: the pages that show commands still yield them.
    for (source, at_least) in [
        ("README.md", 2),
        ("docs/editors.md", 4),
        ("docs/migration.md", 5),
        ("docs/man/tcprelay.1", 4),
        ("docs/man/tcprelay-cc.1", 5),
        ("examples/tcprelay.service", 3),
    ] {
        let found = counts
            .iter()
            .find(|(s, _)| s == source)
            .map_or(0, |(_, n)| *n);
        assert!(
            found >= at_least,
            "{source}: {found} commands found, expected {at_least} or more: {counts:?}"
        );
    }
}

#[test]
fn extraction_reads_each_form() {
    let md = "text\n```sh\ncargo build\ntarget/release/tcprelay-cc check a.cfg\n\
              tcprelay run -f x.plan &\n# exits 1\ntcprelay-cc check bad.cfg\n```\n\
              ```text\ntcprelay-cc not run\n```\n```yaml\n- run: tcprelay-cc check b.cfg  # exits 2\n```\n";
    let shown = from_markdown("x.md", md);
    let lines: Vec<(&str, i32)> = shown.iter().map(|s| (s.line.as_str(), s.exits)).collect();
    assert_eq!(
        lines,
        [
            ("target/release/tcprelay-cc check a.cfg", 0),
            ("tcprelay run -f x.plan &", 0),
            ("tcprelay-cc check bad.cfg", 1),
            ("tcprelay-cc check b.cfg  # exits 2", 2),
        ]
    );
    assert_eq!(
        command("target/release/tcprelay run -f x.plan &"),
        Some(("tcprelay".into(), "run -f x.plan".into()))
    );
    let man = ".PP\n.EX\ntcprelay \\-P a.cfg\nkill \\-HUP 1\n.EE\ntcprelay not shown\n";
    assert_eq!(from_man_page("x.1", man)[0].line, "tcprelay -P a.cfg");
    let unit =
        "ExecStartPre=-/usr/bin/tcprelay-cc check a.cfg\nExecReload=/bin/kill -HUP $MAINPID\n";
    assert_eq!(
        from_unit("x.service", unit)[0].line,
        "/usr/bin/tcprelay-cc check a.cfg"
    );
}

/// `systemd-analyze` accepts the example unit (with the binaries' paths pointed at the
/// built ones) without a warning, and rates its exposure "OK" or better.
#[test]
fn systemd_unit_verifies() {
    let text = std::fs::read_to_string(harness::root().join("examples/tcprelay.service"))
        .expect("examples/tcprelay.service");
    // The reload goes through the control socket at its default path
    // ($RUNTIME_DIRECTORY/ctl), so that `systemctl reload` fails on a bad
    // configuration: one ExecReload, `tcprelay ctl reload`.
    let reloads: Vec<Mode> = text
        .lines()
        .filter_map(|l| l.strip_prefix("ExecReload="))
        .map(|l| {
            let words: Vec<String> = l.split_whitespace().skip(1).map(str::to_string).collect();
            tcprelay::args::parse(words)
                .expect("tcprelay arguments")
                .mode
        })
        .collect();
    assert!(
        matches!(
            reloads.as_slice(),
            [Mode::Ctl(tcprelay::ctl::client::Ctl {
                socket: None,
                request: tcprelay::ctl::Request::Reload,
                json: false
            })]
        ),
        "the unit reloads with `tcprelay ctl reload`: {reloads:?}"
    );
    let bin_dir = bin("tcprelay").parent().expect("dir").to_path_buf();
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = dir.path().join("tcprelay.service");
    std::fs::write(
        &unit,
        text.replace("/usr/local/bin/", &format!("{}/", bin_dir.display())),
    )
    .expect("write unit");
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze is missing ({e}): install it with `apt-get install systemd`")
        });
    assert!(
        verify.status.success() && verify.stderr.is_empty() && verify.stdout.is_empty(),
        "systemd-analyze verify: {}{}",
        harness::stdout(&verify),
        harness::stderr(&verify)
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze security");
    let report = harness::stdout(&security);
    let level: f64 = report
        .split("Overall exposure level for tcprelay.service: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    assert!(level <= 2.0, "exposure {level}:\n{report}");
}

/// The README's `install` lines, with `/usr/local/` pointed at a temporary prefix, put
/// the man pages where `man` finds them and the completions where the shells look.
/// (The `cargo install` lines are not run: they would build everything again.)
#[test]
fn readme_install_lines_put_pages_and_completions_in_place() {
    let root = harness::root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let prefix = tempfile::tempdir().expect("temp dir");
    let lines: Vec<String> = readme
        .lines()
        .filter(|l| l.starts_with("install "))
        .map(|l| l.replace("/usr/local/", &format!("{}/", prefix.path().display())))
        .collect();
    assert_eq!(lines.len(), 7, "the README's install lines");
    for line in &lines {
        let out = Command::new("sh")
            .args(["-c", line])
            .current_dir(&root)
            .output()
            .expect("sh runs");
        assert!(out.status.success(), "{line}: {}", harness::stderr(&out));
    }
    let share = prefix.path().join("share");
    for (page, section) in [
        ("tcprelay", "man1"),
        ("tcprelay-cc", "man1"),
        ("tcprelay-cc-check", "man1"),
        ("tcprelay-cc-compile", "man1"),
        ("tcprelay.conf", "man5"),
    ] {
        let out = Command::new("man")
            .arg("-M")
            .arg(share.join("man"))
            .args(["-w", page])
            .output()
            .expect("man runs (Debian's man-db)");
        assert!(
            out.status.success() && harness::stdout(&out).contains(section),
            "man -w {page}: {}",
            harness::stderr(&out)
        );
    }
    for file in [
        "bash-completion/completions/tcprelay-cc",
        "zsh/site-functions/_tcprelay-cc",
        "fish/vendor_completions.d/tcprelay-cc.fish",
        "bash-completion/completions/tcprelay",
        "zsh/site-functions/_tcprelay",
        "fish/vendor_completions.d/tcprelay.fish",
        "doc/tcprelay/index.html",
    ] {
        assert!(share.join(file).is_file(), "{file} was not installed");
    }
    // bash loads the installed file and completes a subcommand's options with it.
    let script = format!(
        "source {}\nCOMP_WORDS=(tcprelay-cc check --format ''); COMP_CWORD=3\n\
         _tcprelay__cc tcprelay-cc '' --format\necho \"${{COMPREPLY[@]}}\"",
        share
            .join("bash-completion/completions/tcprelay-cc")
            .display()
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &script])
        .output()
        .expect("bash runs");
    assert_eq!(harness::stdout(&out).trim(), "human short json");
    // And the runtime's: `run`'s options, without the original form's `-P` and `-i`.
    let script = format!(
        "source {}\nCOMP_WORDS=(tcprelay run -); COMP_CWORD=2\n\
         _tcprelay tcprelay - run\necho \"${{COMPREPLY[@]}}\"",
        share.join("bash-completion/completions/tcprelay").display()
    );
    let out = Command::new("bash")
        .args(["--norc", "-c", &script])
        .output()
        .expect("bash runs");
    let completed = harness::stdout(&out);
    let words: Vec<&str> = completed.split_whitespace().collect();
    assert!(words.contains(&"-f") && words.contains(&"-d"), "{words:?}");
    assert!(
        !words.contains(&"-P") && !words.contains(&"-i"),
        "{words:?}"
    );
}
