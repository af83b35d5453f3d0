//! The process calls without a safe wrapper: fork, `_exit`, signal handlers that
//! write to a self-pipe, user and group ids, and glibc's `malloc_trim`.

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// What `fork` returned in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    Parent(libc::pid_t),
    Child,
}

/// Forks the process.
///
/// For a single-threaded process (the runtime's master: it never starts a thread):
/// the child is then a complete copy, with no lock held by a thread that does not
/// exist in it.
pub fn fork() -> io::Result<Fork> {
    // SAFETY: fork(2) has no memory-safety preconditions of its own. Its hazard is a
    // lock held by another thread at the fork, which stays held in the child: the
    // callers fork while single-threaded (the master), or run in the child only code
    // that takes no lock (the tests' `testing::in_child`).
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            crate::log::forked();
            Ok(Fork::Child)
        }
        pid => Ok(Fork::Parent(pid)),
    }
}

/// Ends the process at once with `code`, running no exit handler and flushing no
/// buffer (a forked child's copies of the parent's buffers must not be written
/// twice).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit(2) takes an integer and does not return; running no destructor
    // is sound (leaking is safe).
    unsafe { libc::_exit(code) }
}

/// The write end of the signal pipe, for the handler; -1 when none.
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = SIGNAL_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is one valid byte. A full
        // pipe drops the byte, which is harmless: the reader drains it anyway. The
        // descriptor is the pipe's write end, which `route_signals` keeps open while
        // it is in `SIGNAL_FD`.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// Makes `signals` write one byte each (the signal's number) into `pipe`, the write
/// end of a non-blocking pipe, which is kept open from now on. A pipe given earlier
/// is closed. SIGPIPE is ignored, so a write to a closed socket is an error, not a
/// death.
pub fn route_signals(pipe: OwnedFd, signals: &[libc::c_int]) -> io::Result<()> {
    let old = SIGNAL_FD.swap(pipe.into_raw_fd(), Ordering::SeqCst);
    if old >= 0 {
        // SAFETY: `old` is the write end an earlier call released from its `OwnedFd`
        // into `SIGNAL_FD`, and the swap took it out: nothing else owns it. A handler
        // running meanwhile loaded the new descriptor.
        drop(unsafe { OwnedFd::from_raw_fd(old) });
    }
    for &signal in signals {
        set_handler(signal, on_signal as *const () as libc::sighandler_t)?;
    }
    set_handler(libc::SIGPIPE, libc::SIG_IGN)
}

/// Restores the default action of `signals`.
pub fn default_signals(signals: &[libc::c_int]) -> io::Result<()> {
    for &signal in signals {
        set_handler(signal, libc::SIG_DFL)?;
    }
    Ok(())
}

fn set_handler(signal: libc::c_int, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is valid (no handler, no flags, an empty mask); the
    // handler set is SIG_IGN, SIG_DFL or `on_signal`, which only does
    // async-signal-safe work (an atomic load and write(2)).
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

/// The uid of the user `name`, if there is one.
pub fn user_id(name: &CStr) -> Option<u32> {
    // SAFETY: getpwnam returns NULL or a pointer to static storage, read at once;
    // it is called only by the master while single-threaded (privileges are dropped
    // at start), so no other call overwrites that storage meanwhile.
    unsafe {
        let p = libc::getpwnam(name.as_ptr());
        (!p.is_null()).then(|| (*p).pw_uid)
    }
}

/// The uid and primary gid of the user `name`, if there is one.
pub fn user_ids(name: &CStr) -> Option<(u32, u32)> {
    // SAFETY: as in `user_id`.
    unsafe {
        let p = libc::getpwnam(name.as_ptr());
        (!p.is_null()).then(|| ((*p).pw_uid, (*p).pw_gid))
    }
}

/// The gid of the group `name`, if there is one.
pub fn group_id(name: &CStr) -> Option<u32> {
    // SAFETY: as in `user_id`, with getgrnam.
    unsafe {
        let g = libc::getgrnam(name.as_ptr());
        (!g.is_null()).then(|| (*g).gr_gid)
    }
}

/// Clears the supplementary groups (`setgroups(0, NULL)`).
pub fn clear_groups() -> io::Result<()> {
    // SAFETY: an empty list: the null pointer is never read.
    if unsafe { libc::setgroups(0, std::ptr::null()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the real, effective and saved group id (`setgid(2)`, for the whole process).
pub fn set_gid(gid: u32) -> io::Result<()> {
    // SAFETY: setgid takes an integer.
    if unsafe { libc::setgid(gid) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the real, effective and saved user id (`setuid(2)`, for the whole process).
pub fn set_uid(uid: u32) -> io::Result<()> {
    // SAFETY: setuid takes an integer.
    if unsafe { libc::setuid(uid) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Returns the allocator's free memory to the system (glibc's `malloc_trim`; a
/// no-op elsewhere).
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its lock.
    unsafe {
        libc::malloc_trim(0);
    }
}
