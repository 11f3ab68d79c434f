//! `validate`: checks SecretProviderClass files offline, every error with its object.

use std::path::Path;

use super::class_file::{parse_classes, ClassManifest};
use crate::domain::attributes::MountAttributes;
use crate::domain::class::{ClassError, ClassRules, ClassSpec};
use crate::domain::naming::PathTranslation;
use crate::domain::objects::{ObjectKind, TURN_ON};
use crate::domain::region::Region;

/// What checking some files found.
#[derive(Debug, Default)]
pub struct Report {
    pub classes: usize,
    pub errors: Vec<String>,
    /// Unknown keys (errors instead with `strict`).
    pub warnings: Vec<String>,
}

/// What one class's check found.
#[derive(Debug, Default)]
pub struct ClassReport {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn validate_files(files: &[impl AsRef<Path>], region: Option<&Region>, strict: bool) -> Report {
    let mut report = Report::default();
    for file in files {
        let file = file.as_ref();
        let shown = file.display();
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                report.errors.push(format!("{shown}: {e}"));
                continue;
            }
        };
        let classes = match parse_classes(&text) {
            Ok(c) => c,
            Err(e) => {
                report.errors.push(format!("{shown}: {e}"));
                continue;
            }
        };
        if classes.is_empty() {
            report
                .errors
                .push(format!("{shown}: no SecretProviderClass in the file"));
        }
        for class in classes {
            report.classes += 1;
            let found = validate_class(&class, region, strict);
            let at = |e: String| format!("{shown}: class {}: {e}", class.name);
            report.errors.extend(found.errors.into_iter().map(at));
            report.warnings.extend(found.warnings.into_iter().map(at));
        }
    }
    report
}

/// Every error and warning of one class.
pub fn validate_class(class: &ClassManifest, region: Option<&Region>, strict: bool) -> ClassReport {
    let failed = |error: String| ClassReport {
        errors: vec![error],
        warnings: Vec::new(),
    };
    if class.provider != "aws" {
        return failed(format!("spec.provider is `{}`, not `aws`", class.provider));
    }
    let mut report = ClassReport::default();
    let attributes = MountAttributes::from_map(&class.parameters);
    let spec = match &attributes {
        Ok(a) => Some(ClassSpec::of(a, region)),
        Err(errors) => {
            report
                .errors
                .extend(errors.0.iter().map(ToString::to_string));
            objects_despite_attributes(class, region)
        }
    };
    // The objects are checked even when some attributes are wrong, so that one run
    // lists every error of the class.
    let Some(spec) = spec else {
        return report;
    };
    // A class is checked for any node: certificates are allowed, and named, since a node
    // serves them only when its operator turned them on.
    let rules = ClassRules {
        strict,
        certificates: true,
        ..ClassRules::default()
    };
    match spec.check(&rules) {
        Ok(checked) => {
            report
                .warnings
                .extend(checked.parsed.unknown_keys.iter().map(ToString::to_string));
            report.warnings.extend(
                checked
                    .parsed
                    .objects
                    .iter()
                    .filter(|o| o.primary.kind == ObjectKind::Acm)
                    .map(|o| {
                        format!(
                            "{}: an ACM certificate, served only by nodes started with {TURN_ON}",
                            o.describe()
                        )
                    }),
            );
        }
        Err(ClassError::Objects(errors)) => report
            .errors
            .extend(errors.0.iter().map(ToString::to_string)),
        Err(e @ ClassError::SameRegions(_)) => report.errors.push(e.to_string()),
    }
    report
}

/// What the objects need of the attributes, from a class whose attributes have
/// errors: `None` when the path translation itself is wrong (file names would be
/// guessed). A region attribute that is wrong leaves the ARN-region rule unchecked.
fn objects_despite_attributes<'c>(
    class: &'c ClassManifest,
    region: Option<&Region>,
) -> Option<ClassSpec<'c>> {
    let get = |k: &str| {
        class
            .parameters
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let translation = PathTranslation::parse(get("pathTranslation")).ok()?;
    let primary = match get("region") {
        Some(text) => Region::parse(text).ok(),
        None => region.cloned(),
    };
    let failover = get("failoverRegion").and_then(|text| Region::parse(text).ok());
    Some(ClassSpec {
        objects: get("objects").unwrap_or_default(),
        translation,
        region: primary,
        failover_region: failover,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn class(params: &[(&str, &str)]) -> ClassManifest {
        ClassManifest {
            name: "c".into(),
            provider: "aws".into(),
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        }
    }

    #[test]
    fn a_good_class_has_no_errors() {
        assert!(validate_class(
            &class(&[("objects", "- {objectName: a, objectType: secretsmanager}")]),
            None,
            false
        )
        .errors
        .is_empty());
    }

    #[test]
    fn every_error_is_listed_with_its_object() {
        let errors = validate_class(
            &class(&[(
                "objects",
                "- {objectName: a, objectType: ssm}\n- {objectName: b}\n",
            )]),
            None,
            false,
        )
        .errors;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("\"a\"") && errors[1].contains("\"b\""));
    }

    #[test]
    fn arn_region_rule_applies_with_a_known_region() {
        let c = class(&[(
            "objects",
            "- objectName: arn:aws:secretsmanager:us-west-2:1:secret:x",
        )]);
        assert!(validate_class(&c, None, false).errors.is_empty());
        let east = Region::parse("us-east-1").unwrap();
        assert_eq!(validate_class(&c, Some(&east), false).errors.len(), 1);
    }

    #[test]
    fn other_providers_and_bad_attributes_are_reported() {
        let mut c = class(&[]);
        c.provider = "azure".into();
        assert!(validate_class(&c, None, false).errors[0].contains("azure"));
        assert!(validate_class(
            &class(&[
                ("pathTranslation", "ab"),
                ("objects", "- {objectName: a, objectType: secretsmanager}")
            ]),
            None,
            false
        )
        .errors[0]
            .contains("pathTranslation"));
        assert!(validate_class(
            &class(&[
                ("cacheTTL", "5 minutes"),
                ("objects", "- {objectName: a, objectType: secretsmanager}")
            ]),
            None,
            false
        )
        .errors[0]
            .contains("cacheTTL"));
    }

    #[test]
    fn every_bad_attribute_is_listed() {
        let errors = validate_class(
            &class(&[
                ("cacheTTL", "5 minutes"),
                ("usePodIdentity", "maybe"),
                ("objects", "- {objectName: a, objectType: secretsmanager}"),
            ]),
            None,
            false,
        )
        .errors;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("usePodIdentity") && errors[1].contains("cacheTTL"));
    }

    #[test]
    fn objects_are_checked_even_when_attributes_are_wrong() {
        let errors = validate_class(
            &class(&[
                ("cacheTTL", "5 minutes"),
                ("objects", "- {objectName: a, objectType: ssm}"),
            ]),
            None,
            false,
        )
        .errors;
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("cacheTTL") && errors[1].contains("ssmparameter"));
        // Not when file names depend on a translation that is wrong itself.
        let errors = validate_class(
            &class(&[
                ("pathTranslation", "ab"),
                ("objects", "- {objectName: a, objectType: ssm}"),
            ]),
            None,
            false,
        )
        .errors;
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn unknown_keys_are_warnings_and_errors_when_strict() {
        let c = class(&[(
            "objects",
            "- {objectName: a, objectType: secretsmanager, objectAlais: b}",
        )]);
        let lenient = validate_class(&c, None, false);
        assert!(lenient.errors.is_empty(), "{:?}", lenient.errors);
        assert_eq!(lenient.warnings.len(), 1);
        assert!(
            lenient.warnings[0].contains("\"a\"") && lenient.warnings[0].contains("objectAlais"),
            "{:?}",
            lenient.warnings
        );
        let strict = validate_class(&c, None, true);
        assert!(strict.warnings.is_empty());
        assert_eq!(strict.errors.len(), 1);
        assert!(
            strict.errors[0].contains("objectAlais"),
            "{:?}",
            strict.errors
        );
    }

    #[test]
    fn certificates_pass_with_a_warning_and_their_rules_still_hold() {
        let arn = "arn:aws:acm:us-east-1:123456789012:certificate/c";
        let c = class(&[(
            "objects",
            &format!("- {{objectName: \"{arn}\", objectAlias: tls}}"),
        )]);
        let report = validate_class(&c, None, false);
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.warnings.len(), 1);
        assert!(
            report.warnings[0].contains("--acm-certificates"),
            "{:?}",
            report.warnings
        );
        let c = class(&[(
            "objects",
            &format!("- {{objectName: \"{arn}\", objectAlias: tls, objectVersion: \"1\"}}"),
        )]);
        let errors = validate_class(&c, None, false).errors;
        assert!(
            errors
                .iter()
                .any(|e| e.contains("cannot set objectVersion")),
            "{errors:?}"
        );
    }
}
