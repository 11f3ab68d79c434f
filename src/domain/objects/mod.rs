//! The `objects` YAML of a SecretProviderClass: parsed once into typed object specs,
//! with every rule of the class checked before anything is fetched. All errors are
//! collected so that `validate` and a failed mount can name every bad object at once.

use std::fmt;

pub use super::encoding::Encoding;
pub use super::non_string::NonString;
pub use super::object_kind::ObjectKind;
pub use acm::TURN_ON;
pub use selection::{Selection, SelectionSpec};

use super::mode::FileMode;
use super::naming::{FileName, PathTranslation};
use super::region::Region;
use super::text::bounded;
use raw::{deserialize, RawObject};
use rules::{Checked, ObjectChecker};
use unique::check_uniqueness;

mod acm;
mod modes;
mod raw;
mod rules;
mod selection;
mod unique;

/// What one store is asked for in one region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    /// Name or ARN, as written in the class.
    pub name: String,
    /// Secrets Manager VersionId, or SSM version number.
    pub version: Option<String>,
    /// Secrets Manager VersionStage, or SSM label.
    pub label: Option<String>,
}

/// One `jmesPath` entry: a value extracted from a JSON secret into its own file.
#[derive(Debug, Clone)]
pub struct JmesEntry {
    pub path: String,
    pub alias: String,
    pub expression: jmespath::Expression<'static>,
    pub file: FileName,
    pub mode: FileMode,
    /// How the extracted string is decoded before it is written.
    pub encoding: Encoding,
    /// What a number, boolean, object or list found by the path becomes.
    pub non_string: NonString,
}

/// A validated object of the class.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    /// 1-based position in the list, for messages.
    pub position: usize,
    pub primary: ObjectRef,
    /// What to ask of the failover region: the failoverObject, else the same object.
    pub failover: ObjectRef,
    /// objectAlias as written, when given.
    pub alias: Option<String>,
    pub file: FileName,
    pub mode: FileMode,
    pub jmes: Vec<JmesEntry>,
    /// How the whole value is decoded when fetched, before anything else sees it.
    pub encoding: Encoding,
    /// What non-string JSON values become, in expansion and (unless an entry says
    /// otherwise) in jmesPath files.
    pub non_string: NonString,
    /// `expandJson`: the value is a JSON object written as one file per top-level key,
    /// in the directory `file`, instead of one file.
    pub expand: bool,
}

impl ObjectSpec {
    /// How many copies of its value a mount may hold at once (see [`value_copies`]).
    pub fn copies(&self) -> usize {
        let bundle = self.primary.kind == ObjectKind::Acm && !self.expand;
        value_copies(self.encoding, self.jmes.len(), self.expand, bundle)
    }

    /// How messages name this object.
    pub fn describe(&self) -> String {
        format!(
            "object \"{}\" (#{})",
            bounded(&self.primary.name),
            self.position
        )
    }
}

/// How many copies of one fetched value a mount may hold at once: the value, a decoded
/// copy, one per jmesPath file, one for the expanded keys, one for a certificate's
/// bundle (its own file, made from its document). One rule for listed objects and a
/// selection's matches (which have none of these but decoding).
pub(crate) fn value_copies(
    encoding: Encoding,
    jmes_files: usize,
    expand: bool,
    bundle: bool,
) -> usize {
    1 + usize::from(encoding != Encoding::Utf8)
        + jmes_files
        + usize::from(expand)
        + usize::from(bundle)
}

/// The rule an object broke; each has its own unit test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    TooLarge,
    Syntax,
    NoObjects,
    EmptyEntry,
    ObjectNameRequired,
    InvalidArn,
    ArnRegionMismatch,
    ObjectTypeInvalid,
    ObjectTypeRequired,
    ObjectTypeArnMismatch,
    SsmVersionAndLabel,
    FileName,
    FilePermission,
    JmesPathIncomplete,
    JmesPathInvalid,
    FailoverAliasRequired,
    FailoverRegionRequired,
    FailoverNameRequired,
    FailoverVersionMismatch,
    DuplicateObject,
    DuplicateAlias,
    DuplicateFile,
    /// A key that names no field, refused only in strict mode.
    UnknownKey,
    /// One field given twice in one mapping (in any case).
    RepeatedKey,
    /// The primary's ARN decides the type, so the failoverObject must name an ARN too.
    FailoverArnRequired,
    /// objectEncoding is not utf-8, base64 or hex.
    ObjectEncoding,
    /// nonString is not `error` or `json`.
    NonString,
    /// expandJson is not a boolean.
    ExpandJson,
    /// A select is incomplete, or carries fields it cannot have.
    Select,
    /// An acm object is not named by a certificate ARN, or sets a field it cannot have.
    Certificate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectError {
    /// `object "name" (#n)`, or `objects` for errors of the whole list.
    pub object: String,
    pub rule: Rule,
    pub message: String,
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.message)
    }
}

/// A key of the YAML that names no field: ignored, as the existing provider does, and
/// reported so that typos show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    /// `object "name" (#n)`, or `object #n` when the entry has no name.
    pub object: String,
    /// Where in the entry: `objectAlias`-level keys have none, else `jmesPath entry 2`
    /// or `failoverObject`.
    pub within: Option<String>,
    /// The key as written.
    pub key: String,
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.object)?;
        if let Some(within) = &self.within {
            write!(f, "{within}: ")?;
        }
        write!(f, "unknown key `{}` ignored", self.key)
    }
}

/// A class that passed every rule.
#[derive(Debug, Clone)]
pub struct ParsedObjects {
    pub objects: Vec<ObjectSpec>,
    /// Entries that choose objects by path, prefix or tag.
    pub selections: Vec<SelectionSpec>,
    /// Unknown keys (none in strict mode: there they are errors).
    pub unknown_keys: Vec<UnknownKey>,
}

/// Every error found in one class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ClassErrors(pub Vec<ObjectError>);

impl fmt::Display for ClassErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::domain::text::write_joined(f, &self.0)
    }
}

impl ClassErrors {
    pub fn has(&self, rule: Rule) -> bool {
        self.0.iter().any(|e| e.rule == rule)
    }
}

/// Bounds on the untrusted YAML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    pub max_bytes: usize,
    /// Alias uses; each expansion also counts against `max_alias_events`.
    pub max_aliases: usize,
    pub max_alias_events: usize,
    /// Objects in one class.
    pub max_objects: usize,
    /// Length of one jmesPath expression.
    pub max_jmes_path_bytes: usize,
    /// jmesPath entries of one object, and of the whole class.
    pub max_jmes_entries_per_object: usize,
    pub max_jmes_entries_per_mount: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        // A class is a Kubernetes object (at most ~1.5 MiB); real ones are a few KiB.
        YamlLimits {
            max_bytes: 256 * 1024,
            max_aliases: 64,
            max_alias_events: 10_000,
            max_objects: 256,
            max_jmes_path_bytes: 1024,
            // Real classes extract a few keys per secret; each entry is compiled, then
            // evaluated and written as a file, so its count is bounded before any of it.
            max_jmes_entries_per_object: 256,
            max_jmes_entries_per_mount: 1024,
        }
    }
}

/// What validation needs to know besides the YAML.
#[derive(Debug, Clone)]
pub struct ClassContext<'a> {
    pub translation: PathTranslation,
    pub default_mode: FileMode,
    /// Known at mount time; `validate` may not know it, and then skips the ARN-region rule.
    pub primary_region: Option<&'a Region>,
    pub failover_region: Option<&'a Region>,
    pub limits: YamlLimits,
    /// Unknown keys are errors instead of warnings.
    pub strict: bool,
    /// `objectType: acm` is served; off, an acm object is refused naming the setting.
    pub certificates: bool,
}

/// Parses and validates the `objects` YAML.
pub fn parse_objects(yaml: &str, ctx: &ClassContext<'_>) -> Result<ParsedObjects, ClassErrors> {
    let whole = |rule, message: String| ClassErrors(vec![list_error(rule, message)]);
    if yaml.len() > ctx.limits.max_bytes {
        return Err(whole(
            Rule::TooLarge,
            format!(
                "objects YAML is {} bytes, more than the limit of {}",
                yaml.len(),
                ctx.limits.max_bytes
            ),
        ));
    }
    let raw = deserialize(yaml, &ctx.limits).map_err(|m| whole(Rule::Syntax, m))?;
    if raw.len() > ctx.limits.max_objects {
        return Err(whole(
            Rule::TooLarge,
            format!(
                "the class lists {} objects, more than the limit of {}",
                raw.len(),
                ctx.limits.max_objects
            ),
        ));
    }
    let per_object = |o: &RawObject| o.jmes_path.as_ref().map_or(0, Vec::len);
    let entries = raw
        .iter()
        .flatten()
        .map(per_object)
        .fold(0usize, usize::saturating_add);
    if entries > ctx.limits.max_jmes_entries_per_mount {
        // Named by the object with the most, which is where a user looks first.
        let most = raw
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.as_ref().map(|o| (i, o)))
            .max_by_key(|(_, o)| per_object(o))
            .map(|(i, o)| {
                format!(
                    "; object \"{}\" (#{}) has {}",
                    bounded(o.object_name.as_deref().unwrap_or("")),
                    i + 1,
                    per_object(o)
                )
            })
            .unwrap_or_default();
        return Err(whole(
            Rule::TooLarge,
            format!(
                "the class has {entries} jmesPath entries, more than max_jmes_entries_per_mount ({}){most}",
                ctx.limits.max_jmes_entries_per_mount
            ),
        ));
    }
    if raw.is_empty() {
        return Err(whole(
            Rule::NoObjects,
            "the class lists no objects".to_string(),
        ));
    }
    let mut errors = Vec::new();
    let mut unknown_keys = Vec::new();
    let mut specs = Vec::new();
    let mut selections = Vec::new();
    for (i, entry) in raw.into_iter().enumerate() {
        let position = i + 1;
        match entry {
            None => errors.push(ObjectError {
                object: format!("object #{position}"),
                rule: Rule::EmptyEntry,
                message: "the entry is empty".to_string(),
            }),
            Some(raw) => {
                let mut checker = ObjectChecker {
                    ctx,
                    position,
                    errors: &mut errors,
                    unknown_keys: &mut unknown_keys,
                };
                match checker.check(raw) {
                    Some(Checked::Object(spec)) => specs.push(spec),
                    Some(Checked::Selection(spec)) => selections.push(spec),
                    None => {}
                }
            }
        }
    }
    check_uniqueness(&specs, &mut errors);
    if errors.is_empty() {
        Ok(ParsedObjects {
            objects: specs,
            selections,
            unknown_keys,
        })
    } else {
        // A typo often is the cause: say which keys were ignored.
        errors.extend(unknown_keys.into_iter().map(|k| ObjectError {
            message: match &k.within {
                Some(within) => format!("{within}: unknown key `{}` ignored", k.key),
                None => format!("unknown key `{}` ignored", k.key),
            },
            object: k.object,
            rule: Rule::UnknownKey,
        }));
        Err(ClassErrors(errors))
    }
}

/// The ARN-region rule for a primary region learned after the class was checked (the
/// pod's node's): every other rule was checked then.
pub fn check_primary_region(objects: &[ObjectSpec], region: &Region) -> Result<(), ClassErrors> {
    let errors: Vec<ObjectError> = objects
        .iter()
        .filter_map(|o| {
            rules::arn_in_other_region(&o.primary.name, region, "region").map(|message| {
                ObjectError {
                    object: o.describe(),
                    rule: Rule::ArnRegionMismatch,
                    message,
                }
            })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ClassErrors(errors))
    }
}

fn list_error(rule: Rule, message: String) -> ObjectError {
    ObjectError {
        object: "objects".to_string(),
        rule,
        message,
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_certificate;
#[cfg(test)]
mod tests_values;
