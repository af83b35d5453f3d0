//! `tcprelay ctl diff NEW [ARGS...]`: what a reload to NEW would change in the
//! running relay. The comparison is the compiler's (`tcprelay-cc diff --running`,
//! which asks the control socket for the running plan with the `plan` request): this
//! runs it on the socket `tcprelay ctl` resolved, so that both commands find the
//! same relay, and passes its exit status through (0 no change, 1 changes, 2
//! errors).

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::Command;

/// What `tcprelay ctl diff` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// `-s PATH`; the default path otherwise.
    pub socket: Option<PathBuf>,
    /// `--json` before `diff`: `--format json` for the compiler.
    pub json: bool,
    /// NEW and the arguments after it, given to `tcprelay-cc diff` as they came.
    pub args: Vec<OsString>,
}

/// Exit status for errors, the compiler's own.
const EXIT_ERROR: u8 = 2;

impl Diff {
    /// The compiler's arguments: `diff --running --control PATH [--format json]
    /// NEW ARGS...`.
    pub fn compiler_args(&self, socket: &std::path::Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = ["diff", "--running", "--control"]
            .iter()
            .map(OsString::from)
            .collect();
        args.push(socket.as_os_str().to_owned());
        if self.json {
            args.extend(["--format", "json"].map(OsString::from));
        }
        args.extend(self.args.iter().cloned());
        args
    }
}

/// Runs `tcprelay-cc diff --running` against the relay's socket: its exit status
/// (2, with a message on `err`, when there is no socket to name or the compiler
/// cannot be run). The compiler is [`crate::load::compiler`]'s: `$TCPRELAY_CC`,
/// else the one beside this program, else the one on the PATH.
pub fn run(diff: &Diff, env: &super::PathEnv, err: &mut dyn Write) -> u8 {
    run_with(&crate::load::compiler(), diff, env, err)
}

/// [`run`] with the compiler at `compiler`.
fn run_with(
    compiler: &std::path::Path,
    diff: &Diff,
    env: &super::PathEnv,
    err: &mut dyn Write,
) -> u8 {
    let Some(socket) = super::client::socket(diff.socket.as_deref(), env, err) else {
        return EXIT_ERROR;
    };
    let status = Command::new(compiler)
        .args(diff.compiler_args(&socket))
        .status();
    match status {
        Ok(status) => match status.code() {
            Some(code) => u8::try_from(code).unwrap_or(EXIT_ERROR),
            None => {
                use std::os::unix::process::ExitStatusExt;
                let signal = status.signal().unwrap_or_default();
                let _ = writeln!(
                    err,
                    "tcprelay ctl: {} was killed by signal {signal}",
                    compiler.display()
                );
                EXIT_ERROR
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let _ = writeln!(
                err,
                "tcprelay ctl: `diff` runs tcprelay-cc, which was not found (looked for {}: \
                 beside this program, else on the PATH; TCPRELAY_CC names another)",
                compiler.display()
            );
            EXIT_ERROR
        }
        Err(e) => {
            let _ = writeln!(err, "tcprelay ctl: cannot run {}: {e}", compiler.display());
            EXIT_ERROR
        }
    }
}

/// Where `diff` stands among `tcprelay ctl`'s arguments (`args[0]` is `ctl`): the
/// index of the first word that is not an option of `ctl` or its value, when that
/// word is `diff`. What follows it is the compiler's, options included.
pub fn position(args: &[OsString]) -> Option<usize> {
    let mut i = 1;
    while let Some(arg) = args.get(i) {
        let text = arg.to_str()?;
        match text {
            "--" => return (args.get(i + 1)? == "diff").then_some(i + 1),
            "--json" => i += 1,
            "-s" | "--socket" => i += 2,
            _ if text.starts_with("--socket=") => i += 1,
            _ if text.starts_with("-s") => i += 1,
            // Help, or an option ctl does not have: clap's to answer.
            _ if text.starts_with('-') => return None,
            "diff" => return Some(i),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn diff_is_found_after_ctl_options_only() {
        for (args, want) in [
            (&["ctl", "diff", "new.cfg"][..], Some(1)),
            (&["ctl", "-s", "/run/x", "diff", "new.cfg"], Some(3)),
            (&["ctl", "--socket=/run/x", "--json", "diff", "a"], Some(3)),
            (&["ctl", "-s/run/x", "diff"], Some(2)),
            (&["ctl", "--", "diff", "a"], Some(2)),
            // `diff` as the socket's path, or after the command, is not the command.
            (&["ctl", "-s", "diff", "status"], None),
            (&["ctl", "status", "diff"], None),
            (&["ctl", "--help", "diff"], None),
            (&["ctl", "-x", "diff"], None),
            (&["ctl"], None),
        ] {
            assert_eq!(position(&words(args)), want, "{args:?}");
        }
    }

    #[test]
    fn the_compiler_gets_the_socket_then_the_arguments_as_they_came() {
        let diff = Diff {
            socket: None,
            json: true,
            args: words(&["new.cfg", "--format", "human", "-i", "relay2"]),
        };
        let args = diff.compiler_args(std::path::Path::new("/run/tcprelay/ctl"));
        assert_eq!(
            args,
            words(&[
                "diff",
                "--running",
                "--control",
                "/run/tcprelay/ctl",
                "--format",
                "json",
                "new.cfg",
                "--format",
                "human",
                "-i",
                "relay2"
            ])
        );
    }

    #[test]
    fn a_missing_compiler_is_a_clear_error_with_status_2() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let missing = dir.path().join("no-such-tcprelay-cc");
        let env = super::super::PathEnv {
            runtime_directory: Some(dir.path().into()),
            xdg_runtime_dir: None,
            root: false,
        };
        let diff = Diff {
            socket: None,
            json: false,
            args: words(&["new.cfg"]),
        };
        let mut err = Vec::new();
        let code = run_with(&missing, &diff, &env, &mut err);
        let err = String::from_utf8(err).unwrap();
        assert_eq!(code, 2, "{err}");
        assert!(
            err.starts_with("tcprelay ctl: `diff` runs tcprelay-cc, which was not found")
                && err.contains(&missing.display().to_string()),
            "{err}"
        );
    }
}
