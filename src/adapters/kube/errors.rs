//! What a failed Kubernetes API call means for a user.

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

/// How long a watch refused by RBAC waits before it tries again (quietly): an operator
/// may grant the verbs without restarting the provider.
pub const FORBIDDEN_WATCH_RETRY: std::time::Duration = std::time::Duration::from_secs(600);
