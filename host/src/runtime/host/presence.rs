//! `presence`: Phoenix.Presence for the channel's topic.
//!
//! Presence tracking lives in the host and arrives with its own module; until
//! then every call answers `not-enabled`, so plugins can handle its absence.

use super::HostState;
use crate::runtime::bindings::imports::presence::{Host, PresenceError};

impl Host for HostState {
    fn track(&mut self, _key: String, _meta: String) -> Result<String, PresenceError> {
        Err(PresenceError::NotEnabled)
    }

    fn update(&mut self, _key: String, _meta: String) -> Result<String, PresenceError> {
        Err(PresenceError::NotEnabled)
    }

    fn untrack(&mut self, _key: String) -> Result<(), PresenceError> {
        Err(PresenceError::NotEnabled)
    }

    fn list(&mut self, _topic: Option<String>) -> Result<String, PresenceError> {
        Err(PresenceError::NotEnabled)
    }

    fn count(&mut self, _topic: Option<String>) -> Result<u64, PresenceError> {
        Err(PresenceError::NotEnabled)
    }
}
