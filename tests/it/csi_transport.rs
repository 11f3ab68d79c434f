//! The provider over a real unix socket, driven by a real tonic client.

use crate::common;

use common::request::Mount;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use provider::adapters::csi::proto::VersionRequest;
use provider::adapters::local::LocalStore;
use provider::domain::objects::ObjectRef;
use provider::domain::region::Region;
use provider::ports::{Fetched, Identity, SecretStore, StoreError};
use tonic::Code;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn version_answers_the_protocol_and_runtime() {
    let running = start(false, |s| Arc::new(s)).await;
    let v = running
        .client()
        .await
        .version(VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.version, "v1alpha1");
    assert_eq!(v.runtime_name, "secrets-store-csi-driver-provider-aws");
    assert_eq!(v.runtime_version, env!("CARGO_PKG_VERSION"));
    running.shutdown().await;
}

#[tokio::test]
async fn mount_writes_files_with_modes_and_reports_versions() {
    let running = start(false, |s| Arc::new(s)).await;
    let target = running.dir.path().join("pod-volume");
    std::fs::create_dir(&target).unwrap();
    let response = running
        .client()
        .await
        .mount(Mount::of(OBJECTS).target(&target).permission(0o640).grpc())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        std::fs::read_to_string(target.join("user")).unwrap(),
        "memeuser"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("_app_host")).unwrap(),
        "db.internal"
    );
    assert_eq!(
        mode(&target.join("MySecret")),
        0o640,
        "request permission is the default"
    );
    assert_eq!(mode(&target.join("user")), 0o400, "jmesPath entry mode");
    let versions: Vec<(String, String)> = response
        .object_version
        .into_iter()
        .map(|v| (v.id, v.version))
        .collect();
    assert_eq!(
        versions,
        vec![
            ("MySecret".into(), "v2".into()),
            ("_app_host".into(), "3".into()),
            ("user".into(), "v2".into())
        ]
    );
    assert!(response.files.is_empty());
    running.shutdown().await;
}

#[tokio::test]
async fn driver_writes_mode_returns_files_and_writes_nothing() {
    let running = start(true, |s| Arc::new(s)).await;
    let target = running.dir.path().join("pod-volume");
    std::fs::create_dir(&target).unwrap();
    let response = running
        .client()
        .await
        .mount(Mount::of(OBJECTS).target(&target).grpc())
        .await
        .unwrap()
        .into_inner();
    let files: Vec<(String, i32, Vec<u8>)> = response
        .files
        .into_iter()
        .map(|f| (f.path, f.mode, f.contents))
        .collect();
    assert_eq!(files.len(), 3);
    assert!(files.contains(&("user".into(), 0o400, b"memeuser".to_vec())));
    assert!(files.contains(&("_app_host".into(), 0o644, b"db.internal".to_vec())));
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    assert_eq!(response.object_version.len(), 3);
    running.shutdown().await;
}

#[tokio::test]
async fn a_failing_object_leaves_the_target_untouched() {
    let running = start(false, |s| Arc::new(s)).await;
    let target = running.dir.path().join("pod-volume");
    std::fs::create_dir(&target).unwrap();
    let mut client = running.client().await;
    client
        .mount(Mount::of(OBJECTS).target(&target).grpc())
        .await
        .unwrap();
    let before = std::fs::read_link(target.join("..data")).unwrap();
    let broken = format!("{OBJECTS}- {{objectName: Missing, objectType: secretsmanager}}\n");
    let status = client
        .mount(Mount::of(&broken).target(&target).permission(0o600).grpc())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("Missing"), "{}", status.message());
    assert_eq!(std::fs::read_link(target.join("..data")).unwrap(), before);
    assert_eq!(mode(&target.join("MySecret")), 0o644);

    let status = client
        .mount(
            Mount::of("- {objectName: x, objectType: ssm}")
                .target(&target)
                .grpc(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("ssmparameter"));
    running.shutdown().await;
}

#[tokio::test]
async fn with_error_codes_for_remounts_a_first_mount_gets_a_status_and_a_remount_a_code() {
    use provider::adapters::csi::ErrorReporting;
    use provider::adapters::metrics::Metrics;
    let metrics = Arc::new(Metrics::new());
    let running = common::start_with(
        false,
        |s| Arc::new(s),
        ErrorReporting::Remounts,
        metrics.clone(),
    )
    .await;
    let target = running.dir.path().join("pod-volume");
    std::fs::create_dir(&target).unwrap();
    let mut client = running.client().await;
    let broken = format!("{OBJECTS}- {{objectName: Missing, objectType: secretsmanager}}\n");
    // A first mount: the message reaches the pod's event.
    let status = client
        .mount(Mount::of(&broken).target(&target).grpc())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("Missing"));
    // A remount (the target holds a mount): the code reaches the driver's metrics.
    client
        .mount(Mount::of(OBJECTS).target(&target).grpc())
        .await
        .unwrap();
    let answer = client
        .mount(Mount::of(&broken).target(&target).grpc())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.error.unwrap().code, "SecretNotFound");
    assert!(answer.files.is_empty() && answer.object_version.is_empty());
    let text = metrics.encode();
    assert!(
        text.contains(
            r#"secrets_store_provider_aws_remount_failures_total{code="SecretNotFound"} 1"#
        ),
        "{text}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn with_error_codes_for_remounts_a_bad_attribute_on_a_remount_gets_a_code() {
    use provider::adapters::csi::ErrorReporting;
    use provider::adapters::metrics::Metrics;
    let running = common::start_with(
        false,
        |s| Arc::new(s),
        ErrorReporting::Remounts,
        Arc::new(Metrics::new()),
    )
    .await;
    let target = running.dir.path().join("pod-volume");
    std::fs::create_dir(&target).unwrap();
    let mut client = running.client().await;
    let bad: [&[(&str, &str)]; 3] = [
        &[("cacheTTL", "soon")],
        &[("usePodIdentity", "yes")],
        &[
            ("assumeRoleArn", "arn:aws:iam::210987654321:role/reader"),
            ("assumeRoleDuration", "forever"),
        ],
    ];
    // Before the first mount, attribute errors keep their status, every one named.
    let status = client
        .mount(
            Mount::of(OBJECTS)
                .with(&[("cacheTTL", "soon"), ("usePodIdentity", "yes")])
                .target(&target)
                .grpc(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let message = status.message();
    assert!(
        message.contains("cacheTTL") && message.contains("usePodIdentity"),
        "{message}"
    );
    client
        .mount(Mount::of(OBJECTS).target(&target).grpc())
        .await
        .unwrap();
    for extra in bad {
        let answer = client
            .mount(Mount::of(OBJECTS).with(extra).target(&target).grpc())
            .await
            .unwrap_or_else(|s| panic!("{extra:?}: a status instead of a code: {s:?}"))
            .into_inner();
        assert_eq!(
            answer.error.map(|e| e.code).as_deref(),
            Some("InvalidSecretProviderClass"),
            "{extra:?}"
        );
    }
    running.shutdown().await;
}

#[tokio::test]
async fn fifty_concurrent_mounts_with_different_permissions_do_not_interfere() {
    let running = start(false, |s| Arc::new(s)).await;
    let client = running.client().await;
    let mut tasks = Vec::new();
    for i in 0..50u32 {
        let target = running.dir.path().join(format!("pod-{i}"));
        std::fs::create_dir(&target).unwrap();
        let permission = 0o400 + (i % 4) * 0o20; // 0400, 0420, 0440, 0460
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            client
                .mount(
                    Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
                        .target(&target)
                        .permission(permission)
                        .grpc(),
                )
                .await
                .unwrap();
            (target, permission)
        }));
    }
    for task in tasks {
        let (target, permission) = task.await.unwrap();
        assert_eq!(
            mode(&target.join("MySecret")),
            permission,
            "{}",
            target.display()
        );
    }
    running.shutdown().await;
}

/// A store that takes its time, to have mounts in flight at shutdown.
struct Slow(LocalStore, Duration);

#[async_trait]
impl SecretStore for Slow {
    async fn fetch(
        &self,
        region: &Region,
        identity: &Identity,
        batch: &[ObjectRef],
    ) -> Vec<Result<Fetched, StoreError>> {
        tokio::time::sleep(self.1).await;
        self.0.fetch(region, identity, batch).await
    }
}

#[tokio::test]
async fn shutdown_lets_in_flight_mounts_finish_and_removes_the_socket() {
    let running = start(false, |s| Arc::new(Slow(s, Duration::from_millis(500)))).await;
    let target = running.dir.path().join("pod-volume");
    std::fs::create_dir(&target).unwrap();
    let mut client = running.client().await;
    let request = Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
        .target(&target)
        .grpc();
    let in_flight = tokio::spawn(async move { client.mount(request).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let socket = running.socket.clone();
    let (guard, _dir) = running.shutdown().await;
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight mount completes");
    assert_eq!(response.into_inner().object_version.len(), 1);
    assert!(target.join("MySecret").exists());
    assert!(guard.remove_if_ours());
    assert!(!socket.exists());
}

#[tokio::test]
async fn the_socket_is_private() {
    let running = start(false, |s| Arc::new(s)).await;
    assert_eq!(mode(&running.socket), 0o600);
    running.shutdown().await;
}
