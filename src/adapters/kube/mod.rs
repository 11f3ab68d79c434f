//! Kubernetes lookups with kube-rs: the IRSA role of a pod's service account and the
//! region of its node, answered from watches and caches so a mount storm makes O(1)
//! API calls.

mod errors;
pub mod events;
pub mod rate_limit;
mod region;
mod request_metrics;
mod service_accounts;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use region::REGION_LABEL;
pub use service_accounts::ROLE_ANNOTATION;

use self::rate_limit::{RateLimitLayer, TokenBucket};
use self::region::NodeRegion;
use self::request_metrics::RequestMetricsLayer;
use self::service_accounts::ServiceAccounts;
use crate::adapters::metrics::Metrics;
use crate::domain::attributes::{AuthMode, PodInfo, Tokens};
use crate::domain::region::Region;
use crate::ports::{Identity, IdentityError, IdentityResolver};

/// Bound on each single API read (watches are long-lived and not bounded by it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct KubeSettings {
    pub qps: f32,
    pub burst: u32,
    /// NODE_NAME from the downward API.
    pub node_name: Option<String>,
    /// Watch service accounts (needs list/watch); without it every new key is a GET.
    pub watch_service_accounts: bool,
    pub request_timeout: Duration,
}

impl Default for KubeSettings {
    fn default() -> Self {
        KubeSettings {
            qps: 5.0,
            burst: 10,
            node_name: None,
            watch_service_accounts: true,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// A client for `config` with the `--qps`/`--burst` limit on every request.
/// Each request is also counted in `metrics`.
pub fn client(
    config: kube::Config,
    settings: &KubeSettings,
    metrics: Arc<Metrics>,
) -> Result<kube::Client, kube::Error> {
    let bucket = TokenBucket::new(settings.qps, settings.burst);
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&RequestMetricsLayer(metrics))
        .with_layer(&RateLimitLayer(bucket))
        .build())
}

pub struct KubeIdentity {
    service_accounts: Arc<ServiceAccounts>,
    region: Arc<NodeRegion>,
}

impl KubeIdentity {
    /// Starts the watches; lookups work at once (falling back to reads until synced).
    pub fn start(client: kube::Client, settings: &KubeSettings) -> Self {
        KubeIdentity {
            service_accounts: ServiceAccounts::start(
                client.clone(),
                settings.request_timeout,
                settings.watch_service_accounts,
            ),
            region: NodeRegion::start(client, settings.node_name.clone(), settings.request_timeout),
        }
    }

    /// Stops the watches (on shutdown: the process exits with no task left running).
    pub fn stop(&self) {
        self.service_accounts.stop();
        self.region.stop();
    }

    /// True once the service-account watch has listed everything.
    pub fn synced(&self) -> bool {
        self.service_accounts.synced()
    }
}

#[async_trait]
impl IdentityResolver for KubeIdentity {
    async fn identity(
        &self,
        pod: &PodInfo,
        auth: AuthMode,
        tokens: &Tokens,
    ) -> Result<Identity, IdentityError> {
        let token =
            tokens
                .get(auth.audience())
                .cloned()
                .ok_or_else(|| IdentityError::MissingToken {
                    audience: auth.audience().to_string(),
                })?;
        let role_arn = match auth {
            AuthMode::Irsa => Some(
                self.service_accounts
                    .role(&pod.namespace, &pod.service_account)
                    .await?,
            ),
            AuthMode::PodIdentity(_) | AuthMode::SecretRef => None,
        };
        Ok(Identity {
            role_arn,
            token: Some(token),
            ..Identity::of_pod(pod, auth)
        })
    }

    async fn node_region(&self, pod: &PodInfo) -> Result<Option<Region>, IdentityError> {
        self.region.region(pod).await
    }
}
