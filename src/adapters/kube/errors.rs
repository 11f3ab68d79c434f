//! What a failed Kubernetes API call means for a user.

use std::time::Duration;

/// The kinds of failure a lookup reports differently.
pub enum ApiFailure {
    NotFound,
    Forbidden(String),
    Other(String),
}

pub fn describe(error: &kube::Error) -> ApiFailure {
    match error {
        kube::Error::Api(status) if status.code == 404 => ApiFailure::NotFound,
        kube::Error::Api(status) if status.code == 403 => {
            ApiFailure::Forbidden(status.message.clone())
        }
        kube::Error::Api(status) => ApiFailure::Other(format!(
            "API server answered {}: {}",
            status.code, status.message
        )),
        other => ApiFailure::Other(other.to_string()),
    }
}

/// The API server's message when a watch was refused for lack of RBAC (list or watch):
/// retrying does not help until the ClusterRole changes.
pub fn watch_forbidden(error: &kube::runtime::watcher::Error) -> Option<&str> {
    use kube::runtime::watcher::Error as W;
    match error {
        W::InitialListFailed(kube::Error::Api(s))
        | W::WatchStartFailed(kube::Error::Api(s))
        | W::WatchFailed(kube::Error::Api(s))
        | W::WatchError(s)
            if s.code == 403 =>
        {
            Some(&s.message)
        }
        _ => None,
    }
}

/// How long a watch refused by RBAC waits before it tries again (quietly): a few seconds
/// at first, because an API server that has just (re)started answers 403 until its RBAC
/// caches have synced (seen against a real kube-apiserver: one such refusal used to park
/// the watch for ten minutes), then doubling up to ten minutes, because a refusal that
/// lasts is a ClusterRole an operator may fix without restarting the provider.
pub struct ForbiddenRetry {
    next: Duration,
}

const FIRST_FORBIDDEN_RETRY: Duration = Duration::from_secs(2);
const LAST_FORBIDDEN_RETRY: Duration = Duration::from_secs(600);

impl ForbiddenRetry {
    pub fn new() -> Self {
        ForbiddenRetry {
            next: FIRST_FORBIDDEN_RETRY,
        }
    }

    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(LAST_FORBIDDEN_RETRY);
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_watches_retry_soon_then_every_ten_minutes() {
        let mut retry = ForbiddenRetry::new();
        let waits: Vec<u64> = (0..11).map(|_| retry.next_wait().as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
    }
}
