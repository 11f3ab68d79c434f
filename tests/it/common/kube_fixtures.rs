//! Fixtures of the tests against the real API server: the adapter as the binary builds
//! it, authenticated as the provider's ServiceAccount, and the objects tests create.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Namespace, Node, Pod, PodSpec, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use provider::adapters::kube::{
    self as kube_adapter, KubeIdentity, KubeSettings, REGION_LABEL, ROLE_ANNOTATION,
};
use provider::adapters::metrics::{KubeLabels, Metrics};
use provider::domain::attributes::{AuthMode, PodInfo, Tokens, IRSA_AUDIENCE};
use provider::domain::secret::Token;
use provider::ports::{IdentityError, IdentityResolver};

use super::kube_server::ControlPlane;

pub const ROLE: &str = "arn:aws:iam::123456789012:role/web";
pub const ROLE2: &str = "arn:aws:iam::123456789012:role/web-v2";
pub const ROLE3: &str = "arn:aws:iam::123456789012:role/new";

static SHARED: OnceLock<Result<Option<ControlPlane>, String>> = OnceLock::new();

/// The test binary's shared control plane, started once (on its own thread: each test
/// has its own runtime, and the processes outlive them all). A failed start fails every
/// test that asks, without starting again.
pub fn shared() -> Option<&'static ControlPlane> {
    let started = SHARED.get_or_init(|| {
        std::thread::spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(ControlPlane::start(&[]))
        })
        .join()
        .map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    });
    match started {
        Ok(plane) => plane.as_ref(),
        Err(message) => panic!("the shared control plane did not start: {message}"),
    }
}

pub fn pod(namespace: &str, sa: &str) -> PodInfo {
    PodInfo {
        namespace: namespace.into(),
        name: format!("{sa}-0"),
        uid: format!("uid-{namespace}-{sa}"),
        service_account: sa.into(),
    }
}

pub fn tokens() -> Tokens {
    let mut t = Tokens::default();
    t.insert(IRSA_AUDIENCE, Token::new("jwt"));
    t
}

pub struct Provider {
    pub identity: KubeIdentity,
    pub metrics: Arc<Metrics>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.identity.stop();
    }
}

impl Provider {
    /// The adapter as the binary builds it, authenticated as the provider's ServiceAccount.
    pub async fn start(kubeconfig: &std::path::Path, settings: KubeSettings) -> Provider {
        let config = ControlPlane::config(kubeconfig).await;
        let metrics = Arc::new(Metrics::new());
        let client = kube_adapter::client(config, &settings, metrics.clone()).unwrap();
        Provider {
            identity: KubeIdentity::start(client, &settings),
            metrics,
        }
    }

    pub async fn role(&self, namespace: &str, sa: &str) -> Result<Option<String>, IdentityError> {
        self.identity
            .identity(&pod(namespace, sa), AuthMode::Irsa, &tokens())
            .await
            .map(|i| i.role_arn)
    }

    /// Requests this provider made, by resource, verb and outcome.
    pub fn requests(&self, resource: &str, verb: &str, outcome: &str) -> u64 {
        self.metrics
            .kube_requests
            .get_or_create(&KubeLabels {
                resource: resource.into(),
                verb: verb.into(),
                outcome: outcome.into(),
            })
            .get()
    }

    pub async fn synced(&self) {
        eventually("the service-account watch syncs", async || {
            self.identity.synced()
        })
        .await;
    }
}

pub fn settings() -> KubeSettings {
    KubeSettings {
        // The tests' own changes must not wait for the token bucket.
        qps: 100.0,
        burst: 100,
        ..KubeSettings::default()
    }
}

pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn service_account(name: &str, role: Option<&str>) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: role.map(|r| BTreeMap::from([(ROLE_ANNOTATION.to_string(), r.into())])),
            ..Default::default()
        },
        ..Default::default()
    }
}

pub async fn namespace(admin: &kube::Client, name: &str) -> Api<ServiceAccount> {
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

pub async fn create(accounts: &Api<ServiceAccount>, name: &str, role: Option<&str>) {
    accounts
        .create(&PostParams::default(), &service_account(name, role))
        .await
        .expect("service account created");
}

/// Sets (or with None removes) the role annotation, as `kubectl annotate` would.
pub async fn annotate(accounts: &Api<ServiceAccount>, name: &str, role: Option<&str>) {
    let patch = serde_json::json!({"metadata": {"annotations": {ROLE_ANNOTATION: role}}});
    accounts
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotation patched");
}

pub async fn label_node(admin: &kube::Client, name: &str, region: &str) {
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

pub fn missing_annotation(result: Result<Option<String>, IdentityError>) -> bool {
    matches!(result, Err(IdentityError::ServiceAccount(m)) if m.to_string().contains(ROLE_ANNOTATION))
}

/// Only `get` on the three resources, as the existing provider's ClusterRole grants.
pub fn get_only(role: &mut ClusterRole) {
    for rule in role.rules.iter_mut().flatten() {
        rule.verbs = vec!["get".into()];
    }
}

/// A pod bound to `node` (no scheduler here; it never runs, there is no kubelet).
pub fn pod_on(name: &str, node: &str, service_account: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.into()),
            service_account_name: Some(service_account.into()),
            containers: vec![Container {
                name: "app".into(),
                image: Some("app:1".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}
