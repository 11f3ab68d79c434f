//! The provider under RBAC other than what `deploy/installer.yaml` ships, and the binary
//! as deployed, against a real kube-apiserver and etcd (`common::kube_server`).

use crate::common;

use common::request::Mount;

use common::kube_fixtures::*;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use kube::api::PostParams;
use provider::adapters::kube::KubeSettings;
use provider::ports::{IdentityError, IdentityResolver};

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
    common::create_secret(&moto.url, "eu-west-1", "MySecret", "cluster-value").await;
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
    let child = common::deployed_provider(&volume, &kubeconfig, "node-e2e", &proxy.url)
        .stderr(std::fs::File::create(dir.path().join("provider.log")).unwrap())
        .spawn()
        .unwrap();
    let _running = Killed(child);
    let socket = volume.join("aws.sock");
    common::wait_for_socket(&socket).await;
    let mut client = common::connect(&socket).await;
    let tokens = serde_json::json!({"sts.amazonaws.com": {"token": token, "expirationTimestamp": "2030-01-01T00:00:00Z"}});
    let mount = Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
        .with(&[(
            "csi.storage.k8s.io/serviceAccount.tokens",
            &tokens.to_string(),
        )])
        .without("region")
        .target(dir.path())
        .grpc();
    let log = || std::fs::read_to_string(dir.path().join("provider.log")).unwrap_or_default();
    if let Err(status) = client.mount(mount).await {
        panic!("mount failed: {status}\nprovider log:\n{}", log());
    }
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

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
