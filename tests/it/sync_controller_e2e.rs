//! The Secrets Store Sync Controller v0.0.4 running our provider as its sidecar
//! (`common::sync_controller`), against the real API server with the controller's CRDs and
//! RBAC, moto behind the fault proxy as AWS, IRSA with the TokenRequest token the
//! controller asks for. A SecretSync becomes a Kubernetes Secret holding our values.
//!
//! The controller watches every namespace, so one test function runs every case in turn
//! (two sidecars at once would both reconcile every SecretSync). The controller's polling
//! is off; a case makes it sync by changing the SecretSync's `forceSynchronization` and
//! waits for our provider's mount counter, so nothing depends on timing.

use crate::common;

use common::csi_cluster::{self, DENIED_REGION, REGION, VALUE};
use common::fault_proxy::{Fault, Proxy};
use common::kube_fixtures::{create, namespace, shared, ROLE};
use common::moto::Moto;
use common::sync_controller::{self, Installed, Sidecar, SidecarConfig, Tools};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};

const NS: &str = "sync-controller";
const MOUNTS: &str = "secrets_store_provider_aws_mounts_total";
const CLASS: &str = "aws-secrets";
const SYNC: &str = "web-synced";
const OBJECTS: &str = r#"
- objectName: MySecret
  objectType: secretsmanager
  jmesPath:
    - {path: username, objectAlias: user}
"#;

/// The namespace's world: SecretSyncs, classes and Secrets in `NS`, AWS behind the proxy.
struct World {
    tools: Tools,
    admin: kube::Client,
    proxy: Proxy,
    moto: Moto,
    installed: &'static Installed,
}

impl World {
    async fn sidecar(&self, provider_flags: &[&str]) -> Sidecar {
        Sidecar::start(
            &self.tools,
            SidecarConfig {
                installed: self.installed,
                aws_endpoint: &self.proxy.url,
                provider_flags,
            },
        )
        .await
    }

    async fn class(&self, name: &str, objects: &str, region: &str) {
        let parameters = [("objects", objects), ("region", region)];
        csi_cluster::class(&self.admin, NS, name, &parameters, None).await;
    }

    fn secret_syncs(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.admin.clone(),
            NS,
            &sync_controller::secret_sync_resource(),
        )
    }

    /// A SecretSync `name` of ServiceAccount `web`: the files of `class` named in `data`
    /// (file, key) become the keys of the Opaque Secret `name`.
    async fn secret_sync(&self, name: &str, class: &str, data: &[(&str, &str)]) {
        let data: Vec<_> = data
            .iter()
            .map(|(file, key)| serde_json::json!({"sourcePath": file, "targetKey": key}))
            .collect();
        let mut object = DynamicObject::new(name, &sync_controller::secret_sync_resource());
        object.data = serde_json::json!({"spec": {
            "serviceAccountName": "web",
            "secretProviderClassName": class,
            "secretObject": {"type": "Opaque", "data": data},
        }});
        self.secret_syncs()
            .create(&PostParams::default(), &object)
            .await
            .expect("SecretSync created");
    }

    /// Makes the controller sync `name` once (a new `forceSynchronization` is a new
    /// generation) and waits until our provider has answered that mount; returns the
    /// reads of AWS it made.
    async fn sync_once(&self, sidecar: &Sidecar, name: &str, round: &str) -> usize {
        let reads = self.reads();
        let mounts = sidecar.provider_metric(MOUNTS).await;
        let patch = serde_json::json!({"spec": {"forceSynchronization": round}});
        self.secret_syncs()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("SecretSync patched");
        until(sidecar, "the controller called our provider", async || {
            sidecar.provider_metric(MOUNTS).await > mounts
        })
        .await;
        self.reads() - reads
    }

    /// The Secret's `key`, if the Secret and the key exist.
    async fn synced(&self, secret: &str, key: &str) -> Option<String> {
        let secret = Api::<Secret>::namespaced(self.admin.clone(), NS)
            .get_opt(secret)
            .await
            .unwrap()?;
        let bytes = secret.data?.get(key)?.0.clone();
        Some(String::from_utf8(bytes).unwrap())
    }

    /// The reasons of the SecretSync's status conditions.
    async fn reasons(&self, name: &str) -> Vec<String> {
        let sync = self.secret_syncs().get(name).await.unwrap();
        let conditions = sync.data["status"]["conditions"].as_array().cloned();
        conditions
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c["reason"].as_str().map(str::to_string))
            .collect()
    }

    fn reads(&self) -> usize {
        csi_cluster::secret_reads(&self.proxy)
    }

    async fn rotate(&self, value: &str) {
        aws_sdk_secretsmanager::Client::new(&common::seed_config(&self.moto.url, REGION).await)
            .put_secret_value()
            .secret_id("MySecret")
            .secret_string(value)
            .send()
            .await
            .expect("new version");
    }
}

/// Waits (90 s at most) until `check` holds; fails with both logs otherwise.
async fn until(sidecar: &Sidecar, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = std::time::Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(90),
            "never happened: {what}\n{}",
            sidecar.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_sync_controller_syncs_our_values_through_its_sidecar() {
    let Some(tools) = sync_controller::tools() else {
        return;
    };
    let Some(plane) = shared() else {
        return;
    };
    let Some(moto) = common::moto::start() else {
        return;
    };
    let proxy = common::fault_proxy::start(&moto.url).await;
    let admin = plane.admin().await.unwrap();
    let accounts = namespace(&admin, NS).await;
    create(&accounts, "web", Some(ROLE)).await;
    common::create_secret(&moto.url, REGION, "MySecret", VALUE).await;
    let installed = sync_controller::install(plane, &tools).await;
    let world = World {
        tools,
        admin,
        proxy,
        moto,
        installed,
    };
    world.class(CLASS, OBJECTS, REGION).await;

    // Value cache off (the default): every sync reads every object.
    let sidecar = world.sidecar(&[]).await;
    world
        .secret_sync(SYNC, CLASS, &[("user", "username"), ("MySecret", "whole")])
        .await;
    until(&sidecar, "the Secret holds our values", async || {
        world.synced(SYNC, "username").await.as_deref() == Some("memeuser")
    })
    .await;
    assert_eq!(world.synced(SYNC, "whole").await.as_deref(), Some(VALUE));
    let secret = Api::<Secret>::namespaced(world.admin.clone(), NS)
        .get(SYNC)
        .await
        .unwrap();
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("SecretSync", SYNC)
    );
    assert!(
        world
            .reasons(SYNC)
            .await
            .contains(&"CreateSucceeded".into()),
        "{:?}\n{}",
        world.reasons(SYNC).await,
        sidecar.logs()
    );
    let mut reads_off = Vec::new();
    for round in ["off-1", "off-2"] {
        reads_off.push(world.sync_once(&sidecar, SYNC, round).await);
    }
    assert_eq!(reads_off, [1, 1], "cache off: one read per sync");

    // A new version in AWS reaches the Secret at the next sync.
    let rotated = r#"{"username":"rotated","password":"hunter3"}"#;
    world.rotate(rotated).await;
    world.sync_once(&sidecar, SYNC, "rotated").await;
    until(&sidecar, "the Secret follows the rotation", async || {
        world.synced(SYNC, "username").await.as_deref() == Some("rotated")
    })
    .await;
    assert_eq!(world.synced(SYNC, "whole").await.as_deref(), Some(rotated));
    drop(sidecar);

    // Value cache on: the controller sends no versions either, so the cache is what
    // saves its reads. A new controller syncs every SecretSync when it starts (a read,
    // the cache being empty); the syncs after it read nothing.
    let sidecar = world.sidecar(&["--value-cache-ttl=1h"]).await;
    until(&sidecar, "the new controller synced at start", async || {
        sidecar.provider_metric(MOUNTS).await >= 1
    })
    .await;
    let mut reads_on = Vec::new();
    for round in ["on-1", "on-2"] {
        reads_on.push(world.sync_once(&sidecar, SYNC, round).await);
    }
    assert_eq!(
        reads_on,
        [0, 0],
        "cache on: syncs within the TTL read nothing"
    );
    assert_eq!(
        world.synced(SYNC, "username").await.as_deref(),
        Some("rotated")
    );
    drop(sidecar);

    // Errors: a missing secret, a class error, a refused IAM read. The controller keeps
    // them out of the SecretSync's status (a fixed "ProviderError") and emits no event;
    // our message, with its gRPC code, is in its log.
    let sidecar = world.sidecar(&[]).await;
    world.proxy.fail_region(
        DENIED_REGION,
        Fault {
            status: 400,
            code: "AccessDeniedException",
        },
    );
    let missing = "- {objectName: NoSuchSecret, objectType: secretsmanager}";
    world.class("missing", missing, REGION).await;
    let broken = "- {objectName: MySecret, objectType: secretsmanager, objectAlias: ../escape}";
    world.class("broken", broken, REGION).await;
    world.class("denied", OBJECTS, DENIED_REGION).await;
    let cases = [
        (
            "missing",
            "code = NotFound desc = ",
            "GetSecretValue NoSuchSecret in eu-west-1: ResourceNotFoundException",
        ),
        (
            "broken",
            "code = InvalidArgument desc = ",
            "invalid SecretProviderClass",
        ),
        (
            "denied",
            "code = PermissionDenied desc = ",
            "AccessDeniedException",
        ),
    ];
    for (class, _, _) in cases {
        world
            .secret_sync(&format!("{class}-synced"), class, &[("MySecret", "whole")])
            .await;
    }
    for (class, code, message) in cases {
        let name = format!("{class}-synced");
        until(
            &sidecar,
            &format!("{name} fails with our message"),
            async || {
                let log = sidecar.controller_log();
                world.reasons(&name).await.contains(&"ProviderError".into())
                    && log.lines().any(|l| {
                        l.contains("failed to get secrets from provider")
                            && l.contains(code)
                            && l.contains(message)
                    })
            },
        )
        .await;
        assert_eq!(world.synced(&name, "whole").await, None, "{name}");
    }
    // Nothing secret in either log: neither value reached a log line.
    for log in [sidecar.controller_log(), sidecar.provider_log()] {
        assert!(!log.contains("hunter"), "a value in a log:\n{log}");
    }
}
