//! `expandJson`: a secret holding a JSON object is written as one file per top-level
//! key, in a directory named as the object's file would be (its alias, or its name
//! after path translation), instead of one file. A directory rather than a prefix: it is
//! the layout of a Kubernetes Secret volume, which is what users of #46 ask for, and
//! since the object's own file is not written, the name is free for it.

use super::files::OutputFile;
use super::json_text::{as_string, compact, kind_of, members, JsonTextError};
use super::naming::{FileName, PathTranslation};
use super::non_string::NonString;
use super::objects::ObjectSpec;
use super::secret::SecretValue;
use super::text::bounded;

/// Longest name of one path element that Linux file systems accept.
const MAX_KEY_BYTES: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("expandJson needs a JSON object: {0}")]
    Json(JsonTextError),
    #[error("expandJson: key `{}` cannot be a file name: {reason}", bounded(key))]
    BadKey { key: String, reason: &'static str },
    #[error(
        "expandJson: key `{}` holds {kind}, not a string (nonString: json writes it as JSON)",
        bounded(key)
    )]
    NonString { key: String, kind: &'static str },
    #[error("expandJson: {keys} keys, more files than the mount has room for ({room})")]
    TooManyKeys { keys: usize, room: usize },
}

/// One file per top-level key, in the order of the secret. Strings are written as their
/// text; other values as compact JSON when the object allows it. More keys than `room`
/// (files the mount may still write) fail before any file is made.
pub fn expand(
    object: &ObjectSpec,
    value: &SecretValue,
    room: usize,
) -> Result<Vec<OutputFile>, ExpandError> {
    let text = std::str::from_utf8(value.expose())
        .map_err(|_| ExpandError::Json(JsonTextError::NotAnObject))?;
    let members = members(text).map_err(ExpandError::Json)?;
    if members.len() > room {
        return Err(ExpandError::TooManyKeys {
            keys: members.len(),
            room,
        });
    }
    let mut files = Vec::with_capacity(members.len());
    for (key, raw) in members {
        let bad = |reason| ExpandError::BadKey {
            key: key.clone(),
            reason,
        };
        let reason = match key.as_str() {
            "" => Some("it is empty"),
            "." | ".." => Some("it is . or .."),
            k if k.contains('/') => Some("it contains /"),
            k if k.contains('\0') => Some("it contains a NUL character"),
            k if k.len() > MAX_KEY_BYTES => Some("it is longer than 255 bytes"),
            _ => None,
        };
        if let Some(reason) = reason {
            return Err(bad(reason));
        }
        let path =
            FileName::from_object_name(&format!("{}/{key}", object.file), PathTranslation::Off)
                .map_err(|_| bad("the path it makes is not a valid file name"))?;
        let contents = match (as_string(raw), object.non_string) {
            (Some(s), _) => s,
            (None, NonString::Json) => compact(raw),
            (None, NonString::Refuse) => {
                return Err(ExpandError::NonString {
                    key,
                    kind: kind_of(raw),
                })
            }
        };
        files.push(OutputFile {
            path,
            mode: object.mode,
            contents: SecretValue::new(contents.into_bytes()),
        });
    }
    Ok(files)
}
