//! The rules of `objectType: acm`: a certificate ARN, no version or encoding, and the
//! key's files 0400 unless the class says otherwise.

use super::*;

const CERT: &str =
    "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666";
const OTHER: &str =
    "arn:aws:acm:us-west-2:123456789012:certificate/9f8e7d6c-1111-2222-3333-444455556666";

fn parse_in(yaml: &str, failover: Option<&Region>) -> Result<Vec<ObjectSpec>, ClassErrors> {
    parse_with(yaml, failover, true)
}

/// `certificates`: whether the operator turned them on.
fn parse_with(
    yaml: &str,
    failover: Option<&Region>,
    certificates: bool,
) -> Result<Vec<ObjectSpec>, ClassErrors> {
    let east = Region::parse("us-east-1").unwrap();
    let ctx = ClassContext {
        translation: PathTranslation::default(),
        default_mode: FileMode::DEFAULT,
        primary_region: Some(&east),
        failover_region: failover,
        limits: YamlLimits::default(),
        strict: false,
        certificates,
    };
    parse_objects(yaml, &ctx).map(|parsed| parsed.objects)
}

fn parse(yaml: &str) -> Result<Vec<ObjectSpec>, ClassErrors> {
    parse_in(yaml, None)
}

fn refused(yaml: &str, rule: Rule, words: &str) {
    let errors = parse(yaml).expect_err("class accepted");
    assert!(errors.has(rule), "expected {rule:?}, got {errors}");
    assert!(errors.to_string().contains(words), "{errors}");
}

#[test]
fn a_certificate_arn_is_an_acm_object_with_or_without_object_type() {
    for yaml in [
        format!("- {{objectName: \"{CERT}\", objectAlias: tls}}\n"),
        format!("- {{objectName: \"{CERT}\", objectType: acm, objectAlias: tls}}\n"),
    ] {
        let specs = parse(&yaml).unwrap();
        assert_eq!(specs[0].primary.kind, ObjectKind::Acm, "{yaml}");
        assert_eq!(specs[0].primary.name, CERT);
    }
}

#[test]
fn an_acm_object_is_named_by_a_certificate_arn() {
    refused(
        "- {objectName: my-cert, objectType: acm}\n",
        Rule::Certificate,
        "named by its certificate ARN",
    );
    refused(
        "- {objectName: \"arn:aws:acm:us-east-1:123456789012:account\", objectType: acm}\n",
        Rule::Certificate,
        "is not a certificate",
    );
    refused(
        &format!("- {{objectName: \"{CERT}\", objectType: secretsmanager}}\n"),
        Rule::ObjectTypeArnMismatch,
        "does not match the ARN's service `acm`",
    );
    refused(
        "- {objectName: s, objectType: ACM}\n",
        Rule::ObjectTypeInvalid,
        "`secretsmanager`, `ssmparameter` or `acm`",
    );
}

#[test]
fn a_certificate_has_no_version_label_or_encoding() {
    for (field, words) in [
        ("objectVersion: \"1\"", "cannot set objectVersion"),
        (
            "objectVersionLabel: AWSCURRENT",
            "cannot set objectVersionLabel",
        ),
        ("objectEncoding: base64", "cannot set objectEncoding"),
    ] {
        refused(
            &format!("- {{objectName: \"{CERT}\", objectAlias: tls, {field}}}\n"),
            Rule::Certificate,
            words,
        );
    }
    assert!(parse(&format!(
        "- {{objectName: \"{CERT}\", objectAlias: tls, objectEncoding: utf-8}}\n"
    ))
    .is_ok());
}

#[test]
fn the_key_files_are_0400_unless_the_class_says_otherwise() {
    let yaml = format!(
        r#"
- objectName: "{CERT}"
  objectAlias: bundle.pem
  jmesPath:
    - {{path: certificate, objectAlias: tls.crt}}
    - {{path: certificateChain, objectAlias: ca.crt}}
    - {{path: privateKey, objectAlias: tls.key}}
    - {{path: privateKey, objectAlias: shared.key, filePermission: "0440"}}
"#
    );
    let spec = &parse(&yaml).unwrap()[0];
    assert_eq!(spec.mode, FileMode::KEY, "the bundle holds the key");
    let modes: Vec<(String, u32)> = spec
        .jmes
        .iter()
        .map(|e| (e.alias.clone(), e.mode.bits()))
        .collect();
    assert_eq!(
        modes,
        [
            ("tls.crt".to_string(), 0o644),
            ("ca.crt".to_string(), 0o644),
            ("tls.key".to_string(), 0o400),
            ("shared.key".to_string(), 0o440),
        ]
    );
    // The object's own filePermission is the class saying otherwise, for every file.
    let told = yaml.replace(
        "objectAlias: bundle.pem",
        "objectAlias: bundle.pem\n  filePermission: \"0640\"",
    );
    let spec = &parse(&told).unwrap()[0];
    assert_eq!(spec.mode.bits(), 0o640);
    assert_eq!(spec.jmes[2].mode.bits(), 0o640);
    // A secret's files keep the class's default.
    let secret = &parse("- {objectName: s, objectType: secretsmanager, jmesPath: [{path: privateKey, objectAlias: k}]}\n").unwrap()[0];
    assert_eq!(
        (secret.mode, secret.jmes[0].mode),
        (FileMode::DEFAULT, FileMode::DEFAULT)
    );
}

#[test]
fn a_certificate_fails_over_to_a_certificate_of_the_failover_region() {
    let west = Region::parse("us-west-2").unwrap();
    let yaml = format!(
        "- {{objectName: \"{CERT}\", objectAlias: tls, failoverObject: {{objectName: \"{OTHER}\"}}}}\n"
    );
    let spec = &parse_in(&yaml, Some(&west)).unwrap()[0];
    assert_eq!(
        (spec.failover.kind, spec.failover.name.as_str()),
        (ObjectKind::Acm, OTHER)
    );
    let secret = "arn:aws:secretsmanager:us-west-2:123456789012:secret:s-AbCdEf";
    let errors = parse_in(&yaml.replace(OTHER, secret), Some(&west)).unwrap_err();
    assert!(errors.has(Rule::ObjectTypeArnMismatch), "{errors}");
    let errors = parse_in(&yaml.replace(OTHER, "plain-name"), Some(&west)).unwrap_err();
    assert!(errors.has(Rule::Certificate), "{errors}");
    let account = "arn:aws:acm:us-west-2:123456789012:account";
    let errors = parse_in(&yaml.replace(OTHER, account), Some(&west)).unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("failoverObject: the ACM ARN's resource `account` is not a certificate"),
        "{errors}"
    );
    let labelled = yaml.replace("}}\n", ", objectVersionLabel: AWSCURRENT}}\n");
    let errors = parse_in(&labelled, Some(&west)).unwrap_err();
    assert!(
        errors.has(Rule::Certificate)
            && errors.to_string().contains("cannot set objectVersionLabel"),
        "{errors}"
    );
}

#[test]
fn certificates_are_refused_where_the_operator_has_not_turned_them_on() {
    let yaml = format!("- {{objectName: \"{CERT}\", objectAlias: tls}}\n");
    let errors = parse_with(&yaml, None, false).map(|_| ()).unwrap_err();
    assert!(errors.has(Rule::Certificate), "{errors}");
    assert!(
        errors.to_string().contains("--acm-certificates"),
        "{errors}"
    );
    let secret = "- {objectName: s, objectType: secretsmanager}\n";
    assert!(
        parse_with(secret, None, false).is_ok(),
        "secrets are not affected"
    );
}

#[test]
fn a_selection_cannot_choose_certificates() {
    refused(
        "- {objectType: acm, select: {namePrefix: x}}\n",
        Rule::Select,
        "list each acm certificate by its ARN",
    );
}

#[test]
fn a_certificate_counts_one_more_copy_for_its_bundle() {
    let spec = &parse(&format!("- {{objectName: \"{CERT}\", objectAlias: tls, jmesPath: [{{path: privateKey, objectAlias: k}}]}}\n")).unwrap()[0];
    assert_eq!(
        spec.copies(),
        3,
        "the document, the bundle, one jmesPath file"
    );
}
