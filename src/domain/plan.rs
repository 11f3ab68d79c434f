//! The mount's plan: from the class's objects and their fetched values to every file
//! (path, mode, contents, version) and the versions the response reports, in one pass,
//! so files, summary and versions can never disagree.

use super::extract::{extract, ExtractError};
use super::mode::FileMode;
use super::naming::FileName;
use super::objects::ObjectSpec;
use super::secret::SecretValue;
use super::versions::{response_versions, ObjectVersion};

/// A value and the version it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub value: SecretValue,
    /// Secrets Manager VersionId, or the SSM version number in decimal.
    pub version: String,
}

/// One file of a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub path: FileName,
    pub mode: FileMode,
    pub contents: SecretValue,
}

/// A file of a mount, without its contents: what people and the response see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub path: String,
    pub mode: FileMode,
    pub version: String,
}

#[derive(Debug, Clone)]
pub struct MountPlan {
    pub files: Vec<OutputFile>,
    /// The same files without contents, in the same order.
    pub summary: Vec<FileSummary>,
    /// What the response reports: every file's version, plus those the pod had that
    /// this mount does not overwrite.
    pub versions: Vec<ObjectVersion>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{object} is {size} bytes, more than max_secret_bytes ({max})")]
    TooLarge {
        object: String,
        size: usize,
        max: usize,
    },
    #[error(
        "{object}: jmesPath `{alias}` produced {size} bytes, more than max_secret_bytes ({max})"
    )]
    ExtractedTooLarge {
        object: String,
        alias: String,
        size: usize,
        max: usize,
    },
    #[error("the files of this mount total more than {max} bytes (memory_budget_bytes): raise it, or split the class")]
    MountTooLarge { max: usize },
    #[error("{object}: {source}")]
    Extract {
        object: String,
        #[source]
        source: ExtractError,
    },
}

/// Every object's file (its whole value) and its jmesPath files, each carrying the
/// object's version. `fetched` is in object order. No file may be larger than
/// `max_secret_bytes`, and all of them together not larger than `max_total_bytes`
/// (checked as they are made, so a class cannot make the plan itself huge).
pub fn plan_mount(
    objects: &[ObjectSpec],
    fetched: &[Fetched],
    max_secret_bytes: usize,
    max_total_bytes: usize,
    current: &[ObjectVersion],
) -> Result<MountPlan, PlanError> {
    let mut total = 0usize;
    let mut files = Vec::new();
    let mut summary = Vec::new();
    for (object, fetched) in objects.iter().zip(fetched) {
        if fetched.value.len() > max_secret_bytes {
            return Err(PlanError::TooLarge {
                object: object.describe(),
                size: fetched.value.len(),
                max: max_secret_bytes,
            });
        }
    }
    for (object, fetched) in objects.iter().zip(fetched) {
        let extracted =
            extract(&fetched.value, &object.jmes).map_err(|source| PlanError::Extract {
                object: object.describe(),
                source,
            })?;
        for (entry, e) in object.jmes.iter().zip(&extracted) {
            if e.value.len() > max_secret_bytes {
                return Err(PlanError::ExtractedTooLarge {
                    object: object.describe(),
                    alias: crate::domain::text::bounded(&entry.alias),
                    size: e.value.len(),
                    max: max_secret_bytes,
                });
            }
        }
        let whole = OutputFile {
            path: object.file.clone(),
            mode: object.mode,
            contents: fetched.value.clone(),
        };
        let parts = extracted.into_iter().map(|e| OutputFile {
            path: e.file,
            mode: e.mode,
            contents: e.value,
        });
        for file in std::iter::once(whole).chain(parts) {
            total = total.saturating_add(file.contents.len());
            if total > max_total_bytes {
                return Err(PlanError::MountTooLarge {
                    max: max_total_bytes,
                });
            }
            summary.push(FileSummary {
                path: file.path.to_string(),
                mode: file.mode,
                version: fetched.version.clone(),
            });
            files.push(file);
        }
    }
    let written: Vec<ObjectVersion> = summary
        .iter()
        .map(|f| ObjectVersion {
            id: f.path.clone(),
            version: f.version.clone(),
        })
        .collect();
    Ok(MountPlan {
        files,
        summary,
        versions: response_versions(&written, current),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::naming::PathTranslation;
    use crate::domain::objects::{parse_objects, ClassContext, YamlLimits};

    fn objects(yaml: &str) -> Vec<ObjectSpec> {
        let ctx = ClassContext {
            translation: PathTranslation::default(),
            default_mode: FileMode::DEFAULT,
            primary_region: None,
            failover_region: None,
            limits: YamlLimits::default(),
            strict: false,
        };
        parse_objects(yaml, &ctx).unwrap().objects
    }

    fn fetched(value: &str, version: &str) -> Fetched {
        Fetched {
            value: SecretValue::new(value.as_bytes().to_vec()),
            version: version.into(),
        }
    }

    #[test]
    fn every_file_with_its_mode_contents_and_its_objects_version() {
        let specs = objects("- {objectName: db, objectType: secretsmanager, filePermission: \"0600\", jmesPath: [{path: user, objectAlias: u, filePermission: \"0400\"}]}\n- {objectName: /app/p, objectType: ssmparameter}\n");
        let plan = plan_mount(
            &specs,
            &[fetched(r#"{"user":"admin"}"#, "v7"), fetched("p", "3")],
            1024,
            1 << 20,
            &[],
        )
        .unwrap();
        let shown: Vec<(String, u32, String)> = plan
            .summary
            .iter()
            .map(|f| (f.path.clone(), f.mode.bits(), f.version.clone()))
            .collect();
        assert_eq!(
            shown,
            [
                ("db".into(), 0o600, "v7".into()),
                ("u".into(), 0o400, "v7".into()),
                ("_app_p".into(), 0o644, "3".into()),
            ]
        );
        assert_eq!(plan.files[1].contents.expose(), b"admin");
        assert_eq!(plan.files.len(), plan.summary.len());
        let ids: Vec<&str> = plan.versions.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["_app_p", "db", "u"], "sorted by id");
    }

    #[test]
    fn versions_the_pod_had_pass_through() {
        let specs = objects("- {objectName: a, objectType: secretsmanager}\n");
        let current = [ObjectVersion {
            id: "gone".into(),
            version: "1".into(),
        }];
        let plan = plan_mount(&specs, &[fetched("x", "v2")], 1024, 1 << 20, &current).unwrap();
        assert_eq!(plan.versions.len(), 2);
    }

    #[test]
    fn a_value_over_the_limit_or_a_failed_extraction_names_the_object() {
        let specs = objects("- {objectName: a, objectType: secretsmanager, jmesPath: [{path: k, objectAlias: k}]}\n");
        let err = plan_mount(&specs, &[fetched("12345", "v")], 4, 1 << 20, &[]).unwrap_err();
        assert!(matches!(err, PlanError::TooLarge { size: 5, .. }), "{err}");
        let err = plan_mount(&specs, &[fetched("not json", "v")], 1024, 1 << 20, &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "object \"a\" (#1): invalid JSON used with jmesPath"
        );
    }

    #[test]
    fn many_jmes_files_cannot_make_the_plan_larger_than_its_bound() {
        // Thousands of entries extracting the same value: refused as soon as the files
        // pass the bound, not after all of them were made.
        let entries: Vec<String> = (0..2000)
            .map(|i| format!("{{path: a, objectAlias: f{i}}}"))
            .collect();
        let specs = objects(&format!(
            "- {{objectName: s, objectType: secretsmanager, jmesPath: [{}]}}\n",
            entries.join(", ")
        ));
        let value = format!(r#"{{"a":"{}"}}"#, "x".repeat(60_000));
        let err = plan_mount(&specs, &[fetched(&value, "v")], 65536, 1 << 20, &[]).unwrap_err();
        assert!(matches!(err, PlanError::MountTooLarge { .. }), "{err}");
    }
}
