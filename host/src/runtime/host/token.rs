//! `token`: Phoenix.Token with the app's secret.

use super::HostState;
use crate::clock::unix_ms;
use crate::runtime::bindings::imports::token::{Host, TokenError};
use crate::token::TokenError as Error;

/// Phoenix.Token's default max age: one day.
const DEFAULT_MAX_AGE: u64 = 86_400;

impl From<Error> for TokenError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid => TokenError::Invalid,
            Error::Expired => TokenError::Expired,
            Error::Missing => TokenError::Missing,
            Error::InvalidData(why) => TokenError::InvalidData(why),
        }
    }
}

impl Host for HostState {
    fn sign(&mut self, salt: String, data: String, max_age_seconds: Option<u64>) -> Result<String, TokenError> {
        let data: serde_json::Value =
            serde_json::from_str(&data).map_err(|e| TokenError::InvalidData(e.to_string()))?;
        let max_age = max_age_seconds.unwrap_or(DEFAULT_MAX_AGE);
        Ok(self.call().app.tokens.sign(&salt, &data, unix_ms(), max_age)?)
    }

    fn verify(&mut self, salt: String, token: String, max_age_seconds: Option<u64>) -> Result<String, TokenError> {
        let data = self
            .call()
            .app
            .tokens
            .verify(&salt, &token, max_age_seconds, unix_ms())?;
        Ok(data.to_string())
    }
}
