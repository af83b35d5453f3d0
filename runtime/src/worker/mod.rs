//! STUB: the worker loop; to be written.

use tcprelay_plan::Relay;

/// A listening socket handed to a worker (inherited across the fork).
#[derive(Debug)]
pub enum ListenSocket {
    Tcp(mio::net::TcpListener),
    Unix(mio::net::UnixListener),
}

/// One listener with what the worker needs to know about it.
#[derive(Debug)]
pub struct Listener {
    pub socket: ListenSocket,
    /// `tls = yes`: TLS is terminated here (not yet supported by the worker).
    pub tls: bool,
}

/// Everything a worker runs with.
#[derive(Debug)]
pub struct Config {
    /// The worker's number, for logs.
    pub id: u32,
    pub relay: Relay,
    /// `users max`: the worker stops accepting at this many sessions.
    pub users_max: u32,
    pub listeners: Vec<Listener>,
    /// The worker's end of the control socket pair (see [`crate::control`]).
    pub control: mio::net::UnixStream,
    /// Signals delivered to this process, one byte (the signal number) each, when
    /// the worker is a process of its own; `None` when it runs as a thread in tests.
    pub signals: Option<mio::unix::pipe::Receiver>,
}

/// Why a worker's loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Drained (by the master, SIGHUP or retire) and idle.
    Drained,
    /// The master went away and the last session ended.
    MasterGone,
    /// Stopped (SIGTERM/SIGINT or `ToWorker::Stop`).
    Stopped,
}

/// Runs the worker's loop until it exits.
pub fn run(config: Config) -> std::io::Result<Exit> {
    let _ = config;
    Ok(Exit::Drained)
}
