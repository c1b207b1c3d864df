//! One `handle-in` call through the runtime on a pooled instance, JSON on
//! both sides included, beside the same handler compiled natively.
//!
//! Run: `cargo bench -p plume --bench handle_in` (builds the plugins first).
//!
//! Both sides do the same work per call: hand the event, the payload text
//! and the socket view (topic, join ref, socket id, assigns JSON) to the
//! room plugin's handler, let it decide, and check the reply payload is JSON
//! as the host does. `ping` echoes its payload untouched; `new_msg` with a
//! non-string body parses the payload and serializes an error reply.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use plume::runtime::{CallContext, ChannelScope, LentPayload, SocketView};
use plume_sdk::__bindings::channel_plugin::exports::plume::plugin::channel_handler::{Action, Guest};
use plume_sdk::__bindings::host::types::{Payload as GuestPayload, Socket as GuestSocket};
use plume_sdk::__private::ChannelExport;

const ASSIGNS: &str = r#"{"user":{"id":42,"name":"user-42","role":"user"}}"#;
const CASES: [(&str, &str); 2] = [
    ("ping", r#"{"hello":"world","n":1}"#),
    ("new_msg", r#"{"body":5}"#),
];

fn wasm(c: &mut Criterion) {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = plume::build::build_plugins(&workspace).expect("the plugins build");
    let loaded = plume::config::demo(&dir).expect("demo config");
    let runtime = plume::runtime::Runtime::new(plume::server::runtime_settings(&loaded), plume::server::compile_cache(&loaded)).expect("runtime");
    let app = plume::server::build_app(&loaded, &runtime).expect("app");
    let route = app.route("room:lobby").expect("room route");
    let (plugin, config) = (route.plugin.clone(), route.config.clone());
    let version = plugin.current();
    let view = SocketView {
        topic: "room:lobby".into(),
        join_ref: Some("1".into()),
        socket_id: Some("user_socket:42".into()),
        assigns: ASSIGNS.into(),
    };
    let topic: Arc<str> = "room:lobby".into();
    // What lowering the socket's four strings costs: the same ping with them
    // empty (as if the guest asked for them only when it reads them).
    let empty = SocketView {
        topic: String::new(),
        join_ref: None,
        socket_id: None,
        assigns: String::new(),
    };
    c.bench_function("wasm handle-in ping, empty socket", |b| {
        b.iter(|| {
            let scope = ChannelScope::new(1, 1, topic.clone());
            let ctx = CallContext::new(app.clone(), plugin.name.clone(), config.clone(), Some(scope));
            let payload = LentPayload::Json(black_box(CASES[0].1));
            let (_ctx, handled) = version.handle_in(ctx, black_box("ping"), payload, &empty);
            black_box(handled.expect("the call succeeds"))
        })
    });
    for (event, payload) in CASES {
        c.bench_function(&format!("wasm handle-in {event}"), |b| {
            b.iter(|| {
                let scope = ChannelScope::new(1, 1, topic.clone());
                let ctx = CallContext::new(app.clone(), plugin.name.clone(), config.clone(), Some(scope));
                let payload = LentPayload::Json(black_box(payload));
                let (_ctx, handled) = version.handle_in(ctx, black_box(event), payload, &view);
                black_box(handled.expect("the call succeeds"))
            })
        });
    }
}

fn native(c: &mut Criterion) {
    for (event, payload) in CASES {
        c.bench_function(&format!("native handle-in {event}"), |b| {
            b.iter(|| {
                let socket = GuestSocket {
                    topic: "room:lobby".into(),
                    join_ref: Some("1".into()),
                    socket_id: Some("user_socket:42".into()),
                    assigns: ASSIGNS.into(),
                };
                let handled = <ChannelExport<room::Room> as Guest>::handle_in(
                    black_box(event).to_owned(),
                    GuestPayload::Json(black_box(payload).to_owned()),
                    socket,
                );
                if let Action::Reply(reply) = &handled.action
                    && let GuestPayload::Json(json) = &reply.payload
                {
                    serde_json::from_str::<serde::de::IgnoredAny>(json).expect("JSON reply");
                }
                black_box(handled)
            })
        });
    }
}

criterion_group!(benches, wasm, native);
criterion_main!(benches);
