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
            auth,
            namespace: pod.namespace.clone(),
            service_account: pod.service_account.clone(),
            pod_name: pod.name.clone(),
            pod_uid: pod.uid.clone(),
            role_arn: None,
            token: tokens.get(auth.audience()).cloned(),
            keys: None,
            assume: None,
        })
    }

    async fn node_region(&self, _pod: &PodInfo) -> Result<Option<Region>, IdentityError> {
        Ok(self.region.clone())
    }
}
