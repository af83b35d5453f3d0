//! The command line: raw arguments become a validated [`Args`] here, nowhere else.
//!
//! ```text
//! tcprelay run [-f|-b] [-d LEVEL] PLAN
//! tcprelay [-P] [-f|-b] [-d LEVEL] [-i CHILD_ID] CFG [ID]      (the original's form)
//! ```
//!
//! The original's form compiles CFG with `tcprelay-cc` (found beside this binary, or
//! through `TCPRELAY_CC`, or on the PATH) so that the runtime never links the parser.

use std::path::PathBuf;

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
    Help,
    Version,
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

pub const USAGE: &str = "usage: tcprelay run [-f|-b] [-d level] PLAN
       tcprelay [-P] [-f|-b] [-d level] [-i child_id] configuration-file [id]

  run PLAN       run a plan compiled by `tcprelay-cc compile`
  -P             check the configuration only (exit 0 clean, 1 errors, 2 usage)
  -f / -b        stay in the foreground / go to the background (overrides `background`)
  -d level       debug output at that level, to standard error
  -i child_id    the tcprelay section's id (default: tcprelay)
  id             the spawnd section's id (default: spawnd)
";

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
    let mut args = args.into_iter().peekable();
    let run = args.peek().is_some_and(|a| a == "run");
    if run {
        args.next();
    }
    let mut parse_only = false;
    let mut debug = 0;
    let mut foreground = None;
    let mut child_id = None;
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                return Ok(Args {
                    mode: Mode::Help,
                    debug,
                    foreground,
                })
            }
            "-v" | "-V" | "--version" => {
                return Ok(Args {
                    mode: Mode::Version,
                    debug,
                    foreground,
                })
            }
            "-P" if !run => parse_only = true,
            "-f" => foreground = Some(true),
            "-b" => foreground = Some(false),
            "-d" => {
                let level = args.next().ok_or("-d needs a level")?;
                debug = level
                    .parse()
                    .map_err(|_| format!("-d needs a number, not `{level}`"))?;
            }
            "-i" if !run => child_id = Some(args.next().ok_or("-i needs a child id")?),
            "--" => positional.extend(args.by_ref()),
            s if s.starts_with('-') && s != "-" => return Err(format!("unknown option `{s}`")),
            _ => positional.push(arg),
        }
    }
    let source = if run {
        match positional.as_slice() {
            [plan] => PlanSource::Plan(PathBuf::from(plan)),
            [] => return Err("run needs a plan file".into()),
            _ => return Err("run takes one plan file".into()),
        }
    } else {
        match positional.as_slice() {
            [cfg] | [cfg, _] => PlanSource::Config {
                cfg: cfg.clone(),
                spawnd_id: positional
                    .get(1)
                    .cloned()
                    .unwrap_or_else(|| "spawnd".into()),
                child_id: child_id.unwrap_or_else(|| "tcprelay".into()),
            },
            [] => return Err("the configuration file is missing".into()),
            _ => return Err("too many arguments".into()),
        }
    };
    let mode = if parse_only {
        Mode::ParseOnly(source)
    } else {
        Mode::Run(source)
    };
    Ok(Args {
        mode,
        debug,
        foreground,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn run_form() {
        let a = p(&["run", "-f", "x.plan"]).unwrap();
        assert_eq!(a.mode, Mode::Run(PlanSource::Plan("x.plan".into())));
        assert_eq!(a.foreground, Some(true));
        assert!(p(&["run"]).is_err());
        assert!(p(&["run", "-P", "x"]).is_err());
    }

    #[test]
    fn original_form() {
        let a = p(&["-P", "-d", "3", "-i", "relay", "my.cfg", "front"]).unwrap();
        assert_eq!(
            a.mode,
            Mode::ParseOnly(PlanSource::Config {
                cfg: "my.cfg".into(),
                spawnd_id: "front".into(),
                child_id: "relay".into()
            })
        );
        assert_eq!(a.debug, 3);
        let b = p(&["my.cfg"]).unwrap();
        assert_eq!(
            b.mode,
            Mode::Run(PlanSource::Config {
                cfg: "my.cfg".into(),
                spawnd_id: "spawnd".into(),
                child_id: "tcprelay".into()
            })
        );
    }

    /// `docs/man/tcprelay.1` is written by hand; every option of [`USAGE`] (and `run`)
    /// has an entry in its OPTIONS section.
    #[test]
    fn man_page_describes_every_option_of_usage() {
        let page = include_str!("../../docs/man/tcprelay.1").replace("\\-", "-");
        let options = page
            .split(".SH OPTIONS")
            .nth(1)
            .and_then(|rest| rest.split("\n.SH ").next())
            .expect("the man page has an OPTIONS section");
        // The entries: the line after each `.TP`.
        let entries: Vec<&str> = options
            .split(".TP\n")
            .skip(1)
            .filter_map(|entry| entry.lines().next())
            .collect();
        let mut words: Vec<&str> = USAGE
            .split(|c: char| c.is_whitespace() || "[]|/".contains(c))
            .filter(|w| w.len() > 1 && w.starts_with('-'))
            .collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(
            words,
            ["-P", "-b", "-d", "-f", "-i"],
            "USAGE changed: {USAGE}"
        );
        words.extend(["run", "-h", "--help", "-v", "-V", "--version"]);
        let version = format!("\"tcprelay {}\"", env!("CARGO_PKG_VERSION"));
        assert!(page.contains(&version), "the .TH line names {version}");
        for word in words {
            assert!(
                entries.iter().any(|e| e
                    .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
                    .any(|w| w == word)),
                "docs/man/tcprelay.1 has no OPTIONS entry for `{word}`: {entries:?}"
            );
        }
    }

    #[test]
    fn errors_are_clear() {
        assert_eq!(p(&[]).unwrap_err(), "the configuration file is missing");
        assert_eq!(p(&["-x", "a"]).unwrap_err(), "unknown option `-x`");
        assert_eq!(
            p(&["-d", "lots", "a"]).unwrap_err(),
            "-d needs a number, not `lots`"
        );
        assert!(p(&["a", "b", "c"]).is_err());
    }
}
