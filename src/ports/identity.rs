//! Who is asking and where: the pod's AWS identity and the region of its node.

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::assume::{session_name, AssumeRole};
use crate::domain::attributes::{AuthMode, PodInfo, Tokens};
use crate::domain::mount_secrets::{MountSecrets, SecretsError, StaticKeys};
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
    /// `AuthMode::SecretRef`: the credentials from the volume's secret.
    pub keys: Option<StaticKeys>,
    /// The class's `assumeRoleArn`: the role these credentials assume for the mount.
    pub assume: Option<AssumeRole>,
}

impl Identity {
    /// Who `pod` is, with nothing to sign with yet: resolvers add the role, token, keys.
    pub fn of_pod(pod: &PodInfo, auth: AuthMode) -> Identity {
        Identity {
            auth,
            namespace: pod.namespace.clone(),
            service_account: pod.service_account.clone(),
            pod_name: pod.name.clone(),
            pod_uid: pod.uid.clone(),
            role_arn: None,
            token: None,
            keys: None,
            assume: None,
        }
    }

    /// Identities with equal keys hold the same permissions, so their credentials and
    /// answers may be shared: IRSA by role and service account, Pod Identity by pod
    /// (its session tags name the pod), static credentials by all their parts, and then
    /// the role they assume with its external id.
    pub fn sharing_key(&self) -> String {
        let base = self.base_sharing_key();
        match &self.assume {
            None => base,
            // The session name too: it names the namespace and service account, which
            // static credentials' keys do not, and trust policies may test it.
            Some(a) => format!(
                "{base}|assume|{}|{}|{}",
                a.role_arn,
                a.external_id.as_deref().unwrap_or(""),
                session_name(&self.namespace, &self.service_account)
            ),
        }
    }

    /// The key of the pod's own credentials, before any role the class assumes.
    pub fn base_sharing_key(&self) -> String {
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
            // Every part of the credentials, through a keyed hash: never the access key
            // id alone, and nothing a reader of this process's memory could reverse.
            AuthMode::SecretRef => format!(
                "secret-ref|{}",
                self.keys
                    .as_ref()
                    .map(|k| k.fingerprint(fingerprint_key()))
                    .unwrap_or_default()
            ),
        }
    }

    /// The identity of a mount that brings its own credentials in the volume's secret.
    pub fn from_secret_ref(
        pod: &PodInfo,
        secrets: &MountSecrets,
    ) -> Result<Identity, IdentityError> {
        let keys = StaticKeys::from_secrets(secrets)?;
        Ok(Identity {
            keys: Some(keys),
            ..Identity::of_pod(pod, AuthMode::SecretRef)
        })
    }
}

/// The process's own random key for credential fingerprints.
fn fingerprint_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(rand::random)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The pod's service account or its role annotation is missing or unreadable.
    #[error(transparent)]
    ServiceAccount(Cause),
    /// The token for the needed audience is missing.
    #[error("no service-account token for audience `{audience}`: configure tokenRequests with this audience on the CSIDriver secrets-store.csi.k8s.io")]
    MissingToken { audience: String },
    /// The node's region could not be read.
    #[error(transparent)]
    Region(Cause),
    /// The volume's secret lacks the credentials, or holds malformed ones (names the
    /// keys, never their values).
    #[error(transparent)]
    SecretRef(#[from] SecretsError),
    /// The cluster API could not be reached or answered with an error.
    #[error(transparent)]
    Unavailable(Cause),
}

/// A message for a user and, when there is one, the client's error behind it (kept for
/// the cause chain; shared, so the error stays cheap to clone for shared lookups).
#[derive(Debug, Clone)]
pub struct Cause {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }
}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Cause {
            message,
            source: None,
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Two causes are the same when they say the same to a user.
impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for Cause {}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assumed_role_is_shared_only_within_one_service_account() {
        use crate::domain::mount_secrets::MountSecrets;
        let secrets =
            MountSecrets::parse(r#"{"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s"}"#)
                .unwrap();
        let pod = |namespace: &str| PodInfo {
            namespace: namespace.into(),
            name: "p".into(),
            uid: "u".into(),
            service_account: "app".into(),
        };
        let role = AssumeRole::parse("arn:aws:iam::210987654321:role/r", None, None).unwrap();
        let with_role = |namespace: &str| {
            let mut identity = Identity::from_secret_ref(&pod(namespace), &secrets).unwrap();
            identity.assume = Some(role.clone());
            identity
        };
        // The same keys in two namespaces: one base key, but two assumed sessions.
        assert_eq!(
            with_role("prod").base_sharing_key(),
            with_role("dev").base_sharing_key()
        );
        assert_ne!(
            with_role("prod").sharing_key(),
            with_role("dev").sharing_key()
        );
        assert_eq!(
            with_role("prod").sharing_key(),
            with_role("prod").sharing_key()
        );
    }

    #[test]
    fn an_unavailable_cluster_keeps_the_clients_error_as_its_source() {
        let inner = std::io::Error::other("connection refused");
        let err = IdentityError::Unavailable(
            Cause::from("reading service account shop/web: failed".to_string()).caused_by(inner),
        );
        assert_eq!(err.to_string(), "reading service account shop/web: failed");
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("connection refused"));
    }
}
