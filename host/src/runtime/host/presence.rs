//! `presence`: Phoenix.Presence on the channel's topic.
//!
//! The host keeps the presences ([`crate::presence`]); every change is
//! broadcast on the topic as `presence_diff`, through the same path as a
//! plugin's own broadcasts, so members see it in order.

use super::HostState;
use crate::presence::PresenceError as Error;
use crate::runtime::bindings::imports::presence::{Announcement, Host, PresenceError};

impl From<Error> for PresenceError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidMeta(why) => PresenceError::InvalidJson(why),
            Error::AlreadyTracked(key) => PresenceError::Limit(format!(
                "this channel already tracks `{key}` on this topic; use update"
            )),
            Error::NotTracked(_) => PresenceError::NotTracked,
        }
    }
}

/// `Ok` when the app granted the `presence` capability.
fn granted(call: &crate::runtime::context::CallContext) -> Result<(), PresenceError> {
    call.app
        .capabilities
        .check(crate::app::Capability::Presence)
        .map_err(PresenceError::NotGranted)
}

impl From<crate::presence::AnnouncementError> for PresenceError {
    fn from(e: crate::presence::AnnouncementError) -> Self {
        PresenceError::InvalidJson(e.to_string())
    }
}

/// The host's form of a plugin's announcement, checked.
fn announcement(message: Announcement) -> Result<crate::presence::Announcement, PresenceError> {
    Ok(crate::presence::Announcement::new(message.event, &message.payload, message.stamp)?)
}

impl HostState {
    /// The channel's topic and identity, or `not-in-channel`.
    fn presence_scope(&mut self) -> Result<(String, crate::presence::Owner), PresenceError> {
        granted(self.call())?;
        match &self.call().scope {
            Some(scope) => Ok((scope.topic.to_string(), (scope.socket, scope.channel))),
            None => Err(PresenceError::NotInChannel),
        }
    }

    /// A change (track, update, untrack) within the app's presence events
    /// per second, or a `limit` error that says which.
    fn presence_event(&mut self) -> Result<(String, crate::presence::Owner), PresenceError> {
        let scope = self.presence_scope()?;
        let app = &self.call().app;
        if !app.rates.presence.take() {
            crate::app::Figures::count(&app.figures.limit_refusals, 1);
            return Err(PresenceError::Limit(format!(
                "rate limited: this app allows {} presence events per second (max_presence_events_per_second)",
                app.rates.presence.limit()
            )));
        }
        Ok(scope)
    }

    fn announce(&mut self, diff: crate::presence::Diff) {
        let call = self.call();
        let skip = call.scope.as_ref().map(|scope| scope.socket);
        if let Some(message) = call.app.announce_presence(diff, skip) {
            call.effects.push(crate::runtime::context::Effect::Deliver(message));
        }
    }
}

impl Host for HostState {
    fn track(&mut self, key: String, meta: String) -> Result<String, PresenceError> {
        let (topic, owner) = self.presence_event()?;
        let (phx_ref, diff) = self.call().app.presence.track(&topic, &key, &meta, owner)?;
        self.announce(diff);
        Ok(phx_ref)
    }

    fn update(&mut self, key: String, meta: String) -> Result<String, PresenceError> {
        let (topic, owner) = self.presence_event()?;
        let (phx_ref, diff) = self.call().app.presence.update(&topic, &key, &meta, owner)?;
        self.announce(diff);
        Ok(phx_ref)
    }

    fn untrack(&mut self, key: String) -> Result<(), PresenceError> {
        let (topic, owner) = self.presence_event()?;
        let diff = self.call().app.presence.untrack(&topic, &key, owner)?;
        self.announce(diff);
        Ok(())
    }

    fn list(&mut self, topic: Option<String>) -> Result<String, PresenceError> {
        granted(self.call())?;
        let topic = match topic {
            Some(topic) => topic,
            None => self.presence_scope()?.0,
        };
        Ok(self.call().app.presence.list(&topic))
    }

    fn push_state(&mut self) -> Result<(), PresenceError> {
        self.presence_scope()?;
        self.call().effects.push(crate::runtime::context::Effect::PresenceState);
        Ok(())
    }

    fn identify(&mut self, identity: String, left: Option<Announcement>) -> Result<(), PresenceError> {
        self.presence_scope()?;
        let left = left.map(announcement).transpose()?;
        self.call()
            .effects
            .push(crate::runtime::context::Effect::Identify { identity, left });
        Ok(())
    }

    fn announce(&mut self, except: String, message: Announcement) -> Result<(), PresenceError> {
        let (topic, (socket, _)) = self.presence_scope()?;
        // A broadcast, counted as one (`max_events_per_second`).
        let app = &self.call().app;
        if !app.rates.events.take() {
            crate::app::Figures::count(&app.figures.limit_refusals, 1);
            return Err(PresenceError::Limit(format!(
                "rate limited: this app allows {} events per second (max_events_per_second)",
                app.rates.events.limit()
            )));
        }
        let message = announcement(message)?.broadcast(&topic, Some(except));
        let call = self.call();
        if let Some(message) = call.app.announce_after_presence(message, Some(socket)) {
            call.effects.push(crate::runtime::context::Effect::Deliver(message));
        }
        Ok(())
    }

    fn count(&mut self, topic: Option<String>) -> Result<u64, PresenceError> {
        granted(self.call())?;
        let topic = match topic {
            Some(topic) => topic,
            None => self.presence_scope()?.0,
        };
        Ok(self.call().app.presence.count(&topic))
    }
}
