//! Version 1 of the hot-reload test plugin: counts `incr`s in its assigns
//! and answers `ping` with its version and the count.

use plume_sdk::{Channel, HandleIn, Join, Payload, Reply, Socket, json};

pub struct Counter;

impl Channel for Counter {
    fn join(_topic: &str, _payload: Payload, socket: &mut Socket) -> Join {
        socket.assign("count", 0);
        Join::ok(json!({}))
    }

    fn handle_in(event: &str, _payload: Payload, socket: &mut Socket) -> HandleIn {
        let count = socket.get::<u64>("count").unwrap_or(0);
        match event {
            "incr" => {
                socket.assign("count", count + 1);
                Reply::ok(json!({"count": count + 1})).into()
            }
            "ping" => Reply::ok(json!({"version": 1, "count": count})).into(),
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }
}

plume_sdk::export_channel!(Counter);
