//! Pod Identity credentials from a fake agent: addresses, retries, errors, per-pod reuse.

use crate::common;

use std::net::TcpListener;
use std::time::Duration;

use common::fake_agent;
use provider::adapters::aws::credentials::pod_identity::AgentSettings;
use provider::adapters::aws::credentials::Signing;
use provider::adapters::aws::sdk::{self, SdkSettings};
use provider::adapters::aws::AwsStore;
use provider::domain::attributes::{AddressPreference, AuthMode};
use provider::domain::failover::{ClientKind, ErrorClass};
use provider::domain::objects::{ObjectKind, ObjectRef};
use provider::domain::region::Region;
use provider::domain::secret::Token;
use provider::ports::{Identity, SecretStore};

const TOKEN: &str = "pod-identity-token-value";

/// A local URL nothing listens on.
fn closed_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/v1/credentials")
}

fn identity(pod: &str, preference: AddressPreference) -> Identity {
    Identity {
        auth: AuthMode::PodIdentity(preference),
        namespace: "shop".into(),
        service_account: "web".into(),
        pod_name: pod.into(),
        pod_uid: format!("uid-{pod}"),
        role_arn: None,
        token: Some(Token::new(TOKEN)),
        keys: None,
        assume: None,
    }
}

async fn store(ipv4: String, ipv6: String, endpoint: Option<String>) -> AwsStore {
    let sdk = sdk::load(&SdkSettings {
        endpoint_url: endpoint,
        ..SdkSettings::default()
    })
    .await
    .unwrap();
    let agent = AgentSettings {
        ipv4_endpoint: ipv4,
        ipv6_endpoint: ipv6,
        timeout: Some(Duration::from_secs(2)),
    };
    AwsStore::new(sdk, agent, false, 16, Default::default())
}

fn east() -> Region {
    Region::parse("us-east-1").unwrap()
}

#[tokio::test]
async fn the_token_goes_in_the_authorization_header_and_credentials_are_reused_per_pod() {
    let agent = fake_agent::start("127.0.0.1:0", TOKEN).await;
    let store = store(agent.url.clone(), closed_url(), None).await;
    let resolver = store.credentials();
    let signing = resolver
        .resolve(&identity("web-0", AddressPreference::Auto), &east())
        .await
        .unwrap();
    match signing {
        Signing::Pod(c) => assert_eq!(c.access_key_id(), "ASIAPODIDENTITY"),
        Signing::Default => panic!("expected the pod's credentials"),
    }
    assert_eq!(
        agent.state.lock().unwrap().tokens_seen,
        vec![TOKEN.to_string()]
    );
    // The same pod again, in another region: cached.
    resolver
        .resolve(
            &identity("web-0", AddressPreference::Auto),
            &Region::parse("us-west-2").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(agent.calls(), 1);
    // Another pod of the same service account: its own session tags, its own call.
    resolver
        .resolve(&identity("web-1", AddressPreference::Auto), &east())
        .await
        .unwrap();
    assert_eq!(agent.calls(), 2);
}

#[tokio::test]
async fn auto_falls_back_to_ipv6_and_ipv4_only_does_not() {
    let agent = fake_agent::start("[::1]:0", TOKEN).await;
    let store = store(closed_url(), agent.url.clone(), None).await;
    store
        .credentials()
        .resolve(&identity("a", AddressPreference::Auto), &east())
        .await
        .unwrap();
    assert_eq!(agent.calls(), 1);
    let err = store
        .credentials()
        .resolve(&identity("b", AddressPreference::Ipv4), &east())
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Transport);
    store
        .credentials()
        .resolve(&identity("c", AddressPreference::Ipv6), &east())
        .await
        .unwrap();
    assert_eq!(agent.calls(), 2);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let agent = fake_agent::start("127.0.0.1:0", TOKEN).await;
    agent.queue(&[500, 503]);
    let store = store(agent.url.clone(), closed_url(), None).await;
    store
        .credentials()
        .resolve(&identity("a", AddressPreference::Ipv4), &east())
        .await
        .unwrap();
    assert_eq!(agent.calls(), 3);
}

#[tokio::test]
async fn a_refusal_is_an_access_error_at_once_without_the_token() {
    let agent = fake_agent::start("127.0.0.1:0", "another-token").await;
    let store = store(agent.url.clone(), closed_url(), None).await;
    let err = store
        .credentials()
        .resolve(&identity("a", AddressPreference::Auto), &east())
        .await
        .unwrap_err();
    assert_eq!(err.class, ErrorClass::Client(ClientKind::AccessDenied));
    assert!(
        err.message.contains("403") && err.message.contains("association"),
        "{}",
        err.message
    );
    assert!(!err.message.contains(TOKEN));
    assert_eq!(
        agent.calls(),
        1,
        "a 4xx is not retried, and IPv6 is not tried"
    );
}

#[tokio::test]
async fn a_missing_token_or_role_is_a_clear_error_without_any_call() {
    let store = store(closed_url(), closed_url(), None).await;
    let mut no_token = identity("a", AddressPreference::Auto);
    no_token.token = None;
    let err = store
        .credentials()
        .resolve(&no_token, &east())
        .await
        .unwrap_err();
    assert!(
        err.message.contains("tokenRequests") && err.message.contains("pods.eks.amazonaws.com"),
        "{}",
        err.message
    );
    let mut irsa = identity("a", AddressPreference::Auto);
    irsa.auth = AuthMode::Irsa;
    let err = store
        .credentials()
        .resolve(&irsa, &east())
        .await
        .unwrap_err();
    assert!(
        err.message.contains("eks.amazonaws.com/role-arn") && err.message.contains("shop/web"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn pod_identity_credentials_sign_real_calls() {
    let Some(moto) = common::moto::start() else {
        return;
    };
    let agent = fake_agent::start("127.0.0.1:0", TOKEN).await;
    common::create_secret(&moto.url, "us-east-1", "pi", "from-pod-identity").await;
    let store = store(agent.url.clone(), closed_url(), Some(moto.url.clone())).await;
    let object = ObjectRef {
        kind: ObjectKind::SecretsManager,
        name: "pi".into(),
        version: None,
        label: None,
    };
    let answers = store
        .fetch(
            &east(),
            &identity("web-0", AddressPreference::Auto),
            &[object],
        )
        .await;
    assert_eq!(
        answers[0].as_ref().unwrap().value.expose(),
        b"from-pod-identity"
    );
}

#[tokio::test]
async fn pod_identity_credentials_assume_a_class_role_once_per_pod_and_role() {
    let Some(moto) = common::moto::start() else {
        return;
    };
    let agent = fake_agent::start("127.0.0.1:0", TOKEN).await;
    let proxy = common::fault_proxy::start(&moto.url).await;
    common::create_secret(&proxy.url, "us-east-1", "pi", "v").await;
    let store = store(agent.url.clone(), closed_url(), Some(proxy.url.clone())).await;
    proxy.reset_counts();
    let object = ObjectRef {
        kind: ObjectKind::SecretsManager,
        name: "pi".into(),
        version: None,
        label: None,
    };
    let with_role = |pod: &str| Identity {
        assume: Some(
            provider::domain::assume::AssumeRole::parse(
                "arn:aws:iam::123456789012:role/reader",
                None,
                None,
            )
            .unwrap(),
        ),
        ..identity(pod, AddressPreference::Auto)
    };
    for pod in ["web-0", "web-0", "web-1"] {
        let answers = store
            .fetch(&east(), &with_role(pod), std::slice::from_ref(&object))
            .await;
        assert!(answers[0].is_ok(), "{:?}", answers[0]);
    }
    assert_eq!(
        proxy.count("AssumeRole"),
        2,
        "per pod (its session tags) and role"
    );
}
