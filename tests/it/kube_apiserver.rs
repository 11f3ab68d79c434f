//! The Kubernetes adapter against a real kube-apiserver and etcd (`common::kube_server`):
//! roles from the watch under the RBAC `deploy/installer.yaml` ships, the GET fallback,
//! the node's region, a restarted API server, and `410 Gone` after compaction. RBAC
//! variants and the binary as deployed are in `kube_apiserver_deployed.rs`; the fake API
//! server (`kube_identity.rs`) stays for faults a real server does not make on demand.
//!
//! A watched role is answered from memory, and a service account the watch has not
//! delivered is read with a GET. So the tests count GETs: an answer that needed none came
//! from the watch. Changes are made with a watched account last: once its new role shows,
//! the events before it have arrived too.
//!
//! Non-disruptive tests share one control plane (each in its own namespace, with its own
//! copy of the provider's identity); the restart and compaction tests get their own.

use crate::common;

use common::kube_fixtures::*;
use common::kube_server::ControlPlane;
use common::tcp_relay::Relay;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, PostParams};
use provider::adapters::kube::KubeSettings;
use provider::ports::{IdentityError, IdentityResolver};

impl Provider {
    /// GETs of service accounts, whatever their outcome.
    fn gets(&self) -> u64 {
        [
            "ok",
            "not_found",
            "forbidden",
            "server_error",
            "client_error",
            "throttled",
            "transport_error",
        ]
        .iter()
        .map(|outcome| self.requests("serviceaccounts", "get", outcome))
        .sum()
    }

    /// Until `sa` has `role`, answered without a single GET meanwhile: by the watch.
    async fn watched(&self, namespace: &str, sa: &str, role: &str) {
        let before = self.gets();
        eventually(&format!("{namespace}/{sa} has {role}"), async || {
            self.role(namespace, sa).await.ok().flatten().as_deref() == Some(role)
        })
        .await;
        assert_eq!(
            self.gets(),
            before,
            "{namespace}/{sa} needed a GET: not from the watch"
        );
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
    provider.watched("watched", "web", ROLE).await;
    assert!(missing_annotation(provider.role("watched", "plain").await));

    // Added, created later, then changed on a watched account: all three by the watch.
    annotate(&accounts, "plain", Some(ROLE2)).await;
    create(&accounts, "later", Some(ROLE)).await;
    annotate(&accounts, "web", Some(ROLE3)).await;
    provider.watched("watched", "web", ROLE3).await;
    let gets = provider.gets();
    assert_eq!(
        provider.role("watched", "plain").await.unwrap().as_deref(),
        Some(ROLE2)
    );
    assert_eq!(
        provider.role("watched", "later").await.unwrap().as_deref(),
        Some(ROLE)
    );
    assert_eq!(provider.gets(), gets, "answered from the watch");

    // Removed: the watch drops the role, so the next lookup reads the account (one GET)
    // and finds no annotation; had the watch missed it, the old role would answer.
    annotate(&accounts, "web", None).await;
    annotate(&accounts, "later", Some(ROLE2)).await;
    provider.watched("watched", "later", ROLE2).await;
    let gets = provider.gets();
    assert!(missing_annotation(provider.role("watched", "web").await));
    assert_eq!(provider.gets(), gets + 1);

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
        matches!(&err, IdentityError::ServiceAccount(m) if m.to_string().contains("unwatched/nobody not found")),
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
    let spec = pod_on("web-0", "node-b", "web");
    pods.create(&PostParams::default(), &spec).await.unwrap();
    let anywhere = Provider::start(&kubeconfig, settings()).await;
    assert_eq!(region(&anywhere).await.as_deref(), Some("us-west-2"));
    assert_eq!(region(&anywhere).await.as_deref(), Some("us-west-2"));
    assert_eq!(anywhere.requests("pods", "get", "ok"), 1);
    assert_eq!(anywhere.requests("nodes", "get", "ok"), 1);
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
    provider.watched("restart", "web", ROLE).await;
    let gets = provider.gets();

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
    create(&accounts, "after", Some(ROLE3)).await;
    annotate(&accounts, "web", Some(ROLE2)).await;
    provider.watched("restart", "web", ROLE2).await;
    provider.watched("restart", "after", ROLE3).await;
    assert_eq!(
        provider.gets(),
        gets,
        "no role was read with GET across the restart"
    );
}

#[tokio::test]
async fn after_compaction_the_watch_relists_and_loses_no_update() {
    // Without the watch cache the watch is served from etcd, so a watch resumed from a
    // compacted revision is answered 410 Gone (with the cache, its window ends the same
    // way, but not on a command). A second list is the provider's answer to it: a watch
    // that resumes without 410 does not list again.
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
    provider.watched("compacted", "deleted", ROLE).await;
    assert_eq!(provider.requests("serviceaccounts", "list", "ok"), 1);
    let gets = provider.gets();

    // Partitioned: updates the watch cannot see, then the history behind them discarded.
    relay.cut();
    accounts
        .delete("deleted", &DeleteParams::default())
        .await
        .unwrap();
    create(&accounts, "created", Some(ROLE3)).await;
    annotate(&accounts, "changed", Some(ROLE2)).await;
    plane.compact();
    relay.restore();

    // The relisted map replaces the old one at once, so the last change showing means
    // the others are in too.
    provider.watched("compacted", "changed", ROLE2).await;
    provider.watched("compacted", "created", ROLE3).await;
    assert_eq!(
        provider.gets(),
        gets,
        "the relisted roles are answered without a GET"
    );
    assert_eq!(
        provider.requests("serviceaccounts", "list", "ok"),
        2,
        "one re-list"
    );
    let err = provider.role("compacted", "deleted").await.unwrap_err();
    assert!(
        matches!(&err, IdentityError::ServiceAccount(m) if m.to_string().contains("not found")),
        "{err:?}"
    );
    assert_eq!(
        provider.requests("serviceaccounts", "get", "not_found"),
        1,
        "the deleted one is gone from memory: read, and not found"
    );
}
