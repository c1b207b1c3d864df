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
        "generated_at": plume_sdk::clock::utc_iso8601(unix_seconds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
