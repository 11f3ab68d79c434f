//! The `objects` YAML of a SecretProviderClass: parsed once into typed object specs,
//! with every rule of the class checked before anything is fetched. All errors are
//! collected so that `validate` and a failed mount can name every bad object at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use super::arn::Arn;
use super::mode::FileMode;
use super::naming::{FileName, PathTranslation};
use super::region::Region;
use super::text::bounded;
use raw::{deserialize, Keys, RawFailover, RawJmes, RawObject};

mod raw;

/// Where an object lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    SecretsManager,
    SsmParameter,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::SecretsManager => "secretsmanager",
            ObjectKind::SsmParameter => "ssmparameter",
        })
    }
}

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
}

impl ObjectSpec {
    /// How messages name this object.
    pub fn describe(&self) -> String {
        format!(
            "object \"{}\" (#{})",
            bounded(&self.primary.name),
            self.position
        )
    }
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
    /// Unknown keys (none in strict mode: there they are errors).
    pub unknown_keys: Vec<UnknownKey>,
}

/// Every error found in one class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ClassErrors(pub Vec<ObjectError>);

impl fmt::Display for ClassErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
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
}

/// Most nesting characters in one expression: the JMESPath parser recurses on each, and
/// a deep one would overflow the stack of the whole process.
const MAX_JMES_NESTING: usize = 64;

fn jmes_path_too_complex(path: &str, max_bytes: usize) -> Option<String> {
    if path.len() > max_bytes {
        return Some(format!(
            "is {} bytes, more than the limit of {max_bytes}",
            path.len()
        ));
    }
    let nesting = path
        .chars()
        .filter(|c| matches!(c, '(' | '[' | '{' | '!' | '&' | '|'))
        .count();
    (nesting > MAX_JMES_NESTING).then(|| format!("nests more than {MAX_JMES_NESTING} levels"))
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
    if raw.is_empty() {
        return Err(whole(
            Rule::NoObjects,
            "the class lists no objects".to_string(),
        ));
    }
    let mut errors = Vec::new();
    let mut unknown_keys = Vec::new();
    let mut specs = Vec::new();
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
                if let Some(spec) = checker.check(raw) {
                    specs.push(spec);
                }
            }
        }
    }
    check_uniqueness(&specs, &mut errors);
    if errors.is_empty() {
        Ok(ParsedObjects {
            objects: specs,
            unknown_keys,
        })
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

struct ObjectChecker<'c, 'a> {
    ctx: &'c ClassContext<'a>,
    position: usize,
    errors: &'c mut Vec<ObjectError>,
    unknown_keys: &'c mut Vec<UnknownKey>,
}

impl ObjectChecker<'_, '_> {
    fn object(&self, name: &str) -> String {
        if name.is_empty() {
            format!("object #{}", self.position)
        } else {
            format!("object \"{}\" (#{})", bounded(name), self.position)
        }
    }

    fn fail(&mut self, name: &str, rule: Rule, message: impl Into<String>) {
        self.errors.push(ObjectError {
            object: self.object(name),
            rule,
            message: message.into(),
        });
    }

    /// Repeated keys are always refused (the existing provider silently keeps the last
    /// one); unknown ones are reported, and refused in strict mode.
    fn keys(&mut self, name: &str, within: Option<String>, keys: &Keys) {
        let quoted = |key: &String| bounded(key);
        let prefix = within
            .as_ref()
            .map(|w| format!("{w}: "))
            .unwrap_or_default();
        for key in &keys.repeated {
            self.fail(
                name,
                Rule::RepeatedKey,
                format!("{prefix}key `{}` repeats a field already given (field names match in any case)", quoted(key)),
            );
        }
        for key in &keys.unknown {
            if self.ctx.strict {
                self.fail(
                    name,
                    Rule::UnknownKey,
                    format!("{prefix}unknown key `{}` (strict mode)", quoted(key)),
                );
            } else {
                self.unknown_keys.push(UnknownKey {
                    object: self.object(name),
                    within: within.clone(),
                    key: quoted(key),
                });
            }
        }
    }

    fn check(&mut self, raw: RawObject) -> Option<ObjectSpec> {
        let before = self.errors.len();
        let name = match raw.object_name.as_deref() {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => {
                self.keys("", None, &raw.keys);
                self.fail("", Rule::ObjectNameRequired, "objectName is required");
                return None;
            }
        };
        self.keys(&name, None, &raw.keys);
        // The existing provider's rule: an ARN that decides the type needs an ARN that
        // decides it in the failover region too.
        let type_from_arn = raw.object_type.is_none() && Arn::looks_like_arn(&name);
        let kind = self.kind(&name, raw.object_type.as_deref());
        if let Some(kind) = kind {
            self.check_arn_region(&name, self.ctx.primary_region, "region");
            if kind == ObjectKind::SsmParameter
                && raw.object_version.is_some()
                && raw.object_version_label.is_some()
            {
                self.fail(
                    &name,
                    Rule::SsmVersionAndLabel,
                    "an SSM parameter may set objectVersion or objectVersionLabel, not both",
                );
            }
        }
        let mode = match raw.file_permission.as_deref() {
            None => self.ctx.default_mode,
            Some(text) => FileMode::parse_octal(text).unwrap_or_else(|e| {
                self.fail(&name, Rule::FilePermission, e.to_string());
                self.ctx.default_mode
            }),
        };
        let file_source = raw.object_alias.clone().unwrap_or_else(|| name.clone());
        let file = FileName::from_object_name(&file_source, self.ctx.translation)
            .map_err(|e| self.fail(&name, Rule::FileName, e.to_string()))
            .ok();
        let jmes = self.jmes(&name, raw.jmes_path.unwrap_or_default(), mode);
        let primary = ObjectRef {
            kind: kind.unwrap_or(ObjectKind::SecretsManager),
            name: name.clone(),
            version: raw.object_version,
            label: raw.object_version_label,
        };
        let failover = match raw.failover_object {
            None => Some(primary.clone()),
            Some(fo) => self.failover(&primary, raw.object_alias.is_some(), type_from_arn, fo),
        };
        if self.errors.len() > before {
            return None;
        }
        Some(ObjectSpec {
            position: self.position,
            primary,
            failover: failover?,
            alias: raw.object_alias,
            file: file?,
            mode,
            jmes: jmes?,
        })
    }

    /// objectType, or the ARN's service when objectType is absent; both must agree.
    fn kind(&mut self, name: &str, declared: Option<&str>) -> Option<ObjectKind> {
        let declared = match declared {
            None | Some("") => None,
            Some("secretsmanager") => Some(ObjectKind::SecretsManager),
            Some("ssmparameter") => Some(ObjectKind::SsmParameter),
            Some("ssm") => {
                self.fail(
                    name,
                    Rule::ObjectTypeInvalid,
                    "objectType `ssm` is not accepted: use `ssmparameter`",
                );
                return None;
            }
            Some(other) => {
                self.fail(
                    name,
                    Rule::ObjectTypeInvalid,
                    format!(
                        "objectType `{}` must be `secretsmanager` or `ssmparameter`",
                        bounded(other)
                    ),
                );
                return None;
            }
        };
        if !Arn::looks_like_arn(name) {
            if declared.is_none() {
                self.fail(
                    name,
                    Rule::ObjectTypeRequired,
                    "objectType is required unless objectName is an ARN",
                );
            }
            return declared;
        }
        let arn = match Arn::parse(name) {
            Ok(arn) => arn,
            Err(e) => {
                self.fail(name, Rule::InvalidArn, e.to_string());
                return None;
            }
        };
        let from_arn = match arn.service.as_str() {
            "secretsmanager" => ObjectKind::SecretsManager,
            "ssm" => ObjectKind::SsmParameter,
            other => {
                self.fail(
                    name,
                    Rule::ObjectTypeArnMismatch,
                    format!("the ARN's service `{other}` is neither secretsmanager nor ssm"),
                );
                return None;
            }
        };
        if let Some(declared) = declared {
            if declared != from_arn {
                self.fail(
                    name,
                    Rule::ObjectTypeArnMismatch,
                    format!(
                        "objectType `{declared}` does not match the ARN's service `{}`",
                        arn.service
                    ),
                );
                return None;
            }
        }
        Some(from_arn)
    }

    fn check_arn_region(&mut self, name: &str, region: Option<&Region>, which: &str) {
        let (Some(region), Ok(arn)) = (region, Arn::parse(name)) else {
            return;
        };
        if arn.region != region.as_str() {
            self.fail(
                name,
                Rule::ArnRegionMismatch,
                format!(
                    "the ARN's region `{}` is not the {which} `{region}`",
                    arn.region
                ),
            );
        }
    }

    fn jmes(
        &mut self,
        name: &str,
        raw: Vec<RawJmes>,
        parent_mode: FileMode,
    ) -> Option<Vec<JmesEntry>> {
        let before = self.errors.len();
        let mut entries = Vec::new();
        for (i, entry) in raw.into_iter().enumerate() {
            let n = i + 1;
            self.keys(name, Some(format!("jmesPath entry {n}")), &entry.keys);
            let (Some(path), Some(alias)) = (
                entry.path.filter(|p| !p.is_empty()),
                entry.object_alias.filter(|a| !a.is_empty()),
            ) else {
                self.fail(
                    name,
                    Rule::JmesPathIncomplete,
                    format!("jmesPath entry {n} needs both path and objectAlias"),
                );
                continue;
            };
            if let Some(reason) = jmes_path_too_complex(&path, self.ctx.limits.max_jmes_path_bytes)
            {
                self.fail(
                    name,
                    Rule::JmesPathInvalid,
                    format!("jmesPath entry {n} (alias `{}`) {reason}", bounded(&alias)),
                );
                continue;
            }
            let expression = match jmespath::compile(&path) {
                Ok(e) => Some(e),
                Err(e) => {
                    let reason = e.to_string();
                    let reason = reason.lines().next().unwrap_or("does not compile");
                    self.fail(name, Rule::JmesPathInvalid, format!("jmesPath entry {n} path `{}` (alias `{}`) is not a valid JMESPath expression: {reason}", bounded(&path), bounded(&alias)));
                    None
                }
            };
            let mode = match entry.file_permission.as_deref() {
                None => Some(parent_mode),
                Some(text) => FileMode::parse_octal(text)
                    .map_err(|e| {
                        self.fail(
                            name,
                            Rule::FilePermission,
                            format!("jmesPath entry {n}: {e}"),
                        )
                    })
                    .ok(),
            };
            let file = FileName::from_object_name(&alias, self.ctx.translation)
                .map_err(|e| self.fail(name, Rule::FileName, format!("jmesPath entry {n}: {e}")))
                .ok();
            if let (Some(expression), Some(mode), Some(file)) = (expression, mode, file) {
                entries.push(JmesEntry {
                    path,
                    alias,
                    expression,
                    file,
                    mode,
                });
            }
        }
        (self.errors.len() == before).then_some(entries)
    }

    fn failover(
        &mut self,
        primary: &ObjectRef,
        has_alias: bool,
        type_from_arn: bool,
        raw: RawFailover,
    ) -> Option<ObjectRef> {
        let name = primary.name.as_str();
        let before = self.errors.len();
        self.keys(name, Some("failoverObject".to_string()), &raw.keys);
        if !has_alias {
            self.fail(
                name,
                Rule::FailoverAliasRequired,
                "objectAlias is required when failoverObject is set",
            );
        }
        if self.ctx.failover_region.is_none() {
            self.fail(
                name,
                Rule::FailoverRegionRequired,
                "failoverObject is set but the class has no failoverRegion",
            );
        }
        if raw.object_version != primary.version {
            self.fail(
                name,
                Rule::FailoverVersionMismatch,
                "failoverObject.objectVersion must equal objectVersion",
            );
        }
        let fo_name = match raw.object_name.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => {
                self.fail(
                    name,
                    Rule::FailoverNameRequired,
                    "failoverObject.objectName is required",
                );
                return None;
            }
        };
        if primary.kind == ObjectKind::SsmParameter
            && raw.object_version.is_some()
            && raw.object_version_label.is_some()
        {
            self.fail(name, Rule::SsmVersionAndLabel, "failoverObject of an SSM parameter may set objectVersion or objectVersionLabel, not both");
        }
        if type_from_arn && !Arn::looks_like_arn(&fo_name) {
            self.fail(
                name,
                Rule::FailoverArnRequired,
                "failoverObject.objectName must be an ARN when objectName is an ARN without objectType (or set objectType)",
            );
        }
        if Arn::looks_like_arn(&fo_name) {
            match Arn::parse(&fo_name) {
                Err(e) => self.fail(name, Rule::InvalidArn, format!("failoverObject: {e}")),
                Ok(arn) => {
                    let service_ok = match primary.kind {
                        ObjectKind::SecretsManager => arn.service == "secretsmanager",
                        ObjectKind::SsmParameter => arn.service == "ssm",
                    };
                    if !service_ok {
                        self.fail(
                            name,
                            Rule::ObjectTypeArnMismatch,
                            format!(
                                "failoverObject ARN service `{}` does not match objectType `{}`",
                                arn.service, primary.kind
                            ),
                        );
                    }
                    self.check_arn_region(&fo_name, self.ctx.failover_region, "failoverRegion");
                }
            }
        }
        (self.errors.len() == before).then_some(ObjectRef {
            kind: primary.kind,
            name: fo_name,
            version: raw.object_version,
            label: raw.object_version_label,
        })
    }
}

/// Duplicate objects, aliases and files, across the whole list.
fn check_uniqueness(specs: &[ObjectSpec], errors: &mut Vec<ObjectError>) {
    let push = |errors: &mut Vec<ObjectError>, spec: &ObjectSpec, rule, message: String| {
        errors.push(ObjectError {
            object: spec.describe(),
            rule,
            message,
        });
    };
    // Same objectName conflicts when alias and label are both the same (absent counts as a value).
    let mut seen: HashMap<(&str, Option<&str>, Option<&str>), usize> = HashMap::new();
    let mut aliases: HashMap<&str, usize> = HashMap::new();
    let mut files: BTreeMap<&str, usize> = BTreeMap::new();
    for spec in specs {
        let alias = spec.alias.as_deref();
        let key = (
            spec.primary.name.as_str(),
            alias,
            spec.primary.label.as_deref(),
        );
        if let Some(first) = seen.insert(key, spec.position) {
            push(errors, spec, Rule::DuplicateObject, format!("conflicts with object #{first}: same objectName, objectAlias and objectVersionLabel"));
        }
        let jmes_aliases = spec.jmes.iter().map(|j| j.alias.as_str());
        for a in alias.into_iter().chain(jmes_aliases) {
            if let Some(first) = aliases.insert(a, spec.position) {
                push(
                    errors,
                    spec,
                    Rule::DuplicateAlias,
                    format!(
                        "objectAlias `{}` is already used by object #{first}",
                        bounded(a)
                    ),
                );
            }
        }
        for file in std::iter::once(&spec.file).chain(spec.jmes.iter().map(|j| &j.file)) {
            if let Some(first) = files.insert(file.as_str(), spec.position) {
                if seen_duplicate_reported(errors, spec) {
                    continue;
                }
                push(
                    errors,
                    spec,
                    Rule::DuplicateFile,
                    format!(
                        "file `{}` is also written by object #{first}",
                        bounded(file.as_str())
                    ),
                );
            }
        }
    }
    // With translation off, `a` and `a/b` cannot both exist: one would be a file and a directory.
    let names: HashSet<&str> = files.keys().copied().collect();
    for (file, position) in &files {
        let mut prefix = String::new();
        for element in file
            .split('/')
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .rev()
        {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(element);
            if names.contains(prefix.as_str()) {
                if let Some(spec) = specs.iter().find(|s| s.position == *position) {
                    push(errors, spec, Rule::DuplicateFile, format!("file `{}` needs `{}` to be a directory, but another object writes a file there", bounded(file), bounded(&prefix)));
                }
            }
        }
    }
}

fn seen_duplicate_reported(errors: &[ObjectError], spec: &ObjectSpec) -> bool {
    let me = spec.describe();
    errors
        .iter()
        .any(|e| e.object == me && matches!(e.rule, Rule::DuplicateObject | Rule::DuplicateAlias))
}

#[cfg(test)]
mod tests;
