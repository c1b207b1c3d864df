//! Channels of a socket: join, leave, pushes, broadcasts, timers, crashes.
//!
//! A channel is host state: its topic, join reference, assigns and timers
//! live here, and every plugin call receives them and returns what changed.
//! That is what lets a trapped instance be thrown away, and a new plugin
//! version take over, without a channel losing anything.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::AbortHandle;

use super::connection::{Connection, Pending, write};
use super::{SocketEvent, next_channel_key};
use crate::app::ChannelPlugin;
use crate::app::telemetry::{Call, JoinOutcome};
use crate::protocol::{self, Body, Inbound, Outbound, Payload, json_str};
use crate::history::Recovery;
use crate::pubsub::{ChannelKey, Delivery, Position, Subscriber, Subscription};
use crate::runtime::{
    Action, CallContext, ChannelScope, ChannelVersion, Effect, Fault, InfoAction, LentPayload, OutAction,
    Reply, ReplyStatus, SocketView, TimerId, WitPayload,
};

/// One joined channel.
pub(super) struct Channel {
    topic: Arc<str>,
    /// The topic as a JSON string, ready for frames.
    topic_json: String,
    /// The join reference as raw JSON, exactly as the client sent it.
    join_ref: String,
    /// What the plugin sees: topic, join ref, socket id and assigns.
    view: SocketView,
    plugin: Arc<ChannelPlugin>,
    /// The version this channel last ran on; a newer current version runs
    /// `upgrade` on the channel first.
    version: Arc<ChannelVersion>,
    /// The current version's `upgrade` refused this channel (or crashed):
    /// it is not tried again for the channel's `terminate`.
    upgrade_failed: bool,
    config: Arc<str>,
    intercepts: Arc<HashSet<String>>,
    timers: HashMap<TimerId, AbortHandle>,
    extra_topics: HashSet<String>,
    /// HTTP requests started by this channel whose outcome has not come
    /// back yet.
    http_in_flight: HashSet<u64>,
    /// After a recovery: the live broadcasts at or below this position were
    /// replayed already (or, if the client was not recovered, are older
    /// than where it goes on from), and are skipped.
    replayed_through: Option<Position>,
    /// Who the channel is to presence announcements (`presence.identify`):
    /// it does not receive those that except this identity.
    identity: Option<String>,
    /// Announced to the topic when the channel ends.
    on_leave: Option<crate::presence::Announcement>,
}

/// A position no history has (epochs are never 0): recovering from it
/// yields the topic's current position and nothing else.
const NO_POSITION: Position = Position { epoch: 0, offset: 0 };

/// The `"_recover"` of a join's payload: the payload without it, and the
/// position it names (`None` when it names none). `None` when the join
/// does not ask to recover.
fn recover_request(message: &Inbound<'_>) -> Option<(protocol::OwnedInbound, Option<Position>)> {
    let crate::protocol::InPayload::Json(raw) = message.payload else {
        return None;
    };
    if !raw.get().contains("\"_recover\"") {
        return None;
    }
    let mut payload: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw.get()).ok()?;
    let asked = payload.remove("_recover")?;
    let since = asked.as_str().and_then(|text| text.parse::<Position>().ok());
    let stripped = serde_json::to_string(&payload).ok()?;
    Some((protocol::OwnedInbound::new(message).with_json_payload(&stripped)?, since))
}

impl Channel {
    /// Whether a message's `join_ref` names this channel: the same
    /// reference (as JSON: `"1"` is not `1`), or any when the channel was
    /// joined without one.
    fn joined_as(&self, join_ref: &serde_json::value::RawValue) -> bool {
        if self.join_ref == protocol::NULL || self.join_ref == join_ref.get() {
            return true;
        }
        let parse = |raw: &str| serde_json::from_str::<serde_json::Value>(raw).ok();
        parse(&self.join_ref).is_some_and(|ours| parse(join_ref.get()) == Some(ours))
    }
}

fn status(status: ReplyStatus) -> &'static str {
    match status {
        ReplyStatus::Ok => "ok",
        ReplyStatus::Error => "error",
    }
}

/// `normal` and `shutdown` stops close a channel; anything else crashes it.
fn is_clean_stop(reason: &str) -> bool {
    reason == "normal" || reason == "shutdown" || reason.starts_with("shutdown:")
}

impl Connection {
    fn context(&self, plugin: &ChannelPlugin, config: &Arc<str>, scope: ChannelScope) -> CallContext {
        CallContext::new(self.app.clone(), plugin.name.clone(), config.clone(), Some(scope))
    }

    /// A join. The channel subscribes to its topic before its plugin's
    /// `join` runs: in a cluster, a topic new to this node goes live first
    /// (the join waits for that, see [`Connection::resume_join`]), so the
    /// presences the join reads and the broadcasts made right after it are
    /// all there. A refused join unsubscribes again.
    ///
    /// On a topic with history, a join whose payload has `"_recover"` (the
    /// last position its client saw) recovers: the key is taken out before
    /// the plugin sees the payload, the history is read after subscribing,
    /// and what the client missed follows the join's reply.
    pub(super) fn join(&mut self, topic: &str, message: &Inbound<'_>) {
        let Some(route) = self.app.route(topic) else {
            return self.unmatched(message);
        };
        let previous = self.topics.get(topic).copied();
        if previous.is_none() && self.channels.len() >= self.app.limits.max_channels_per_socket {
            return self.reply_raw(message, "error", r#"{"reason":"too many channels joined"}"#);
        }
        let plugin = route.plugin.clone();
        let policy = route.history.filter(|policy| policy.recover);
        let (stripped, since) = match policy.and_then(|_| recover_request(message)) {
            Some((stripped, since)) => (Some(stripped), Some(since)),
            None => (None, None),
        };
        // What the plugin sees: the payload without `_recover`.
        let seen = stripped.as_ref().map_or(*message, protocol::OwnedInbound::inbound);
        let key = next_channel_key();
        let live = self.app.broker.subscribe(
            topic,
            Subscriber {
                socket: self.key,
                channel: key,
                kind: Subscription::Joined,
                inbox: self.inbox.clone(),
            },
        );
        // A second join of a joined topic replaces the first channel, as in
        // Phoenix: the old one terminates, and its client gets `phx_close`
        // after the new join's reply.
        let replaced = previous.and_then(|old| self.remove_channel(old, "shutdown:duplicate_join"));
        // A position that is no position (garbage, forged) recovers
        // nothing, and the client learns where the topic is now.
        let read = match (policy, since) {
            (Some(policy), Some(since)) => Some(self.app.history.recover(topic, &policy, since.unwrap_or(NO_POSITION))),
            _ => None,
        };
        match (live, read) {
            (None, None) => self.run_join(key, topic, &plugin, &seen, replaced, None),
            (None, Some(crate::history::Read::Done(recovery))) => {
                self.run_join(key, topic, &plugin, &seen, replaced, Some(recovery));
            }
            (live, read) => {
                let ready = Box::pin(async move {
                    if let Some(live) = live {
                        live.await;
                    }
                    match read {
                        Some(crate::history::Read::Done(recovery)) => Some(recovery),
                        Some(crate::history::Read::Pending(reading)) => Some(reading.await),
                        None => None,
                    }
                });
                self.waiting = Some(super::connection::WaitingJoin {
                    ready,
                    key,
                    plugin,
                    message: stripped.unwrap_or_else(|| protocol::OwnedInbound::new(message)),
                    replaced: replaced.map(Box::new),
                });
            }
        }
    }

    /// A join that waited for its topic to go live (and its history to be
    /// read) goes on.
    pub(super) fn resume_join(&mut self, waiting: super::connection::WaitingJoin, recovery: Option<Recovery>) {
        let message = waiting.message.inbound();
        let Some(topic) = message.topic() else { return };
        self.run_join(waiting.key, &topic, &waiting.plugin, &message, waiting.replaced.map(|old| *old), recovery);
    }

    /// Call the plugin's `join` for channel `key`, subscribed already.
    fn run_join(
        &mut self,
        key: ChannelKey,
        topic: &str,
        plugin: &Arc<ChannelPlugin>,
        message: &Inbound<'_>,
        replaced: Option<Channel>,
        recovery: Option<Recovery>,
    ) {
        // The route may have been looked up before a wait: take its
        // configuration now.
        let config = self
            .app
            .route(topic)
            .map_or_else(|| Arc::from("{}"), |route| route.config.clone());
        let topic: Arc<str> = topic.into();
        let version = plugin.current();
        let view = SocketView {
            topic: topic.to_string(),
            join_ref: json_str(message.join_ref)
                .map(|s| s.into_owned())
                .or_else(|| (message.join_ref.get() != "null").then(|| message.join_ref.get().to_owned())),
            socket_id: self.socket_id.clone(),
            assigns: self.assigns.clone(),
        };
        let scope = ChannelScope::new(self.key, key, topic.clone());
        let ctx = self.context(plugin, &config, scope);
        let (ctx, intercepts) = version.intercepts(ctx);
        let (ctx, joined) = match intercepts {
            Ok(intercepts) => {
                let (ctx, joined) = version.join(ctx, &topic, LentPayload::from(message.payload), &view);
                (ctx, joined.map(|joined| (joined, intercepts)))
            }
            Err(fault) => (ctx, Err(fault)),
        };
        let refused = match joined {
            Err(fault) => {
                tracing::warn!(app = %self.app.id, plugin = %plugin.name, topic = %topic, %fault, "join crashed");
                plugin.telemetry.joined(JoinOutcome::Crashed);
                plugin.telemetry.faulted(&fault);
                Some(r#"{"reason":"join crashed"}"#.to_owned())
            }
            Ok((Err(payload), _)) => {
                plugin.telemetry.joined(JoinOutcome::Refused);
                Some(payload)
            }
            Ok((Ok(joined), intercepts)) => {
                plugin.telemetry.joined(JoinOutcome::Ok);
                let mut view = view;
                if let Some(assigns) = joined.assigns {
                    view.assigns = assigns;
                }
                let channel = Channel {
                    topic_json: protocol::json_string(&topic),
                    topic: topic.clone(),
                    join_ref: message.join_ref.get().to_owned(),
                    view,
                    plugin: plugin.clone(),
                    version,
                    upgrade_failed: false,
                    config,
                    intercepts,
                    timers: HashMap::new(),
                    extra_topics: HashSet::new(),
                    replayed_through: None,
                    http_in_flight: HashSet::new(),
                    identity: None,
                    on_leave: None,
                };
                self.channels.insert(key, Box::new(channel));
                self.topics.insert(topic.clone(), key);
                self.app.figures.channel_joined();
                plugin.channel_joined();
                self.reply_raw(message, "ok", &joined.reply);
                self.apply(key, ctx);
                if let Some(recovery) = recovery {
                    self.replay(key, recovery);
                }
                None
            }
        };
        if let Some(payload) = refused {
            self.app.broker.unsubscribe(&topic, self.key, key);
            self.reply_raw(message, "error", &payload);
            // A presence tracked before the join failed has no channel
            // to end it later.
            self.untrack_presences(key);
        }
        if let Some(old) = replaced {
            self.send_control(&old, "phx_close");
        }
    }

    /// `phx_leave`, answered as Phoenix.Socket answers it:
    /// - no channel on the topic (never joined, a refused join, left
    ///   already): an ok reply with the leave's own references, and nothing
    ///   to close;
    /// - the topic's channel, named by its join_ref (or joined without one,
    ///   as old V1 clients do): an ok reply, then `phx_close`;
    /// - a channel of a later join: the leave is ignored. It was sent for an
    ///   earlier channel on the topic, which the rejoin already closed (the
    ///   client has its `phx_close`), and must not end the new one.
    pub(super) fn leave(&mut self, topic: &str, message: &Inbound<'_>) {
        let Some(&key) = self.topics.get(topic) else {
            return self.reply_raw(message, "ok", "{}");
        };
        if !self.channels.get(&key).is_some_and(|channel| channel.joined_as(message.join_ref)) {
            tracing::debug!(socket = self.key, topic, join_ref = message.join_ref.get(), "ignored a leave for an earlier join of the topic");
            return;
        }
        self.reply_channel(key, message.reference.get(), Payload::Reply { status: "ok", response: "{}" });
        if let Some(channel) = self.remove_channel(key, "leave") {
            self.send_control(&channel, "phx_close");
        }
    }

    pub(super) fn handle_in(&mut self, topic: &str, event: &str, message: &Inbound<'_>) {
        let Some(&key) = self.topics.get(topic) else {
            return self.unmatched(message);
        };
        let payload = LentPayload::from(message.payload);
        let reference = message.reference.get();
        let handled = self.call_for_push(key, Some(reference), Call::HandleIn(event), |version, ctx, view| {
            version.handle_in(ctx, event, payload, view)
        });
        let Some(handled) = handled else {
            return;
        };
        self.set_assigns(key, handled.assigns);
        match handled.action {
            Action::Reply(reply) => {
                let body = Body::from(reply.payload);
                self.reply_channel(key, reference, body.reply(status(reply.status)));
            }
            Action::Noreply => {}
            Action::Stop(stop) => {
                if let Some(Reply { status: s, payload }) = stop.reply {
                    let body = Body::from(payload);
                    self.reply_channel(key, reference, body.reply(status(s)));
                }
                self.stop(key, &stop.reason);
            }
        }
    }

    /// A broadcast reached this socket for one of its channels.
    pub(super) fn deliver(&mut self, delivery: Delivery) {
        match delivery.kind {
            Subscription::SocketId => {
                if delivery.message.event == "disconnect" {
                    self.closing = Some(super::connection::Closing::Disconnected);
                }
            }
            Subscription::Joined => {
                let Some(channel) = self.channels.get(&delivery.channel) else {
                    return;
                };
                if delivery.message.from == Some(delivery.channel) {
                    return;
                }
                if let (Some(at), Some(through)) = (delivery.message.position, channel.replayed_through)
                    && at.epoch == through.epoch
                    && at.offset <= through.offset
                {
                    return;
                }
                if delivery.message.kind == crate::pubsub::Kind::Announcement {
                    if (delivery.message.except.is_none() || channel.identity != delivery.message.except)
                        && let Some(frame) = delivery.message.pushed_frame(&channel.join_ref, self.serializer)
                    {
                        self.outbox.push(frame);
                    }
                } else if channel.intercepts.contains(&delivery.message.event) {
                    self.intercepted(delivery.channel, &delivery);
                } else if let Some(frame) = delivery.message.frame(self.serializer) {
                    self.outbox.push(frame);
                }
            }
            Subscription::Extra => {
                if !self.channels.contains_key(&delivery.channel) {
                    return;
                }
                let message = &delivery.message;
                let payload = match &message.payload {
                    Body::Json(json) => format!(r#""payload":{json}"#),
                    Body::Binary(bytes) => {
                        use base64::Engine as _;
                        format!(r#""binary":"{}""#, base64::engine::general_purpose::STANDARD.encode(bytes))
                    }
                };
                let info = format!(
                    r#"{{"event":{},{payload},"topic":{}}}"#,
                    protocol::json_string(&message.event),
                    protocol::json_string(&message.topic)
                );
                self.info(delivery.channel, &info);
            }
        }
    }

    /// After a recovering join's reply: what the client missed, each as
    /// it would have been delivered (through `handle-out` when
    /// intercepted), then `plume_recovery`. Live broadcasts up to the
    /// position read are skipped from now on: they were in the history.
    fn replay(&mut self, key: ChannelKey, recovery: Recovery) {
        let count = recovery.messages.len();
        for message in recovery.messages {
            self.deliver(Delivery {
                message,
                channel: key,
                kind: Subscription::Joined,
            });
        }
        let position = (recovery.position.epoch != NO_POSITION.epoch).then_some(recovery.position);
        if let Some(channel) = self.channels.get_mut(&key) {
            channel.replayed_through = position;
        }
        let payload = serde_json::json!({
            "recovered": recovery.recovered,
            "count": count,
            "position": position.map(|p| p.to_string()),
        })
        .to_string();
        self.push(key, "plume_recovery", Payload::Raw(&payload));
    }

    fn intercepted(&mut self, key: ChannelKey, delivery: &Delivery) {
        let message = &delivery.message;
        // Converted once per broadcast on this node, and lent to every
        // channel that intercepts it.
        let lent;
        let payload = match message.derived(|message| WitPayload::from(message.payload.clone())) {
            Some(payload) => payload,
            None => {
                lent = WitPayload::from(message.payload.clone());
                &lent
            }
        };
        let Some(handled) = self.call(key, Call::HandleOut, |version, ctx, view| version.handle_out(ctx, &message.event, payload.into(), view)) else {
            return;
        };
        self.set_assigns(key, handled.assigns);
        match handled.action {
            OutAction::Push(Some(changed)) => self.push(key, &message.event, Body::from(changed).outbound()),
            OutAction::Push(None) => self.push(key, &message.event, message.payload.outbound()),
            OutAction::Drop => {}
        }
    }

    /// Deliver `message` to the channel's `handle-info`.
    pub(super) fn info(&mut self, key: ChannelKey, message: &str) {
        let Some(handled) = self.call(key, Call::HandleInfo, |version, ctx, view| version.handle_info(ctx, message, view)) else {
            return;
        };
        self.set_assigns(key, handled.assigns);
        if let InfoAction::Stop(reason) = handled.action {
            self.stop(key, &reason);
        }
    }

    /// An HTTP request of the channel ended: its outcome goes to
    /// `handle-info`, unless the channel has left (then it is dropped, and
    /// counted).
    pub(super) fn http_done(&mut self, key: ChannelKey, id: u64, message: &str) {
        let pending = self
            .channels
            .get_mut(&key)
            .is_some_and(|channel| channel.http_in_flight.remove(&id));
        if pending {
            self.info(key, message);
        } else {
            crate::app::Figures::count(&self.app.figures.http_dropped, 1);
        }
    }

    pub(super) fn timer_fired(&mut self, key: ChannelKey, id: TimerId, message: &str) {
        let pending = self
            .channels
            .get_mut(&key)
            .is_some_and(|channel| channel.timers.remove(&id).is_some());
        if pending {
            self.info(key, message);
        }
    }

    /// Run one plugin call for a channel: upgrade it first if its plugin has
    /// a newer version, lend it its timers, apply its effects, and crash the
    /// channel if the call faults. `None` when the channel is gone or crashed.
    fn call<R>(
        &mut self,
        key: ChannelKey,
        timed: Call<'_>,
        f: impl FnOnce(&ChannelVersion, CallContext, &SocketView) -> (CallContext, Result<R, Fault>),
    ) -> Option<R> {
        self.call_for_push(key, None, timed, f)
    }

    /// [`call`](Self::call) for `handle-in`: `push_ref` is the reference
    /// of the push being handled, which `socket-ref` hands out. The call
    /// (not the upgrade before it, nor applying its effects) is timed as
    /// `timed` in its plugin's telemetry.
    fn call_for_push<R>(
        &mut self,
        key: ChannelKey,
        push_ref: Option<&str>,
        timed: Call<'_>,
        f: impl FnOnce(&ChannelVersion, CallContext, &SocketView) -> (CallContext, Result<R, Fault>),
    ) -> Option<R> {
        self.upgrade_if_needed(key)?;
        let channel = self.channels.get_mut(&key)?;
        let scope = ChannelScope {
            timers: channel.timers.keys().copied().collect(),
            push_ref: push_ref.map(str::to_owned),
            http_in_flight: channel.http_in_flight.len(),
            ..ChannelScope::new(self.key, key, channel.topic.clone())
        };
        let ctx = CallContext::new(
            self.app.clone(),
            channel.plugin.name.clone(),
            channel.config.clone(),
            Some(scope),
        );
        let version = channel.version.clone();
        let channel = self.channels.get(&key)?;
        let started = std::time::Instant::now();
        let (ctx, result) = f(&version, ctx, &channel.view);
        channel.plugin.telemetry.timed(timed, started.elapsed());
        self.apply(key, ctx);
        match result {
            Ok(value) => Some(value),
            Err(fault) => {
                self.crash(key, &fault);
                None
            }
        }
    }

    /// Pass the channel's assigns through the new version's `upgrade` once,
    /// when its plugin was swapped since the channel's last call.
    fn upgrade_if_needed(&mut self, key: ChannelKey) -> Option<()> {
        let channel = self.channels.get(&key)?;
        let current = channel.plugin.current();
        if Arc::ptr_eq(&current, &channel.version) {
            return Some(());
        }
        if current.id() == channel.version.id() {
            // The same bytes, now on optimized code (see `reload`): the
            // assigns and intercepts are the version's own already.
            self.channels.get_mut(&key)?.version = current;
            return Some(());
        }
        let from = channel.version.id().to_owned();
        let scope = ChannelScope {
            timers: channel.timers.keys().copied().collect(),
            http_in_flight: channel.http_in_flight.len(),
            ..ChannelScope::new(self.key, key, channel.topic.clone())
        };
        let ctx = self.context(&channel.plugin, &channel.config, scope);
        let (ctx, intercepts) = current.intercepts(ctx);
        let (ctx, upgraded) = match intercepts {
            Ok(intercepts) => {
                let (ctx, upgraded) = current.upgrade(ctx, &from, &channel.view.assigns);
                (ctx, upgraded.map(|u| (u, intercepts)))
            }
            Err(fault) => (ctx, Err(fault)),
        };
        self.apply(key, ctx);
        let outcome = match upgraded {
            Ok((Ok(assigns), intercepts)) => {
                let channel = self.channels.get_mut(&key)?;
                channel.version = current;
                channel.intercepts = intercepts;
                if let Some(assigns) = assigns {
                    channel.view.assigns = assigns;
                }
                return Some(());
            }
            Ok((Err(reason), _)) => Fault::Trap(format!("upgrade from {from} refused: {reason}")),
            Err(fault) => fault,
        };
        if let Some(channel) = self.channels.get_mut(&key) {
            channel.upgrade_failed = true;
        }
        self.crash(key, &outcome);
        None
    }

    /// The version a leaving channel's `terminate` runs on, with the
    /// channel's assigns as that version knows them: the current version,
    /// after its `upgrade` when the channel last ran on an older one (a
    /// channel that leaves without another call since a swap would
    /// otherwise show the new code state it never migrated). When that
    /// upgrade fails, the version the channel ran on terminates it, with
    /// the assigns it wrote.
    fn terminating_version(&mut self, key: ChannelKey, channel: &mut Channel) -> Arc<ChannelVersion> {
        if channel.upgrade_failed {
            return channel.version.clone();
        }
        let current = channel.plugin.current();
        if Arc::ptr_eq(&current, &channel.version) || current.id() == channel.version.id() {
            return current;
        }
        let from = channel.version.id().to_owned();
        let scope = ChannelScope::new(self.key, key, channel.topic.clone());
        let ctx = self.context(&channel.plugin, &channel.config, scope);
        let (ctx, upgraded) = current.upgrade(ctx, &from, &channel.view.assigns);
        self.deliver_broadcasts(ctx);
        match upgraded {
            Ok(Ok(assigns)) => {
                if let Some(assigns) = assigns {
                    channel.view.assigns = assigns;
                }
                current
            }
            Ok(Err(reason)) => {
                tracing::warn!(app = %self.app.id, plugin = %channel.plugin.name, topic = %channel.topic, from, reason, "upgrade refused a leaving channel; its terminate runs on the version it had");
                channel.version.clone()
            }
            Err(fault) => {
                channel.plugin.telemetry.faulted(&fault);
                tracing::warn!(app = %self.app.id, plugin = %channel.plugin.name, topic = %channel.topic, from, %fault, "upgrade failed on a leaving channel; its terminate runs on the version it had");
                channel.version.clone()
            }
        }
    }

    /// The broadcasts a call made, when nothing else it did can apply: the
    /// channel is leaving, and may no longer push or set timers.
    fn deliver_broadcasts(&mut self, ctx: CallContext) {
        for effect in ctx.effects {
            if let Effect::Deliver(message) = effect {
                self.deliver_own(message);
            }
        }
    }

    fn set_assigns(&mut self, key: ChannelKey, assigns: Option<String>) {
        if let (Some(assigns), Some(channel)) = (assigns, self.channels.get_mut(&key)) {
            channel.view.assigns = assigns;
        }
    }

    /// Carry out what a call asked for, in the order it asked.
    fn apply(&mut self, key: ChannelKey, ctx: CallContext) {
        let CallContext { effects, .. } = ctx;
        for effect in effects {
            match effect {
                Effect::Push { event, payload } => self.push(key, &event, payload.outbound()),
                Effect::PresenceState => self.push_presence_state(key),
                Effect::Identify { identity, left } => {
                    if let Some(channel) = self.channels.get_mut(&key) {
                        channel.identity = Some(identity);
                        channel.on_leave = left;
                    }
                }
                Effect::Deliver(message) => self.deliver_own(message),
                Effect::SendAfter { id, delay_ms, message } => self.start_timer(key, id, delay_ms, message),
                Effect::Cancel(id) => {
                    if let Some(timer) = self.channels.get_mut(&key).and_then(|c| c.timers.remove(&id)) {
                        timer.abort();
                    }
                }
                Effect::SendSelf(message) => self.pending.push_back(Pending::Info(key, message)),
                Effect::Subscribe(topic) => self.subscribe_extra(key, topic),
                Effect::Unsubscribe(topic) => {
                    if let Some(channel) = self.channels.get_mut(&key)
                        && channel.extra_topics.remove(&topic)
                    {
                        self.app.broker.unsubscribe(&topic, self.key, key);
                    }
                }
                Effect::Reply { reference, ok, body } => {
                    self.reply_channel(key, &reference, body.reply(if ok { "ok" } else { "error" }));
                }
                Effect::Http { id, request, permit } => self.start_http(key, id, *request, permit),
            }
        }
    }

    /// A broadcast this socket published reaches its own channels here,
    /// not through the mailbox, so it is ordered with the call's replies.
    fn deliver_own(&mut self, message: Arc<crate::pubsub::Broadcast>) {
        let mut targets: Vec<(ChannelKey, Subscription)> = Vec::new();
        if let Some(&key) = self.topics.get(message.topic.as_str()) {
            targets.push((key, Subscription::Joined));
        }
        for (&key, channel) in &self.channels {
            if channel.extra_topics.contains(&message.topic) {
                targets.push((key, Subscription::Extra));
            }
        }
        if self.socket_id.as_deref() == Some(message.topic.as_str()) {
            targets.push((0, Subscription::SocketId));
        }
        for (channel, kind) in targets {
            let delivery = Delivery {
                message: message.clone(),
                channel,
                kind,
            };
            let needs_call = match kind {
                Subscription::Joined => {
                    message.kind != crate::pubsub::Kind::Announcement
                        && self
                            .channels
                            .get(&channel)
                            .is_some_and(|c| c.intercepts.contains(&message.event))
                }
                Subscription::Extra => true,
                Subscription::SocketId => false,
            };
            if needs_call {
                self.pending.push_back(Pending::Delivery(delivery));
            } else {
                self.deliver(delivery);
            }
        }
    }

    fn start_timer(&mut self, key: ChannelKey, id: TimerId, delay_ms: u64, message: String) {
        let Some(channel) = self.channels.get_mut(&key) else {
            return;
        };
        let tx = self.mailbox.tx.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            let _ = tx.send(SocketEvent::Timer(Box::new(super::TimerFired { channel: key, id, message }))).await;
        });
        channel.timers.insert(id, task.abort_handle());
    }

    /// Run an HTTP request on its own task; its outcome comes back through
    /// the mailbox ([`SocketEvent::Http`]). The task holds the app's place
    /// for it until it ends, even if the channel leaves first.
    fn start_http(&mut self, key: ChannelKey, id: u64, request: crate::http::Request, permit: crate::http::Permit) {
        let Some(channel) = self.channels.get_mut(&key) else {
            return;
        };
        channel.http_in_flight.insert(id);
        let app = self.app.clone();
        crate::app::Figures::count(&app.figures.http_requests, 1);
        let outcome = app.http.run(id, request);
        let tx = self.mailbox.tx.clone();
        tokio::spawn(async move {
            let (message, failed) = outcome.await;
            drop(permit);
            if failed {
                crate::app::Figures::count(&app.figures.http_failures, 1);
            }
            let done = SocketEvent::Http(Box::new(super::HttpDone { channel: key, id, message }));
            if tx.send(done).await.is_err() {
                // The socket is gone, and its channels with it.
                crate::app::Figures::count(&app.figures.http_dropped, 1);
            }
        });
    }

    fn subscribe_extra(&mut self, key: ChannelKey, topic: String) {
        let Some(channel) = self.channels.get_mut(&key) else {
            return;
        };
        if channel.extra_topics.insert(topic.clone()) {
            // Not waited for: `subscribe` promises the broadcasts made
            // after the call, and the cluster learns of it within a round
            // trip to Redis.
            let _live = self.app.broker.subscribe(
                &topic,
                Subscriber {
                    socket: self.key,
                    channel: key,
                    kind: Subscription::Extra,
                    inbox: self.inbox.clone(),
                },
            );
        }
    }

    /// A stop from the plugin: `normal`/`shutdown` close the channel
    /// (`phx_close`), any other reason crashes it (`phx_error`).
    fn stop(&mut self, key: ChannelKey, reason: &str) {
        if let Some(channel) = self.remove_channel(key, reason) {
            let event = if is_clean_stop(reason) { "phx_close" } else { "phx_error" };
            if event == "phx_error" {
                tracing::info!(app = %self.app.id, plugin = %channel.plugin.name, topic = %channel.topic, reason, "channel stopped");
            }
            self.send_control(&channel, event);
        }
    }

    /// The plugin failed on this channel: the client gets `phx_error` (and
    /// phoenix.js rejoins); the socket's other channels are untouched.
    fn crash(&mut self, key: ChannelKey, fault: &Fault) {
        let Some(channel) = self.channels.get(&key) else {
            return;
        };
        tracing::warn!(app = %self.app.id, plugin = %channel.plugin.name, topic = %channel.topic, %fault, "channel crashed");
        channel.plugin.telemetry.faulted(fault);
        let figures = &self.app.figures;
        crate::app::Figures::count(&figures.plugin_faults, 1);
        match fault {
            Fault::Deadline(_) => crate::app::Figures::count(&figures.deadline_hits, 1),
            Fault::Memory(_) => crate::app::Figures::count(&figures.memory_limit_hits, 1),
            _ => {}
        }
        // A channel that ran out of time is not called again: its terminate
        // would likely spin to the deadline too.
        let reason = if matches!(fault, Fault::Deadline(_)) { None } else { Some("crash") };
        if let Some(channel) = self.detach_channel(key, reason) {
            self.send_control(&channel, "phx_error");
        }
    }

    /// Remove a channel, running its `terminate` with `reason`.
    fn remove_channel(&mut self, key: ChannelKey, reason: &str) -> Option<Channel> {
        self.detach_channel(key, Some(reason))
    }

    fn detach_channel(&mut self, key: ChannelKey, terminate_reason: Option<&str>) -> Option<Channel> {
        let mut channel = self.channels.remove(&key)?;
        self.topics.remove(&channel.topic);
        self.app.broker.unsubscribe(&channel.topic, self.key, key);
        for topic in &channel.extra_topics {
            self.app.broker.unsubscribe(topic, self.key, key);
        }
        for timer in channel.timers.values() {
            timer.abort();
        }
        self.pending.retain(|work| match work {
            Pending::Info(channel, _) => *channel != key,
            Pending::Delivery(delivery) => delivery.channel != key,
        });
        self.app.figures.channel_left();
        channel.plugin.channel_left();
        // A channel that crashed past its deadline ends without a terminate
        // call; it is counted as the crash it was.
        channel.plugin.telemetry.terminated(terminate_reason.unwrap_or("crash"));
        if let Some(reason) = terminate_reason {
            let scope = ChannelScope::new(self.key, key, channel.topic.clone());
            let version = self.terminating_version(key, &mut channel);
            let ctx = self.context(&channel.plugin, &channel.config, scope);
            let (ctx, result) = version.terminate(ctx, reason, &channel.view);
            if let Err(fault) = result {
                channel.plugin.telemetry.faulted(&fault);
                tracing::warn!(app = %self.app.id, plugin = %channel.plugin.name, topic = %channel.topic, %fault, "terminate failed");
            }
            // A terminating channel may still broadcast and write; it can no
            // longer push or set timers, having left.
            self.deliver_broadcasts(ctx);
        }
        // What it asked the topic to be told when it ends, after its
        // terminate (whose broadcasts come first, as a `user_left` from
        // Phoenix's terminate does) and before its presences' `leaves`.
        // Published at once, as Phoenix's terminate broadcasts.
        if let Some(left) = channel.on_leave.take() {
            let message = Arc::new(left.broadcast(&channel.topic, None));
            let _ = self.app.broker.publish(message.clone(), Some(self.key));
            self.deliver_own(message);
        }
        // Its presences go after its terminate ran (Phoenix order: a
        // `user_left` broadcast from terminate precedes the `leaves` diff).
        self.untrack_presences(key);
        Some(*channel)
    }

    /// Remove every presence channel `key` tracked, announcing the leaves.
    fn untrack_presences(&mut self, key: ChannelKey) {
        for diff in self.app.presence.untrack_owner((self.key, key)) {
            if let Some(message) = self.app.announce_presence(diff, Some(self.key)) {
                self.deliver_own(message);
            }
        }
    }

    /// Terminate every channel: the socket is going away.
    pub(super) fn close_all_channels(&mut self, reason: &str) {
        let keys: Vec<ChannelKey> = self.channels.keys().copied().collect();
        for key in keys {
            self.remove_channel(key, reason);
        }
    }

    /// `[join_ref, join_ref, topic, event, {}]`: phx_close and phx_error.
    fn send_control(&mut self, channel: &Channel, event: &str) {
        let join_ref = channel.join_ref.clone();
        let topic = channel.topic_json.clone();
        self.send(&Outbound {
            join_ref: &join_ref,
            reference: &join_ref,
            topic: &topic,
            event,
            payload: Payload::Raw("{}"),
        });
    }

    /// A push from the channel itself: `[join_ref, null, topic, event, payload]`.
    fn push(&mut self, key: ChannelKey, event: &str, payload: Payload<'_>) {
        let Some(channel) = self.channels.get(&key) else {
            return;
        };
        let message = Outbound {
            join_ref: &channel.join_ref,
            reference: protocol::NULL,
            topic: &channel.topic_json,
            event,
            payload,
        };
        write(&mut self.outbox, self.serializer, &message);
    }

    /// `presence_state` to the channel's client: the topic's shared frame.
    fn push_presence_state(&mut self, key: ChannelKey) {
        let Some(channel) = self.channels.get(&key) else {
            return;
        };
        if let Some(frame) = self
            .app
            .presence
            .state_frame(&channel.topic, &channel.join_ref, &channel.topic_json, self.serializer)
        {
            self.outbox.push(frame);
        }
    }

    /// A reply on a joined channel carries the channel's join reference,
    /// whatever join reference the push carried (as Phoenix does).
    /// `reference` is the push's, raw JSON.
    fn reply_channel(&mut self, key: ChannelKey, reference: &str, payload: Payload<'_>) {
        let Some(channel) = self.channels.get(&key) else {
            return;
        };
        let message = Outbound {
            join_ref: &channel.join_ref,
            reference,
            topic: &channel.topic_json,
            event: "phx_reply",
            payload,
        };
        write(&mut self.outbox, self.serializer, &message);
    }

    /// A reply to a join: it carries the join's own references.
    fn reply_raw(&mut self, message: &Inbound<'_>, status: &str, response: &str) {
        self.send(&Outbound {
            join_ref: message.join_ref.get(),
            reference: message.reference.get(),
            topic: message.topic.get(),
            event: "phx_reply",
            payload: Payload::Reply { status, response },
        });
    }
}
