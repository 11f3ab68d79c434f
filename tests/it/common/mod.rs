//! Shared helpers of the integration tests: a provider on a temporary socket and a
//! real tonic client that dials it the way the driver does (authority `localhost`).
//! One fixture per thing: mount requests come from `request`, the AWS environment of the
//! service-level tests (moto behind the fault proxy) from `aws_env`, secrets in moto from
//! `create_secret`.

pub mod fake_agent;
pub use testkit::fake_apiserver;
pub mod attack_node;
pub mod aws_env;
pub mod binary;
pub mod cgroup;
pub mod csi_cluster;
pub mod csi_node;
pub mod fault_proxy;
pub mod kube_fixtures;
pub mod kube_server;
pub mod moto;
pub mod request;
pub mod sync_controller;
pub mod tcp_relay;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use provider::adapters::csi::proto::csi_driver_provider_client::CsiDriverProviderClient;
use provider::adapters::csi::{bind_socket, serve, CsiProvider, ErrorReporting, SocketGuard};
use provider::adapters::driver_sink::DriverSink;
use provider::adapters::fs_sink::FsSink;
use provider::adapters::local::{LocalStore, NoClusterIdentity};
use provider::adapters::metrics::Metrics;
use provider::ports::{MountSink, SecretStore};
use provider::service::{MountService, MountSettings};
use tokio::net::UnixStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Uri};

pub type Client = CsiDriverProviderClient<Channel>;

pub const STORE: &str = r#"
secretsmanager:
  MySecret:
    - {versionId: v2, stages: [AWSCURRENT], secretString: '{"username":"memeuser","password":"hunter2"}'}
  Plain:
    - {versionId: p1, stages: [AWSCURRENT], secretString: 'plain-hunter2'}
ssmparameter:
  /app/host:
    - {version: 3, value: db.internal}
"#;

pub struct Running {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub guard: Arc<SocketGuard>,
    pub stop: Option<oneshot::Sender<()>>,
    pub server: JoinHandle<()>,
}

impl Running {
    pub async fn client(&self) -> Client {
        connect(&self.socket).await
    }

    /// Stops accepting; in-flight mounts finish; resolves when the server is done.
    /// Hands back the socket guard and the directory (deleted when dropped).
    pub async fn shutdown(mut self) -> (Arc<SocketGuard>, tempfile::TempDir) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.server.await.unwrap();
        (self.guard, self.dir)
    }
}

pub fn write_store(dir: &Path) -> PathBuf {
    let path = dir.join("store.yaml");
    std::fs::write(&path, STORE).unwrap();
    path
}

/// Starts a provider over the local store in `dir`, with a store wrapper if given.
pub async fn start(
    driver_writes: bool,
    wrap: impl FnOnce(LocalStore) -> Arc<dyn SecretStore>,
) -> Running {
    start_with(
        driver_writes,
        wrap,
        ErrorReporting::Statuses,
        Arc::default(),
    )
    .await
}

/// The same, reporting errors as `reporting` says and counting into `metrics`.
pub async fn start_with(
    driver_writes: bool,
    wrap: impl FnOnce(LocalStore) -> Arc<dyn SecretStore>,
    reporting: ErrorReporting,
    metrics: Arc<Metrics>,
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = wrap(LocalStore::new(write_store(dir.path())));
    let sink: Arc<dyn MountSink> = if driver_writes {
        Arc::new(DriverSink)
    } else {
        Arc::new(FsSink::new())
    };
    let service = MountService::new(
        Arc::new(NoClusterIdentity::default()),
        store,
        sink,
        MountSettings::default(),
    );
    let provider = CsiProvider::new(Arc::new(service), Duration::from_secs(30), metrics)
        .with_error_codes(reporting);
    let (listener, guard) = bind_socket(&dir.path().join("providers")).unwrap();
    let socket = guard.path().to_path_buf();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        serve(listener, provider, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Running {
        dir,
        socket,
        guard: Arc::new(guard),
        stop: Some(stop),
        server,
    }
}

pub async fn connect(socket: &Path) -> Client {
    let socket = socket.to_path_buf();
    let channel = Endpoint::try_from("http://localhost")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .unwrap();
    CsiDriverProviderClient::new(channel)
}

pub const OBJECTS: &str = r#"
- objectName: MySecret
  objectType: secretsmanager
  jmesPath:
    - {path: username, objectAlias: user, filePermission: "0400"}
- objectName: /app/host
  objectType: ssmparameter
"#;

/// Seeding clients talk to moto directly with static credentials, over plain HTTP (the
/// SDK crates are built without their default HTTPS client: see CONTRIBUTING.md).
pub async fn seed_config(moto_url: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_credential_types::Credentials::new(
            "test", "test", None, None, "seed",
        ))
        .endpoint_url(moto_url)
        .load()
        .await
}

/// Waits until a provider process has bound its socket.
pub async fn wait_for_socket(socket: &Path) {
    let started = std::time::Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "socket never appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Go tool of the tests in `.tools/` (built by `./scripts/test`), or the file `env` names.
/// Missing: None, and the test skips with a message, unless `REQUIRE_GO_TOOLS=1` (set by
/// the test command) makes that a failure.
pub fn go_tool(file: &str, env: &str, needed_by: &str) -> Option<PathBuf> {
    let path = match std::env::var_os(env) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(".tools")
            .join(file),
    };
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("REQUIRE_GO_TOOLS").is_ok_and(|v| v == "1") {
        panic!(
            "REQUIRE_GO_TOOLS=1 but {} is missing: run ./scripts/test",
            path.display()
        );
    }
    eprintln!(
        "SKIPPED: {needed_by} needs {} (run ./scripts/test, which builds it)",
        path.display()
    );
    None
}

/// The provider binary as the DaemonSet runs it on `node`: the cluster from `kubeconfig`,
/// AWS at `aws_endpoint`, no credentials or region of the machine's.
pub fn deployed_provider(
    volume: &Path,
    kubeconfig: &Path,
    node: &str,
    aws_endpoint: &str,
) -> std::process::Command {
    deployed_provider_on(volume, kubeconfig, node, aws_endpoint, "127.0.0.1:0")
}

/// The same, its operations endpoint (metrics) on `metrics_addr`.
pub fn deployed_provider_on(
    volume: &Path,
    kubeconfig: &Path,
    node: &str,
    aws_endpoint: &str,
    metrics_addr: &str,
) -> std::process::Command {
    let mut command =
        std::process::Command::new(env!("CARGO_BIN_EXE_secrets-store-csi-driver-provider-aws"));
    command
        .arg(format!("--provider-volume={}", volume.display()))
        .arg(format!("--metrics-addr={metrics_addr}"))
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("NODE_NAME", node)
        .env("AWS_ENDPOINT_URL", aws_endpoint)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_REGION")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE");
    command
}

/// A Secrets Manager secret in moto, as a test's starting point.
pub async fn create_secret(moto_url: &str, region: &str, name: &str, value: &str) {
    aws_sdk_secretsmanager::Client::new(&seed_config(moto_url, region).await)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("secret created in moto");
}
