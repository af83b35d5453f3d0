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

#[cfg(test)]
mod tests {
    use super::score;

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
