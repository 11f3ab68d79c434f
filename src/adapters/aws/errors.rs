//! SDK errors → classified store errors with a message a user can act on.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::classify::{classify, is_stale_credentials};
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::ports::StoreError;

/// A classified error and the AWS error code, when there was one.
pub struct Classified {
    pub error: StoreError,
    pub code: Option<String>,
}

impl Classified {
    /// An error of ours, not AWS's (no error code).
    pub fn plain(error: StoreError) -> Self {
        Classified { error, code: None }
    }

    /// Whether AWS refused the credentials as stale (the caller then retries once).
    pub fn is_stale_credentials(&self) -> bool {
        is_stale_credentials(self.code.as_deref())
    }
}

/// `what` says which call on which object, e.g. `GetSecretValue MySecret`. The SDK's
/// error stays the cause.
pub fn from_sdk<E>(what: &str, err: SdkError<E, HttpResponse>) -> Classified
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let mut classified = describe(what, &err);
    classified.error = classified.error.caused_by(err);
    classified
}

fn describe<E: ProvideErrorMetadata>(what: &str, err: &SdkError<E, HttpResponse>) -> Classified {
    match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().map(str::to_string);
            let status = service.raw().status().as_u16();
            let detail = service.err().message().unwrap_or("no message");
            let class = classify(code.as_deref(), Some(status));
            let message = format!(
                "{what}: {} (HTTP {status}): {detail}",
                code.as_deref().unwrap_or("error")
            );
            Classified {
                error: StoreError::new(class, message),
                code,
            }
        }
        SdkError::ResponseError(response) => {
            // A body we could not read as an AWS error: the status still tells the side.
            let status = response.raw().status().as_u16();
            let class = classify(None, Some(status));
            Classified {
                error: StoreError::new(class, format!("{what}: unreadable answer (HTTP {status})")),
                code: None,
            }
        }
        SdkError::TimeoutError(_) => Classified {
            error: StoreError::new(ErrorClass::Transport, format!("{what}: timed out")),
            code: None,
        },
        SdkError::DispatchFailure(failure) => {
            let reason = if failure.is_timeout() {
                "connection timed out"
            } else if failure.is_io() {
                "connection failed"
            } else {
                "request could not be sent"
            };
            Classified {
                error: StoreError::new(ErrorClass::Transport, format!("{what}: {reason}")),
                code: None,
            }
        }
        SdkError::ConstructionFailure(_) => Classified {
            error: StoreError::new(
                ErrorClass::Client(ClientKind::Other),
                format!("{what}: the request could not be built"),
            ),
            code: None,
        },
        _ => Classified {
            error: StoreError::new(ErrorClass::Transport, format!("{what}: failed")),
            code: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

    #[test]
    fn the_sdk_error_is_kept_as_the_cause_and_the_message_stays() {
        let err = SdkError::<GetSecretValueError, HttpResponse>::timeout_error("slow answer");
        let classified = from_sdk("GetSecretValue db in us-east-1", err);
        assert_eq!(
            classified.error.message,
            "GetSecretValue db in us-east-1: timed out"
        );
        assert_eq!(classified.error.class, ErrorClass::Transport);
        assert!(std::error::Error::source(&classified.error).is_some());
    }
}
