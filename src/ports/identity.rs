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
    /// IRSA: the role from the service account's annotation. None for Pod Identity,
    /// and for stores that need no credentials (the local store).
    pub role_arn: Option<String>,
    /// The token for `auth`'s audience, when the driver sent one.
    pub token: Option<Token>,
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
