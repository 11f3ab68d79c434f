//! Credentials for a pod's identity, cached across mounts and shared across regions.
//!
//! IRSA credentials are keyed by role and service account, so every pod of that service
//! account shares them, and one STS call serves every region. Pod Identity credentials
//! carry the pod's session tags, so they are reused only by the same pod.

mod assume;
mod cache;
mod irsa;
pub mod pod_identity;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;

pub use cache::{CredentialCache, Source};
use pod_identity::{AgentSettings, PodIdentityAgent};

use crate::adapters::metrics::{outcome, CredentialLabels, Metrics, SourceLabels};
use crate::domain::assume::session_name;
use crate::domain::attributes::AuthMode;
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::region::Region;
use crate::ports::{Identity, StoreError};

/// Refresh credentials this long before they expire.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
const SOFT_LIMIT: usize = 10_000;

/// What to sign a call with.
#[derive(Debug, Clone)]
pub enum Signing {
    /// The pod's own credentials.
    Pod(Credentials),
    /// The SDK configuration's default chain (only when allowed: `mount` on a laptop).
    Default,
}

pub struct CredentialResolver {
    sdk: SdkConfig,
    irsa: CredentialCache<String, Credentials>,
    pods: CredentialCache<String, Credentials>,
    /// Roles classes assume, by (pod's credentials, role, external id).
    assumed: CredentialCache<String, Credentials>,
    agent: PodIdentityAgent,
    default_credentials: bool,
    metrics: Arc<Metrics>,
}

impl CredentialResolver {
    pub fn new(
        sdk: SdkConfig,
        agent: AgentSettings,
        default_credentials: bool,
        metrics: Arc<Metrics>,
    ) -> Self {
        CredentialResolver {
            sdk,
            irsa: CredentialCache::new(REFRESH_MARGIN, SOFT_LIMIT),
            pods: CredentialCache::new(REFRESH_MARGIN, SOFT_LIMIT),
            assumed: CredentialCache::new(REFRESH_MARGIN, SOFT_LIMIT),
            agent: PodIdentityAgent::new(agent),
            default_credentials,
            metrics,
        }
    }

    fn record_fetch(&self, source: &str, result: &Result<(Credentials, Duration), StoreError>) {
        let labels = CredentialLabels {
            source: source.to_string(),
            outcome: outcome(result.as_ref().err().map(|e| e.class)).to_string(),
        };
        self.metrics.credential_fetches.get_or_create(&labels).inc();
    }

    /// Credential calls made (STS or agent), and answers served from the cache.
    pub fn counts(&self) -> (u64, u64) {
        self.metrics.credential_totals()
    }

    /// Credentials for `identity`, fetched in `region` when not cached: the pod's own,
    /// or the role its class assumes with them.
    pub async fn resolve(
        &self,
        identity: &Identity,
        region: &Region,
    ) -> Result<Signing, StoreError> {
        let base = self.resolve_base(identity, region).await?;
        let Some(role) = &identity.assume else {
            return Ok(base);
        };
        let key = identity.sharing_key();
        let session = session_name(&identity.namespace, &identity.service_account);
        let (credentials, source) = self
            .assumed
            .get_or_fetch(&key, || async {
                let started = Instant::now();
                let result = assume::assume_role(&self.sdk, region, &base, role, &session).await;
                let label = outcome(result.as_ref().err().map(|e| e.class));
                self.metrics.aws_call(
                    "sts",
                    "AssumeRole",
                    region.as_str(),
                    label,
                    started.elapsed(),
                );
                self.record_fetch("assume_role", &result);
                result
            })
            .await?;
        if source == Source::Cached {
            self.metrics
                .credential_cache_hits
                .get_or_create(&SourceLabels {
                    source: "assume_role".to_string(),
                })
                .inc();
        }
        Ok(Signing::Pod(credentials))
    }

    /// The pod's own credentials.
    async fn resolve_base(
        &self,
        identity: &Identity,
        region: &Region,
    ) -> Result<Signing, StoreError> {
        let who = format!("{}/{}", identity.namespace, identity.service_account);
        if identity.auth == AuthMode::SecretRef {
            return static_signing(identity, &who);
        }
        let Some(token) = identity.token.as_ref() else {
            if self.default_credentials {
                return Ok(Signing::Default);
            }
            return Err(StoreError::new(
                ErrorClass::Client(ClientKind::AccessDenied),
                format!("no service-account token for audience {} (pod of {who}): configure tokenRequests on the CSIDriver", identity.auth.audience()),
            ));
        };
        let key = identity.base_sharing_key();
        let result = match identity.auth {
            AuthMode::Irsa => {
                let Some(role) = identity.role_arn.as_deref() else {
                    return Err(StoreError::new(
                        ErrorClass::Client(ClientKind::AccessDenied),
                        format!(
                            "service account {who} has no eks.amazonaws.com/role-arn annotation"
                        ),
                    ));
                };
                self.irsa
                    .get_or_fetch(&key, || async {
                        let started = Instant::now();
                        let result = irsa::assume_role(&self.sdk, region, role, token).await;
                        let label = outcome(result.as_ref().err().map(|e| e.class));
                        self.metrics.aws_call(
                            "sts",
                            "AssumeRoleWithWebIdentity",
                            region.as_str(),
                            label,
                            started.elapsed(),
                        );
                        self.record_fetch("irsa", &result);
                        result
                    })
                    .await
            }
            AuthMode::SecretRef => return static_signing(identity, &who),
            AuthMode::PodIdentity(preference) => {
                self.pods
                    .get_or_fetch(&key, || async {
                        let result = self.agent.credentials(token, preference).await;
                        self.record_fetch("pod_identity", &result);
                        result
                    })
                    .await
            }
        };
        let (credentials, source) = result?;
        if source == Source::Cached {
            let source = match identity.auth {
                AuthMode::Irsa => "irsa",
                AuthMode::PodIdentity(_) => "pod_identity",
                AuthMode::SecretRef => "secret_ref",
            };
            self.metrics
                .credential_cache_hits
                .get_or_create(&SourceLabels {
                    source: source.to_string(),
                })
                .inc();
        }
        Ok(Signing::Pod(credentials))
    }

    /// Drops the cached credentials of `identity` (AWS refused them as stale).
    pub async fn invalidate(&self, identity: &Identity) {
        if identity.assume.is_some() {
            self.assumed.invalidate(&identity.sharing_key()).await;
        }
        let key = identity.base_sharing_key();
        match identity.auth {
            AuthMode::Irsa => self.irsa.invalidate(&key).await,
            AuthMode::PodIdentity(_) => self.pods.invalidate(&key).await,
            // Static credentials are not cached: nothing to drop.
            AuthMode::SecretRef => {}
        }
    }
}

/// The volume's own credentials: nothing to fetch, nothing to cache.
fn static_signing(identity: &Identity, who: &str) -> Result<Signing, StoreError> {
    match &identity.keys {
        Some(keys) => Ok(Signing::Pod(Credentials::new(
            keys.access_key_id.expose(),
            keys.secret_access_key.expose(),
            keys.session_token.as_ref().map(|t| t.expose().to_string()),
            None,
            "nodePublishSecretRef",
        ))),
        None => Err(StoreError::new(
            ErrorClass::Client(ClientKind::AccessDenied),
            format!("no credentials from the volume's secret (pod of {who})"),
        )),
    }
}
