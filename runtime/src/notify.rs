//! systemd's readiness protocol (`sd_notify(3)`) without libsystemd, for a unit of
//! `Type=notify`: one datagram of `KEY=VALUE` lines to the Unix socket named by
//! `NOTIFY_SOCKET` (a path, or an abstract socket when it starts with `@`).
//!
//! The master takes the variable out of the environment at start ([`Notify::from_env`]),
//! before any child exists: neither the workers nor the compilers it runs inherit it
//! (they must not speak for the service), while it keeps the address. Unset (or
//! empty): nothing is sent. A message that cannot be sent is logged once, and the
//! relay runs on: readiness is a courtesy to the service manager, never a reason to
//! stop serving.

use crate::warn;
use std::ffi::OsString;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The environment variable systemd sets for a `Type=notify` service.
pub const VARIABLE: &str = "NOTIFY_SOCKET";

/// The longest a message may wait for room in the service manager's queue (the
/// master does nothing else meanwhile).
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the master's notifications go, if anywhere.
#[derive(Debug, Default)]
pub struct Notify {
    /// `NOTIFY_SOCKET` as given (for the log), and its address or why it cannot be one.
    target: Option<(String, Result<SocketAddr, String>)>,
    /// Made at the first message.
    socket: Option<UnixDatagram>,
    /// A failure was logged: later ones are not.
    warned: bool,
}

impl Notify {
    /// Reads `NOTIFY_SOCKET` and removes it from this process's environment, so that
    /// no child inherits it. Call it before any child is started (the runtime is
    /// single-threaded then).
    pub fn from_env() -> Notify {
        let value = std::env::var_os(VARIABLE);
        if value.is_some() {
            std::env::remove_var(VARIABLE);
        }
        Notify::to(value)
    }

    /// Notifications to `value`, as `NOTIFY_SOCKET` would give it; `None` or empty:
    /// none are sent.
    pub fn to(value: Option<OsString>) -> Notify {
        let target = value.filter(|v| !v.is_empty()).map(|v| {
            let shown = v.to_string_lossy().into_owned();
            (shown, address(&v))
        });
        Notify {
            target,
            ..Notify::default()
        }
    }

    /// Whether there is somewhere to send to.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The service is ready (started, or a reload has ended, well or not): `status`
    /// says what it serves. `MAINPID` is this process (after daemonizing, the
    /// daemon's).
    pub fn ready(&mut self, status: &str) {
        self.send(&format!(
            "READY=1\nMAINPID={}\nSTATUS={}\n",
            std::process::id(),
            one_line(status)
        ));
    }

    /// A reload has started; [`Notify::ready`] ends it.
    pub fn reloading(&mut self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading\n",
            monotonic_usec()
        ));
    }

    /// A graceful stop has started.
    pub fn stopping(&mut self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}\n", one_line(status)));
    }

    /// Sends `message` if there is a target; the first failure is logged.
    fn send(&mut self, message: &str) {
        let Some((shown, _)) = &self.target else {
            return;
        };
        let shown = shown.clone();
        if let Err(e) = self.try_send(message) {
            if !self.warned {
                self.warned = true;
                warn!("cannot notify the service manager ({VARIABLE}={shown}): {e}; the relay runs on without telling it");
            }
        }
    }

    fn try_send(&mut self, message: &str) -> Result<(), String> {
        let Some((_, address)) = &self.target else {
            return Ok(());
        };
        let address = address.as_ref().map_err(Clone::clone)?;
        if self.socket.is_none() {
            let socket = UnixDatagram::unbound().map_err(|e| format!("no socket: {e}"))?;
            socket
                .set_write_timeout(Some(SEND_TIMEOUT))
                .map_err(|e| e.to_string())?;
            self.socket = Some(socket);
        }
        let Some(socket) = &self.socket else {
            return Ok(());
        };
        match socket.send_to_addr(message.as_bytes(), address) {
            Ok(n) if n == message.len() => Ok(()),
            Ok(n) => Err(format!("sent {n} of {} bytes", message.len())),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(format!(
                "it took no message within {} s",
                SEND_TIMEOUT.as_secs()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The socket address `NOTIFY_SOCKET` names: an absolute path, or `@name` for an
/// abstract socket (Linux).
fn address(value: &std::ffi::OsStr) -> Result<SocketAddr, String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = value.as_bytes();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(value).map_err(|e| e.to_string()),
        Some(b'@') => abstract_address(&bytes[1..]),
        _ => Err("neither an absolute path nor an abstract socket (@name)".to_string()),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> Result<SocketAddr, String> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name).map_err(|e| e.to_string())
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_: &[u8]) -> Result<SocketAddr, String> {
    Err("abstract sockets exist only on Linux".to_string())
}

/// A `STATUS=` value: one line (the protocol ends a value at a newline).
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// `CLOCK_MONOTONIC` in microseconds, as `MONOTONIC_USEC` wants it.
fn monotonic_usec() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let micros = u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000;
    secs.saturating_mul(1_000_000).saturating_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    fn receiver(dir: &std::path::Path) -> (UnixDatagram, OsString) {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (socket, path.into_os_string())
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a message");
        String::from_utf8(buf[..n].to_vec()).expect("UTF-8")
    }

    #[test]
    fn unset_or_empty_sends_nothing() {
        assert!(!Notify::to(None).enabled());
        assert!(!Notify::to(Some(OsString::new())).enabled());
        let mut none = Notify::to(None);
        none.ready("x");
        assert!(none.socket.is_none() && !none.warned);
    }

    #[test]
    fn messages_are_key_value_lines_to_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let (socket, path) = receiver(dir.path());
        let mut notify = Notify::to(Some(path));
        notify.ready("listening on 127.0.0.1:1\nand more");
        assert_eq!(
            receive(&socket),
            format!(
                "READY=1\nMAINPID={}\nSTATUS=listening on 127.0.0.1:1 and more\n",
                std::process::id()
            )
        );
        let before = monotonic_usec();
        notify.reloading();
        let after = monotonic_usec();
        let reloading = receive(&socket);
        let usec: u64 = reloading
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .and_then(|rest| rest.strip_suffix("\nSTATUS=reloading\n"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{reloading:?}"));
        assert!(before <= usec && usec <= after, "{before} {usec} {after}");
        notify.stopping("stopping");
        assert_eq!(receive(&socket), "STOPPING=1\nSTATUS=stopping\n");
        assert!(!notify.warned);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("tcprelay-notify-unit-{}", std::process::id());
        let socket =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut notify = Notify::to(Some(format!("@{name}").into()));
        notify.stopping("bye");
        assert_eq!(receive(&socket), "STOPPING=1\nSTATUS=bye\n");
    }

    #[test]
    fn an_unusable_target_is_an_error_that_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nobody-listens").into_os_string();
        for (value, says) in [
            (missing, "No such file or directory"),
            ("relative/path".into(), "neither an absolute path"),
            (
                OsString::from_vec([b"/".repeat(200)].concat()),
                "must be shorter than SUN_LEN",
            ),
        ] {
            let mut notify = Notify::to(Some(value));
            assert!(notify.enabled());
            let e = notify.try_send("READY=1\n").unwrap_err();
            assert!(e.contains(says), "{e}");
            notify.ready("a");
            assert!(notify.warned, "the failure was logged");
        }
    }
}
