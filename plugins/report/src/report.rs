//! What a report is made of: its steps, its body, and the time it was
//! generated at. Pure, so it is unit-tested natively.

use plume_sdk::{Value, json};

/// The progress pushed at each step, in order; the last completes it.
pub const STEPS: [(u8, &str); 5] = [
    (0, "Starting report"),
    (25, "Collecting data"),
    (50, "Processing data"),
    (75, "Formatting report"),
    (100, "Report complete"),
];

/// The finished report for `kind` and `year`, generated at `unix_seconds`:
/// a total per quarter.
pub fn body(kind: &str, year: i64, unix_seconds: u64) -> Value {
    let data: Vec<Value> = (1..=4u64)
        .map(|quarter| json!({"quarter": quarter, "total": quarter * 100}))
        .collect();
    json!({
        "type": kind,
        "year": year,
        "rows": data.len(),
        "data": data,
        "generated_at": iso8601(unix_seconds),
    })
}

/// `2026-11-21T23:50:32Z` for a Unix time in seconds.
pub fn iso8601(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let seconds = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_renders_utc_seconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_795_305_032), "2026-11-21T23:50:32Z");
        assert_eq!(iso8601(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn the_steps_go_from_0_to_100_by_25() {
        let percents: Vec<u8> = STEPS.iter().map(|(percent, _)| *percent).collect();
        assert_eq!(percents, [0, 25, 50, 75, 100]);
    }

    #[test]
    fn the_body_has_a_total_per_quarter() {
        assert_eq!(
            body("sales", 2024, 1_795_305_032).to_string(),
            r#"{"data":[{"quarter":1,"total":100},{"quarter":2,"total":200},{"quarter":3,"total":300},{"quarter":4,"total":400}],"generated_at":"2026-11-21T23:50:32Z","rows":4,"type":"sales","year":2024}"#
        );
    }
}
