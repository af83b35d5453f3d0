//! A control request: one line of text, `COMMAND [ARGS...]`, parsed into a
//! [`Request`] with an error in an operator's words for anything else. The master's
//! socket and `tcprelay ctl` use the same parser, so a mistake is reported before
//! anything is sent.

use std::fmt;

/// The longest request line, its newline included.
pub const MAX_LINE: usize = 4096;

/// What an operator asks of the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The relay's state: uptime, plan, generations and workers, totals.
    Status,
    /// Every remote with its state and counters.
    Remotes,
    /// The running plan (its secrets redacted), the certificates the running
    /// generation loaded, and the sessions by generation, remote and listener: what
    /// `tcprelay-cc diff --running` compares a new configuration with.
    Plan,
    /// The sessions now open, at most `limit` of them (all when none).
    Sessions { limit: Option<u32> },
    /// Stop sending new sessions to a remote (`ADDRESS:PORT`); its sessions go on.
    Drain(String),
    /// Send new sessions to a drained remote again.
    Enable(String),
    /// Set a remote's weight until the next reload.
    Weight(String, u32),
    /// Reload the plan, as SIGHUP does.
    Reload,
    /// Stop gracefully, as SIGTERM does.
    Stop,
}

/// The commands with their arguments, as the usage and errors show them.
pub const COMMANDS: &[(&str, &str)] = &[
    ("status", ""),
    ("remotes", ""),
    ("plan", ""),
    ("sessions", "[LIMIT]"),
    ("drain", "REMOTE"),
    ("enable", "REMOTE"),
    ("weight", "REMOTE N"),
    ("reload", ""),
    ("stop", ""),
];

impl Request {
    /// Parses one request line (without or with its `\n` or `\r\n`): bytes, since
    /// whatever a client sends must get an answer, not a panic.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = std::str::from_utf8(line)
            .map_err(|e| format!("the request is not UTF-8 text (byte {})", e.valid_up_to()))?;
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        Request::from_words(&words)
    }

    /// Parses a request given as words (`tcprelay ctl`'s arguments).
    pub fn from_words<S: AsRef<str>>(words: &[S]) -> Result<Request, String> {
        let Some((command, args)) = words.split_first() else {
            return Err(format!("empty request: expected a command ({})", names()));
        };
        let command = command.as_ref();
        let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let Some(&(name, usage)) = COMMANDS.iter().find(|(name, _)| *name == command) else {
            return Err(format!(
                "unknown command `{}`: expected one of {}",
                shown(command),
                names()
            ));
        };
        let (min, max) = match usage {
            "" => (0, 0),
            "[LIMIT]" => (0, 1),
            "REMOTE" => (1, 1),
            _ => (2, 2),
        };
        if args.len() < min {
            return Err(format!("`{name}` needs {usage}: `{name} {usage}`"));
        }
        if args.len() > max {
            let extra = shown(args[max]);
            return Err(if usage.is_empty() {
                format!("`{name}` takes no argument, got `{extra}`")
            } else {
                format!("too many arguments for `{name} {usage}`: `{extra}`")
            });
        }
        Ok(match name {
            "status" => Request::Status,
            "remotes" => Request::Remotes,
            "plan" => Request::Plan,
            "sessions" => Request::Sessions {
                limit: args
                    .first()
                    .map(|n| number(n, "LIMIT", "sessions"))
                    .transpose()?,
            },
            "drain" => Request::Drain(remote(args[0])?),
            "enable" => Request::Enable(remote(args[0])?),
            "weight" => Request::Weight(remote(args[0])?, number(args[1], "N", "weight")?),
            "reload" => Request::Reload,
            _ => Request::Stop,
        })
    }
}

/// The request as a line, without its newline: what `tcprelay ctl` sends.
impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Status => f.write_str("status"),
            Request::Remotes => f.write_str("remotes"),
            Request::Plan => f.write_str("plan"),
            Request::Sessions { limit: None } => f.write_str("sessions"),
            Request::Sessions { limit: Some(n) } => write!(f, "sessions {n}"),
            Request::Drain(r) => write!(f, "drain {r}"),
            Request::Enable(r) => write!(f, "enable {r}"),
            Request::Weight(r, n) => write!(f, "weight {r} {n}"),
            Request::Reload => f.write_str("reload"),
            Request::Stop => f.write_str("stop"),
        }
    }
}

fn names() -> String {
    let names: Vec<&str> = COMMANDS.iter().map(|(name, _)| *name).collect();
    names.join(", ")
}

/// A word of the request as an error quotes it: at most 64 characters, control
/// characters escaped, so that an error line stays one short line.
fn shown(word: &str) -> String {
    let mut out: String = word.chars().take(64).flat_map(char::escape_debug).collect();
    if word.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// A decimal number of at most `u32`.
fn number(word: &str, what: &str, command: &str) -> Result<u32, String> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{command}`: {what} must be a number, got `{}`",
            shown(word)
        ));
    }
    word.parse().map_err(|_| {
        format!(
            "`{command}`: {what} `{}` is too large (at most {})",
            shown(word),
            u32::MAX
        )
    })
}

/// A remote as the plan prints it: `ADDRESS:PORT`, `[ADDRESS]:PORT` for IPv6, with
/// `/tcp` or `/sctp` after it to choose between two remotes on one address and port
/// (the form the master's answer asks for when the address alone names both).
fn remote(word: &str) -> Result<String, String> {
    let (address, protocol) = match word.rsplit_once('/') {
        Some((address, protocol)) => (address, Some(protocol)),
        None => (word, None),
    };
    let Ok(addr) = address.parse::<std::net::SocketAddr>() else {
        return Err(format!(
            "`{}` is not a remote: expected ADDRESS:PORT, such as 10.0.0.7:80 or [::1]:80",
            shown(word)
        ));
    };
    match protocol.map(str::to_ascii_uppercase).as_deref() {
        None => Ok(addr.to_string()),
        Some(p @ ("TCP" | "SCTP")) => Ok(format!("{addr}/{p}")),
        Some(_) => Err(format!(
            "`{}` is not a remote: the protocol after `/` is tcp or sctp",
            shown(word)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Request, String> {
        Request::parse(line.as_bytes())
    }

    #[test]
    fn every_command_parses_and_prints_back() {
        for (line, want) in [
            ("status", Request::Status),
            ("remotes\n", Request::Remotes),
            ("plan", Request::Plan),
            ("sessions\r\n", Request::Sessions { limit: None }),
            ("sessions 20", Request::Sessions { limit: Some(20) }),
            ("drain 10.0.0.7:80", Request::Drain("10.0.0.7:80".into())),
            ("enable [::1]:80", Request::Enable("[::1]:80".into())),
            (
                "weight 10.0.0.7:80 3",
                Request::Weight("10.0.0.7:80".into(), 3),
            ),
            ("  reload  ", Request::Reload),
            ("stop", Request::Stop),
        ] {
            let got = parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            assert_eq!(got, want, "{line:?}");
            assert_eq!(parse(&got.to_string()).unwrap(), want, "{got}");
        }
        // The same words from the command line.
        assert_eq!(
            Request::from_words(&["weight", "[::1]:80", "0"]).unwrap(),
            Request::Weight("[::1]:80".into(), 0)
        );
    }

    #[test]
    fn unknown_and_empty_commands_name_the_choices() {
        let e = parse("statsu").unwrap_err();
        assert_eq!(
            e,
            "unknown command `statsu`: expected one of status, remotes, plan, \
             sessions, drain, enable, weight, reload, stop"
        );
        // Commands are lower case, as documented.
        assert!(parse("STATUS")
            .unwrap_err()
            .starts_with("unknown command `STATUS`"));
        assert!(parse("")
            .unwrap_err()
            .starts_with("empty request: expected a command"));
        assert!(parse(" \n").unwrap_err().starts_with("empty request"));
    }

    #[test]
    fn missing_and_extra_arguments_show_the_usage() {
        assert_eq!(
            parse("drain").unwrap_err(),
            "`drain` needs REMOTE: `drain REMOTE`"
        );
        assert_eq!(
            parse("weight 10.0.0.7:80").unwrap_err(),
            "`weight` needs REMOTE N: `weight REMOTE N`"
        );
        assert_eq!(
            parse("status now").unwrap_err(),
            "`status` takes no argument, got `now`"
        );
        assert_eq!(
            parse("plan all").unwrap_err(),
            "`plan` takes no argument, got `all`"
        );
        assert_eq!(
            parse("sessions 1 2").unwrap_err(),
            "too many arguments for `sessions [LIMIT]`: `2`"
        );
        assert_eq!(
            parse("enable 1.2.3.4:5 6.7.8.9:10").unwrap_err(),
            "too many arguments for `enable REMOTE`: `6.7.8.9:10`"
        );
    }

    #[test]
    fn bad_numbers_and_remotes_are_named() {
        assert_eq!(
            parse("sessions ten").unwrap_err(),
            "`sessions`: LIMIT must be a number, got `ten`"
        );
        assert_eq!(
            parse("sessions -1").unwrap_err(),
            "`sessions`: LIMIT must be a number, got `-1`"
        );
        assert_eq!(
            parse("weight 10.0.0.7:80 99999999999").unwrap_err(),
            "`weight`: N `99999999999` is too large (at most 4294967295)"
        );
        assert_eq!(
            parse("weight 10.0.0.7:80 +2").unwrap_err(),
            "`weight`: N must be a number, got `+2`"
        );
        assert_eq!(
            parse("drain 10.0.0.7:80/udp").unwrap_err(),
            "`10.0.0.7:80/udp` is not a remote: the protocol after `/` is tcp or sctp"
        );
        assert_eq!(
            parse("drain [::1]:80/sctp").unwrap(),
            Request::Drain("[::1]:80/SCTP".to_string())
        );
        for bad in [
            "10.0.0.7",
            "::1:80",
            "host:80",
            "10.0.0.7:99999",
            "10.0.0.7/tcp",
        ] {
            let e = parse(&format!("drain {bad}")).unwrap_err();
            assert_eq!(
                e,
                format!(
                    "`{bad}` is not a remote: expected ADDRESS:PORT, such as 10.0.0.7:80 \
                     or [::1]:80"
                )
            );
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_or_are_control_characters_are_an_error_line() {
        let e = Request::parse(b"status \xff\xfe").unwrap_err();
        assert_eq!(e, "the request is not UTF-8 text (byte 7)");
        // A control character is quoted escaped: the error stays one line.
        let e = parse("drain \x1b[2J\x07").unwrap_err();
        assert!(e.starts_with("`\\u{1b}[2J\\u{7}` is not a remote"), "{e}");
        let long = "x".repeat(500);
        let e = parse(&long).unwrap_err();
        assert!(e.len() < 200 && e.contains('…'), "{e}");
    }
}
