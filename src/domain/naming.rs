//! File names of mounted objects: alias or object name, with pathTranslation applied,
//! checked so that a name can never leave the target directory.

use super::text::bounded;
use std::fmt;

/// How `/` in an object name is treated (`pathTranslation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathTranslation {
    /// `"False"`: names keep their slashes and become sub-directories.
    Off,
    /// Every `/` becomes this character (default `_`).
    Replace(char),
}

impl Default for PathTranslation {
    fn default() -> Self {
        PathTranslation::Replace('_')
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslationError {
    #[error("pathTranslation `{}` must be \"False\" or exactly one character", bounded(&.0))]
    Invalid(String),
}

impl PathTranslation {
    /// Absent or empty means `_`; "False" in any case turns translation off.
    pub fn parse(text: Option<&str>) -> Result<PathTranslation, TranslationError> {
        let text = match text {
            None | Some("") => return Ok(PathTranslation::default()),
            Some(text) => text,
        };
        if text.eq_ignore_ascii_case("false") {
            return Ok(PathTranslation::Off);
        }
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c != '\0' => Ok(PathTranslation::Replace(c)),
            _ => Err(TranslationError::Invalid(text.to_string())),
        }
    }
}

/// Longest name of one path element that Linux file systems accept.
const MAX_ELEMENT_BYTES: usize = 255;

/// A relative file path inside the target directory: no `..` element, no empty or `.`
/// element, no leading `/`, no NUL, and not starting with `..` (reserved for the atomic
/// writer's own entries such as `..data`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileNameError {
    #[error("file name `{}` contains a `..` path element", bounded(&.0))]
    ParentElement(String),
    #[error("file name `{}` is empty after path translation", bounded(&.0))]
    Empty(String),
    #[error("file name `{}` starts with `..`, which is reserved for the writer's own entries", bounded(&.0))]
    Reserved(String),
    #[error("file name `{}` contains a NUL character", bounded(&.0))]
    Nul(String),
    #[error("file name `{}` has a path element longer than 255 bytes", bounded(&.0))]
    TooLong(String),
}

impl FileName {
    /// Applies the translation to `raw` (an alias or object name) and checks the result.
    pub fn from_object_name(
        raw: &str,
        translation: PathTranslation,
    ) -> Result<Self, FileNameError> {
        let translated = match translation {
            PathTranslation::Replace(c) => raw.replace('/', &c.to_string()),
            PathTranslation::Off => raw.trim_start_matches('/').to_string(),
        };
        if translated.contains('\0') {
            return Err(FileNameError::Nul(raw.to_string()));
        }
        let mut elements = Vec::new();
        for element in translated.split('/') {
            match element {
                ".." => return Err(FileNameError::ParentElement(raw.to_string())),
                "" | "." => continue,
                e if e.len() > MAX_ELEMENT_BYTES => {
                    return Err(FileNameError::TooLong(raw.to_string()))
                }
                e => elements.push(e),
            }
        }
        if elements.is_empty() {
            return Err(FileNameError::Empty(raw.to_string()));
        }
        if elements[0].starts_with("..") {
            return Err(FileNameError::Reserved(raw.to_string()));
        }
        Ok(FileName(elements.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path elements, first to last.
    pub fn elements(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The first element: the entry this file adds at the top of the target directory.
    pub fn top_level(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str, t: PathTranslation) -> Result<String, FileNameError> {
        FileName::from_object_name(raw, t).map(|n| n.as_str().to_string())
    }

    #[test]
    fn path_translation_defaults_to_underscore() {
        assert_eq!(
            PathTranslation::parse(None).unwrap(),
            PathTranslation::Replace('_')
        );
        assert_eq!(
            PathTranslation::parse(Some("")).unwrap(),
            PathTranslation::Replace('_')
        );
    }

    #[test]
    fn path_translation_false_in_any_case_turns_it_off() {
        for text in ["False", "false", "FALSE", "fAlSe"] {
            assert_eq!(
                PathTranslation::parse(Some(text)).unwrap(),
                PathTranslation::Off
            );
        }
    }

    #[test]
    fn path_translation_must_be_false_or_one_character() {
        assert_eq!(
            PathTranslation::parse(Some("-")).unwrap(),
            PathTranslation::Replace('-')
        );
        assert_eq!(
            PathTranslation::parse(Some("é")).unwrap(),
            PathTranslation::Replace('é')
        );
        assert!(PathTranslation::parse(Some("--")).is_err());
        assert!(PathTranslation::parse(Some("no")).is_err());
    }

    #[test]
    fn translation_replaces_every_slash() {
        let t = PathTranslation::Replace('_');
        assert_eq!(name("My/Path/Secret", t).unwrap(), "My_Path_Secret");
        assert_eq!(name("/app/db", t).unwrap(), "_app_db");
    }

    #[test]
    fn without_translation_leading_slashes_go_and_inner_ones_make_directories() {
        assert_eq!(
            name("//app/db/pass", PathTranslation::Off).unwrap(),
            "app/db/pass"
        );
    }

    #[test]
    fn file_name_may_not_contain_a_parent_element() {
        for raw in ["../x", "a/../b", "a/..", ".."] {
            assert!(
                matches!(
                    name(raw, PathTranslation::Off),
                    Err(FileNameError::ParentElement(_))
                ),
                "{raw}"
            );
        }
        // Translated, `../x` becomes `.._x`: one element, but reserved.
        assert!(name("../x", PathTranslation::Replace('_')).is_err());
        assert!(matches!(
            name("..", PathTranslation::Replace('_')),
            Err(FileNameError::ParentElement(_))
        ));
    }

    #[test]
    fn names_starting_with_two_dots_are_reserved() {
        assert!(matches!(
            name("..data", PathTranslation::Off),
            Err(FileNameError::Reserved(_))
        ));
        assert_eq!(name("a/..b", PathTranslation::Off).unwrap(), "a/..b");
    }

    #[test]
    fn empty_nul_and_overlong_names_are_refused() {
        assert!(matches!(
            name("/", PathTranslation::Off),
            Err(FileNameError::Empty(_))
        ));
        assert!(matches!(
            name("a\0b", PathTranslation::Off),
            Err(FileNameError::Nul(_))
        ));
        let long = "x".repeat(256);
        assert!(matches!(
            name(&long, PathTranslation::Off),
            Err(FileNameError::TooLong(_))
        ));
    }

    #[test]
    fn top_level_is_the_first_element() {
        let n = FileName::from_object_name("a/b/c", PathTranslation::Off).unwrap();
        assert_eq!(n.top_level(), "a");
        assert_eq!(n.elements().count(), 3);
    }
}
