//! The `tcprelay-cc` command line: raw arguments become a validated command here, and
//! the work is done by the library's stages. The definition lives in the library, not
//! in `main.rs`, so that the man pages and shell completions are generated from it
//! ([`command`]) and cannot drift from what the program accepts.

use clap::{CommandFactory, Parser, Subcommand, ValueEnum, ValueHint};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use crate::{diag, diagram, diff, explain, source, Selection};

#[cfg(test)]
mod reference;

/// Exit code: the configuration has errors (or the plan file is bad).
const EXIT_ERRORS: u8 = 1;
/// Exit code: usage or I/O error.
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "tcprelay-cc",
    version,
    about = "Compiles tcprelay configurations into validated plans",
    long_about = "Compiles spawnd/tcprelay configurations into validated binary plans \
                  for the tcprelay runtime, checks them with precise diagnostics, and \
                  draws the configuration language's railroad diagrams.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Prints the explanation of a diagnostic code, with an example
    /// (`--explain E0023`), and exits.
    #[arg(long, value_name = "CODE", exclusive = true)]
    explain: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// How diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Source excerpts with labels (colour only on a terminal).
    Human,
    /// One line each: `file:line:col: error[E0003]: message`.
    Short,
    /// One JSON object per line.
    Json,
}

/// How `diff` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiffFormat {
    /// Sections of lines, each change with when it takes effect.
    Human,
    /// One JSON object with stable field names (`changed`, `listeners`, `remotes`,
    /// `acl`, `certificates`, `settings`, `sessions`, `notes`).
    Json,
}

/// When to colour human output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Color {
    /// Colour when printing to a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// The configuration and the sections to use, shared by `check` and `compile`.
#[derive(Debug, clap::Args)]
struct Input {
    /// The configuration: a path, `-` for standard input, or a file://, http:// or
    /// https:// URL.
    #[arg(value_hint = ValueHint::FilePath)]
    config: String,
    /// The id of the spawnd section (as the original's trailing `id` argument).
    #[arg(default_value = "spawnd")]
    id: String,
    /// The id of the tcprelay section (as the original's `-i child_id`).
    #[arg(short = 'i', long = "child-id", default_value = "tcprelay")]
    child_id: String,
    /// How to print diagnostics.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// When to colour human diagnostics.
    #[arg(long, value_enum, default_value = "auto")]
    color: Color,
    /// Treats warnings as errors, for CI: a configuration with warnings fails (exit
    /// status 1, and `compile` writes no plan).
    #[arg(long)]
    deny_warnings: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks a configuration and prints its diagnostics.
    ///
    /// Every problem of the file is reported in one run, each with a stable code
    /// (listed in tcprelay.conf(5); `tcprelay-cc --explain CODE` explains one). A
    /// configuration without errors gets one summary line on standard error, such as
    /// `ok: 2 listeners, 3 remotes, 1 TLS certificate` (`ok with 1 warning: ...` when
    /// there were warnings). Exit status: 0 no errors (warnings allowed unless
    /// `--deny-warnings`), 1 errors (or warnings with `--deny-warnings`), 2 usage or
    /// I/O error.
    Check {
        #[command(flatten)]
        input: Input,
        /// Prints no summary line; diagnostics are printed still.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Compiles a configuration into a plan file.
    ///
    /// The configuration is checked as by `check`, with the diagnostics on standard
    /// error; the plan is written only when there is no error (nor a warning, with
    /// `--deny-warnings`), and only after it has been validated as the runtime
    /// validates it.
    Compile {
        #[command(flatten)]
        input: Input,
        /// Where to write the plan (mode 0600 when it holds a secret).
        #[arg(short, long, value_hint = ValueHint::FilePath)]
        output: PathBuf,
    },
    /// Draws the railroad diagrams of the configuration language.
    Diagram {
        /// Output file: `.svg` for one SVG document, `.html` for a page; standard
        /// output (SVG) when absent.
        #[arg(short, long, value_hint = ValueHint::FilePath)]
        output: Option<PathBuf>,
    },
    /// Shows what a reload from OLD to NEW changes.
    ///
    /// OLD and NEW are each a plan file or a configuration (a path, `-` or a URL,
    /// compiled on the fly: its diagnostics on standard error). With `--running`,
    /// OLD is the plan the running relay holds, asked of its control socket. Listed:
    /// listeners (kept, bound or closed), remotes, access rules, certificates
    /// (subject, validity, SHA-256 fingerprint; never a key or a passphrase), every
    /// other setting with when it takes effect, and what happens to the sessions
    /// open at the reload. Exit status: 0 no change, 1 changes, 2 errors (a
    /// configuration with errors, an unreadable plan, no answer from the relay).
    Diff {
        /// OLD and NEW; with `--running`, NEW alone.
        #[arg(value_name = "INPUT", num_args = 1..=2, required = true, value_hint = ValueHint::FilePath)]
        inputs: Vec<String>,
        /// Compares the running relay's plan (OLD) with NEW.
        #[arg(long)]
        running: bool,
        /// The running relay's control socket (default: the path NEW's `control`
        /// names, else the default path: $RUNTIME_DIRECTORY/ctl, /run/tcprelay/ctl as
        /// root, $XDG_RUNTIME_DIR/tcprelay/ctl).
        #[arg(long, value_name = "PATH", requires = "running", value_hint = ValueHint::AnyPath)]
        control: Option<PathBuf>,
        /// The id of the spawnd section of a configuration.
        #[arg(long = "id", value_name = "ID", default_value = "spawnd")]
        id: String,
        /// The id of the tcprelay section of a configuration.
        #[arg(short = 'i', long = "child-id", default_value = "tcprelay")]
        child_id: String,
        /// How to print the report.
        #[arg(long, value_enum, default_value = "human")]
        format: DiffFormat,
    },
    /// Dry-runs one client's connection through a plan or a configuration.
    ///
    /// Says which listener takes the connection, whether a PROXY header's sender is
    /// trusted and which client the access rules then see, which rule decides (with
    /// its place in the configuration), the listener's TLS (and whether its
    /// certificate serves `--sni`), what the sticky cache does for a returning
    /// client, and the remotes in the order the balancing tries them, with their
    /// weights. The decisions are the runtime's own code. Exit status: 0 a remote
    /// would be tried, 1 the client is refused (no listener, an untrusted PROXY
    /// sender, denied by the access rules), 2 errors (a configuration with errors, an
    /// unreadable input, an argument the listener does not fit).
    Route(crate::route::Args),
    /// Prints a plan file in readable form, with secrets redacted.
    Explain {
        /// The plan file.
        #[arg(value_hint = ValueHint::FilePath)]
        plan: PathBuf,
    },
}

/// The command line's definition, for the man pages and shell completions generated
/// from it (see the tests in `cli/reference.rs`).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs `tcprelay-cc` with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(code) = cli.explain {
        return explain_code(&code);
    }
    let Some(command) = cli.command else {
        Cli::command()
            .error(
                clap::error::ErrorKind::MissingSubcommand,
                "a command is required (or --explain CODE)",
            )
            .exit()
    };
    match command {
        Command::Check { input, quiet } => run_check(&input, None, quiet),
        Command::Compile { input, output } => run_check(&input, Some(&output), true),
        Command::Diagram { output } => draw(output.as_deref()),
        Command::Explain { plan } => explain_plan(&plan),
        Command::Diff {
            inputs,
            running,
            control,
            id,
            child_id,
            format,
        } => {
            let selection = Selection {
                spawnd_id: id,
                tcprelay_id: child_id,
            };
            run_diff(&inputs, running, control.as_deref(), &selection, format)
        }
        Command::Route(args) => crate::route::run(&args),
    }
}

/// Exit codes of `diff`, for scripts: no change, changes, errors.
const DIFF_SAME: u8 = 0;
const DIFF_CHANGED: u8 = 1;
const DIFF_ERRORS: u8 = 2;

/// `diff [--running] [OLD] NEW`.
fn run_diff(
    inputs: &[String],
    running: bool,
    control: Option<&std::path::Path>,
    selection: &Selection,
    format: DiffFormat,
) -> ExitCode {
    match (running, inputs.len()) {
        (true, 1) | (false, 2) => {}
        (true, _) => {
            return fail(
                DIFF_ERRORS,
                "with --running, give NEW alone: OLD is the running relay's plan",
            )
        }
        (false, _) => return fail(DIFF_ERRORS, "give OLD and NEW (or --running NEW)"),
    }
    if inputs.iter().filter(|i| *i == "-").count() > 1 {
        return fail(
            DIFF_ERRORS,
            "only one of OLD and NEW can be standard input (-)",
        );
    }
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut sides = Vec::with_capacity(2);
    let mut failed = false;
    // Both configurations are compiled, so that one run shows the errors of both.
    for input in inputs {
        match diff::load(input, selection, color) {
            Ok((side, warnings)) => {
                eprint!("{warnings}");
                sides.push(side);
            }
            Err(diff::LoadError(text)) => {
                eprint!("{text}");
                failed = true;
            }
        }
    }
    if failed {
        return ExitCode::from(DIFF_ERRORS);
    }
    let new = sides.pop().expect("NEW was loaded");
    let old = match sides.pop() {
        Some(old) => old,
        None => {
            let env = diff::running::current_env();
            let asked = diff::running::socket_path(control, &new.plan, &env)
                .and_then(|path| diff::running::ask(&path));
            match asked {
                Ok(running) => diff::Side::running(running),
                Err(e) => return fail(DIFF_ERRORS, e),
            }
        }
    };
    let report = diff::diff(&old, &new);
    let text = match format {
        DiffFormat::Human => diff::render(&report),
        DiffFormat::Json => diff::json(&report) + "\n",
    };
    if let Err(e) = std::io::stdout().write_all(text.as_bytes()) {
        return fail(DIFF_ERRORS, format!("cannot write the report: {e}"));
    }
    ExitCode::from(if report.changed {
        DIFF_CHANGED
    } else {
        DIFF_SAME
    })
}

/// `--explain CODE`: the code's section of docs/diagnostics.md, embedded.
fn explain_code(text: &str) -> ExitCode {
    match diag::Code::parse(text.trim()) {
        Some(code) => {
            print!("{}", render_explanation(code.explanation()));
            ExitCode::SUCCESS
        }
        None => {
            let first = diag::Code::ALL[0];
            let last = diag::Code::ALL[diag::Code::ALL.len() - 1];
            fail(
                EXIT_USAGE,
                format!(
                    "{text:?} is not a diagnostic code; the codes run from {first} to {last} (listed in tcprelay.conf(5))"
                ),
            )
        }
    }
}

/// A catalogue section for a terminal: the heading without its `## `, examples
/// indented by four spaces instead of fenced.
fn render_explanation(section: &str) -> String {
    let mut out = String::with_capacity(section.len() + 64);
    let mut fenced = false;
    for line in section.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            out.push_str(heading);
        } else if line.starts_with("```") {
            fenced = !fenced;
            continue;
        } else if fenced {
            out.push_str("    ");
            out.push_str(line);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// The summary line of a clean `check`: what the plan holds, like `nginx -t`.
fn summary(plan: &tcprelay_plan::Plan, warnings: usize) -> String {
    fn count(n: usize, one: &str, many: &str) -> String {
        format!("{n} {}", if n == 1 { one } else { many })
    }
    let mut parts = vec![
        count(plan.spawnd.listeners.len(), "listener", "listeners"),
        count(plan.relay.remotes.len(), "remote", "remotes"),
    ];
    if !plan.relay.discovered.is_empty() {
        parts.push(count(
            plan.relay.discovered.len(),
            "name resolved at run time",
            "names resolved at run time",
        ));
    }
    let mut certificates: Vec<&str> = Vec::new();
    let remote_certs = plan
        .relay
        .remotes
        .iter()
        .chain(plan.relay.discovered.iter().map(|d| &d.template))
        .filter_map(|r| r.tls.as_ref()?.cert_file.as_deref());
    for file in plan
        .relay
        .tls
        .iter()
        .map(|t| t.cert_file.as_str())
        .chain(remote_certs)
    {
        if !certificates.contains(&file) {
            certificates.push(file);
        }
    }
    if !certificates.is_empty() {
        parts.push(count(
            certificates.len(),
            "TLS certificate",
            "TLS certificates",
        ));
    }
    let head = match warnings {
        0 => "ok".to_string(),
        n => format!("ok with {}", count(n, "warning", "warnings")),
    };
    format!("{head}: {}", parts.join(", "))
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("tcprelay-cc: {message}");
    ExitCode::from(code)
}

/// `check`, and `compile` when `output` is given; `quiet` leaves out the summary
/// line of a clean `check`.
fn run_check(input: &Input, output: Option<&std::path::Path>, quiet: bool) -> ExitCode {
    let src = match source::load(&input.config) {
        Ok(src) => src,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    let selection = Selection {
        spawnd_id: input.id.clone(),
        tcprelay_id: input.child_id.clone(),
    };
    // `-` is named `<stdin>`: its includes are relative to the current directory.
    let compiled = crate::compile_with(&src.text, &src.name, &selection, &crate::process_env);
    let (plan, diags, map) = (compiled.plan, compiled.diags, compiled.map);
    // The renderers mask secrets and print at most `MAX_SHOWN` diagnostics, each in
    // the file it is in.
    let text = match input.format {
        Format::Human => {
            let tty = if output.is_some() {
                std::io::stderr().is_terminal()
            } else {
                std::io::stdout().is_terminal()
            };
            let color = match input.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => tty && std::env::var_os("NO_COLOR").is_none(),
            };
            diag::render::human_map(&diags, &map, color)
        }
        Format::Short => diag::render::short_map(&diags, &map),
        Format::Json => diag::render::json_map(&diags, &map),
    };
    // `check` prints its findings as its output; `compile` reports them on stderr.
    let written = if output.is_some() {
        std::io::stderr().write_all(text.as_bytes())
    } else {
        std::io::stdout().write_all(text.as_bytes())
    };
    if let Err(e) = written {
        return fail(EXIT_USAGE, format!("cannot write diagnostics: {e}"));
    }
    let Some(plan) = plan else {
        return ExitCode::from(EXIT_ERRORS);
    };
    let warnings = diags.iter().filter(|d| !d.is_error()).count();
    if input.deny_warnings && warnings > 0 {
        let what = if warnings == 1 {
            "1 warning".to_string()
        } else {
            format!("{warnings} warnings")
        };
        let outcome = if output.is_some() {
            "no plan written"
        } else {
            "check failed"
        };
        return fail(
            EXIT_ERRORS,
            format!("{what} denied by --deny-warnings: {outcome}"),
        );
    }
    if let Some(path) = output {
        if let Err(e) = crate::emit::write(&plan, path) {
            return fail(EXIT_USAGE, format!("cannot write {}: {e}", path.display()));
        }
    }
    if !quiet {
        eprintln!("{}", summary(&plan, warnings));
    }
    ExitCode::SUCCESS
}

fn draw(output: Option<&std::path::Path>) -> ExitCode {
    let Some(path) = output else {
        print!("{}", diagram::svg());
        return ExitCode::SUCCESS;
    };
    let text = match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => diagram::svg(),
        Some("html") | Some("htm") => diagram::html(),
        _ => {
            return fail(
                EXIT_USAGE,
                format!("{}: the output must end in .svg or .html", path.display()),
            )
        }
    };
    match std::fs::write(path, text) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(EXIT_USAGE, format!("cannot write {}: {e}", path.display())),
    }
}

fn explain_plan(path: &std::path::Path) -> ExitCode {
    // A regular file of at most `MAX_PLAN_SIZE` bytes: not /dev/zero, not a FIFO.
    let bytes = match tcprelay_plan::read_plan(path) {
        Ok(b) => b,
        Err(e) => return fail(EXIT_USAGE, e),
    };
    match explain::explain(&bytes) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_ERRORS, format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explanation_prints_its_heading_and_indents_its_example() {
        let text = render_explanation(diag::Code::LineContinuation.explanation());
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("E0070: line continuation"));
        assert!(!text.contains("```"), "{text}");
        assert!(!text.contains("## "), "{text}");
        assert!(
            text.contains("\n    id = spawnd {\n      listen = { address = 127.0.0.1 \\\n"),
            "{text}"
        );
    }

    #[test]
    fn the_summary_counts_what_the_plan_holds() {
        let src = "id = spawnd {\n listen = { address = 127.0.0.1 port = 1 }\n listen = { address = 127.0.0.1 port = 2 }\n}\nid = tcprelay {\n remote = { address = 127.0.0.1 port = 3 }\n}\n";
        let (plan, diags) = crate::compile(src, "x", &Selection::default());
        assert!(diags.is_empty(), "{diags:?}");
        let mut plan = plan.expect("a plan");
        assert_eq!(summary(&plan, 0), "ok: 2 listeners, 1 remote");
        assert_eq!(
            summary(&plan, 1),
            "ok with 1 warning: 2 listeners, 1 remote"
        );
        plan.relay.tls = Some(tcprelay_plan::Tls {
            cert_file: "/c.pem".into(),
            key_file: "/k.pem".into(),
            passphrase: None,
        });
        plan.spawnd.listeners.truncate(1);
        assert_eq!(
            summary(&plan, 3),
            "ok with 3 warnings: 1 listener, 1 remote, 1 TLS certificate"
        );
        plan.relay.discovered.push(tcprelay_plan::Discovered {
            name: "db.example".into(),
            lookup: tcprelay_plan::Lookup::Srv,
            template: tcprelay_plan::Remote::new("0.0.0.0:0".parse().unwrap()),
        });
        assert_eq!(
            summary(&plan, 0),
            "ok: 1 listener, 1 remote, 1 name resolved at run time, 1 TLS certificate"
        );
    }
}
