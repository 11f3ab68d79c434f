//! The logs of successful and failed mounts never carry a secret value or a token.

use crate::common;

use common::request::Mount;

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
        .mount(Mount::of(OBJECTS).with(&extra).target(&target).grpc())
        .await
        .unwrap();
    // Not JSON, so jmesPath fails; the message must not quote the value.
    let failing =
        "- {objectName: Plain, objectType: secretsmanager, jmesPath: [{path: a, objectAlias: b}]}";
    let status = client
        .mount(Mount::of(failing).with(&extra).target(&target).grpc())
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
        .mount(Mount::of(wrong_type).with(&extra).target(&target).grpc())
        .await
        .unwrap_err();
    assert!(
        !status.message().contains("hunter2"),
        "{}",
        status.message()
    );
    // The volume's secret: credentials and, on newer clusters, tokens. Every value is
    // secret, in a mount that succeeds and in one that fails.
    let mut with_secrets = Mount::of(OBJECTS)
        .with(&[("authentication", "nodePublishSecretRef")])
        .target(&target)
        .grpc();
    with_secrets.secrets = r#"{"aws_access_key_id":"AKIA-hunter2","aws_secret_access_key":"sk-hunter2","aws_session_token":"st-hunter2","token":"eyJ-hunter2"}"#.into();
    client.mount(with_secrets.clone()).await.unwrap();
    with_secrets.secrets = r#"{"aws_access_key_id":"AKIA-hunter2","token":"eyJ-hunter2"}"#.into();
    let status = client.mount(with_secrets.clone()).await.unwrap_err();
    assert!(
        status.message().contains("aws_secret_access_key") && !status.message().contains("hunter2"),
        "{}",
        status.message()
    );
    with_secrets.secrets = r#"{"aws_access_key_id": "AKIA-hunter2", broken"#.into();
    let status = client.mount(with_secrets).await.unwrap_err();
    assert!(
        !status.message().contains("hunter2"),
        "{}",
        status.message()
    );
    // Without the opt-in the secret is not used, and still never shown.
    let mut ignored = Mount::of(OBJECTS).with(&extra).target(&target).grpc();
    ignored.secrets = r#"{"token":"eyJ-hunter2"}"#.into();
    client.mount(ignored).await.unwrap();
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

/// The provider binary's stderr after one mount of `objects` (which fails).
async fn failing_mount_logs(format: &str, objects: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let store = write_store(dir.path());
    let volume = dir.path().join("providers");
    let mut child =
        std::process::Command::new(env!("CARGO_BIN_EXE_secrets-store-csi-driver-provider-aws"))
            .arg(format!("--provider-volume={}", volume.display()))
            .args(["--metrics-addr=", "--store", "local", "--local-store"])
            .arg(&store)
            .args(["--log-format", format])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
    let socket = volume.join("aws.sock");
    wait_for_socket(&socket).await;
    let target = dir.path().join("pod");
    std::fs::create_dir(&target).unwrap();
    let result = connect(&socket)
        .await
        .mount(Mount::of(objects).target(&target).grpc())
        .await;
    assert!(result.is_err(), "the mount was meant to fail");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    logs
}

/// An object name that would start a forged line and colour the terminal red.
const FORGING: &str =
    r#"- {objectName: "Evil\nINFO mount outcome=\"ok\"\x1b[31m", objectType: secretsmanager}"#;

#[tokio::test]
async fn class_input_cannot_forge_a_text_log_line() {
    let logs = failing_mount_logs("text", FORGING).await;
    assert!(
        !logs.contains('\x1b'),
        "a raw escape or colour code:\n{logs}"
    );
    let failed: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("outcome=\"error\""))
        .collect();
    assert_eq!(failed.len(), 1, "{logs}");
    assert!(
        failed[0].contains(r#"Evil\nINFO mount outcome="ok"\u{1b}[31m"#),
        "the name, escaped, in the mount's one line:\n{logs}"
    );
    assert!(
        !logs.lines().any(|l| l.starts_with("INFO")),
        "a forged line:\n{logs}"
    );
}

#[tokio::test]
async fn json_logs_escape_class_input_themselves() {
    let logs = failing_mount_logs("json", FORGING).await;
    assert!(!logs.contains('\x1b'), "{logs}");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let failed = lines
        .iter()
        .find(|v| v["fields"]["outcome"] == "error")
        .unwrap_or_else(|| panic!("no failed mount logged:\n{logs}"));
    let error = failed["fields"]["error"].as_str().unwrap();
    assert!(
        error.contains("Evil\nINFO mount outcome=\"ok\"\x1b[31m"),
        "JSON carries the name as it was: {error}"
    );
}
