//! API keys: which tenant a request speaks for.
//!
//! Keys are kept as SHA-256 digests and a presented key is compared with
//! every digest of every tenant in constant time (no early exit, no length
//! leak), so response timing tells an attacker nothing about how close a
//! guess was or which tenant it nearly matched.

use sha2::{Digest, Sha256};

/// One tenant's server API keys (`api_keys`, several so keys can rotate).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    digests: Vec<[u8; 32]>,
}

impl Keys {
    pub fn new(keys: &[String]) -> Keys {
        Keys {
            digests: keys.iter().map(|key| Sha256::digest(key.as_bytes()).into()).collect(),
        }
    }

    /// Whether the API is on for this tenant.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys; looks at every key.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digests
            .iter()
            .fold(false, |found, digest| found | same(digest, &presented))
    }
}

/// Equality of two digests without an early exit.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The key of an `Authorization: Bearer <key>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, key) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim()).filter(|key| !key.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_key_opens_and_nothing_else_does() {
        let keys = Keys::new(&["old-key-0123456789".into(), "new-key-0123456789".into()]);
        assert!(keys.accepts("old-key-0123456789"));
        assert!(keys.accepts("new-key-0123456789"));
        assert!(!keys.accepts("new-key-012345678"));
        assert!(!keys.accepts(""));
        assert!(!Keys::default().accepts("anything"));
    }

    #[test]
    fn the_bearer_scheme_is_read_case_insensitively() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
