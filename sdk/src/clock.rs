//! Time as the host sees it. A plugin has no clock of its own worth
//! trusting: use these.

use std::time::Duration;

use crate::imports::clock as wit;

/// Milliseconds since the Unix epoch: wall-clock time, for timestamps.
///
/// ```no_run
/// let unix_seconds = plume_sdk::clock::now_ms() / 1000;
/// ```
pub fn now_ms() -> u64 {
    wit::now_ms()
}

/// Nanoseconds from an arbitrary fixed point; never goes back. For
/// measuring intervals (rate limits), not for timestamps.
///
/// ```no_run
/// use plume_sdk::clock;
///
/// let start = clock::monotonic_ns();
/// let elapsed_ms = (clock::monotonic_ns() - start) / 1_000_000;
/// ```
pub fn monotonic_ns() -> u64 {
    wit::monotonic_ns()
}

/// A Unix time in seconds as ISO 8601 UTC with second precision,
/// `2026-11-21T23:50:08Z`: the form Phoenix apps send timestamps in
/// (Ecto's `utc_datetime`).
///
/// ```
/// assert_eq!(plume_sdk::clock::utc_iso8601(951_782_400), "2000-02-29T00:00:00Z");
/// let now = plume_sdk::clock::utc_iso8601(0);
/// assert_eq!(now, "1970-01-01T00:00:00Z");
/// ```
pub fn utc_iso8601(unix_seconds: u64) -> String {
    let (days, seconds) = (unix_seconds / 86_400, unix_seconds % 86_400);
    // The proleptic Gregorian date `days` after 1970-01-01 (Howard
    // Hinnant's `civil_from_days`).
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// A duration in whole milliseconds, saturating: the unit of the host's
/// timers and expiries.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_iso8601_renders_utc_seconds() {
        assert_eq!(utc_iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_iso8601(1_795_305_008), "2026-11-21T23:50:08Z");
        assert_eq!(utc_iso8601(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn millis_rounds_down_and_saturates() {
        assert_eq!(millis(Duration::from_micros(1_999)), 1);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }
}
