//! Operating the provider: /metrics, /healthz, /readyz, gRPC health, error codes, logs.

use crate::common;

use common::binary::{start_local, LocalBinary, BIN};
use common::request::Mount;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

const STORE: &str = r#"
secretsmanager:
  MySecret:
    - {versionId: v1, stages: [AWSCURRENT], secretString: 'value-hunter2'}
  Denied:
    - {versionId: v1, stages: [AWSCURRENT], secretString: x}
  Down:
    - {versionId: v1, stages: [AWSCURRENT], secretString: x}
failures:
  - {object: Denied, class: accessdenied}
  - {object: Down, class: server}
"#;

/// The provider binary over [`STORE`]; its operations endpoint is `p.ops` (host:port).
type Provider = LocalBinary;

async fn start(extra: &[&str]) -> Provider {
    start_local(STORE, Command::new(BIN), extra).await
}

async fn get(url: &str) -> (u16, String) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client.get(url.parse().unwrap()).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn target(dir: &Path, name: &str) -> std::path::PathBuf {
    let t = dir.join(name);
    std::fs::create_dir_all(&t).unwrap();
    t
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn health_endpoints_grpc_health_and_mount_metrics() {
    let p = start(&[]).await;
    assert_eq!(get(&format!("http://{}/healthz", p.ops)).await.0, 200);
    assert_eq!(get(&format!("http://{}/readyz", p.ops)).await.0, 200);

    let channel = tonic::transport::Endpoint::try_from("http://localhost")
        .unwrap()
        .connect_with_connector(tower::service_fn({
            let socket = p.socket.clone();
            move |_: tonic::transport::Uri| {
                let socket = socket.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(socket).await?,
                    ))
                }
            }
        }))
        .await
        .unwrap();
    let health = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, ServingStatus::Serving as i32);

    let mut client = common::connect(&p.socket).await;
    let t = target(p.dir.path(), "pod");
    client
        .mount(
            Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
                .target(&t)
                .grpc(),
        )
        .await
        .unwrap();
    client
        .mount(
            Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
                .target(&t)
                .grpc(),
        )
        .await
        .unwrap();
    let status = client
        .mount(
            Mount::of("- {objectName: Nope, objectType: secretsmanager}")
                .target(&t)
                .grpc(),
        )
        .await
        .unwrap_err();
    assert!(
        status.message().contains("Nope"),
        "the detailed message stays the default"
    );

    let (code, text) = get(&format!("http://{}/metrics", p.ops)).await;
    assert_eq!(code, 200);
    assert_eq!(
        metric(
            &text,
            r#"secrets_store_provider_aws_mounts_total{result="ok",code="none"}"#
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"secrets_store_provider_aws_mounts_total{result="error",code="SecretNotFound"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "secrets_store_provider_aws_mount_duration_seconds_count"
        ),
        3.0
    );
    assert_eq!(
        metric(&text, "secrets_store_provider_aws_mounts_in_flight"),
        0.0
    );
    assert!(
        !text.contains("MySecret") && !text.contains("hunter2"),
        "no object name or value in metrics"
    );
}

#[tokio::test]
async fn with_error_codes_each_failure_class_yields_its_code_and_logs_hold_no_secret() {
    let mut p = start(&["--error-codes"]).await;
    let mut client = common::connect(&p.socket).await;
    let t = target(p.dir.path(), "pod");
    let file_target = p.dir.path().join("a-file");
    std::fs::write(&file_target, "").unwrap();
    let cases: Vec<(&str, &Path, &str)> = vec![
        (
            "- {objectName: MySecret, objectType: ssm}",
            &t,
            "InvalidSecretProviderClass",
        ),
        (
            "- {objectName: Nope, objectType: secretsmanager}",
            &t,
            "SecretNotFound",
        ),
        (
            "- {objectName: Denied, objectType: secretsmanager}",
            &t,
            "AccessDenied",
        ),
        (
            "- {objectName: Down, objectType: secretsmanager}",
            &t,
            "AWSUnavailable",
        ),
        (
            "- {objectName: MySecret, objectType: secretsmanager}",
            &file_target,
            "FileWriteError",
        ),
    ];
    for (objects, target, code) in cases {
        let response = client
            .mount(Mount::of(objects).target(target).grpc())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            response.error.map(|e| e.code).as_deref(),
            Some(code),
            "{objects}"
        );
        assert!(response.object_version.is_empty());
    }
    let ok = client
        .mount(
            Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
                .target(&t)
                .grpc(),
        )
        .await
        .unwrap()
        .into_inner();
    assert!(ok.error.is_none());
    assert_eq!(ok.object_version.len(), 1);

    drop(client);
    Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    let mut stderr = p.child.stderr.take().unwrap();
    let logs = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    })
    .await
    .unwrap();
    assert!(!logs.contains("hunter2"), "{logs}");
    let mounts: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "mount")
        .collect();
    assert_eq!(mounts.len(), 6, "one JSON line per mount:\n{logs}");
    assert_eq!(mounts[5]["fields"]["outcome"], "ok");
    assert_eq!(mounts[5]["fields"]["pod"], "web-0");
}

/// Another process holds the metrics port: the socket serves mounts all the same, and the
/// endpoint comes up in the background once the port is free.
#[tokio::test]
async fn a_held_metrics_port_never_keeps_the_socket_from_serving() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.yaml");
    std::fs::write(&store, STORE).unwrap();
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let ops = held.local_addr().unwrap();
    let volume = dir.path().join("providers");
    let log = dir.path().join("provider.log");
    let child = Command::new(BIN)
        .arg(format!("--provider-volume={}", volume.display()))
        .arg(format!("--metrics-addr={ops}"))
        .args(["--store", "local", "--local-store"])
        .arg(&store)
        .args(["--log-format", "json"])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let p = Provider {
        child,
        socket: volume.join("aws.sock"),
        ops: ops.to_string(),
        dir,
    };
    common::wait_for_socket(&p.socket).await;

    let mut client = common::connect(&p.socket).await;
    let t = target(p.dir.path(), "pod");
    client
        .mount(
            Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
                .target(&t)
                .grpc(),
        )
        .await
        .expect("a mount while the metrics port is held");
    assert_eq!(
        std::fs::read_to_string(t.join("MySecret")).unwrap(),
        "value-hunter2"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("cannot bind the operations endpoint"),
        "{logged}"
    );

    drop(held);
    // Retries come 1 s, 2 s, 4 s ... apart: generous, as the check is that it binds.
    let started = std::time::Instant::now();
    loop {
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let url = format!("http://{}/healthz", p.ops).parse().unwrap();
        if let Ok(response) = client.get(url).await {
            assert_eq!(response.status().as_u16(), 200);
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "/healthz never became reachable after the port was released"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(get(&format!("http://{}/readyz", p.ops)).await.0, 200);
}

/// The existing provider 3.1.1, stopping, deletes `aws.sock` even when it is ours (a
/// `helm upgrade` from its chart): the provider binds it again, counts it, and a mount
/// on a new connection succeeds; on shutdown it removes the socket it bound last.
#[tokio::test]
async fn a_deleted_socket_is_bound_again_and_serves_new_connections() {
    let mut p = start(&[]).await;
    std::fs::remove_file(&p.socket).unwrap();

    let t = target(p.dir.path(), "pod");
    let mount = || Mount::of("- {objectName: MySecret, objectType: secretsmanager}").target(&t);
    // The watch looks every few seconds: generous, as the check is that it binds again.
    let started = std::time::Instant::now();
    loop {
        if p.socket.exists() {
            let mut client = common::connect(&p.socket).await;
            let response = client.mount(mount().grpc()).await.unwrap().into_inner();
            assert!(response.error.is_none(), "{:?}", response.error);
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the socket was never bound again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        std::fs::read_to_string(t.join("MySecret")).unwrap(),
        "value-hunter2"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::symlink_metadata(&p.socket).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let (_, text) = get(&format!("http://{}/metrics", p.ops)).await;
    assert_eq!(
        metric(&text, "secrets_store_provider_aws_socket_rebinds_total"),
        1.0,
        "{text}"
    );
    assert_eq!(get(&format!("http://{}/readyz", p.ops)).await.0, 200);

    Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    let mut stderr = p.child.stderr.take().unwrap();
    let logs = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    })
    .await
    .unwrap();
    let _ = p.child.wait();
    let rebound: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "socket was deleted; bound again")
        .collect();
    assert_eq!(rebound.len(), 1, "{logs}");
    assert_eq!(rebound[0]["level"], "WARN", "{logs}");
    let fields = rebound[0]["fields"].as_object().unwrap();
    assert_eq!(fields.len(), 2, "the path and nothing else: {logs}");
    assert_eq!(fields["socket"], p.socket.display().to_string());
    assert!(
        !p.socket.exists(),
        "the socket bound again is ours and removed on shutdown"
    );
}
