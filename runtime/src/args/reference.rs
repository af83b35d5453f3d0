//! The generated references of the runtime's command line: the man pages
//! `docs/man/tcprelay.1` and `docs/man/tcprelay-ctl.1` and the shell completions `docs/completions/{tcprelay.bash,
//! _tcprelay,tcprelay.fish}`, made from [`super::command`] with `clap_mangen` and
//! `clap_complete` (development dependencies only: the runtime does not carry its
//! generators). The page's sections that are not about arguments (signals,
//! environment, files, exit status, examples) are [`MORE`], roff written here.
//!
//! The tests check that the committed files are what the definition gives now;
//! `TCPRELAY_BLESS=1 cargo test -p tcprelay --lib args` rewrites them.

use clap_complete::aot::{generate, Shell};
use clap_mangen::roff::{bold, italic, roman, Roff};
use clap_mangen::Man;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

fn bless() -> bool {
    std::env::var_os("TCPRELAY_BLESS").is_some_and(|v| v == "1")
}

/// The sections after OPTIONS and COMMANDS, which clap has nothing to make from.
const MORE: &str = r#".SH SIGNALS
Signals are meant for the master process (its pid is in the
.B pidfile
when the plan names one).
.TP
.B SIGHUP
Reload: re-read the plan file (or compile the configuration again), bind any new
listener, start a new generation of workers and let the old ones drain (until the
new plan's
.BR "drain timeout" ,
if it has one, and at most
.B "drain generations"
old generations at once: the oldest beyond are stopped).
No connection is cut or refused: the listening sockets of addresses that stay in the
plan are never closed.
A new plan that does not load or validate, or an address that cannot be bound, is
logged and the running generation is kept.
The new plan's
.B setenv
lines are checked before anything changes and set once its listeners are bound, for
the new generation; a variable it no longer sets keeps its value.
Its pidfile, user, group and working directory take effect at the next start.
.TP
.BR SIGTERM ", " SIGINT
Stop gracefully: close the listeners and give the workers' sessions 30 seconds to
finish, then exit.
A second
.B SIGTERM
or
.B SIGINT
stops at once.
.TP
.B SIGUSR1
Log the live state: one line from the master with the generation and each worker's
pid, generation, and whether it is full or draining (with a drain timeout, in how many
seconds its sessions are closed); when remotes are checked, one line from the master
with each checked remote's health (up or down, the last check's result, how long it
took and when); then one line from each worker
with its sessions, the sessions it has served, the clients the acl denied (when there
is one) and those its PROXY-accepting listeners refused (when there are any), and
every remote with its state (alive, dead, or down by its health checks) and its sessions.
.PP
.B SIGHUP
sent to a worker instead drains that worker: it stops accepting, finishes its sessions
and exits, and the master starts a replacement.
.SH ENVIRONMENT
.TP
.B IO_POLL_MECHANISM
The workers' event mechanism, numbered as in the original:
.B 4
epoll (Linux),
.B 1
kqueue (BSD and macOS),
.B 8
poll(2),
.B 16
select(2),
.B 64
io_uring (Linux: readiness through its multishot poll, where the kernel lets the
process use it; not in the original).
Unset or empty selects the operating system's best (epoll on Linux, kqueue on BSD).
A value that is not a mechanism of this system, or io_uring where the kernel refuses
it (kernel.io_uring_disabled, a container's seccomp profile), is an error that names
the choices.
It may also be set with a
.B setenv
line of the configuration.
.TP
.B NOTIFY_SOCKET
Set by systemd for a unit of
.BR Type=notify :
the master sends
.B READY=1
once its listeners are bound and its workers started (with
.B MAINPID=
its own pid, after going to the background),
.B RELOADING=1
when a reload starts and
.B READY=1
when it ends, well or not (its
.B STATUS=
says which generation is served), and
.B STOPPING=1
on a graceful stop.
A path, or an abstract socket when it starts with
.BR @ .
The master takes it out of the environment of its workers and compilers.
A message that cannot be sent is logged once and changes nothing else.
.TP
.B TCPRELAY_CC
The
.B tcprelay\-cc
to run for the original's command line.
Default: the one beside the
.B tcprelay
binary, else the one on the
.BR PATH .
.SH FILES
.TP
.I /etc/tcprelay/relay.cfg
A configuration, conventionally; its language is described in
.BR tcprelay.conf (5).
.TP
.I plan
A plan compiled by
.BR "tcprelay\-cc compile" ,
written with mode 0600 when it holds a TLS passphrase.
.TP
.I pidfile
The master's pid, written after the listeners are bound (directive
.BR pidfile )
and removed at exit.
.SH "EXIT STATUS"
.TP
.B 0
Stopped after
.B SIGTERM
or
.BR SIGINT ;
with
.BR \-P ,
the configuration has no error.
.TP
.B 1
The plan or configuration is bad, a listener cannot be bound, or start-up failed
(background, pidfile, privileges, working directory); with
.BR \-P ,
the configuration has errors.
.TP
.B 2
Usage error (unknown option, missing or extra argument), or the plan or configuration
named cannot be read (it does not exist, it is not a regular file) or is of the other
kind (a plan given as a configuration, a configuration given to
.BR run :
the message says which command to use); the same with
.BR \-P .
.BR tcprelay\-cc (1)
exits 2 for a file it cannot read, too.
.SH EXAMPLES
Compile once, then run in the foreground:
.PP
.EX
tcprelay\-cc compile /etc/tcprelay/relay.cfg \-o relay.plan
tcprelay run \-f relay.plan
.EE
.PP
The original's command line: check, then run and compile on every reload:
.PP
.EX
tcprelay \-P /etc/tcprelay/relay.cfg
tcprelay \-f /etc/tcprelay/relay.cfg
.EE
.PP
Reload and status:
.PP
.EX
kill \-HUP "$(cat /run/tcprelay.pid)"
kill \-USR1 "$(cat /run/tcprelay.pid)"
.EE
.SH "SEE ALSO"
.BR tcprelay\-ctl (1),
.BR tcprelay\-cc (1),
.BR tcprelay\-cc\-compile (1),
.BR tcprelay.conf (5),
.BR systemd.service (5)
.PP
The configuration language, every directive with its default:
.BR tcprelay.conf (5);
the same reference with railroad diagrams of the language is the HTML manual
installed beside these pages.
"#;

/// The man page: NAME, SYNOPSIS, DESCRIPTION and OPTIONS rendered by clap_mangen, a
/// COMMANDS section for `run`, then [`MORE`].
fn man_page() -> String {
    let mut cmd = super::command();
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let man = Man::new(cmd.clone());
    // The `.TH` line of every page of `docs/man/`, as the compiler's
    // `cli::reference::title` writes it (its tests check all pages): no date, the
    // source, the manual.
    let mut out =
        format!(".TH tcprelay 1 \"\" \"tcprelay {version}\" \"tcprelay manual\"\n").into_bytes();
    let rendered = (|| {
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
        std::io::Result::Ok(())
    })();
    rendered.expect("rendering into a Vec does not fail");
    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    for sub in cmd.get_subcommands() {
        roff.control("TP", []);
        let mut header = vec![bold(sub.get_name())];
        for positional in sub.get_positionals() {
            let name = positional.get_value_names().expect("a value name")[0].as_str();
            header.push(roman(" "));
            header.push(italic(name));
        }
        roff.text(header);
        let about = sub.get_about().expect("every subcommand has an about");
        if sub.get_name() != "run" {
            roff.text([
                roman(format!("{about}; see ")),
                bold(format!("tcprelay-{}", sub.get_name())),
                roman("(1)."),
            ]);
            continue;
        }
        let options: Vec<String> = sub
            .get_arguments()
            .filter(|a| !a.is_positional())
            .filter_map(|a| a.get_short())
            .filter(|short| !['h', 'v'].contains(short))
            .map(|short| format!("-{short}"))
            .collect();
        roff.text([roman(format!(
            "{about}; its options are {}, as above.",
            options.join(", ")
        ))]);
    }
    out.extend_from_slice(roff.render().as_bytes());
    out.extend_from_slice(MORE.as_bytes());
    String::from_utf8(out).expect("roff is UTF-8")
}

/// The sections of `tcprelay-ctl(1)` after its OPTIONS.
const MORE_CTL: &str = r#".SH REQUESTS
REMOTE is a remote as the plan prints it,
.IR ADDRESS : PORT ,
with brackets for IPv6
.RB ( [::1]:80 ).
.TP
.B status
The relay's state: its pid, uptime, plan (source and checksum), generations with
their workers and sessions, whether it is stopping, and its totals since it started
(connections accepted, refused by the access rules, shed by overload, TLS handshakes
and failures, bytes each way).
.TP
.B remotes
Every remote of the plan: its state (up, down or drained) and why, its sessions now,
connections and failed connects in all, bytes each way, weight, and when its state
last changed.
.TP
.BR sessions " [\fILIMIT\fR]"
The sessions open now (at most LIMIT of them, oldest first): client, listener,
remote, age, idle time, bytes each way.
.TP
.BI "drain " REMOTE
No new session goes to REMOTE; its sessions go on.
.TP
.BI "enable " REMOTE
REMOTE gets new sessions again.
.TP
.BI "weight " "REMOTE N"
REMOTE's weight is N until the next reload.
.TP
.B reload
Reload the plan, as
.B SIGHUP
does.
.TP
.B stop
Stop gracefully, as
.B SIGTERM
does.
.TP
.BI "diff " "NEW \fR[\fIARGS\fR]..."
What a reload to NEW (a configuration or a plan file) would change in the running
relay, and what becomes of its sessions. Not a request: it runs
.B tcprelay\-cc diff \-\-running \-\-control
.I PATH NEW ARGS...
on the socket this command found
.RB ( tcprelay\-cc
beside
.BR tcprelay ,
else on the PATH, or
.BR TCPRELAY_CC ),
ARGS being its options, and exits with its status: 0 no change, 1 changes, 2 errors.
.B \-\-json
before
.B diff
is
.BR "\-\-format json" .
.PP
The relay answers each request with one JSON document on one line, which
.B \-\-json
prints as it came: every answer has
.B ok
(true or false) and, when false,
.BR error ,
a message; the other fields are named as the tables' columns, in lower case with
underscores, durations in whole seconds
.RB ( age_s )
and bytes counted from the client's side
.RB ( bytes_in
from clients toward remotes,
.B bytes_out
back).
.SH ENVIRONMENT
Without
.BR \-s ,
the socket is the one the relay uses when its plan names no
.BR "control = { path = ... }" :
.TP
.B RUNTIME_DIRECTORY
When set (systemd's
.BR RuntimeDirectory= ),
the socket is
.IR $RUNTIME_DIRECTORY/ctl .
.TP
.B XDG_RUNTIME_DIR
Otherwise, for a user other than root, the socket is
.IR $XDG_RUNTIME_DIR/tcprelay/ctl .
.SH FILES
.TP
.I /run/tcprelay/ctl
The control socket of a relay run by root without
.BR RUNTIME_DIRECTORY .
.SH "EXIT STATUS"
.TP
.B 0
The answer says
.BR """ok"":true" .
.TP
.B 1
The answer says
.B """ok"":false"
(its error is printed on standard error), or no answer came within 75 seconds.
.TP
.B 2
The socket cannot be reached (the message names its path), or a usage error (an
unknown command, a missing or extra argument, a bad number or remote).
.PP
.B diff
exits with the status of
.BR "tcprelay\-cc diff" :
0 when NEW changes nothing, 1 when it changes something, 2 on errors.
.SH "SEE ALSO"
.BR tcprelay (1),
.BR tcprelay\-cc (1),
.BR tcprelay.conf (5)
"#;

/// `tcprelay-ctl(1)`: NAME, SYNOPSIS, DESCRIPTION and OPTIONS of the `ctl`
/// subcommand rendered by clap_mangen, then [`MORE_CTL`].
fn ctl_page() -> String {
    let mut cmd = super::command();
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let ctl = cmd
        .find_subcommand("ctl")
        .expect("ctl")
        .clone()
        .name("tcprelay-ctl")
        .display_name("tcprelay-ctl")
        .bin_name("tcprelay ctl");
    let man = Man::new(ctl);
    let mut out = format!(".TH tcprelay-ctl 1 \"\" \"tcprelay {version}\" \"tcprelay manual\"\n")
        .into_bytes();
    let rendered = (|| {
        man.render_name_section(&mut out)?;
        man.render_synopsis_section(&mut out)?;
        man.render_description_section(&mut out)?;
        man.render_options_section(&mut out)?;
        std::io::Result::Ok(())
    })();
    rendered.expect("rendering into a Vec does not fail");
    out.extend_from_slice(MORE_CTL.as_bytes());
    String::from_utf8(out).expect("roff is UTF-8")
}

/// Every generated file, by its path under `docs/`.
fn generated() -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    files.insert("man/tcprelay.1".to_string(), man_page());
    files.insert("man/tcprelay-ctl.1".to_string(), ctl_page());
    for (shell, file) in [
        (Shell::Bash, "completions/tcprelay.bash"),
        (Shell::Zsh, "completions/_tcprelay"),
        (Shell::Fish, "completions/tcprelay.fish"),
    ] {
        let mut out = Vec::new();
        generate(shell, &mut super::command(), "tcprelay", &mut out);
        files.insert(
            file.to_string(),
            String::from_utf8(out).expect("completions are UTF-8"),
        );
    }
    files
}

/// The committed man page and completions are what the definition gives now.
#[test]
fn man_page_and_completions_are_current() {
    let docs = docs();
    let mut stale = Vec::new();
    for (name, want) in &generated() {
        let path = docs.join(name);
        if bless() {
            std::fs::write(&path, want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else if std::fs::read_to_string(&path).ok().as_ref() != Some(want) {
            stale.push(name.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date in docs/: {stale:?}; refresh with \
         `TCPRELAY_BLESS=1 cargo test -p tcprelay --lib args`"
    );
}

/// The page describes both forms, every option (`-V` included) and every argument,
/// and keeps the sections written by hand.
#[test]
fn man_page_covers_every_option_and_section() {
    let page = man_page();
    let options = page
        .split(".SH OPTIONS")
        .nth(1)
        .and_then(|rest| rest.split("\n.SH ").next())
        .expect("the page has an OPTIONS section");
    let cmd = super::command();
    for arg in cmd.get_arguments() {
        if let Some(short) = arg.get_short() {
            assert!(options.contains(&format!("\\-{short}")), "-{short}");
        }
        if let Some(long) = arg.get_long() {
            assert!(options.contains(&format!("\\-\\-{long}")), "--{long}");
        }
        for alias in arg.get_all_short_aliases().unwrap_or_default() {
            assert!(options.contains(&format!("\\-{alias}")), "-{alias}");
        }
        if arg.is_positional() {
            let name = arg.get_value_names().expect("a value name")[0].as_str();
            assert!(options.contains(name), "{name}");
        }
    }
    for line in super::USAGE.lines() {
        let line = line.trim().replace('-', "\\-");
        let rest = line.strip_prefix("tcprelay").expect("a form");
        assert!(page.contains(rest), "SYNOPSIS: {line}");
    }
    for section in [
        ".SH COMMANDS\n.TP\n\\fBrun\\fR \\fIPLAN\\fR",
        ".SH SIGNALS",
        ".SH ENVIRONMENT",
        ".SH FILES",
        ".SH \"EXIT STATUS\"",
        ".SH EXAMPLES",
        ".SH \"SEE ALSO\"",
    ] {
        assert!(page.contains(section), "{section}:\n{page}");
    }
    let version = format!("\"tcprelay {}\"", env!("CARGO_PKG_VERSION"));
    assert!(page.contains(&version), "the .TH line names {version}");
}

/// Completes `words` (the last one being completed) with the bash script, as bash
/// would on TAB.
fn bash_complete(script: &str, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cword = words.len() - 1;
    let program = format!(
        "{script}\nCOMP_WORDS=({words}); COMP_CWORD={cword}\n\
         _tcprelay tcprelay {cur} {prev}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
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

/// bash completes `run` and each form's options: `-P` and `-i` in the original's
/// form, not after `run`.
#[test]
fn bash_completes_run_and_each_forms_options() {
    let files = generated();
    let script = &files["completions/tcprelay.bash"];
    assert!(bash_complete(script, &["tcprelay", "ru"]).contains(&"run".to_string()));
    let original = bash_complete(script, &["tcprelay", "-"]);
    for option in ["-P", "-f", "-b", "-d", "-i", "-v", "--version", "-h"] {
        assert!(
            original.contains(&option.to_string()),
            "{option}: {original:?}"
        );
    }
    let run = bash_complete(script, &["tcprelay", "run", "-"]);
    for option in ["-f", "-b", "-d", "-v", "-h"] {
        assert!(run.contains(&option.to_string()), "{option}: {run:?}");
    }
    for option in ["-P", "-i"] {
        assert!(!run.contains(&option.to_string()), "{option}: {run:?}");
    }
    let ctl = bash_complete(script, &["tcprelay", "ctl", "-"]);
    for option in ["-s", "--socket", "--json", "-h"] {
        assert!(ctl.contains(&option.to_string()), "{option}: {ctl:?}");
    }
    assert!(!ctl.contains(&"-P".to_string()), "{ctl:?}");
}
