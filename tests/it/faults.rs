//! Faults: a hanging store, a panicking mount, responses and values over their limits,
//! a full target, a killed provider. Each failing request fails alone.

use crate::common;

use common::request::Mount;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::*;
use provider::adapters::csi::proto::VersionRequest;
use provider::adapters::csi::{bind_socket, serve, CsiProvider};
use provider::adapters::driver_sink::DriverSink;
use provider::adapters::local::{LocalStore, NoClusterIdentity};
use provider::adapters::metrics::Metrics;
use provider::domain::objects::ObjectRef;
use provider::domain::region::Region;
use provider::ports::{Fetched, Identity, SecretStore, StoreError};
use provider::service::{
    MountError, MountOutcome, MountRequest, MountService, MountSettings, Mounter,
};
use tokio::sync::oneshot;
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_secrets-store-csi-driver-provider-aws");

/// Hangs forever on the object named `hang`, else asks the local store (after `delay`).
struct Hanging(LocalStore, Duration);

#[async_trait]
impl SecretStore for Hanging {
    async fn fetch(
        &self,
        region: &Region,
        identity: &Identity,
        batch: &[ObjectRef],
    ) -> Vec<Result<Fetched, StoreError>> {
        if batch.iter().any(|o| o.name == "hang") {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(self.1).await;
        self.0.fetch(region, identity, batch).await
    }
}

/// Panics on a class naming `boom`: a stand-in for a bug reached by input.
struct Panicky(Arc<dyn Mounter>);

#[async_trait]
impl Mounter for Panicky {
    async fn mount(&self, request: MountRequest) -> Result<MountOutcome, MountError> {
        if request.attributes.objects.contains("boom") {
            panic!("a bug");
        }
        self.0.mount(request).await
    }
}

struct Server {
    dir: tempfile::TempDir,
    client: Client,
    metrics: Arc<Metrics>,
    _stop: oneshot::Sender<()>,
}

async fn server(
    delay: Duration,
    wrap: impl FnOnce(Arc<dyn Mounter>) -> Arc<dyn Mounter>,
    configure: impl FnOnce(CsiProvider) -> CsiProvider,
) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Hanging(LocalStore::new(write_store(dir.path())), delay));
    let service: Arc<dyn Mounter> = Arc::new(MountService::new(
        Arc::new(NoClusterIdentity::default()),
        store,
        Arc::new(DriverSink),
        MountSettings::default(),
    ));
    let metrics = Arc::new(Metrics::new());
    let provider = configure(CsiProvider::new(
        wrap(service),
        Duration::from_millis(700),
        metrics.clone(),
    ));
    let (listener, guard) = bind_socket(&dir.path().join("providers")).unwrap();
    let socket = guard.path().to_path_buf();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _guard = guard;
        let _ = serve(listener, provider, async {
            let _ = stopped.await;
        })
        .await;
    });
    let client = connect(&socket).await;
    Server {
        dir,
        client,
        metrics,
        _stop: stop,
    }
}

#[tokio::test]
async fn a_hanging_store_fails_that_mount_at_its_deadline_while_others_are_served() {
    let s = server(Duration::ZERO, |m| m, |p| p).await;
    let (mut a, mut b) = (s.client.clone(), s.client.clone());
    let target = s.dir.path().to_path_buf();
    let t2 = target.clone();
    let hanging = tokio::spawn(async move {
        a.mount(
            Mount::of("- {objectName: hang, objectType: secretsmanager}")
                .target(&target)
                .grpc(),
        )
        .await
    });
    let fine = tokio::spawn(async move {
        b.mount(
            Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
                .target(&t2)
                .grpc(),
        )
        .await
    });
    assert!(
        fine.await.unwrap().is_ok(),
        "another mount is served meanwhile"
    );
    let status = hanging.await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert!(
        status.message().contains("did not finish within"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_panicking_mount_fails_alone_is_counted_and_the_server_goes_on() {
    let s = server(
        Duration::ZERO,
        |m| Arc::new(Panicky(m)) as Arc<dyn Mounter>,
        |p| p,
    )
    .await;
    let mut client = s.client.clone();
    let status = client
        .mount(
            Mount::of("- {objectName: boom, objectType: secretsmanager}")
                .target(s.dir.path())
                .grpc(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert!(s
        .metrics
        .encode()
        .contains("secrets_store_provider_aws_mount_panics_total 1"));
    client
        .mount(
            Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
                .target(s.dir.path())
                .grpc(),
        )
        .await
        .unwrap();
    client.version(VersionRequest::default()).await.unwrap();
}

#[tokio::test]
async fn a_driver_writes_response_over_the_limit_fails_alone() {
    let s = server(Duration::ZERO, |m| m, |p| p.with_limits(64, 40)).await;
    let mut client = s.client.clone();
    // MySecret is longer than 40 bytes; /app/host is not.
    let status = client
        .mount(
            Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
                .target(s.dir.path())
                .grpc(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    assert!(
        status.message().contains("max_response_bytes"),
        "{}",
        status.message()
    );
    client
        .mount(
            Mount::of("- {objectName: /app/host, objectType: ssmparameter}")
                .target(s.dir.path())
                .grpc(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn mounts_over_the_concurrency_limit_wait_for_a_slot() {
    let s = server(
        Duration::from_millis(100),
        |m| m,
        |p| p.with_limits(1, 1 << 20),
    )
    .await;
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let mut c = s.client.clone();
            let dir = s.dir.path().to_path_buf();
            tokio::spawn(async move {
                c.mount(
                    Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
                        .target(&dir)
                        .grpc(),
                )
                .await
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
}

#[test]
fn a_full_target_is_a_write_error_and_the_previous_contents_stay() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.yaml");
    let class = dir.path().join("class.yaml");
    let target = dir.path().join("pod");
    let write_class = |secret: &str| {
        std::fs::write(&class, format!("kind: SecretProviderClass\nmetadata: {{name: c}}\nspec:\n  provider: aws\n  parameters:\n    region: us-east-1\n    objects: |\n      - {{objectName: {secret}, objectType: secretsmanager, objectAlias: s}}\n")).unwrap();
    };
    let big = "B".repeat(60_000);
    std::fs::write(&store, format!("secretsmanager:\n  small: [{{versionId: v1, secretString: small-value}}]\n  big: [{{versionId: v2, secretString: '{big}'}}]\n")).unwrap();
    let mount = |limit: Option<&str>| {
        let mut cmd = match limit {
            Some(l) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--fsize={l}")).arg("--").arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.args(["mount", "--store", "local", "--local-store"])
            .arg(&store)
            .arg("--class")
            .arg(&class)
            .arg("--target")
            .arg(&target);
        cmd.stdout(Stdio::null()).output().unwrap()
    };
    write_class("small");
    assert!(mount(None).status.success());
    write_class("big");
    let out = mount(Some("30000"));
    assert!(
        !out.status.success(),
        "the write must fail under the file-size limit"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("large") || stderr.contains("writing"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(target.join("s")).unwrap(),
        "small-value",
        "previous contents intact"
    );
}

#[tokio::test]
async fn after_a_sigkill_the_next_start_and_mount_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let store = write_store(dir.path());
    let volume = dir.path().join("providers");
    let target = dir.path().join("pod");
    std::fs::create_dir(&target).unwrap();
    let start = || {
        Command::new(BIN)
            .arg(format!("--provider-volume={}", volume.display()))
            .args(["--metrics-addr=", "--store", "local", "--local-store"])
            .arg(&store)
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let socket = volume.join("aws.sock");
    let mut first = start();
    wait_for_socket(&socket, std::time::SystemTime::UNIX_EPOCH).await;
    connect(&socket)
        .await
        .mount(
            Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
                .target(&target)
                .grpc(),
        )
        .await
        .unwrap();
    // Killed without a chance to clean up; a killed mount's leftovers are there too.
    Command::new("kill")
        .args(["-KILL", &first.id().to_string()])
        .status()
        .unwrap();
    tokio::task::spawn_blocking(move || first.wait())
        .await
        .unwrap()
        .unwrap();
    std::fs::create_dir(target.join("..1700000000.000000001_killed")).unwrap();
    assert!(socket.exists(), "the stale socket is still there");

    let since = std::time::SystemTime::now() - Duration::from_millis(10);
    let mut second = start();
    wait_for_socket(&socket, since).await;
    let response = connect(&socket)
        .await
        .mount(
            Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
                .target(&target)
                .grpc(),
        )
        .await
        .unwrap();
    assert_eq!(response.into_inner().object_version.len(), 1);
    assert!(!target.join("..1700000000.000000001_killed").exists());
    let _ = second.kill();
    let _ = second.wait();
}

/// Waits for a socket file created (or replaced) at or after `since`.
async fn wait_for_socket(socket: &Path, since: std::time::SystemTime) {
    let started = Instant::now();
    loop {
        let fresh = std::fs::symlink_metadata(socket)
            .ok()
            .and_then(|m| m.modified().ok())
            .is_some_and(|t| t >= since);
        if fresh {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "socket never appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
