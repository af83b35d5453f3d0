//! How many sessions a worker can hold: `users max`, lowered to what the open-file
//! limit allows. A session needs two descriptors (client and remote); a worker that
//! accepted a client it cannot open a remote socket for would have to shed it, so it
//! stops accepting before that point instead, and the connection waits in the
//! kernel's queue for a worker (or a moment) with room.

/// Descriptors kept free beyond the sessions': files TLS or syslog may open, a
/// connect in flight.
const HEADROOM: u64 = 8;

/// The soft `RLIMIT_NOFILE`, if it can be read.
fn open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0).then_some(lim.rlim_cur)
}

/// Descriptors open now (Linux: /proc/self/fd; elsewhere a conservative guess).
fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(32, |d| d.count() as u64)
}

/// The sessions a worker may hold: `users_max` (0 = no limit), at most what the
/// descriptor limit leaves room for. Logs when the limit is the lower of the two.
pub fn session_capacity(users_max: u32, worker: u32) -> usize {
    let wanted = if users_max == 0 {
        usize::MAX
    } else {
        users_max as usize
    };
    let Some(limit) = open_file_limit().filter(|l| *l != libc::RLIM_INFINITY) else {
        return wanted;
    };
    let by_fds = limit.saturating_sub(open_descriptors() + HEADROOM) / 2;
    let by_fds = usize::try_from(by_fds).unwrap_or(usize::MAX).max(1);
    if by_fds < wanted {
        crate::notice!(
            "worker {worker}: the open file limit ({limit}) allows {by_fds} sessions; users max is {}",
            if users_max == 0 { "unlimited".to_string() } else { users_max.to_string() }
        );
    }
    wanted.min(by_fds)
}

#[cfg(test)]
mod tests {
    #[test]
    fn capacity_is_at_most_users_max_and_positive() {
        assert!(super::session_capacity(5, 0) <= 5);
        assert!(super::session_capacity(1_000_000_000, 0) >= 1);
    }
}
