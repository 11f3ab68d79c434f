//! JMESPath extraction (spec §5): values of a JSON secret written to their own files.

use serde_json::value::RawValue;

use super::encoding::DecodeError;
use super::jmes::{search, EvalError, Meter};
use super::json_text::render_result;
use super::mode::FileMode;
use super::naming::FileName;
use super::non_string::NonString;
use super::objects::JmesEntry;
use super::secret::SecretValue;
use super::text::bounded;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("invalid JSON used with jmesPath")]
    InvalidJson,
    #[error(
        "jmesPath `{}` (alias `{}`) failed: {reason}",
        bounded(path),
        bounded(alias)
    )]
    Failed {
        path: String,
        alias: String,
        reason: String,
    },
    #[error(
        "jmesPath `{}` (alias `{}`) found nothing",
        bounded(path),
        bounded(alias)
    )]
    NotFound { path: String, alias: String },
    #[error(
        "jmesPath `{}` (alias `{}`) found {kind}, not a string",
        bounded(path),
        bounded(alias)
    )]
    NotString {
        path: String,
        alias: String,
        kind: &'static str,
    },
    #[error(
        "jmesPath `{}` (alias `{}`) stopped: {source}",
        bounded(path),
        bounded(alias)
    )]
    Budget {
        path: String,
        alias: String,
        #[source]
        source: super::jmes::BudgetError,
    },
    #[error(
        "jmesPath `{}` (alias `{}`) produced more than {max} bytes (max_secret_bytes)",
        bounded(path),
        bounded(alias)
    )]
    TooLarge {
        path: String,
        alias: String,
        max: usize,
    },
    #[error("jmesPath `{}` (alias `{}`): {source}", bounded(path), bounded(alias))]
    Decode {
        path: String,
        alias: String,
        #[source]
        source: DecodeError,
    },
}

/// One extracted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub file: FileName,
    pub mode: FileMode,
    pub value: SecretValue,
}

/// Bytes one parsed JSON value takes at most (the `Variable`, its shared counts, its
/// place in a list or map): measured ~85 for an array of small numbers.
const PARSED_NODE_BYTES: usize = 96;

/// A JSON secret parsed once, for its entries to be evaluated one at a time (so that
/// each extracted value is counted by the plan before the next one is made).
pub struct Document<'a> {
    raw: &'a RawValue,
    data: jmespath::Rcvar,
}

impl<'a> Document<'a> {
    /// An upper bound of what parsing `value` holds: its text, and a value of JMESPath's
    /// for every element, member and container (at most one per `,`, `:`, `[` or `{`
    /// plus one). A 62 KB array of small numbers is ~2.7 MB parsed.
    pub fn cost(value: &SecretValue) -> usize {
        let text = value.expose();
        let nodes = 1 + text
            .iter()
            .filter(|b| matches!(b, b',' | b':' | b'[' | b'{'))
            .count();
        text.len()
            .saturating_add(nodes.saturating_mul(PARSED_NODE_BYTES))
    }

    /// Parses the secret through serde_json (straight into JMESPath's values, with no
    /// intermediate tree): its errors carry a position, never the text.
    pub fn parse(value: &'a SecretValue) -> Result<Self, ExtractError> {
        let text = std::str::from_utf8(value.expose()).map_err(|_| ExtractError::InvalidJson)?;
        let raw: &RawValue = serde_json::from_str(text).map_err(|_| ExtractError::InvalidJson)?;
        let data: jmespath::Variable =
            serde_json::from_str(text).map_err(|_| ExtractError::InvalidJson)?;
        Ok(Document {
            raw,
            data: jmespath::Rcvar::new(data),
        })
    }

    /// One entry's file, charging `meter` (the mount's allowance); its value is at most
    /// `max_value_bytes`, refused before it is copied or rendered past that.
    pub fn extract(
        &self,
        entry: &JmesEntry,
        meter: &mut Meter,
        max_value_bytes: usize,
    ) -> Result<Extracted, ExtractError> {
        extract_one(entry, self.raw, &self.data, meter, max_value_bytes)
    }
}

/// Evaluates every entry against the secret (tools and tests; the plan goes entry by
/// entry through [`Document`]). Messages never include the secret.
pub fn extract(
    value: &SecretValue,
    entries: &[JmesEntry],
    meter: &mut Meter,
    max_value_bytes: usize,
) -> Result<Vec<Extracted>, ExtractError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let document = Document::parse(value)?;
    entries
        .iter()
        .map(|entry| document.extract(entry, meter, max_value_bytes))
        .collect()
}

fn extract_one(
    entry: &JmesEntry,
    document: &RawValue,
    data: &jmespath::Rcvar,
    meter: &mut Meter,
    max_value_bytes: usize,
) -> Result<Extracted, ExtractError> {
    let (path, alias) = (entry.path.clone(), entry.alias.clone());
    let found = match search(&entry.expression, data, meter) {
        Ok(found) => found,
        Err(EvalError::Budget(source)) => {
            return Err(ExtractError::Budget {
                path,
                alias,
                source,
            })
        }
        Err(EvalError::Invalid(reason)) => {
            return Err(ExtractError::Failed {
                path,
                alias,
                reason,
            })
        }
    };
    let text = match (&*found, entry.non_string) {
        (jmespath::Variable::String(s), _) if s.len() > max_value_bytes => {
            return Err(ExtractError::TooLarge {
                path,
                alias,
                max: max_value_bytes,
            })
        }
        (jmespath::Variable::String(s), _) => s.clone(),
        (jmespath::Variable::Null, _) => return Err(ExtractError::NotFound { path, alias }),
        (other, NonString::Json) if !matches!(other, jmespath::Variable::Expref(_)) => {
            render_result(document, data, &found, max_value_bytes).ok_or(
                ExtractError::TooLarge {
                    path: path.clone(),
                    alias: alias.clone(),
                    max: max_value_bytes,
                },
            )?
        }
        (other, _) => {
            return Err(ExtractError::NotString {
                path,
                alias,
                kind: kind_of(other),
            })
        }
    };
    let value = entry
        .encoding
        .decode(&SecretValue::new(text.into_bytes()))
        .map_err(|source| ExtractError::Decode {
            path,
            alias,
            source,
        })?;
    Ok(Extracted {
        file: entry.file.clone(),
        mode: entry.mode,
        value,
    })
}

fn kind_of(v: &jmespath::Variable) -> &'static str {
    match v {
        jmespath::Variable::Bool(_) => "a boolean",
        jmespath::Variable::Number(_) => "a number",
        jmespath::Variable::Array(_) => "a list",
        jmespath::Variable::Object(_) => "an object",
        jmespath::Variable::Expref(_) => "an expression",
        jmespath::Variable::String(_) | jmespath::Variable::Null => "a value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::naming::PathTranslation;

    fn entry(path: &str, alias: &str) -> JmesEntry {
        JmesEntry {
            path: path.to_string(),
            alias: alias.to_string(),
            expression: crate::domain::jmes::compile(path).unwrap(),
            file: FileName::from_object_name(alias, PathTranslation::default()).unwrap(),
            mode: FileMode::DEFAULT,
            encoding: crate::domain::encoding::Encoding::Utf8,
            non_string: NonString::Refuse,
        }
    }

    fn json_entry(path: &str, alias: &str) -> JmesEntry {
        JmesEntry {
            non_string: NonString::Json,
            ..entry(path, alias)
        }
    }

    fn extract_all(v: &SecretValue, entries: &[JmesEntry]) -> Result<Vec<Extracted>, ExtractError> {
        extract(v, entries, &mut Meter::uncancelled(), 65536)
    }

    fn secret(s: &str) -> SecretValue {
        SecretValue::new(s.as_bytes().to_vec())
    }

    #[test]
    fn extracts_plain_nested_indexed_and_hyphenated_keys() {
        let v = secret(
            r#"{"username":"u","a":{"b":{"c":"deep"}},"list":["first"],"hyphenated-key":"h"}"#,
        );
        let out = extract_all(
            &v,
            &[
                entry("username", "user"),
                entry("a.b.c", "deep"),
                entry("list[0]", "first"),
                entry(r#""hyphenated-key""#, "hy"),
            ],
        )
        .unwrap();
        let values: Vec<&[u8]> = out.iter().map(|e| e.value.expose()).collect();
        assert_eq!(values, vec![&b"u"[..], b"deep", b"first", b"h"]);
        assert_eq!(out[0].file.as_str(), "user");
    }

    #[test]
    fn invalid_json_fails_without_the_value() {
        let e = extract_all(&secret("hunter2 not json"), &[entry("a", "b")]).unwrap_err();
        assert_eq!(e, ExtractError::InvalidJson);
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn missing_key_fails_naming_path_and_alias() {
        let e = extract_all(&secret(r#"{"a":"x"}"#), &[entry("nope", "alias1")]).unwrap_err();
        assert!(matches!(e, ExtractError::NotFound { .. }));
        assert!(e.to_string().contains("nope") && e.to_string().contains("alias1"));
    }

    #[test]
    fn non_string_result_fails() {
        let e = extract_all(
            &secret(r#"{"n":5,"o":{"k":"secretvalue"}}"#),
            &[entry("o", "x")],
        )
        .unwrap_err();
        assert!(matches!(
            e,
            ExtractError::NotString {
                kind: "an object",
                ..
            }
        ));
        assert!(!e.to_string().contains("secretvalue"));
        let e = extract_all(&secret(r#"{"n":5}"#), &[entry("n", "x")]).unwrap_err();
        assert!(matches!(
            e,
            ExtractError::NotString {
                kind: "a number",
                ..
            }
        ));
    }

    #[test]
    fn non_strings_are_written_as_json_when_asked_exactly_as_written() {
        let v = secret(
            r#"{"port": 5432, "ratio": 1.50, "on": true, "cfg": {"z": [1, 2.0], "a": "x"}, "n": null}"#,
        );
        let out = extract_all(
            &v,
            &[
                json_entry("port", "p"),
                json_entry("ratio", "r"),
                json_entry("on", "o"),
                json_entry("cfg", "c"),
                json_entry("cfg.a", "a"),
            ],
        )
        .unwrap();
        let values: Vec<&[u8]> = out.iter().map(|e| e.value.expose()).collect();
        assert_eq!(
            values,
            vec![
                &b"5432"[..],
                b"1.50",
                b"true",
                br#"{"z":[1,2.0],"a":"x"}"#,
                b"x"
            ]
        );
        let e = extract_all(&v, &[json_entry("n", "nul")]).unwrap_err();
        assert!(
            matches!(e, ExtractError::NotFound { .. }),
            "null still fails"
        );
        let e = extract_all(&v, &[json_entry("missing", "m")]).unwrap_err();
        assert!(e.to_string().contains("missing") && e.to_string().contains("`m`"));
    }

    #[test]
    fn an_entry_decodes_the_string_it_extracted() {
        use crate::domain::encoding::{DecodeError, Encoding};
        let v = secret(r#"{"cert": "AAEC/w==", "bad": "%%%"}"#);
        let decoded = JmesEntry {
            encoding: Encoding::Base64,
            ..entry("cert", "c")
        };
        let out = extract_all(&v, &[decoded]).unwrap();
        assert_eq!(out[0].value.expose(), &[0, 1, 2, 255]);
        let bad = JmesEntry {
            encoding: Encoding::Base64,
            ..entry("bad", "b")
        };
        let e = extract_all(&v, &[bad]).unwrap_err();
        assert_eq!(
            e,
            ExtractError::Decode {
                path: "bad".into(),
                alias: "b".into(),
                source: DecodeError::Base64
            }
        );
        assert!(!e.to_string().contains("%%%"));
    }

    #[test]
    fn functions_work() {
        let out =
            extract_all(&secret(r#"{"l":["a","b"]}"#), &[entry("join(',', l)", "j")]).unwrap();
        assert_eq!(out[0].value.expose(), b"a,b");
    }

    #[test]
    fn no_entries_does_not_require_json() {
        assert!(extract_all(&secret("plain text"), &[]).unwrap().is_empty());
    }
}
