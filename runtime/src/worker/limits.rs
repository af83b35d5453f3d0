//! How many sessions a worker can hold: `users max`, lowered to what the open-file
//! limit allows; and how many pipes it may use to splice bulk transfers. A session
//! needs two descriptors (client and remote); a worker that accepted a client it
//! cannot open a remote socket for would have to shed it, so it stops accepting
//! before that point instead, and the connection waits in the kernel's queue for a
//! worker (or a moment) with room. A pipe needs two descriptors too: pipes get a
//! share of the descriptors fixed here, so that splicing never takes a session's
//! place.

/// Descriptors kept free beyond the sessions': files TLS or syslog may open, a
/// connect in flight.
const HEADROOM: u64 = 8;

/// The most pipes a worker uses: a quarter of its sessions (as HAProxy's default
/// `maxpipes`), at least `MIN_PIPES`, at most `MAX_PIPES`.
const MIN_PIPES: usize = 8;
const MAX_PIPES: usize = 1024;

/// When the descriptor limit cannot hold both, pipes get at most this fraction of
/// the descriptors (1/10) and sessions the rest.
const PIPE_SHARE_DIVISOR: u64 = 10;

/// What a worker may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    pub sessions: usize,
    /// Pipes for splicing (0: copy only).
    pub pipes: usize,
}

/// The soft `RLIMIT_NOFILE`; `None` when there is none (`RLIM_INFINITY`).
fn open_file_limit() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Nofile).current
}

/// Descriptors open now (Linux: /proc/self/fd; elsewhere a conservative guess).
fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(32, |d| d.count() as u64)
}

/// The sessions and pipes a worker may hold: `users_max` sessions (0 = no limit),
/// at most what the descriptor limit leaves room for. `watchable` is the number of
/// descriptors the event mechanism can watch, if it has such a limit (select(2):
/// `FD_SETSIZE`, the lowest descriptor numbers; no splicing then, as pipes would
/// take low numbers from sessions). Logs when a limit is lower than `users max`.
pub fn capacity(users_max: u32, worker: u32, watchable: Option<usize>) -> Capacity {
    let wanted = if users_max == 0 {
        usize::MAX
    } else {
        users_max as usize
    };
    let open_files =
        open_file_limit().map(|limit| (limit, format!("the open file limit ({limit})")));
    let select = watchable.is_some();
    let watchable = watchable.map(|n| {
        (
            n as u64,
            format!("select(2), which watches descriptors below {n},"),
        )
    });
    let limit = [open_files, watchable]
        .into_iter()
        .flatten()
        .min_by_key(|(limit, _)| *limit);
    let free = limit
        .as_ref()
        .map(|(limit, _)| limit.saturating_sub(open_descriptors() + HEADROOM));
    let capacity = within(wanted, free, !select);
    if capacity.sessions < wanted {
        if let Some((_, what)) = limit {
            if users_max == 0 {
                // The default: as many as the descriptors allow.
                crate::info!(
                    "worker {worker}: up to {} sessions ({what})",
                    capacity.sessions
                );
            } else {
                crate::notice!(
                    "worker {worker}: {what} allows {} sessions; users max is {users_max}",
                    capacity.sessions,
                );
            }
        }
    }
    capacity
}

/// [`capacity`] for `wanted` sessions given the descriptors the worker may still
/// open (`None`: no limit).
fn within(wanted: usize, free: Option<u64>, splice: bool) -> Capacity {
    let pipes_wanted = if splice {
        (wanted / 4).clamp(MIN_PIPES, MAX_PIPES)
    } else {
        0
    };
    let Some(free) = free else {
        return Capacity {
            sessions: wanted,
            pipes: pipes_wanted,
        };
    };
    let need = 2 * (wanted as u128 + pipes_wanted as u128);
    if need <= u128::from(free) {
        return Capacity {
            sessions: wanted,
            pipes: pipes_wanted,
        };
    }
    let pipes = pipes_wanted.min(usize::try_from(free / PIPE_SHARE_DIVISOR / 2).unwrap_or(0));
    let sessions = (free - 2 * pipes as u64) / 2;
    Capacity {
        sessions: usize::try_from(sessions)
            .unwrap_or(usize::MAX)
            .clamp(1, wanted),
        pipes,
    }
}

#[cfg(test)]
mod tests {
    use super::{within, Capacity};

    #[test]
    fn capacity_is_at_most_users_max_and_positive() {
        assert!(super::capacity(5, 0, None).sessions <= 5);
        assert!(super::capacity(1_000_000_000, 0, None).sessions >= 1);
    }

    #[test]
    fn select_leaves_room_below_fd_setsize_and_does_not_splice() {
        let capacity = super::capacity(0, 0, Some(1024));
        assert!((1..=508).contains(&capacity.sessions), "{capacity:?}");
        assert_eq!(capacity.pipes, 0);
    }

    #[test]
    fn pipes_get_a_share_only_when_descriptors_are_short() {
        // Room for everything: users max, and a quarter as many pipes (8 to 1,024).
        let c = |sessions, pipes| Capacity { sessions, pipes };
        assert_eq!(within(60, Some(20_000), true), c(60, 15));
        assert_eq!(within(10, None, true), c(10, 8));
        assert_eq!(within(100_000, None, true), c(100_000, 1024));
        // Short: a tenth of the descriptors for pipes, the rest for sessions.
        assert_eq!(within(20_000, Some(19_990), true), c(8_996, 999));
        assert_eq!(within(usize::MAX, Some(19_990), true), c(8_996, 999));
        assert_eq!(within(1_000, Some(25), true), c(11, 1));
        // Never no session at all.
        assert_eq!(within(1_000, Some(0), true), c(1, 0));
        // No splicing: every descriptor for sessions.
        assert_eq!(within(20_000, Some(19_990), false), c(9_995, 0));
    }
}
