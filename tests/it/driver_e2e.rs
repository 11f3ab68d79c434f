//! The real Secrets Store CSI Driver v1.6.0 in the loop (`common::csi_node` runs the
//! node, `common::csi_cluster` the cluster side): the driver's node server, called by
//! csikubelet as the kubelet calls it, mounts a tmpfs and calls our provider binary as
//! deployed (its ServiceAccount's kubeconfig, IRSA with a token bound to the pod, moto
//! behind the fault proxy as AWS), against the real API server with the driver's CRDs and
//! RBAC.
//!
//! Rotation: the driver runs with rotation on and a poll interval of an hour, and a test
//! makes a target's rotation due by setting the target's mtime an hour back (the driver
//! decides from that mtime alone), so no test sleeps or depends on timing.

use crate::common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::csi_cluster::{self, PodVolume, DENIED_REGION, REGION, VALUE};
use common::csi_node::{age, mounted_type, Node, NodeConfig};
use common::fault_proxy::{Fault, Proxy};
use common::kube_fixtures::{create, eventually, label_node, namespace, shared, ROLE};
use common::moto::Moto;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, DynamicObject, ListParams};

const REMOUNT_FAILURES: &str = "secrets_store_provider_aws_remount_failures_total";
const CLASS: &str = "aws-secrets";
/// A class of one secret that does not exist.
const MISSING_OBJECTS: &str = "- {objectName: NoSuchSecret, objectType: secretsmanager}";
const OBJECTS: &str = r#"
- objectName: MySecret
  objectType: secretsmanager
  jmesPath:
    - {path: username, objectAlias: user, filePermission: "0400"}
"#;

/// One namespace's world: a node (driver and provider), moto behind the proxy, the
/// admin's client. The node is dropped first (its mounts undone), then AWS.
struct Scene {
    node: Node,
    admin: kube::Client,
    proxy: Proxy,
    moto: Moto,
    ns: String,
}

/// A namespace `ns` with ServiceAccount `web` (role ROLE), MySecret in moto, our
/// provider installed as `-<ns>` and run with `provider_flags`, and a node `node-<ns>`.
async fn scene(ns: &str, provider_flags: &[&str]) -> Option<Scene> {
    scene_with_role(ns, provider_flags, |_| {}).await
}

/// The same, with the provider's ClusterRole changed by `edit` (the chart's optional
/// rules).
async fn scene_with_role(
    ns: &str,
    provider_flags: &[&str],
    edit: impl FnOnce(&mut ClusterRole),
) -> Option<Scene> {
    let tools = csi_cluster::tools()?;
    let plane = shared()?;
    let moto = common::moto::start()?;
    let proxy = common::fault_proxy::start(&moto.url).await;
    let admin = plane.admin().await.unwrap();
    let accounts = namespace(&admin, ns).await;
    create(&accounts, "web", Some(ROLE)).await;
    let node_name = format!("node-{ns}");
    label_node(&admin, &node_name, REGION).await;
    common::create_secret(&moto.url, REGION, "MySecret", VALUE).await;
    let provider_kubeconfig = plane
        .install_provider(&format!("-{ns}"), &plane.url(), edit)
        .await;
    let driver_kubeconfig = csi_cluster::install_driver(plane, &tools).await;
    let node = Node::start(
        &tools,
        NodeConfig {
            name: &node_name,
            provider_kubeconfig: &provider_kubeconfig,
            driver_kubeconfig: &driver_kubeconfig,
            aws_endpoint: &proxy.url,
            provider_flags,
        },
    )
    .await;
    Some(Scene {
        node,
        admin,
        proxy,
        moto,
        ns: ns.into(),
    })
}

impl Scene {
    async fn class(&self, name: &str, objects: &str, secret_objects: Option<serde_json::Value>) {
        let parameters = [("objects", objects), ("region", REGION)];
        csi_cluster::class(&self.admin, &self.ns, name, &parameters, secret_objects).await;
    }

    async fn pod(&self, name: &str, class: &str) -> PodVolume {
        csi_cluster::pod_volume(&self.admin, &self.node, &self.ns, name, "web", class).await
    }

    async fn publish(&self, volume: &PodVolume) {
        if let Err(e) = self.node.publish(volume).await {
            panic!("NodePublishVolume failed: {e}\n{}", self.node.logs());
        }
    }

    /// Reads of secret values our provider made (through the proxy).
    fn reads(&self) -> usize {
        csi_cluster::secret_reads(&self.proxy)
    }

    /// Puts a new value (a new version id) into MySecret; returns that version id.
    async fn rotate(&self, value: &str) -> String {
        let client = self.secrets_manager().await;
        client
            .put_secret_value()
            .secret_id("MySecret")
            .secret_string(value)
            .send()
            .await
            .expect("new version")
            .version_id
            .expect("version id")
    }

    async fn current_version(&self) -> String {
        let client = self.secrets_manager().await;
        let value = client.get_secret_value().secret_id("MySecret").send().await;
        value.unwrap().version_id.unwrap()
    }

    async fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&common::seed_config(&self.moto.url, REGION).await)
    }

    /// The SecretProviderClassPodStatus the driver made for `volume`'s pod.
    async fn pod_status(&self, volume: &PodVolume) -> DynamicObject {
        let api = Api::<DynamicObject>::namespaced_with(
            self.admin.clone(),
            &self.ns,
            &csi_cluster::pod_status_resource(),
        );
        let all = api.list(&ListParams::default()).await.unwrap();
        all.items
            .into_iter()
            .find(|s| s.data["status"]["podName"] == volume.name.as_str())
            .unwrap_or_else(|| panic!("no pod status for {}", volume.name))
    }

    async fn synced_secret(&self, name: &str) -> Option<Secret> {
        Api::<Secret>::namespaced(self.admin.clone(), &self.ns)
            .get_opt(name)
            .await
            .unwrap()
    }
}

fn read(target: &Path, file: &str) -> String {
    std::fs::read_to_string(target.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", target.join(file).display()))
}

fn mode(target: &Path, file: &str) -> u32 {
    std::fs::metadata(target.join(file))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Files and modes in the driver's tmpfs, the pod status with the object's version, and
/// NodeUnpublishVolume undoing it all: in either write mode.
async fn publish_and_unpublish(ns: &str, provider_flags: &[&str]) {
    let Some(scene) = scene(ns, provider_flags).await else {
        return;
    };
    scene.class(CLASS, OBJECTS, None).await;
    let volume = scene.pod("web-0", CLASS).await;
    scene.publish(&volume).await;
    let target = &volume.target;

    assert_eq!(mounted_type(target).as_deref(), Some("tmpfs"));
    assert_eq!(read(target, "MySecret"), VALUE);
    assert_eq!(read(target, "user"), "memeuser");
    assert_eq!(mode(target, "user"), 0o400);
    // The driver asks for 0644 unless the class says otherwise.
    assert_eq!(mode(target, "MySecret"), 0o644);
    // Both writers publish through `..data`, so a pod never sees half a mount.
    assert!(target.join("..data").is_symlink());

    let status = scene.pod_status(&volume).await;
    let version = scene.current_version().await;
    assert_eq!(status.data["status"]["mounted"], true, "{status:?}");
    assert_eq!(status.data["status"]["secretProviderClassName"], CLASS);
    assert_eq!(
        status.data["status"]["targetPath"],
        target.display().to_string()
    );
    let objects = status.data["status"]["objects"].as_array().unwrap();
    assert!(
        objects
            .iter()
            .any(|o| o["version"] == version.as_str()
                && o["id"].as_str().unwrap().contains("MySecret")),
        "{objects:?} should hold MySecret at {version}"
    );
    let labels = status.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("internal.secrets-store.csi.k8s.io/node-name"),
        Some(&scene.node.name)
    );
    let owner = &status.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Pod", volume.uid.as_str())
    );

    scene.node.unpublish(&volume).await.unwrap();
    assert_eq!(mounted_type(target), None);
    assert!(!target.exists(), "NodeUnpublishVolume removes the target");
}

#[tokio::test]
async fn provider_writes_files_into_the_drivers_tmpfs() {
    publish_and_unpublish("drv-provider-writes", &[]).await;
}

#[tokio::test]
async fn driver_writes_the_same_files() {
    publish_and_unpublish("drv-driver-writes", &["--driver-writes-secrets"]).await;
}

/// `secretObjects` become a Kubernetes Secret holding our values, and a rotation that
/// changes the version id reaches the files, the pod status and the Secret.
#[tokio::test]
async fn secret_objects_sync_and_follow_a_rotation() {
    let Some(scene) = scene("drv-sync", &[]).await else {
        return;
    };
    let secret_objects = serde_json::json!([{
        "secretName": "web-synced",
        "type": "Opaque",
        "data": [
            {"objectName": "user", "key": "username"},
            {"objectName": "MySecret", "key": "whole"},
        ],
    }]);
    scene.class(CLASS, OBJECTS, Some(secret_objects)).await;
    let volume = scene.pod("web-0", CLASS).await;
    scene.publish(&volume).await;
    let synced = async |key: &str| {
        let secret = scene.synced_secret("web-synced").await?;
        let data = secret.data?;
        Some(String::from_utf8(data.get(key)?.0.clone()).unwrap())
    };
    eventually("the Secret is synced", async || {
        synced("username").await.as_deref() == Some("memeuser")
    })
    .await;
    assert_eq!(synced("whole").await.as_deref(), Some(VALUE));

    let rotated = r#"{"username":"rotated","password":"hunter3"}"#;
    let version = scene.rotate(rotated).await;
    age(&volume.target);
    scene.publish(&volume).await;
    assert_eq!(read(&volume.target, "user"), "rotated");
    let status = scene.pod_status(&volume).await;
    let objects = status.data["status"]["objects"].as_array().unwrap();
    assert!(
        objects.iter().any(|o| o["version"] == version.as_str()),
        "{objects:?}"
    );
    eventually("the Secret follows the rotation", async || {
        synced("username").await.as_deref() == Some("rotated")
    })
    .await;
    assert_eq!(synced("whole").await.as_deref(), Some(rotated));
}

/// A class error and a missing secret fail NodePublishVolume with our code and message
/// inside the driver's, and leave nothing mounted; the class error before any AWS call.
/// The kubelet's next try mounts once the secret exists.
#[tokio::test]
async fn our_errors_reach_the_kubelet_through_the_driver() {
    let Some(scene) = scene("drv-errors", &[]).await else {
        return;
    };
    scene.class("missing", MISSING_OBJECTS, None).await;
    scene
        .class(
            "broken",
            "- {objectName: MySecret, objectType: secretsmanager, objectAlias: ../escape}",
            None,
        )
        .await;

    let missing = scene.pod("web-missing", "missing").await;
    let err = scene.node.publish(&missing).await.unwrap_err();
    // Our code and message, inside the driver's own words.
    assert!(err.starts_with("NotFound: "), "{err}");
    assert!(
        err.contains("GetSecretValue NoSuchSecret in eu-west-1: ResourceNotFoundException"),
        "{err}"
    );
    assert_eq!(mounted_type(&missing.target), None);
    // The kubelet tries again; once the secret exists, the mount succeeds (the failed
    // target was removed, so rotation's "not due yet" does not skip it).
    common::create_secret(&scene.moto.url, REGION, "NoSuchSecret", "late").await;
    scene.publish(&missing).await;
    assert_eq!(read(&missing.target, "NoSuchSecret"), "late");

    let reads = scene.reads();
    let broken = scene.pod("web-broken", "broken").await;
    let err = scene.node.publish(&broken).await.unwrap_err();
    assert!(err.starts_with("InvalidArgument: "), "{err}");
    assert!(err.contains("invalid SecretProviderClass"), "{err}");
    assert!(err.contains("../escape"), "{err}");
    assert_eq!(mounted_type(&broken.target), None);
    assert_eq!(
        scene.reads(),
        reads,
        "a bad class is refused before any read"
    );

    // A read IAM refuses: every call in the class's region answers AccessDenied.
    scene.proxy.fail_region(
        DENIED_REGION,
        Fault {
            status: 400,
            code: "AccessDeniedException",
        },
    );
    let parameters = [("objects", OBJECTS), ("region", DENIED_REGION)];
    csi_cluster::class(&scene.admin, &scene.ns, "denied", &parameters, None).await;
    let denied = scene.pod("web-denied", "denied").await;
    let err = scene.node.publish(&denied).await.unwrap_err();
    assert!(err.starts_with("PermissionDenied: "), "{err}");
    assert!(
        err.contains("GetSecretValue MySecret in eu-west-2: AccessDeniedException"),
        "{err}"
    );
    assert_eq!(mounted_type(&denied.target), None);
}

/// Reads per republish: a republish before the poll interval is skipped; a due one reads
/// every object (v1.6 sends no current versions). Our writer renews the target's mtime on
/// every remount, so the next rotation is an interval away; the driver's writer leaves
/// unchanged files alone, so in driver-writes mode the target stays due and every
/// republish reads again until a value changes. Then a remount that fails (AWS answers
/// 500) keeps the old files, is counted in the driver's metrics and ours, and the next
/// one recovers.
async fn reads_per_republish(ns: &str, provider_flags: &[&str], expected: [usize; 4]) {
    let Some(scene) = scene(ns, provider_flags).await else {
        return;
    };
    scene.class(CLASS, OBJECTS, None).await;
    let volume = scene.pod("web-0", CLASS).await;
    let mut reads = Vec::new();
    let mut republish = async |aged: bool| {
        let before = scene.reads();
        if aged {
            age(&volume.target);
        }
        scene.publish(&volume).await;
        reads.push(scene.reads() - before);
    };
    republish(false).await; // the first mount
    republish(false).await; // not due
    republish(true).await; // due
    republish(false).await; // due again only if the target's mtime was left old
    assert_eq!(reads, expected, "reads per NodePublishVolume");

    let errors = scene
        .node
        .driver_metric("rotation_reconcile_error_total")
        .await;
    let ours = scene.node.provider_metric(REMOUNT_FAILURES).await;
    scene.rotate(r#"{"username":"rotated"}"#).await;
    scene.proxy.fail_region(
        REGION,
        Fault {
            status: 500,
            code: "InternalServiceError",
        },
    );
    age(&volume.target);
    // The driver hides a remount's error from the kubelet; only its metrics show it.
    scene.publish(&volume).await;
    assert_eq!(
        read(&volume.target, "user"),
        "memeuser",
        "the old files stay"
    );
    assert_eq!(
        scene
            .node
            .driver_metric("rotation_reconcile_error_total")
            .await,
        errors + 1
    );
    assert_eq!(scene.node.provider_metric(REMOUNT_FAILURES).await, ours + 1);
    scene.proxy.state.lock().unwrap().faults.clear();
    age(&volume.target);
    scene.publish(&volume).await;
    assert_eq!(read(&volume.target, "user"), "rotated");
}

#[tokio::test]
async fn provider_writes_renew_the_rotation_interval() {
    reads_per_republish("drv-reads-provider", &[], [1, 0, 1, 0]).await;
}

#[tokio::test]
async fn driver_writes_read_on_every_republish_once_due() {
    reads_per_republish(
        "drv-reads-driver",
        &["--driver-writes-secrets"],
        [1, 0, 1, 1],
    )
    .await;
}

/// What rotation costs a node with the value cache off and on: the reads of AWS of three
/// pods' first mounts of one class, then of one due republish of each (v1.6 sends no
/// versions, so without the cache each reads every object again).
async fn reads_of_three_pods(ns: &str, provider_flags: &[&str], expected: [usize; 2]) {
    let Some(scene) = scene(ns, provider_flags).await else {
        return;
    };
    scene.class(CLASS, OBJECTS, None).await;
    let mut volumes = Vec::new();
    for i in 0..3 {
        volumes.push(scene.pod(&format!("web-{i}"), CLASS).await);
    }
    let before = scene.reads();
    for volume in &volumes {
        scene.publish(volume).await;
    }
    let first_mounts = scene.reads() - before;
    let before = scene.reads();
    for volume in &volumes {
        age(&volume.target);
        scene.publish(volume).await;
        assert_eq!(read(&volume.target, "user"), "memeuser");
    }
    let rotation = scene.reads() - before;
    assert_eq!(
        [first_mounts, rotation],
        expected,
        "reads of [first mounts, a due republish] of three pods"
    );
}

#[tokio::test]
async fn without_the_value_cache_every_due_republish_reads() {
    reads_of_three_pods("drv-cache-off", &[], [3, 3]).await;
}

#[tokio::test]
async fn with_the_value_cache_a_node_reads_once_per_ttl() {
    reads_of_three_pods("drv-cache-on", &["--value-cache-ttl=1h"], [1, 0]).await;
}

/// A refusal over a limit is final for the kubelet: it removes the target and its retry
/// is a first mount, refused again. (With a code the kubelet retries in place, such as
/// RESOURCE_EXHAUSTED, the driver answered the retry with success and nothing mounted:
/// the pod would have started with an empty directory.)
#[tokio::test]
async fn a_refusal_over_a_limit_is_final_and_leaves_no_empty_target() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "max_secret_bytes = 4\n").unwrap();
    let flag = format!("--config={}", config.display());
    let Some(scene) = scene("drv-limit", &[&flag]).await else {
        return;
    };
    scene.class(CLASS, OBJECTS, None).await;
    let volume = scene.pod("web-0", CLASS).await;
    for attempt in 1..=2 {
        let err = scene
            .node
            .publish(&volume)
            .await
            .expect_err("a value over max_secret_bytes is refused on every try");
        assert!(err.starts_with("OutOfRange: "), "try {attempt}: {err}");
        assert!(err.contains("max_secret_bytes"), "try {attempt}: {err}");
        assert_eq!(mounted_type(&volume.target), None, "try {attempt}");
        assert!(
            !volume.target.exists(),
            "try {attempt}: a final error, so the kubelet removed the target"
        );
    }
}

/// The pod's events of `reason` from our provider.
async fn events_of(scene: &Scene, pod: &str, reason: &str) -> Vec<Event> {
    let all = Api::<Event>::namespaced(scene.admin.clone(), &scene.ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    all.items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod)
                && e.reason.as_deref() == Some(reason)
                && e.reporting_controller.as_deref()
                    == Some("secrets-store-csi-driver-provider-aws")
        })
        .collect()
}

fn series_count(event: &Event) -> i32 {
    event.series.as_ref().map_or(1, |s| s.count)
}

#[tokio::test]
async fn failed_rotations_show_as_pod_events() {
    // The rule the chart adds with events.enabled (deploy/check_deploy.py checks it there).
    let events_rule = |role: &mut ClusterRole| {
        role.rules.get_or_insert_with(Vec::new).push(PolicyRule {
            api_groups: Some(vec!["events.k8s.io".into()]),
            resources: Some(vec!["events".into()]),
            verbs: vec!["create".into(), "patch".into()],
            ..Default::default()
        })
    };
    let Some(scene) = scene_with_role("drv-events", &["--events=all"], events_rule).await else {
        return;
    };
    scene.class(CLASS, OBJECTS, None).await;
    let volume = scene.pod("web-0", CLASS).await;
    scene.publish(&volume).await;

    // Three due remounts fail: the driver hides each from the kubelet; the pod gets one
    // Warning whose series counts three.
    scene.proxy.fail_region(
        REGION,
        Fault {
            status: 500,
            code: "InternalServiceError",
        },
    );
    for _ in 0..3 {
        age(&volume.target);
        scene.publish(&volume).await;
    }
    let failed = "SecretRotationFailed";
    eventually("one SecretRotationFailed event counting 3", async || {
        let events = events_of(&scene, &volume.name, failed).await;
        events.len() == 1 && series_count(&events[0]) == 3
    })
    .await;
    let event = events_of(&scene, &volume.name, failed).await.remove(0);
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    let regarding = event.regarding.clone().unwrap();
    assert_eq!(regarding.uid.as_deref(), Some(volume.uid.as_str()));
    assert_eq!(regarding.kind.as_deref(), Some("Pod"));
    let note = event.note.clone().unwrap_or_default();
    assert!(
        note.contains(&format!("SecretProviderClass {CLASS}"))
            && note.contains("the pod keeps its previous files")
            && note.contains("\"MySecret\"")
            && note.contains("InternalServiceError"),
        "{note}"
    );
    assert!(
        !note.contains("hunter2") && !note.contains("memeuser"),
        "a value in {note}"
    );

    // AWS recovers with a new version: the next remount succeeds, records SecretRotated,
    // and the failure's series stops growing.
    scene.proxy.state.lock().unwrap().faults.clear();
    scene
        .rotate(r#"{"username":"rotated","password":"hunter3"}"#)
        .await;
    age(&volume.target);
    scene.publish(&volume).await;
    assert_eq!(read(&volume.target, "user"), "rotated");
    eventually("a SecretRotated event", async || {
        !events_of(&scene, &volume.name, "SecretRotated")
            .await
            .is_empty()
    })
    .await;
    let rotated = events_of(&scene, &volume.name, "SecretRotated")
        .await
        .remove(0);
    assert_eq!(rotated.type_.as_deref(), Some("Normal"));
    let note = rotated.note.unwrap_or_default();
    assert!(
        note.contains("new versions of") && !note.contains("hunter3"),
        "{note}"
    );
    let after = events_of(&scene, &volume.name, failed).await;
    assert_eq!(after.len(), 1);
    assert_eq!(series_count(&after[0]), 3, "no failure after the recovery");

    // A first mount that fails gets its own Warning.
    scene.class("missing", MISSING_OBJECTS, None).await;
    let broken = scene.pod("web-1", "missing").await;
    assert!(scene.node.publish(&broken).await.is_err());
    eventually("a SecretMountFailed event", async || {
        !events_of(&scene, &broken.name, "SecretMountFailed")
            .await
            .is_empty()
    })
    .await;
    let metric = scene
        .node
        .provider_metric("secrets_store_provider_aws_events_recorded_total")
        .await;
    assert!(metric >= 3, "events_recorded_total {metric}");
}

/// An ACM certificate exported by moto, through the real driver: `tls.crt` and `tls.key`
/// in the pod's tmpfs (the key 0400, the private half of the certificate's key), and a
/// `kubernetes.io/tls` Secret the driver syncs from them, which the API server accepts.
#[tokio::test]
async fn an_acm_certificate_mounts_and_syncs_as_a_tls_secret() {
    let Some(scene) = scene("drv-acm", &["--acm-certificates"]).await else {
        return;
    };
    let acm = aws_sdk_acm::Client::new(&common::seed_config(&scene.moto.url, REGION).await);
    let arn = crate::acm::request_private(&acm, REGION, "web.example.com").await;
    let secret_objects = serde_json::json!([{
        "secretName": "web-tls",
        "type": "kubernetes.io/tls",
        "data": [
            {"objectName": "tls.crt", "key": "tls.crt"},
            {"objectName": "tls.key", "key": "tls.key"},
        ],
    }]);
    scene
        .class("tls", &crate::acm::tls_class(&arn), Some(secret_objects))
        .await;
    let volume = scene.pod("web-0", "tls").await;
    scene.publish(&volume).await;
    let target = &volume.target;
    let (crt, key) = (read(target, "tls.crt"), read(target, "tls.key"));
    assert!(
        crate::acm::key_matches(&crt, &key),
        "the key is the certificate's"
    );
    assert_eq!(
        (
            mode(target, "tls.key"),
            mode(target, "bundle.pem"),
            mode(target, "tls.crt")
        ),
        (0o400, 0o400, 0o644)
    );
    assert_eq!(scene.proxy.count("ExportCertificate"), 1);
    // The driver re-encodes the key as PKCS #1 (`RSA PRIVATE KEY`) in the Secret.
    let synced = async |field: &str| {
        let secret = scene.synced_secret("web-tls").await?;
        (secret.type_.as_deref() == Some("kubernetes.io/tls")).then_some(())?;
        let value = secret.data?.get(field)?.0.clone();
        Some(String::from_utf8(value).unwrap())
    };
    eventually("the kubernetes.io/tls Secret is synced", async || {
        synced("tls.crt").await.as_deref() == Some(crt.as_str())
    })
    .await;
    let secret_key = synced("tls.key").await.expect("tls.key in the Secret");
    assert!(
        crate::acm::key_matches(&crt, &secret_key),
        "the Secret's key is the certificate's"
    );
}
