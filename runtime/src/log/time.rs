//! Timestamps of standard error's lines: RFC 3339 in UTC with milliseconds
//! (`2026-12-01T22:15:21.123Z`), formatted from `SystemTime` without a date crate
//! (the runtime needs this one format, and UTC has no time zones to look up).

use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as `YYYY-MM-DDTHH:MM:SS.mmmZ`, appended to `out`. A clock set before 1970
/// prints as the epoch.
pub(super) fn rfc3339_utc(t: SystemTime, out: &mut String) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let of_day = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_millis()
    );
}

/// The proleptic Gregorian date (year, month 1–12, day 1–31) of `days` since
/// 1970-01-01. Days are counted in 400-year eras of 146,097 days from 0000-03-01, so
/// that the leap day falls at the end of each counted year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the era, [0, 146096]
                                     // Year of the era, [0, 399]: 365 days a year, less the leap days before `doe`.
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // from March 1st, [0, 365]
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, millis: u64) -> String {
        let mut s = String::new();
        rfc3339_utc(
            UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis),
            &mut s,
        );
        s
    }

    /// Known instants (from `date -u -d DATE +%s`), leap days among them: 2000 is a
    /// leap year (divisible by 400), 2100 is not (by 100), so its February ends on
    /// the 28th.
    #[test]
    fn timestamps_of_known_dates_leap_days_included() {
        for (secs, millis, want) in [
            (0, 0, "1970-01-01T00:00:00.000Z"),
            (68_169_600, 5, "1972-02-29T00:00:00.005Z"),
            (946_684_799, 999, "1999-12-31T23:59:59.999Z"),
            (951_782_400, 0, "2000-02-29T00:00:00.000Z"),
            (951_868_800, 0, "2000-03-01T00:00:00.000Z"),
            (1_709_164_800, 123, "2024-02-29T00:00:00.123Z"),
            (2_147_483_648, 0, "2038-01-19T03:14:08.000Z"),
            (4_107_456_000, 0, "2100-02-28T00:00:00.000Z"),
            (4_107_542_400, 0, "2100-03-01T00:00:00.000Z"),
            (13_574_563_200, 0, "2400-02-29T00:00:00.000Z"),
            (1_796_163_321, 123, "2026-12-01T22:15:21.123Z"),
        ] {
            assert_eq!(at(secs, millis), want, "{secs} s");
        }
        // Before the epoch: the epoch, not a panic or a negative year.
        let mut s = String::new();
        rfc3339_utc(UNIX_EPOCH - Duration::from_secs(1), &mut s);
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
    }

    /// Day after day from 1970 to 2500, the date moves by one day: the next day of
    /// the month, or the 1st of the next month after the month's last day, with
    /// February's length from the leap-year rule.
    #[test]
    fn every_day_follows_the_one_before_for_five_centuries() {
        let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let length = |y: i64, m: u32| match m {
            2 if leap(y) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut prev = civil_from_days(0);
        assert_eq!(prev, (1970, 1, 1));
        for days in 1..(530 * 366) {
            let (y, m, d) = prev;
            let want = if d < length(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            let got = civil_from_days(days);
            assert_eq!(got, want, "day {days}");
            prev = got;
        }
        assert!(prev.0 >= 2500, "{prev:?}");
    }
}
