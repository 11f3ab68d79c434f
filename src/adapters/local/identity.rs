//! Identity without a cluster: for the local store and the `mount` command. It passes
//! the driver's token through and knows a region only when one was configured.

use async_trait::async_trait;

use crate::domain::attributes::{AuthMode, PodInfo, Tokens};
use crate::domain::region::Region;
use crate::ports::{Identity, IdentityError, IdentityResolver};

#[derive(Debug, Clone, Default)]
pub struct NoClusterIdentity {
    /// The node region to answer with, when known (for example `--region`).
    pub region: Option<Region>,
}

#[async_trait]
impl IdentityResolver for NoClusterIdentity {
    async fn identity(
        &self,
        pod: &PodInfo,
        auth: AuthMode,
        tokens: &Tokens,
    ) -> Result<Identity, IdentityError> {
        Ok(Identity {
            token: tokens.get(auth.audience()).cloned(),
            ..Identity::of_pod(pod, auth)
        })
    }

    async fn node_region(&self, _pod: &PodInfo) -> Result<Option<Region>, IdentityError> {
        Ok(self.region.clone())
    }
}
