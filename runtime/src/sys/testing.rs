//! What the unit tests need beyond the runtime's own calls: a child process that
//! stores to shared memory, a network namespace with its loopback up, a TLS
//! session set for resumption, and the resident size of a mapping.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use super::process::{exit_now, fork, Fork};

/// Runs `child` in a forked process, which then exits 0 at once, and waits for it:
/// its exit status as `waitpid` reports it.
///
/// `child` must take no lock (the test process has other threads, whose locks
/// would stay held in the child): the board's test only stores to atomics.
pub fn in_child(child: impl FnOnce()) -> io::Result<rustix::process::WaitStatus> {
    match fork()? {
        Fork::Child => {
            child();
            exit_now(0)
        }
        Fork::Parent(pid) => {
            let pid = rustix::process::Pid::from_raw(pid).ok_or(io::ErrorKind::InvalidData)?;
            loop {
                match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
                    Ok(Some((_, status))) => return Ok(status),
                    Ok(None) => continue,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// Moves the calling thread into a network namespace of its own
/// (`unshare(CLONE_NEWNET)`; needs CAP_SYS_ADMIN).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn own_network_namespace() -> io::Result<()> {
    // SAFETY: unshare(2) takes a flag and no pointer. CLONE_NEWNET changes only
    // which network stack the calling thread's new sockets use; it shares no
    // descriptor table or memory differently (what makes unshare unsafe in general).
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ip link set lo up` in the calling thread's network namespace, with the two
/// ioctls it makes.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn loopback_up() -> io::Result<()> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: `ifreq` is plain data, for which all zeroes is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: the socket is open (owned above); SIOCGIFFLAGS reads the NUL-terminated
    // name and writes the flags into `ifr`, valid for the call.
    if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled `ifru_flags`, the union's field read here.
    unsafe {
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
    }
    // SAFETY: as above; SIOCSIFFLAGS only reads `ifr`.
    if unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Offers `session` for resumption on `ssl`. Both must come from the same
/// connector (so the same context), which `SslRef::set_session` requires: the
/// caller's connector made both.
pub fn set_session(
    ssl: &mut openssl::ssl::SslRef,
    session: &openssl::ssl::SslSessionRef,
) -> Result<(), openssl::error::ErrorStack> {
    // SAFETY: the session was made by a connection of the same context as `ssl`
    // (the one caller, the TLS resumption test, takes both from one connector).
    unsafe { ssl.set_session(session) }
}

/// The resident size in KiB, in this process, of the mapping that holds `address`
/// (its `Rss:` line in `/proc/self/smaps`): the pages of it this process touched.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn resident_kib(address: usize) -> io::Result<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) {
                inside = (start..end).contains(&address);
                continue;
            }
        }
        if let (true, Some(rss)) = (inside, line.strip_prefix("Rss:")) {
            let kib = rss.trim().trim_end_matches("kB").trim();
            return kib.parse().map_err(|_| io::ErrorKind::InvalidData.into());
        }
    }
    Err(io::ErrorKind::NotFound.into())
}

/// Makes the kernel refuse `io_uring_setup` with `EPERM` to the calling thread (and
/// threads it starts), as a container's seccomp profile does: a filter that
/// allows every other system call. A thread's filter stays until it exits, so
/// call it in a thread of its own.
#[cfg(target_os = "linux")]
pub fn refuse_io_uring_setup_in_this_thread() -> io::Result<()> {
    // struct seccomp_data starts with the system call's number (u32).
    const NR: u32 = 0;
    let program = [
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: NR,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: prctl with integer arguments; PR_SET_NO_NEW_PRIVS is per thread and
    // only forbids gaining privileges by exec, which the tests do not need.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fprog` points at `program`, both alive during the call (the kernel
    // copies the filter); no flags, so only this thread is filtered.
    if unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
