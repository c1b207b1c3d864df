//! `plume-load cluster` end to end: a real `redis-server` and real plume
//! nodes (plume-native, which is `plume serve` with the room channel
//! compiled in), started by the run itself, beside one node alone. The
//! figures are what a short run must get right whatever the machine's
//! speed: every message delivered on both layouts and on every node, one
//! Redis publish per broadcast (never one per subscriber), every node
//! hearing each broadcast once.

use std::path::Path;

use clap::Parser;
use plume_load::cluster::{self, ClusterArgs};
use serde_json::Value;

#[derive(Parser)]
struct Line {
    #[command(flatten)]
    args: ClusterArgs,
}

/// The median of figure `name` for `layout` (single or cluster).
fn median(report: &Value, name: &str, layout: &str) -> f64 {
    report["figures"]
        .as_array()
        .expect("figures")
        .iter()
        .find(|row| row["name"] == name)
        .and_then(|row| row[layout].as_f64())
        .unwrap_or_else(|| panic!("no {layout} figure {name} in {report}"))
}

#[test]
fn two_nodes_over_redis_deliver_everything_for_one_publish_a_broadcast() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let plugins = plume::build::build_plugins(&workspace).expect("the demo plugins build");
    let plugins = plugins.to_string_lossy().into_owned();
    let line = Line::try_parse_from([
        "cluster",
        "--server",
        "native",
        "--native",
        env!("CARGO_BIN_EXE_plume-native"),
        "--plugin-dir",
        &plugins,
        "--subscribers",
        "20",
        "--rate",
        "20",
        "--seconds",
        "2",
        "--background-seconds",
        "1",
        "--sources",
        "2",
    ])
    .expect("valid arguments");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let report = cluster::measure(&line.args, &runtime).expect("the benchmark runs");
    let report = serde_json::to_value(&report).expect("the report is JSON");
    assert_eq!(report["nodes"], 2);
    assert_eq!(report["subscribers_per_node"], 20);

    for layout in ["single", "cluster"] {
        assert_eq!(
            median(&report, "received_pct", layout),
            100.0,
            "{layout}: {report}"
        );
        assert!(median(&report, "deliveries_per_sec", layout) > 0.0);
    }
    // The cluster's second node got all its share, across Redis.
    assert_eq!(median(&report, "node1_received_pct", "cluster"), 100.0);
    assert_eq!(median(&report, "node2_received_pct", "cluster"), 100.0);
    assert!(median(&report, "node2_p99_us", "cluster") > 0.0);

    // 40 broadcasts to 40 subscribers: one publish each, heard by each of
    // the two nodes once. The background (a probe publish per node every
    // 2 s) is estimated over 1 s, so allow a little either way.
    let publishes = median(&report, "redis_publishes_per_broadcast", "cluster");
    assert!(
        (0.8..=1.2).contains(&publishes),
        "{publishes} publishes a broadcast: {report}"
    );
    let receipts = median(&report, "node_receipts_per_broadcast", "cluster");
    assert!(
        (1.6..=2.4).contains(&receipts),
        "{receipts} receipts a broadcast: {report}"
    );
    let bytes_in = median(&report, "redis_bytes_in_per_broadcast", "cluster");
    assert!(
        (50.0..=1000.0).contains(&bytes_in),
        "{bytes_in} B in a broadcast: {report}"
    );
    assert_eq!(median(&report, "node_messages_dropped", "cluster"), 0.0);
}
