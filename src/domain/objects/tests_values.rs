//! The opt-in fields about values: objectEncoding, nonString, expandJson, select.

use super::*;

fn parsed(yaml: &str) -> Result<ParsedObjects, ClassErrors> {
    let east = Region::parse("us-east-1").unwrap();
    let ctx = ClassContext {
        translation: PathTranslation::default(),
        default_mode: FileMode::DEFAULT,
        primary_region: Some(&east),
        failover_region: None,
        limits: YamlLimits::default(),
        strict: false,
        certificates: false,
    };
    parse_objects(yaml, &ctx)
}

fn fails_with(yaml: &str, rule: Rule) -> ClassErrors {
    let errors = parsed(yaml).expect_err("class accepted");
    assert!(errors.has(rule), "expected {rule:?}, got {errors}");
    errors
}

#[test]
fn none_of_the_new_fields_changes_a_class_that_does_not_use_them() {
    let p = parsed(
        "- {objectName: db, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: a}]}\n",
    )
    .unwrap();
    let o = &p.objects[0];
    assert_eq!(o.encoding, Encoding::Utf8);
    assert_eq!(o.non_string, NonString::Refuse);
    assert!(!o.expand);
    assert_eq!(o.jmes[0].non_string, NonString::Refuse);
    assert_eq!(o.copies(), 2);
    assert!(p.selections.is_empty());
}

#[test]
fn object_encoding_on_the_object_and_on_an_entry() {
    let p = parsed(
        "- objectName: tls\n  objectType: secretsmanager\n  objectEncoding: base64\n  jmesPath:\n    - {path: key, objectAlias: key, objectEncoding: hex}\n",
    )
    .unwrap();
    assert_eq!(p.objects[0].encoding, Encoding::Base64);
    assert_eq!(p.objects[0].jmes[0].encoding, Encoding::Hex);
    let e = fails_with(
        "- {objectName: tls, objectType: secretsmanager, objectEncoding: base32}\n",
        Rule::ObjectEncoding,
    );
    assert!(e.to_string().contains("base32"), "{e}");
    let e = fails_with(
        "- {objectName: tls, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: a, objectEncoding: rot13}]}\n",
        Rule::ObjectEncoding,
    );
    assert!(e.to_string().contains("jmesPath entry 1"), "{e}");
}

#[test]
fn object_encoding_and_non_string_values_are_case_sensitive() {
    let e = fails_with(
        "- {objectName: tls, objectType: secretsmanager, objectEncoding: BASE64}\n",
        Rule::ObjectEncoding,
    );
    assert!(
        e.to_string().contains("case-sensitive, write `base64`"),
        "{e}"
    );
    let e = fails_with(
        "- {objectName: cfg, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: a, nonString: JSON}]}\n",
        Rule::NonString,
    );
    assert!(e.to_string().contains("jmesPath entry 1"), "{e}");
    assert!(
        e.to_string().contains("case-sensitive, write `json`"),
        "{e}"
    );
    assert!(NonString::parse("Error").is_none());
}

#[test]
fn non_string_on_the_object_applies_to_its_entries_unless_one_says_otherwise() {
    let p = parsed(
        "- objectName: cfg\n  objectType: secretsmanager\n  nonString: json\n  jmesPath:\n    - {path: a, objectAlias: a}\n    - {path: b, objectAlias: b, nonString: error}\n",
    )
    .unwrap();
    let o = &p.objects[0];
    assert_eq!(o.jmes[0].non_string, NonString::Json);
    assert_eq!(o.jmes[1].non_string, NonString::Refuse);
    fails_with(
        "- {objectName: cfg, objectType: secretsmanager, nonString: yaml}\n",
        Rule::NonString,
    );
}

#[test]
fn expand_json_is_a_boolean_bare_or_quoted() {
    for yes in ["true", "\"true\"", "True"] {
        let p = parsed(&format!(
            "- {{objectName: db, objectType: secretsmanager, expandJson: {yes}}}\n"
        ))
        .unwrap();
        assert!(p.objects[0].expand, "{yes}");
        assert_eq!(p.objects[0].copies(), 2);
    }
    fails_with(
        "- {objectName: db, objectType: secretsmanager, expandJson: sometimes}\n",
        Rule::ExpandJson,
    );
}

#[test]
fn keys_of_the_new_fields_match_in_any_case_like_the_old_ones() {
    let p = parsed(
        "- {objectName: db, objectType: secretsmanager, EXPANDJSON: true, objectencoding: hex}\n",
    )
    .unwrap();
    assert!(p.objects[0].expand);
    assert_eq!(p.objects[0].encoding, Encoding::Hex);
}

#[test]
fn a_parameter_path_selection() {
    let p = parsed(
        "- objectType: ssmparameter\n  select: {path: /app/prod, recursive: true}\n  filePermission: \"0400\"\n",
    )
    .unwrap();
    assert!(p.objects.is_empty());
    let s = &p.selections[0];
    assert_eq!(
        s.selection,
        Selection::ParameterPath {
            path: "/app/prod".into(),
            recursive: true
        }
    );
    assert_eq!(s.mode.bits(), 0o400);
    assert_eq!(s.describe(), "select path `/app/prod` (recursive) (#1)");
}

#[test]
fn a_secrets_selection_by_prefix_and_tags() {
    let p = parsed(
        "- objectType: secretsmanager\n  select: {namePrefix: app/, tagKey: team, tagValue: payments}\n- {objectName: other, objectType: secretsmanager}\n",
    )
    .unwrap();
    assert_eq!(p.objects.len(), 1);
    assert_eq!(
        p.selections[0].selection,
        Selection::Secrets {
            name_prefix: Some("app/".into()),
            tag_key: Some("team".into()),
            tag_value: Some("payments".into())
        }
    );
}

#[test]
fn a_selection_needs_its_store_and_what_to_choose() {
    fails_with("- select: {path: /app}\n", Rule::ObjectTypeRequired);
    fails_with(
        "- {objectType: ssmparameter, select: {recursive: true}}\n",
        Rule::Select,
    );
    fails_with(
        "- {objectType: ssmparameter, select: {path: app}}\n",
        Rule::Select,
    );
    fails_with("- {objectType: secretsmanager, select: {}}\n", Rule::Select);
    fails_with(
        "- {objectType: secretsmanager, select: {path: /app}}\n",
        Rule::Select,
    );
    fails_with(
        "- {objectType: ssmparameter, select: {path: /app, tagKey: team}}\n",
        Rule::Select,
    );
    fails_with(
        "- {objectType: ssmparameter, select: {path: /app, recursive: maybe}}\n",
        Rule::Select,
    );
}

#[test]
fn a_selection_cannot_carry_fields_of_one_object() {
    for field in [
        "objectName: x",
        "objectAlias: x",
        "objectVersion: \"1\"",
        "jmesPath: [{path: a, objectAlias: a}]",
        "expandJson: true",
        "nonString: json",
    ] {
        let e = fails_with(
            &format!("- {{objectType: ssmparameter, select: {{path: /app}}, {field}}}\n"),
            Rule::Select,
        );
        let name = field.split(':').next().unwrap();
        assert!(e.to_string().contains(name), "{e}");
    }
}

#[test]
fn unknown_keys_in_a_selection_are_reported_like_any_other() {
    let p = parsed("- {objectType: ssmparameter, select: {path: /app, recursve: true}}\n").unwrap();
    assert_eq!(p.unknown_keys.len(), 1);
    assert_eq!(p.unknown_keys[0].within.as_deref(), Some("select"));
}
