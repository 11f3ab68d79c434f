//! Secret stores: Secrets Manager, Parameter Store, or the local development store.

use std::sync::Arc;

use async_trait::async_trait;

use super::identity::Identity;
use crate::domain::failover::ClientKind;
use crate::domain::failover::ErrorClass;
use crate::domain::objects::{ObjectRef, Selection};
use crate::domain::region::Region;

pub use crate::domain::fetched::{Fetched, Selected};

/// Why one object could not be fetched. `message` names the cause for a user (the
/// object, the store's error code) and never holds a secret value or a token; `source`
/// keeps the vendor's error for the cause chain.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    pub class: ErrorClass,
    pub message: String,
    #[source]
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// Two errors are the same when they mean the same to a user (class and message).
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        self.class == other.class && self.message == other.message
    }
}

impl Eq for StoreError {}

impl StoreError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        StoreError {
            class,
            message: message.into(),
            source: None,
        }
    }

    /// The same, keeping `source` as the cause.
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The one filler for an object a store call gave no answer for (a transport
    /// failure: the other region may still answer).
    pub fn no_answer() -> Self {
        StoreError::new(ErrorClass::Transport, "the store gave no answer")
    }
}

/// Fetches objects from one region on behalf of one identity. One store serves every
/// mount, so the identity travels with each call. The store owns batching: it is handed
/// every object of a mount for a region, of any kinds, and splits them into its own
/// calls (Parameter Store: 10 names per GetParameters) with its own bound on calls in
/// flight.
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
    /// Fetches `objects` (any number, any kinds). MUST return exactly one result per
    /// requested object, in request order; a failure of one of its calls is repeated for
    /// every object of that call.
    async fn fetch(
        &self,
        region: &Region,
        identity: &Identity,
        objects: &[ObjectRef],
    ) -> Vec<Result<Fetched, StoreError>>;

    /// The objects `selection` chooses, with their values, in the store's order. Stops
    /// after `limit + 1` matches (the caller refuses more than `limit`), so a selection
    /// that matches thousands costs a few pages, not all of them. MUST pass each match's
    /// value size to `account` before keeping it, and fail with the account's error
    /// when it refuses (the caller's memory budget is then taken). One error for the
    /// whole selection, classified as for `fetch`: a per-object failure (a secret the
    /// identity may not read) fails it, naming that object.
    async fn select(
        &self,
        region: &Region,
        identity: &Identity,
        selection: &Selection,
        limit: usize,
        account: Arc<dyn MatchAccount>,
    ) -> Result<Vec<Selected>, StoreError> {
        let _ = (region, identity, limit, account);
        Err(StoreError::new(
            ErrorClass::Client(ClientKind::Invalid),
            format!("this store cannot select objects ({selection})"),
        ))
    }
}

/// What a selection's matches may hold in memory, counted as they arrive.
pub trait MatchAccount: Send + Sync {
    /// Counts a match of `bytes` before it is kept. The error is the selection's.
    fn take(&self, bytes: usize) -> Result<(), StoreError>;

    /// A new attempt begins (another region): what the last one counted was dropped.
    fn restart(&self) {}
}

/// Counts nothing: for tools and tests that hold no budget.
pub struct Uncounted;

impl MatchAccount for Uncounted {
    fn take(&self, _bytes: usize) -> Result<(), StoreError> {
        Ok(())
    }
}
