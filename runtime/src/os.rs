//! The operating-system edges of the process model, each in one small function:
//! fork, signals (a self-pipe readable by mio), daemonizing, the pidfile, dropping
//! privileges and reaping children. All of the runtime's `unsafe` for processes lives
//! here, with the reason it is sound beside it.

use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// What `fork` returned in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    Parent(libc::pid_t),
    Child,
}

/// Forks the process.
///
/// The master is single-threaded, so the child is a complete copy with no lock held
/// by a thread that does not exist in it.
pub fn fork() -> io::Result<Fork> {
    // SAFETY: fork has no memory-safety preconditions; the child only runs code of
    // this single-threaded program.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// The write end of the signal pipe, for the handler; -1 when none.
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = SIGNAL_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is one valid byte. A full
        // pipe drops the byte, which is harmless: the reader drains it anyway.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// Routes `signals` into a non-blocking pipe whose read end mio can poll: each signal
/// arrives as one byte holding its number. Replaces any earlier pipe (a worker calls
/// this again after the fork). SIGPIPE is ignored, so a write to a closed socket is
/// an error, not a death.
pub fn signal_pipe(signals: &[libc::c_int]) -> io::Result<mio::unix::pipe::Receiver> {
    let (sender, receiver) = mio::unix::pipe::new()?;
    let old = SIGNAL_FD.swap(sender.into_raw_fd(), Ordering::SeqCst);
    if old >= 0 {
        // SAFETY: `old` is the write end this function leaked earlier; nothing else
        // owns it.
        unsafe {
            libc::close(old);
        }
    }
    for &signal in signals {
        set_handler(signal, on_signal as *const () as libc::sighandler_t)?;
    }
    set_handler(libc::SIGPIPE, libc::SIG_IGN)?;
    Ok(receiver)
}

fn set_handler(signal: libc::c_int, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handler is either SIG_IGN/SIG_DFL or
    // `on_signal`, which only does async-signal-safe work.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Restores the default action of `signals` (used in a child before it installs its
/// own pipe, so no signal is lost to the master's pipe).
pub fn default_signals(signals: &[libc::c_int]) -> io::Result<()> {
    for &signal in signals {
        set_handler(signal, libc::SIG_DFL)?;
    }
    Ok(())
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

/// Sends `signal` to `pid`.
pub fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, signal) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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
    let mut out = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into a valid i32.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            break;
        }
        let exit = if libc::WIFSIGNALED(status) {
            ChildExit::Signal(libc::WTERMSIG(status))
        } else {
            ChildExit::Code(libc::WEXITSTATUS(status))
        };
        out.push((pid, exit));
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
            // SAFETY: setsid has no memory-safety preconditions.
            if unsafe { libc::setsid() } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors from an open file.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Writes this process's pid to `path` (replacing the file).
pub fn write_pidfile(path: &str) -> io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    writeln!(f, "{}", std::process::id())
}

/// The numeric id of a user or group given by name or number.
fn resolve(name: &str, group: bool) -> io::Result<u32> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in name"))?;
    // SAFETY: getpwnam/getgrnam return NULL or a pointer to static storage, read at
    // once; the master is single-threaded so nothing else calls them meanwhile.
    let id = unsafe {
        if group {
            let g = libc::getgrnam(c.as_ptr());
            (!g.is_null()).then(|| (*g).gr_gid)
        } else {
            let p = libc::getpwnam(c.as_ptr());
            (!p.is_null()).then(|| (*p).pw_uid)
        }
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
    // SAFETY: these calls take plain integers (setgroups: an empty list).
    unsafe {
        if let Some(gid) = gid {
            if libc::setgroups(0, std::ptr::null()) == -1 && uid.is_some() {
                return Err(io::Error::last_os_error());
            }
            if libc::setgid(gid) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(uid) = uid {
            if libc::setuid(uid) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Raises the soft limit of open files to the hard limit (a relay needs two
/// descriptors per session). Returns the soft limit in force.
pub fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit read and write a valid rlimit struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                return wanted.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

/// Returns the allocator's free memory to the system (glibc's `malloc_trim`; a
/// no-op elsewhere).
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Reads a file that must be a regular file of at most `cap` bytes: a plan or a TLS
/// certificate or key. A FIFO, a device (`/dev/zero`, `/dev/urandom`), a directory or
/// a socket is refused before anything is read (the file is opened non-blocking, so
/// not even the open waits for a FIFO's writer), and so is a file over the cap: the
/// master reads these on SIGHUP and must never hang or run out of memory on them.
pub fn read_regular_file(path: &std::path::Path, cap: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let kind = meta.file_type();
        let what = if kind.is_dir() {
            "a directory"
        } else {
            use std::os::unix::fs::FileTypeExt;
            if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_char_device() || kind.is_block_device() {
                "a device"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            }
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{what}, not a regular file"),
        ));
    }
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {} MiB", cap / (1024 * 1024)),
        )
    };
    if meta.len() > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
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

    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plan");
        std::fs::write(&file, b"twelve bytes").unwrap();
        assert_eq!(read_regular_file(&file, 12).unwrap(), b"twelve bytes");
        let err = read_regular_file(&file, 11).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
        // A FIFO without a writer: refused at once (a blocking open would wait).
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = std::time::Instant::now();
        let err = read_regular_file(&fifo, 1 << 20).unwrap_err().to_string();
        assert!(err.contains("a FIFO"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Devices that never end, through a symlink too.
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        for path in [zero.as_path(), std::path::Path::new("/dev/urandom")] {
            let err = read_regular_file(path, 1 << 20).unwrap_err().to_string();
            assert!(err.contains("a device"), "{err}");
        }
        let err = read_regular_file(dir.path(), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a directory"), "{err}");
    }
}
