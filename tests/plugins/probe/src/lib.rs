//! A test-only channel plugin that puts every host import and every export
//! of the WIT contract within a client's reach, so the end-to-end tests can
//! drive each one over a real socket. It also misbehaves on request (spins,
//! grows without end, recurses, panics, returns invalid JSON or an enormous
//! reply, broadcasts in a loop, never finishes a join) to prove that only
//! its own channel pays.

use std::time::Duration;

use plume_sdk::{
    Channel, HandleIn, HandleInfo, HandleOut, Join, Payload, Reply, Socket, Stop, Value, channel,
    clock, config, figures, http, json, kv, log, presence, random, timers, token,
};

pub struct Probe;

fn field<'a>(payload: &'a Value, key: &str) -> &'a Value {
    payload.get(key).unwrap_or(&Value::Null)
}

fn text<'a>(payload: &'a Value, key: &str) -> &'a str {
    field(payload, key).as_str().unwrap_or_default()
}

fn ok_or_error<T: serde::Serialize, E: std::fmt::Display>(result: Result<T, E>) -> HandleIn {
    match result {
        Ok(value) => Reply::ok(json!({ "result": value })).into(),
        Err(error) => Reply::error(json!({ "error": error.to_string() })).into(),
    }
}

fn ttl(payload: &Value) -> Option<Duration> {
    field(payload, "ttl_ms").as_u64().map(Duration::from_millis)
}

/// The key-value operations, by name.
fn kv_op(p: &Value) -> HandleIn {
    let key = text(p, "key");
    match text(p, "op") {
        "get" => ok_or_error(kv::get(key).map(|e| e.map(|e| json!({"value": e.value, "version": e.version})))),
        "set" => ok_or_error(kv::set(key, text(p, "value"), ttl(p))),
        "delete" => ok_or_error(kv::delete(key)),
        "cas" => ok_or_error(kv::compare_and_swap(key, field(p, "expected").as_u64(), text(p, "value"), ttl(p))),
        "increment" => ok_or_error(kv::increment(key, field(p, "delta").as_i64().unwrap_or(1), ttl(p))),
        "list" => ok_or_error(
            kv::list_by_prefix(text(p, "prefix"), field(p, "limit").as_u64().unwrap_or(100) as u32)
                .map(|list| list.into_iter().map(|(k, e)| json!([k, e.value])).collect::<Vec<_>>()),
        ),
        other => Reply::error(json!({ "error": format!("unknown kv op {other}") })).into(),
    }
}

/// Recursion without end; the frame's buffer keeps the optimizer from
/// turning it into a loop.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(frame[0] + 1) + frame[63]
}

impl Channel for Probe {
    fn join(topic: &str, payload: Payload, socket: &mut Socket) -> Join {
        let payload = payload.value().unwrap_or(Value::Null);
        if field(&payload, "refuse").as_bool() == Some(true) {
            return Join::error(json!({"reason": "refused"}));
        }
        if field(&payload, "track_then_refuse").as_bool() == Some(true) {
            let _ = presence::track("ghost", &json!({}));
            return Join::error(json!({"reason": "refused after tracking"}));
        }
        if field(&payload, "crash").as_bool() == Some(true) {
            panic!("join crash requested");
        }
        if field(&payload, "hang").as_bool() == Some(true) {
            loop {
                std::hint::spin_loop();
            }
        }
        if field(&payload, "echo_payload").as_bool() == Some(true) {
            return Join::ok(json!({"payload": payload}));
        }
        if field(&payload, "after_join").as_bool() == Some(true) {
            let _ = timers::send_self(&json!({"after_join": true}));
        }
        socket.assign("joined", topic);
        Join::ok(json!({
            "join_ref": socket.join_ref(),
            "socket_id": socket.socket_id(),
            "user": socket.get::<Value>("user"),
        }))
    }

    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
        let p = payload.value().unwrap_or(Value::Null);
        match event {
            "push" => ok_or_error(channel::push(text(&p, "event"), field(&p, "payload"))),
            "broadcast" => ok_or_error(channel::broadcast(text(&p, "event"), field(&p, "payload"))),
            "broadcast_from" => ok_or_error(channel::broadcast_from(text(&p, "event"), field(&p, "payload"))),
            "broadcast_to" => ok_or_error(channel::broadcast_to(text(&p, "topic"), text(&p, "event"), field(&p, "payload"))),
            "subscribe" => ok_or_error(channel::subscribe(text(&p, "topic"))),
            "unsubscribe" => ok_or_error(channel::unsubscribe(text(&p, "topic"))),
            "disconnect" => ok_or_error(channel::disconnect(text(&p, "socket_id"))),
            "send_after" => ok_or_error(
                timers::send_after(Duration::from_millis(field(&p, "delay_ms").as_u64().unwrap_or(0)), field(&p, "message"))
                    .map(|id| id.0),
            ),
            "cancel" => ok_or_error(Ok::<_, String>(timers::cancel(timers::TimerId(field(&p, "timer_id").as_u64().unwrap_or(0))))),
            "send_self" => match timers::send_self(field(&p, "message")) {
                Ok(()) => HandleIn::NoReply,
                Err(error) => Reply::error(json!({ "error": error.to_string() })).into(),
            },
            "kv" => kv_op(&p),
            // Late replies: the push's socket ref, answered from handle_info.
            "socket_ref" => ok_or_error(channel::socket_ref().ok_or("no socket ref")),
            "reply_later" => {
                let Some(socket_ref) = channel::socket_ref() else {
                    return Reply::error(json!({"error": "no socket ref"})).into();
                };
                let delay = Duration::from_millis(field(&p, "delay_ms").as_u64().unwrap_or(0));
                match timers::send_after(delay, &json!({"late_reply": socket_ref, "response": field(&p, "response")})) {
                    Ok(_) => HandleIn::NoReply,
                    Err(error) => Reply::error(json!({ "error": error.to_string() })).into(),
                }
            }
            "reply_with" => ok_or_error(channel::reply(
                &channel::SocketRef(text(&p, "ref").to_owned()),
                Reply::ok(json!({"late": true})),
            )),
            "http" => {
                let mut request = http::request(text(&p, "method"), text(&p, "url"));
                if let Some(headers) = field(&p, "headers").as_object() {
                    for (name, value) in headers {
                        request = request.header(name, value.as_str().unwrap_or_default());
                    }
                }
                if let Some(body) = field(&p, "body").as_str() {
                    request = request.body(body);
                }
                if let Some(ms) = field(&p, "timeout_ms").as_u64() {
                    request = request.timeout(Duration::from_millis(ms));
                }
                ok_or_error(request.send().map(|id| id.0))
            }
            "token_sign" => ok_or_error(token::sign(text(&p, "salt"), field(&p, "data"), None)),
            "token_verify" => ok_or_error(token::verify::<Value>(
                text(&p, "salt"),
                text(&p, "token"),
                field(&p, "max_age").as_u64().map(Duration::from_secs),
            )),
            "config" => ok_or_error(config::get::<Value>()),
            "log" => {
                match text(&p, "level") {
                    "error" => log::error(text(&p, "message")),
                    "warn" => log::warn(text(&p, "message")),
                    "debug" => log::debug(text(&p, "message")),
                    "trace" => log::trace(text(&p, "message")),
                    _ => log::info(text(&p, "message")),
                }
                Reply::ok(json!({})).into()
            }
            "clock" => Reply::ok(json!({"now_ms": clock::now_ms(), "monotonic_ns": clock::monotonic_ns()})).into(),
            "random" => {
                let len = field(&p, "len").as_u64().unwrap_or(16) as u32;
                Reply::ok(json!({"u64s_differ": random::u64() != random::u64(), "bytes": random::bytes(len).len()})).into()
            }
            "figures" => {
                let now = figures::now();
                let id = socket.socket_id().unwrap_or_default().to_owned();
                Reply::ok(json!({
                    "connections": now.connections,
                    "channels": now.channels,
                    "users": now.users,
                    "plugins": now.plugins.iter().map(|p| json!({"name": p.name, "version": p.version, "channels": p.channels})).collect::<Vec<_>>(),
                    "connections_of_me": figures::connections_of(&id),
                }))
                .into()
            }
            "presence_track" => ok_or_error(presence::track(text(&p, "key"), field(&p, "meta"))),
            "presence_update" => ok_or_error(presence::update(text(&p, "key"), field(&p, "meta"))),
            "presence_untrack" => ok_or_error(presence::untrack(text(&p, "key"))),
            "presence_count" => ok_or_error(presence::count(None)),
            "assign" => {
                socket.assign(text(&p, "key"), field(&p, "value").clone());
                Reply::ok(json!({})).into()
            }
            "assigns" => Reply::ok(socket.get::<Value>(text(&p, "key")).unwrap_or(Value::Null)).into(),
            "stop" => {
                let stop = Stop::new(text(&p, "reason"));
                match field(&p, "reply").as_bool() {
                    Some(true) => HandleIn::Stop(stop.with_reply(Reply::ok(json!({"stopping": true})))),
                    _ => HandleIn::Stop(stop),
                }
            }
            "spin" => loop {
                std::hint::spin_loop();
            },
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => Reply::ok(json!(recurse(0))).into(),
            "panic" => panic!("probe panic requested"),
            "huge" => {
                let bytes = field(&p, "bytes").as_u64().unwrap_or(4 << 20) as usize;
                Reply::ok(json!({ "big": "x".repeat(bytes) })).into()
            }
            "broadcast_storm" => {
                let mut n: u64 = 0;
                loop {
                    let _ = channel::broadcast_to(text(&p, "topic"), "storm", &json!({ "n": n }));
                    n += 1;
                }
            }
            "busy" => {
                let until = clock::monotonic_ns() + field(&p, "ms").as_u64().unwrap_or(100) * 1_000_000;
                while clock::monotonic_ns() < until {
                    std::hint::spin_loop();
                }
                Reply::ok(json!({})).into()
            }
            "bad_json" => Reply::ok_raw(Payload::from_raw("{not json")).into(),
            // Binary payloads: a client pushes bytes (a V2 binary frame).
            "binary_info" => Reply::ok(json!({
                "binary": payload.is_binary(),
                "bytes": payload.as_binary().map(<[u8]>::len),
            }))
            .into(),
            "binary_push" => ok_or_error(channel::push_binary("blob", payload.as_binary().unwrap_or_default())),
            "binary_broadcast" => ok_or_error(channel::broadcast_binary(
                "blob",
                payload.as_binary().unwrap_or_default(),
            )),
            "binary_broadcast_reversed" => ok_or_error(channel::broadcast_binary(
                "reversed",
                payload.as_binary().unwrap_or_default(),
            )),
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }

    fn intercepts() -> &'static [&'static str] {
        &["secret", "hidden", "reversed"]
    }

    /// `secret` is rewritten per subscriber; `hidden` never reaches clients.
    fn handle_out(event: &str, payload: Payload, socket: &mut Socket) -> HandleOut {
        match event {
            "secret" => HandleOut::push_changed(json!({
                "original": payload.value().unwrap_or(Value::Null),
                "seen_by": socket.get::<Value>("user").and_then(|u| u.get("id").cloned()),
            })),
            "reversed" => {
                let mut bytes = payload.as_binary().unwrap_or_default().to_vec();
                bytes.reverse();
                HandleOut::PushChanged(Payload::binary(bytes))
            }
            _ => HandleOut::Drop,
        }
    }

    fn handle_info(message: Payload, _socket: &mut Socket) -> HandleInfo {
        let message = message.value().unwrap_or(Value::Null);
        if let Some(socket_ref) = message.get("late_reply").and_then(Value::as_str) {
            let reply = Reply::ok(message.get("response").cloned().unwrap_or(Value::Null));
            if let Err(error) = channel::reply(&channel::SocketRef(socket_ref.to_owned()), reply) {
                let _ = channel::push("late_reply_failed", &json!({"error": error.to_string()}));
            }
            return HandleInfo::NoReply;
        }
        let _ = channel::push("info", &message);
        HandleInfo::NoReply
    }

    fn terminate(reason: &str, socket: &Socket) {
        log::info(&format!("probe terminate {} {reason}", socket.topic()));
        // Kept where a test can read it back over the wire, after a
        // restart too (on the durable store): the last reason per topic.
        let _ = kv::set(&format!("terminated:{}", socket.topic()), reason, None);
        let _ = channel::broadcast_to(
            "probe:watch",
            "terminated",
            &json!({"topic": socket.topic(), "reason": reason}),
        );
    }
}

plume_sdk::export_channel!(Probe);
