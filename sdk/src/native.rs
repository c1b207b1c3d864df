//! Plugin code compiled natively into a host, instead of as a WebAssembly
//! component. Plugin authors do not need this module.
//!
//! In a WebAssembly build, [`channel`](crate::channel), [`kv`](crate::kv)
//! and the other safe modules call the component's imports. A native build
//! (a plugin's unit tests, or a host that links a plugin's crate in to
//! measure what the sandbox costs) has no component to import from: there,
//! the same functions call the [`NativeHost`] that [`with_host`] installed
//! on the current thread for the duration of one call. A native host calls
//! a plugin through `ChannelExport<T>`'s export functions inside
//! `with_host`, exactly as a WebAssembly host calls the component.
//!
//! Outside `with_host`, a host import panics and says so: a plugin's unit
//! tests can run everything that does not reach the host.
//!
//! The types are the SDK's own bindings of `wit/plume.wit`
//! (`plume_sdk::__bindings::host`), so a host converts them to its own
//! bindings of the same WIT field by field.

use std::cell::Cell;
use std::ptr::NonNull;

use crate::__bindings::host::channel::ChannelError;
use crate::__bindings::host::figures::AppFigures;
use crate::__bindings::host::http::{HttpError, Request};
use crate::__bindings::host::kv::{Entry, KvError};
use crate::__bindings::host::log::Level;
use crate::__bindings::host::presence::PresenceError;
use crate::__bindings::host::timers::TimerError;
use crate::__bindings::host::token::TokenError;
use crate::__bindings::host::types::{Payload, Reply};

/// The host side of every import of the `host` world, one method per WIT
/// function (`channel.push` is [`channel_push`](Self::channel_push)), with
/// the parameters and results the WebAssembly imports have.
pub trait NativeHost {
    fn channel_push(&mut self, event: &str, payload: &Payload) -> Result<(), ChannelError>;
    fn channel_broadcast(&mut self, event: &str, payload: &Payload) -> Result<(), ChannelError>;
    fn channel_broadcast_from(&mut self, event: &str, payload: &Payload) -> Result<(), ChannelError>;
    fn channel_broadcast_to(&mut self, topic: &str, event: &str, payload: &Payload) -> Result<(), ChannelError>;
    fn channel_subscribe(&mut self, topic: &str) -> Result<(), ChannelError>;
    fn channel_unsubscribe(&mut self, topic: &str) -> Result<(), ChannelError>;
    fn channel_disconnect(&mut self, socket_id: &str) -> Result<(), ChannelError>;
    fn channel_socket_ref(&mut self) -> Option<String>;
    fn channel_reply(&mut self, socket_ref: &str, reply: &Reply) -> Result<(), ChannelError>;

    fn timers_send_after(&mut self, delay_ms: u64, message: &str) -> Result<u64, TimerError>;
    fn timers_cancel(&mut self, id: u64) -> bool;
    fn timers_send_self(&mut self, message: &str) -> Result<(), TimerError>;

    fn presence_track(&mut self, key: &str, meta: &str) -> Result<String, PresenceError>;
    fn presence_update(&mut self, key: &str, meta: &str) -> Result<String, PresenceError>;
    fn presence_untrack(&mut self, key: &str) -> Result<(), PresenceError>;
    fn presence_list(&mut self, topic: Option<&str>) -> Result<String, PresenceError>;
    fn presence_count(&mut self, topic: Option<&str>) -> Result<u64, PresenceError>;
    fn presence_push_state(&mut self) -> Result<(), PresenceError>;
    fn presence_identify(&mut self, identity: &str, left: Option<&crate::__bindings::host::presence::Announcement>) -> Result<(), PresenceError>;
    fn presence_announce(&mut self, except: &str, message: &crate::__bindings::host::presence::Announcement) -> Result<(), PresenceError>;

    fn kv_get(&mut self, key: &str) -> Result<Option<Entry>, KvError>;
    fn kv_set(&mut self, key: &str, value: &str, ttl_ms: Option<u64>) -> Result<u64, KvError>;
    fn kv_delete(&mut self, key: &str) -> Result<bool, KvError>;
    fn kv_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<u64>,
        value: &str,
        ttl_ms: Option<u64>,
    ) -> Result<Option<u64>, KvError>;
    fn kv_increment(&mut self, key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, KvError>;
    fn kv_list_by_prefix(&mut self, prefix: &str, limit: u32) -> Result<Vec<(String, Entry)>, KvError>;

    fn http_send(&mut self, request: &Request) -> Result<u64, HttpError>;

    fn token_sign(&mut self, salt: &str, data: &str, max_age_seconds: Option<u64>) -> Result<String, TokenError>;
    fn token_verify(&mut self, salt: &str, token: &str, max_age_seconds: Option<u64>) -> Result<String, TokenError>;

    fn plugin_config_get(&mut self) -> String;

    fn log(&mut self, level: Level, message: &str);

    fn clock_now_ms(&mut self) -> u64;
    fn clock_monotonic_ns(&mut self) -> u64;

    fn random_u64(&mut self) -> u64;
    fn random_bytes(&mut self, len: u32) -> Vec<u8>;

    fn figures_now(&mut self) -> AppFigures;
    fn figures_connections_of(&mut self, socket_id: &str) -> u64;
}

thread_local! {
    /// The host of the call in progress on this thread, if any. Its
    /// lifetime is erased: [`with_host`] guarantees it outlives its stay.
    static HOST: Cell<Option<NonNull<dyn NativeHost>>> = const { Cell::new(None) };
}

/// Puts a host pointer back into [`HOST`] when dropped, unwinding included.
struct Restore(Option<NonNull<dyn NativeHost>>);

impl Drop for Restore {
    fn drop(&mut self) {
        HOST.set(self.0);
    }
}

/// Runs `f` (a call of plugin code) with `host` answering every host import
/// made on this thread meanwhile. Calls nest: the previous host comes back
/// when `f` returns or unwinds.
pub fn with_host<R>(host: &mut dyn NativeHost, f: impl FnOnce() -> R) -> R {
    let host = NonNull::from(host);
    // SAFETY: only the trait object's lifetime bound is erased. The pointer
    // leaves the thread-local (`_restore` runs on return and on unwind)
    // before this function returns, so it is never used after the borrow
    // it came from ends.
    let host = unsafe { std::mem::transmute::<NonNull<dyn NativeHost + '_>, NonNull<dyn NativeHost + 'static>>(host) };
    let _restore = Restore(HOST.replace(Some(host)));
    f()
}

/// Runs one import on the installed host.
fn call<R>(import: &str, f: impl FnOnce(&mut dyn NativeHost) -> R) -> R {
    let Some(mut host) = HOST.take() else {
        panic!(
            "the host import `{import}` was called outside a host call: in a native build, plugin code reaches \
             the host only inside plume_sdk::native::with_host (unit-test what does not call the host, and \
             run the rest on plume, e.g. with plume-test)"
        );
    };
    let _restore = Restore(Some(host));
    // SAFETY: the pointer comes from the `&mut` that `with_host` borrows for
    // the whole of the plugin call. It is out of the thread-local while `f`
    // runs, so this is the only reference to the host until `_restore` puts
    // it back.
    f(unsafe { host.as_mut() })
}

/// The imports with the signatures `wit-bindgen` generates, answered by the
/// installed [`NativeHost`]. The crate's safe modules name these (through
/// `crate::imports`) on native targets, and the component's on WebAssembly.
pub(crate) mod imports {
    pub mod channel {
        pub use crate::__bindings::host::channel::ChannelError;
        use crate::__bindings::host::types::Payload;

        pub fn push(event: &str, payload: &Payload) -> Result<(), ChannelError> {
            super::super::call("channel.push", |host| host.channel_push(event, payload))
        }

        pub fn broadcast(event: &str, payload: &Payload) -> Result<(), ChannelError> {
            super::super::call("channel.broadcast", |host| host.channel_broadcast(event, payload))
        }

        pub fn broadcast_from(event: &str, payload: &Payload) -> Result<(), ChannelError> {
            super::super::call("channel.broadcast-from", |host| host.channel_broadcast_from(event, payload))
        }

        pub fn broadcast_to(topic: &str, event: &str, payload: &Payload) -> Result<(), ChannelError> {
            super::super::call("channel.broadcast-to", |host| host.channel_broadcast_to(topic, event, payload))
        }

        pub fn subscribe(topic: &str) -> Result<(), ChannelError> {
            super::super::call("channel.subscribe", |host| host.channel_subscribe(topic))
        }

        pub fn unsubscribe(topic: &str) -> Result<(), ChannelError> {
            super::super::call("channel.unsubscribe", |host| host.channel_unsubscribe(topic))
        }

        pub fn disconnect(socket_id: &str) -> Result<(), ChannelError> {
            super::super::call("channel.disconnect", |host| host.channel_disconnect(socket_id))
        }

        pub fn socket_ref() -> Option<String> {
            super::super::call("channel.socket-ref", |host| host.channel_socket_ref())
        }

        pub fn reply(socket_ref: &str, reply: &crate::__bindings::host::types::Reply) -> Result<(), ChannelError> {
            super::super::call("channel.reply", |host| host.channel_reply(socket_ref, reply))
        }
    }

    pub mod timers {
        pub use crate::__bindings::host::timers::TimerError;

        pub fn send_after(delay_ms: u64, message: &str) -> Result<u64, TimerError> {
            super::super::call("timers.send-after", |host| host.timers_send_after(delay_ms, message))
        }

        pub fn cancel(id: u64) -> bool {
            super::super::call("timers.cancel", |host| host.timers_cancel(id))
        }

        pub fn send_self(message: &str) -> Result<(), TimerError> {
            super::super::call("timers.send-self", |host| host.timers_send_self(message))
        }
    }

    pub mod presence {
        pub use crate::__bindings::host::presence::PresenceError;

        pub fn track(key: &str, meta: &str) -> Result<String, PresenceError> {
            super::super::call("presence.track", |host| host.presence_track(key, meta))
        }

        pub fn update(key: &str, meta: &str) -> Result<String, PresenceError> {
            super::super::call("presence.update", |host| host.presence_update(key, meta))
        }

        pub fn untrack(key: &str) -> Result<(), PresenceError> {
            super::super::call("presence.untrack", |host| host.presence_untrack(key))
        }

        pub fn list(topic: Option<&str>) -> Result<String, PresenceError> {
            super::super::call("presence.list", |host| host.presence_list(topic))
        }

        pub fn count(topic: Option<&str>) -> Result<u64, PresenceError> {
            super::super::call("presence.count", |host| host.presence_count(topic))
        }

        pub fn push_state() -> Result<(), PresenceError> {
            super::super::call("presence.push-state", |host| host.presence_push_state())
        }

        pub use crate::__bindings::host::presence::Announcement;

        pub fn identify(identity: &str, left: Option<&Announcement>) -> Result<(), PresenceError> {
            super::super::call("presence.identify", |host| host.presence_identify(identity, left))
        }

        pub fn announce(except: &str, message: &Announcement) -> Result<(), PresenceError> {
            super::super::call("presence.announce", |host| host.presence_announce(except, message))
        }
    }

    pub mod kv {
        pub use crate::__bindings::host::kv::{Entry, KvError};

        pub fn get(key: &str) -> Result<Option<Entry>, KvError> {
            super::super::call("kv.get", |host| host.kv_get(key))
        }

        pub fn set(key: &str, value: &str, ttl_ms: Option<u64>) -> Result<u64, KvError> {
            super::super::call("kv.set", |host| host.kv_set(key, value, ttl_ms))
        }

        pub fn delete(key: &str) -> Result<bool, KvError> {
            super::super::call("kv.delete", |host| host.kv_delete(key))
        }

        pub fn compare_and_swap(
            key: &str,
            expected: Option<u64>,
            value: &str,
            ttl_ms: Option<u64>,
        ) -> Result<Option<u64>, KvError> {
            super::super::call("kv.compare-and-swap", |host| {
                host.kv_compare_and_swap(key, expected, value, ttl_ms)
            })
        }

        pub fn increment(key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, KvError> {
            super::super::call("kv.increment", |host| host.kv_increment(key, delta, ttl_ms))
        }

        pub fn list_by_prefix(prefix: &str, limit: u32) -> Result<Vec<(String, Entry)>, KvError> {
            super::super::call("kv.list-by-prefix", |host| host.kv_list_by_prefix(prefix, limit))
        }
    }

    pub mod http {
        pub use crate::__bindings::host::http::{HttpError, Request};

        pub fn send(request: &Request) -> Result<u64, HttpError> {
            super::super::call("http.send", |host| host.http_send(request))
        }
    }

    pub mod token {
        pub use crate::__bindings::host::token::TokenError;

        pub fn sign(salt: &str, data: &str, max_age_seconds: Option<u64>) -> Result<String, TokenError> {
            super::super::call("token.sign", |host| host.token_sign(salt, data, max_age_seconds))
        }

        pub fn verify(salt: &str, token: &str, max_age_seconds: Option<u64>) -> Result<String, TokenError> {
            super::super::call("token.verify", |host| host.token_verify(salt, token, max_age_seconds))
        }
    }

    pub mod plugin_config {
        pub fn get() -> String {
            super::super::call("plugin-config.get", |host| host.plugin_config_get())
        }
    }

    pub mod log {
        pub use crate::__bindings::host::log::Level;

        pub fn log(level: Level, message: &str) {
            super::super::call("log.log", |host| host.log(level, message))
        }
    }

    pub mod clock {
        pub fn now_ms() -> u64 {
            super::super::call("clock.now-ms", |host| host.clock_now_ms())
        }

        pub fn monotonic_ns() -> u64 {
            super::super::call("clock.monotonic-ns", |host| host.clock_monotonic_ns())
        }
    }

    pub mod random {
        pub fn random_u64() -> u64 {
            super::super::call("random.random-u64", |host| host.random_u64())
        }

        pub fn random_bytes(len: u32) -> Vec<u8> {
            super::super::call("random.random-bytes", |host| host.random_bytes(len))
        }
    }

    pub mod figures {
        pub use crate::__bindings::host::figures::{AppFigures, PluginFigure};

        pub fn now() -> AppFigures {
            super::super::call("figures.now", |host| host.figures_now())
        }

        pub fn connections_of(socket_id: &str) -> u64 {
            super::super::call("figures.connections-of", |host| host.figures_connections_of(socket_id))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[should_panic(expected = "the host import `clock.now-ms` was called outside a host call")]
    fn an_import_outside_a_host_call_panics_and_names_it() {
        crate::clock::now_ms();
    }
}
