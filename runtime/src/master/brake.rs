//! The brake on restarting a helper process of the relay (the health checker, the
//! DNS resolver) that keeps dying: restarted at once up to [`DEATHS`] deaths in
//! [`DEATH_WINDOW`], then only after [`RESTART_AFTER`].

use crate::warn;
use std::time::{Duration, Instant};

const DEATHS: usize = 3;
const DEATH_WINDOW: Duration = Duration::from_secs(10);
const RESTART_AFTER: Duration = Duration::from_secs(5);

/// The recent deaths of one helper process.
#[derive(Debug, Default)]
pub(super) struct Brake {
    deaths: Vec<Instant>,
}

impl Brake {
    /// Records a death of `what` (`the resolver`) at `now`: `None` to start another
    /// at once, else when to (logged once for this death).
    pub(super) fn death(&mut self, what: &str, now: Instant) -> Option<Instant> {
        self.deaths
            .retain(|t| now.duration_since(*t) < DEATH_WINDOW);
        self.deaths.push(now);
        if self.deaths.len() <= DEATHS {
            return None;
        }
        warn!(
            "{what} is dying fast: waiting {} s before starting another",
            RESTART_AFTER.as_secs()
        );
        Some(now + RESTART_AFTER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_deaths_in_ten_seconds_restart_at_once_the_fourth_waits() {
        let mut brake = Brake::default();
        let start = Instant::now();
        for i in 0..3 {
            assert_eq!(brake.death("it", start + Duration::from_secs(i)), None);
        }
        let fourth = start + Duration::from_secs(3);
        assert_eq!(brake.death("it", fourth), Some(fourth + RESTART_AFTER));
        // Deaths older than the window are forgotten.
        let later = fourth + DEATH_WINDOW + Duration::from_secs(1);
        assert_eq!(brake.death("it", later), None);
    }
}
