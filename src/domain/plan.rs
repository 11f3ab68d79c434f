//! The mount's plan: from the class's objects and their fetched values to every file
//! (path, mode, contents, version) and the versions the response reports, in one pass,
//! so files, summary and versions can never disagree.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use super::certificate::{bundle, CertificateError};
use super::encoding::DecodeError;
use super::expand::{expand, ExpandError};
use super::extract::{Document, ExtractError};
use super::fetched::{Fetched, Selected};
use super::files::{FileSummary, OutputFile};
use super::jmes::{BudgetError, Cancel, JmesLimits, Meter};
use super::naming::{FileName, FileNameError, PathTranslation};
use super::objects::{ObjectKind, ObjectSpec, SelectionSpec};
use super::text::bounded;
use super::versions::{response_versions, ObjectVersion};

#[derive(Debug, Clone)]
pub struct MountPlan {
    pub files: Vec<OutputFile>,
    /// The same files without contents, in the same order.
    pub summary: Vec<FileSummary>,
    /// What the response reports: every file's version, plus those the pod had that
    /// this mount does not overwrite.
    pub versions: Vec<ObjectVersion>,
    /// The files' contents and their per-file overhead: what they cost where written.
    pub total_bytes: usize,
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
    #[error("the files of this mount total more than {max} bytes (memory_budget_bytes, counting {FILE_OVERHEAD_BYTES} bytes per file): raise it, or split the class")]
    MountTooLarge { max: usize },
    #[error("the memory budget has no room now for the {needed} bytes this mount's files and parsed secrets need (memory_budget_bytes): retry, or raise it with the memory limit")]
    NoRoom { needed: usize },
    #[error("{object}: this mount would write more than {max} files (max_files_per_mount): raise it, or split the class")]
    TooManyFiles { object: String, max: usize },
    #[error("{object}: {source}")]
    Cancelled {
        object: String,
        #[source]
        source: BudgetError,
    },
    #[error("{object}: {source}")]
    Extract {
        object: String,
        #[source]
        source: ExtractError,
    },
    #[error("{object}: objectEncoding: {source}")]
    Decode {
        object: String,
        #[source]
        source: DecodeError,
    },
    #[error("{object}: {source}")]
    Certificate {
        object: String,
        #[source]
        source: CertificateError,
    },
    #[error("{object}: {source}")]
    Expand {
        object: String,
        #[source]
        source: ExpandError,
    },
    #[error(
        "{selection}: the match `{}` cannot be a file name: {source}",
        bounded(name)
    )]
    SelectedName {
        selection: String,
        name: String,
        #[source]
        source: FileNameError,
    },
    #[error("file `{}` of {second} {what} {first}", bounded(path))]
    Collision {
        path: String,
        first: String,
        second: String,
        what: &'static str,
    },
}

/// The memory a plan holds, asked for before each file or parsed secret is kept: the
/// service grows the mount's share of the budget (from what is free at once).
pub trait PlanMemory {
    /// Whether the plan may hold `bytes` (its files so far, or them and a parsed secret).
    fn hold(&mut self, bytes: usize) -> bool;
}

/// A fixed allowance: tools and tests.
impl PlanMemory for usize {
    fn hold(&mut self, bytes: usize) -> bool {
        bytes <= *self
    }
}

/// What one file costs the memory it is written to besides its contents: a tmpfs inode
/// and dentry, charged to the writer's memory cgroup. Measured: 46,000 empty files left
/// 62 MiB charged to the provider's cgroup, ~1.4 KiB each; rounded up.
pub const FILE_OVERHEAD_BYTES: usize = 2048;

/// Every object's file (its whole value) and its jmesPath files, each carrying the
/// object's version. `fetched` is in object order. No file may be larger than
/// `max_secret_bytes`, there may be no more than `max_files` of them, and all of them
/// together (with [`FILE_OVERHEAD_BYTES`] each) not larger than `max_total_bytes`:
/// each is counted before it is made, so a class cannot make the plan itself huge.
pub fn plan_mount(
    objects: &[ObjectSpec],
    fetched: &[Fetched],
    selected: &[(&SelectionSpec, Vec<Selected>)],
    limits: PlanLimits,
    current: &[ObjectVersion],
) -> Result<MountPlan, PlanError> {
    let (selections, matches): (Vec<&SelectionSpec>, Vec<&[Selected]>) =
        selected.iter().map(|(s, m)| (*s, m.as_slice())).unzip();
    check_value_sizes(
        objects,
        fetched,
        &selections,
        &matches,
        limits.max_secret_bytes,
    )?;
    let mut meter = Meter::new(limits.jmes, Cancel::default());
    let mut memory = limits.max_total_bytes;
    plan_mount_metered(
        objects,
        fetched,
        selected,
        limits,
        current,
        &mut meter,
        &mut memory,
    )
}

/// The size rule of fetched values: none larger than `max_secret_bytes` (decoding never
/// makes one larger, so every file made of a whole value is within it too). Selections
/// come with their matches, in the same order.
pub fn check_value_sizes(
    objects: &[ObjectSpec],
    fetched: &[Fetched],
    selections: &[impl Borrow<SelectionSpec>],
    selected: &[impl AsRef<[Selected]>],
    max_secret_bytes: usize,
) -> Result<(), PlanError> {
    let too_large = |object: String, size: usize| PlanError::TooLarge {
        object,
        size,
        max: max_secret_bytes,
    };
    if let Some((object, f)) = objects
        .iter()
        .zip(fetched)
        .find(|(_, f)| f.value.len() > max_secret_bytes)
    {
        return Err(too_large(object.describe(), f.value.len()));
    }
    for (selection, found) in selections.iter().zip(selected) {
        if let Some(m) = found
            .as_ref()
            .iter()
            .find(|m| m.fetched.value.len() > max_secret_bytes)
        {
            let selection: &SelectionSpec = selection.borrow();
            return Err(too_large(selection.describe(), m.fetched.value.len()));
        }
    }
    Ok(())
}

/// [`plan_mount`] with the mount's own meter (its cancel flag stops the plan too). The
/// values must have passed [`check_value_sizes`] (the mount checks them before it makes
/// room for them in its budget).
pub fn plan_mount_metered(
    objects: &[ObjectSpec],
    fetched: &[Fetched],
    selected: &[(&SelectionSpec, Vec<Selected>)],
    limits: PlanLimits,
    current: &[ObjectVersion],
    meter: &mut Meter,
    memory: &mut dyn PlanMemory,
) -> Result<MountPlan, PlanError> {
    let PlanLimits {
        max_secret_bytes,
        max_total_bytes,
        max_files,
        translation,
        jmes: _,
    } = limits;
    let mut total = 0usize;
    let mut files = Vec::new();
    let mut summary = Vec::new();
    // Who wrote each file, for the collision check.
    let mut owners: Vec<String> = Vec::new();
    let mut add = |file: OutputFile, version: &str, owner: String, memory: &mut dyn PlanMemory| {
        total = total
            .saturating_add(file.contents.len())
            .saturating_add(FILE_OVERHEAD_BYTES);
        if total > max_total_bytes {
            return Err(PlanError::MountTooLarge {
                max: max_total_bytes,
            });
        }
        if !memory.hold(total) {
            return Err(PlanError::NoRoom { needed: total });
        }
        summary.push(FileSummary {
            path: file.path.to_string(),
            mode: file.mode,
            version: version.to_string(),
        });
        files.push(file);
        owners.push(owner);
        Ok(total)
    };
    // What the files made so far hold (the last `add`'s answer), for the documents.
    let mut made = 0usize;
    // Files still allowed: each source of files claims its count before making them.
    let mut room = max_files;
    let claim = |room: &mut usize, count: usize, object: String| {
        *room = room.checked_sub(count).ok_or(PlanError::TooManyFiles {
            object,
            max: max_files,
        })?;
        Ok::<(), PlanError>(())
    };
    let cancelled = |object: String| move |source| PlanError::Cancelled { object, source };
    for (object, fetched) in objects.iter().zip(fetched) {
        meter
            .check_cancelled()
            .map_err(cancelled(object.describe()))?;
        claim(&mut room, object.jmes.len(), object.describe())?;
        let value = object
            .encoding
            .decode(&fetched.value)
            .map_err(|source| PlanError::Decode {
                object: object.describe(),
                source,
            })?;
        // The entries read the value after its own file took it (a copy `copies()` counts).
        let for_entries = (!object.jmes.is_empty()).then(|| value.clone());
        let own = if object.expand {
            expand(object, &value, room).map_err(|source| match source {
                ExpandError::TooManyKeys { .. } => PlanError::TooManyFiles {
                    object: object.describe(),
                    max: max_files,
                },
                source => PlanError::Expand {
                    object: object.describe(),
                    source,
                },
            })?
        } else {
            let contents = if object.primary.kind == ObjectKind::Acm {
                bundle(value.expose()).map_err(|source| PlanError::Certificate {
                    object: object.describe(),
                    source,
                })?
            } else {
                value
            };
            vec![OutputFile {
                path: object.file.clone(),
                mode: object.mode,
                contents,
            }]
        };
        claim(&mut room, own.len(), object.describe())?;
        for file in own {
            made = add(file, &fetched.version, object.describe(), memory)?;
        }
        let Some(value) = for_entries else {
            continue;
        };
        let extract_error = |source| PlanError::Extract {
            object: object.describe(),
            source,
        };
        // One entry at a time: each value is counted before the next is made.
        // The parsed secret is held while its entries are evaluated: counted first.
        let parsed = made.saturating_add(Document::cost(&value));
        if !memory.hold(parsed) {
            return Err(PlanError::NoRoom { needed: parsed });
        }
        let document = Document::parse(&value).map_err(extract_error)?;
        for entry in &object.jmes {
            let e = document
                .extract(entry, meter, max_secret_bytes)
                .map_err(extract_error)?;
            let file = OutputFile {
                path: e.file,
                mode: e.mode,
                contents: e.value,
            };
            made = add(file, &fetched.version, object.describe(), memory)?;
        }
    }
    for (selection, matches) in selected {
        meter
            .check_cancelled()
            .map_err(cancelled(selection.describe()))?;
        claim(&mut room, matches.len(), selection.describe())?;
        for m in matches {
            let path = FileName::from_object_name(&m.name, translation).map_err(|source| {
                PlanError::SelectedName {
                    selection: selection.describe(),
                    name: m.name.clone(),
                    source,
                }
            })?;
            let contents = selection
                .encoding
                .decode(&m.fetched.value)
                .map_err(|source| PlanError::Decode {
                    object: format!("{} match `{}`", selection.describe(), bounded(&m.name)),
                    source,
                })?;
            let file = OutputFile {
                path,
                mode: selection.mode,
                contents,
            };
            add(file, &m.fetched.version, selection.describe(), memory)?;
        }
    }
    check_collisions(&files, &owners)?;
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
        total_bytes: total,
    })
}

/// The bounds a plan is made within, and the class's path translation (for the names
/// of selected objects).
#[derive(Debug, Clone, Copy)]
pub struct PlanLimits {
    pub max_secret_bytes: usize,
    pub max_total_bytes: usize,
    /// Files of one mount, whatever makes them (objects, jmesPath, expandJson, matches).
    pub max_files: usize,
    pub translation: PathTranslation,
    /// The jmesPath allowance of the mount.
    pub jmes: JmesLimits,
}

/// Files of one mount by default: far above real classes (256 objects with a few
/// jmesPath entries each), far below what hurts (46,000 files left 62 MiB in tmpfs).
pub const DEFAULT_MAX_FILES: usize = 4096;

/// Files whose names are known only after the fetch (expanded keys, selected objects)
/// may meet each other or a listed object's file: the same path twice, or a file where
/// another needs a directory. Nothing is written then.
fn check_collisions(files: &[OutputFile], owners: &[String]) -> Result<(), PlanError> {
    let mut by_path: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, file) in files.iter().enumerate() {
        if let Some(&first) = by_path.get(file.path.as_str()) {
            return Err(PlanError::Collision {
                path: file.path.to_string(),
                first: owners[first].clone(),
                second: owners[i].clone(),
                what: "is also written by",
            });
        }
        by_path.insert(file.path.as_str(), i);
    }
    for (i, file) in files.iter().enumerate() {
        let path = file.path.as_str();
        for (end, _) in path.match_indices('/') {
            if let Some(&first) = by_path.get(&path[..end]) {
                return Err(PlanError::Collision {
                    path: path.to_string(),
                    first: owners[first].clone(),
                    second: owners[i].clone(),
                    what: "needs as a directory the file written by",
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mode::FileMode;
    use crate::domain::naming::PathTranslation;
    use crate::domain::objects::{parse_objects, ClassContext, YamlLimits};
    use crate::domain::secret::SecretValue;

    fn ctx() -> ClassContext<'static> {
        ClassContext {
            translation: PathTranslation::default(),
            default_mode: FileMode::DEFAULT,
            primary_region: None,
            failover_region: None,
            limits: YamlLimits::default(),
            strict: false,
            certificates: true,
        }
    }

    fn objects(yaml: &str) -> Vec<ObjectSpec> {
        parse_objects(yaml, &ctx()).unwrap().objects
    }

    fn limits(max_secret_bytes: usize, max_total_bytes: usize) -> PlanLimits {
        PlanLimits {
            max_secret_bytes,
            max_total_bytes,
            max_files: DEFAULT_MAX_FILES,
            translation: PathTranslation::default(),
            jmes: JmesLimits::default(),
        }
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
            &[],
            limits(1024, 1 << 20),
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
    fn a_certificate_is_its_bundle_and_the_parts_jmes_path_picks() {
        let specs = objects("- {objectName: \"arn:aws:acm:us-east-1:1:certificate/c\", objectAlias: all.pem, jmesPath: [{path: certificate, objectAlias: tls.crt}, {path: privateKey, objectAlias: tls.key}]}\n");
        let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let chain = "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n";
        let key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
        let document = crate::domain::certificate::document(cert, chain, key).unwrap();
        let fetched = Fetched {
            value: document,
            version: "0a:1b".into(),
        };
        let plan = plan_mount(&specs, &[fetched], &[], limits(1 << 16, 1 << 20), &[]).unwrap();
        let shown: Vec<(&str, u32, &str, &[u8])> = plan
            .files
            .iter()
            .zip(&plan.summary)
            .map(|(f, s)| {
                (
                    s.path.as_str(),
                    f.mode.bits(),
                    s.version.as_str(),
                    f.contents.expose(),
                )
            })
            .collect();
        let bundle = format!("{cert}{chain}{key}");
        assert_eq!(
            shown,
            [
                ("all.pem", 0o400, "0a:1b", bundle.as_bytes()),
                ("tls.crt", 0o644, "0a:1b", cert.as_bytes()),
                ("tls.key", 0o400, "0a:1b", key.as_bytes()),
            ]
        );
    }

    #[test]
    fn an_expanded_certificate_is_a_directory_of_its_three_parts_at_the_key_mode() {
        let specs = objects("- {objectName: \"arn:aws:acm:us-east-1:1:certificate/c\", objectAlias: tls, expandJson: true}\n");
        let pem = |label: &str| format!("-----BEGIN {label}-----\nMIIB\n-----END {label}-----\n");
        let document = crate::domain::certificate::document(
            &pem("CERTIFICATE"),
            &pem("CERTIFICATE"),
            &pem("PRIVATE KEY"),
        )
        .unwrap();
        let fetched = Fetched {
            value: document,
            version: "01".into(),
        };
        let plan = plan_mount(&specs, &[fetched], &[], limits(1 << 16, 1 << 20), &[]).unwrap();
        let shown: Vec<(&str, u32)> = plan
            .summary
            .iter()
            .map(|f| (f.path.as_str(), f.mode.bits()))
            .collect();
        assert_eq!(
            shown,
            [
                ("tls/certificate", 0o400),
                ("tls/certificateChain", 0o400),
                ("tls/privateKey", 0o400)
            ]
        );
        assert_eq!(
            plan.files[2].contents.expose(),
            pem("PRIVATE KEY").as_bytes()
        );
    }

    #[test]
    fn a_certificate_document_that_is_not_one_fails_its_object() {
        let specs = objects(
            "- {objectName: \"arn:aws:acm:us-east-1:1:certificate/c\", objectAlias: all.pem}\n",
        );
        let err = plan_mount(
            &specs,
            &[fetched("not json", "1")],
            &[],
            limits(1 << 16, 1 << 20),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::Certificate { .. }), "{err}");
    }

    #[test]
    fn versions_the_pod_had_pass_through() {
        let specs = objects("- {objectName: a, objectType: secretsmanager}\n");
        let current = [ObjectVersion {
            id: "gone".into(),
            version: "1".into(),
        }];
        let plan = plan_mount(
            &specs,
            &[fetched("x", "v2")],
            &[],
            limits(1024, 1 << 20),
            &current,
        )
        .unwrap();
        assert_eq!(plan.versions.len(), 2);
    }

    #[test]
    fn a_value_over_the_limit_or_a_failed_extraction_names_the_object() {
        let specs = objects("- {objectName: a, objectType: secretsmanager, jmesPath: [{path: k, objectAlias: k}]}\n");
        let err = plan_mount(
            &specs,
            &[fetched("12345", "v")],
            &[],
            limits(4, 1 << 20),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::TooLarge { size: 5, .. }), "{err}");
        let err = plan_mount(
            &specs,
            &[fetched("not json", "v")],
            &[],
            limits(1024, 1 << 20),
            &[],
        )
        .unwrap_err();
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
        let many = ClassContext {
            limits: YamlLimits {
                max_jmes_entries_per_object: 2000,
                max_jmes_entries_per_mount: 2000,
                ..YamlLimits::default()
            },
            ..ctx()
        };
        let yaml = format!(
            "- {{objectName: s, objectType: secretsmanager, jmesPath: [{}]}}\n",
            entries.join(", ")
        );
        let specs = parse_objects(&yaml, &many).unwrap().objects;
        let value = format!(r#"{{"a":"{}"}}"#, "x".repeat(60_000));
        let err = plan_mount(
            &specs,
            &[fetched(&value, "v")],
            &[],
            limits(65536, 1 << 20),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::MountTooLarge { .. }), "{err}");
    }

    fn paths(plan: &MountPlan) -> Vec<(String, String)> {
        plan.files
            .iter()
            .map(|f| {
                (
                    f.path.to_string(),
                    String::from_utf8(f.contents.expose().to_vec()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn an_expanded_object_is_a_directory_of_its_keys_in_order_with_the_objects_mode() {
        let specs = objects("- {objectName: app/db, objectType: secretsmanager, objectAlias: db, expandJson: true, filePermission: \"0400\", nonString: json}\n");
        let value = r#"{"user": "admin", "port": 5432.0, "opts": {"b": 1, "a": [true]}}"#;
        let plan = plan_mount(
            &specs,
            &[fetched(value, "v1")],
            &[],
            limits(1024, 1 << 20),
            &[],
        )
        .unwrap();
        assert_eq!(
            paths(&plan),
            [
                ("db/user".to_string(), "admin".to_string()),
                ("db/port".to_string(), "5432.0".to_string()),
                ("db/opts".to_string(), r#"{"b":1,"a":[true]}"#.to_string()),
            ]
        );
        assert!(plan.files.iter().all(|f| f.mode.bits() == 0o400));
        assert!(plan.summary.iter().all(|f| f.version == "v1"));
    }

    #[test]
    fn files_are_counted_before_they_are_made_and_empty_ones_are_not_free() {
        // 7,700 empty-valued keys: 0 bytes of contents, yet 7,700 inodes where written.
        let keys: Vec<String> = (0..7700).map(|i| format!(r#""k{i}":"""#)).collect();
        let value = format!("{{{}}}", keys.join(","));
        let specs = objects("- {objectName: s, objectType: secretsmanager, expandJson: true}\n");
        let err = plan_mount(
            &specs,
            &[fetched(&value, "v")],
            &[],
            limits(1 << 20, 1 << 30),
            &[],
        )
        .unwrap_err();
        assert!(
            matches!(err, PlanError::TooManyFiles { max: 4096, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("max_files_per_mount"), "{err}");
        let few: Vec<String> = (0..100).map(|i| format!(r#""k{i}":"""#)).collect();
        let value = format!("{{{}}}", few.join(","));
        let plan = plan_mount(
            &specs,
            &[fetched(&value, "v")],
            &[],
            limits(1 << 20, 1 << 30),
            &[],
        )
        .unwrap();
        assert_eq!(plan.total_bytes, 100 * FILE_OVERHEAD_BYTES);
        let err = plan_mount(
            &specs,
            &[fetched(&value, "v")],
            &[],
            limits(1 << 20, 99 * FILE_OVERHEAD_BYTES),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::MountTooLarge { .. }), "{err}");
    }

    #[test]
    fn files_and_parsed_secrets_are_held_before_they_are_kept() {
        let specs = objects(
            "- {objectName: s, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: x}]}\n",
        );
        let value = format!(r#"{{"a":"x","n":[{}0]}}"#, "0,".repeat(5000));
        let plan = |room: usize| {
            let mut meter = Meter::uncancelled();
            let mut memory = room;
            plan_mount_metered(
                &specs,
                &[fetched(&value, "v")],
                &[],
                limits(1 << 20, 1 << 30),
                &[],
                &mut meter,
                &mut memory,
            )
        };
        let parsed = Document::cost(&SecretValue::new(value.clone().into_bytes()));
        assert!(parsed > 5000 * 64, "every element counted: {parsed}");
        let err = plan(parsed).unwrap_err();
        assert!(matches!(err, PlanError::NoRoom { .. }), "{err}");
        assert!(err.to_string().contains("memory_budget_bytes"), "{err}");
        let err = plan(100).unwrap_err();
        assert!(
            matches!(err, PlanError::NoRoom { .. }),
            "the file itself: {err}"
        );
        assert!(plan(1 << 20).is_ok());
    }

    #[test]
    fn a_hostile_expression_fails_its_object_naming_the_limit() {
        let stage = format!("[{}][]", vec!["@"; 16].join(","));
        let path = format!("a | {}", vec![stage; 8].join(" | "));
        let specs = objects(&format!(
            "- {{objectName: s, objectType: secretsmanager, jmesPath: [{{path: '{path}', objectAlias: x}}]}}\n"
        ));
        let err = plan_mount(
            &specs,
            &[fetched(r#"{"a":"x"}"#, "v")],
            &[],
            limits(1024, 1 << 20),
            &[],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("object \"s\" (#1)") && text.contains("max_jmes_path_"),
            "{text}"
        );
    }

    #[test]
    fn expansion_refuses_what_is_not_an_object_bad_keys_and_non_strings_by_default() {
        let specs = objects("- {objectName: db, objectType: secretsmanager, expandJson: true}\n");
        let plan =
            |v: &str| plan_mount(&specs, &[fetched(v, "v")], &[], limits(1024, 1 << 20), &[]);
        for (value, says) in [
            ("[1, 2]", "needs a JSON object"),
            ("plain text", "needs a JSON object"),
            (r#"{"a": "1", "a": "2"}"#, "key `a` twice"),
            (r#"{"../etc": "x"}"#, "key `../etc`"),
            (r#"{"..": "x"}"#, "key `..`"),
            (r#"{"": "x"}"#, "it is empty"),
            (r#"{"n": 5}"#, "holds a number"),
        ] {
            let err = plan(value).unwrap_err();
            assert!(matches!(err, PlanError::Expand { .. }), "{value}: {err}");
            let text = err.to_string();
            assert!(
                text.starts_with("object \"db\" (#1)") && text.contains(says),
                "{value}: {text}"
            );
        }
    }

    #[test]
    fn expanded_keys_that_meet_a_selected_file_fail_naming_both() {
        // Listed objects cannot meet an expanded directory: the class's own checks treat
        // its name as a file. A selection's matches are known only now.
        let specs = objects("- {objectName: db, objectType: secretsmanager, expandJson: true}\n");
        let sel = selection("- {objectType: secretsmanager, select: {namePrefix: d}}\n");
        let err = plan_mount(
            &specs,
            &[fetched(r#"{"user": "a"}"#, "v")],
            &[(&sel, vec![selected("db", "x")])],
            limits(1024, 1 << 20),
            &[],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, PlanError::Collision { .. }), "{text}");
        assert_eq!(
            text,
            "file `db/user` of object \"db\" (#1) needs as a directory the file written by select name prefix `d` (#1)"
        );
    }

    #[test]
    fn an_object_decoded_from_base64_is_written_as_its_bytes_and_bad_input_names_it() {
        let specs =
            objects("- {objectName: ks, objectType: secretsmanager, objectEncoding: base64}\n");
        let plan = plan_mount(
            &specs,
            &[fetched("AAEC/w==\n", "v")],
            &[],
            limits(1024, 1 << 20),
            &[],
        )
        .unwrap();
        assert_eq!(plan.files[0].contents.expose(), &[0, 1, 2, 255]);
        let err = plan_mount(
            &specs,
            &[fetched("@@@", "v")],
            &[],
            limits(1024, 1 << 20),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::Decode { .. }));
        assert!(
            err.to_string()
                .starts_with("object \"ks\" (#1): objectEncoding:"),
            "{err}"
        );
    }

    fn selection(yaml: &str) -> SelectionSpec {
        parse_objects(yaml, &ctx()).unwrap().selections.remove(0)
    }

    fn selected(name: &str, value: &str) -> Selected {
        Selected {
            name: name.into(),
            fetched: fetched(value, "7"),
        }
    }

    #[test]
    fn selected_objects_are_named_by_path_translation_and_checked_like_listed_ones() {
        let sel = selection("- {objectType: ssmparameter, select: {path: /app}}\n");
        let specs = objects("- {objectName: db, objectType: secretsmanager}\n");
        let matches = vec![selected("/app/host", "h"), selected("/app/port", "5432")];
        let plan = plan_mount(
            &specs,
            &[fetched("d", "v")],
            &[(&sel, matches)],
            limits(1024, 1 << 20),
            &[],
        )
        .unwrap();
        assert_eq!(
            paths(&plan),
            [
                ("db".to_string(), "d".to_string()),
                ("_app_host".to_string(), "h".to_string()),
                ("_app_port".to_string(), "5432".to_string()),
            ]
        );
        assert_eq!(plan.summary[1].version, "7");
        let clash = vec![selected("db", "x")];
        let sm = selection("- {objectType: secretsmanager, select: {namePrefix: d}}\n");
        let err = plan_mount(
            &specs,
            &[fetched("d", "v")],
            &[(&sm, clash)],
            limits(1024, 1 << 20),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::Collision { .. }), "{err}");
        let dots = vec![selected("..data", "x")];
        let err = plan_mount(
            &specs,
            &[fetched("d", "v")],
            &[(&sm, dots)],
            limits(1024, 1 << 20),
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, PlanError::SelectedName { .. }), "{err}");
    }
}
