//! Every scenario, run briefly against the echo baseline: the tool and the
//! baseline agree on the protocol, and each scenario counts what it sent.
//! These check behaviour, not speed: a benchmark is `plume-load compare`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use clap::Parser;
use plume_load::client::Target;
use plume_load::report::Outcome;
use plume_load::scenario::Scenario;
use serde_json::Value;

/// A plume-echo process on a free port, killed when dropped.
struct Echo {
    child: Child,
    addr: String,
}

impl Echo {
    fn start() -> Echo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_plume-echo"))
            .args(["--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("plume-echo starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("a first line");
        let addr = line
            .trim()
            .strip_prefix("echo: listening on ")
            .expect("the ready line")
            .to_owned();
        Echo { child, addr }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Parses `args` as the scenario's command line, as `plume-load compare` would.
#[derive(Parser)]
struct Line {
    #[command(subcommand)]
    scenario: Scenario,
}

fn run(echo: &Echo, args: &[&str]) -> Value {
    let line = Line::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
        .expect("valid arguments");
    let url = format!("ws://{}/socket/websocket", echo.addr);
    let target = Arc::new(Target::new(&url, 4, Some(echo.child.id())).expect("a loopback target"));
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let outcome: Outcome = runtime
        .block_on(line.scenario.run(target))
        .expect("the scenario runs");
    serde_json::from_str(&outcome.json_line(Some("echo"), &url)).expect("the result line is JSON")
}

#[test]
fn rpc_counts_round_trips_with_no_errors() {
    let echo = Echo::start();
    let result = run(&echo, &["rpc", "--sockets", "4", "--seconds", "1"]);
    assert_eq!(result["scenario"], "rpc");
    assert_eq!(result["server"], "echo");
    assert!(
        result["round_trips"].as_u64().expect("a count") > 100,
        "{result}"
    );
    assert_eq!(result["latency_us"]["count"], result["round_trips"]);
    assert_eq!(result["error_replies"], 0);
    assert_eq!(result["sockets_failed"], 0);
    assert!(result["cpu"]["server"]["cores"].is_number());
}

#[test]
fn fanout_delivers_every_message_to_every_subscriber() {
    let echo = Echo::start();
    let result = run(
        &echo,
        &[
            "fanout",
            "--subscribers",
            "20",
            "--sweep",
            "20,50",
            "--seconds",
            "1",
        ],
    );
    let steps = result["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    for (step, rate) in steps.iter().zip([20, 50]) {
        assert_eq!(step["sent"], rate, "{result}");
        assert_eq!(step["expected"], rate * 20);
        assert_eq!(step["received"], rate * 20);
        assert_eq!(step["missing"], 0);
        assert_eq!(step["kept_up"], true);
    }
    assert_eq!(result["publish_replies_ok"], 70);
    assert_eq!(result["unrecognized_frames"], 0);
    assert_eq!(result["subscribers_closed"], 0);
}

/// Two echo servers are not a cluster: what the publisher's server
/// broadcasts never reaches the other's subscribers, so each server's
/// share shows exactly where the deliveries were counted.
#[test]
fn fanout_shares_subscribers_with_other_nodes_and_counts_each_share() {
    let main = Echo::start();
    let other = Echo::start();
    let other_url = format!("ws://{}/socket/websocket", other.addr);
    let result = run(
        &main,
        &[
            "fanout",
            "--subscribers",
            "21",
            "--rate",
            "20",
            "--seconds",
            "1",
            "--drain-seconds",
            "1",
            "--node",
            &other_url,
        ],
    );
    assert_eq!(
        result["subscribers_per_node"],
        serde_json::json!([11, 10]),
        "{result}"
    );
    let step = &result["steps"][0];
    assert_eq!(step["sent"], 20, "{result}");
    assert_eq!(step["expected"], 20 * 21);
    assert_eq!(step["received"], 20 * 11);
    assert_eq!(step["missing"], 20 * 10);
    assert_eq!(step["kept_up"], false);
    let nodes = step["nodes"].as_array().expect("a share per server");
    assert_eq!(nodes.len(), 2);
    assert_eq!(
        nodes[0]["url"],
        format!("ws://{}/socket/websocket", main.addr)
    );
    assert_eq!(nodes[0]["subscribers"], 11);
    assert_eq!(nodes[0]["expected"], 20 * 11);
    assert_eq!(nodes[0]["received"], 20 * 11);
    assert_eq!(nodes[0]["latency_us"]["count"], 20 * 11);
    assert_eq!(nodes[1]["url"], other_url);
    assert_eq!(nodes[1]["expected"], 20 * 10);
    assert_eq!(nodes[1]["received"], 0);
    assert_eq!(result["publish_replies_ok"], 20);
    assert_eq!(result["subscribers_closed"], 0);
}

#[test]
fn idle_measures_the_servers_memory_and_heartbeats() {
    let echo = Echo::start();
    let result = run(
        &echo,
        &[
            "idle",
            "--sockets",
            "20",
            "--hold-seconds",
            "1",
            "--heartbeat-seconds",
            "1",
            "--settle-seconds",
            "0",
        ],
    );
    assert!(result["rss_before_bytes"].as_u64().expect("bytes") > 0);
    assert!(result["bytes_per_socket"].is_number());
    assert_eq!(result["heartbeats"], 20, "{result}");
    assert_eq!(result["heartbeat_errors"], 0);
}

#[test]
fn joins_joins_every_socket() {
    let echo = Echo::start();
    let result = run(&echo, &["joins", "--sockets", "50", "--concurrency", "10"]);
    assert_eq!(result["joined"], 50, "{result}");
    assert_eq!(result["failed"], 0);
    assert_eq!(result["join_latency_us"]["count"], 50);
}
