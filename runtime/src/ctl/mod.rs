//! The control socket: how an operator sees and steers a running relay
//! (`tcprelay ctl`). The master listens on a Unix stream socket ([`server`]); a
//! client sends one request line ([`request`]) and reads one JSON answer on one line,
//! which `tcprelay ctl` ([`client`]) prints as is or as tables ([`render`]). The
//! protocol and the answers' schema are in `docs/control.md`. `tcprelay ctl diff`
//! ([`diff`]) is the client's own: it runs `tcprelay-cc diff --running`, which asks
//! for the `plan`.
//!
//! Where the socket is: the plan's `control = { path = ... }`, else [`default_path`],
//! which the master and `tcprelay ctl` resolve alike.

pub mod client;
pub mod diff;
pub mod render;
pub mod request;
pub mod server;

pub use request::Request;
pub use server::{ClientId, ControlServer, Incoming};

pub use tcprelay_plan::control_path::{default_path, resolve, PathEnv, SOCKET_NAME};

/// This process's environment and effective uid.
pub fn current_env() -> PathEnv {
    PathEnv {
        runtime_directory: std::env::var_os("RUNTIME_DIRECTORY"),
        xdg_runtime_dir: std::env::var_os("XDG_RUNTIME_DIR"),
        root: rustix::process::geteuid().is_root(),
    }
}
