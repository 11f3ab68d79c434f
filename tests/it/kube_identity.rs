//! Kubernetes lookups against a fake API server: roles, regions, errors, storms.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::fake_apiserver::{self, FakeApi, Inject};
use provider::adapters::kube::{self as kube_adapter, KubeIdentity, KubeSettings};
use provider::domain::attributes::{AuthMode, PodInfo, Tokens, IRSA_AUDIENCE};
use provider::domain::secret::Token;
use provider::ports::{IdentityError, IdentityResolver};

const ROLE: &str = "arn:aws:iam::123456789012:role/web";

fn pod(sa: &str) -> PodInfo {
    PodInfo {
        namespace: "shop".into(),
        name: format!("{sa}-0"),
        uid: format!("uid-{sa}"),
        service_account: sa.into(),
    }
}

fn tokens() -> Tokens {
    let mut t = Tokens::default();
    t.insert(IRSA_AUDIENCE, Token::new("jwt"));
    t
}

async fn identity(api: &FakeApi, settings: KubeSettings) -> KubeIdentity {
    let config = kube::Config::new(api.url.parse().unwrap());
    KubeIdentity::start(
        kube_adapter::client(config, &settings, Default::default()).unwrap(),
        &settings,
    )
}

fn no_watch() -> KubeSettings {
    KubeSettings {
        watch_service_accounts: false,
        request_timeout: Duration::from_millis(500),
        ..KubeSettings::default()
    }
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_role_comes_from_the_service_account_annotation() {
    let api = fake_apiserver::start().await;
    api.set_service_account("shop", "web", Some(ROLE), false);
    let id = identity(&api, no_watch()).await;
    let found = id
        .identity(&pod("web"), AuthMode::Irsa, &tokens())
        .await
        .unwrap();
    assert_eq!(found.role_arn.as_deref(), Some(ROLE));
    assert_eq!(found.token.unwrap().expose(), "jwt");
}

#[tokio::test]
async fn a_missing_annotation_or_service_account_names_it() {
    let api = fake_apiserver::start().await;
    api.set_service_account("shop", "plain", None, false);
    let id = identity(&api, no_watch()).await;
    let err = id
        .identity(&pod("plain"), AuthMode::Irsa, &tokens())
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::ServiceAccount(_)));
    assert!(
        err.to_string().contains("shop/plain")
            && err.to_string().contains("eks.amazonaws.com/role-arn"),
        "{err}"
    );
    let err = id
        .identity(&pod("ghost"), AuthMode::Irsa, &tokens())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("shop/ghost") && err.to_string().contains("not found"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_token_says_to_configure_token_requests() {
    let api = fake_apiserver::start().await;
    let id = identity(&api, no_watch()).await;
    let err = id
        .identity(&pod("web"), AuthMode::Irsa, &Tokens::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("tokenRequests") && err.to_string().contains("sts.amazonaws.com"),
        "{err}"
    );
    assert_eq!(api.total_gets(), 0);
}

#[tokio::test]
async fn forbidden_server_errors_and_a_hanging_server_are_clear_errors() {
    let api = fake_apiserver::start().await;
    api.set_service_account("shop", "web", Some(ROLE), false);
    let id = identity(&api, no_watch()).await;
    api.inject(Inject::Status(403));
    let err = id
        .identity(&pod("web"), AuthMode::Irsa, &tokens())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("forbidden") && err.to_string().contains("shop/web"),
        "{err}"
    );
    api.inject(Inject::Status(500));
    let err = id
        .identity(&pod("web"), AuthMode::Irsa, &tokens())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("500"), "{err}");
    api.inject(Inject::Hang);
    let err = id
        .identity(&pod("web"), AuthMode::Irsa, &tokens())
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::Unavailable(_)));
    assert!(err.to_string().contains("did not answer"), "{err}");
}

#[tokio::test]
async fn a_storm_of_a_hundred_mounts_makes_at_most_three_requests() {
    for watch in [true, false] {
        let api = fake_apiserver::start().await;
        api.set_service_account("shop", "web", Some(ROLE), false);
        let id = Arc::new(
            identity(
                &api,
                KubeSettings {
                    watch_service_accounts: watch,
                    ..no_watch()
                },
            )
            .await,
        );
        if watch {
            eventually("service accounts synced", async || id.synced()).await;
        }
        let before = api.total_gets();
        let mounts: Vec<_> = (0..100)
            .map(|i| {
                let id = id.clone();
                tokio::spawn(async move {
                    let mut p = pod("web");
                    p.name = format!("web-{i}");
                    id.identity(&p, AuthMode::Irsa, &tokens()).await.unwrap()
                })
            })
            .collect();
        for m in mounts {
            assert_eq!(m.await.unwrap().role_arn.as_deref(), Some(ROLE));
        }
        let requests = api.total_gets() - before;
        assert!(requests <= 3, "watch={watch}: {requests} requests");
        if watch {
            assert_eq!(requests, 0, "with the watch synced, nothing is asked");
        }
    }
}

#[tokio::test]
async fn a_new_service_account_and_a_changed_role_are_seen_on_the_next_mount() {
    let api = fake_apiserver::start().await;
    api.set_service_account("shop", "web", Some(ROLE), false);
    let id = identity(
        &api,
        KubeSettings {
            watch_service_accounts: true,
            ..no_watch()
        },
    )
    .await;
    eventually("synced", async || id.synced()).await;
    // Created after the list, not yet announced by the watch: read once.
    api.set_service_account("shop", "late", Some("arn:aws:iam::1:role/late"), false);
    let found = id
        .identity(&pod("late"), AuthMode::Irsa, &tokens())
        .await
        .unwrap();
    assert_eq!(found.role_arn.as_deref(), Some("arn:aws:iam::1:role/late"));
    // A changed annotation arrives through the watch.
    api.set_service_account("shop", "web", Some("arn:aws:iam::1:role/changed"), true);
    eventually("changed role", async || {
        id.identity(&pod("web"), AuthMode::Irsa, &tokens())
            .await
            .unwrap()
            .role_arn
            .as_deref()
            == Some("arn:aws:iam::1:role/changed")
    })
    .await;
    // A removed annotation too.
    api.set_service_account("shop", "web", None, true);
    eventually("removed role", async || {
        id.identity(&pod("web"), AuthMode::Irsa, &tokens())
            .await
            .is_err()
    })
    .await;
}

#[tokio::test]
async fn region_of_its_own_node_follows_label_changes() {
    let api = fake_apiserver::start().await;
    api.set_node("node-1", Some("eu-west-1"));
    let settings = KubeSettings {
        node_name: Some("node-1".into()),
        ..no_watch()
    };
    let id = identity(&api, settings).await;
    let region = id.node_region(&pod("web")).await.unwrap().unwrap();
    assert_eq!(region.as_str(), "eu-west-1");
    api.set_node("node-1", Some("eu-central-1"));
    eventually("new label", async || {
        id.node_region(&pod("web"))
            .await
            .unwrap()
            .map(|r| r.to_string())
            == Some("eu-central-1".to_string())
    })
    .await;
    let gets = api.gets("nodes");
    for _ in 0..50 {
        id.node_region(&pod("web")).await.unwrap();
    }
    assert_eq!(
        api.gets("nodes"),
        gets,
        "the own node's region is kept by the watch"
    );
    assert_eq!(api.gets("pods"), 0);
}

#[tokio::test]
async fn without_node_name_the_region_comes_from_pod_then_node_cached() {
    let api = fake_apiserver::start().await;
    api.set_node("node-7", Some("ap-south-1"));
    api.set_pod("shop", "web-0", "node-7");
    let id = identity(&api, no_watch()).await;
    for _ in 0..10 {
        assert_eq!(
            id.node_region(&pod("web")).await.unwrap().unwrap().as_str(),
            "ap-south-1"
        );
    }
    assert_eq!((api.gets("pods"), api.gets("nodes")), (1, 1));
    api.set_node("node-8", None);
    api.set_pod("shop", "other-0", "node-8");
    let mut other = pod("other");
    other.name = "other-0".into();
    assert_eq!(
        id.node_region(&other).await.unwrap(),
        None,
        "no label: no region"
    );
}

#[tokio::test]
async fn with_the_api_server_down_cached_roles_and_the_region_keep_working() {
    let api = fake_apiserver::start().await;
    api.set_service_account("shop", "web", Some(ROLE), false);
    api.set_node("node-1", Some("eu-west-1"));
    let settings = KubeSettings {
        watch_service_accounts: true,
        node_name: Some("node-1".into()),
        ..no_watch()
    };
    let id = identity(&api, settings).await;
    eventually("synced", async || id.synced()).await;
    eventually("node seen", async || {
        id.node_region(&pod("web")).await.is_ok_and(|r| r.is_some())
    })
    .await;
    api.inject(Inject::Hang);
    let found = id
        .identity(&pod("web"), AuthMode::Irsa, &tokens())
        .await
        .unwrap();
    assert_eq!(found.role_arn.as_deref(), Some(ROLE));
    assert_eq!(
        id.node_region(&pod("web")).await.unwrap().unwrap().as_str(),
        "eu-west-1"
    );
}

#[tokio::test]
async fn under_the_existing_providers_rbac_get_only_lookups_fall_back_to_cached_gets() {
    let api = fake_apiserver::start().await;
    api.forbid_list_and_watch();
    api.set_service_account("shop", "web", Some(ROLE), false);
    api.set_node("node-1", Some("eu-west-1"));
    let settings = KubeSettings {
        watch_service_accounts: true,
        node_name: Some("node-1".into()),
        ..no_watch()
    };
    let id = identity(&api, settings).await;
    eventually("both watches refused", async || {
        api.state.lock().unwrap().lists >= 2
    })
    .await;
    for _ in 0..20 {
        let found = id
            .identity(&pod("web"), AuthMode::Irsa, &tokens())
            .await
            .unwrap();
        assert_eq!(found.role_arn.as_deref(), Some(ROLE));
        assert_eq!(
            id.node_region(&pod("web")).await.unwrap().unwrap().as_str(),
            "eu-west-1"
        );
    }
    assert_eq!(
        (api.gets("serviceaccounts"), api.gets("nodes")),
        (1, 1),
        "one GET each, then cached"
    );
    assert!(!id.synced());
    // A refusal by RBAC is retried after 2–3 s, then 4–6 s (not the watcher's own loop
    // of quick retries, and not parked for minutes: an API server that has just
    // restarted refuses until its RBAC caches sync).
    eventually("each refused watch is tried once more", async || {
        api.state.lock().unwrap().lists >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = api.state.lock().unwrap();
    assert_eq!((s.lists, s.watches), (4, 0), "no retry loop on 403");
}

#[tokio::test]
async fn stopped_watches_end_their_streams() {
    let api = fake_apiserver::start().await;
    api.set_service_account("shop", "web", Some(ROLE), false);
    api.set_node("node-1", Some("eu-west-1"));
    let settings = KubeSettings {
        watch_service_accounts: true,
        node_name: Some("node-1".into()),
        ..no_watch()
    };
    let id = identity(&api, settings).await;
    eventually("both watches open", async || api.open_watches() == 2).await;
    id.stop();
    eventually("no watch left", async || api.open_watches() == 0).await;
}
