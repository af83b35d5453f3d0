//! Why a session ended, as its `session_close` connection record says (`cause`).
//! The names are part of the records' format (docs/logging.md): a value never
//! changes its meaning.

/// The termination cause of a session, in its close record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The client's end of file came first and the session then finished normally.
    ClientClosed,
    /// The remote's end of file came first and the session then finished normally.
    RemoteClosed,
    /// The client reset the connection, or its socket failed (also while its
    /// session was connecting).
    ClientReset,
    /// The remote reset the connection, or its socket failed.
    RemoteReset,
    /// Nothing passed either way for `idle timeout`.
    IdleTimeout,
    /// Nothing at all passed for `silent timeout`.
    SilentTimeout,
    /// One direction had ended `half close timeout` ago and the other had not.
    HalfCloseTimeout,
    /// The session's only remote refused the connect (or reset it before anything
    /// was relayed), on every attempt.
    ConnectRefused,
    /// The session's only remote did not answer within `connect timeout`.
    ConnectTimeout,
    /// Every remote the session tried failed: there was none to fail over to.
    NoRemoteAlive,
    /// The last remote the session tried (`tls = yes`) failed the TLS handshake:
    /// an alert, a certificate that did not verify or had another name, a timeout;
    /// there was none left to fail over to.
    RemoteTls,
    /// The client's TLS handshake failed (garbage, an alert, a reset).
    TlsFailed,
    /// The client's TLS handshake took longer than `tls handshake timeout`.
    TlsTimeout,
    /// Closed when an old generation's drain ended: its `drain timeout` passed, or
    /// more than `drain generations` were draining.
    Drained,
    /// Accepted and closed by the master under overload (the master's record).
    Shed,
    /// Refused by the access rules (`acl`).
    Denied,
    /// Closed when a graceful stop's grace ended.
    Stopped,
    /// The relay could not serve it: out of descriptors, memory or local ports.
    LocalError,
    /// Routing by SNI closed the client before any remote: not TLS, no server
    /// name or an unknown one without a default route, a bad ClientHello, or
    /// none in time (docs/sni.md).
    SniRefused,
}

impl Cause {
    /// The name in records.
    pub fn name(self) -> &'static str {
        match self {
            Cause::ClientClosed => "client_closed",
            Cause::RemoteClosed => "remote_closed",
            Cause::ClientReset => "client_reset",
            Cause::RemoteReset => "remote_reset",
            Cause::IdleTimeout => "idle_timeout",
            Cause::SilentTimeout => "silent_timeout",
            Cause::HalfCloseTimeout => "half_close_timeout",
            Cause::ConnectRefused => "connect_refused",
            Cause::ConnectTimeout => "connect_timeout",
            Cause::NoRemoteAlive => "no_remote_alive",
            Cause::RemoteTls => "remote_tls",
            Cause::TlsFailed => "tls_failed",
            Cause::TlsTimeout => "tls_timeout",
            Cause::Drained => "drained",
            Cause::Shed => "shed",
            Cause::Denied => "denied",
            Cause::Stopped => "stopped",
            Cause::LocalError => "local_error",
            Cause::SniRefused => "sni_refused",
        }
    }

    /// Every cause, for the documentation's table and its test.
    pub const ALL: [Cause; 19] = [
        Cause::ClientClosed,
        Cause::RemoteClosed,
        Cause::ClientReset,
        Cause::RemoteReset,
        Cause::IdleTimeout,
        Cause::SilentTimeout,
        Cause::HalfCloseTimeout,
        Cause::ConnectRefused,
        Cause::ConnectTimeout,
        Cause::NoRemoteAlive,
        Cause::RemoteTls,
        Cause::TlsFailed,
        Cause::TlsTimeout,
        Cause::Drained,
        Cause::Shed,
        Cause::Denied,
        Cause::Stopped,
        Cause::LocalError,
        Cause::SniRefused,
    ];
}

#[cfg(test)]
mod tests {
    use super::Cause;

    /// docs/logging.md's table of causes has a row for each cause, and no other.
    #[test]
    fn the_documented_causes_are_the_causes() {
        let doc = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/logging.md"));
        let table = doc.split("## Causes").nth(1).expect("a Causes section");
        let documented: Vec<&str> = table
            .lines()
            .skip_while(|line| !line.starts_with("|---"))
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split('`').next())
            .collect();
        let names: Vec<&str> = Cause::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(documented, names);
        // The manual's `connection log` row lists them too.
        let language = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/language.md"));
        let row = language
            .split("`cause` is one of ")
            .nth(1)
            .and_then(|rest| rest.split(". ").next())
            .expect("the connection log row lists the causes");
        let listed: Vec<&str> = row.split(", ").map(|c| c.trim_matches('`')).collect();
        assert_eq!(listed, names);
    }
}
