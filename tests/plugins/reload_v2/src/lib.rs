//! Version 2 of the hot-reload test plugin: answers `ping` differently, and
//! its `upgrade` records the version it came from in the assigns, refusing
//! channels whose count is 13 (so a test can watch one upgrade fail). Its
//! `terminate` broadcasts `terminated` with the assigns it sees, so a test
//! can tell whether a leaving channel was upgraded first.

use plume_sdk::{Assigns, Channel, HandleIn, Join, Payload, Reply, Socket, Value, channel, json};

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
            "ping" => Reply::ok(json!({
                "version": 2,
                "count": count,
                "upgraded_from": socket.get::<Value>("upgraded_from"),
            }))
            .into(),
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }

    fn terminate(reason: &str, socket: &Socket) {
        let _ = channel::broadcast(
            "terminated",
            &json!({
                "version": 2,
                "reason": reason,
                "count": socket.get::<u64>("count"),
                "upgraded_from": socket.get::<Value>("upgraded_from"),
            }),
        );
    }

    fn upgrade(from_version: &str, assigns: &mut Assigns) -> Result<(), String> {
        if assigns.get::<u64>("count") == Some(13) {
            return Err("this version refuses a count of 13".into());
        }
        assigns.assign("upgraded_from", from_version);
        Ok(())
    }
}

plume_sdk::export_channel!(Counter);
