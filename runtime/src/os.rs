//! The operating-system edges of the process model, each in one small function:
//! fork, signals (a self-pipe readable by mio), daemonizing, the pidfile, dropping
//! privileges and reaping children. Through `rustix` where it has a safe wrapper;
//! the rest (fork, signal handlers, user and group ids) is in `sys::process`.

use std::ffi::CString;
use std::io::{self, Write};

use crate::sys::process as sys;
pub use crate::sys::process::{fork, trim_heap, Fork};

/// Routes `signals` into a non-blocking pipe whose read end mio can poll: each signal
/// arrives as one byte holding its number. Replaces any earlier pipe (a worker calls
/// this again after the fork). SIGPIPE is ignored, so a write to a closed socket is
/// an error, not a death.
pub fn signal_pipe(signals: &[libc::c_int]) -> io::Result<mio::unix::pipe::Receiver> {
    let (sender, receiver) = mio::unix::pipe::new()?;
    sys::route_signals(sender.into(), signals)?;
    Ok(receiver)
}

/// Restores the default action of `signals` (used in a child before it installs its
/// own pipe, so no signal is lost to the master's pipe).
pub fn default_signals(signals: &[libc::c_int]) -> io::Result<()> {
    sys::default_signals(signals)
}

/// Reads every pending signal byte from the pipe.
pub fn read_signals(pipe: &mut mio::unix::pipe::Receiver) -> Vec<libc::c_int> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend(buf[..n].iter().map(|&b| b as libc::c_int)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    out
}

/// Sends `signal` to `pid` (a process, not a group: `pid` > 0).
pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    let signal = rustix::process::Signal::from_named_raw(signal)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::kill_process(pid, signal)?)
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for ChildExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChildExit::Code(c) => write!(f, "exit code {c}"),
            ChildExit::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// Reaps every child that has ended, without blocking.
pub fn reap() -> Vec<(libc::pid_t, ChildExit)> {
    use rustix::process::{waitpid, WaitOptions};
    let mut out = Vec::new();
    while let Ok(Some((pid, status))) = waitpid(None, WaitOptions::NOHANG) {
        let exit = match status.terminating_signal() {
            Some(signal) => ChildExit::Signal(signal),
            None => ChildExit::Code(status.exit_status().unwrap_or(0)),
        };
        out.push((pid.as_raw_nonzero().get(), exit));
    }
    out
}

/// Detaches from the terminal: fork (the parent exits 0), `setsid`, fork again, and
/// standard input/output/error to /dev/null.
pub fn daemonize() -> io::Result<()> {
    for round in 0..2 {
        match fork()? {
            Fork::Parent(_) => std::process::exit(0),
            Fork::Child => {}
        }
        if round == 0 {
            rustix::process::setsid()?;
        }
    }
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    rustix::stdio::dup2_stdin(&null)?;
    rustix::stdio::dup2_stdout(&null)?;
    rustix::stdio::dup2_stderr(&null)?;
    Ok(())
}

/// Writes this process's pid to `path` (replacing the file).
pub fn write_pidfile(path: &str) -> io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    writeln!(f, "{}", std::process::id())
}

/// The numeric id of a group given by name or number (the control socket's group).
pub fn group_id(name: &str) -> io::Result<u32> {
    resolve(name, true)
}

/// The uid of a user given by name or number and, when given by name, the
/// user's primary group (a Unix listener's `userid`).
pub fn user_ids(name: &str) -> io::Result<(u32, Option<u32>)> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok((n, None));
    }
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
    sys::user_ids(&c)
        .map(|(uid, gid)| (uid, Some(gid)))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no user named `{name}`")))
}

/// The numeric id of a user or group given by name or number.
fn resolve(name: &str, group: bool) -> io::Result<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
    let id = if group {
        sys::group_id(&c)
    } else {
        sys::user_id(&c)
    };
    id.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no {} named `{name}`", if group { "group" } else { "user" }),
        )
    })
}

/// Drops privileges to `group` and `user` (names or numbers): supplementary groups
/// cleared, gid set, then uid. Called after the listeners are bound.
pub fn drop_privileges(user: Option<&str>, group: Option<&str>) -> io::Result<()> {
    let gid = group.map(|g| resolve(g, true)).transpose()?;
    let uid = user.map(|u| resolve(u, false)).transpose()?;
    if let Some(gid) = gid {
        if let Err(e) = sys::clear_groups() {
            if uid.is_some() {
                return Err(e);
            }
        }
        sys::set_gid(gid)?;
    }
    if let Some(uid) = uid {
        sys::set_uid(uid)?;
    }
    Ok(())
}

/// Makes the process titles settable ([`set_title`]): call once at start, after
/// the arguments were read, while the process has one thread. A failure (no
/// `/proc`) only leaves the titles as they are.
pub fn init_titles() {
    if let Err(e) = crate::sys::title::init() {
        crate::debug!("process titles: cannot find the argument area: {e}");
    }
}

/// Sets this process's title as `ps` shows it: `PREFIX: what` (`proctitle`, by
/// default the program's name).
pub fn set_title(prefix: Option<&str>, what: &str) {
    crate::sys::title::set(&format!("{}: {what}", prefix.unwrap_or("tcprelay")));
}

/// Raises the soft limit of open files to the hard limit (a relay needs two
/// descriptors per session). Returns the soft limit in force.
pub fn raise_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    // `None` is no limit (RLIM_INFINITY).
    let lim = getrlimit(Resource::Nofile);
    let current = lim.current.unwrap_or(u64::MAX);
    let maximum = lim.maximum.unwrap_or(u64::MAX);
    if current < maximum {
        let wanted = Rlimit {
            current: lim.maximum,
            maximum: lim.maximum,
        };
        if setrlimit(Resource::Nofile, wanted).is_ok() {
            return maximum;
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_numbers_and_root() {
        assert_eq!(resolve("0", false).unwrap(), 0);
        assert_eq!(resolve("root", false).unwrap(), 0);
        assert!(resolve("no-such-user-tcprelay", false).is_err());
    }
}
