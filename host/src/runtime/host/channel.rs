//! `channel`: pushes, broadcasts, extra subscriptions, disconnects and
//! late replies.

use std::sync::Arc;

use super::HostState;
use crate::protocol::Body;
use crate::pubsub::Broadcast;
use crate::runtime::bindings::imports::channel::{ChannelError, Host};
use crate::runtime::bindings::imports::types::{Payload, Reply, ReplyStatus};
use crate::socket::reference::SocketRef;
use crate::runtime::context::{CallContext, Effect, check_json};

/// Longest topic name accepted, in bytes.
const MAX_TOPIC: usize = 255;

/// A plugin's payload, checked (size, and JSON for text), counted against
/// the call's output budget, and owned.
fn check_payload(call: &mut CallContext, payload: Payload) -> Result<Body, ChannelError> {
    let body = Body::from(payload);
    let max = call.app.limits.max_payload_bytes;
    if body.len() > max {
        return Err(ChannelError::Limit(format!(
            "a payload is at most {max} bytes, this one has {}",
            body.len()
        )));
    }
    if let Body::Json(json) = &body {
        check_json(json).map_err(ChannelError::InvalidJson)?;
    }
    call.spend_output(body.len()).map_err(ChannelError::Limit)?;
    Ok(body)
}

/// `Ok` when the app granted `capability`.
fn granted(call: &CallContext, capability: crate::app::Capability) -> Result<(), ChannelError> {
    call.app.capabilities.check(capability).map_err(ChannelError::NotGranted)
}

fn check_topic(topic: &str) -> Result<(), ChannelError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC {
        return Err(ChannelError::InvalidTopic(format!(
            "a topic has 1 to {MAX_TOPIC} bytes, this one has {}",
            topic.len()
        )));
    }
    Ok(())
}

impl HostState {
    /// Publish on `topic`; the calling socket's own subscribers get it as an
    /// effect, in order with the rest of the call's output.
    fn publish(&mut self, topic: String, event: String, payload: Payload, from_self: bool) -> Result<(), ChannelError> {
        let call = self.call();
        let payload = check_payload(call, payload)?;
        // Broadcasts count against the app's events per second, as client
        // events do: a plugin that broadcasts in a loop spends its own
        // tenant's budget, nobody else's.
        if !call.app.rates.events.take() {
            crate::app::Figures::count(&call.app.figures.limit_refusals, 1);
            return Err(ChannelError::Limit(format!(
                "rate limited: this app allows {} events per second (max_events_per_second)",
                call.app.rates.events.limit()
            )));
        }
        let (skip, from) = match &call.scope {
            Some(scope) => (Some(scope.socket), from_self.then_some(scope.channel)),
            None if from_self => return Err(ChannelError::NotInChannel),
            None => (None, None),
        };
        let message = Broadcast::new(topic, event, payload, from);
        let here = call.app.broadcast(message, skip).map_err(|error| ChannelError::Unavailable(error.to_string()))?;
        if let (Some(_), Some(message)) = (skip, here) {
            call.effects.push(Effect::Deliver(message));
        }
        Ok(())
    }

    fn scope_topic(&mut self) -> Result<String, ChannelError> {
        match &self.call().scope {
            Some(scope) => Ok(scope.topic.to_string()),
            None => Err(ChannelError::NotInChannel),
        }
    }
}

impl Host for HostState {
    fn push(&mut self, event: String, payload: Payload) -> Result<(), ChannelError> {
        let call = self.call();
        if call.scope.is_none() {
            return Err(ChannelError::NotInChannel);
        }
        let payload = check_payload(call, payload)?;
        call.effects.push(Effect::Push { event, payload });
        Ok(())
    }

    fn broadcast(&mut self, event: String, payload: Payload) -> Result<(), ChannelError> {
        let topic = self.scope_topic()?;
        self.publish(topic, event, payload, false)
    }

    fn broadcast_from(&mut self, event: String, payload: Payload) -> Result<(), ChannelError> {
        let topic = self.scope_topic()?;
        self.publish(topic, event, payload, true)
    }

    fn broadcast_to(&mut self, topic: String, event: String, payload: Payload) -> Result<(), ChannelError> {
        check_topic(&topic)?;
        granted(self.call(), crate::app::Capability::BroadcastTo)?;
        self.publish(topic, event, payload, false)
    }

    fn subscribe(&mut self, topic: String) -> Result<(), ChannelError> {
        check_topic(&topic)?;
        let call = self.call();
        granted(call, crate::app::Capability::BroadcastTo)?;
        if call.scope.is_none() {
            return Err(ChannelError::NotInChannel);
        }
        call.effects.push(Effect::Subscribe(topic));
        Ok(())
    }

    fn unsubscribe(&mut self, topic: String) -> Result<(), ChannelError> {
        let call = self.call();
        if call.scope.is_none() {
            return Err(ChannelError::NotInChannel);
        }
        call.effects.push(Effect::Unsubscribe(topic));
        Ok(())
    }

    fn socket_ref(&mut self) -> Option<String> {
        let call = self.call();
        let scope = call.scope.as_ref()?;
        let socket_ref = SocketRef {
            socket: scope.socket,
            channel: scope.channel,
            reference: scope.push_ref.clone()?,
        };
        Some(socket_ref.encode(&call.app.id))
    }

    fn reply(&mut self, socket_ref: String, reply: Reply) -> Result<(), ChannelError> {
        let call = self.call();
        let Some(scope) = &call.scope else {
            return Err(ChannelError::NotInChannel);
        };
        let target = SocketRef::decode(&socket_ref, &call.app.id).map_err(ChannelError::InvalidRef)?;
        if (target.socket, target.channel) != (scope.socket, scope.channel) {
            return Err(ChannelError::StaleRef(
                "this ref is of a push to a join that has ended (the client left or rejoined) or to another channel; a push is answered by the join that received it".into(),
            ));
        }
        let ok = matches!(reply.status, ReplyStatus::Ok);
        let body = check_payload(call, reply.payload)?;
        call.effects.push(Effect::Reply {
            reference: target.reference,
            ok,
            body,
        });
        Ok(())
    }

    fn disconnect(&mut self, socket_id: String) -> Result<(), ChannelError> {
        check_topic(&socket_id)?;
        let call = self.call();
        granted(call, crate::app::Capability::Disconnect)?;
        let message = Arc::new(Broadcast::new(socket_id, "disconnect".into(), Body::Json("{}".into()), None));
        call.app
            .broker
            .publish(message, None)
            .map(drop)
            .map_err(|error| ChannelError::Unavailable(error.to_string()))
    }
}
