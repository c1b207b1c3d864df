//! Reading a fan-out sweep back from what `compare` printed.
//!
//! `plume-load compare ... fanout --sweep R1,R2,...` closes with one JSON
//! line, `{"compare":"fanout", ..., "figures":[...]}`, whose rows are named
//! `<figure>@<rate>` (e.g. `p99_us@200`) and carry one median per server as a
//! number-valued field named after the server (`"echo"`, `"plume"`, ...),
//! beside ratios named `<a>_over_<b>`. The server columns are read
//! generically, so a comparison of any set of servers charts without a
//! change here. Every other line (the per-run results, anything else that
//! was captured with them) is skipped.

use serde_json::{Map, Value};

/// The fields of a figure row that are not a server's median.
const NOT_A_SERVER: [&str; 2] = ["name", "unit"];

/// One server's figures at one publish rate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Point {
    /// The publish rate asked for (messages a second), or for a run without
    /// `--sweep` the number of the input line it came from: a series' points
    /// are joined in this order.
    pub order: f64,
    /// Deliveries a second the subscribers measured.
    pub deliveries_per_sec: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// Deliveries received out of those due, in percent.
    pub received_pct: Option<f64>,
}

impl Point {
    /// Whether some deliveries never arrived: the latencies then describe
    /// only the messages that did.
    pub fn lost_deliveries(&self) -> bool {
        self.received_pct.is_some_and(|pct| pct < 100.0)
    }
}

/// One server's points, in the order of the rates asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub server: String,
    pub points: Vec<Point>,
}

/// What the chart shows: every server's series, plus what the comparison
/// said about how it was run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sweep {
    pub series: Vec<Series>,
    /// From the comparison's command line, when it says.
    pub subscribers: Option<u64>,
    pub rounds: Option<u64>,
    pub cores: Option<u64>,
    pub unix_time: Option<u64>,
}

impl Sweep {
    /// Reads every `{"compare":"fanout",...}` line of `text`. Several lines
    /// (e.g. two sweeps' outputs concatenated) merge into one chart; where
    /// two give the same server and rate, the later wins.
    pub fn parse(text: &str) -> anyhow::Result<Sweep> {
        let mut sweep = Sweep::default();
        let mut other_scenarios = Vec::new();
        let mut found = false;
        for (number, line) in text.lines().enumerate() {
            let Ok(Value::Object(line)) = serde_json::from_str::<Value>(line.trim()) else {
                continue;
            };
            match line.get("compare").and_then(Value::as_str) {
                Some("fanout") => {
                    found = true;
                    sweep.add(&line, number + 1);
                }
                Some(other) => other_scenarios.push(other.to_owned()),
                None => {}
            }
        }
        if !found {
            let seen = if other_scenarios.is_empty() {
                String::new()
            } else {
                format!(" (it holds a comparison of {})", other_scenarios.join(", "))
            };
            anyhow::bail!(
                "the input has no fan-out comparison line{seen}: give it the output of `plume-load compare ... fanout --sweep R1,R2,...`"
            );
        }
        // By name, whatever order the line's fields came in, so that a
        // legend reads the same from run to run.
        sweep.series.sort_by(|a, b| a.server.cmp(&b.server));
        for series in &mut sweep.series {
            series.points.sort_by(|a, b| a.order.total_cmp(&b.order));
        }
        sweep.series.retain(|series| {
            series
                .points
                .iter()
                .any(|point| point.deliveries_per_sec.is_some())
        });
        anyhow::ensure!(
            !sweep.series.is_empty(),
            "the fan-out comparison has no deliveries_per_sec figures for any server: was it cut short?"
        );
        Ok(sweep)
    }

    /// Adds one comparison line, the `line_number`th of the input.
    fn add(&mut self, line: &Map<String, Value>, line_number: usize) {
        let command = line.get("command").and_then(Value::as_str).unwrap_or("");
        self.subscribers = subscribers(command).or(self.subscribers);
        self.rounds = line.get("rounds").and_then(Value::as_u64).or(self.rounds);
        self.cores = line.get("cores").and_then(Value::as_u64).or(self.cores);
        self.unix_time = line
            .get("unix_time")
            .and_then(Value::as_u64)
            .or(self.unix_time);
        let rows = line.get("figures").and_then(Value::as_array);
        for row in rows.into_iter().flatten().filter_map(Value::as_object) {
            let Some(name) = row.get("name").and_then(Value::as_str) else {
                continue;
            };
            // A run without --sweep names its figures without a rate; each
            // such line is then one point of its own.
            let (figure, rate) = match name.split_once('@') {
                Some((figure, rate)) => match rate.parse::<f64>() {
                    Ok(rate) => (figure, Some(rate)),
                    Err(_) => continue,
                },
                None => (name, None),
            };
            let field: fn(&mut Point) -> &mut Option<f64> = match figure {
                "deliveries_per_sec" => |p| &mut p.deliveries_per_sec,
                "p50_us" => |p| &mut p.p50_us,
                "p99_us" => |p| &mut p.p99_us,
                "received_pct" => |p| &mut p.received_pct,
                _ => continue,
            };
            for (server, value) in row {
                if NOT_A_SERVER.contains(&server.as_str()) || server.contains("_over_") {
                    continue;
                }
                if let Some(value) = value.as_f64() {
                    *field(self.point(server, rate, line_number)) = Some(value);
                }
            }
        }
    }

    /// The point of `server` at `rate`, made if new. A run without a sweep
    /// has one point a line, so its line number stands in for the rate.
    fn point(&mut self, server: &str, rate: Option<f64>, line_number: usize) -> &mut Point {
        let index = match self.series.iter().position(|s| s.server == server) {
            Some(index) => index,
            None => {
                self.series.push(Series {
                    server: server.to_owned(),
                    points: Vec::new(),
                });
                self.series.len() - 1
            }
        };
        let points = &mut self.series[index].points;
        let order = rate.unwrap_or(line_number as f64);
        let at = match points.iter().position(|p| p.order == order) {
            Some(at) => at,
            None => {
                points.push(Point {
                    order,
                    ..Point::default()
                });
                points.len() - 1
            }
        };
        &mut points[at]
    }
}

/// `--subscribers N` (or `--subscribers=N`) in a command line.
fn subscribers(command: &str) -> Option<u64> {
    let mut words = command.split_whitespace();
    while let Some(word) = words.next() {
        if word == "--subscribers" {
            return words.next()?.parse().ok();
        }
        if let Some(value) = word.strip_prefix("--subscribers=") {
            return value.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PER_RUN: &str = r#"{"scenario":"fanout","server":"echo","url":"ws://127.0.0.1:1/socket/websocket","subscribers":200}"#;

    /// A comparison line; `rows` may span lines for reading, the line may not.
    fn compare_line(command: &str, rows: &str) -> String {
        let rows = rows.replace('\n', "");
        format!(
            r#"{{"compare":"fanout","command":"{command}","unix_time":1795305600,"cores":2,"rounds":1,"figures":[{rows}]}}"#
        )
    }

    #[test]
    fn a_sweep_reads_back_as_one_series_per_server_column() {
        let line = compare_line(
            "plume-load compare fanout --subscribers 200 --sweep 50,25",
            r#"{"name":"deliveries_per_sec@50","unit":"/s","echo":10000.0,"plume":9900.0,"native":9950.0,"plume_over_echo":0.99},
               {"name":"p99_us@50","unit":"µs","echo":900.0,"plume":1500.0,"native":1200.0,"plume_over_echo":1.67,"plume_over_native":1.25,"echo_runs":[900.0],"plume_runs":[1500.0],"native_runs":[1200.0]},
               {"name":"received_pct@50","unit":"%","echo":100.0,"plume":99.5},
               {"name":"deliveries_per_sec@25","unit":"/s","echo":5000.0,"plume":5000.0,"native":5000.0},
               {"name":"p50_us@25","unit":"µs","echo":300.0,"plume":400.0,"native":350.0},
               {"name":"sustainable_deliveries_per_sec","unit":"/s","echo":10000.0,"plume":5000.0}"#,
        );
        let sweep = Sweep::parse(&format!("{PER_RUN}\nnot json\n\n{line}\n")).expect("parses");
        let servers: Vec<&str> = sweep.series.iter().map(|s| s.server.as_str()).collect();
        assert_eq!(servers, ["echo", "native", "plume"]);
        let plume = &sweep.series[2];
        let rates: Vec<f64> = plume.points.iter().map(|p| p.order).collect();
        assert_eq!(rates, [25.0, 50.0], "in the order of the rates");
        assert_eq!(plume.points[0].p50_us, Some(400.0));
        assert_eq!(plume.points[1].p99_us, Some(1500.0));
        assert!(plume.points[1].lost_deliveries());
        assert!(!sweep.series[0].points[1].lost_deliveries());
        assert_eq!(sweep.subscribers, Some(200));
        assert_eq!(sweep.rounds, Some(1));
    }

    #[test]
    fn input_without_a_fanout_comparison_says_what_to_give() {
        let rpc = r#"{"compare":"rpc","command":"c","figures":[]}"#;
        let error = Sweep::parse(&format!("{PER_RUN}\n{rpc}\n"))
            .expect_err("no fanout comparison")
            .to_string();
        assert!(error.contains("comparison of rpc"), "{error}");
        assert!(error.contains("--sweep"), "{error}");
    }

    #[test]
    fn the_subscriber_count_comes_from_the_command() {
        assert_eq!(
            subscribers("x fanout --subscribers 2000 --rate 5"),
            Some(2000)
        );
        assert_eq!(subscribers("x fanout --subscribers=300"), Some(300));
        assert_eq!(subscribers("x fanout --rate 5"), None);
    }
}
