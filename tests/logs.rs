//! The logs of successful and failed mounts never carry a secret value or a token.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;

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

#[tokio::test]
async fn mount_logs_carry_no_secret_and_no_token() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        // Everything of ours, at every level; dependencies at info as in production.
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,provider=trace"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let running = start(false, |s| Arc::new(s)).await;
    let target = running.dir.path().join("pod-volume");
    std::fs::create_dir(&target).unwrap();
    let mut client = running.client().await;
    let tokens = r#"{"sts.amazonaws.com":{"token":"token-hunter2","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#;
    let extra = [("csi.storage.k8s.io/serviceAccount.tokens", tokens)];
    client
        .mount(mount_request(OBJECTS, &target, 0o644, &extra))
        .await
        .unwrap();
    // Not JSON, so jmesPath fails; the message must not quote the value.
    let failing =
        "- {objectName: Plain, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: b}]}";
    let status = client
        .mount(mount_request(failing, &target, 0o644, &extra))
        .await
        .unwrap_err();
    assert!(
        !status.message().contains("hunter2"),
        "{}",
        status.message()
    );
    // A path that finds an object (the whole JSON) instead of a string.
    let wrong_type = "- {objectName: MySecret, objectType: secretsmanager, jmesPath: [{path: '@', objectAlias: b}]}";
    let status = client
        .mount(mount_request(wrong_type, &target, 0o644, &extra))
        .await
        .unwrap_err();
    assert!(
        !status.message().contains("hunter2"),
        "{}",
        status.message()
    );
    running.shutdown().await;

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("outcome=\"ok\""), "{logs}");
    assert!(logs.contains("outcome=\"error\""), "{logs}");
    assert!(
        logs.contains("namespace=shop") && logs.contains("pod=web-0"),
        "{logs}"
    );
    assert!(
        !logs.contains("hunter2"),
        "a secret or token leaked into the logs:\n{logs}"
    );
}
