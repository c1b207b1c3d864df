//! What a scenario run reports: one JSON line for machines (stdout) and a
//! few lines for people (stderr), plus the headline figures that a
//! comparison puts side by side.

use serde::Serialize;
use serde_json::Value;

use crate::process::CpuReport;

/// One headline figure of a run, e.g. round trips per second.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub name: String,
    pub unit: &'static str,
    pub value: f64,
}

impl Figure {
    pub fn new(name: impl Into<String>, unit: &'static str, value: f64) -> Figure {
        Figure {
            name: name.into(),
            unit,
            value,
        }
    }
}

/// The CPU figures of a window, named through `name` (a sweep step adds
/// its rate): the tool's and server's cores, and the rest of the machine's.
pub fn cpu_figures(cpu: &CpuReport, name: impl Fn(&str) -> String) -> Vec<Figure> {
    let mut figures = vec![Figure::new(name("tool_cores"), "cores", cpu.tool.cores)];
    if let Some(server) = cpu.server {
        figures.push(Figure::new(name("server_cores"), "cores", server.cores));
    }
    figures.push(Figure::new(name("others_cores"), "cores", cpu.others_cores));
    figures
}

/// CPU microseconds each process spent per operation (a round trip, a
/// delivery, a join) over a window. Unlike a rate, this holds up on a
/// shared machine: another process taking cores slows both servers down
/// but barely changes what one operation costs them.
pub fn cost_figures(
    cpu: &CpuReport,
    operations: u64,
    name: impl Fn(&str) -> String,
) -> Vec<Figure> {
    if operations == 0 {
        return Vec::new();
    }
    let per_op = |cores: f64| cores * cpu.window_s * 1e6 / operations as f64;
    let mut figures = vec![Figure::new(
        name("tool_cpu_us_per_op"),
        "µs/op",
        per_op(cpu.tool.cores),
    )];
    if let Some(server) = cpu.server {
        figures.push(Figure::new(
            name("server_cpu_us_per_op"),
            "µs/op",
            per_op(server.cores),
        ));
    }
    figures
}

/// What one scenario run measured.
pub struct Outcome {
    pub scenario: &'static str,
    /// The scenario's result, a JSON object's text. Kept as text because
    /// serde_json's maps sort their keys, and the result reads best in the
    /// order its struct declares.
    pub result: String,
    pub figures: Vec<Figure>,
    /// For people: what was run and what came out, a few lines.
    pub summary: String,
}

impl Outcome {
    /// An outcome whose result is `result`, which must serialize to a JSON
    /// object (every scenario's result struct does).
    pub fn new(
        scenario: &'static str,
        result: &impl Serialize,
        figures: Vec<Figure>,
        summary: String,
    ) -> anyhow::Result<Outcome> {
        let result = serde_json::to_string(result)?;
        if !result.starts_with('{') {
            anyhow::bail!("a {scenario} result serialized to {result}, not to an object");
        }
        Ok(Outcome {
            scenario,
            result,
            figures,
            summary,
        })
    }

    /// The JSON result line: the scenario, the server's label when known,
    /// the URL, then the scenario's own fields.
    pub fn json_line(&self, server: Option<&str>, url: &str) -> String {
        let mut line = format!("{{\"scenario\":{}", Value::from(self.scenario));
        if let Some(server) = server {
            line.push_str(&format!(",\"server\":{}", Value::from(server)));
        }
        line.push_str(&format!(",\"url\":{}", Value::from(url)));
        let fields = &self.result[1..];
        if fields != "}" {
            line.push(',');
        }
        line.push_str(fields);
        line
    }
}

/// A count with thousands separators, for people.
pub struct Count(pub f64);

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = format!("{:.0}", self.0.abs());
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(digit);
        }
        if self.0 < 0.0 {
            f.write_str("-")?;
        }
        f.write_str(&grouped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_line_leads_with_scenario_server_and_url() {
        let outcome = Outcome::new(
            "rpc",
            &serde_json::json!({"sockets": 50}),
            vec![],
            String::new(),
        )
        .expect("object");
        assert_eq!(
            outcome.json_line(Some("echo"), "ws://127.0.0.1:1/socket/websocket"),
            r#"{"scenario":"rpc","server":"echo","url":"ws://127.0.0.1:1/socket/websocket","sockets":50}"#
        );
        assert!(Outcome::new("rpc", &1, vec![], String::new()).is_err());
        let empty =
            Outcome::new("idle", &serde_json::json!({}), vec![], String::new()).expect("object");
        assert_eq!(
            empty.json_line(None, "u"),
            r#"{"scenario":"idle","url":"u"}"#
        );
    }

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(Count(1234567.4).to_string(), "1,234,567");
        assert_eq!(Count(999.0).to_string(), "999");
        assert_eq!(Count(-1000.0).to_string(), "-1,000");
    }
}
