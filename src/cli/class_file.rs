//! SecretProviderClass manifests read from files (for `mount` and `validate`).

use std::collections::HashMap;

use serde::Deserialize;

/// The parts of a SecretProviderClass the provider reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassManifest {
    pub name: String,
    pub provider: String,
    pub parameters: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Doc {
    kind: Option<String>,
    metadata: Option<Meta>,
    spec: Option<Spec>,
}

#[derive(Deserialize)]
struct Meta {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Spec {
    provider: Option<String>,
    parameters: Option<HashMap<String, String>>,
}

/// Every SecretProviderClass of a multi-document YAML text; other kinds are skipped.
pub fn parse_classes(text: &str) -> Result<Vec<ClassManifest>, String> {
    let docs: Vec<Option<Doc>> = serde_saphyr::from_multiple(text).map_err(|e| {
        e.to_string()
            .lines()
            .next()
            .unwrap_or("invalid YAML")
            .to_string()
    })?;
    Ok(docs
        .into_iter()
        .flatten()
        .filter(|d| d.kind.as_deref() == Some("SecretProviderClass"))
        .enumerate()
        .map(|(i, d)| {
            let spec = d.spec.unwrap_or(Spec {
                provider: None,
                parameters: None,
            });
            ClassManifest {
                name: d
                    .metadata
                    .and_then(|m| m.name)
                    .unwrap_or_else(|| format!("(unnamed #{})", i + 1)),
                provider: spec.provider.unwrap_or_default(),
                parameters: spec.parameters.unwrap_or_default(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_class_of_a_multi_document_file() {
        let text = r#"
apiVersion: secrets-store.csi.x-k8s.io/v1
kind: SecretProviderClass
metadata: {name: one}
spec:
  provider: aws
  parameters:
    region: us-east-1
    objects: |
      - objectName: a
        objectType: secretsmanager
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa}
---
kind: SecretProviderClass
metadata: {name: two}
spec: {provider: azure}
"#;
        let classes = parse_classes(text).unwrap();
        assert_eq!(classes.len(), 2);
        assert_eq!(classes[0].name, "one");
        assert!(classes[0].parameters["objects"].contains("objectName: a"));
        assert_eq!(classes[1].provider, "azure");
    }

    #[test]
    fn broken_yaml_is_an_error() {
        assert!(parse_classes("kind: [").is_err());
    }
}
