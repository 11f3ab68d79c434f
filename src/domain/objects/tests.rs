//! One test per rule of the `objects` YAML (spec §4), named for the rule.

use super::*;

fn region(r: &str) -> Region {
    Region::parse(r).unwrap()
}

fn parse_with(
    yaml: &str,
    primary: Option<&Region>,
    failover: Option<&Region>,
) -> Result<Vec<ObjectSpec>, ClassErrors> {
    let ctx = ClassContext {
        translation: PathTranslation::default(),
        default_mode: FileMode::DEFAULT,
        primary_region: primary,
        failover_region: failover,
        limits: YamlLimits::default(),
        strict: false,
        certificates: false,
    };
    parse_objects(yaml, &ctx).map(|parsed| parsed.objects)
}

fn parse(yaml: &str) -> Result<Vec<ObjectSpec>, ClassErrors> {
    let east = region("us-east-1");
    parse_with(yaml, Some(&east), None)
}

fn fails_with(yaml: &str, rule: Rule) -> ClassErrors {
    let errors = parse(yaml).expect_err("class accepted");
    assert!(errors.has(rule), "expected {rule:?}, got {errors}");
    errors
}

#[test]
fn accepts_a_full_class() {
    let yaml = r#"
- objectName: "MySecret"
  objectType: "secretsmanager"
  filePermission: "0600"
  jmesPath:
    - path: username
      objectAlias: user
    - path: '"hyphenated-key"'
      objectAlias: hyphen
      filePermission: "0400"
- objectName: /app/db/host
  objectType: ssmparameter
  objectVersion: 3
- objectName: arn:aws:secretsmanager:us-east-1:123456789012:secret:Other-AbCdEf
  objectAlias: other
  objectVersionLabel: AWSPREVIOUS
"#;
    let specs = parse(yaml).unwrap();
    assert_eq!(specs.len(), 3);
    assert_eq!(specs[0].mode.bits(), 0o600);
    assert_eq!(
        specs[0].jmes[0].mode.bits(),
        0o600,
        "jmesPath inherits the object's mode"
    );
    assert_eq!(specs[0].jmes[1].mode.bits(), 0o400);
    assert_eq!(specs[1].file.as_str(), "_app_db_host");
    assert_eq!(specs[1].primary.version.as_deref(), Some("3"));
    assert_eq!(specs[1].mode, FileMode::DEFAULT);
    assert_eq!(specs[2].primary.kind, ObjectKind::SecretsManager);
    assert_eq!(specs[2].file.as_str(), "other");
    assert_eq!(
        specs[2].failover, specs[2].primary,
        "no failoverObject: same object in both regions"
    );
}

#[test]
fn unquoted_octal_file_permission_keeps_its_digits() {
    let specs =
        parse("- objectName: a\n  objectType: secretsmanager\n  filePermission: 0640\n").unwrap();
    assert_eq!(specs[0].mode.bits(), 0o640);
}

#[test]
fn too_large() {
    let ctx = ClassContext {
        translation: PathTranslation::default(),
        default_mode: FileMode::DEFAULT,
        primary_region: None,
        failover_region: None,
        limits: YamlLimits {
            max_bytes: 10,
            ..YamlLimits::default()
        },
        strict: false,
        certificates: false,
    };
    let errors = parse_objects("- objectName: abcdefghij\n", &ctx).unwrap_err();
    assert!(errors.has(Rule::TooLarge));
}

#[test]
fn alias_bomb_is_refused() {
    let mut yaml = String::from("- objectName: x\n  objectType: secretsmanager\n  jmesPath:\n");
    yaml.push_str("    - &a {path: p, objectAlias: q}\n");
    for _ in 0..200 {
        yaml.push_str("    - *a\n");
    }
    let errors = fails_with(&yaml, Rule::Syntax);
    assert!(errors.to_string().contains("alias"), "{errors}");
}

#[test]
fn syntax_is_an_error_with_the_parsers_message() {
    let errors = fails_with("objectName: a", Rule::Syntax);
    assert!(
        errors.to_string().contains("objects is not a valid list"),
        "{errors}"
    );
    fails_with("- [unclosed", Rule::Syntax);
    fails_with(
        "- objectName: [a, b]\n  objectType: secretsmanager\n",
        Rule::Syntax,
    );
}

fn parse_full(yaml: &str, strict: bool) -> Result<ParsedObjects, ClassErrors> {
    let (east, west) = (region("us-east-1"), region("us-west-2"));
    let ctx = ClassContext {
        translation: PathTranslation::default(),
        default_mode: FileMode::DEFAULT,
        primary_region: Some(&east),
        failover_region: Some(&west),
        limits: YamlLimits::default(),
        strict,
        certificates: false,
    };
    parse_objects(yaml, &ctx)
}

#[test]
fn field_names_match_in_any_case_at_every_level() {
    // The existing provider's own integration-test class writes `Path:` and `ObjectAlias:`.
    let yaml = r#"
- ObjectName: MySecret
  OBJECTTYPE: secretsmanager
  objectalias: mine
  FilePermission: "0600"
  objectVersionLABEL: AWSCURRENT
  JmesPath:
    - Path: username
      ObjectAlias: user
      FILEPERMISSION: "0400"
  FailoverObject:
    OBJECTNAME: OtherSecret
    objectversionlabel: AWSPREVIOUS
"#;
    let parsed = parse_full(yaml, true).unwrap();
    let spec = &parsed.objects[0];
    assert_eq!(spec.primary.name, "MySecret");
    assert_eq!(spec.primary.kind, ObjectKind::SecretsManager);
    assert_eq!(spec.file.as_str(), "mine");
    assert_eq!(spec.mode.bits(), 0o600);
    assert_eq!(spec.primary.label.as_deref(), Some("AWSCURRENT"));
    assert_eq!(spec.jmes[0].path, "username");
    assert_eq!(spec.jmes[0].file.as_str(), "user");
    assert_eq!(spec.jmes[0].mode.bits(), 0o400);
    assert_eq!(spec.failover.name, "OtherSecret");
    assert_eq!(spec.failover.label.as_deref(), Some("AWSPREVIOUS"));
    assert!(parsed.unknown_keys.is_empty());
}

#[test]
fn values_stay_case_sensitive() {
    // Only keys fold: the objectType value is still checked exactly.
    let errors = fails_with(
        "- objectName: a\n  objectType: SecretsManager\n",
        Rule::ObjectTypeInvalid,
    );
    assert!(errors.to_string().contains("SecretsManager"), "{errors}");
}

#[test]
fn repeated_key() {
    // Two spellings of one field in one mapping: the existing provider keeps the last
    // silently; here it is refused, at every level.
    let errors = fails_with(
        "- objectName: a\n  ObjectName: b\n  objectType: secretsmanager\n",
        Rule::RepeatedKey,
    );
    assert!(errors.to_string().contains("`ObjectName`"), "{errors}");
    fails_with(
        "- objectName: a\n  objectType: secretsmanager\n  jmesPath:\n    - {path: x, Path: y, objectAlias: z}\n",
        Rule::RepeatedKey,
    );
    let errors = parse_full(
        "- objectName: a\n  objectType: secretsmanager\n  objectAlias: a\n  failoverObject: {objectName: b, OBJECTNAME: c}\n",
        false,
    )
    .unwrap_err();
    assert!(errors.has(Rule::RepeatedKey), "{errors}");
}

#[test]
fn unknown_key_is_reported_not_refused() {
    let yaml = "- objectName: a\n  objectType: secretsmanager\n  objectAlais: typo\n  objectAlias: b\n  jmesPath:\n    - {path: x, objectAlias: y, note: hi}\n  failoverObject: {objectName: c, extra: 1}\n- {objectType: ssmparameter, objectName: p, tool.example/annotation: {nested: [1, 2]}}\n";
    let parsed = parse_full(yaml, false).unwrap();
    assert_eq!(parsed.objects.len(), 2);
    let shown: Vec<String> = parsed
        .unknown_keys
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        shown,
        [
            "object \"a\" (#1): unknown key `objectAlais` ignored",
            "object \"a\" (#1): jmesPath entry 1: unknown key `note` ignored",
            "object \"a\" (#1): failoverObject: unknown key `extra` ignored",
            "object \"p\" (#2): unknown key `tool.example/annotation` ignored",
        ]
    );
}

#[test]
fn unknown_key_strict() {
    let yaml = "- objectName: a\n  objectType: secretsmanager\n  bogus: 1\n  jmesPath:\n    - {path: x, objectAlias: y, note: hi}\n";
    let errors = parse_full(yaml, true).unwrap_err();
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert!(
        errors.0.iter().all(|e| e.rule == Rule::UnknownKey),
        "{errors}"
    );
    let text = errors.to_string();
    assert!(
        text.contains("`bogus`") && text.contains("jmesPath entry 1: unknown key `note`"),
        "{text}"
    );
}

#[test]
fn failover_arn_required() {
    let (east, west) = (region("us-east-1"), region("us-west-2"));
    let arn = "arn:aws:secretsmanager:us-east-1:1:secret:P-12345";
    let bad = format!(
        "- objectName: {arn}\n  objectAlias: t\n  failoverObject:\n    objectName: plain-name\n"
    );
    assert!(parse_with(&bad, Some(&east), Some(&west))
        .unwrap_err()
        .has(Rule::FailoverArnRequired));
    // With objectType the type no longer comes from the ARN: a plain name is fine.
    let typed = format!("- objectName: {arn}\n  objectType: secretsmanager\n  objectAlias: t\n  failoverObject:\n    objectName: plain-name\n");
    assert!(parse_with(&typed, Some(&east), Some(&west)).is_ok());
    let both = format!("- objectName: {arn}\n  objectAlias: t\n  failoverObject:\n    objectName: arn:aws:secretsmanager:us-west-2:1:secret:F-12345\n");
    assert!(parse_with(&both, Some(&east), Some(&west)).is_ok());
}

#[test]
fn no_objects() {
    fails_with("", Rule::NoObjects);
    fails_with("[]", Rule::NoObjects);
}

#[test]
fn empty_entry() {
    let errors = fails_with(
        "- objectName: a\n  objectType: secretsmanager\n-\n",
        Rule::EmptyEntry,
    );
    assert!(errors.to_string().contains("#2"), "{errors}");
}

#[test]
fn object_name_required() {
    fails_with("- objectType: secretsmanager\n", Rule::ObjectNameRequired);
    fails_with(
        "- objectName: \"\"\n  objectType: secretsmanager\n",
        Rule::ObjectNameRequired,
    );
}

#[test]
fn invalid_arn() {
    fails_with(
        "- objectName: arn:aws:secretsmanager:us-east-1\n",
        Rule::InvalidArn,
    );
}

#[test]
fn arn_region_mismatch() {
    let errors = fails_with(
        "- objectName: arn:aws:secretsmanager:us-west-2:1:secret:x\n",
        Rule::ArnRegionMismatch,
    );
    assert!(errors.to_string().contains("us-west-2"), "{errors}");
    // Without a known region (offline validate) the rule cannot apply.
    assert!(parse_with(
        "- objectName: arn:aws:secretsmanager:us-west-2:1:secret:x\n",
        None,
        None
    )
    .is_ok());
}

#[test]
fn object_type_invalid() {
    fails_with(
        "- objectName: a\n  objectType: kms\n",
        Rule::ObjectTypeInvalid,
    );
    let errors = fails_with(
        "- objectName: a\n  objectType: ssm\n",
        Rule::ObjectTypeInvalid,
    );
    assert!(errors.to_string().contains("ssmparameter"), "{errors}");
}

#[test]
fn object_type_required() {
    fails_with("- objectName: MySecret\n", Rule::ObjectTypeRequired);
}

#[test]
fn object_type_comes_from_the_arn() {
    let specs =
        parse("- objectName: arn:aws:ssm:us-east-1:1:parameter/app/x\n  objectAlias: x\n").unwrap();
    assert_eq!(specs[0].primary.kind, ObjectKind::SsmParameter);
}

#[test]
fn object_type_arn_mismatch() {
    fails_with(
        "- objectName: arn:aws:ssm:us-east-1:1:parameter/x\n  objectType: secretsmanager\n",
        Rule::ObjectTypeArnMismatch,
    );
    fails_with(
        "- objectName: arn:aws:kms:us-east-1:1:key/x\n",
        Rule::ObjectTypeArnMismatch,
    );
}

#[test]
fn ssm_version_and_label() {
    fails_with(
        "- objectName: p\n  objectType: ssmparameter\n  objectVersion: 1\n  objectVersionLabel: prod\n",
        Rule::SsmVersionAndLabel,
    );
    // Secrets Manager may set both (VersionId and VersionStage).
    assert!(parse("- objectName: s\n  objectType: secretsmanager\n  objectVersion: v\n  objectVersionLabel: AWSCURRENT\n").is_ok());
}

#[test]
fn ssm_version_and_label_inside_failover_object() {
    let (east, west) = (region("us-east-1"), region("us-west-2"));
    let yaml = "- objectName: p\n  objectType: ssmparameter\n  objectAlias: p\n  objectVersion: 1\n  failoverObject:\n    objectName: q\n    objectVersion: 1\n    objectVersionLabel: prod\n";
    let errors = parse_with(yaml, Some(&east), Some(&west)).unwrap_err();
    assert!(errors.has(Rule::SsmVersionAndLabel), "{errors}");
}

#[test]
fn file_name() {
    let errors = fails_with(
        "- objectName: a\n  objectType: secretsmanager\n  objectAlias: ../etc/passwd\n",
        Rule::FileName,
    );
    assert!(errors.to_string().contains("../etc/passwd"), "{errors}");
    fails_with("- objectName: a\n  objectType: secretsmanager\n  jmesPath:\n    - {path: x, objectAlias: ..}\n", Rule::FileName);
}

#[test]
fn file_name_without_translation_makes_subdirectories() {
    let ctx = ClassContext {
        translation: PathTranslation::Off,
        default_mode: FileMode::DEFAULT,
        primary_region: None,
        failover_region: None,
        limits: YamlLimits::default(),
        strict: false,
        certificates: false,
    };
    let specs = parse_objects(
        "- objectName: /app/db/pass\n  objectType: ssmparameter\n",
        &ctx,
    )
    .unwrap()
    .objects;
    assert_eq!(specs[0].file.as_str(), "app/db/pass");
    let errors =
        parse_objects("- objectName: a/../b\n  objectType: ssmparameter\n", &ctx).unwrap_err();
    assert!(errors.has(Rule::FileName));
}

#[test]
fn file_permission() {
    fails_with(
        "- objectName: a\n  objectType: secretsmanager\n  filePermission: \"644\"\n",
        Rule::FilePermission,
    );
    fails_with("- objectName: a\n  objectType: secretsmanager\n  jmesPath:\n    - {path: x, objectAlias: y, filePermission: \"0999\"}\n", Rule::FilePermission);
}

#[test]
fn jmes_path_incomplete() {
    fails_with(
        "- objectName: a\n  objectType: secretsmanager\n  jmesPath:\n    - path: x\n",
        Rule::JmesPathIncomplete,
    );
    fails_with(
        "- objectName: a\n  objectType: secretsmanager\n  jmesPath:\n    - objectAlias: y\n",
        Rule::JmesPathIncomplete,
    );
}

#[test]
fn jmes_path_invalid() {
    let errors = fails_with(
        "- objectName: a\n  objectType: secretsmanager\n  jmesPath:\n    - {path: 'a[', objectAlias: y}\n",
        Rule::JmesPathInvalid,
    );
    assert!(errors.to_string().contains("alias `y`"), "{errors}");
}

#[test]
fn failover_alias_required() {
    let (east, west) = (region("us-east-1"), region("us-west-2"));
    let yaml =
        "- objectName: a\n  objectType: secretsmanager\n  failoverObject:\n    objectName: b\n";
    assert!(parse_with(yaml, Some(&east), Some(&west))
        .unwrap_err()
        .has(Rule::FailoverAliasRequired));
}

#[test]
fn failover_region_required() {
    fails_with(
        "- objectName: a\n  objectType: secretsmanager\n  objectAlias: a\n  failoverObject:\n    objectName: b\n",
        Rule::FailoverRegionRequired,
    );
}

#[test]
fn failover_name_required() {
    let west = region("us-west-2");
    let yaml = "- objectName: a\n  objectType: secretsmanager\n  objectAlias: a\n  failoverObject:\n    objectVersionLabel: x\n";
    assert!(parse_with(yaml, None, Some(&west))
        .unwrap_err()
        .has(Rule::FailoverNameRequired));
}

#[test]
fn failover_version_mismatch() {
    let west = region("us-west-2");
    let yaml = "- objectName: a\n  objectType: secretsmanager\n  objectAlias: a\n  objectVersion: v1\n  failoverObject:\n    objectName: b\n    objectVersion: v2\n";
    assert!(parse_with(yaml, None, Some(&west))
        .unwrap_err()
        .has(Rule::FailoverVersionMismatch));
    let yaml = "- objectName: a\n  objectType: secretsmanager\n  objectAlias: a\n  objectVersion: v1\n  failoverObject:\n    objectName: b\n";
    assert!(parse_with(yaml, None, Some(&west))
        .unwrap_err()
        .has(Rule::FailoverVersionMismatch));
}

#[test]
fn failover_object_arn_must_be_in_the_failover_region() {
    let (east, west) = (region("us-east-1"), region("us-east-2"));
    let good = "- objectName: arn:aws:secretsmanager:us-east-1:1:secret:P-12345\n  objectAlias: t\n  failoverObject:\n    objectName: arn:aws:secretsmanager:us-east-2:1:secret:F-12345\n";
    let specs = parse_with(good, Some(&east), Some(&west)).unwrap();
    assert_eq!(
        specs[0].failover.name,
        "arn:aws:secretsmanager:us-east-2:1:secret:F-12345"
    );
    let bad = good.replace("us-east-2:1:secret:F", "us-east-1:1:secret:F");
    assert!(parse_with(&bad, Some(&east), Some(&west))
        .unwrap_err()
        .has(Rule::ArnRegionMismatch));
}

#[test]
fn duplicate_object() {
    // No alias and no label on both.
    fails_with("- {objectName: a, objectType: secretsmanager}\n- {objectName: a, objectType: secretsmanager}\n", Rule::DuplicateObject);
    // Same label, no alias.
    fails_with("- {objectName: a, objectType: secretsmanager, objectVersionLabel: L}\n- {objectName: a, objectType: secretsmanager, objectVersionLabel: L}\n", Rule::DuplicateObject);
    // Same alias and same label.
    fails_with("- {objectName: a, objectType: secretsmanager, objectAlias: x, objectVersionLabel: L}\n- {objectName: a, objectType: secretsmanager, objectAlias: x, objectVersionLabel: L}\n", Rule::DuplicateObject);
    // Different aliases: allowed.
    assert!(parse("- {objectName: a, objectType: secretsmanager, objectAlias: x}\n- {objectName: a, objectType: secretsmanager, objectAlias: y}\n").is_ok());
}

#[test]
fn duplicate_alias() {
    fails_with("- {objectName: a, objectType: secretsmanager, objectAlias: x}\n- {objectName: b, objectType: secretsmanager, objectAlias: x}\n", Rule::DuplicateAlias);
    fails_with("- objectName: a\n  objectType: secretsmanager\n  objectAlias: x\n  jmesPath:\n    - {path: p, objectAlias: x}\n", Rule::DuplicateAlias);
}

#[test]
fn duplicate_file() {
    // Different objects that translate to the same file name.
    fails_with("- {objectName: a/b, objectType: ssmparameter}\n- {objectName: a_b, objectType: ssmparameter}\n", Rule::DuplicateFile);
    // Same name, different labels, no alias: both would write file `a`.
    fails_with("- {objectName: a, objectType: secretsmanager, objectVersionLabel: L1}\n- {objectName: a, objectType: secretsmanager, objectVersionLabel: L2}\n", Rule::DuplicateFile);
}

#[test]
fn duplicate_file_a_file_cannot_also_be_a_directory() {
    let ctx = ClassContext {
        translation: PathTranslation::Off,
        default_mode: FileMode::DEFAULT,
        primary_region: None,
        failover_region: None,
        limits: YamlLimits::default(),
        strict: false,
        certificates: false,
    };
    let errors = parse_objects("- {objectName: a, objectType: ssmparameter}\n- {objectName: a/b, objectType: ssmparameter}\n", &ctx).unwrap_err();
    assert!(errors.has(Rule::DuplicateFile), "{errors}");
}

#[test]
fn every_error_is_reported_with_its_object() {
    let errors = parse("- objectName: a\n  objectType: kms\n- objectName: b\n  objectType: secretsmanager\n  filePermission: \"77\"\n").unwrap_err();
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert!(errors.0[0].object.contains("\"a\""));
    assert!(errors.0[1].object.contains("\"b\""));
}

#[test]
fn jmes_path_invalid_when_too_long_or_too_deep() {
    let deep = format!("{}a{}", "(".repeat(20_000), ")".repeat(20_000));
    let yaml = format!("- objectName: a\n  objectType: secretsmanager\n  jmesPath:\n    - {{path: '{deep}', objectAlias: y}}\n");
    let ctx = ClassContext {
        translation: PathTranslation::default(),
        default_mode: FileMode::DEFAULT,
        primary_region: None,
        failover_region: None,
        limits: YamlLimits {
            max_bytes: 1 << 20,
            ..YamlLimits::default()
        },
        strict: false,
        certificates: false,
    };
    let errors = parse_objects(&yaml, &ctx).unwrap_err();
    assert!(errors.has(Rule::JmesPathInvalid), "{errors}");
    let nots = format!("{}a", "!".repeat(100));
    fails_with(&format!("- objectName: a\n  objectType: secretsmanager\n  jmesPath:\n    - {{path: '{nots}', objectAlias: y}}\n"), Rule::JmesPathInvalid);
}

#[test]
fn empty_strings_count_as_absent_like_the_existing_provider() {
    let yaml = "- {objectName: a, objectType: secretsmanager, objectAlias: '', objectVersion: '', objectVersionLabel: '', filePermission: ''}\n";
    let specs = parse(yaml).unwrap();
    assert_eq!(specs[0].file.as_str(), "a");
    assert_eq!(specs[0].primary.version, None);
    assert_eq!(specs[0].primary.label, None);
    assert_eq!(specs[0].alias, None);
}

#[test]
fn too_many_objects() {
    let ctx = ClassContext {
        translation: PathTranslation::default(),
        default_mode: FileMode::DEFAULT,
        primary_region: None,
        failover_region: None,
        limits: YamlLimits {
            max_objects: 2,
            ..YamlLimits::default()
        },
        strict: false,
        certificates: false,
    };
    let yaml = "- {objectName: a, objectType: ssmparameter}\n- {objectName: b, objectType: ssmparameter}\n- {objectName: c, objectType: ssmparameter}\n";
    let errors = parse_objects(yaml, &ctx).unwrap_err();
    assert!(
        errors.has(Rule::TooLarge) && errors.to_string().contains("3 objects"),
        "{errors}"
    );
}

#[test]
fn a_failing_class_also_names_the_keys_it_ignored() {
    // `objectNmae` is why objectName is missing: say so.
    let errors = parse_full("- {objectNmae: db, objectType: secretsmanager}\n", false).unwrap_err();
    assert!(errors.has(Rule::ObjectNameRequired), "{errors}");
    assert!(
        errors
            .to_string()
            .contains("unknown key `objectNmae` ignored"),
        "{errors}"
    );
}

#[test]
fn an_unknown_key_given_twice_is_ignored_like_any_other() {
    // The existing provider's decoding keeps the last of repeated keys.
    let parsed = parse_full(
        "- {objectName: a, objectType: secretsmanager, note: x, note: y}\n",
        false,
    )
    .unwrap();
    assert_eq!(parsed.objects.len(), 1);
    let errors = fails_with(
        "- {objectName: a, objectName: b, objectType: secretsmanager}\n",
        Rule::RepeatedKey,
    );
    assert!(errors.to_string().contains("`objectName`"), "{errors}");
}

#[test]
fn jmes_entries_are_bounded_per_object_and_per_mount_before_they_compile() {
    let entries = |n: usize| {
        (0..n)
            .map(|i| format!("{{path: a, objectAlias: f{i}}}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let one = format!(
        "- {{objectName: s, objectType: secretsmanager, jmesPath: [{}]}}\n",
        entries(257)
    );
    let err = fails_with(&one, Rule::TooLarge);
    assert!(
        err.to_string()
            .contains("max_jmes_entries_per_object (256)"),
        "{err}"
    );
    let many: String = (0..5)
        .map(|o| {
            format!(
                "- {{objectName: s{o}, objectType: secretsmanager, jmesPath: [{}]}}\n",
                entries(250)
            )
        })
        .collect();
    let err = fails_with(&many, Rule::TooLarge);
    assert!(
        err.to_string()
            .contains("max_jmes_entries_per_mount (1024)"),
        "{err}"
    );
    assert!(parse(&format!(
        "- {{objectName: s, objectType: secretsmanager, jmesPath: [{}]}}\n",
        entries(256)
    ))
    .is_ok());
}
