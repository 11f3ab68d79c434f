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
