//! Where each app's token secret (`secret_key_base`) comes from, and when
//! plume refuses to start without one.
//!
//! A Phoenix.Token is only as private as the secret it is signed with. The
//! development secret is in plume's source, so `plume token sign` with no
//! `--secret` opens any server that runs on it. Only the demo app (and the
//! test harness) may: an app served from a configuration file needs a
//! secret of its own, at least 64 bytes, as Phoenix requires.

use super::{DEV_SECRET, Loaded, Tenant};

/// What Phoenix requires of a `secret_key_base`, in bytes.
pub const MIN_SECRET_BYTES: usize = 64;

/// How to make a secret, for messages.
const HOW: &str = "Make one with `plume secret` (or `openssl rand -base64 48`) and set it in the environment as \
                   SECRET_KEY_BASE, or as secret_key_base in the file";

/// Whether an app may run on the development secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretRule {
    /// An app served from a configuration file: each needs a secret of its
    /// own of at least [`MIN_SECRET_BYTES`].
    Required,
    /// The demo app (`plume serve` without `--config`) and test harnesses:
    /// without a secret, the development one, with a warning.
    DevelopmentAllowed,
}

/// An app's secret and where it came from.
#[derive(Debug, Clone)]
pub struct Secret {
    pub key: String,
    pub origin: SecretOrigin,
}

/// Where a secret came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    /// `secret_key_base` in this configuration file.
    File(String),
    /// The `SECRET_KEY_BASE` environment variable.
    Environment,
    /// Neither: the development secret.
    Development,
}

impl std::fmt::Display for SecretOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretOrigin::File(file) => write!(f, "secret_key_base in {file}"),
            SecretOrigin::Environment => f.write_str("SECRET_KEY_BASE"),
            SecretOrigin::Development => f.write_str("the development secret"),
        }
    }
}

/// Why an app may not start with the secret it has.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{file}: {app} has no secret: neither secret_key_base in the file nor SECRET_KEY_BASE in the environment is set. {HOW}.")]
    Missing { file: String, app: String },
    #[error("{file}: the secret of {app} ({origin}) is {len} bytes; it must have at least {MIN_SECRET_BYTES}. {HOW}.")]
    TooShort { file: String, app: String, origin: SecretOrigin, len: usize },
    #[error("{file}: {app} would sign tokens with plume's development secret ({origin}), which is public. {HOW}.")]
    Development { file: String, app: String, origin: SecretOrigin },
}

impl Loaded {
    /// The secret `tenant` signs and verifies tokens with: its
    /// `secret_key_base`, else `SECRET_KEY_BASE`, else (where
    /// [`SecretRule::DevelopmentAllowed`]) the development secret.
    pub fn secret(&self, tenant: &Tenant<'_>) -> Result<Secret, SecretError> {
        let environment = std::env::var("SECRET_KEY_BASE").ok().filter(|s| !s.is_empty());
        let secret = match (&tenant.secret_key_base, environment) {
            (Some(key), _) => Secret {
                key: key.clone(),
                origin: SecretOrigin::File(self.file.clone()),
            },
            (None, Some(key)) => Secret {
                key,
                origin: SecretOrigin::Environment,
            },
            (None, None) => Secret {
                key: DEV_SECRET.to_owned(),
                origin: SecretOrigin::Development,
            },
        };
        if self.secrets == SecretRule::DevelopmentAllowed {
            return Ok(secret);
        }
        let (file, app) = (self.file.clone(), tenant.describe());
        if secret.origin == SecretOrigin::Development {
            return Err(SecretError::Missing { file, app });
        }
        if secret.key == DEV_SECRET {
            return Err(SecretError::Development { file, app, origin: secret.origin });
        }
        if secret.key.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort { file, app, origin: secret.origin, len: secret.key.len() });
        }
        Ok(secret)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;

    const GOOD: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn secret_of(text: &str, rule: SecretRule) -> Result<Secret, SecretError> {
        let mut loaded = parse(text, "/etc/plume/app.toml", Path::new("/etc/plume")).expect("valid");
        loaded.secrets = rule;
        let tenants = loaded.tenants();
        loaded.secret(&tenants[0])
    }

    // One test for every case that reads SECRET_KEY_BASE: tests run in
    // parallel, and the environment is the process's.
    #[test]
    fn a_file_app_needs_a_long_secret_of_its_own_and_the_demo_may_use_the_development_one() {
        // SAFETY: the only test of this binary that touches SECRET_KEY_BASE.
        unsafe { std::env::remove_var("SECRET_KEY_BASE") };
        let missing = secret_of("", SecretRule::Required).expect_err("no secret");
        let message = missing.to_string();
        assert!(message.starts_with("/etc/plume/app.toml: the app `demo` has no secret"), "{message}");
        assert!(message.contains("plume secret") && message.contains("openssl rand -base64 48"), "{message}");

        let short = secret_of("[app]\nsecret_key_base = \"short\"\n", SecretRule::Required).expect_err("short");
        assert!(short.to_string().contains("secret_key_base in /etc/plume/app.toml) is 5 bytes"), "{short}");
        let public = secret_of(&format!("[app]\nsecret_key_base = \"{DEV_SECRET}\"\n"), SecretRule::Required);
        assert!(matches!(public, Err(SecretError::Development { .. })), "{public:?}");

        let own = secret_of(&format!("[app]\nsecret_key_base = \"{GOOD}\"\n"), SecretRule::Required).expect("long enough");
        assert_eq!(own.origin, SecretOrigin::File("/etc/plume/app.toml".into()));
        let demo = secret_of("", SecretRule::DevelopmentAllowed).expect("the demo may");
        assert_eq!((demo.key.as_str(), demo.origin), (DEV_SECRET, SecretOrigin::Development));

        // SAFETY: as above.
        unsafe { std::env::set_var("SECRET_KEY_BASE", GOOD) };
        let from_env = secret_of("", SecretRule::Required).expect("from the environment");
        assert_eq!(from_env.origin, SecretOrigin::Environment);
        let file_wins = secret_of(&format!("[app]\nsecret_key_base = \"{GOOD}x\"\n"), SecretRule::Required).expect("valid");
        assert_eq!(file_wins.key, format!("{GOOD}x"), "the file's secret comes before the environment's");
        // SAFETY: as above.
        unsafe { std::env::remove_var("SECRET_KEY_BASE") };
    }
}
