//! Phoenix.Token: signed, timestamped tokens interchangeable with Elixir's.
//!
//! Phoenix applications hand clients a token (typically for the socket
//! `connect` params) made by `Phoenix.Token.sign/4`, which delegates to
//! plug_crypto. To authenticate those clients we must verify the very same
//! bytes, and tokens we sign must verify on the Elixir side too:
//!
//! ```text
//! payload = :erlang.term_to_binary({data, signed_at_ms, max_age_s})
//! input   = "SFMyNTY." <> b64url_nopad(payload)         # "SFMyNTY" = b64("HS256")
//! token   = input <> "." <> b64url_nopad(HMAC-SHA256(key, input))
//! key     = PBKDF2-HMAC-SHA256(secret_key_base, salt, 1000 iterations, 32 bytes)
//! ```
//!
//! Verification follows plug_crypto's rules: older payloads that are a
//! 2-tuple `{data, signed_at_ms}` (plug_crypto 1.1) or a map
//! `%{data: .., signed: ..}` (Phoenix before plug_crypto) get a max age of one
//! day; a `max_age` of `:infinity` never expires; a `max_age` given to
//! [`Tokens::verify`] overrides the one in the token. Unlike plug_crypto we
//! only accept the HS256 header, which is all `Phoenix.Token` produces.

pub mod etf;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use parking_lot::RwLock;
use serde_json::{Number, Value};
use sha2::Sha256;

use etf::{EtfError, Reader, Writer};

/// The protected header, `base64url("HS256")`, that starts every token.
const HEADER: &str = "SFMyNTY";
/// plug_crypto's key derivation parameters (`:key_iterations`, `:key_length`).
const KEY_ITERATIONS: u32 = 1000;
const KEY_LEN: usize = 32;
/// The max age plug_crypto assumes for payloads that do not carry one.
const LEGACY_MAX_AGE_S: u64 = 86_400;
/// Salts are a handful of constants in practice; the cap only keeps a caller
/// that passes arbitrary salts from growing the cache without bound.
const MAX_CACHED_KEYS: usize = 64;

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies Phoenix.Token tokens with one `secret_key_base`.
///
/// Deriving a key costs a thousand HMACs and verification sits on the socket
/// connect path, so the keyed HMAC state for each salt is derived once and
/// cached. Cloning is cheap (the secret and cache are shared behind an
/// `Arc`), so one instance can be handed to every connection task.
#[derive(Clone)]
pub struct Tokens {
    inner: Arc<Inner>,
}

struct Inner {
    secret_key_base: Box<[u8]>,
    /// HMAC state already keyed with the derived key, per salt.
    keyed: RwLock<HashMap<String, HmacSha256>>,
}

/// Why a token could not be signed or was not accepted.
///
/// Mirrors plug_crypto's `{:error, :invalid | :expired | :missing}` so that
/// behaviour and logs line up with a Phoenix server's.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Malformed, signed with another secret or salt, tampered with, or
    /// carrying a payload we cannot decode. Deliberately one variant, so that
    /// a client learns nothing about which check failed.
    #[error("token is invalid")]
    Invalid,
    /// Authentic, but older than its max age.
    #[error("token has expired")]
    Expired,
    /// No token was supplied at all.
    #[error("token is missing")]
    Missing,
    /// The data to sign cannot be expressed as an Erlang term (too deeply
    /// nested or too large); the message says which.
    #[error("data cannot be put in a token: {0}")]
    InvalidData(String),
}

impl Tokens {
    /// Creates a signer/verifier for one application secret, as
    /// `secret_key_base` is configured in a Phoenix endpoint.
    pub fn new(secret_key_base: &[u8]) -> Tokens {
        Tokens {
            inner: Arc::new(Inner {
                secret_key_base: secret_key_base.into(),
                keyed: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// Signs `data` as `Phoenix.Token.sign(secret, salt, data, signed_at:
    /// signed_at_ms / 1000, max_age: max_age_s)` would, byte for byte.
    ///
    /// The clock is a parameter so that callers decide what "now" is and
    /// tests can be deterministic.
    pub fn sign(
        &self,
        salt: &str,
        data: &Value,
        signed_at_ms: u64,
        max_age_s: u64,
    ) -> Result<String, TokenError> {
        let payload = encode_payload(data, signed_at_ms, max_age_s)
            .map_err(|err| TokenError::InvalidData(err.to_string()))?;
        Ok(self.sign_payload(salt, &payload))
    }

    /// Checks a token's signature and age and returns the data it carries.
    ///
    /// `max_age_s`, when given, replaces the max age stored in the token, as
    /// `Phoenix.Token.verify(..., max_age: ..)` does. A token is expired when
    /// its max age is not positive or `signed_at_ms + max_age * 1000 < now_ms`.
    /// An empty token is reported as [`TokenError::Missing`], since that is
    /// how an absent connect parameter arrives.
    pub fn verify(
        &self,
        salt: &str,
        token: &str,
        max_age_s: Option<u64>,
        now_ms: u64,
    ) -> Result<Value, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Missing);
        }
        let payload = self.authenticate(salt, token)?;
        let envelope = Envelope::decode(&payload).map_err(|_| TokenError::Invalid)?;
        let max_age = max_age_s.map_or(envelope.max_age, MaxAge::from_seconds);
        if max_age.expired(envelope.signed_at_ms, now_ms) {
            Err(TokenError::Expired)
        } else {
            Ok(envelope.data)
        }
    }

    fn sign_payload(&self, salt: &str, payload: &[u8]) -> String {
        let signing_input = format!("{HEADER}.{}", URL_SAFE_NO_PAD.encode(payload));
        let signature = self.mac(salt, &signing_input).finalize().into_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// Returns the payload bytes if the token is well-formed and its signature
    /// matches. The signature is checked before the payload is even decoded,
    /// in constant time.
    fn authenticate(&self, salt: &str, token: &str) -> Result<Vec<u8>, TokenError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let (header, payload) = signing_input.split_once('.').ok_or(TokenError::Invalid)?;
        if header != HEADER {
            return Err(TokenError::Invalid);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Invalid)?;
        self.mac(salt, signing_input)
            .verify_slice(&signature)
            .map_err(|_| TokenError::Invalid)?;
        URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Invalid)
    }

    /// An HMAC over `message` keyed for `salt`, taken from the cache or derived
    /// (outside the write lock, so a slow derivation never blocks readers).
    fn mac(&self, salt: &str, message: &str) -> HmacSha256 {
        let cached = self.inner.keyed.read().get(salt).cloned();
        let mut mac = cached.unwrap_or_else(|| {
            let mac = keyed_mac(&derive_key(&self.inner.secret_key_base, salt));
            let mut keyed = self.inner.keyed.write();
            if keyed.len() < MAX_CACHED_KEYS {
                keyed.insert(salt.to_owned(), mac.clone());
            }
            mac
        });
        mac.update(message.as_bytes());
        mac
    }
}

impl fmt::Debug for Tokens {
    /// Never prints the secret or derived keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

/// plug_crypto's `KeyGenerator.generate(secret_key_base, salt)`.
fn derive_key(secret_key_base: &[u8], salt: &str) -> [u8; KEY_LEN] {
    let mut key = [0; KEY_LEN];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret_key_base, salt.as_bytes(), KEY_ITERATIONS, &mut key);
    key
}

fn keyed_mac(key: &[u8; KEY_LEN]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// `term_to_binary({data, signed_at_ms, max_age_s})`.
fn encode_payload(data: &Value, signed_at_ms: u64, max_age_s: u64) -> Result<Vec<u8>, EtfError> {
    let mut writer = Writer::new();
    writer.small_tuple_header(3);
    writer.value(data)?;
    writer.value(&signed_at_ms.into())?;
    writer.value(&max_age_s.into())?;
    Ok(writer.finish())
}

/// A decoded, authenticated payload.
struct Envelope {
    data: Value,
    signed_at_ms: i128,
    max_age: MaxAge,
}

impl Envelope {
    /// Accepts the three payload shapes plug_crypto accepts, and nothing else.
    fn decode(payload: &[u8]) -> Result<Envelope, EtfError> {
        let mut reader = Reader::new(payload)?;
        let envelope = match reader.tuple_header()? {
            Some(arity @ (2 | 3)) => {
                let data = reader.value()?;
                let signed_at_ms = signed_at(&reader.value()?)?;
                let max_age = if arity == 3 {
                    MaxAge::read(&mut reader)?
                } else {
                    MaxAge::from_seconds(LEGACY_MAX_AGE_S)
                };
                Envelope {
                    data,
                    signed_at_ms,
                    max_age,
                }
            }
            Some(_) => return Err(EtfError::Malformed("token payload must be a 2- or 3-tuple")),
            None => Envelope::from_legacy_map(reader.value()?)?,
        };
        reader.finish()?;
        Ok(envelope)
    }

    /// Phoenix's original payload, `%{data: data, signed: signed_at_ms}`.
    fn from_legacy_map(value: Value) -> Result<Envelope, EtfError> {
        const NOT_A_PAYLOAD: EtfError =
            EtfError::Malformed("token payload must be a tuple or %{data, signed} map");
        let Value::Object(mut fields) = value else {
            return Err(NOT_A_PAYLOAD);
        };
        let (Some(data), Some(signed)) = (fields.remove("data"), fields.remove("signed")) else {
            return Err(NOT_A_PAYLOAD);
        };
        Ok(Envelope {
            data,
            signed_at_ms: signed_at(&signed)?,
            max_age: MaxAge::from_seconds(LEGACY_MAX_AGE_S),
        })
    }
}

/// Signing times are integers in milliseconds; i128 holds any i64 or u64.
fn signed_at(value: &Value) -> Result<i128, EtfError> {
    value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from))
        .ok_or(EtfError::Malformed("signed_at must be an integer"))
}

/// A token's lifetime, normalised from the forms plug_crypto allows: integer
/// or float seconds, or `:infinity`.
#[derive(Clone, Copy)]
enum MaxAge {
    Infinity,
    /// Zero or negative: expired whatever the clock says.
    NonPositive,
    Millis(i128),
}

impl MaxAge {
    fn from_seconds(seconds: u64) -> MaxAge {
        MaxAge::from_integer(seconds.into())
    }

    fn from_integer(seconds: i128) -> MaxAge {
        if seconds <= 0 {
            MaxAge::NonPositive
        } else {
            MaxAge::Millis(seconds.saturating_mul(1000))
        }
    }

    /// Elixir's `trunc(max_age * 1000)` for floats.
    fn from_number(seconds: &Number) -> Option<MaxAge> {
        if let Some(int) = seconds.as_i64() {
            return Some(MaxAge::from_integer(int.into()));
        }
        if let Some(int) = seconds.as_u64() {
            return Some(MaxAge::from_integer(int.into()));
        }
        let float = seconds.as_f64()?;
        Some(if float <= 0.0 {
            MaxAge::NonPositive
        } else {
            // `as` saturates, which is the right answer for absurd ages.
            MaxAge::Millis((float * 1000.0).trunc() as i128)
        })
    }

    /// Reads the third envelope element, where an atom must be `:infinity`.
    fn read(reader: &mut Reader<'_>) -> Result<MaxAge, EtfError> {
        const BAD_MAX_AGE: EtfError = EtfError::Malformed("max_age must be a number or :infinity");
        if let Some(atom) = reader.atom()? {
            return if atom == "infinity" {
                Ok(MaxAge::Infinity)
            } else {
                Err(BAD_MAX_AGE)
            };
        }
        match reader.value()? {
            Value::Number(seconds) => MaxAge::from_number(&seconds).ok_or(BAD_MAX_AGE),
            _ => Err(BAD_MAX_AGE),
        }
    }

    fn expired(self, signed_at_ms: i128, now_ms: u64) -> bool {
        match self {
            MaxAge::Infinity => false,
            MaxAge::NonPositive => true,
            MaxAge::Millis(millis) => signed_at_ms.saturating_add(millis) < i128::from(now_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FIXTURE: &str = include_str!("../../tests/fixtures/phoenix-tokens.json");
    const SECRET: &[u8] =
        b"plume-test-secret-key-base-0123456789abcdef0123456789abcdef0123456789abcdef";
    const SIGNED_AT: u64 = 1_700_000_000_000;
    const SALT: &str = "user socket";

    fn unhex(hex: &str) -> Vec<u8> {
        assert!(hex.len().is_multiple_of(2), "odd-length hex {hex}");
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
            .collect()
    }

    fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
        vector[field]
            .as_str()
            .unwrap_or_else(|| panic!("vector field {field} is not a string"))
    }

    fn number(vector: &Value, field: &str) -> u64 {
        vector[field]
            .as_u64()
            .unwrap_or_else(|| panic!("vector field {field} is not an integer"))
    }

    /// Signs arbitrary payload bytes, to exercise payload shapes `sign` never
    /// produces.
    fn token_for_payload(tokens: &Tokens, payload: &[u8]) -> String {
        tokens.sign_payload(SALT, payload)
    }

    fn sample() -> (Tokens, String) {
        let tokens = Tokens::new(SECRET);
        let token = tokens.sign(SALT, &json!({"id": 1}), SIGNED_AT, 60).unwrap();
        (tokens, token)
    }

    #[test]
    fn phoenix_vectors_verify_and_resign_byte_for_byte() {
        let fixture: Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
        let secret = text(&fixture, "secret_key_base").as_bytes();
        assert_eq!(secret, SECRET);
        let tokens = Tokens::new(secret);
        let vectors = fixture["vectors"].as_array().expect("vectors array");
        assert!(!vectors.is_empty());
        for vector in vectors {
            let note = text(vector, "note");
            let salt = text(vector, "salt");
            let data = &vector["data"];
            let signed_at = number(vector, "signed_at_ms");
            let max_age = number(vector, "max_age");
            let now = signed_at + 1000;

            assert_eq!(
                derive_key(secret, salt).to_vec(),
                unhex(text(vector, "derived_key_hex")),
                "{note}: derived key"
            );
            let data_etf = unhex(text(vector, "data_etf_hex"));
            assert_eq!(etf::encode(data).unwrap(), data_etf, "{note}: data ETF");
            assert_eq!(
                etf::decode(&data_etf).as_ref(),
                Ok(data),
                "{note}: data decode"
            );
            assert_eq!(
                encode_payload(data, signed_at, max_age).unwrap(),
                unhex(text(vector, "payload_etf_hex")),
                "{note}: payload ETF"
            );

            let token = text(vector, "token");
            let signature = URL_SAFE_NO_PAD.encode(unhex(text(vector, "signature_hex")));
            assert_eq!(
                token,
                format!("{}.{signature}", text(vector, "signing_input")),
                "{note}: fixture is self-consistent"
            );
            assert_eq!(
                tokens.sign(salt, data, signed_at, max_age).as_deref(),
                Ok(token),
                "{note}: re-sign"
            );
            assert_eq!(
                tokens.verify(salt, token, None, now).as_ref(),
                Ok(data),
                "{note}: verify"
            );

            if let Some(minor2) = vector["token_minor2"].as_str() {
                assert_eq!(
                    tokens.verify(salt, minor2, None, now).as_ref(),
                    Ok(data),
                    "{note}: verify minor 2"
                );
                let payload = unhex(text(vector, "payload_etf_minor2_hex"));
                assert_eq!(
                    etf::decode(&payload),
                    Ok(json!([data, signed_at, max_age])),
                    "{note}: decode minor 2"
                );
            }
        }
    }

    #[test]
    fn expires_by_the_max_age_in_the_token() {
        let (tokens, token) = sample();
        let last_valid = SIGNED_AT + 60_000;
        assert_eq!(
            tokens.verify(SALT, &token, None, last_valid),
            Ok(json!({"id": 1}))
        );
        assert_eq!(
            tokens.verify(SALT, &token, None, last_valid + 1),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn max_age_given_to_verify_overrides_the_token() {
        let (tokens, token) = sample();
        let later = SIGNED_AT + 3_600_000;
        assert_eq!(
            tokens.verify(SALT, &token, Some(3600), later),
            Ok(json!({"id": 1}))
        );
        assert_eq!(
            tokens.verify(SALT, &token, Some(10), SIGNED_AT + 10_001),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn zero_max_age_is_always_expired() {
        let tokens = Tokens::new(SECRET);
        let token = tokens.sign(SALT, &json!(1), SIGNED_AT, 0).unwrap();
        assert_eq!(
            tokens.verify(SALT, &token, None, SIGNED_AT),
            Err(TokenError::Expired)
        );
        let (tokens, token) = sample();
        assert_eq!(
            tokens.verify(SALT, &token, Some(0), 0),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn empty_token_is_missing() {
        let (tokens, _) = sample();
        assert_eq!(
            tokens.verify(SALT, "", None, SIGNED_AT),
            Err(TokenError::Missing)
        );
    }

    #[test]
    fn wrong_salt_or_secret_is_invalid() {
        let (tokens, token) = sample();
        assert_eq!(
            tokens.verify("other salt", &token, None, SIGNED_AT),
            Err(TokenError::Invalid)
        );
        let other = Tokens::new(b"another secret key base");
        assert_eq!(
            other.verify(SALT, &token, None, SIGNED_AT),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn tampering_is_invalid() {
        let (tokens, token) = sample();
        let (input, signature) = token.rsplit_once('.').unwrap();
        let flip = |s: &str| {
            let mut chars: Vec<char> = s.chars().collect();
            chars[2] = if chars[2] == 'A' { 'B' } else { 'A' };
            chars.into_iter().collect::<String>()
        };
        let (header, payload) = input.split_once('.').unwrap();
        let other_payload = tokens.sign(SALT, &json!({"id": 2}), SIGNED_AT, 60).unwrap();
        let forged_payload = other_payload.split('.').nth(1).unwrap();
        for bad in [
            format!("{input}.{}", flip(signature)),
            format!("{header}.{}.{signature}", flip(payload)),
            format!("{header}.{forged_payload}.{signature}"),
            format!("SFMyNTZ.{payload}.{signature}"),
            format!("{input}.{signature}="),
            format!("{input}.{}", &signature[..signature.len() - 1]),
            format!("{input}.{signature}.x"),
            format!("{payload}.{signature}"),
            "garbage".to_owned(),
            ".".to_owned(),
            "..".to_owned(),
        ] {
            assert_eq!(
                tokens.verify(SALT, &bad, None, SIGNED_AT),
                Err(TokenError::Invalid),
                "{bad}"
            );
        }
    }

    #[test]
    fn authentic_but_undecodable_payloads_are_invalid() {
        let tokens = Tokens::new(SECRET);
        let cases: [&[u8]; 7] = [
            &[],
            &[130, 104, 2, 97, 1, 97, 2],               // wrong version
            &[131, 104, 3, 97, 1, 97, 2],               // truncated
            &[131, 104, 2, 97, 1, 97, 2, 0],            // trailing byte
            &[131, 104, 4, 97, 1, 97, 2, 97, 3, 97, 4], // 4-tuple
            &[131, 104, 2, 97, 1, 70, 0, 0, 0, 0, 0, 0, 0, 0], // float signed_at
            &[131, 104, 3, 97, 1, 97, 2, 119, 2, b'n', b'o'], // atom max_age
        ];
        for payload in cases {
            let token = token_for_payload(&tokens, payload);
            assert_eq!(
                tokens.verify(SALT, &token, None, SIGNED_AT),
                Err(TokenError::Invalid),
                "{payload:?}"
            );
        }
    }

    #[test]
    fn accepts_legacy_payloads_with_a_one_day_max_age() {
        let tokens = Tokens::new(SECRET);
        let mut two_tuple = vec![131, 104, 2, 97, 9];
        two_tuple.extend(&etf::encode(&json!(SIGNED_AT)).unwrap()[1..]);
        let mut map = vec![131, 116, 0, 0, 0, 2];
        map.extend([119, 4, b'd', b'a', b't', b'a', 97, 9]);
        map.extend([119, 6, b's', b'i', b'g', b'n', b'e', b'd']);
        map.extend(&etf::encode(&json!(SIGNED_AT)).unwrap()[1..]);
        for payload in [two_tuple, map] {
            let token = token_for_payload(&tokens, &payload);
            let one_day = SIGNED_AT + 86_400_000;
            assert_eq!(tokens.verify(SALT, &token, None, one_day), Ok(json!(9)));
            assert_eq!(
                tokens.verify(SALT, &token, None, one_day + 1),
                Err(TokenError::Expired)
            );
        }
    }

    #[test]
    fn infinity_and_float_max_ages_follow_plug_crypto() {
        let tokens = Tokens::new(SECRET);
        let payload = |max_age: &[u8]| {
            let mut bytes = vec![131, 104, 3, 97, 9];
            bytes.extend(&etf::encode(&json!(SIGNED_AT)).unwrap()[1..]);
            bytes.extend(max_age);
            token_for_payload(&tokens, &bytes)
        };
        let infinity = payload(&[100, 0, 8, b'i', b'n', b'f', b'i', b'n', b'i', b't', b'y']);
        assert_eq!(tokens.verify(SALT, &infinity, None, u64::MAX), Ok(json!(9)));
        assert_eq!(
            tokens.verify(SALT, &infinity, Some(1), u64::MAX),
            Err(TokenError::Expired)
        );
        let one_and_a_half = payload(&etf::encode(&json!(1.5)).unwrap()[1..]);
        assert_eq!(
            tokens.verify(SALT, &one_and_a_half, None, SIGNED_AT + 1500),
            Ok(json!(9))
        );
        assert_eq!(
            tokens.verify(SALT, &one_and_a_half, None, SIGNED_AT + 1501),
            Err(TokenError::Expired)
        );
        let negative = payload(&[98, 255, 255, 255, 255]);
        assert_eq!(
            tokens.verify(SALT, &negative, None, 0),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn signing_unencodable_data_is_invalid_data() {
        let tokens = Tokens::new(SECRET);
        let deep = (0..=etf::MAX_DEPTH).fold(json!(true), |inner, _| json!([inner]));
        assert!(matches!(
            tokens.sign(SALT, &deep, SIGNED_AT, 60),
            Err(TokenError::InvalidData(_))
        ));
    }

    #[test]
    fn derived_keys_are_cached_per_salt_up_to_a_bound() {
        let tokens = Tokens::new(SECRET);
        let clone = tokens.clone();
        let token = tokens.sign("a", &json!(1), SIGNED_AT, 60).unwrap();
        assert_eq!(clone.inner.keyed.read().len(), 1);
        assert_eq!(clone.verify("a", &token, None, SIGNED_AT), Ok(json!(1)));
        assert_eq!(tokens.inner.keyed.read().len(), 1);
        for i in 0..MAX_CACHED_KEYS + 8 {
            let salt = format!("salt {i}");
            let token = tokens.sign(&salt, &json!(i), SIGNED_AT, 60).unwrap();
            assert_eq!(tokens.verify(&salt, &token, None, SIGNED_AT), Ok(json!(i)));
        }
        assert_eq!(tokens.inner.keyed.read().len(), MAX_CACHED_KEYS);
    }

    #[test]
    fn tokens_are_shareable_and_debug_hides_the_secret() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Tokens>();
        let debug = format!("{:?}", Tokens::new(SECRET));
        assert_eq!(debug, "Tokens { .. }");
    }
}
