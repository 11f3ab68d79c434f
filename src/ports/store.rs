//! Secret stores: Secrets Manager, Parameter Store, or the local development store.

use async_trait::async_trait;

use super::identity::Identity;
use crate::domain::failover::ErrorClass;
use crate::domain::objects::{ObjectKind, ObjectRef};
use crate::domain::region::Region;

pub use crate::domain::plan::Fetched;

/// Why one object could not be fetched. `message` names the cause for a user (the
/// object, the store's error code) and never holds a secret value or a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub class: ErrorClass,
    pub message: String,
}

impl StoreError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        StoreError {
            class,
            message: message.into(),
        }
    }
}

/// Fetches objects from one region on behalf of one identity. One store serves every
/// mount, so the identity travels with each call.
///
/// Error contract, per object:
/// - `ErrorClass::Client(NotFound)` when the object or the asked version does not exist;
/// - `Client(AccessDenied)` when the identity may not read it (or cannot be authenticated);
/// - `Client(Invalid)` for a request the store refuses as malformed (bad name, version);
/// - `Server` for 5xx and throttling after the store's own retries;
/// - `Transport` for timeouts and connection failures.
///
/// The failover decision relies on this classification: only `Server` and `Transport`
/// let the other region's answer stand in.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// How many objects of this kind one call may carry (SSM GetParameters: 10).
    fn batch_limit(&self, kind: ObjectKind) -> usize;

    /// Fetches a batch of objects of one kind. MUST return exactly one result per
    /// requested object, in request order; a failure of the whole call is repeated for
    /// every object of the batch.
    async fn fetch(
        &self,
        region: &Region,
        identity: &Identity,
        batch: &[ObjectRef],
    ) -> Vec<Result<Fetched, StoreError>>;
}
