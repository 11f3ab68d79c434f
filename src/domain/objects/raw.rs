//! The `objects` YAML as written, before any rule: entries with their fields as text.
//!
//! Field names match in any case, as the existing provider's JSON decoding does (its own
//! integration tests write `Path:` and `ObjectAlias:`), and unknown keys are kept aside
//! rather than refused, because a class that carries one mounts there. Values stay
//! exactly as written: only the keys are folded.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::YamlLimits;

/// What the keys of one mapping looked like.
#[derive(Debug, Default)]
pub(super) struct Keys {
    /// Keys that name no field, as written.
    pub unknown: Vec<String>,
    /// Keys that name a field already given in this mapping (in any case), as written.
    pub repeated: Vec<String>,
    seen: Vec<&'static str>,
}

impl Keys {
    /// The field `key` names, once per mapping; `None` for unknown and repeated keys,
    /// whose values are skipped.
    fn field(&mut self, key: &str, fields: &[&'static str]) -> Option<&'static str> {
        let Some(field) = fields.iter().copied().find(|f| same_name(f, key)) else {
            self.unknown.push(key.to_string());
            return None;
        };
        if self.seen.contains(&field) {
            self.repeated.push(key.to_string());
            return None;
        }
        self.seen.push(field);
        Some(field)
    }
}

/// Case-insensitive like Go's `strings.EqualFold` for these ASCII names: the Kelvin sign
/// folds to `k` and the long s to `s` there, so they do here.
fn same_name(field: &str, key: &str) -> bool {
    let fold = |c: char| match c {
        '\u{212A}' => 'k',
        '\u{017F}' => 's',
        c => c.to_ascii_lowercase(),
    };
    field.chars().map(fold).eq(key.chars().map(fold))
}

#[derive(Debug, Default)]
pub(super) struct RawObject {
    pub object_name: Option<String>,
    pub object_type: Option<String>,
    pub object_alias: Option<String>,
    pub object_version: Option<String>,
    pub object_version_label: Option<String>,
    pub file_permission: Option<String>,
    pub jmes_path: Option<Vec<RawJmes>>,
    pub failover_object: Option<RawFailover>,
    pub object_encoding: Option<String>,
    pub non_string: Option<String>,
    pub expand_json: Option<String>,
    pub select: Option<RawSelect>,
    pub keys: Keys,
}

#[derive(Debug, Default)]
pub(super) struct RawJmes {
    pub path: Option<String>,
    pub object_alias: Option<String>,
    pub file_permission: Option<String>,
    pub object_encoding: Option<String>,
    pub non_string: Option<String>,
    pub keys: Keys,
}

/// `select`: objects chosen by path, name prefix or tag instead of listed by name.
#[derive(Debug, Default)]
pub(super) struct RawSelect {
    pub path: Option<String>,
    pub recursive: Option<String>,
    pub name_prefix: Option<String>,
    pub tag_key: Option<String>,
    pub tag_value: Option<String>,
    pub keys: Keys,
}

#[derive(Debug, Default)]
pub(super) struct RawFailover {
    pub object_name: Option<String>,
    pub object_version: Option<String>,
    pub object_version_label: Option<String>,
    pub keys: Keys,
}

/// The existing provider reads YAML into Go strings, where `""` and absent are the same:
/// so are they here, for every optional text field.
fn text<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<String>, A::Error> {
    Ok(map
        .next_value::<Option<String>>()?
        .filter(|s| !s.is_empty()))
}

/// A switch of ours (no field of the existing provider): `true` bare or quoted.
fn flag<'de, A: MapAccess<'de>>(map: &mut A) -> Result<Option<String>, A::Error> {
    Ok(map.next_value::<Option<Scalar>>()?.map(|s| s.0))
}

/// A scalar as text: strings as they are, booleans and numbers as YAML writes them.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(ScalarVisitor)
    }
}

/// One mapping of the YAML: its known fields are read by `set`, the rest skipped.
trait Entry: Default {
    const WHAT: &'static str;
    const FIELDS: &'static [&'static str];
    fn keys(&mut self) -> &mut Keys;
    fn set<'de, A: MapAccess<'de>>(
        &mut self,
        field: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error>;
}

struct EntryVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Entry> Visitor<'de> for EntryVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} (a mapping of fields)", T::WHAT)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut entry = T::default();
        while let Some(key) = map.next_key::<String>()? {
            match entry.keys().field(&key, T::FIELDS) {
                Some(field) => entry.set(field, &mut map)?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(entry)
    }
}

fn deserialize_entry<'de, D: Deserializer<'de>, T: Entry>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(EntryVisitor(std::marker::PhantomData))
}

impl Entry for RawObject {
    const WHAT: &'static str = "an object";
    const FIELDS: &'static [&'static str] = &[
        "objectName",
        "objectType",
        "objectAlias",
        "objectVersion",
        "objectVersionLabel",
        "filePermission",
        "jmesPath",
        "failoverObject",
        "objectEncoding",
        "nonString",
        "expandJson",
        "select",
    ];

    fn keys(&mut self) -> &mut Keys {
        &mut self.keys
    }

    fn set<'de, A: MapAccess<'de>>(
        &mut self,
        field: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match field {
            "objectName" => self.object_name = text(map)?,
            "objectType" => self.object_type = text(map)?,
            "objectAlias" => self.object_alias = text(map)?,
            "objectVersion" => self.object_version = text(map)?,
            "objectVersionLabel" => self.object_version_label = text(map)?,
            "filePermission" => self.file_permission = text(map)?,
            "jmesPath" => self.jmes_path = map.next_value()?,
            "failoverObject" => self.failover_object = map.next_value()?,
            "objectEncoding" => self.object_encoding = text(map)?,
            "nonString" => self.non_string = text(map)?,
            "expandJson" => self.expand_json = flag(map)?,
            "select" => self.select = map.next_value()?,
            other => return Err(de::Error::unknown_field(other, Self::FIELDS)),
        }
        Ok(())
    }
}

impl Entry for RawJmes {
    const WHAT: &'static str = "a jmesPath entry";
    const FIELDS: &'static [&'static str] = &[
        "path",
        "objectAlias",
        "filePermission",
        "objectEncoding",
        "nonString",
    ];

    fn keys(&mut self) -> &mut Keys {
        &mut self.keys
    }

    fn set<'de, A: MapAccess<'de>>(
        &mut self,
        field: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match field {
            "path" => self.path = text(map)?,
            "objectAlias" => self.object_alias = text(map)?,
            "filePermission" => self.file_permission = text(map)?,
            "objectEncoding" => self.object_encoding = text(map)?,
            "nonString" => self.non_string = text(map)?,
            other => return Err(de::Error::unknown_field(other, Self::FIELDS)),
        }
        Ok(())
    }
}

impl Entry for RawSelect {
    const WHAT: &'static str = "a select";
    const FIELDS: &'static [&'static str] =
        &["path", "recursive", "namePrefix", "tagKey", "tagValue"];

    fn keys(&mut self) -> &mut Keys {
        &mut self.keys
    }

    fn set<'de, A: MapAccess<'de>>(
        &mut self,
        field: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match field {
            "path" => self.path = text(map)?,
            "recursive" => self.recursive = flag(map)?,
            "namePrefix" => self.name_prefix = text(map)?,
            "tagKey" => self.tag_key = text(map)?,
            "tagValue" => self.tag_value = text(map)?,
            other => return Err(de::Error::unknown_field(other, Self::FIELDS)),
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for RawSelect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_entry(d)
    }
}

impl Entry for RawFailover {
    const WHAT: &'static str = "a failoverObject";
    const FIELDS: &'static [&'static str] = &["objectName", "objectVersion", "objectVersionLabel"];

    fn keys(&mut self) -> &mut Keys {
        &mut self.keys
    }

    fn set<'de, A: MapAccess<'de>>(
        &mut self,
        field: &'static str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match field {
            "objectName" => self.object_name = text(map)?,
            "objectVersion" => self.object_version = text(map)?,
            "objectVersionLabel" => self.object_version_label = text(map)?,
            other => return Err(de::Error::unknown_field(other, Self::FIELDS)),
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_entry(d)
    }
}

impl<'de> Deserialize<'de> for RawJmes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_entry(d)
    }
}

impl<'de> Deserialize<'de> for RawFailover {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_entry(d)
    }
}

/// The list of entries, within the YAML budget (aliases and their expansions).
pub(super) fn deserialize(
    yaml: &str,
    limits: &YamlLimits,
) -> Result<Vec<Option<RawObject>>, String> {
    if yaml.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut options = serde_saphyr::Options::default();
    if let Some(budget) = options.budget.as_mut() {
        budget.max_aliases = limits.max_aliases;
    } else {
        let mut budget = serde_saphyr::Budget::default();
        budget.max_aliases = limits.max_aliases;
        options.budget = Some(budget);
    }
    options.alias_limits.max_total_replayed_events = limits.max_alias_events;
    // Repeated keys reach `Keys::field`, which refuses a repeated field and ignores a
    // repeated unknown key, as the existing provider's decoding keeps the last one.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    serde_saphyr::from_str_with_options::<Vec<Option<RawObject>>>(yaml, options).map_err(|e| {
        // The parser's first line says what and where; the rest is a source snippet.
        let text = e.to_string();
        let first = text.lines().next().unwrap_or("unreadable YAML").trim();
        format!(
            "objects is not a valid list of objects: {}",
            first.trim_start_matches("error: ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_like_go() {
        assert!(same_name("objectAlias", "OBJECTALIAS"));
        assert!(same_name("objectAlias", "objectalia\u{017F}"));
        assert!(same_name("path", "Path"));
        assert!(!same_name("path", "paths"));
        assert!(!same_name("objectName", "object_name"));
    }
}
