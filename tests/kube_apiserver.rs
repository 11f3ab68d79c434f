//! The Kubernetes adapter against a real kube-apiserver and etcd (`common::kube_server`):
//! RBAC as `deploy/installer.yaml` ships it, real watches, `410 Gone` after compaction,
//! a restarted API server, and the existing provider's narrower RBAC. The fake API server
//! (`tests/kube_identity.rs`) stays for faults a real server does not make on demand.
//!
//! Non-disruptive tests share one control plane (each in its own namespace, with its own
//! copy of the provider's identity); the restart and compaction tests get their own.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::kube_server::ControlPlane;
use common::tcp_relay::Relay;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Container, Namespace, Node, Pod, PodSpec, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use provider::adapters::kube::{
    self as kube_adapter, KubeIdentity, KubeSettings, REGION_LABEL, ROLE_ANNOTATION,
};
use provider::adapters::metrics::{KubeLabels, Metrics};
use provider::domain::attributes::{AuthMode, PodInfo, Tokens, IRSA_AUDIENCE};
use provider::domain::secret::Token;
use provider::ports::{IdentityError, IdentityResolver};

const ROLE: &str = "arn:aws:iam::123456789012:role/web";
const ROLE2: &str = "arn:aws:iam::123456789012:role/web-v2";
const ROLE3: &str = "arn:aws:iam::123456789012:role/new";

static SHARED: OnceLock<Option<ControlPlane>> = OnceLock::new();

/// The shared control plane, started once (on its own thread: each test has its own
/// runtime, and the processes outlive them all).
fn shared() -> Option<&'static ControlPlane> {
    SHARED
        .get_or_init(|| {
            std::thread::spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(ControlPlane::start(&[]))
            })
            .join()
            .expect("the control plane starts")
        })
        .as_ref()
}

fn pod(namespace: &str, sa: &str) -> PodInfo {
    PodInfo {
        namespace: namespace.into(),
        name: format!("{sa}-0"),
        uid: format!("uid-{namespace}-{sa}"),
        service_account: sa.into(),
    }
}

fn tokens() -> Tokens {
    let mut t = Tokens::default();
    t.insert(IRSA_AUDIENCE, Token::new("jwt"));
    t
}

struct Provider {
    identity: KubeIdentity,
    metrics: Arc<Metrics>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.identity.stop();
    }
}

impl Provider {
    /// The adapter as the binary builds it, authenticated as the provider's ServiceAccount.
    async fn start(kubeconfig: &std::path::Path, settings: KubeSettings) -> Provider {
        let config = ControlPlane::config(kubeconfig).await;
        let metrics = Arc::new(Metrics::new());
        let client = kube_adapter::client(config, &settings, metrics.clone()).unwrap();
        Provider {
            identity: KubeIdentity::start(client, &settings),
            metrics,
        }
    }

    async fn role(&self, namespace: &str, sa: &str) -> Result<Option<String>, IdentityError> {
        self.identity
            .identity(&pod(namespace, sa), AuthMode::Irsa, &tokens())
            .await
            .map(|i| i.role_arn)
    }

    /// Requests this provider made, by resource, verb and outcome.
    fn requests(&self, resource: &str, verb: &str, outcome: &str) -> u64 {
        self.metrics
            .kube_requests
            .get_or_create(&KubeLabels {
                resource: resource.into(),
                verb: verb.into(),
                outcome: outcome.into(),
            })
            .get()
    }

    async fn synced(&self) {
        eventually("the service-account watch syncs", async || {
            self.identity.synced()
        })
        .await;
    }
}

fn settings() -> KubeSettings {
    KubeSettings {
        // The tests' own changes must not wait for the token bucket.
        qps: 100.0,
        burst: 100,
        ..KubeSettings::default()
    }
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn service_account(name: &str, role: Option<&str>) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: role.map(|r| BTreeMap::from([(ROLE_ANNOTATION.to_string(), r.into())])),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn namespace(admin: &kube::Client, name: &str) -> Api<ServiceAccount> {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
    Api::namespaced(admin.clone(), name)
}

async fn create(accounts: &Api<ServiceAccount>, name: &str, role: Option<&str>) {
    accounts
        .create(&PostParams::default(), &service_account(name, role))
        .await
        .expect("service account created");
}

/// Sets (or with None removes) the role annotation, as `kubectl annotate` would.
async fn annotate(accounts: &Api<ServiceAccount>, name: &str, role: Option<&str>) {
    let patch = serde_json::json!({"metadata": {"annotations": {ROLE_ANNOTATION: role}}});
    accounts
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotation patched");
}

async fn label_node(admin: &kube::Client, name: &str, region: &str) {
    let nodes = Api::<Node>::all(admin.clone());
    let patch = serde_json::json!({"metadata": {"labels": {REGION_LABEL: region}}});
    if nodes.get_opt(name).await.unwrap().is_none() {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("node labelled");
}

fn missing_annotation(result: Result<Option<String>, IdentityError>) -> bool {
    matches!(result, Err(IdentityError::ServiceAccount(m)) if m.contains(ROLE_ANNOTATION))
}

/// Only `get` on the three resources, as the existing provider's ClusterRole grants.
fn get_only(role: &mut ClusterRole) {
    for rule in role.rules.iter_mut().flatten() {
        rule.verbs = vec!["get".into()];
    }
}

#[tokio::test]
async fn roles_come_from_the_watch_under_the_shipped_rbac_and_follow_annotations() {
    let Some(plane) = shared() else { return };
    let admin = plane.admin().await.unwrap();
    let accounts = namespace(&admin, "watched").await;
    create(&accounts, "web", Some(ROLE)).await;
    create(&accounts, "plain", None).await;
    // The ServiceAccount, ClusterRole and binding exactly as shipped.
    let kubeconfig = plane.install_provider("", &plane.url(), |_| {}).await;
    let provider = Provider::start(&kubeconfig, settings()).await;
    provider.synced().await;

    let gets = provider.requests("serviceaccounts", "get", "ok");
    assert_eq!(
        provider.role("watched", "web").await.unwrap().as_deref(),
        Some(ROLE)
    );
    assert_eq!(
        provider.requests("serviceaccounts", "get", "ok"),
        gets,
        "a watched role is answered without a request"
    );
    assert!(missing_annotation(provider.role("watched", "plain").await));

    // Added, changed, created later, removed: each seen through the watch.
    annotate(&accounts, "plain", Some(ROLE2)).await;
    annotate(&accounts, "web", Some(ROLE3)).await;
    create(&accounts, "later", Some(ROLE)).await;
    eventually("the changes arrive", async || {
        provider
            .role("watched", "plain")
            .await
            .ok()
            .flatten()
            .as_deref()
            == Some(ROLE2)
            && provider
                .role("watched", "web")
                .await
                .ok()
                .flatten()
                .as_deref()
                == Some(ROLE3)
    })
    .await;
    let gets = provider.requests("serviceaccounts", "get", "ok");
    eventually("the new service account arrives by the watch", async || {
        provider.identity.synced() && {
            let found = provider.role("watched", "later").await;
            found.ok().flatten().as_deref() == Some(ROLE)
        }
    })
    .await;
    assert!(provider.requests("serviceaccounts", "get", "ok") <= gets + 1);
    annotate(&accounts, "web", None).await;
    eventually("the removed annotation arrives", async || {
        missing_annotation(provider.role("watched", "web").await)
    })
    .await;
    assert_eq!(provider.requests("serviceaccounts", "list", "ok"), 1);
    assert_eq!(provider.requests("serviceaccounts", "list", "forbidden"), 0);
    assert_eq!(
        provider.requests("serviceaccounts", "watch", "forbidden"),
        0
    );
}

#[tokio::test]
async fn roles_come_from_a_cached_get_when_the_watch_is_off() {
    let Some(plane) = shared() else { return };
    let admin = plane.admin().await.unwrap();
    let accounts = namespace(&admin, "unwatched").await;
    create(&accounts, "web", Some(ROLE)).await;
    let kubeconfig = plane.install_provider("-get", &plane.url(), |_| {}).await;
    let settings = KubeSettings {
        watch_service_accounts: false,
        ..settings()
    };
    let provider = Provider::start(&kubeconfig, settings).await;
    for _ in 0..5 {
        assert_eq!(
            provider.role("unwatched", "web").await.unwrap().as_deref(),
            Some(ROLE)
        );
    }
    assert_eq!(provider.requests("serviceaccounts", "get", "ok"), 1);
    assert_eq!(provider.requests("serviceaccounts", "list", "ok"), 0);
    let err = provider.role("unwatched", "nobody").await.unwrap_err();
    assert!(
        matches!(&err, IdentityError::ServiceAccount(m) if m.contains("unwatched/nobody not found")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_region_follows_its_own_nodes_label_and_pods_find_their_node() {
    let Some(plane) = shared() else { return };
    let admin = plane.admin().await.unwrap();
    let accounts = namespace(&admin, "regions").await;
    create(&accounts, "web", Some(ROLE)).await;
    label_node(&admin, "node-a", "us-east-1").await;
    label_node(&admin, "node-b", "us-west-2").await;
    let kubeconfig = plane
        .install_provider("-region", &plane.url(), |_| {})
        .await;

    let on_a = Provider::start(
        &kubeconfig,
        KubeSettings {
            node_name: Some("node-a".into()),
            ..settings()
        },
    )
    .await;
    let region = async |p: &Provider| {
        p.identity
            .node_region(&pod("regions", "web"))
            .await
            .unwrap()
            .map(|r| r.to_string())
    };
    assert_eq!(region(&on_a).await.as_deref(), Some("us-east-1"));
    label_node(&admin, "node-a", "eu-west-1").await;
    eventually("the new label arrives by the watch", async || {
        region(&on_a).await.as_deref() == Some("eu-west-1")
    })
    .await;
    assert_eq!(on_a.requests("nodes", "watch", "forbidden"), 0);

    // Without NODE_NAME: the pod's node from the pod, then that node's label.
    let pods = Api::<Pod>::namespaced(admin.clone(), "regions");
    let spec = Pod {
        metadata: ObjectMeta {
            name: Some("web-0".into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-b".into()),
            service_account_name: Some("web".into()),
            containers: vec![Container {
                name: "app".into(),
                image: Some("app:1".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    pods.create(&PostParams::default(), &spec).await.unwrap();
    let anywhere = Provider::start(&kubeconfig, settings()).await;
    assert_eq!(region(&anywhere).await.as_deref(), Some("us-west-2"));
    assert_eq!(region(&anywhere).await.as_deref(), Some("us-west-2"));
    assert_eq!(anywhere.requests("pods", "get", "ok"), 1);
    assert_eq!(anywhere.requests("nodes", "get", "ok"), 1);
}

#[tokio::test]
async fn under_the_existing_providers_rbac_lookups_degrade_to_gets() {
    let Some(plane) = shared() else { return };
    let admin = plane.admin().await.unwrap();
    let accounts = namespace(&admin, "narrow").await;
    create(&accounts, "web", Some(ROLE)).await;
    label_node(&admin, "node-c", "ap-south-1").await;
    let kubeconfig = plane
        .install_provider("-getonly", &plane.url(), get_only)
        .await;
    let provider = Provider::start(
        &kubeconfig,
        KubeSettings {
            node_name: Some("node-c".into()),
            ..settings()
        },
    )
    .await;
    eventually("both watches are refused by RBAC", async || {
        provider.requests("serviceaccounts", "list", "forbidden") >= 1
            && provider.requests("nodes", "list", "forbidden") >= 1
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            provider.role("narrow", "web").await.unwrap().as_deref(),
            Some(ROLE)
        );
        let region = provider.identity.node_region(&pod("narrow", "web")).await;
        assert_eq!(
            region.unwrap().map(|r| r.to_string()).as_deref(),
            Some("ap-south-1")
        );
    }
    // One GET each, then cached: a refused watch does not turn into a GET per mount.
    assert_eq!(provider.requests("serviceaccounts", "get", "ok"), 1);
    assert_eq!(provider.requests("nodes", "get", "ok"), 1);
    assert!(!provider.identity.synced());
}

#[tokio::test]
async fn without_get_on_serviceaccounts_the_error_names_the_permission() {
    let Some(plane) = shared() else { return };
    let admin = plane.admin().await.unwrap();
    let accounts = namespace(&admin, "denied").await;
    create(&accounts, "web", Some(ROLE)).await;
    let kubeconfig = plane
        .install_provider("-nosa", &plane.url(), |role| {
            for rule in role.rules.iter_mut().flatten() {
                if rule
                    .resources
                    .iter()
                    .flatten()
                    .any(|r| r == "serviceaccounts")
                {
                    rule.verbs.retain(|v| v != "get");
                }
            }
        })
        .await;
    let settings = KubeSettings {
        watch_service_accounts: false,
        ..settings()
    };
    let provider = Provider::start(&kubeconfig, settings).await;
    let err = provider.role("denied", "web").await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, IdentityError::Unavailable(_)), "{err:?}");
    assert!(
        message.contains("the provider needs get on serviceaccounts"),
        "{message}"
    );
    // The API server's own words name the identity and the verb.
    assert!(
        message.contains(r#"cannot get resource "serviceaccounts""#)
            && message
                .contains("system:serviceaccount:kube-system:csi-secrets-store-provider-aws-nosa"),
        "{message}"
    );
}

#[tokio::test]
async fn a_restarted_api_server_keeps_roles_answered_and_loses_no_update() {
    let Some(mut plane) = ControlPlane::start(&[]).await else {
        return;
    };
    let admin = plane.admin().await.unwrap();
    let accounts = namespace(&admin, "restart").await;
    create(&accounts, "web", Some(ROLE)).await;
    let kubeconfig = plane.install_provider("", &plane.url(), |_| {}).await;
    let provider = Provider::start(&kubeconfig, settings()).await;
    provider.synced().await;

    plane.kill_apiserver();
    // While it is down, roles the watch delivered are still answered.
    for _ in 0..3 {
        assert_eq!(
            provider.role("restart", "web").await.unwrap().as_deref(),
            Some(ROLE)
        );
    }
    plane.start_apiserver().await;
    let admin = plane.admin().await.unwrap();
    let accounts = Api::<ServiceAccount>::namespaced(admin, "restart");
    annotate(&accounts, "web", Some(ROLE2)).await;
    create(&accounts, "after", Some(ROLE3)).await;
    eventually("updates after the restart arrive", async || {
        provider
            .role("restart", "web")
            .await
            .ok()
            .flatten()
            .as_deref()
            == Some(ROLE2)
    })
    .await;
    eventually(
        "a service account created after the restart is watched",
        async || {
            provider.identity.synced()
                && provider
                    .role("restart", "after")
                    .await
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some(ROLE3)
        },
    )
    .await;
}

#[tokio::test]
async fn after_compaction_the_watch_relists_and_loses_no_update() {
    // Without the watch cache the watch is served from etcd, so a resumed watch from a
    // compacted revision is answered 410 Gone (with the cache, its window ends the same way).
    let Some(plane) = ControlPlane::start(&["--watch-cache=false"]).await else {
        return;
    };
    let admin = plane.admin().await.unwrap();
    let accounts = namespace(&admin, "compacted").await;
    create(&accounts, "changed", Some(ROLE)).await;
    create(&accounts, "deleted", Some(ROLE)).await;
    let relay = Relay::start(plane.port).await;
    let kubeconfig = plane.install_provider("", &relay.url, |_| {}).await;
    let provider = Provider::start(&kubeconfig, settings()).await;
    provider.synced().await;
    assert_eq!(provider.requests("serviceaccounts", "list", "ok"), 1);

    // Partitioned: updates the watch cannot see, then the history behind them discarded.
    relay.cut();
    annotate(&accounts, "changed", Some(ROLE2)).await;
    accounts
        .delete("deleted", &DeleteParams::default())
        .await
        .unwrap();
    create(&accounts, "created", Some(ROLE3)).await;
    plane.compact();
    relay.restore();

    eventually("the watch relists after 410 Gone", async || {
        provider.requests("serviceaccounts", "list", "ok") >= 2 && provider.identity.synced()
    })
    .await;
    let gets = provider.requests("serviceaccounts", "get", "ok");
    assert_eq!(
        provider
            .role("compacted", "changed")
            .await
            .unwrap()
            .as_deref(),
        Some(ROLE2)
    );
    assert_eq!(
        provider
            .role("compacted", "created")
            .await
            .unwrap()
            .as_deref(),
        Some(ROLE3)
    );
    assert_eq!(
        provider.requests("serviceaccounts", "get", "ok"),
        gets,
        "the relisted roles are answered without a GET"
    );
    let err = provider.role("compacted", "deleted").await.unwrap_err();
    assert!(
        matches!(&err, IdentityError::ServiceAccount(m) if m.contains("not found")),
        "{err:?}"
    );
}

/// The binary as the DaemonSet runs it, against the real API server and moto: the role
/// of a real service account and a real token of it (audience `sts.amazonaws.com`, as
/// kubelet requests it for the driver) reach STS; the region comes from the node's label.
#[tokio::test]
async fn the_binary_mounts_with_a_real_service_accounts_role_and_token() {
    let Some(plane) = shared() else { return };
    let Some(moto) = common::moto::start() else {
        return;
    };
    let proxy = common::fault_proxy::start(&moto.url).await;
    let admin = plane.admin().await.unwrap();
    let accounts = namespace(&admin, "shop").await;
    create(&accounts, "web", Some(ROLE)).await;
    label_node(&admin, "node-e2e", "eu-west-1").await;
    let seed = common::seed_config(&moto.url, "eu-west-1").await;
    aws_sdk_secretsmanager::Client::new(&seed)
        .create_secret()
        .name("MySecret")
        .secret_string("cluster-value")
        .send()
        .await
        .unwrap();
    let kubeconfig = plane.install_provider("-e2e", &plane.url(), |_| {}).await;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec!["sts.amazonaws.com".into()],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = accounts
        .create_token_request("web", &PostParams::default(), &request)
        .await
        .expect("a token for the pod's service account")
        .status
        .unwrap()
        .token;

    let dir = tempfile::tempdir().unwrap();
    let volume = dir.path().join("providers");
    let child = std::process::Command::new(BIN)
        .arg(format!("--provider-volume={}", volume.display()))
        .arg("--metrics-addr=127.0.0.1:0")
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("NODE_NAME", "node-e2e")
        .env("AWS_ENDPOINT_URL", &proxy.url)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_REGION")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _running = Killed(child);
    let socket = volume.join("aws.sock");
    common::wait_for_socket(&socket).await;
    let mut client = common::connect(&socket).await;
    let tokens = serde_json::json!({"sts.amazonaws.com": {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}});
    let mut mount = common::mount_request(
        "- {objectName: MySecret, objectType: secretsmanager}",
        dir.path(),
        0o644,
        &[(
            "csi.storage.k8s.io/serviceAccount.tokens",
            &tokens.to_string(),
        )],
    );
    let mut attributes: std::collections::HashMap<String, String> =
        serde_json::from_str(&mount.attributes).unwrap();
    attributes.remove("region");
    mount.attributes = serde_json::to_string(&attributes).unwrap();
    client.mount(mount).await.unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("MySecret")).unwrap(),
        b"cluster-value"
    );

    let state = proxy.state.lock().unwrap();
    let sts = &state.last_body["AssumeRoleWithWebIdentity"];
    // Form-encoded: the ARN's ':' and '/' escaped; a JWT has only unreserved characters.
    let role = ROLE.replace(':', "%3A").replace('/', "%2F");
    assert!(
        sts.contains(&format!("RoleArn={role}&")) || sts.ends_with(&format!("RoleArn={role}")),
        "{sts}"
    );
    assert!(
        sts.contains(&format!("WebIdentityToken={token}")),
        "the service account's own token reaches STS"
    );
    assert!(
        state
            .calls
            .keys()
            .any(|(op, region)| op == "GetSecretValue" && region == "eu-west-1"),
        "{:?}",
        state.calls
    );
}

const BIN: &str = env!("CARGO_BIN_EXE_secrets-store-csi-driver-provider-aws");

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
