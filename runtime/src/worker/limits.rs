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
/// descriptor limit leaves room for. `watchable` is the number of descriptors the
/// event mechanism can watch, if it has such a limit (select(2): `FD_SETSIZE`, the
/// lowest descriptor numbers). Logs when a limit is lower than `users max`.
pub fn session_capacity(users_max: u32, worker: u32, watchable: Option<usize>) -> usize {
    let wanted = if users_max == 0 {
        usize::MAX
    } else {
        users_max as usize
    };
    let open_files = open_file_limit()
        .filter(|l| *l != libc::RLIM_INFINITY)
        .map(|limit| (limit, format!("the open file limit ({limit})")));
    let watchable = watchable.map(|n| {
        (
            n as u64,
            format!("select(2), which watches descriptors below {n},"),
        )
    });
    let Some((limit, what)) = [open_files, watchable]
        .into_iter()
        .flatten()
        .min_by_key(|(limit, _)| *limit)
    else {
        return wanted;
    };
    let by_fds = limit.saturating_sub(open_descriptors() + HEADROOM) / 2;
    let by_fds = usize::try_from(by_fds).unwrap_or(usize::MAX).max(1);
    if by_fds < wanted {
        crate::notice!(
            "worker {worker}: {what} allows {by_fds} sessions; users max is {}",
            if users_max == 0 {
                "unlimited".to_string()
            } else {
                users_max.to_string()
            }
        );
    }
    wanted.min(by_fds)
}

#[cfg(test)]
mod tests {
    #[test]
    fn capacity_is_at_most_users_max_and_positive() {
        assert!(super::session_capacity(5, 0, None) <= 5);
        assert!(super::session_capacity(1_000_000_000, 0, None) >= 1);
    }

    #[test]
    fn select_leaves_room_below_fd_setsize() {
        let capacity = super::session_capacity(0, 0, Some(1024));
        assert!((1..=508).contains(&capacity), "{capacity}");
    }
}
