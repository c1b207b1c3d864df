//! The admin listener's bearer token.

use sha2::{Digest, Sha256};

/// The token every admin request must carry (`Authorization: Bearer
/// <token>`), from `[server] admin_token` or `PLUME_ADMIN_TOKEN`.
///
/// Only its SHA-256 is kept, and a presented token is compared by its own
/// SHA-256 in constant time: how long a refusal takes says nothing about
/// how much of the token was right, nor about its length.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(..)")
    }
}

impl AdminToken {
    pub fn new(token: &str) -> AdminToken {
        AdminToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether an `Authorization` header value carries this token.
    pub fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let presented = authorization
            .and_then(|value| {
                let (scheme, token) = value.split_at_checked(7)?;
                scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
            })
            .unwrap_or_default();
        let digest: [u8; 32] = Sha256::digest(presented.trim_ascii()).into();
        let difference = digest.iter().zip(&self.digest).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        // Without a header the comparison above still ran: a missing token
        // takes as long to refuse as a wrong one.
        difference == 0 && authorization.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::AdminToken;

    #[test]
    fn only_the_bearer_token_itself_is_accepted() {
        let token = AdminToken::new("s3cret-token");
        assert!(token.accepts(Some(b"Bearer s3cret-token")));
        assert!(token.accepts(Some(b"bearer s3cret-token")), "the scheme is case-insensitive");
        for refused in [&b"Bearer s3cret-tokeN"[..], b"Bearer s3cret", b"Basic s3cret-token", b"s3cret-token", b"Bearer ", b""] {
            assert!(!token.accepts(Some(refused)), "{}", String::from_utf8_lossy(refused));
        }
        assert!(!token.accepts(None));
        assert!(!AdminToken::new("").accepts(None), "no header is never a match, even for an empty token");
    }
}
