//! The AWS store against moto behind the fault proxy, with the identity IRSA would give,
//! for tests that drive the mount service directly.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use provider::adapters::aws::credentials::pod_identity::AgentSettings;
use provider::adapters::aws::sdk::{self, SdkSettings};
use provider::adapters::aws::AwsStore;
use provider::adapters::coalesce::Coalescing;
use provider::adapters::metrics::Metrics;
use provider::domain::attributes::{AuthMode, PodInfo, Tokens};
use provider::domain::region::Region;
use provider::domain::secret::Token;
use provider::ports::{Identity, IdentityError, IdentityResolver, SecretStore};
use provider::service::{MountOutcome, MountRequest, RawMountRequest};

use super::fault_proxy::{self, Proxy};
use super::moto::{self, Moto};

pub const REGION: &str = "us-east-1";
pub const ROLE: &str = "arn:aws:iam::123456789012:role/app";

/// The identity IRSA would give every pod: one role, a token.
pub struct Irsa;

#[async_trait]
impl IdentityResolver for Irsa {
    async fn identity(
        &self,
        pod: &PodInfo,
        auth: AuthMode,
        _: &Tokens,
    ) -> Result<Identity, IdentityError> {
        Ok(Identity {
            role_arn: Some(ROLE.into()),
            token: Some(Token::new("header.payload.signature")),
            ..Identity::of_pod(pod, auth)
        })
    }
    async fn node_region(&self, _: &PodInfo) -> Result<Option<Region>, IdentityError> {
        Ok(None)
    }
}

pub struct AwsEnv {
    pub _moto: Moto,
    pub proxy: Proxy,
    /// The store as the provider composes it (coalescing over the AWS store).
    pub store: Arc<dyn SecretStore>,
}

/// None when moto is not available (and REQUIRE_MOTO is not set).
pub async fn aws_env() -> Option<AwsEnv> {
    let moto = moto::start()?;
    let proxy = fault_proxy::start(&moto.url).await;
    let settings = SdkSettings {
        endpoint_url: Some(proxy.url.clone()),
        ..SdkSettings::default()
    };
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(AwsStore::new(
        sdk::load(&settings).await.unwrap(),
        AgentSettings::default(),
        false,
        16,
        metrics.clone(),
    ));
    let store: Arc<dyn SecretStore> = Arc::new(Coalescing::new(store, metrics));
    Some(AwsEnv {
        _moto: moto,
        proxy,
        store,
    })
}

impl AwsEnv {
    pub async fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&super::seed_config(&self.proxy.url, REGION).await)
    }

    pub async fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&super::seed_config(&self.proxy.url, REGION).await)
    }
}

/// A mount of `objects` by pod `web-<pod>` of service account `web`, in REGION.
pub fn request(objects: &str, pod: usize) -> MountRequest {
    let pod = format!("web-{pod}");
    let mut attributes: HashMap<&str, &str> = HashMap::new();
    attributes.insert("objects", objects);
    attributes.insert("region", REGION);
    attributes.insert("csi.storage.k8s.io/pod.namespace", "shop");
    attributes.insert("csi.storage.k8s.io/pod.name", &pod);
    attributes.insert("csi.storage.k8s.io/serviceAccount.name", "web");
    RawMountRequest {
        attributes: serde_json::to_string(&attributes).unwrap(),
        permission: "420".into(),
        target_path: "/unused".into(),
        current_versions: vec![],
        secrets: String::new(),
    }
    .parse(None)
    .unwrap()
}

/// The text of one file of a driver-writes mount.
pub fn file(out: &MountOutcome, path: &str) -> String {
    let files = out
        .files
        .as_ref()
        .expect("driver-writes mode returns files");
    let f = files
        .iter()
        .find(|f| f.path.as_str() == path)
        .unwrap_or_else(|| panic!("no file {path}"));
    String::from_utf8(f.contents.expose().to_vec()).unwrap()
}

/// Every file path of a driver-writes mount, sorted.
pub fn paths(out: &MountOutcome) -> Vec<String> {
    let mut paths: Vec<String> = out
        .files
        .as_ref()
        .expect("driver-writes mode returns files")
        .iter()
        .map(|f| f.path.to_string())
        .collect();
    paths.sort();
    paths
}
