//! `tcprelay ctl`: sends one request to a running relay's control socket and prints
//! its answer, as tables or (`--json`) as it came.
//!
//! Exit status: 0 when the answer says `"ok":true`, 1 when it says `false` (its
//! error on standard error) or no answer came, 2 when the socket cannot be reached.

use super::render::render;
use super::request::Request;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Time to connect.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(5);
/// Time for the answer: longer than the server gives the master
/// ([`super::server::ANSWER_WITHIN`]), which then answers with an error itself.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(75);
/// The longest answer read (a `sessions` list of a busy relay is long).
const MAX_ANSWER: u64 = 256 << 20;

/// What `tcprelay ctl` was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctl {
    /// `-s PATH`; the default path otherwise.
    pub socket: Option<PathBuf>,
    pub request: Request,
    /// `--json`: print the answer as it came.
    pub json: bool,
}

/// Why no answer was had.
#[derive(Debug)]
pub enum Failure {
    /// The socket cannot be reached (exit status 2).
    Unreachable(String),
    /// Reached, but no answer came (exit status 1).
    NoAnswer(String),
}

/// Sends `request` to the socket at `path` and reads the answer's line (without its
/// newline).
pub fn exchange(path: &Path, request: &Request) -> Result<String, Failure> {
    let shown = path.display();
    let stream = connect(path).map_err(|e| {
        let e = words(&e);
        Failure::Unreachable(format!(
            "cannot reach the relay's control socket {shown}: {e} (is the relay running \
             with its control socket there? -s PATH names another)"
        ))
    })?;
    let no_answer =
        |e: io::Error| Failure::NoAnswer(format!("no answer from {shown}: {}", words(&e)));
    stream
        .set_write_timeout(Some(CONNECT_WITHIN))
        .map_err(no_answer)?;
    stream
        .set_read_timeout(Some(ANSWER_WITHIN))
        .map_err(no_answer)?;
    (&stream)
        .write_all(format!("{request}\n").as_bytes())
        .map_err(no_answer)?;
    let mut answer = Vec::new();
    let mut reader = io::BufReader::new((&stream).take(MAX_ANSWER));
    let started = Instant::now();
    loop {
        match io::BufRead::read_until(&mut reader, b'\n', &mut answer) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(Failure::NoAnswer(format!(
                    "no answer from {shown} within {} s",
                    started.elapsed().as_secs()
                )))
            }
            Err(e) => return Err(no_answer(e)),
        }
    }
    if answer.pop() != Some(b'\n') {
        return Err(Failure::NoAnswer(format!(
            "the relay closed {shown} without a whole answer"
        )));
    }
    String::from_utf8(answer)
        .map_err(|_| Failure::NoAnswer(format!("the answer from {shown} is not UTF-8 text")))
}

/// An error's message without the `(os error N)` std adds.
fn words(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// A connection within [`CONNECT_WITHIN`]: a relay whose queue is full makes a
/// non-blocking connect fail with `EAGAIN` until it accepts.
fn connect(path: &Path) -> io::Result<UnixStream> {
    let address = socket2::SockAddr::unix(path)?;
    let deadline = Instant::now() + CONNECT_WITHIN;
    loop {
        let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        match socket.connect(&address) {
            Ok(()) => {
                socket.set_nonblocking(false)?;
                return Ok(UnixStream::from(std::os::fd::OwnedFd::from(socket)));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("not accepted within {} s", CONNECT_WITHIN.as_secs()),
                ))
            }
            Err(e) => return Err(e),
        }
    }
}

/// The socket `tcprelay ctl` asks: `-s PATH`, else the default path; `None`, with
/// the reason written to `err`, when there is neither.
pub fn socket(given: Option<&Path>, env: &super::PathEnv, err: &mut dyn Write) -> Option<PathBuf> {
    let path = given
        .map(Path::to_path_buf)
        .or_else(|| super::default_path(env));
    if path.is_none() {
        let _ = writeln!(
            err,
            "tcprelay ctl: no control socket to ask: RUNTIME_DIRECTORY and XDG_RUNTIME_DIR \
             are not set and this is not root; name it with -s PATH"
        );
    }
    path
}

/// Runs `tcprelay ctl`: the exit status, after printing to `out` and `err`.
pub fn run(ctl: &Ctl, env: &super::PathEnv, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let Some(path) = socket(ctl.socket.as_deref(), env, err) else {
        return 2;
    };
    let line = match exchange(&path, &ctl.request) {
        Ok(line) => line,
        Err(Failure::Unreachable(e)) => {
            let _ = writeln!(err, "tcprelay ctl: {e}");
            return 2;
        }
        Err(Failure::NoAnswer(e)) => {
            let _ = writeln!(err, "tcprelay ctl: {e}");
            return 1;
        }
    };
    let answer: Option<serde_json::Value> = serde_json::from_str(&line).ok();
    let ok = answer
        .as_ref()
        .and_then(|a| a.get("ok"))
        .and_then(serde_json::Value::as_bool)
        == Some(true);
    if ctl.json {
        let _ = writeln!(out, "{line}");
    }
    let Some(answer) = answer else {
        let _ = writeln!(
            err,
            "tcprelay ctl: the answer from {} is not JSON: {}",
            path.display(),
            line.chars()
                .take(200)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect::<String>()
        );
        return 1;
    };
    if !ok {
        let error = answer
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("the answer says it failed, without an error");
        let error: String = error
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        let _ = writeln!(err, "tcprelay ctl: {error}");
        return 1;
    }
    if ctl.json {
        return 0;
    }
    let command = ctl.request.to_string();
    let command = command.split(' ').next().unwrap_or_default();
    let _ = out.write_all(render(command, &answer).as_bytes());
    0
}
