//! tcprelay, the runtime: loads a plan and relays connections with forked workers.
//!
//! | module    | what it does                                                   |
//! |-----------|----------------------------------------------------------------|
//! | [`args`]  | the command line: `run PLAN` and the original's drop-in form   |
//! | [`board`] | the memory the workers share to split new connections evenly   |
//! | [`load`]  | reads, decodes and validates a plan (or compiles a CFG)        |
//! | [`listen`]| binds the listening sockets                                    |
//! | [`master`]| forks and supervises workers, signals, reload                  |
//! | [`worker`]| one mio loop per worker: accept, balance, relay                |
//! | [`control`]| the master ⇄ worker frames                                    |
//! | [`os`]    | fork, signals, daemon, pidfile, privileges                     |
//! | [`tls`]   | the TLS server context, from the plan's certificate and key    |
//! | [`log`]   | syslog or stderr                                               |

pub mod args;
pub mod board;
pub mod control;
pub mod listen;
pub mod load;
pub mod log;
pub mod master;
pub mod os;
pub mod tls;
pub mod worker;

/// Applies the plan's `setenv` lines to this process's environment. Called before
/// anything else at start (they select e.g. `IO_POLL_MECHANISM`) and on reload.
pub fn apply_env(plan: &tcprelay_plan::Plan) {
    for (name, value) in &plan.env {
        // The runtime is single-threaded when this runs (the master, before and
        // between forks), so changing the environment races with nothing.
        std::env::set_var(name, value);
    }
}
