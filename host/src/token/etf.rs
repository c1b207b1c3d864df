//! The Erlang External Term Format, as far as Phoenix.Token payloads need it.
//!
//! Phoenix signs `:erlang.term_to_binary({data, signed_at_ms, max_age_s})`, so
//! to accept tokens minted by an Elixir node, and to mint tokens an Elixir node
//! accepts, we have to read and write that format. Terms are mapped to and from
//! [`serde_json::Value`], the currency of the rest of the server:
//!
//! | Erlang term                                  | JSON                          |
//! |----------------------------------------------|-------------------------------|
//! | integer (small, 32-bit, bignum)              | number                        |
//! | float                                        | number                        |
//! | atom `nil` / `true` / `false`                | `null` / `true` / `false`     |
//! | any other atom                               | string                        |
//! | binary                                       | string                        |
//! | list, tuple, byte list (`STRING_EXT`)        | array                         |
//! | map                                          | object                        |
//!
//! Decoding is lossy in ways JSON forces on us, and strict where guessing
//! would be dangerous:
//! - bignums beyond `i64`/`u64` become the nearest `f64` (JSON numbers are
//!   doubles to most consumers anyway); ones too large for `f64` are rejected;
//! - binaries that are not UTF-8 are rejected: JSON has no byte strings, and
//!   an array of numbers would be indistinguishable from a list;
//! - map keys may be binaries, atoms or integers (written in decimal); any
//!   other key, or two keys that collide once stringified, is rejected;
//! - improper lists, trailing bytes, compressed terms and every tag not listed
//!   above (pids, refs, funs, bit strings, ...) are rejected.
//!
//! Every length is checked against the remaining input before it is used, and
//! nesting is bounded by [`MAX_DEPTH`], so hostile input yields an error rather
//! than a panic, a huge allocation or a stack overflow.
//!
//! Encoding reproduces what OTP 25's `term_to_binary/1` emits, byte for byte,
//! so tokens we sign are identical to Phoenix's: atoms as `ATOM_EXT`, the
//! smallest integer encoding, lists of bytes as `STRING_EXT`, and map keys in
//! Erlang term order. The last holds for maps of up to 32 keys; larger Erlang
//! maps are hash-ordered, which we do not imitate (their tokens still verify,
//! since verification never re-encodes).

use serde_json::{Map, Number, Value};

/// How many containers (lists, tuples, maps) may nest inside each other.
///
/// Recursion depth is what an attacker controls cheaply (five bytes per
/// level), so it is capped well below anything that could exhaust the stack,
/// and well above anything a real token carries. Encoding applies the same
/// limit, so everything we sign we can also verify.
pub const MAX_DEPTH: usize = 64;

/// Why a term could not be decoded or encoded.
///
/// The variants are specific so that logs can tell a truncated token from an
/// unsupported one; callers verifying tokens collapse them all into "invalid".
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum EtfError {
    /// The input does not start with the format's version byte, 131.
    #[error("term does not start with version byte 131 (found {0})")]
    BadVersion(u8),
    /// The input ends early, or a length field claims more than remains.
    #[error("term is truncated or a length exceeds the remaining input")]
    Truncated,
    /// A complete term was read but bytes remain after it.
    #[error("{0} unexpected bytes after the term")]
    TrailingBytes(usize),
    /// The term uses a tag this module does not map to JSON.
    #[error("unsupported term tag {0}")]
    UnsupportedTag(u8),
    /// Containers nest deeper than [`MAX_DEPTH`].
    #[error("terms nest deeper than {} levels", MAX_DEPTH)]
    TooDeep,
    /// A binary or UTF-8 atom holds bytes that are not UTF-8.
    #[error("binary or atom is not valid UTF-8")]
    NotUtf8,
    /// A map key (identified by its tag) cannot become a JSON object key.
    #[error("map key with tag {0} cannot become a JSON object key")]
    UnsupportedKey(u8),
    /// Two map keys become the same JSON object key.
    #[error("map key {0:?} occurs more than once")]
    DuplicateKey(String),
    /// A float is NaN or infinite, or a bignum exceeds the range of `f64`.
    #[error("number cannot be represented in JSON")]
    NumberOutOfRange,
    /// The bytes are structurally wrong in a way described by the message.
    #[error("malformed term: {0}")]
    Malformed(&'static str),
    /// A value is too long for the format's 32-bit length fields.
    #[error("{0} is too large for the external term format")]
    TooLarge(&'static str),
}

/// Decodes a complete term (version byte included) into JSON.
///
/// This is the general entry point; token verification reads its envelope
/// tuple with its own reader instead, because it must tell atoms from binaries.
pub fn decode(bytes: &[u8]) -> Result<Value, EtfError> {
    let mut reader = Reader::new(bytes)?;
    let value = reader.value()?;
    reader.finish()?;
    Ok(value)
}

/// Encodes JSON as `term_to_binary/1` on OTP 25 would encode the same term.
///
/// Fails only for values nested deeper than [`MAX_DEPTH`] or longer than the
/// format's 32-bit lengths.
pub fn encode(value: &Value) -> Result<Vec<u8>, EtfError> {
    let mut writer = Writer::new();
    writer.value(value)?;
    Ok(writer.finish())
}

const VERSION: u8 = 131;

/// Tag bytes of the external term format, named as in the OTP documentation.
mod tag {
    pub const NEW_FLOAT: u8 = 70;
    pub const SMALL_INTEGER: u8 = 97;
    pub const INTEGER: u8 = 98;
    pub const ATOM: u8 = 100;
    pub const SMALL_TUPLE: u8 = 104;
    pub const LARGE_TUPLE: u8 = 105;
    pub const NIL: u8 = 106;
    pub const STRING: u8 = 107;
    pub const LIST: u8 = 108;
    pub const BINARY: u8 = 109;
    pub const SMALL_BIG: u8 = 110;
    pub const LARGE_BIG: u8 = 111;
    pub const SMALL_ATOM: u8 = 115;
    pub const MAP: u8 = 116;
    pub const ATOM_UTF8: u8 = 118;
    pub const SMALL_ATOM_UTF8: u8 = 119;
}

/// The depth of a container's children, or [`EtfError::TooDeep`].
fn nested(depth: usize) -> Result<usize, EtfError> {
    if depth >= MAX_DEPTH {
        Err(EtfError::TooDeep)
    } else {
        Ok(depth + 1)
    }
}

fn is_atom_tag(tag: u8) -> bool {
    matches!(
        tag,
        tag::ATOM | tag::SMALL_ATOM | tag::ATOM_UTF8 | tag::SMALL_ATOM_UTF8
    )
}

/// The JSON meaning of an atom: Elixir's `nil` and the booleans have JSON
/// counterparts; every other atom is just a name.
fn atom_to_value(name: String) -> Value {
    match name.as_str() {
        "nil" => Value::Null,
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(name),
    }
}

/// A bignum (sign plus little-endian magnitude) as a JSON number: exact when it
/// fits `i64`/`u64`, else the nearest `f64`.
fn big_to_number(negative: bool, digits: &[u8]) -> Result<Number, EtfError> {
    let significant = digits.iter().rposition(|&d| d != 0).map_or(0, |i| i + 1);
    let (digits, _) = digits.split_at(significant);
    if digits.len() <= 8 {
        let mut bytes = [0; 8];
        bytes[..digits.len()].copy_from_slice(digits);
        let magnitude = u64::from_le_bytes(bytes);
        if !negative {
            return Ok(magnitude.into());
        }
        if let Ok(value) = i64::try_from(-i128::from(magnitude)) {
            return Ok(value.into());
        }
    }
    let magnitude = digits
        .iter()
        .rev()
        .fold(0.0_f64, |acc, &d| acc * 256.0 + f64::from(d));
    let value = if negative { -magnitude } else { magnitude };
    Number::from_f64(value).ok_or(EtfError::NumberOutOfRange)
}

/// A cursor over an encoded term.
///
/// Exposed to the token module so it can walk the `{data, signed_at, max_age}`
/// envelope itself: `max_age` may be the atom `:infinity`, which the JSON
/// mapping would blur with the string `"infinity"`.
pub(super) struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading after checking the version byte.
    pub(super) fn new(bytes: &'a [u8]) -> Result<Self, EtfError> {
        match bytes.split_first() {
            Some((&VERSION, input)) => Ok(Self { input }),
            Some((&other, _)) => Err(EtfError::BadVersion(other)),
            None => Err(EtfError::Truncated),
        }
    }

    /// Ends reading, insisting that nothing follows the term.
    pub(super) fn finish(self) -> Result<(), EtfError> {
        match self.input.len() {
            0 => Ok(()),
            extra => Err(EtfError::TrailingBytes(extra)),
        }
    }

    /// If the next term is a tuple, consumes its header and returns its arity;
    /// otherwise consumes nothing.
    pub(super) fn tuple_header(&mut self) -> Result<Option<usize>, EtfError> {
        match self.peek()? {
            tag::SMALL_TUPLE | tag::LARGE_TUPLE => {
                let tag = self.byte()?;
                self.tuple_arity(tag).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// If the next term is an atom, consumes it and returns its name;
    /// otherwise consumes nothing.
    pub(super) fn atom(&mut self) -> Result<Option<String>, EtfError> {
        if !is_atom_tag(self.peek()?) {
            return Ok(None);
        }
        let tag = self.byte()?;
        self.atom_name(tag).map(Some)
    }

    /// Reads the next term as JSON, nesting counted from zero.
    pub(super) fn value(&mut self) -> Result<Value, EtfError> {
        self.term(0)
    }

    fn term(&mut self, depth: usize) -> Result<Value, EtfError> {
        let tag = self.byte()?;
        match tag {
            tag::SMALL_INTEGER | tag::INTEGER | tag::SMALL_BIG | tag::LARGE_BIG => {
                self.integer(tag).map(Value::Number)
            }
            tag::NEW_FLOAT => self.float().map(Value::Number),
            tag if is_atom_tag(tag) => self.atom_name(tag).map(atom_to_value),
            tag::BINARY => self.binary().map(Value::String),
            tag::STRING => self.byte_list(),
            tag::NIL => Ok(Value::Array(Vec::new())),
            tag::LIST => self.list(nested(depth)?),
            tag::SMALL_TUPLE | tag::LARGE_TUPLE => {
                let arity = self.tuple_arity(tag)?;
                self.elements(arity, nested(depth)?).map(Value::Array)
            }
            tag::MAP => self.map(nested(depth)?),
            other => Err(EtfError::UnsupportedTag(other)),
        }
    }

    fn integer(&mut self, tag: u8) -> Result<Number, EtfError> {
        match tag {
            tag::SMALL_INTEGER => Ok(self.byte()?.into()),
            tag::INTEGER => Ok(i32::from_be_bytes(self.array()?).into()),
            _ => {
                let len = if tag == tag::SMALL_BIG {
                    usize::from(self.byte()?)
                } else {
                    self.u32_len()?
                };
                let negative = match self.byte()? {
                    0 => false,
                    1 => true,
                    _ => return Err(EtfError::Malformed("bignum sign byte must be 0 or 1")),
                };
                big_to_number(negative, self.take(len)?)
            }
        }
    }

    fn float(&mut self) -> Result<Number, EtfError> {
        let bits = u64::from_be_bytes(self.array()?);
        Number::from_f64(f64::from_bits(bits)).ok_or(EtfError::NumberOutOfRange)
    }

    /// Reads an atom's name; latin-1 atoms are widened to Unicode.
    fn atom_name(&mut self, tag: u8) -> Result<String, EtfError> {
        let len = match tag {
            tag::ATOM | tag::ATOM_UTF8 => usize::from(u16::from_be_bytes(self.array()?)),
            _ => usize::from(self.byte()?),
        };
        let bytes = self.take(len)?;
        match tag {
            tag::ATOM | tag::SMALL_ATOM => Ok(bytes.iter().map(|&b| char::from(b)).collect()),
            _ => utf8(bytes),
        }
    }

    fn binary(&mut self) -> Result<String, EtfError> {
        let len = self.u32_len()?;
        utf8(self.take(len)?)
    }

    /// `STRING_EXT`: Erlang's compact form of a list of integers 0..=255.
    fn byte_list(&mut self) -> Result<Value, EtfError> {
        let len = usize::from(u16::from_be_bytes(self.array()?));
        let bytes = self.take(len)?;
        Ok(Value::Array(
            bytes.iter().map(|&b| Value::from(b)).collect(),
        ))
    }

    fn list(&mut self, depth: usize) -> Result<Value, EtfError> {
        let len = self.u32_len()?;
        self.ensure_items(len, 1)?;
        let items = self.elements(len, depth)?;
        if self.byte()? != tag::NIL {
            return Err(EtfError::Malformed("improper list"));
        }
        Ok(Value::Array(items))
    }

    fn tuple_arity(&mut self, tag: u8) -> Result<usize, EtfError> {
        let arity = if tag == tag::SMALL_TUPLE {
            usize::from(self.byte()?)
        } else {
            self.u32_len()?
        };
        self.ensure_items(arity, 1)?;
        Ok(arity)
    }

    /// Reads `count` terms; the caller has checked `count` against the input.
    fn elements(&mut self, count: usize, depth: usize) -> Result<Vec<Value>, EtfError> {
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.term(depth)?);
        }
        Ok(items)
    }

    fn map(&mut self, depth: usize) -> Result<Value, EtfError> {
        let arity = self.u32_len()?;
        self.ensure_items(arity, 2)?;
        let mut object = Map::new();
        for _ in 0..arity {
            let key = self.map_key()?;
            let value = self.term(depth)?;
            if object.contains_key(&key) {
                return Err(EtfError::DuplicateKey(key));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }

    fn map_key(&mut self) -> Result<String, EtfError> {
        let tag = self.byte()?;
        match tag {
            tag::BINARY => self.binary(),
            tag if is_atom_tag(tag) => self.atom_name(tag),
            tag::SMALL_INTEGER | tag::INTEGER | tag::SMALL_BIG | tag::LARGE_BIG => {
                match self.integer(tag)? {
                    n if n.is_f64() => Err(EtfError::UnsupportedKey(tag)),
                    n => Ok(n.to_string()),
                }
            }
            other => Err(EtfError::UnsupportedKey(other)),
        }
    }

    /// Rejects a count of items that cannot possibly fit in what remains, each
    /// item taking at least `min_size` bytes, before anything is allocated.
    fn ensure_items(&self, count: usize, min_size: usize) -> Result<(), EtfError> {
        if count > self.input.len() / min_size {
            Err(EtfError::Truncated)
        } else {
            Ok(())
        }
    }

    fn peek(&self) -> Result<u8, EtfError> {
        self.input.first().copied().ok_or(EtfError::Truncated)
    }

    fn byte(&mut self) -> Result<u8, EtfError> {
        let [byte] = self.array()?;
        Ok(byte)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EtfError> {
        let (head, rest) = self
            .input
            .split_first_chunk::<N>()
            .ok_or(EtfError::Truncated)?;
        self.input = rest;
        Ok(*head)
    }

    fn u32_len(&mut self) -> Result<usize, EtfError> {
        usize::try_from(u32::from_be_bytes(self.array()?)).map_err(|_| EtfError::Truncated)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], EtfError> {
        let (head, rest) = self
            .input
            .split_at_checked(len)
            .ok_or(EtfError::Truncated)?;
        self.input = rest;
        Ok(head)
    }
}

fn utf8(bytes: &[u8]) -> Result<String, EtfError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| EtfError::NotUtf8)
}

/// Builds an encoded term.
///
/// Exposed to the token module so it can wrap data in the
/// `{data, signed_at, max_age}` tuple, which has no JSON counterpart.
pub(super) struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// Starts a term with the version byte.
    pub(super) fn new() -> Self {
        Self { out: vec![VERSION] }
    }

    /// Writes the header of a tuple whose `arity` elements follow.
    pub(super) fn small_tuple_header(&mut self, arity: u8) {
        self.out.extend([tag::SMALL_TUPLE, arity]);
    }

    /// Writes a JSON value as a term, nesting counted from zero.
    pub(super) fn value(&mut self, value: &Value) -> Result<(), EtfError> {
        self.term(value, 0)
    }

    /// Returns the encoded bytes.
    pub(super) fn finish(self) -> Vec<u8> {
        self.out
    }

    fn term(&mut self, value: &Value, depth: usize) -> Result<(), EtfError> {
        match value {
            Value::Null => self.atom("nil"),
            Value::Bool(true) => self.atom("true"),
            Value::Bool(false) => self.atom("false"),
            Value::Number(number) => self.number(number)?,
            Value::String(string) => self.binary(string.as_bytes())?,
            Value::Array(items) => self.list(items, depth)?,
            Value::Object(object) => self.map(object, depth)?,
        }
        Ok(())
    }

    /// OTP 25 writes atoms as `ATOM_EXT`; we only ever write the ASCII names
    /// `nil`, `true` and `false`, so the 16-bit length cannot overflow.
    fn atom(&mut self, name: &str) {
        self.out.push(tag::ATOM);
        self.out.extend((name.len() as u16).to_be_bytes());
        self.out.extend_from_slice(name.as_bytes());
    }

    fn number(&mut self, number: &Number) -> Result<(), EtfError> {
        if let Some(int) = number.as_i64() {
            self.integer(int.into());
        } else if let Some(int) = number.as_u64() {
            self.integer(int.into());
        } else {
            let float = number.as_f64().ok_or(EtfError::NumberOutOfRange)?;
            self.out.push(tag::NEW_FLOAT);
            self.out.extend(float.to_bits().to_be_bytes());
        }
        Ok(())
    }

    /// The smallest encoding, as the VM picks it: a byte, a signed 32-bit
    /// integer, or a bignum with a minimal little-endian magnitude.
    fn integer(&mut self, value: i128) {
        if let Ok(byte) = u8::try_from(value) {
            self.out.extend([tag::SMALL_INTEGER, byte]);
        } else if let Ok(int) = i32::try_from(value) {
            self.out.push(tag::INTEGER);
            self.out.extend(int.to_be_bytes());
        } else {
            let magnitude = value.unsigned_abs();
            // At most 16 bytes, as the magnitude is a u128.
            let len = (u128::BITS - magnitude.leading_zeros()).div_ceil(8) as usize;
            self.out
                .extend([tag::SMALL_BIG, len as u8, u8::from(value < 0)]);
            self.out.extend_from_slice(&magnitude.to_le_bytes()[..len]);
        }
    }

    fn binary(&mut self, bytes: &[u8]) -> Result<(), EtfError> {
        let len = u32::try_from(bytes.len()).map_err(|_| EtfError::TooLarge("string"))?;
        self.out.push(tag::BINARY);
        self.out.extend(len.to_be_bytes());
        self.out.extend_from_slice(bytes);
        Ok(())
    }

    fn list(&mut self, items: &[Value], depth: usize) -> Result<(), EtfError> {
        if items.is_empty() {
            self.out.push(tag::NIL);
        } else if let Some(bytes) = byte_list(items) {
            self.out.push(tag::STRING);
            self.out.extend((bytes.len() as u16).to_be_bytes());
            self.out.extend(bytes);
        } else {
            let depth = nested(depth)?;
            let len = u32::try_from(items.len()).map_err(|_| EtfError::TooLarge("array"))?;
            self.out.push(tag::LIST);
            self.out.extend(len.to_be_bytes());
            for item in items {
                self.term(item, depth)?;
            }
            self.out.push(tag::NIL);
        }
        Ok(())
    }

    /// Keys are written in Erlang term order, which for binaries is bytewise
    /// order, exactly `str`'s `Ord`. Sorting here, rather than trusting the
    /// map's iteration order, keeps the output right even if serde_json's
    /// `preserve_order` feature gets switched on somewhere in the build.
    fn map(&mut self, object: &Map<String, Value>, depth: usize) -> Result<(), EtfError> {
        let depth = nested(depth)?;
        let len = u32::try_from(object.len()).map_err(|_| EtfError::TooLarge("object"))?;
        let mut entries: Vec<_> = object.iter().collect();
        entries.sort_unstable_by_key(|(key, _)| *key);
        self.out.push(tag::MAP);
        self.out.extend(len.to_be_bytes());
        for (key, value) in entries {
            self.binary(key.as_bytes())?;
            self.term(value, depth)?;
        }
        Ok(())
    }
}

/// The bytes of an array the VM would write as `STRING_EXT`: non-empty, at
/// most 65535 elements, every one an integer in 0..=255.
fn byte_list(items: &[Value]) -> Option<Vec<u8>> {
    if items.len() > usize::from(u16::MAX) {
        return None;
    }
    items
        .iter()
        .map(|item| item.as_u64().and_then(|n| u8::try_from(n).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(value: Value) {
        let bytes = encode(&value).expect("encodes");
        assert_eq!(decode(&bytes), Ok(value), "bytes {bytes:?}");
    }

    fn encoded_integer(value: Value) -> Vec<u8> {
        encode(&value).expect("encodes")[1..].to_vec()
    }

    /// `depth` lists nested in one another: [[...[1]...]].
    fn nested_lists(depth: usize) -> Value {
        (0..depth).fold(json!(true), |inner, _| Value::Array(vec![inner]))
    }

    #[test]
    fn round_trips_scalars_and_containers() {
        for value in [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-1),
            json!(1.5),
            json!(-0.25),
            json!(""),
            json!("héllo ✓"),
            json!([]),
            json!({}),
            json!([1, 2, 255]),
            json!([1, 256]),
            json!([1.0, 2.0]),
            json!([null, true, "x", [], {}]),
            json!({"b": 1, "a": [1, {"c": null}], "": "empty"}),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
        ] {
            roundtrip(value);
        }
    }

    #[test]
    fn integers_use_the_vm_encoding() {
        assert_eq!(encoded_integer(json!(0)), [97, 0]);
        assert_eq!(encoded_integer(json!(255)), [97, 255]);
        assert_eq!(encoded_integer(json!(256)), [98, 0, 0, 1, 0]);
        assert_eq!(encoded_integer(json!(-1)), [98, 255, 255, 255, 255]);
        assert_eq!(encoded_integer(json!(i32::MAX)), [98, 127, 255, 255, 255]);
        assert_eq!(encoded_integer(json!(i32::MIN)), [98, 128, 0, 0, 0]);
        assert_eq!(
            encoded_integer(json!(1u64 << 31)),
            [110, 4, 0, 0, 0, 0, 128]
        );
        assert_eq!(
            encoded_integer(json!(i64::MIN)),
            [110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128]
        );
        assert_eq!(
            encoded_integer(json!(u64::MAX)),
            [110, 8, 0, 255, 255, 255, 255, 255, 255, 255, 255]
        );
    }

    #[test]
    fn byte_lists_use_string_ext_up_to_65535_elements() {
        assert_eq!(encode(&json!([1, 2])).unwrap(), [131, 107, 0, 2, 1, 2]);
        let longest = Value::Array(vec![json!(7); 65535]);
        assert_eq!(encode(&longest).unwrap()[1], tag::STRING);
        roundtrip(longest);
        let too_long = Value::Array(vec![json!(7); 65536]);
        assert_eq!(encode(&too_long).unwrap()[1], tag::LIST);
        roundtrip(too_long);
    }

    #[test]
    fn map_keys_are_sorted_bytewise() {
        let bytes = encode(&json!({"b": 1, "aa": 2, "a": 3})).unwrap();
        let expected = [
            &[131, 116, 0, 0, 0, 3][..],
            &[109, 0, 0, 0, 1, b'a', 97, 3],
            &[109, 0, 0, 0, 2, b'a', b'a', 97, 2],
            &[109, 0, 0, 0, 1, b'b', 97, 1],
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn atoms_map_to_json() {
        let cases: [(&[u8], Value); 7] = [
            (&[131, 100, 0, 3, b'n', b'i', b'l'], json!(null)),
            (&[131, 119, 4, b't', b'r', b'u', b'e'], json!(true)),
            (
                &[131, 118, 0, 5, b'f', b'a', b'l', b's', b'e'],
                json!(false),
            ),
            (&[131, 115, 2, b'o', b'k'], json!("ok")),
            (&[131, 115, 1, 0xE9], json!("é")),
            (&[131, 119, 2, 0xC3, 0xA9], json!("é")),
            (&[131, 119, 0], json!("")),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(bytes), Ok(expected), "{bytes:?}");
        }
    }

    #[test]
    fn decodes_other_integer_forms() {
        // LARGE_BIG_EXT, non-canonical leading zeros and the i64 boundary.
        assert_eq!(decode(&[131, 111, 0, 0, 0, 1, 0, 5]), Ok(json!(5)));
        assert_eq!(decode(&[131, 110, 3, 1, 5, 0, 0]), Ok(json!(-5)));
        assert_eq!(decode(&[131, 110, 0, 0]), Ok(json!(0)));
        let minus_two_pow_63 = [131, 110, 8, 1, 0, 0, 0, 0, 0, 0, 0, 128];
        assert_eq!(decode(&minus_two_pow_63), Ok(json!(i64::MIN)));
        // Beyond 64 bits: the nearest f64.
        let two_pow_64 = [131, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(decode(&two_pow_64), Ok(json!(18446744073709551616.0)));
        let minus_two_pow_64 = [131, 110, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(
            decode(&minus_two_pow_64),
            Ok(json!(-18446744073709551616.0))
        );
        let mut beyond_f64 = vec![131, 110, 200, 0];
        beyond_f64.extend([255; 200]);
        assert_eq!(decode(&beyond_f64), Err(EtfError::NumberOutOfRange));
        assert_eq!(
            decode(&[131, 110, 1, 2, 5]),
            Err(EtfError::Malformed("bignum sign byte must be 0 or 1"))
        );
    }

    #[test]
    fn decodes_tuples_and_proper_lists() {
        assert_eq!(decode(&[131, 104, 2, 97, 1, 106]), Ok(json!([1, []])));
        assert_eq!(decode(&[131, 105, 0, 0, 0, 1, 97, 1]), Ok(json!([1])));
        assert_eq!(decode(&[131, 104, 0]), Ok(json!([])));
        assert_eq!(decode(&[131, 108, 0, 0, 0, 1, 97, 1, 106]), Ok(json!([1])));
        assert_eq!(
            decode(&[131, 108, 0, 0, 0, 1, 97, 1, 97, 2]),
            Err(EtfError::Malformed("improper list"))
        );
    }

    #[test]
    fn map_keys_may_be_binaries_atoms_or_integers() {
        let bytes = [
            &[131, 116, 0, 0, 0, 4][..],
            &[109, 0, 0, 0, 1, b'a', 97, 1],
            &[119, 1, b'b', 97, 2],
            &[97, 7, 97, 3],
            &[98, 255, 255, 255, 254, 97, 4],
        ]
        .concat();
        assert_eq!(decode(&bytes), Ok(json!({"a": 1, "b": 2, "7": 3, "-2": 4})));
    }

    #[test]
    fn rejects_unmappable_map_keys() {
        let float_key = [131, 116, 0, 0, 0, 1, 70, 0, 0, 0, 0, 0, 0, 0, 0, 97, 1];
        assert_eq!(decode(&float_key), Err(EtfError::UnsupportedKey(70)));
        let tuple_key = [131, 116, 0, 0, 0, 1, 104, 0, 97, 1];
        assert_eq!(decode(&tuple_key), Err(EtfError::UnsupportedKey(104)));
        let mut huge_key = vec![131, 116, 0, 0, 0, 1, 110, 9, 0];
        huge_key.extend([0, 0, 0, 0, 0, 0, 0, 0, 1, 97, 1]);
        assert_eq!(decode(&huge_key), Err(EtfError::UnsupportedKey(110)));
        let atom_and_binary = [
            &[131, 116, 0, 0, 0, 2][..],
            &[119, 1, b'a', 97, 1],
            &[109, 0, 0, 0, 1, b'a', 97, 2],
        ]
        .concat();
        assert_eq!(
            decode(&atom_and_binary),
            Err(EtfError::DuplicateKey("a".into()))
        );
    }

    #[test]
    fn rejects_non_utf8_binaries_and_bad_floats() {
        assert_eq!(
            decode(&[131, 109, 0, 0, 0, 1, 0xFF]),
            Err(EtfError::NotUtf8)
        );
        assert_eq!(decode(&[131, 119, 1, 0xFF]), Err(EtfError::NotUtf8));
        let nan = f64::NAN.to_bits().to_be_bytes();
        assert_eq!(
            decode(&[&[131, 70][..], &nan].concat()),
            Err(EtfError::NumberOutOfRange)
        );
    }

    #[test]
    fn rejects_wrong_version_trailing_bytes_and_unknown_tags() {
        assert_eq!(decode(&[]), Err(EtfError::Truncated));
        assert_eq!(decode(&[130, 97, 1]), Err(EtfError::BadVersion(130)));
        assert_eq!(decode(&[131, 97, 1, 0]), Err(EtfError::TrailingBytes(1)));
        // Compressed term, pid, bit binary, old string float.
        for tag in [80, 88, 77, 99] {
            assert_eq!(
                decode(&[131, tag, 0, 0, 0, 0]),
                Err(EtfError::UnsupportedTag(tag))
            );
        }
    }

    #[test]
    fn rejects_lengths_beyond_the_input() {
        let huge = [255, 255, 255, 255];
        for prefix in [
            &[131, 108][..], // list
            &[131, 109],     // binary
            &[131, 105],     // large tuple
            &[131, 116],     // map
            &[131, 111],     // large bignum
        ] {
            let bytes = [prefix, &huge, &[0, 97, 1, 106]].concat();
            assert_eq!(decode(&bytes), Err(EtfError::Truncated), "{prefix:?}");
        }
        assert_eq!(decode(&[131, 107, 255, 255, 1]), Err(EtfError::Truncated));
        assert_eq!(decode(&[131, 104, 255, 97, 1]), Err(EtfError::Truncated));
        assert_eq!(
            decode(&[131, 100, 255, 255, b'a']),
            Err(EtfError::Truncated)
        );
        // A map of two entries needs at least four bytes after its header.
        assert_eq!(
            decode(&[131, 116, 0, 0, 0, 2, 97, 1, 97]),
            Err(EtfError::Truncated)
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let value = json!({"id": 1, "big": 123456789012u64, "f": 0.5, "l": [1, "x", null, [2]]});
        let bytes = encode(&value).unwrap();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "prefix of {len} bytes");
        }
    }

    #[test]
    fn nesting_is_bounded_on_decode() {
        let nested = |depth: usize, header: &[u8], tail: &[u8]| {
            let mut bytes = vec![131];
            for _ in 0..depth {
                bytes.extend_from_slice(header);
            }
            bytes.push(106);
            for _ in 0..depth {
                bytes.extend_from_slice(tail);
            }
            bytes
        };
        let list = (&[108, 0, 0, 0, 1][..], &[106][..]);
        let tuple = (&[104, 1][..], &[][..]);
        let map = (&[116, 0, 0, 0, 1, 97, 0][..], &[][..]);
        for (header, tail) in [list, tuple, map] {
            assert!(decode(&nested(MAX_DEPTH, header, tail)).is_ok());
            assert_eq!(
                decode(&nested(MAX_DEPTH + 1, header, tail)),
                Err(EtfError::TooDeep)
            );
            assert_eq!(
                decode(&nested(1_000_000, header, tail)),
                Err(EtfError::TooDeep)
            );
        }
    }

    #[test]
    fn nesting_is_bounded_on_encode() {
        roundtrip(nested_lists(MAX_DEPTH));
        assert_eq!(encode(&nested_lists(MAX_DEPTH + 1)), Err(EtfError::TooDeep));
        let deep_map = (0..=MAX_DEPTH).fold(json!(1), |inner, _| json!({ "k": inner }));
        assert_eq!(encode(&deep_map), Err(EtfError::TooDeep));
    }

    #[test]
    fn mutated_input_never_panics() {
        let seed_value = json!({"id": 1, "n": [1, 2, [3, {"x": -70000}]], "s": "str", "f": 1.5});
        let seed = encode(&seed_value).unwrap();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = seed.clone();
            for _ in 0..=next() % 3 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = next() as u8;
            }
            let keep = (next() % (bytes.len() as u64 + 1)) as usize;
            let _ = decode(&bytes[..keep]);
            let _ = decode(&bytes);
        }
    }
}
