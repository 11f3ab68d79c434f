//! The mount use case over mocked ports.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::*;
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::secret::SecretValue;
use crate::domain::versions::ObjectVersion;
use crate::ports::identity::MockIdentityResolver;
use crate::ports::sink::MockMountSink;
use crate::ports::store::MockSecretStore;
use crate::ports::OutputFile;
use crate::ports::{Fetched, Identity, IdentityError, StoreError};
use crate::service::RawMountRequest;

fn attributes(objects: &str, extra: &[(&str, &str)]) -> String {
    let mut map: HashMap<&str, &str> = extra.iter().copied().collect();
    map.insert("objects", objects);
    map.insert("csi.storage.k8s.io/pod.namespace", "shop");
    map.insert("csi.storage.k8s.io/serviceAccount.name", "web");
    serde_json::to_string(&map).unwrap()
}

fn raw(objects: &str, extra: &[(&str, &str)]) -> RawMountRequest {
    RawMountRequest {
        attributes: attributes(objects, extra),
        permission: "420".to_string(),
        target_path: "/target".to_string(),
        current_versions: vec![],
        secrets: String::new(),
    }
}

fn request(objects: &str, extra: &[(&str, &str)]) -> MountRequest {
    raw(objects, extra).parse(None).unwrap()
}

fn identity_mock() -> MockIdentityResolver {
    let mut identity = MockIdentityResolver::new();
    identity
        .expect_identity()
        .returning(|pod, auth, _| Ok(Identity::of_pod(pod, auth)));
    identity.expect_node_region().returning(|_| Ok(None));
    identity
}

/// (region, batch size) of every store call.
type Calls = Arc<Mutex<Vec<(String, usize)>>>;

/// A store answering from a map keyed by (region, name); everything else is not found.
fn store_mock(
    values: &[(&str, &str, &str)],
    failures: &[(&str, &str, ErrorClass)],
) -> (MockSecretStore, Calls) {
    let values: HashMap<(String, String), String> = values
        .iter()
        .map(|(r, n, v)| ((r.to_string(), n.to_string()), v.to_string()))
        .collect();
    let failures: HashMap<(String, String), ErrorClass> = failures
        .iter()
        .map(|(r, n, c)| ((r.to_string(), n.to_string()), *c))
        .collect();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let mut store = MockSecretStore::new();
    store.expect_fetch().returning(move |region, _, batch| {
        seen.lock().unwrap().push((region.to_string(), batch.len()));
        batch
            .iter()
            .map(|o| {
                let key = (region.to_string(), o.name.clone());
                if let Some(class) = failures.get(&key) {
                    return Err(StoreError::new(*class, format!("{} failed", o.name)));
                }
                match values.get(&key) {
                    Some(v) => Ok(Fetched {
                        value: SecretValue::new(v.as_bytes().to_vec()),
                        version: format!("v-{region}"),
                    }),
                    None => Err(StoreError::new(
                        ErrorClass::Client(ClientKind::NotFound),
                        format!("{} not found", o.name),
                    )),
                }
            })
            .collect()
    });
    (store, calls)
}

fn capturing_sink() -> (MockMountSink, Arc<Mutex<Vec<OutputFile>>>) {
    let written = Arc::new(Mutex::new(Vec::new()));
    let w = written.clone();
    let mut sink = MockMountSink::new();
    sink.expect_writes_files().return_const(true);
    sink.expect_publish().returning(move |target, files, _| {
        assert_eq!(target.to_string(), "/target");
        *w.lock().unwrap() = files;
        Ok(Published::Written)
    });
    (sink, written)
}

fn service(
    identity: MockIdentityResolver,
    store: MockSecretStore,
    sink: MockMountSink,
    default_region: Option<&str>,
) -> MountService {
    let settings = MountSettings {
        default_region: default_region.map(|r| Region::parse(r).unwrap()),
        ..MountSettings::default()
    };
    MountService::new(
        Arc::new(identity),
        Arc::new(store),
        Arc::new(sink),
        settings,
    )
}

fn no_sink() -> MockMountSink {
    let mut sink = MockMountSink::new();
    sink.expect_writes_files().return_const(true);
    sink.expect_publish().never();
    sink
}

const CLASS: &str = r#"
- objectName: MySecret
  objectType: secretsmanager
  filePermission: "0600"
  jmesPath:
    - {path: username, objectAlias: user}
- objectName: /app/host
  objectType: ssmparameter
"#;

#[tokio::test]
async fn mounts_objects_and_their_jmes_files_with_modes_and_versions() {
    let (store, _) = store_mock(
        &[
            ("us-east-1", "MySecret", r#"{"username":"memeuser"}"#),
            ("us-east-1", "/app/host", "db"),
        ],
        &[],
    );
    let (sink, written) = capturing_sink();
    let svc = service(identity_mock(), store, sink, None);
    let out = svc
        .mount(request(CLASS, &[("region", "us-east-1")]))
        .await
        .unwrap();
    let files = written.lock().unwrap().clone();
    let summary: Vec<(String, u32, Vec<u8>)> = files
        .iter()
        .map(|f| {
            (
                f.path.to_string(),
                f.mode.bits(),
                f.contents.expose().to_vec(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "MySecret".to_string(),
                0o600,
                br#"{"username":"memeuser"}"#.to_vec()
            ),
            ("user".to_string(), 0o600, b"memeuser".to_vec()),
            ("_app_host".to_string(), 0o644, b"db".to_vec()),
        ]
    );
    let ids: Vec<(&str, &str)> = out
        .versions
        .iter()
        .map(|v| (v.id.as_str(), v.version.as_str()))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("MySecret", "v-us-east-1"),
            ("_app_host", "v-us-east-1"),
            ("user", "v-us-east-1")
        ]
    );
    assert_eq!(out.objects, 2);
    assert!(out.files.is_none());
}

#[tokio::test]
async fn an_invalid_class_fetches_and_writes_nothing() {
    let mut store = MockSecretStore::new();
    store.expect_fetch().never();
    let mut identity = MockIdentityResolver::new();
    identity.expect_identity().never();
    let svc = service(identity, store, no_sink(), None);
    let err = svc
        .mount(request(
            "- objectName: a\n  objectType: ssm\n",
            &[("region", "us-east-1")],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, MountError::Class(_)), "{err}");
    assert!(err.to_string().contains("\"a\""), "{err}");
}

/// No region anywhere: the node would be asked, but a broken class is refused first,
/// before any identity lookup or network call.
#[tokio::test]
async fn a_broken_class_is_refused_before_the_node_identity_or_store_is_asked() {
    let mut identity = MockIdentityResolver::new();
    identity.expect_node_region().never();
    identity.expect_identity().never();
    let mut store = MockSecretStore::new();
    store.expect_fetch().never();
    store.expect_select().never();
    let svc = service(identity, store, no_sink(), None);
    let err = svc
        .mount(request("- objectName: a\n  objectType: ssm\n", &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, MountError::Class(_)), "{err}");
    assert!(err.to_string().contains("\"a\""), "{err}");
    // A failover region equal to the primary, likewise.
    let mut identity = MockIdentityResolver::new();
    identity.expect_node_region().never();
    identity.expect_identity().never();
    let mut store = MockSecretStore::new();
    store.expect_fetch().never();
    let svc = service(identity, store, no_sink(), Some("us-east-1"));
    let err = svc
        .mount(request(
            "- {objectName: s, objectType: secretsmanager}\n",
            &[("failoverRegion", "us-east-1")],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, MountError::SameRegions(_)), "{err}");
}

/// The node's region, learned after the check, still meets the ARN-region rule before
/// the identity or the store is asked.
#[tokio::test]
async fn an_arn_in_another_region_than_the_nodes_is_refused_before_any_fetch() {
    let mut identity = MockIdentityResolver::new();
    identity
        .expect_node_region()
        .times(1)
        .returning(|_| Ok(Some(Region::parse("us-east-1").unwrap())));
    identity.expect_identity().never();
    let mut store = MockSecretStore::new();
    store.expect_fetch().never();
    let svc = service(identity, store, no_sink(), None);
    let err = svc
        .mount(request(
            "- objectName: arn:aws:secretsmanager:us-west-2:111122223333:secret:s\n",
            &[],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MountError::Class(e) if e.has(crate::domain::objects::Rule::ArnRegionMismatch)),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("the ARN's region `us-west-2` is not the region `us-east-1`"),
        "{err}"
    );
}

#[tokio::test]
async fn region_comes_from_attribute_then_provider_then_node() {
    let (store, calls) = store_mock(
        &[
            ("eu-west-1", "s", "x"),
            ("ap-south-1", "s", "x"),
            ("us-east-2", "s", "x"),
        ],
        &[],
    );
    let (sink, _) = capturing_sink();
    let mut identity = identity_mock();
    identity.checkpoint();
    identity
        .expect_identity()
        .returning(|pod, auth, _| Ok(Identity::of_pod(pod, auth)));
    identity
        .expect_node_region()
        .times(1)
        .returning(|_| Ok(Some(Region::parse("us-east-2").unwrap())));
    let class = "- {objectName: s, objectType: secretsmanager}\n";
    let with_default = service(identity, store, sink, None);
    with_default
        .mount(request(class, &[("region", "eu-west-1")]))
        .await
        .unwrap();
    with_default.mount(request(class, &[])).await.unwrap();
    let regions: Vec<String> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|(r, _)| r.clone())
        .collect();
    assert_eq!(regions, vec!["eu-west-1", "us-east-2"]);

    let (store, calls) = store_mock(&[("ap-south-1", "s", "x")], &[]);
    let (sink, _) = capturing_sink();
    let mut identity = identity_mock();
    identity.checkpoint();
    identity
        .expect_identity()
        .returning(|pod, auth, _| Ok(Identity::of_pod(pod, auth)));
    identity.expect_node_region().never();
    service(identity, store, sink, Some("ap-south-1"))
        .mount(request(class, &[]))
        .await
        .unwrap();
    assert_eq!(calls.lock().unwrap()[0].0, "ap-south-1");
}

#[tokio::test]
async fn no_region_anywhere_is_an_error() {
    let mut store = MockSecretStore::new();
    store.expect_fetch().never();
    let svc = service(identity_mock(), store, no_sink(), None);
    let err = svc
        .mount(request(
            "- {objectName: s, objectType: secretsmanager}\n",
            &[],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, MountError::NoRegion));
}

#[tokio::test]
async fn a_failed_node_lookup_says_the_region_is_unknown_and_how_to_set_it() {
    let mut identity = MockIdentityResolver::new();
    identity.expect_identity().never();
    identity.expect_node_region().returning(|_| {
        Err(IdentityError::Region(
            "pod shop/web-1 not found".to_string().into(),
        ))
    });
    let mut store = MockSecretStore::new();
    store.expect_fetch().never();
    let svc = service(identity, store, no_sink(), None);
    let err = svc
        .mount(request(
            "- {objectName: s, objectType: secretsmanager}\n",
            &[],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, MountError::RegionLookup(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("could not determine the region"), "{text}");
    assert!(text.contains("pod shop/web-1 not found"), "{text}");
    assert!(
        text.contains("`region`") && text.contains("AWS_REGION"),
        "{text}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "the cause is kept"
    );
}

#[tokio::test]
async fn unknown_keys_mount_and_are_reported() {
    let (store, _) = store_mock(&[("us-east-1", "s", "x")], &[]);
    let (sink, written) = capturing_sink();
    let svc = service(identity_mock(), store, sink, Some("us-east-1"));
    let out = svc
        .mount(request(
            "- {objectName: s, objectType: secretsmanager, objectAlais: t}\n",
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(written.lock().unwrap().len(), 1);
    assert_eq!(out.unknown_keys.len(), 1);
    assert_eq!(out.unknown_keys[0].key, "objectAlais");
}

const FAILOVER: &str = "- {objectName: s, objectType: secretsmanager, objectAlias: s, failoverObject: {objectName: s-dr}}\n";
const TWO_REGIONS: &[(&str, &str)] = &[("region", "us-east-1"), ("failoverRegion", "us-west-2")];

#[tokio::test]
async fn failover_server_error_in_primary_uses_the_failover_answer() {
    let (store, _) = store_mock(
        &[("us-west-2", "s-dr", "from-west")],
        &[("us-east-1", "s", ErrorClass::Server)],
    );
    let (sink, written) = capturing_sink();
    let out = service(identity_mock(), store, sink, None)
        .mount(request(FAILOVER, TWO_REGIONS))
        .await
        .unwrap();
    assert_eq!(written.lock().unwrap()[0].contents.expose(), b"from-west");
    assert_eq!(out.versions[0].version, "v-us-west-2");
}

#[tokio::test]
async fn failover_both_answer_primary_wins() {
    let (store, _) = store_mock(
        &[
            ("us-east-1", "s", "from-east"),
            ("us-west-2", "s-dr", "from-west"),
        ],
        &[],
    );
    let (sink, written) = capturing_sink();
    service(identity_mock(), store, sink, None)
        .mount(request(FAILOVER, TWO_REGIONS))
        .await
        .unwrap();
    assert_eq!(written.lock().unwrap()[0].contents.expose(), b"from-east");
}

#[tokio::test]
async fn failover_client_error_fails_the_mount_and_writes_nothing() {
    let (store, _) = store_mock(
        &[("us-east-1", "s", "from-east")],
        &[(
            "us-west-2",
            "s-dr",
            ErrorClass::Client(ClientKind::AccessDenied),
        )],
    );
    let err = service(identity_mock(), store, no_sink(), None)
        .mount(request(FAILOVER, TWO_REGIONS))
        .await
        .unwrap_err();
    match &err {
        MountError::Fetch { region, error, .. } => {
            assert_eq!(region.as_str(), "us-west-2");
            assert_eq!(error.class, ErrorClass::Client(ClientKind::AccessDenied));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("object \"s\""), "{err}");
}

#[tokio::test]
async fn a_failed_object_fails_the_whole_mount_and_counts_the_others() {
    let (store, _) = store_mock(&[("us-east-1", "ok", "v")], &[]);
    let class = "- {objectName: ok, objectType: secretsmanager}\n- {objectName: gone1, objectType: secretsmanager}\n- {objectName: gone2, objectType: secretsmanager}\n";
    let err = service(identity_mock(), store, no_sink(), None)
        .mount(request(class, &[("region", "us-east-1")]))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("gone1") && text.contains("1 more"), "{text}");
}

#[tokio::test]
async fn jmes_path_on_a_non_json_secret_writes_nothing() {
    let (store, _) = store_mock(&[("us-east-1", "s", "hunter2")], &[]);
    let class =
        "- {objectName: s, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: b}]}\n";
    let err = service(identity_mock(), store, no_sink(), None)
        .mount(request(class, &[("region", "us-east-1")]))
        .await
        .unwrap_err();
    assert!(matches!(err, MountError::Extract { .. }));
    assert!(!err.to_string().contains("hunter2"));
}

#[tokio::test]
async fn current_versions_not_overwritten_are_passed_back() {
    let (store, _) = store_mock(&[("us-east-1", "s", "v")], &[]);
    let (sink, _) = capturing_sink();
    let mut req = request(
        "- {objectName: s, objectType: secretsmanager}\n",
        &[("region", "us-east-1")],
    );
    req.current_versions = vec![
        ObjectVersion {
            id: "gone".into(),
            version: "7".into(),
        },
        ObjectVersion {
            id: "s".into(),
            version: "old".into(),
        },
    ];
    let out = service(identity_mock(), store, sink, None)
        .mount(req)
        .await
        .unwrap();
    let ids: Vec<(&str, &str)> = out
        .versions
        .iter()
        .map(|v| (v.id.as_str(), v.version.as_str()))
        .collect();
    assert_eq!(ids, vec![("gone", "7"), ("s", "v-us-east-1")]);
}

#[tokio::test]
async fn a_store_breaking_its_contract_is_an_internal_error_not_a_panic() {
    let mut store = MockSecretStore::new();
    store.expect_fetch().returning(|_, _, _| vec![]);
    let err = service(identity_mock(), store, no_sink(), None)
        .mount(request(
            "- {objectName: s, objectType: secretsmanager}\n",
            &[("region", "us-east-1")],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, MountError::Internal(_)));
}

#[test]
fn a_bad_permission_is_refused() {
    // Refused while parsing, before the service (and any fetch) sees the request.
    let mut req = raw(
        "- {objectName: s, objectType: secretsmanager}\n",
        &[("region", "us-east-1")],
    );
    req.permission = "0644x".into();
    let err = req.parse(None).unwrap_err();
    assert!(matches!(err, MountError::Permission(_)));
}

#[tokio::test]
async fn a_value_over_the_size_limit_fails_alone_and_writes_nothing() {
    let big = "x".repeat(300 * 1024);
    let (store, _) = store_mock(
        &[("us-east-1", "big", &big), ("us-east-1", "small", "v")],
        &[],
    );
    let settings = MountSettings {
        max_secret_bytes: 256 * 1024,
        ..MountSettings::default()
    };
    let (sink, written) = capturing_sink();
    let svc = MountService::new(
        Arc::new(identity_mock()),
        Arc::new(store),
        Arc::new(sink),
        settings,
    );
    let err = svc
        .mount(request(
            "- {objectName: big, objectType: secretsmanager}\n",
            &[("region", "us-east-1")],
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MountError::Limit(_)) && err.to_string().contains("max_secret_bytes"),
        "{err}"
    );
    assert!(written.lock().unwrap().is_empty());
    svc.mount(request(
        "- {objectName: small, objectType: secretsmanager}\n",
        &[("region", "us-east-1")],
    ))
    .await
    .unwrap();
}

fn with_settings(
    store: MockSecretStore,
    sink: MockMountSink,
    settings: MountSettings,
) -> MountService {
    MountService::new(
        Arc::new(identity_mock()),
        Arc::new(store),
        Arc::new(sink),
        settings,
    )
}

#[tokio::test]
async fn near_the_cgroup_limit_a_mount_that_writes_files_is_refused_before_any_fetch() {
    let mut store = MockSecretStore::new();
    store.expect_fetch().never();
    let mut gauge = crate::ports::memory::MockMemoryGauge::new();
    gauge.expect_memory().returning(|| {
        Some(crate::ports::MemoryUse {
            used: 95 * 1024 * 1024,
            limit: 100 * 1024 * 1024,
        })
    });
    let settings = MountSettings {
        default_region: Region::parse("us-east-1").ok(),
        memory: MemoryWatch(Arc::new(gauge)),
        ..MountSettings::default()
    };
    let err = with_settings(store, no_sink(), settings)
        .mount(request(
            "- {objectName: s, objectType: secretsmanager}\n",
            &[],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, MountError::MemoryPressure { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("95 MiB of its 100 MiB"), "{text}");
    assert!(
        text.contains("driverWritesSecrets") && text.contains("resources.limits.memory"),
        "{text}"
    );
}

#[tokio::test]
async fn the_payload_itself_must_fit_under_the_cgroup_limit() {
    let (store, _) = store_mock(&[("us-east-1", "s", &"x".repeat(4096))], &[]);
    let mut gauge = crate::ports::memory::MockMemoryGauge::new();
    // 89.99% used: room for nothing bigger than a few bytes.
    gauge.expect_memory().returning(|| {
        Some(crate::ports::MemoryUse {
            used: 8999,
            limit: 10_000,
        })
    });
    let settings = MountSettings {
        default_region: Region::parse("us-east-1").ok(),
        memory: MemoryWatch(Arc::new(gauge)),
        ..MountSettings::default()
    };
    let err = with_settings(store, no_sink(), settings)
        .mount(request(
            "- {objectName: s, objectType: secretsmanager}\n",
            &[],
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, MountError::MemoryPressure { .. }), "{err}");
}

#[tokio::test]
async fn a_class_whose_worst_case_exceeds_the_memory_budget_still_mounts_alone() {
    let (store, _) = store_mock(&[("us-east-1", "a", "1"), ("us-east-1", "b", "2")], &[]);
    let (sink, written) = capturing_sink();
    let settings = MountSettings {
        default_region: Region::parse("us-east-1").ok(),
        memory_budget_bytes: 100 * 1024,
        ..MountSettings::default()
    };
    // Two objects at the 64 KiB default are 128 KiB at worst: more than the budget.
    with_settings(store, sink, settings)
        .mount(request(
            "- {objectName: a, objectType: secretsmanager}\n- {objectName: b, objectType: secretsmanager}\n",
            &[],
        ))
        .await
        .unwrap();
    assert_eq!(written.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn the_budget_is_given_back_when_the_outcome_is_dropped() {
    let value = "x".repeat(60 * 1024);
    let (store, _) = store_mock(&[("us-east-1", "s", &value)], &[]);
    let (sink, _) = capturing_sink();
    let settings = MountSettings {
        default_region: Region::parse("us-east-1").ok(),
        memory_budget_bytes: 64 * 1024,
        ..MountSettings::default()
    };
    let svc = with_settings(store, sink, settings);
    let mut held = None;
    for _ in 0..3 {
        // A mount reserves the whole 64 KiB and keeps 60 while its outcome lives: the
        // next one fits only once the previous outcome is gone.
        drop(held.take());
        let mut req = request("- {objectName: s, objectType: secretsmanager}\n", &[]);
        req.gate = crate::service::gate_for(std::time::Duration::from_secs(2));
        held = Some(svc.mount(req).await.unwrap());
    }
    let mut req = request("- {objectName: s, objectType: secretsmanager}\n", &[]);
    req.gate = crate::service::gate_for(std::time::Duration::from_millis(600));
    let err = svc.mount(req).await.unwrap_err();
    assert!(err.to_string().contains("stayed taken"), "{err}");
}

#[tokio::test]
async fn a_huge_object_name_is_quoted_by_a_bounded_prefix() {
    let name = "n".repeat(262_000);
    let svc = service(
        identity_mock(),
        MockSecretStore::new(),
        no_sink(),
        Some("us-east-1"),
    );
    let err = svc
        .mount(request(
            &format!("- {{objectName: {name}, objectType: secretsmanager, objectAlias: ../x}}\n"),
            &[],
        ))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.len() < 2_000, "{} bytes", text.len());
    assert!(text.contains("262000 bytes in all"), "{}", &text[..300]);
}

#[tokio::test]
async fn a_mount_that_fails_at_its_deadline_never_changes_the_disk_afterwards() {
    // The writer waits for a target locked by another process; the deadline passes; the
    // lock comes free later: the files the mount fetched must never appear.
    let dir = tempfile::tempdir().unwrap();
    let held = std::fs::File::open(dir.path()).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let (store, _) = store_mock(&[("us-east-1", "s", "late value")], &[]);
    let svc = MountService::new(
        Arc::new(identity_mock()),
        Arc::new(store),
        Arc::new(crate::adapters::fs_sink::FsSink::new()),
        MountSettings {
            default_region: Region::parse("us-east-1").ok(),
            ..MountSettings::default()
        },
    );
    let limit = std::time::Duration::from_millis(300);
    let mut raw = raw("- {objectName: s, objectType: secretsmanager}\n", &[]);
    raw.target_path = dir.path().to_str().unwrap().to_string();
    let mut req = raw.parse(None).unwrap();
    req.gate = crate::service::gate_for(limit);
    let gate = req.gate.clone();
    let err = crate::service::within_deadline(svc.mount(req), &gate, limit)
        .await
        .and_then(|r| r)
        .unwrap_err();
    assert!(
        matches!(
            err,
            MountError::Deadline(_) | MountError::Write(crate::ports::SinkError::Abandoned { .. })
        ),
        "{err}"
    );
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was published after the failure"
    );
}

#[test]
fn the_volumes_secret_is_never_printed_and_ignored_unless_the_class_uses_it() {
    let mut r = raw("- {objectName: a, objectType: secretsmanager}", &[]);
    r.secrets = r#"{"aws_secret_access_key": "leak-me"}"#.into();
    assert!(!format!("{r:?}").contains("leak-me"));
    r.secrets = "not json leak-me".into();
    assert!(
        r.clone().parse(None).is_ok(),
        "a class that does not use it"
    );
    let mut uses = raw(
        "- {objectName: a, objectType: secretsmanager}",
        &[("authentication", "nodePublishSecretRef")],
    );
    uses.secrets = "not json leak-me".into();
    let e = uses.parse(None).unwrap_err();
    assert!(!e.to_string().contains("leak-me"), "{e}");
}

#[tokio::test]
async fn a_hostile_expression_fails_its_mount_as_a_limit_and_writes_nothing() {
    let (store, _) = store_mock(&[("us-east-1", "s", r#"{"a":"x"}"#)], &[]);
    let side = format!(
        "(@ | {})",
        vec![format!("[{}]", vec!["@"; 16].join(",")); 9].join(" | ")
    );
    let class = format!(
        "- {{objectName: s, objectType: secretsmanager, jmesPath: [{{path: '[{side}, {side}] | [0] == [1]', objectAlias: b}}]}}\n"
    );
    let err = service(identity_mock(), store, no_sink(), None)
        .mount(request(&class, &[("region", "us-east-1")]))
        .await
        .unwrap_err();
    assert!(matches!(err, MountError::Limit(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("object \"s\" (#1)") && text.contains("max_jmes_path_steps"),
        "{text}"
    );
}
