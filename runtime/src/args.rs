//! The command line: raw arguments become a validated [`Args`] here, nowhere else.
//!
//! ```text
//! tcprelay run [-f|-b] [-d LEVEL] PLAN
//! tcprelay ctl [-s PATH] [--json] COMMAND [ARGS]...
//! tcprelay [-P] [-f|-b] [-d LEVEL] [-i CHILD_ID] CFG [ID]      (the original's form)
//! ```
//!
//! The definition is clap's ([`command`]), so that the man page `docs/man/tcprelay.1`
//! and the shell completions in `docs/completions/` are generated from it and cannot
//! drift from what the program accepts (`args/reference.rs`, whose generators are
//! development dependencies only). The forms are one command: `run` and `ctl` are its
//! subcommands, and the original's options and positional arguments are the command's
//! own. A line whose first argument is neither `run` nor `ctl` is parsed by the
//! original's form alone, so that `run` or `ctl` elsewhere is a file name, as it
//! always was (a configuration named `ctl` is given as `./ctl` or `-- ctl`).
//!
//! The original's form compiles CFG with `tcprelay-cc` (found beside this binary, or
//! through `TCPRELAY_CC`, or on the PATH) so that the runtime never links the parser.

use clap::{Arg, ArgAction, Args as _, CommandFactory, FromArgMatches, Parser, ValueHint};
use std::ffi::OsString;
use std::path::PathBuf;

#[cfg(test)]
mod reference;

/// Where the plan comes from; kept for re-reading it on SIGHUP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanSource {
    /// A compiled plan file.
    Plan(PathBuf),
    /// A configuration (path, `-` or URL) compiled at start and at every reload.
    Config {
        cfg: String,
        spawnd_id: String,
        child_id: String,
    },
}

impl std::fmt::Display for PlanSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanSource::Plan(p) => write!(f, "{}", p.display()),
            PlanSource::Config { cfg, .. } => f.write_str(cfg),
        }
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Run the relay.
    Run(PlanSource),
    /// `-P`: check the configuration and exit with `tcprelay-cc check`'s code.
    ParseOnly(PlanSource),
    /// `tcprelay ctl`: ask a running relay through its control socket.
    Ctl(crate::ctl::client::Ctl),
    /// `tcprelay ctl diff NEW [ARGS...]`: `tcprelay-cc diff --running` on the
    /// relay's control socket.
    CtlDiff(crate::ctl::diff::Diff),
}

/// Validated arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub mode: Mode,
    /// `-d LEVEL`: debug output (also keeps the process in the foreground).
    pub debug: u32,
    /// `-f` (true) / `-b` (false) override the plan's `background`.
    pub foreground: Option<bool>,
}

const ABOUT: &str = "Relays TCP connections to weighted backends, as a supervised pool of workers";

const LONG_ABOUT: &str = "\
tcprelay accepts TCP (or SCTP, or Unix-socket) connections on the listeners of its plan \
and relays each to one of the plan's remotes, chosen by weighted least-connections, \
with failover to the next remote when a connect fails. Listeners may terminate TLS, so \
that a plain backend is served over TLS.

The master process binds the listening sockets, drops its privileges and forks \
workers; each worker relays many sessions in one event loop. The master starts \
`servers min` workers, adds one whenever every worker is full (up to `servers max`), \
and replaces workers that die or retire.

The first form (`tcprelay run PLAN`) runs a plan compiled by `tcprelay-cc compile`. \
The second is the original tcprelay's command line: it compiles CONFIGURATION (a path, \
`-` for standard input, or a file://, http:// or https:// URL) by running tcprelay-cc, \
and compiles it again on every reload. Either way the plan is decoded and validated \
before any socket is bound, and a bad plan is one error line and exit status 1.";

const CTL_ABOUT: &str = "\
Sends one request to a running relay's control socket and prints the answer: `status` \
as `key: value` lines and a table of generations, `remotes` and `sessions` as tables, \
`plan` as its generation, sessions and certificates, the other commands' message; with \
--json, the answer as it came. Exit status 0 when the relay did what was asked, 1 when \
it answered with an error (printed on standard error) or did not answer, 2 when the \
socket cannot be reached or the request is wrong.

`tcprelay ctl diff NEW [ARGS]...` shows what a reload to NEW (a configuration or a plan \
file) would change in the running relay: it runs `tcprelay-cc diff --running --control \
PATH NEW ARGS...` on the socket this command resolves (tcprelay-cc beside this program, \
else on the PATH), ARGS being tcprelay-cc diff's options, and exits with its status: 0 \
no change, 1 changes, 2 errors. --json before `diff` is `--format json`.";

/// The usage of the three forms (the man page's SYNOPSIS too); `usage_names_every_option`
/// checks it against the definition.
const USAGE: &str = "\
tcprelay run [-f|-b] [-d LEVEL] <PLAN>
       tcprelay ctl [-s PATH] [--json] <COMMAND> [ARGS]...
       tcprelay [-P] [-f|-b] [-d LEVEL] [-i CHILD_ID] <CONFIGURATION> [ID]";

/// The options both forms take.
#[derive(Debug, clap::Args)]
struct Output {
    /// Stay in the foreground and log to standard error (overrides the plan's
    /// `background`)
    ///
    /// Without -f or -b, the plan's `background` directive decides (default:
    /// foreground).
    #[arg(short = 'f', overrides_with = "background")]
    foreground: bool,
    /// Go to the background and log to syslog (overrides the plan's `background`)
    #[arg(short = 'b', overrides_with = "foreground")]
    background: bool,
    /// Debug output at LEVEL, to standard error; also keeps the process in the
    /// foreground
    #[arg(short = 'd', value_name = "LEVEL", default_value_t = 0)]
    debug: u32,
}

impl Output {
    fn foreground(&self) -> Option<bool> {
        match (self.foreground, self.background) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

/// The original's form.
#[derive(Debug, Parser)]
#[command(
    name = "tcprelay",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    override_usage = USAGE,
    disable_version_flag = true,
    args_override_self = true
)]
struct Original {
    /// Check the configuration only, as `tcprelay-cc check` does, and exit with its
    /// status (0 clean, 1 errors, 2 usage or I/O error)
    ///
    /// Not with `run`.
    #[arg(short = 'P')]
    parse_only: bool,
    #[command(flatten)]
    output: Output,
    /// The id of the tcprelay section
    ///
    /// Not with `run`.
    #[arg(short = 'i', value_name = "CHILD_ID", default_value = "tcprelay")]
    child_id: String,
    /// The configuration: a path, `-` for standard input, or a file://, http:// or
    /// https:// URL
    #[arg(value_name = "CONFIGURATION", value_hint = ValueHint::AnyPath)]
    config: String,
    /// The id of the spawnd section
    #[arg(value_name = "ID", default_value = "spawnd")]
    id: String,
}

/// `tcprelay run`.
#[derive(Debug, clap::Args)]
struct Run {
    #[command(flatten)]
    output: Output,
    /// The plan file
    #[arg(value_name = "PLAN", value_hint = ValueHint::FilePath)]
    plan: PathBuf,
}

/// `tcprelay ctl`.
#[derive(Debug, clap::Args)]
struct CtlArgs {
    /// The relay's control socket
    ///
    /// Default: $RUNTIME_DIRECTORY/ctl when RUNTIME_DIRECTORY is set, else
    /// /run/tcprelay/ctl as root, else $XDG_RUNTIME_DIR/tcprelay/ctl, as the relay
    /// resolves it when its plan names no path.
    #[arg(short = 's', long = "socket", value_name = "PATH", value_hint = ValueHint::FilePath)]
    socket: Option<PathBuf>,
    /// Print the answer as it came: one JSON document on one line
    #[arg(long = "json")]
    json: bool,
    /// The request: status, remotes, plan, sessions [LIMIT], drain REMOTE, enable
    /// REMOTE, weight REMOTE N, reload, stop (REMOTE is ADDRESS:PORT[/tcp|/sctp],
    /// [::1]:80 for IPv6); or diff NEW [ARGS]... (run by tcprelay-cc)
    #[arg(value_name = "COMMAND", required = true, num_args = 1..)]
    command: Vec<String>,
}

/// `-v`, `-V`, `--version`: the original's `-v` and clap's `-V` both.
fn version_flag() -> Arg {
    Arg::new("version")
        .short('v')
        .short_alias('V')
        .long("version")
        .action(ArgAction::Version)
        .help("Print the version (-V also)")
}

/// The original's form alone: what parses a line that does not start with `run`.
fn original() -> clap::Command {
    Original::command().arg(version_flag())
}

/// The command line's definition: the original's form, with `run` as its one
/// subcommand, which cannot be mixed with the original's arguments. It parses a line
/// that starts with `run`, prints `--help`, and is what the man page and the shell
/// completions are generated from (see the tests in `args/reference.rs`).
pub fn command() -> clap::Command {
    let run = Run::augment_args(clap::Command::new("run"))
        .about("Run a plan compiled by `tcprelay-cc compile`")
        .args_override_self(true)
        // `tcprelay run -v` prints `tcprelay 0.1.0`, as `tcprelay -v` does.
        .display_name("tcprelay")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .arg(version_flag());
    let ctl = CtlArgs::augment_args(clap::Command::new("ctl"))
        .about("Ask a running relay, or tell it what to do, through its control socket")
        .long_about(CTL_ABOUT)
        .override_usage("tcprelay ctl [-s PATH] [--json] <COMMAND> [ARGS]...")
        .args_override_self(true)
        .display_name("tcprelay ctl")
        .disable_version_flag(true);
    original()
        .subcommand(run)
        .subcommand(ctl)
        .args_conflicts_with_subcommands(true)
        .subcommand_negates_reqs(true)
        .disable_help_subcommand(true)
}

/// Parses the arguments after the program name. `--help` and `--version` are errors
/// of the kinds [`clap::error::ErrorKind::DisplayHelp`] and `DisplayVersion`, whose
/// exit code is 0: print any error with `print` and exit with its `exit_code`.
///
/// As with the hand-written parser this replaced, `run` is the subcommand only as the
/// first argument: elsewhere it is a configuration file or a section id.
pub fn parse<I, T>(args: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let argv = std::iter::once(OsString::from("tcprelay")).chain(args.iter().cloned());
    if args.first().is_some_and(|a| a == "ctl") {
        let mut cmd = command();
        let usage = |cmd: &mut clap::Command, e: String| {
            let mut sub = cmd.find_subcommand_mut("ctl").expect("ctl").clone();
            sub.error(clap::error::ErrorKind::ValueValidation, e)
        };
        // `diff`: ctl's options before it, the compiler's arguments after it.
        if let Some(at) = crate::ctl::diff::position(&args) {
            let matches = cmd.try_get_matches_from_mut(argv.take(at + 2))?;
            let (_, matches) = matches.subcommand().expect("`ctl` is the first argument");
            let ctl = CtlArgs::from_arg_matches(matches).map_err(|e| e.format(&mut cmd))?;
            let rest = args[at + 1..].to_vec();
            if rest.is_empty() {
                return Err(usage(
                    &mut cmd,
                    "`diff` needs NEW: `diff NEW [ARGS]...`".to_string(),
                ));
            }
            return Ok(Args {
                mode: Mode::CtlDiff(crate::ctl::diff::Diff {
                    socket: ctl.socket,
                    json: ctl.json,
                    args: rest,
                }),
                debug: 0,
                foreground: None,
            });
        }
        let matches = cmd.try_get_matches_from_mut(argv)?;
        let (_, matches) = matches.subcommand().expect("`ctl` is the first argument");
        let ctl = CtlArgs::from_arg_matches(matches).map_err(|e| e.format(&mut cmd))?;
        let request = crate::ctl::Request::from_words(&ctl.command).map_err(|e| {
            let e = if e.starts_with("unknown command") {
                format!("{e}, or diff NEW [ARGS]...")
            } else {
                e
            };
            usage(&mut cmd, e)
        })?;
        return Ok(Args {
            mode: Mode::Ctl(crate::ctl::client::Ctl {
                socket: ctl.socket,
                request,
                json: ctl.json,
            }),
            debug: 0,
            foreground: None,
        });
    }
    if args.first().is_some_and(|a| a == "run") {
        let mut cmd = command();
        let matches = cmd.try_get_matches_from_mut(argv)?;
        let (_, matches) = matches.subcommand().expect("`run` is the first argument");
        let run = Run::from_arg_matches(matches).map_err(|e| e.format(&mut cmd))?;
        return Ok(Args {
            mode: Mode::Run(PlanSource::Plan(run.plan)),
            debug: run.output.debug,
            foreground: run.output.foreground(),
        });
    }
    let mut cmd = original();
    let matches = match cmd.try_get_matches_from_mut(argv) {
        Ok(matches) => matches,
        // The help of the whole command line, which lists `run`.
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let long = args.iter().any(|a| a == "--help");
            let flag = if long { "--help" } else { "-h" };
            return Err(command()
                .try_get_matches_from(["tcprelay", flag])
                .expect_err("help is an error"));
        }
        Err(e) => return Err(e),
    };
    let cli = Original::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
    let source = PlanSource::Config {
        cfg: cli.config,
        spawnd_id: cli.id,
        child_id: cli.child_id,
    };
    Ok(Args {
        mode: if cli.parse_only {
            Mode::ParseOnly(source)
        } else {
            Mode::Run(source)
        },
        debug: cli.output.debug,
        foreground: cli.output.foreground(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn p(args: &[&str]) -> Result<Args, clap::Error> {
        parse(args.iter().copied())
    }

    fn config(cfg: &str, spawnd_id: &str, child_id: &str) -> PlanSource {
        PlanSource::Config {
            cfg: cfg.into(),
            spawnd_id: spawnd_id.into(),
            child_id: child_id.into(),
        }
    }

    /// The kind of the error `args` give, and its text as printed.
    fn error(args: &[&str]) -> (ErrorKind, String) {
        let e = p(args).expect_err("an error");
        (e.kind(), e.render().to_string())
    }

    #[test]
    fn debug_definition_is_valid() {
        command().debug_assert();
    }

    #[test]
    fn run_form() {
        let a = p(&["run", "-f", "x.plan"]).unwrap();
        assert_eq!(a.mode, Mode::Run(PlanSource::Plan("x.plan".into())));
        assert_eq!(a.foreground, Some(true));
        assert_eq!(a.debug, 0);
        let b = p(&["run", "x.plan", "-b", "-d", "2"]).unwrap();
        assert_eq!(b.mode, Mode::Run(PlanSource::Plan("x.plan".into())));
        assert_eq!((b.foreground, b.debug), (Some(false), 2));
        assert_eq!(error(&["run"]).0, ErrorKind::MissingRequiredArgument);
        assert_eq!(error(&["run", "a", "b"]).0, ErrorKind::UnknownArgument);
        // -P and -i belong to the original's form only.
        assert_eq!(error(&["run", "-P", "x"]).0, ErrorKind::UnknownArgument);
        assert_eq!(
            error(&["run", "-i", "r", "x"]).0,
            ErrorKind::UnknownArgument
        );
    }

    #[test]
    fn original_form() {
        let a = p(&["-P", "-d", "3", "-i", "relay", "my.cfg", "front"]).unwrap();
        assert_eq!(a.mode, Mode::ParseOnly(config("my.cfg", "front", "relay")));
        assert_eq!(a.debug, 3);
        assert_eq!(a.foreground, None);
        let b = p(&["my.cfg"]).unwrap();
        assert_eq!(b.mode, Mode::Run(config("my.cfg", "spawnd", "tcprelay")));
        // Options may follow the arguments, as the old parser allowed.
        let c = p(&["my.cfg", "-f", "front", "-i", "relay"]).unwrap();
        assert_eq!(c.mode, Mode::Run(config("my.cfg", "front", "relay")));
        assert_eq!(c.foreground, Some(true));
        // `-` is standard input, and `--` ends the options.
        let d = p(&["-P", "-"]).unwrap();
        assert_eq!(d.mode, Mode::ParseOnly(config("-", "spawnd", "tcprelay")));
        let e = p(&["--", "-odd.cfg"]).unwrap();
        assert_eq!(e.mode, Mode::Run(config("-odd.cfg", "spawnd", "tcprelay")));
        // `run` is the subcommand only as the first argument, as before.
        let f = p(&["--", "run"]).unwrap();
        assert_eq!(f.mode, Mode::Run(config("run", "spawnd", "tcprelay")));
        let g = p(&["-P", "run", "x"]).unwrap();
        assert_eq!(g.mode, Mode::ParseOnly(config("run", "x", "tcprelay")));
        let h = p(&["a.cfg", "run"]).unwrap();
        assert_eq!(h.mode, Mode::Run(config("a.cfg", "run", "tcprelay")));
    }

    /// The original parsed its options with getopt(3): a value may be attached
    /// (`-d3`) and flags may be grouped (`-fd 3`). A repeated option, or `-f` and `-b`
    /// both, is the last one given, as with the hand-written parser.
    #[test]
    fn getopt_spellings_and_the_last_option_wins() {
        for args in [
            &["-f", "-d", "3", "a.cfg"][..],
            &["-f", "-d3", "a.cfg"],
            &["-fd", "3", "a.cfg"],
            &["-fd3", "a.cfg"],
            &["-Pfd3", "a.cfg"],
            &["-d", "1", "-b", "-d", "3", "-f", "a.cfg"],
        ] {
            let a = p(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!((a.foreground, a.debug), (Some(true), 3), "{args:?}");
        }
        assert_eq!(p(&["-Pfd3", "a.cfg"]).unwrap().mode, {
            Mode::ParseOnly(config("a.cfg", "spawnd", "tcprelay"))
        });
        assert_eq!(p(&["-f", "-b", "a.cfg"]).unwrap().foreground, Some(false));
        assert_eq!(p(&["-b", "-f", "a.cfg"]).unwrap().foreground, Some(true));
        assert_eq!(
            p(&["-irelay", "-i", "back", "a.cfg"]).unwrap().mode,
            Mode::Run(config("a.cfg", "spawnd", "back"))
        );
        let r = p(&["run", "-fd3", "-d", "4", "x.plan"]).unwrap();
        assert_eq!((r.foreground, r.debug), (Some(true), 4));
    }

    /// `-h`/`--help` and the original's `-v` as well as `-V`/`--version`, in both
    /// forms, anywhere on the line: exit code 0.
    #[test]
    fn help_and_version() {
        let version = format!("tcprelay {}", env!("CARGO_PKG_VERSION"));
        for args in [
            &["-v"][..],
            &["-V"],
            &["--version"],
            &["a.cfg", "-v"],
            &["run", "-v"],
        ] {
            let e = p(args).expect_err("version");
            assert_eq!(e.kind(), ErrorKind::DisplayVersion, "{args:?}");
            assert_eq!(e.exit_code(), 0);
            assert_eq!(e.render().to_string().trim(), version, "{args:?}");
        }
        for args in [&["-h"][..], &["--help"], &["a.cfg", "-h"]] {
            let e = p(args).expect_err("help");
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{args:?}");
            assert_eq!(e.exit_code(), 0);
            let text = e.render().to_string();
            // Both forms, and every option.
            assert!(text.contains(&format!("Usage: {USAGE}\n")), "{text}");
            assert!(text.contains("\n  run "), "{text}");
            for option in [
                "-P",
                "-f",
                "-b",
                "-d <LEVEL>",
                "-i <CHILD_ID>",
                "-v, --version",
                "(-V also)",
            ] {
                assert!(text.contains(option), "{option}: {text}");
            }
        }
        let run = p(&["run", "--help"])
            .expect_err("help")
            .render()
            .to_string();
        assert!(
            run.contains("Usage: tcprelay run [OPTIONS] <PLAN>"),
            "{run}"
        );
        assert!(!run.contains("-P"), "{run}");
    }

    /// Usage errors name the problem in the operator's words and exit 2; those about
    /// the line's shape show the usage, every one points to `--help`.
    #[test]
    fn errors_are_clear() {
        for (args, kind, words) in [
            (
                &[][..],
                ErrorKind::MissingRequiredArgument,
                &["<CONFIGURATION>", "Usage: tcprelay"][..],
            ),
            (
                &["-x", "a"],
                ErrorKind::UnknownArgument,
                &["'-x'", "Usage: tcprelay"],
            ),
            (
                &["-d", "lots", "a"],
                ErrorKind::ValueValidation,
                &["invalid value 'lots' for '-d <LEVEL>'"],
            ),
            (
                &["-d", "-1", "a"],
                ErrorKind::UnknownArgument,
                &["'-1'", "Usage: tcprelay"],
            ),
            (&["a", "-d"], ErrorKind::InvalidValue, &["-d <LEVEL>"]),
            (
                &["a", "b", "c"],
                ErrorKind::UnknownArgument,
                &["unexpected argument 'c'", "Usage: tcprelay"],
            ),
            (
                &["run"],
                ErrorKind::MissingRequiredArgument,
                &["<PLAN>", "Usage: tcprelay run"],
            ),
        ] {
            let e = p(args).expect_err("an error");
            let text = e.render().to_string();
            assert_eq!(e.kind(), kind, "{args:?}: {text}");
            assert_eq!(e.exit_code(), 2, "{args:?}");
            for word in words.iter().chain(&["try '--help'"]) {
                assert!(text.contains(word), "{args:?}: {word} not in {text}");
            }
        }
    }

    /// An argument that is not UTF-8 is a usage error where it must become a string
    /// (the configuration is handed to tcprelay-cc), a path where it is one, and never
    /// a panic: the hand-written parser read `std::env::args`, which panics on one.
    #[test]
    fn an_argument_that_is_not_utf8_is_an_error_or_a_path() {
        use std::os::unix::ffi::OsStringExt;
        let bad = OsString::from_vec(b"caf\xe9.cfg".to_vec());
        let e = parse([bad.clone()]).expect_err("an error");
        assert_eq!(e.kind(), ErrorKind::InvalidUtf8);
        assert_eq!(e.exit_code(), 2);
        let run = parse([OsString::from("run"), bad.clone()]).expect("a plan path");
        assert_eq!(run.mode, Mode::Run(PlanSource::Plan(PathBuf::from(bad))));
    }

    fn ctl(args: &[&str]) -> crate::ctl::client::Ctl {
        match p(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).mode {
            Mode::Ctl(ctl) => ctl,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn ctl_form() {
        use crate::ctl::Request;
        let a = ctl(&["ctl", "status"]);
        assert_eq!(
            (a.socket, a.request, a.json),
            (None, Request::Status, false)
        );
        let b = ctl(&[
            "ctl",
            "-s",
            "/run/r/ctl",
            "weight",
            "[::1]:80",
            "3",
            "--json",
        ]);
        assert_eq!(b.socket, Some(PathBuf::from("/run/r/ctl")));
        assert_eq!(b.request, Request::Weight("[::1]:80".into(), 3));
        assert!(b.json);
        let c = ctl(&["ctl", "--json", "--socket=x", "sessions", "5"]);
        assert_eq!(c.request, Request::Sessions { limit: Some(5) });
        assert_eq!((c.socket, c.json), (Some(PathBuf::from("x")), true));
        // A wrong request is a usage error, before anything is sent.
        for (args, says) in [
            (&["ctl", "statsu"][..], "unknown command `statsu`"),
            (&["ctl", "drain"], "`drain` needs REMOTE"),
            (&["ctl", "weight", "10.0.0.7:80", "x"], "N must be a number"),
            (&["ctl", "status", "now"], "`status` takes no argument"),
        ] {
            let (kind, text) = error(args);
            assert_eq!(kind, ErrorKind::ValueValidation, "{args:?}: {text}");
            assert!(text.contains(says), "{args:?}: {text}");
            assert!(text.contains("Usage: tcprelay ctl"), "{args:?}: {text}");
        }
        assert_eq!(error(&["ctl"]).0, ErrorKind::MissingRequiredArgument);
        assert_eq!(
            error(&["ctl", "-P", "status"]).0,
            ErrorKind::UnknownArgument
        );
        // `ctl` elsewhere is still a configuration or a section id.
        let d = p(&["--", "ctl"]).unwrap();
        assert_eq!(d.mode, Mode::Run(config("ctl", "spawnd", "tcprelay")));
        let e = p(&["a.cfg", "ctl"]).unwrap();
        assert_eq!(e.mode, Mode::Run(config("a.cfg", "ctl", "tcprelay")));
    }

    /// `ctl diff`: ctl's options before `diff`, everything after it the compiler's
    /// (its own options included, which ctl does not have).
    #[test]
    fn ctl_diff_form() {
        let diff = |args: &[&str]| match p(args).unwrap_or_else(|e| panic!("{args:?}: {e}")).mode {
            Mode::CtlDiff(diff) => diff,
            other => panic!("{args:?}: {other:?}"),
        };
        let a = diff(&["ctl", "diff", "new.cfg"]);
        assert_eq!(
            a,
            crate::ctl::diff::Diff {
                socket: None,
                json: false,
                args: vec!["new.cfg".into()]
            }
        );
        let b = diff(&[
            "ctl",
            "-s",
            "/run/r/ctl",
            "--json",
            "diff",
            "new.cfg",
            "--format",
            "human",
            "-i",
            "r2",
            "--json",
        ]);
        assert_eq!(b.socket, Some(PathBuf::from("/run/r/ctl")));
        assert!(b.json);
        let rest: Vec<OsString> = ["new.cfg", "--format", "human", "-i", "r2", "--json"]
            .map(OsString::from)
            .to_vec();
        assert_eq!(b.args, rest);
        // NEW is needed; an unknown option before `diff` is ctl's usage error.
        let (kind, text) = error(&["ctl", "diff"]);
        assert_eq!(kind, ErrorKind::ValueValidation, "{text}");
        assert!(text.contains("`diff` needs NEW"), "{text}");
        assert_eq!(
            error(&["ctl", "-x", "diff", "a"]).0,
            ErrorKind::UnknownArgument
        );
        // `plan` is a request; an unknown command names `diff` too.
        assert_eq!(ctl(&["ctl", "plan"]).request, crate::ctl::Request::Plan);
        let (_, text) = error(&["ctl", "dif", "new.cfg"]);
        assert!(
            text.contains("expected one of status, remotes, plan,")
                && text.contains(", or diff NEW [ARGS]..."),
            "{text}"
        );
    }

    /// [`USAGE`], written by hand, names every option of each form: the first line
    /// `run`'s, the second `ctl`'s, the third the original's.
    #[test]
    fn usage_names_every_option() {
        let cmd = command();
        let run = cmd.find_subcommand("run").expect("run");
        let ctl = cmd.find_subcommand("ctl").expect("ctl");
        let lines: Vec<&str> = USAGE.lines().collect();
        assert_eq!(lines.len(), 3, "{USAGE}");
        for (line, form) in lines.iter().zip([run, ctl, &cmd]) {
            for arg in form.get_arguments() {
                let Some(short) = arg.get_short() else {
                    continue;
                };
                if ['h', 'v'].contains(&short) {
                    continue;
                }
                let mut spelled = format!("-{short}");
                if arg.get_action().takes_values() {
                    let names = arg.get_value_names().expect("a value name");
                    spelled = format!("{spelled} {}", names[0]);
                }
                assert!(line.contains(&spelled), "{spelled} not in `{line}`");
            }
            for long in form.get_arguments().filter(|a| a.get_short().is_none()) {
                if let Some(long) = long.get_long().filter(|l| !["help", "version"].contains(l)) {
                    assert!(
                        line.contains(&format!("--{long}")),
                        "--{long} not in `{line}`"
                    );
                }
            }
            for positional in form.get_positionals() {
                let name = positional.get_value_names().expect("a value name")[0].as_str();
                assert!(line.contains(name), "{name} not in `{line}`");
            }
        }
    }
}
