//! The balancing rule the runtime's workers apply and the compiler's tools reason
//! about (`tcprelay-cc route`, the weight lints): one implementation for both.
//!
//! Weighted least connections, as the original: the remote with the lowest
//! `active * 256 / weight` wins, the first in plan order on ties; a weight of 0 (an
//! operator's override) makes a remote a last resort.

/// The load score of a remote with `active` sessions of this worker and `weight`:
/// lower is chosen first. Integer arithmetic, as the original (`1 * 256 / 3 = 85`).
pub fn score(active: u64, weight: u64) -> u64 {
    match weight {
        0 => u64::MAX,
        weight => active.saturating_mul(256) / weight,
    }
}

/// The weight a balancer uses for a remote's planned `weight`: a weight of 0 counts
/// as 1 (the plan validator refuses it anyway; only an operator's override, which
/// does not pass here, makes a remote a last resort).
pub fn weight(planned: u32) -> u64 {
    u64::from(planned.max(1))
}

/// The candidate to choose among `(index, score)` pairs in plan order: the lowest
/// score, the first on ties (only a strictly lower score displaces it). `None`
/// when there is no candidate.
pub fn lowest(candidates: impl IntoIterator<Item = (usize, u64)>) -> Option<(usize, u64)> {
    let mut best: Option<(usize, u64)> = None;
    for (index, score) in candidates {
        if best.is_none_or(|(_, s)| score < s) {
            best = Some((index, score));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::{lowest, score, weight};

    #[test]
    fn the_lowest_score_wins_and_the_first_on_ties() {
        assert_eq!(lowest([(0, 5), (1, 3), (2, 3)]), Some((1, 3)));
        assert_eq!(lowest([(4, 0), (7, 0)]), Some((4, 0)));
        assert_eq!(lowest([(0, u64::MAX)]), Some((0, u64::MAX)));
        assert_eq!(lowest(std::iter::empty()), None);
        assert_eq!(weight(0), 1);
        assert_eq!(weight(3), 3);
    }

    #[test]
    fn scores_are_integer_and_zero_weight_is_last() {
        assert_eq!(score(0, 1), 0);
        assert_eq!(score(1, 3), 85);
        assert_eq!(score(1, 2), 128);
        assert_eq!(
            score(1, 300),
            0,
            "a weight over 256 rounds one session down to 0"
        );
        assert_eq!(score(0, 0), u64::MAX);
        assert_eq!(score(u64::MAX, 1), u64::MAX, "saturates, never wraps");
    }
}
