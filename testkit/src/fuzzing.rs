//! Entry points for fuzzing: each takes arbitrary bytes and drives one parser that reads
//! tenant or outside input. They must never panic; the fuzz targets (`fuzz/`) and the
//! corpus replay test (`tests/it/fuzz_corpus.rs`) call them.

use provider::adapters::local::StoreFile;
use provider::domain::attributes::MountAttributes;
use provider::domain::class::{ClassRules, ClassSpec};
use provider::domain::extract::extract;
use provider::domain::naming::{FileName, PathTranslation};
use provider::domain::region::Region;
use provider::domain::secret::SecretValue;

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The `objects` YAML, with and without known regions.
pub fn objects_yaml(data: &[u8]) {
    let yaml = text(data);
    let (east, west) = (
        Region::parse("us-east-1").ok(),
        Region::parse("us-west-2").ok(),
    );
    for translation in [PathTranslation::default(), PathTranslation::Off] {
        let class = ClassSpec {
            objects: &yaml,
            translation,
            region: east.clone(),
            failover_region: west.clone(),
        };
        let _ = class.check(&ClassRules::default());
    }
}

/// The attributes JSON of a MountRequest.
pub fn attributes(data: &[u8]) {
    let _ = MountAttributes::parse(&text(data));
}

/// File naming: the first byte picks the translation, the rest is the name.
pub fn file_name(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let translation = if first % 2 == 0 {
        PathTranslation::Off
    } else {
        PathTranslation::Replace(char::from(b'_' + first % 3))
    };
    if let Ok(name) = FileName::from_object_name(&text(rest), translation) {
        assert!(!name.as_str().starts_with('/'), "absolute name {name}");
        assert!(
            name.elements()
                .all(|e| e != ".." && e != "." && !e.is_empty()),
            "bad element in {name}"
        );
    }
}

/// JMESPath extraction: up to the first newline is the class YAML's jmesPath path, the
/// rest is the secret value.
pub fn jmes_extract(data: &[u8]) {
    let input = text(data);
    let (path, value) = input.split_once('\n').unwrap_or((&input, ""));
    let yaml = format!("- objectName: s\n  objectType: secretsmanager\n  jmesPath:\n    - path: {}\n      objectAlias: out\n", serde_json::Value::String(path.to_string()));
    let class = ClassSpec {
        objects: &yaml,
        translation: PathTranslation::default(),
        region: None,
        failover_region: None,
    };
    if let Ok(checked) = class.check(&ClassRules::default()) {
        if let Some(object) = checked.parsed.objects.first() {
            // The default allowance: the fuzzer finds any expression it does not bound.
            let mut meter = provider::domain::jmes::Meter::uncancelled();
            let _ = extract(
                &SecretValue::new(value.as_bytes().to_vec()),
                &object.jmes,
                &mut meter,
                provider::domain::jmes::MAX_RESULT_BYTES,
            );
        }
    }
}

/// The local-file store format.
pub fn local_store(data: &[u8]) {
    let _ = StoreFile::parse(&text(data));
}
