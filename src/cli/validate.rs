//! `validate`: checks SecretProviderClass files offline, every error with its object.

use std::path::Path;

use super::class_file::{parse_classes, ClassManifest};
use crate::domain::attributes::MountAttributes;
use crate::domain::mode::FileMode;
use crate::domain::objects::{parse_objects, ClassContext, YamlLimits};
use crate::domain::region::Region;

/// What checking some files found.
#[derive(Debug, Default)]
pub struct Report {
    pub classes: usize,
    pub errors: Vec<String>,
}

pub fn validate_files(files: &[impl AsRef<Path>], region: Option<&Region>) -> Report {
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
            for e in validate_class(&class, region) {
                report
                    .errors
                    .push(format!("{shown}: class {}: {e}", class.name));
            }
        }
    }
    report
}

/// Every error of one class.
pub fn validate_class(class: &ClassManifest, region: Option<&Region>) -> Vec<String> {
    if class.provider != "aws" {
        return vec![format!("spec.provider is `{}`, not `aws`", class.provider)];
    }
    let attributes = match MountAttributes::from_map(&class.parameters) {
        Ok(a) => a,
        Err(e) => return vec![e.to_string()],
    };
    let primary = attributes.region.as_ref().or(region);
    if attributes.failover_region.is_some() && attributes.failover_region.as_ref() == primary {
        return vec![format!(
            "failoverRegion `{}` must differ from the primary region",
            primary.map(Region::as_str).unwrap_or_default()
        )];
    }
    let ctx = ClassContext {
        translation: attributes.translation,
        default_mode: FileMode::DEFAULT,
        primary_region: primary,
        failover_region: attributes.failover_region.as_ref(),
        limits: YamlLimits::default(),
    };
    match parse_objects(&attributes.objects, &ctx) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
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
            None
        )
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
        );
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("\"a\"") && errors[1].contains("\"b\""));
    }

    #[test]
    fn arn_region_rule_applies_with_a_known_region() {
        let c = class(&[(
            "objects",
            "- objectName: arn:aws:secretsmanager:us-west-2:1:secret:x",
        )]);
        assert!(validate_class(&c, None).is_empty());
        let east = Region::parse("us-east-1").unwrap();
        assert_eq!(validate_class(&c, Some(&east)).len(), 1);
    }

    #[test]
    fn other_providers_and_bad_attributes_are_reported() {
        let mut c = class(&[]);
        c.provider = "azure".into();
        assert!(validate_class(&c, None)[0].contains("azure"));
        assert!(validate_class(
            &class(&[
                ("pathTranslation", "ab"),
                ("objects", "- {objectName: a, objectType: secretsmanager}")
            ]),
            None
        )[0]
        .contains("pathTranslation"));
    }
}
