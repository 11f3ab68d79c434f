//! What the AWS SDK may log. Its debug and trace events print what it signs with and
//! what it receives: `aws_smithy_runtime` logs the endpoint parameters and the runtime
//! components at debug and trace, and the resolved identity, each request (its
//! `Authorization` header names the access key id, `x-amz-security-token` carries the
//! session token) and each response (its body holds the secret's value) at trace; the
//! credentials print their access key id through `Credentials`' Debug. Its info, warn
//! and error events carry none of these (read in aws-smithy-runtime 1.16, aws-runtime
//! 1.10, aws-sigv4 1.6), except `aws_config`'s profile chain (the `mount` command's
//! default credentials), which logs the credentials it loaded at info and a provider at
//! warn. So the SDK is held at info and the profile chain at error, whatever RUST_LOG
//! or `--log-level` ask for; the provider's own events and every other crate keep the
//! level asked. The cost: the SDK's own debug output (retries, timings) is not
//! available; the provider logs each AWS error itself.

use tracing_subscriber::filter::{LevelFilter, Targets};

/// The prefix of the AWS SDK's crates (aws_smithy_*, aws_sdk_*, aws_config,
/// aws_credential_types, aws_runtime, aws_sigv4), as tracing targets.
const SDK_TARGETS: &str = "aws_";

/// `aws_config`'s credential chain from profile files.
const PROFILE_CHAIN: &str = "aws_config::profile";

/// A filter to combine (`and`) with the operator's: it lets everything through except
/// the AWS SDK's events below info, and its profile chain's below error.
pub fn without_sdk_credentials() -> Targets {
    Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_target(SDK_TARGETS, LevelFilter::INFO)
        .with_target(PROFILE_CHAIN, LevelFilter::ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::{EnvFilter, Layer};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_sdks_debug_and_trace_are_dropped_even_when_asked_for_by_name() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let asked = EnvFilter::new("trace,aws_smithy_runtime::client::orchestrator::auth=trace");
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_filter(asked.and(without_sdk_credentials()));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "aws_smithy_runtime::client::orchestrator::auth", "identity AKIA-LEAK");
            tracing::trace!(target: "aws_sdk_secretsmanager::operation", "body SECRET-LEAK");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator::endpoints", "params AKIA-LEAK");
            tracing::info!(target: "aws_config::profile::credentials", "creds AKIA-LEAK");
            tracing::warn!(target: "aws_smithy_runtime::client::retries", "retrying");
            tracing::trace!(target: "provider::service", "ours at trace");
        });
        let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(!logs.contains("LEAK"), "{logs}");
        assert!(logs.contains("retrying"), "{logs}");
        assert!(logs.contains("ours at trace"), "{logs}");
    }
}
