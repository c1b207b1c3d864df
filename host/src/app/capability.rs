//! Capabilities: what a tenant's plugins may reach beyond their own channel.
//!
//! A plugin can always push to its client, broadcast on its own topic, set
//! timers and read its configuration. The rest is granted per tenant
//! (`capabilities = [...]` in plume.toml, all by default); an import a
//! tenant was not granted fails with an error that names the capability.

use serde::Deserialize;

/// One grantable capability, as written in plume.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// The key-value store (the tenant's namespace).
    Kv,
    /// Presence: track, update, untrack, list.
    Presence,
    /// Topics other than the channel's own: `broadcast-to`, `subscribe`.
    BroadcastTo,
    /// Closing the tenant's sockets by id: `disconnect`.
    Disconnect,
}

impl Capability {
    const ALL: [Capability; 4] = [Capability::Kv, Capability::Presence, Capability::BroadcastTo, Capability::Disconnect];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The name written in plume.toml.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Kv => "kv",
            Capability::Presence => "presence",
            Capability::BroadcastTo => "broadcast_to",
            Capability::Disconnect => "disconnect",
        }
    }
}

/// The set a tenant was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities(u8);

impl Capabilities {
    pub fn all() -> Capabilities {
        Capabilities::of(&Capability::ALL)
    }

    pub fn of(list: &[Capability]) -> Capabilities {
        Capabilities(list.iter().fold(0, |bits, c| bits | c.bit()))
    }

    pub fn allows(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    /// `Ok` when granted; otherwise the message a plugin gets.
    pub fn check(self, capability: Capability) -> Result<(), String> {
        if self.allows(capability) {
            Ok(())
        } else {
            Err(format!(
                "this tenant is not granted the `{}` capability (add it to the tenant's `capabilities` in plume.toml)",
                capability.name()
            ))
        }
    }
}
