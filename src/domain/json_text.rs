//! JSON values written as files: a string as its text, anything else as compact JSON
//! with its numbers and key order exactly as the secret has them (no float round trip,
//! no sorting). JMESPath evaluates on its own types, so a non-string result is written
//! from the part of the secret it came from; only a result JMESPath built itself (a
//! multiselect, a projection, a function's answer) has no such part, and is written
//! from its own value (object keys sorted).

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// One top-level member of a JSON object: its key and its value as written.
pub type Member<'a> = (String, &'a RawValue);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonTextError {
    #[error("the value is not a JSON object")]
    NotAnObject,
    #[error("the JSON object has the key `{}` twice", crate::domain::text::bounded(.0))]
    RepeatedKey(String),
}

/// The members of a JSON object in the order written, refusing a key given twice (two
/// files of one name would otherwise be decided by which came last).
pub fn members(text: &str) -> Result<Vec<Member<'_>>, JsonTextError> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Result<Vec<(String, &'de RawValue)>, JsonTextError>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out: Vec<(String, &'de RawValue)> = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                let value: &'de RawValue = map.next_value()?;
                if out.iter().any(|(k, _)| *k == key) {
                    return Ok(Err(JsonTextError::RepeatedKey(key)));
                }
                out.push((key, value));
            }
            Ok(Ok(out))
        }
    }
    struct Object<'a>(Result<Vec<Member<'a>>, JsonTextError>);
    impl<'de> Deserialize<'de> for Object<'de> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(Members).map(Object)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let object =
        Object::deserialize(&mut de).map_err(|_: serde_json::Error| JsonTextError::NotAnObject)?;
    de.end().map_err(|_| JsonTextError::NotAnObject)?;
    object.0
}

fn elements(text: &str) -> Option<Vec<&RawValue>> {
    serde_json::from_str(text).ok()
}

/// `raw` without the whitespace between tokens. `raw` is valid JSON (a `RawValue`), so
/// only strings need care: whitespace inside them, and escaped quotes, are kept.
pub fn compact(raw: &RawValue) -> String {
    let text = raw.get();
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// A string value's text, or `None` when `raw` is not a JSON string.
pub fn as_string(raw: &RawValue) -> Option<String> {
    if raw.get().starts_with('"') {
        serde_json::from_str(raw.get()).ok()
    } else {
        None
    }
}

/// What a JSON value is, for messages.
pub fn kind_of(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

/// The compact JSON text of a JMESPath result: when the result is a part of the secret
/// (the very value the parsed `data` holds there, not a copy), that part as the secret
/// writes it; else the result's own rendering. `None` when the text would be longer
/// than `max_bytes` (a result JMESPath built from shared parts can be far larger than
/// the secret: it is never written out past the bound).
pub fn render_result(
    document: &RawValue,
    data: &jmespath::Rcvar,
    result: &jmespath::Rcvar,
    max_bytes: usize,
) -> Option<String> {
    match locate(document, data, result, 0) {
        Some(part) => Some(compact(part)).filter(|text| text.len() <= max_bytes),
        None => to_json_bounded(result, max_bytes),
    }
}

/// `value` as compact JSON, or `None` as soon as the text passes `max_bytes`: the writer
/// stops there, so a value that would serialize to gigabytes is never built.
pub fn to_json_bounded(value: &jmespath::Variable, max_bytes: usize) -> Option<String> {
    struct Bounded {
        out: Vec<u8>,
        max: usize,
    }
    impl std::io::Write for Bounded {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.out.len().saturating_add(buf.len()) > self.max {
                return Err(std::io::Error::other("too large"));
            }
            self.out.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut writer = Bounded {
        out: Vec::new(),
        max: max_bytes,
    };
    serde_json::to_writer(&mut writer, value).ok()?;
    String::from_utf8(writer.out).ok()
}

/// Deep enough for any secret (serde_json itself stops at 128 levels).
const MAX_DEPTH: usize = 128;

/// Where `wanted` sits in the document: the document and its parsed form walked
/// together, comparing identity, not contents. Nothing is parsed again or copied (an
/// earlier version parsed every part to compare it, which for a deeply nested secret
/// held depth × size in memory); each level splits its text once, so the walk costs at
/// most depth × size of scanning.
fn locate<'a>(
    raw: &'a RawValue,
    node: &jmespath::Rcvar,
    wanted: &jmespath::Rcvar,
    depth: usize,
) -> Option<&'a RawValue> {
    if jmespath::Rcvar::ptr_eq(node, wanted) {
        return Some(raw);
    }
    if depth > MAX_DEPTH {
        return None;
    }
    match &**node {
        jmespath::Variable::Array(items) => elements(raw.get())?
            .into_iter()
            .zip(items)
            .find_map(|(r, n)| locate(r, n, wanted, depth + 1)),
        jmespath::Variable::Object(map) => members(raw.get())
            .ok()?
            .into_iter()
            .find_map(|(key, r)| map.get(&key).and_then(|n| locate(r, n, wanted, depth + 1))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_string()).unwrap()
    }

    #[test]
    fn members_keep_their_order_and_their_text() {
        let text = r#"{"z": 1.10, "a": {"n": 1e3, "s": "x y"}, "b": [1, 2]}"#;
        let m = members(text).unwrap();
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["z", "a", "b"]);
        assert_eq!(compact(m[0].1), "1.10");
        assert_eq!(compact(m[1].1), r#"{"n":1e3,"s":"x y"}"#);
        assert_eq!(compact(m[2].1), "[1,2]");
    }

    #[test]
    fn a_repeated_key_or_a_non_object_is_refused() {
        assert_eq!(
            members(r#"{"a": 1, "a": 2}"#).unwrap_err(),
            JsonTextError::RepeatedKey("a".into())
        );
        assert_eq!(members("[1]").unwrap_err(), JsonTextError::NotAnObject);
        assert_eq!(
            members(r#"{"a": 1} trailing"#).unwrap_err(),
            JsonTextError::NotAnObject
        );
    }

    #[test]
    fn compact_keeps_whitespace_and_escapes_inside_strings() {
        let r = raw("{ \"a b\" : \"q\\\" \\\\ \" ,\n \"c\":\t[ 1 , 2 ] }");
        assert_eq!(compact(&r), r#"{"a b":"q\" \\ ","c":[1,2]}"#);
    }

    fn search(doc: &RawValue, path: &str) -> (jmespath::Rcvar, jmespath::Rcvar) {
        let data = jmespath::Rcvar::new(jmespath::Variable::from_json(doc.get()).unwrap());
        let expression = crate::domain::jmes::compile(path).unwrap();
        let mut meter = crate::domain::jmes::Meter::uncancelled();
        let found = crate::domain::jmes::search(&expression, &data, &mut meter).unwrap();
        (data, found)
    }

    #[test]
    fn a_result_that_is_part_of_the_secret_is_written_as_the_secret_has_it() {
        let doc = raw(
            r#"{"port": 5432.0, "cfg": {"z": 1, "a": [1.50, true]}, "n": 12345678901234567890}"#,
        );
        let render = |path: &str| {
            let (data, found) = search(&doc, path);
            render_result(&doc, &data, &found, 1024).unwrap()
        };
        assert_eq!(render("port"), "5432.0");
        assert_eq!(render("cfg"), r#"{"z":1,"a":[1.50,true]}"#);
        assert_eq!(render("cfg.a"), "[1.50,true]");
        assert_eq!(render("cfg.a[1]"), "true");
        assert_eq!(render("n"), "12345678901234567890");
    }

    #[test]
    fn a_result_jmespath_built_is_written_from_its_own_value() {
        let doc = raw(r#"{"b": 2, "a": 1}"#);
        let (data, result) = search(&doc, "{y: b, x: a}");
        assert_eq!(
            render_result(&doc, &data, &result, 1024).unwrap(),
            r#"{"x":1,"y":2}"#
        );
        assert_eq!(
            render_result(&doc, &data, &result, 8),
            None,
            "longer than the bound"
        );
    }

    #[test]
    fn a_deeply_nested_secret_is_walked_without_copies() {
        // 120 levels around 20,000 numbers: parsing every part again held ~340 MiB.
        let text = format!(
            "{}{}0{}",
            "[".repeat(120),
            "0,".repeat(20_000),
            "]".repeat(120)
        );
        let doc = raw(&text);
        let (data, found) = search(&doc, "length(@)");
        assert_eq!(render_result(&doc, &data, &found, 1024).unwrap(), "1");
    }

    #[test]
    fn strings_and_kinds() {
        assert_eq!(as_string(&raw(r#""a\nb""#)).as_deref(), Some("a\nb"));
        assert_eq!(as_string(&raw("1")), None);
        assert_eq!(kind_of(&raw("[]")), "an array");
        assert_eq!(kind_of(&raw("-1")), "a number");
        assert_eq!(kind_of(&raw("false")), "a boolean");
    }
}
