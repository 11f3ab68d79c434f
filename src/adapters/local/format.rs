//! The on-disk format of the local development store (documented in docs/local-store.md,
//! example in `examples/local/local-store.yaml`), and how an object is looked up in it.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use crate::adapters::x509::serial;
use crate::domain::arn::Arn;
use crate::domain::certificate::document;
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::objects::{ObjectKind, ObjectRef};
use crate::domain::secret::SecretValue;
use crate::ports::{Fetched, StoreError};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StoreFile {
    #[serde(default)]
    pub secretsmanager: BTreeMap<String, Vec<SecretVersion>>,
    #[serde(default)]
    pub ssmparameter: BTreeMap<String, Vec<ParameterVersion>>,
    /// Certificates by ARN, as ACM would export them (the key in clear here).
    #[serde(default)]
    pub acm: BTreeMap<String, LocalCertificate>,
    /// Data that only one region holds, or holds differently: looked up first.
    #[serde(default)]
    pub regions: BTreeMap<String, RegionData>,
    /// Injected failures, matched before any lookup.
    #[serde(default)]
    pub failures: Vec<Failure>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegionData {
    #[serde(default)]
    pub secretsmanager: BTreeMap<String, Vec<SecretVersion>>,
    #[serde(default)]
    pub ssmparameter: BTreeMap<String, Vec<ParameterVersion>>,
    #[serde(default)]
    pub acm: BTreeMap<String, LocalCertificate>,
}

/// One certificate: PEM texts, the chain optional. Its version is its serial, as with ACM.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalCertificate {
    pub certificate: String,
    #[serde(default)]
    pub certificate_chain: String,
    pub private_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SecretVersion {
    pub version_id: String,
    #[serde(default)]
    pub stages: Vec<String>,
    pub secret_string: Option<String>,
    /// Base64, as the AWS CLI prints SecretBinary.
    pub secret_binary: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ParameterVersion {
    pub version: u64,
    #[serde(default)]
    pub labels: Vec<String>,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Failure {
    /// Only this region; absent: every region.
    pub region: Option<String>,
    /// Only this object name; absent: every object.
    pub object: Option<String>,
    /// `server`, `transport`, `notfound`, `accessdenied`, `invalid` or `client`.
    pub class: String,
    #[serde(default)]
    pub message: Option<String>,
}

impl StoreFile {
    pub fn parse(text: &str) -> Result<StoreFile, String> {
        serde_saphyr::from_str(text).map_err(|e| {
            e.to_string()
                .lines()
                .next()
                .unwrap_or("invalid YAML")
                .to_string()
        })
    }

    /// Answers one object as the real store would, including its error class.
    pub fn lookup(&self, region: &str, object: &ObjectRef) -> Result<Fetched, StoreError> {
        if let Some(failure) = self
            .failures
            .iter()
            .find(|f| f.matches(region, &object.name))
        {
            return Err(failure.to_error(region, &object.name));
        }
        let regional = self.regions.get(region);
        match object.kind {
            ObjectKind::SecretsManager => {
                let versions = secret_keys(&object.name)
                    .into_iter()
                    .find_map(|k| {
                        regional
                            .and_then(|r| r.secretsmanager.get(&k))
                            .or_else(|| self.secretsmanager.get(&k))
                    })
                    .ok_or_else(|| {
                        not_found(format!(
                            "secret {} not found in the local store for {region}",
                            object.name
                        ))
                    })?;
                select_secret(versions, object)
            }
            ObjectKind::SsmParameter => {
                let versions = parameter_keys(&object.name)
                    .into_iter()
                    .find_map(|k| {
                        regional
                            .and_then(|r| r.ssmparameter.get(&k))
                            .or_else(|| self.ssmparameter.get(&k))
                    })
                    .ok_or_else(|| {
                        not_found(format!(
                            "parameter {} not found in the local store for {region}",
                            object.name
                        ))
                    })?;
                select_parameter(versions, object)
            }
            ObjectKind::Acm => {
                let found = regional
                    .and_then(|r| r.acm.get(&object.name))
                    .or_else(|| self.acm.get(&object.name))
                    .ok_or_else(|| {
                        not_found(format!(
                            "certificate {} not found in the local store for {region}",
                            object.name
                        ))
                    })?;
                local_certificate(found, &object.name)
            }
        }
    }
}

impl Failure {
    fn matches(&self, region: &str, name: &str) -> bool {
        self.region.as_deref().is_none_or(|r| r == region)
            && self.object.as_deref().is_none_or(|o| o == name)
    }

    fn to_error(&self, region: &str, name: &str) -> StoreError {
        let class = match self.class.to_ascii_lowercase().as_str() {
            "server" => ErrorClass::Server,
            "transport" => ErrorClass::Transport,
            "notfound" => ErrorClass::Client(ClientKind::NotFound),
            "accessdenied" => ErrorClass::Client(ClientKind::AccessDenied),
            "invalid" => ErrorClass::Client(ClientKind::Invalid),
            _ => ErrorClass::Client(ClientKind::Other),
        };
        let message = self
            .message
            .clone()
            .unwrap_or_else(|| format!("injected {class} for {name} in {region}"));
        StoreError::new(class, message)
    }
}

/// A certificate of the file, as the AWS store would answer it: the document and serial.
fn local_certificate(found: &LocalCertificate, name: &str) -> Result<Fetched, StoreError> {
    let invalid = |e: &dyn std::fmt::Display| {
        StoreError::new(
            ErrorClass::Client(ClientKind::Invalid),
            format!("certificate {name} in the local store: {e}"),
        )
    };
    let version = serial(&found.certificate).map_err(|e| invalid(&e))?;
    let value = document(
        &found.certificate,
        &found.certificate_chain,
        &found.private_key,
    )
    .map_err(|e| invalid(&e))?;
    Ok(Fetched { value, version })
}

/// Without the key: a stray `{:?}` of the store must not print it.
impl std::fmt::Debug for LocalCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCertificate")
            .field("certificate", &self.certificate)
            .field("certificate_chain", &self.certificate_chain)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

fn not_found(message: String) -> StoreError {
    StoreError::new(ErrorClass::Client(ClientKind::NotFound), message)
}

/// A secret may be named by name, full ARN, or ARN whose name carries the random
/// six-character suffix Secrets Manager appends.
fn secret_keys(name: &str) -> Vec<String> {
    let mut keys = vec![name.to_string()];
    if let Ok(arn) = Arn::parse(name) {
        if let Some(rest) = arn.resource.strip_prefix("secret:") {
            keys.push(rest.to_string());
            if let Some((base, suffix)) = rest.rsplit_once('-') {
                if suffix.len() == 6 {
                    keys.push(base.to_string());
                }
            }
        }
    }
    keys
}

fn parameter_keys(name: &str) -> Vec<String> {
    let mut keys = vec![name.to_string()];
    if let Ok(arn) = Arn::parse(name) {
        if let Some(rest) = arn.resource.strip_prefix("parameter") {
            keys.push(rest.to_string());
            keys.push(rest.trim_start_matches('/').to_string());
        }
    }
    keys
}

fn select_secret(versions: &[SecretVersion], object: &ObjectRef) -> Result<Fetched, StoreError> {
    let stage = object.label.as_deref().unwrap_or("AWSCURRENT");
    let found = versions.iter().rev().find(|v| {
        object
            .version
            .as_deref()
            .is_none_or(|id| v.version_id == id)
            && (object.version.is_some() && object.label.is_none()
                || v.stages.iter().any(|s| s == stage))
    });
    // Without stages at all, the last listed version is current: handy for small stores.
    let found = found.or_else(|| {
        (object.version.is_none()
            && object.label.is_none()
            && versions.iter().all(|v| v.stages.is_empty()))
        .then(|| versions.last())
        .flatten()
    });
    let v = found.ok_or_else(|| {
        not_found(format!(
            "secret {} has no version matching versionId {} / stage {stage}",
            object.name,
            object.version.as_deref().unwrap_or("(any)")
        ))
    })?;
    let value = match (&v.secret_string, &v.secret_binary) {
        (Some(s), _) => SecretValue::new(s.as_bytes().to_vec()),
        (None, Some(b)) => SecretValue::new(
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|_| {
                    StoreError::new(
                        ErrorClass::Client(ClientKind::Invalid),
                        format!(
                            "secret {} version {}: secretBinary is not base64",
                            object.name, v.version_id
                        ),
                    )
                })?,
        ),
        (None, None) => {
            return Err(StoreError::new(
                ErrorClass::Client(ClientKind::Invalid),
                format!(
                    "secret {} version {} has neither secretString nor secretBinary",
                    object.name, v.version_id
                ),
            ))
        }
    };
    Ok(Fetched {
        value,
        version: v.version_id.clone(),
    })
}

fn select_parameter(
    versions: &[ParameterVersion],
    object: &ObjectRef,
) -> Result<Fetched, StoreError> {
    let found = match (&object.version, &object.label) {
        (Some(version), _) => {
            let n: u64 = version.parse().map_err(|_| {
                StoreError::new(
                    ErrorClass::Client(ClientKind::Invalid),
                    format!(
                        "parameter {}: version `{version}` is not a number",
                        object.name
                    ),
                )
            })?;
            versions.iter().find(|v| v.version == n)
        }
        (None, Some(label)) => versions
            .iter()
            .find(|v| v.labels.iter().any(|l| l == label)),
        (None, None) => versions.iter().max_by_key(|v| v.version),
    };
    let v = found.ok_or_else(|| {
        not_found(format!(
            "parameter {} has no such version or label",
            object.name
        ))
    })?;
    Ok(Fetched {
        value: SecretValue::new(v.value.as_bytes().to_vec()),
        version: v.version.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORE: &str = r#"
secretsmanager:
  MySecret:
    - versionId: v1
      stages: [AWSPREVIOUS]
      secretString: old
    - versionId: v2
      stages: [AWSCURRENT, blue]
      secretString: new
  Bin:
    - versionId: b1
      secretBinary: aGVsbG8=
ssmparameter:
  /app/host:
    - {version: 1, labels: [prod], value: one}
    - {version: 2, value: two}
regions:
  us-west-2:
    secretsmanager:
      MySecret:
        - {versionId: w1, stages: [AWSCURRENT], secretString: west}
failures:
  - {region: eu-west-1, class: server}
  - {object: Denied, class: accessdenied}
"#;

    fn obj(kind: ObjectKind, name: &str, version: Option<&str>, label: Option<&str>) -> ObjectRef {
        ObjectRef {
            kind,
            name: name.into(),
            version: version.map(Into::into),
            label: label.map(Into::into),
        }
    }

    fn get(region: &str, o: ObjectRef) -> Result<(String, String), StoreError> {
        let store = StoreFile::parse(STORE).unwrap();
        store.lookup(region, &o).map(|f| {
            (
                String::from_utf8(f.value.expose().to_vec()).unwrap(),
                f.version,
            )
        })
    }

    use ObjectKind::{SecretsManager as SM, SsmParameter as SSM};

    #[test]
    fn a_certificate_of_the_store_never_prints_its_key() {
        let file = StoreFile::parse(
            "acm:\n  arn:aws:acm:r:1:certificate/c: {certificate: C, privateKey: hunter2-key}\n",
        )
        .unwrap();
        let shown = format!("{file:?}");
        assert!(
            shown.contains("certificate/c") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn secrets_by_stage_version_and_arn() {
        assert_eq!(
            get("us-east-1", obj(SM, "MySecret", None, None)).unwrap(),
            ("new".into(), "v2".into())
        );
        assert_eq!(
            get("us-east-1", obj(SM, "MySecret", Some("v1"), None))
                .unwrap()
                .0,
            "old"
        );
        assert_eq!(
            get("us-east-1", obj(SM, "MySecret", None, Some("AWSPREVIOUS")))
                .unwrap()
                .0,
            "old"
        );
        assert_eq!(
            get("us-east-1", obj(SM, "MySecret", Some("v2"), Some("blue")))
                .unwrap()
                .0,
            "new"
        );
        assert!(get("us-east-1", obj(SM, "MySecret", Some("v1"), Some("blue"))).is_err());
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:MySecret-AbCdEf";
        assert_eq!(get("us-east-1", obj(SM, arn, None, None)).unwrap().0, "new");
    }

    #[test]
    fn binary_secrets_are_base64_in_the_file() {
        assert_eq!(
            get("us-east-1", obj(SM, "Bin", None, None)).unwrap(),
            ("hello".into(), "b1".into())
        );
    }

    #[test]
    fn parameters_by_version_label_latest_and_arn() {
        assert_eq!(
            get("us-east-1", obj(SSM, "/app/host", None, None)).unwrap(),
            ("two".into(), "2".into())
        );
        assert_eq!(
            get("us-east-1", obj(SSM, "/app/host", Some("1"), None))
                .unwrap()
                .0,
            "one"
        );
        assert_eq!(
            get("us-east-1", obj(SSM, "/app/host", None, Some("prod")))
                .unwrap()
                .0,
            "one"
        );
        assert_eq!(
            get(
                "us-east-1",
                obj(
                    SSM,
                    "arn:aws:ssm:us-east-1:1:parameter/app/host",
                    None,
                    None
                )
            )
            .unwrap()
            .0,
            "two"
        );
        let e = get("us-east-1", obj(SSM, "/app/host", Some("x"), None)).unwrap_err();
        assert_eq!(e.class, ErrorClass::Client(ClientKind::Invalid));
    }

    #[test]
    fn region_data_comes_first() {
        assert_eq!(
            get("us-west-2", obj(SM, "MySecret", None, None)).unwrap().0,
            "west"
        );
        assert_eq!(
            get("us-west-2", obj(SSM, "/app/host", None, None))
                .unwrap()
                .0,
            "two"
        );
    }

    #[test]
    fn missing_objects_are_client_not_found() {
        let e = get("us-east-1", obj(SM, "Nope", None, None)).unwrap_err();
        assert_eq!(e.class, ErrorClass::Client(ClientKind::NotFound));
    }

    #[test]
    fn injected_failures_by_region_and_object() {
        assert_eq!(
            get("eu-west-1", obj(SM, "MySecret", None, None))
                .unwrap_err()
                .class,
            ErrorClass::Server
        );
        assert_eq!(
            get("us-east-1", obj(SM, "Denied", None, None))
                .unwrap_err()
                .class,
            ErrorClass::Client(ClientKind::AccessDenied)
        );
    }

    #[test]
    fn unknown_fields_are_errors() {
        assert!(StoreFile::parse("secrets: {}").is_err());
    }
}
