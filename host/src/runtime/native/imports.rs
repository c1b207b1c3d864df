//! The host imports of native plugin code: [`NativeHost`] on [`HostState`],
//! each method forwarding to the implementation a component's import calls,
//! so that effects, limits and checks are the same whichever way a plugin
//! is compiled.

use plume_sdk::__bindings::host as guest;
use plume_sdk::__bindings::host::types::Payload;
use plume_sdk::native::NativeHost;

use crate::runtime::bindings::imports::{
    channel, clock, figures, http, kv, log, plugin_config, presence, random, timers, token,
};
use crate::runtime::host::HostState;

type ChannelResult = Result<(), guest::channel::ChannelError>;

/// A native plugin's announcement in the host's binding type.
fn announcement(message: &guest::presence::Announcement) -> presence::Announcement {
    presence::Announcement {
        event: message.event.clone(),
        payload: message.payload.clone(),
        stamp: message.stamp.clone(),
    }
}

impl NativeHost for HostState {
    fn channel_push(&mut self, event: &str, payload: &Payload) -> ChannelResult {
        channel::Host::push(self, event.to_owned(), payload.into()).map_err(Into::into)
    }

    fn channel_broadcast(&mut self, event: &str, payload: &Payload) -> ChannelResult {
        channel::Host::broadcast(self, event.to_owned(), payload.into()).map_err(Into::into)
    }

    fn channel_broadcast_from(&mut self, event: &str, payload: &Payload) -> ChannelResult {
        channel::Host::broadcast_from(self, event.to_owned(), payload.into()).map_err(Into::into)
    }

    fn channel_broadcast_to(&mut self, topic: &str, event: &str, payload: &Payload) -> ChannelResult {
        channel::Host::broadcast_to(self, topic.to_owned(), event.to_owned(), payload.into()).map_err(Into::into)
    }

    fn channel_subscribe(&mut self, topic: &str) -> ChannelResult {
        channel::Host::subscribe(self, topic.to_owned()).map_err(Into::into)
    }

    fn channel_unsubscribe(&mut self, topic: &str) -> ChannelResult {
        channel::Host::unsubscribe(self, topic.to_owned()).map_err(Into::into)
    }

    fn channel_disconnect(&mut self, socket_id: &str) -> ChannelResult {
        channel::Host::disconnect(self, socket_id.to_owned()).map_err(Into::into)
    }

    fn channel_socket_ref(&mut self) -> Option<String> {
        channel::Host::socket_ref(self)
    }

    fn channel_reply(&mut self, socket_ref: &str, reply: &guest::types::Reply) -> ChannelResult {
        channel::Host::reply(self, socket_ref.to_owned(), reply.into()).map_err(Into::into)
    }

    fn timers_send_after(&mut self, delay_ms: u64, message: &str) -> Result<u64, guest::timers::TimerError> {
        timers::Host::send_after(self, delay_ms, message.to_owned()).map_err(Into::into)
    }

    fn timers_cancel(&mut self, id: u64) -> bool {
        timers::Host::cancel(self, id)
    }

    fn timers_send_self(&mut self, message: &str) -> Result<(), guest::timers::TimerError> {
        timers::Host::send_self(self, message.to_owned()).map_err(Into::into)
    }

    fn presence_track(&mut self, key: &str, meta: &str) -> Result<String, guest::presence::PresenceError> {
        presence::Host::track(self, key.to_owned(), meta.to_owned()).map_err(Into::into)
    }

    fn presence_update(&mut self, key: &str, meta: &str) -> Result<String, guest::presence::PresenceError> {
        presence::Host::update(self, key.to_owned(), meta.to_owned()).map_err(Into::into)
    }

    fn presence_untrack(&mut self, key: &str) -> Result<(), guest::presence::PresenceError> {
        presence::Host::untrack(self, key.to_owned()).map_err(Into::into)
    }

    fn presence_list(&mut self, topic: Option<&str>) -> Result<String, guest::presence::PresenceError> {
        presence::Host::list(self, topic.map(str::to_owned)).map_err(Into::into)
    }

    fn presence_count(&mut self, topic: Option<&str>) -> Result<u64, guest::presence::PresenceError> {
        presence::Host::count(self, topic.map(str::to_owned)).map_err(Into::into)
    }

    fn presence_push_state(&mut self) -> Result<(), guest::presence::PresenceError> {
        presence::Host::push_state(self).map_err(Into::into)
    }

    fn presence_identify(&mut self, identity: &str, left: Option<&guest::presence::Announcement>) -> Result<(), guest::presence::PresenceError> {
        presence::Host::identify(self, identity.to_owned(), left.map(announcement)).map_err(Into::into)
    }

    fn presence_announce(&mut self, except: &str, message: &guest::presence::Announcement) -> Result<(), guest::presence::PresenceError> {
        presence::Host::announce(self, except.to_owned(), announcement(message)).map_err(Into::into)
    }

    fn kv_get(&mut self, key: &str) -> Result<Option<guest::kv::Entry>, guest::kv::KvError> {
        Ok(kv::Host::get(self, key.to_owned())?.map(Into::into))
    }

    fn kv_set(&mut self, key: &str, value: &str, ttl_ms: Option<u64>) -> Result<u64, guest::kv::KvError> {
        kv::Host::set(self, key.to_owned(), value.to_owned(), ttl_ms).map_err(Into::into)
    }

    fn kv_delete(&mut self, key: &str) -> Result<bool, guest::kv::KvError> {
        kv::Host::delete(self, key.to_owned()).map_err(Into::into)
    }

    fn kv_compare_and_swap(
        &mut self,
        key: &str,
        expected: Option<u64>,
        value: &str,
        ttl_ms: Option<u64>,
    ) -> Result<Option<u64>, guest::kv::KvError> {
        kv::Host::compare_and_swap(self, key.to_owned(), expected, value.to_owned(), ttl_ms).map_err(Into::into)
    }

    fn kv_increment(&mut self, key: &str, delta: i64, ttl_ms: Option<u64>) -> Result<i64, guest::kv::KvError> {
        kv::Host::increment(self, key.to_owned(), delta, ttl_ms).map_err(Into::into)
    }

    fn kv_list_by_prefix(&mut self, prefix: &str, limit: u32) -> Result<Vec<(String, guest::kv::Entry)>, guest::kv::KvError> {
        let entries = kv::Host::list_by_prefix(self, prefix.to_owned(), limit)?;
        Ok(entries.into_iter().map(|(key, entry)| (key, entry.into())).collect())
    }

    fn http_send(&mut self, request: &guest::http::Request) -> Result<u64, guest::http::HttpError> {
        http::Host::send(self, request.into()).map_err(Into::into)
    }

    fn token_sign(&mut self, salt: &str, data: &str, max_age_seconds: Option<u64>) -> Result<String, guest::token::TokenError> {
        token::Host::sign(self, salt.to_owned(), data.to_owned(), max_age_seconds).map_err(Into::into)
    }

    fn token_verify(&mut self, salt: &str, token: &str, max_age_seconds: Option<u64>) -> Result<String, guest::token::TokenError> {
        token::Host::verify(self, salt.to_owned(), token.to_owned(), max_age_seconds).map_err(Into::into)
    }

    fn plugin_config_get(&mut self) -> String {
        plugin_config::Host::get(self)
    }

    fn log(&mut self, level: guest::log::Level, message: &str) {
        log::Host::log(self, level.into(), message.to_owned());
    }

    fn clock_now_ms(&mut self) -> u64 {
        clock::Host::now_ms(self)
    }

    fn clock_monotonic_ns(&mut self) -> u64 {
        clock::Host::monotonic_ns(self)
    }

    fn random_u64(&mut self) -> u64 {
        random::Host::random_u64(self)
    }

    fn random_bytes(&mut self, len: u32) -> Vec<u8> {
        random::Host::random_bytes(self, len)
    }

    fn figures_now(&mut self) -> guest::figures::AppFigures {
        figures::Host::now(self).into()
    }

    fn figures_connections_of(&mut self, socket_id: &str) -> u64 {
        figures::Host::connections_of(self, socket_id.to_owned())
    }
}
