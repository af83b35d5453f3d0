//! `diff --running`: the running master's plan, asked of its control socket. The
//! client sends `plan\n` and reads one JSON line (the `plan` request of
//! docs/control.md): the plan with its passphrases redacted, the certificates the
//! running generation loaded (no key), and its sessions.
//!
//! Bounded: the whole exchange within [`WITHIN`], an answer of at most
//! [`MAX_ANSWER`] bytes. Every failure is one line an operator can act on.

use std::io::{self, BufRead, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tcprelay_plan::control_path::{self, PathEnv};
use tcprelay_plan::{Plan, FORMAT_VERSION};

use super::certs::Loaded;
use super::report::Generation;

/// Time for connecting, sending and reading the whole answer.
pub const WITHIN: Duration = Duration::from_secs(10);
/// The longest answer read.
pub const MAX_ANSWER: u64 = 64 << 20;

/// What the running relay said.
#[derive(Debug, Clone)]
pub struct Running {
    /// The control socket asked.
    pub socket: PathBuf,
    pub generation: u64,
    pub plan_hash: String,
    /// Its plan, passphrases redacted.
    pub plan: Plan,
    pub certificates: Vec<Loaded>,
    pub sessions: Option<SessionCounts>,
}

/// The running relay's sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SessionCounts {
    pub total: u64,
    #[serde(default)]
    pub generations: Vec<Generation>,
    #[serde(default)]
    pub remotes: Vec<RemoteSessions>,
}

/// Sessions on one remote, all generations.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RemoteSessions {
    /// `ADDRESS:PORT/PROTOCOL` (or `ADDRESS:PORT`).
    pub remote: String,
    pub active: u64,
}

impl SessionCounts {
    /// The sessions on the remote keyed `key` (`ADDRESS:PORT/PROTOCOL`); an answer
    /// that names remotes by `ADDRESS:PORT` alone is matched on that.
    pub fn on_remote(&self, key: &str) -> Option<u64> {
        let address = key.rsplit_once('/').map_or(key, |(a, _)| a);
        self.remotes
            .iter()
            .find(|r| r.remote.eq_ignore_ascii_case(key))
            .or_else(|| self.remotes.iter().find(|r| r.remote == address))
            .map(|r| r.active)
    }
}

/// The answer's fields, before the plan is decoded.
#[derive(Debug, Deserialize)]
struct Answer {
    generation: u64,
    plan_hash: String,
    plan: serde_json::Value,
    #[serde(default)]
    certificates: Vec<Loaded>,
    #[serde(default)]
    sessions: Option<SessionCounts>,
}

/// This process's environment, for the default path.
pub fn current_env() -> PathEnv {
    PathEnv {
        runtime_directory: std::env::var_os("RUNTIME_DIRECTORY"),
        xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR"),
        root: rustix::process::geteuid().is_root(),
    }
}

/// The socket to ask: `--control PATH`, else the path NEW's `control` names (a
/// reload rarely moves it), else the default path of this environment.
pub fn socket_path(given: Option<&Path>, new: &Plan, env: &PathEnv) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let configured = new.spawnd.control.as_ref().and_then(|c| c.path.as_deref());
    control_path::resolve(configured, env)
        .map(|(path, _)| path)
        .ok_or_else(|| {
            "no control socket to ask: RUNTIME_DIRECTORY and XDG_RUNTIME_DIR are not set and \
             this is not root; name it with --control PATH"
                .to_string()
        })
}

/// An error's message without the `(os error N)` std adds.
fn words(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Connects within the deadline: a relay whose queue is full makes a non-blocking
/// connect fail with `EAGAIN` until it accepts.
fn connect(path: &Path, deadline: Instant, within: Duration) -> io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let address = SocketAddrUnix::new(path)?;
    loop {
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )?;
        match rustix::net::connect(&socket, &address) {
            Ok(()) => {
                let stream = UnixStream::from(socket);
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(rustix::io::Errno::AGAIN) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(rustix::io::Errno::AGAIN) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("not accepted within {} s", within.as_secs()),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Why the socket could not be reached, in an operator's words.
fn unreachable(path: &Path, e: &io::Error) -> String {
    let shown = path.display();
    let hint = "is the relay running with its control socket there? --control PATH names another";
    match e.kind() {
        io::ErrorKind::NotFound => format!("no control socket at {shown} ({hint})"),
        io::ErrorKind::ConnectionRefused => format!(
            "{shown} refuses connections: no relay is listening there (a socket left by one that stopped, or not a socket; {hint})"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "no permission to connect to {shown}: its mode and group (control = {{ mode group }}) decide who may"
        ),
        _ => format!("cannot reach the control socket {shown}: {}", words(e)),
    }
}

/// Sends `plan` and reads the answer's line (without its newline).
fn exchange(path: &Path, within: Duration) -> Result<String, String> {
    let shown = path.display();
    let deadline = Instant::now() + within;
    let stream = connect(path, deadline, within).map_err(|e| unreachable(path, &e))?;
    let failed = |e: io::Error| format!("no answer from {shown}: {}", words(&e));
    stream.set_write_timeout(Some(within)).map_err(failed)?;
    (&stream).write_all(b"plan\n").map_err(failed)?;
    let mut reader = io::BufReader::new((&stream).take(MAX_ANSWER));
    let mut line = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no answer from {shown} within {} s",
                within.as_secs_f32()
            ));
        }
        stream.set_read_timeout(Some(left)).map_err(failed)?;
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) if line.ends_with(b"\n") => break,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "no answer from {shown} within {} s",
                    within.as_secs_f32()
                ))
            }
            Err(e) => return Err(failed(e)),
        }
    }
    if line.pop() != Some(b'\n') {
        return Err(if line.len() as u64 >= MAX_ANSWER {
            format!(
                "the answer from {shown} is longer than {} MiB: not a tcprelay control socket?",
                MAX_ANSWER >> 20
            )
        } else if line.is_empty() {
            format!(
                "{shown} closed the connection without answering: not a tcprelay control socket?"
            )
        } else {
            format!("{shown} closed the connection in the middle of its answer")
        });
    }
    String::from_utf8(line).map_err(|_| {
        format!("the answer from {shown} is not UTF-8 text: not a tcprelay control socket?")
    })
}

/// Text from the other side, safe for a terminal and not too long.
fn printable(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Reads the answer `line` from the socket `path` into the running relay's plan.
pub fn parse(path: &Path, line: &str) -> Result<Running, String> {
    let shown = path.display();
    let not_ours = || {
        format!(
            "{shown} does not answer as a tcprelay control socket: {}",
            printable(line)
        )
    };
    let value: serde_json::Value = serde_json::from_str(line).map_err(|_| not_ours())?;
    let Some(ok) = value.get("ok").and_then(serde_json::Value::as_bool) else {
        return Err(not_ours());
    };
    if !ok {
        let error = value
            .get("error")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("it says it failed, without an error");
        if error.contains("`plan`") {
            return Err(format!(
                "the relay at {shown} does not know the `plan` request (it is older than this tcprelay-cc): {}",
                printable(error)
            ));
        }
        return Err(format!(
            "the relay at {shown} refused: {}",
            printable(error)
        ));
    }
    match value.get("format").and_then(serde_json::Value::as_u64) {
        Some(format) if format == u64::from(FORMAT_VERSION) => {}
        Some(format) => {
            return Err(format!(
                "the relay at {shown} runs plan format {format}, this tcprelay-cc reads format {FORMAT_VERSION}: use the tcprelay-cc of the running relay's version"
            ))
        }
        None => {
            return Err(format!(
                "the answer from {shown} has no plan format: the relay does not know the `plan` request, or this is not a tcprelay control socket"
            ))
        }
    }
    let answer: Answer = serde_json::from_value(value)
        .map_err(|e| format!("the answer from {shown} is not a plan answer: {e}"))?;
    let plan: Plan = serde_json::from_value(answer.plan)
        .map_err(|e| format!("the running plan from {shown} cannot be read: {e}"))?;
    plan.validate()
        .map_err(|e| format!("the running plan from {shown} fails validation: {e}"))?;
    Ok(Running {
        socket: path.to_path_buf(),
        generation: answer.generation,
        plan_hash: answer.plan_hash,
        plan,
        certificates: answer.certificates,
        sessions: answer.sessions,
    })
}

/// Asks the running relay at `path` for its plan.
pub fn ask(path: &Path) -> Result<Running, String> {
    ask_within(path, WITHIN)
}

/// [`ask`] with the whole exchange bounded by `within`.
pub fn ask_within(path: &Path, within: Duration) -> Result<Running, String> {
    parse(path, &exchange(path, within)?)
}
