//! The rules of one object entry (spec §4): name, type and ARN, versions, file name and
//! mode, jmesPath entries, failoverObject, keys. Every broken rule is recorded with its
//! object, so one pass reports them all.

use super::modes::Modes;
use super::raw::{Keys, RawFailover, RawJmes, RawObject};
use super::{
    ClassContext, Encoding, JmesEntry, NonString, ObjectError, ObjectKind, ObjectRef, ObjectSpec,
    Rule, SelectionSpec, UnknownKey,
};
use crate::domain::arn::Arn;
use crate::domain::attributes::parse_go_bool;
use crate::domain::mode::FileMode;
use crate::domain::naming::FileName;
use crate::domain::region::Region;
use crate::domain::text::bounded;

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

/// The ARN-region rule: an object named by ARN lives in the region the class reads it
/// from (`which` names that region's attribute). The message when it does not.
pub(super) fn arn_in_other_region(name: &str, region: &Region, which: &str) -> Option<String> {
    let arn = Arn::parse(name).ok()?;
    (arn.region != region.as_str()).then(|| {
        format!(
            "the ARN's region `{}` is not the {which} `{region}`",
            bounded(&arn.region)
        )
    })
}

/// One entry of the list, checked.
pub(super) enum Checked {
    Object(ObjectSpec),
    Selection(SelectionSpec),
}

pub(super) struct ObjectChecker<'c, 'a> {
    pub ctx: &'c ClassContext<'a>,
    pub position: usize,
    pub errors: &'c mut Vec<ObjectError>,
    pub unknown_keys: &'c mut Vec<UnknownKey>,
}

impl ObjectChecker<'_, '_> {
    fn object(&self, name: &str) -> String {
        if name.is_empty() {
            format!("object #{}", self.position)
        } else {
            format!("object \"{}\" (#{})", bounded(name), self.position)
        }
    }

    pub(super) fn fail(&mut self, name: &str, rule: Rule, message: impl Into<String>) {
        self.errors.push(ObjectError {
            object: self.object(name),
            rule,
            message: message.into(),
        });
    }

    /// Repeated keys are always refused (the existing provider silently keeps the last
    /// one); unknown ones are reported, and refused in strict mode.
    pub(super) fn keys(&mut self, name: &str, within: Option<String>, keys: &Keys) {
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

    pub fn check(&mut self, mut raw: RawObject) -> Option<Checked> {
        if let Some(select) = raw.select.take() {
            return self.selection(raw, select).map(Checked::Selection);
        }
        self.object_entry(raw).map(Checked::Object)
    }

    /// `objectEncoding`, for the entry `within` (None: the object itself).
    pub(super) fn encoding(
        &mut self,
        name: &str,
        within: Option<&str>,
        text: Option<&str>,
    ) -> Encoding {
        let Some(text) = text else {
            return Encoding::default();
        };
        Encoding::parse(text).unwrap_or_else(|e| {
            let message = match within {
                Some(w) => format!("{w}: {e}"),
                None => e.to_string(),
            };
            self.fail(name, Rule::ObjectEncoding, message);
            Encoding::default()
        })
    }

    fn non_string(
        &mut self,
        name: &str,
        within: Option<&str>,
        text: Option<&str>,
    ) -> Option<NonString> {
        let text = text?;
        match NonString::parse(text) {
            Some(n) => Some(n),
            None => {
                let message = match NonString::parse(&text.to_ascii_lowercase()) {
                    Some(_) => format!(
                        "nonString `{}`: values are case-sensitive, write `{}`",
                        bounded(text),
                        text.to_ascii_lowercase()
                    ),
                    None => format!("nonString `{}` must be `error` or `json`", bounded(text)),
                };
                let message = match within {
                    Some(w) => format!("{w}: {message}"),
                    None => message,
                };
                self.fail(name, Rule::NonString, message);
                None
            }
        }
    }

    fn object_entry(&mut self, raw: RawObject) -> Option<ObjectSpec> {
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
            if kind == ObjectKind::Acm {
                self.certificate_fields(&name, &raw);
            }
        }
        let explicit_mode = raw.file_permission.as_deref().and_then(|text| {
            FileMode::parse_octal(text)
                .map_err(|e| self.fail(&name, Rule::FilePermission, e.to_string()))
                .ok()
        });
        let modes = Modes {
            explicit: explicit_mode,
            class_default: self.ctx.default_mode,
            holds_key: kind == Some(ObjectKind::Acm),
        };
        let mode = modes.own_file();
        let file_source = raw.object_alias.clone().unwrap_or_else(|| name.clone());
        let file = FileName::from_object_name(&file_source, self.ctx.translation)
            .map_err(|e| self.fail(&name, Rule::FileName, e.to_string()))
            .ok();
        let encoding = self.encoding(&name, None, raw.object_encoding.as_deref());
        let non_string = self
            .non_string(&name, None, raw.non_string.as_deref())
            .unwrap_or_default();
        let expand = match raw.expand_json.as_deref() {
            None => false,
            Some(text) => parse_go_bool(text).unwrap_or_else(|| {
                self.fail(
                    &name,
                    Rule::ExpandJson,
                    format!(
                        "expandJson `{}` is not a boolean (true/false)",
                        bounded(text)
                    ),
                );
                false
            }),
        };
        let jmes = self.jmes(&name, raw.jmes_path.unwrap_or_default(), modes, non_string);
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
            encoding,
            non_string,
            expand,
        })
    }

    /// objectType, or the ARN's service when objectType is absent; both must agree.
    pub(super) fn kind(&mut self, name: &str, declared: Option<&str>) -> Option<ObjectKind> {
        let declared = match declared {
            None | Some("") => None,
            Some("secretsmanager") => Some(ObjectKind::SecretsManager),
            Some("ssmparameter") => Some(ObjectKind::SsmParameter),
            Some("acm") => Some(ObjectKind::Acm),
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
                        "objectType `{}` must be `secretsmanager`, `ssmparameter` or `acm`",
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
            "acm" => ObjectKind::Acm,
            other => {
                self.fail(
                    name,
                    Rule::ObjectTypeArnMismatch,
                    format!(
                        "the ARN's service `{}` is not secretsmanager, ssm or acm",
                        bounded(other)
                    ),
                );
                return None;
            }
        };
        if from_arn == ObjectKind::Acm && !self.certificate_resource(name, None, &arn) {
            return None;
        }
        if let Some(declared) = declared {
            if declared != from_arn {
                self.fail(
                    name,
                    Rule::ObjectTypeArnMismatch,
                    format!(
                        "objectType `{declared}` does not match the ARN's service `{}`",
                        bounded(&arn.service)
                    ),
                );
                return None;
            }
        }
        Some(from_arn)
    }

    fn check_arn_region(&mut self, name: &str, region: Option<&Region>, which: &str) {
        if let Some(message) = region.and_then(|r| arn_in_other_region(name, r, which)) {
            self.fail(name, Rule::ArnRegionMismatch, message);
        }
    }

    fn jmes(
        &mut self,
        name: &str,
        raw: Vec<RawJmes>,
        parent_modes: Modes,
        parent_non_string: NonString,
    ) -> Option<Vec<JmesEntry>> {
        let before = self.errors.len();
        let max = self.ctx.limits.max_jmes_entries_per_object;
        if raw.len() > max {
            self.fail(
                name,
                Rule::TooLarge,
                format!(
                    "{} jmesPath entries, more than max_jmes_entries_per_object ({max})",
                    raw.len()
                ),
            );
            return None;
        }
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
            let expression = match crate::domain::jmes::compile(&path) {
                Ok(e) => Some(e),
                Err(e) => {
                    let reason = e.to_string();
                    let reason = reason.lines().next().unwrap_or("does not compile");
                    self.fail(name, Rule::JmesPathInvalid, format!("jmesPath entry {n} path `{}` (alias `{}`) is not a valid JMESPath expression: {reason}", bounded(&path), bounded(&alias)));
                    None
                }
            };
            let mode = match entry.file_permission.as_deref() {
                None => Some(parent_modes.entry(&path)),
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
            let within = format!("jmesPath entry {n}");
            let encoding = self.encoding(name, Some(&within), entry.object_encoding.as_deref());
            let non_string = self
                .non_string(name, Some(&within), entry.non_string.as_deref())
                .unwrap_or(parent_non_string);
            if let (Some(expression), Some(mode), Some(file)) = (expression, mode, file) {
                entries.push(JmesEntry {
                    path,
                    alias,
                    expression,
                    file,
                    mode,
                    encoding,
                    non_string,
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
        if primary.kind == ObjectKind::Acm {
            self.certificate_failover(name, &fo_name, raw.object_version_label.as_deref());
        } else if type_from_arn && !Arn::looks_like_arn(&fo_name) {
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
                        ObjectKind::Acm => arn.service == "acm",
                    };
                    if !service_ok {
                        self.fail(
                            name,
                            Rule::ObjectTypeArnMismatch,
                            format!(
                                "failoverObject ARN service `{}` does not match objectType `{}`",
                                bounded(&arn.service),
                                primary.kind
                            ),
                        );
                    }
                    if primary.kind == ObjectKind::Acm {
                        self.certificate_resource(name, Some("failoverObject"), &arn);
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
