//! Where a key belongs: the hint on an unknown key that another section
//! knows (`max_connections` under `[server]` belongs under `[limits]`).
//!
//! The sections' keys are read from their `Deserialize` implementations
//! (serde hands a struct's field names to the deserializer), so the hint
//! can never disagree with what the file accepts.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::{AppSection, Config, KvSection, LimitOverrides, Limits, PluginSection, RouteSection, Runtime, Server, TenantSection};

/// Every section of the file, as a user writes its header, and its keys.
fn sections() -> [(&'static str, &'static [&'static str]); 10] {
    [
        ("the top level", field_names::<Config>()),
        ("[server]", field_names::<Server>()),
        ("[runtime]", field_names::<Runtime>()),
        ("[app]", field_names::<AppSection>()),
        ("[limits]", field_names::<Limits>()),
        ("[kv]", field_names::<KvSection>()),
        ("[plugins.NAME]", field_names::<PluginSection>()),
        ("[[routes]]", field_names::<RouteSection>()),
        ("[[tenants]]", field_names::<TenantSection>()),
        ("[tenants.limits]", field_names::<LimitOverrides>()),
    ]
}

/// For a parse error about an unknown key: where that key belongs, e.g.
/// "`max_connections` belongs under [limits] (or [tenants.limits])".
pub fn where_it_belongs(message: &str) -> Option<String> {
    let key = message.strip_prefix("unknown field `")?.split('`').next()?;
    let homes: Vec<&str> = sections()
        .iter()
        .filter(|(_, keys)| keys.contains(&key))
        .map(|(section, _)| *section)
        .collect();
    let (first, others) = homes.split_first()?;
    let mut hint = format!("`{key}` belongs under {first}");
    if !others.is_empty() {
        hint.push_str(&format!(" (or {})", others.join(", ")));
    }
    Some(hint)
}

/// The field names serde reads for `T`, a struct deriving `Deserialize`.
fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldNames(&mut fields));
    fields
}

/// A deserializer that only takes note of the fields a struct asks for.
struct FieldNames<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only a struct has field names"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("the field names are all that was asked"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_has_its_keys() {
        for (section, keys) in sections() {
            assert!(!keys.is_empty(), "{section} lists no key");
        }
        let sections = sections();
        let limits = sections.iter().find(|(s, _)| *s == "[limits]").expect("limits");
        assert!(limits.1.contains(&"max_connections") && limits.1.contains(&"idle_timeout_ms"));
    }

    #[test]
    fn an_unknown_key_is_sent_where_it_belongs() {
        let hint = |m: &str| where_it_belongs(m);
        assert_eq!(
            hint("unknown field `max_connections`, expected one of `bind`, ...").as_deref(),
            Some("`max_connections` belongs under [limits] (or [tenants.limits])")
        );
        assert_eq!(hint("unknown field `bind`, expected `id`").as_deref(), Some("`bind` belongs under [server]"));
        assert_eq!(
            hint("unknown field `deadline_ms`, expected ...").as_deref(),
            Some("`deadline_ms` belongs under [runtime] (or [tenants.limits])")
        );
        assert_eq!(hint("unknown field `bnd`, expected ..."), None, "a typo has no home");
        assert_eq!(hint("invalid type: string \"big\", expected usize"), None);
    }
}
