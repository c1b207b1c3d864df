//! Capabilities: what a tenant's plugins may reach beyond their own channel.
//!
//! A plugin can always push to its client, broadcast on its own topic, set
//! timers and read its configuration. The rest is granted per tenant
//! (`capabilities = [...]` in plume.toml, all by default; `http` only with
//! an `http_allow` list of origins); an import a tenant was not granted
//! fails with the same `not-granted` error in every interface, whose text
//! names the capability and how to grant it.

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
    /// Outbound HTTP (`http.send`), to the origins of `http_allow`. Granted
    /// by that list, not by `capabilities`.
    Http,
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
            Capability::Http => "http",
        }
    }

    /// What the operator writes in plume.toml to grant it.
    fn how_to_grant(self) -> &'static str {
        match self {
            Capability::Http => {
                "list the origins its plugins may call in `http_allow` under [app] or the tenant in plume.toml, e.g. http_allow = [\"https://api.example.com\"]"
            }
            _ => "add it to `capabilities` under [app] or the tenant in plume.toml, or remove that key to grant every capability",
        }
    }
}

/// The set a tenant was granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities(u8);

impl Capabilities {
    /// Everything `capabilities` can grant (not `http`, which needs its
    /// allowlist).
    pub fn all() -> Capabilities {
        Capabilities::of(&Capability::ALL)
    }

    pub fn of(list: &[Capability]) -> Capabilities {
        Capabilities(list.iter().fold(0, |bits, c| bits | c.bit()))
    }

    pub fn allows(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    /// This set with `capability` added or removed.
    pub fn with(self, capability: Capability, granted: bool) -> Capabilities {
        if granted { Capabilities(self.0 | capability.bit()) } else { Capabilities(self.0 & !capability.bit()) }
    }

    /// `Ok` when granted; otherwise the text of the `not-granted` error a
    /// plugin gets, the same in every interface.
    pub fn check(self, capability: Capability) -> Result<(), String> {
        if self.allows(capability) {
            Ok(())
        } else {
            Err(not_granted(capability))
        }
    }
}

/// The text of a `not-granted` error: the capability, and how to grant it.
pub fn not_granted(capability: Capability) -> String {
    format!(
        "this app is not granted the `{}` capability: {}",
        capability.name(),
        capability.how_to_grant()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_capability_and_how_to_grant_it() {
        let none = Capabilities::of(&[]);
        let kv = none.check(Capability::Kv).unwrap_err();
        assert!(kv.contains("`kv` capability") && kv.contains("capabilities"), "{kv}");
        let http = none.check(Capability::Http).unwrap_err();
        assert!(http.contains("`http` capability") && http.contains("http_allow"), "{http}");
        assert!(Capabilities::all().with(Capability::Http, true).check(Capability::Http).is_ok());
        assert!(Capabilities::all().check(Capability::Http).is_err(), "http is not among `all`");
    }
}
