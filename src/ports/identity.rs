//! Who is asking and where: the pod's AWS identity and the region of its node.

use async_trait::async_trait;

use crate::domain::attributes::{AuthMode, PodInfo, Tokens};
use crate::domain::region::Region;
use crate::domain::secret::Token;

/// The identity a store acts for. Stores turn it into credentials (and cache them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub auth: AuthMode,
    pub namespace: String,
    pub service_account: String,
    /// The pod's name and uid: Pod Identity credentials carry them as session tags.
    pub pod_name: String,
    pub pod_uid: String,
    /// IRSA: the role from the service account's annotation. None for Pod Identity,
    /// and for stores that need no credentials (the local store).
    pub role_arn: Option<String>,
    /// The token for `auth`'s audience, when the driver sent one.
    pub token: Option<Token>,
}

impl Identity {
    /// Identities with equal keys hold the same permissions, so their credentials and
    /// answers may be shared: IRSA by role and service account, Pod Identity by pod
    /// (its session tags name the pod).
    pub fn sharing_key(&self) -> String {
        match self.auth {
            AuthMode::Irsa => format!(
                "irsa|{}|{}/{}",
                self.role_arn.as_deref().unwrap_or(""),
                self.namespace,
                self.service_account
            ),
            AuthMode::PodIdentity(_) => format!(
                "pod-identity|{}/{}|{}",
                self.namespace, self.pod_name, self.pod_uid
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The pod's service account or its role annotation is missing or unreadable.
    #[error("{0}")]
    ServiceAccount(String),
    /// The token for the needed audience is missing.
    #[error("no service-account token for audience `{audience}`: configure tokenRequests with this audience on the CSIDriver secrets-store.csi.k8s.io")]
    MissingToken { audience: String },
    /// The node's region could not be read.
    #[error("{0}")]
    Region(String),
    /// The cluster API could not be reached or answered with an error.
    #[error("{0}")]
    Unavailable(String),
}

/// Resolves identity and region for a pod.
///
/// Error contract: `ServiceAccount` when the service account or its annotation is
/// missing (names namespace/name); `MissingToken` when the audience's token is absent;
/// `Region` when the node has no region label; `Unavailable` when the cluster cannot be
/// asked (timeouts, 5xx).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait IdentityResolver: Send + Sync {
    /// The identity to fetch with.
    async fn identity(
        &self,
        pod: &PodInfo,
        auth: AuthMode,
        tokens: &Tokens,
    ) -> Result<Identity, IdentityError>;

    /// The region of the node that runs the pod, when no region was configured.
    /// `Ok(None)` when this resolver has no way to know.
    async fn node_region(&self, pod: &PodInfo) -> Result<Option<Region>, IdentityError>;
}
