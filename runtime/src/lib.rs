//! tcprelay, the runtime: loads a plan and relays connections with forked workers.
//!
//! | module    | what it does                                                   |
//! |-----------|----------------------------------------------------------------|
//! | [`args`]  | the command line: `run PLAN` and the original's drop-in form   |
//! | [`board`] | the memory the workers share to split new connections evenly   |
//! | [`stats`] | the counters the workers share with the master (totals, listeners, remotes) |
//! | [`steering`] | the operators' drain, enable and weight of remotes, shared with the workers |
//! | [`discovery`] | the remotes found by DNS, published by the master for the workers |
//! | [`resolver`] | the resolver process: DNS discovery's names resolved again and again |
//! | [`sticky`] | client affinity (`sticky cache`): the remote and worker a client went to, shared |
//! | [`metrics`] | the Prometheus text format and the endpoint's HTTP                |
//! | [`load`]  | reads, decodes and validates a plan (or compiles a CFG)        |
//! | [`listen`]| binds the listening sockets                                    |
//! | [`master`]| forks and supervises workers, signals, reload                  |
//! | [`worker`]| one mio loop per worker: accept, balance, relay                |
//! | [`control`]| the master ⇄ worker frames                                    |
//! | [`ctl`]   | the control socket and `tcprelay ctl`: see and steer a running relay |
//! | [`os`]    | fork, signals, daemon, pidfile, privileges                     |
//! | [`notify`]| tells systemd when it is ready, reloading, stopping (`sd_notify`) |
//! | [`proxy`] | the PROXY protocol: a strict header parser and the writer     |
//! | [`tls_context`] | the TLS server context, from the plan's certificate and key |
//! | [`log`]   | syslog, stderr or the journal; text, logfmt or JSON lines; records |
//! | [`sys`]   | the only `unsafe` code: what has no safe wrapper, made safe    |
//!
//! `unsafe_code` is denied everywhere but in [`sys`] (and, for now, the syslog calls
//! of [`log`]).

#![deny(unsafe_code)]

pub mod args;
pub mod board;
pub mod checker;
pub mod control;
pub mod ctl;
pub mod discovery;
pub mod health;
pub mod listen;
pub mod load;
// Its syslog calls (openlog, syslog) are the one exception, until they move to `sys`.
#[allow(unsafe_code)]
pub mod log;
pub mod master;
pub mod metrics;
pub mod notify;
pub mod os;
pub mod proxy;
pub mod resolver;
pub mod sni;
pub mod stats;
pub mod steering;
pub mod sticky;
#[allow(unsafe_code)]
pub mod sys;
pub mod tls_context;
pub mod worker;

/// The plan's `setenv` lines, each checked to be one the environment can take (a
/// name that is not empty and holds no `=` or NUL, a value without NUL), so that
/// applying them cannot fail: `std::env::set_var` panics on what `setenv(3)` refuses.
#[derive(Debug, Clone, Copy)]
pub struct Setenv<'a>(&'a [(String, String)]);

impl<'a> Setenv<'a> {
    /// Checks every line of `env` (a plan's `setenv`); the error is one line naming
    /// the first bad one (`Plan::validate` refuses the same, so a loaded plan passes).
    pub fn check(env: &'a [(String, String)]) -> Result<Setenv<'a>, String> {
        tcprelay_plan::check_setenv(env).map_err(|e| e.to_string())?;
        Ok(Setenv(env))
    }

    /// Sets every line in this process's environment. Called before anything else at
    /// start (they select e.g. `IO_POLL_MECHANISM`) and, on reload, once the new
    /// plan's listeners are bound, just before its workers are forked: a reload that
    /// is refused changes nothing. The runtime is single-threaded when this runs (the
    /// master, before and between forks), so changing the environment races with
    /// nothing.
    pub fn apply(self) {
        for (name, value) in self.0 {
            std::env::set_var(name, value);
        }
    }
}

/// Checks and applies `env` (a plan's `setenv` lines): all of them, or none and the
/// error.
pub fn apply_env(env: &[(String, String)]) -> Result<(), String> {
    Setenv::check(env).map(Setenv::apply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_setenv_the_environment_cannot_take_is_an_error_and_changes_nothing() {
        let first = "TCPRELAY_TEST_SETENV_BEFORE_THE_BAD_ONE";
        for (bad, says) in [
            (
                ("TCPRELAY_TEST_SETENV_NUL", "a\0b"),
                "the value of setenv `TCPRELAY_TEST_SETENV_NUL` contains a NUL byte",
            ),
            (("A=B", "x"), "setenv name `A=B` contains `=`"),
            (("", "x"), "setenv name `` is empty"),
            (
                ("NUL\0NAME", "x"),
                "setenv name `NUL\\0NAME` contains a NUL byte",
            ),
        ] {
            let lines = env(&[(first, "1"), bad]);
            // `std::env::set_var` panics on each of these.
            let e = apply_env(&lines).unwrap_err();
            assert!(e.starts_with(says), "{e}");
            assert!(!e.contains('\0') && !e.contains('\n'), "{e:?}");
            // Refused as a whole: not even the good line before it was set.
            assert!(std::env::var_os(first).is_none());
        }
        // (A good list is not applied here: setting the environment while other
        // test threads may read it would race; the relay tests apply `setenv`.)
        assert!(Setenv::check(&env(&[(first, "1")])).is_ok());
    }
}
