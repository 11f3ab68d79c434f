//! Property tests of the parsers that take tenant input (proptest, generated inputs).

use std::collections::HashSet;
use std::path::{Component, Path};

use proptest::prelude::*;
use provider::adapters::local::StoreFile;
use provider::domain::attributes::MountAttributes;
use provider::domain::extract::extract;
use provider::domain::fetched::{Fetched, Selected};
use provider::domain::jmes::JmesLimits;
use provider::domain::mode::FileMode;
use provider::domain::naming::{FileName, PathTranslation};
use provider::domain::objects::{parse_objects, ClassContext, ObjectKind, ObjectRef, YamlLimits};
use provider::domain::plan::{plan_mount, PlanLimits, DEFAULT_MAX_FILES};
use provider::domain::secret::SecretValue;

fn ctx(translation: PathTranslation) -> ClassContext<'static> {
    ClassContext {
        translation,
        default_mode: FileMode::DEFAULT,
        primary_region: None,
        failover_region: None,
        limits: YamlLimits::default(),
        strict: false,
        certificates: false,
    }
}

fn translation() -> impl Strategy<Value = PathTranslation> {
    prop_oneof![
        Just(PathTranslation::Off),
        Just(PathTranslation::Replace('_')),
        Just(PathTranslation::Replace('-')),
        Just(PathTranslation::Replace('.'))
    ]
}

/// Names built from the characters that matter: separators, dots, underscores.
fn tricky_name() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-c/._-]{1,12}").unwrap()
}

/// Every path stays under the target, none twice, none both a file and a directory.
fn check_layout(paths: &[String]) -> Result<(), TestCaseError> {
    let unique: HashSet<&String> = paths.iter().collect();
    prop_assert_eq!(unique.len(), paths.len(), "{:?}", paths);
    for p in paths {
        let joined = Path::new("/target").join(p);
        prop_assert!(
            joined
                .components()
                .skip(2)
                .all(|c| matches!(c, Component::Normal(_))),
            "{}",
            p
        );
        prop_assert!(!p.starts_with(".."), "{}", p);
        for q in paths {
            prop_assert!(
                !q.starts_with(&format!("{p}/")),
                "{} is a file and a directory",
                p
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn expanded_and_selected_names_never_leave_the_target_or_meet_silently(
        alias in tricky_name(),
        keys in proptest::collection::vec(tricky_name(), 0..6),
        selected in proptest::collection::vec(tricky_name(), 0..6),
        t in translation(),
    ) {
        let yaml = format!(
            "- {{objectName: s, objectType: secretsmanager, objectAlias: {}, expandJson: true}}\n- {{objectType: ssmparameter, select: {{path: /p}}}}\n",
            serde_json::Value::String(alias)
        );
        let Ok(parsed) = parse_objects(&yaml, &ctx(t)) else { return Ok(()) };
        // Keys may repeat: the JSON text then has a key twice, which must be refused.
        let members: Vec<String> = keys
            .iter()
            .map(|k| format!("{}: \"v\"", serde_json::Value::String(k.clone())))
            .collect();
        let value = format!("{{{}}}", members.join(", "));
        let fetched = [Fetched { value: SecretValue::new(value.into_bytes()), version: "1".into() }];
        let matches: Vec<Selected> = selected
            .iter()
            .map(|n| Selected { name: n.clone(), fetched: fetched[0].clone() })
            .collect();
        let selections = [(&parsed.selections[0], matches)];
        let limits = PlanLimits { max_secret_bytes: 1 << 16, max_total_bytes: 1 << 20, max_files: DEFAULT_MAX_FILES, translation: t, jmes: JmesLimits::default() };
        if let Ok(plan) = plan_mount(&parsed.objects, &fetched, &selections, limits, &[]) {
            let paths: Vec<String> = plan.files.iter().map(|f| f.path.to_string()).collect();
            prop_assert_eq!(paths.len(), keys.len() + selected.len(), "no file dropped: {:?}", paths);
            check_layout(&paths)?;
        }
    }

    #[test]
    fn a_generated_file_name_never_escapes_the_target(raw in "\\PC{0,40}", t in translation()) {
        if let Ok(name) = FileName::from_object_name(&raw, t) {
            let joined = Path::new("/target").join(name.as_str());
            prop_assert!(joined.starts_with("/target"));
            prop_assert!(joined.components().skip(2).all(|c| matches!(c, Component::Normal(_))), "{}", name);
            prop_assert!(!name.top_level().starts_with(".."));
        }
    }

    #[test]
    fn two_accepted_objects_never_share_a_file(
        entries in proptest::collection::vec((tricky_name(), proptest::option::of(tricky_name()), proptest::bool::ANY), 1..8),
        t in translation(),
    ) {
        let mut yaml = String::new();
        for (name, alias, ssm) in &entries {
            let kind = if *ssm { "ssmparameter" } else { "secretsmanager" };
            yaml.push_str(&format!("- objectName: {}\n  objectType: {kind}\n", serde_json::Value::String(name.clone())));
            if let Some(alias) = alias {
                yaml.push_str(&format!("  objectAlias: {}\n", serde_json::Value::String(alias.clone())));
            }
        }
        if let Ok(parsed) = parse_objects(&yaml, &ctx(t)) {
            let files: Vec<&str> = parsed.objects.iter().map(|o| o.file.as_str()).collect();
            let unique: HashSet<&str> = files.iter().copied().collect();
            prop_assert_eq!(unique.len(), files.len(), "{:?}", files);
            for f in &files {
                for g in &files {
                    prop_assert!(!g.starts_with(&format!("{f}/")), "{} is a file and a directory", f);
                }
            }
        }
    }

    #[test]
    fn objects_yaml_never_panics(yaml in "[-a-zA-Z0-9 :\\n{}\\[\\],'\"&*!/.|>#]{0,200}", t in translation()) {
        let _ = parse_objects(&yaml, &ctx(t));
    }

    #[test]
    fn attributes_never_panic_and_keep_the_pod(
        pairs in proptest::collection::hash_map("[a-zA-Z./]{1,20}", "\\PC{0,20}", 0..8),
        ns in "[a-z]{1,10}",
    ) {
        let mut map = pairs;
        map.insert("csi.storage.k8s.io/pod.namespace".into(), ns.clone());
        if let Ok(a) = MountAttributes::parse(&serde_json::to_string(&map).unwrap()) {
            prop_assert_eq!(a.pod.namespace, ns);
        }
        let _ = MountAttributes::parse(&format!("{map:?}"));
    }

    #[test]
    fn jmes_extraction_finds_every_string_key(values in proptest::collection::btree_map("[a-z]{1,8}", "\\PC{0,16}", 1..6)) {
        let json = serde_json::to_string(&values).unwrap();
        let mut yaml = String::from("- objectName: s\n  objectType: secretsmanager\n  jmesPath:\n");
        for key in values.keys() {
            yaml.push_str(&format!("    - {{path: '\"{key}\"', objectAlias: f-{key}}}\n"));
        }
        let objects = parse_objects(&yaml, &ctx(PathTranslation::default())).unwrap().objects;
        let out = extract(&SecretValue::new(json.into_bytes()), &objects[0].jmes, &mut provider::domain::jmes::Meter::uncancelled(), 1 << 16).unwrap();
        for (file, (_, value)) in out.iter().zip(values.iter()) {
            prop_assert_eq!(file.value.expose(), value.as_bytes());
        }
    }

    #[test]
    fn the_local_store_format_never_panics_and_serves_the_highest_version(
        text in "\\PC{0,120}",
        versions in proptest::collection::btree_set(1u64..50, 1..6),
    ) {
        let _ = StoreFile::parse(&text);
        let mut yaml = String::from("ssmparameter:\n  /p:\n");
        for v in &versions {
            yaml.push_str(&format!("    - {{version: {v}, value: 'v{v}'}}\n"));
        }
        let store = StoreFile::parse(&yaml).unwrap();
        let got = store.lookup("us-east-1", &ObjectRef { kind: ObjectKind::SsmParameter, name: "/p".into(), version: None, label: None }).unwrap();
        let max = versions.iter().max().unwrap();
        prop_assert_eq!(got.version, max.to_string());
    }
}
