//! The Secrets Store Sync Controller v0.0.4 with our provider as its sidecar, as its chart
//! deploys them: the controller (built by `./scripts/test` with `scripts/peers.py
//! sync-controller build` from `../shared/peer/` or `SYNC_CONTROLLER_SOURCE`) and our
//! provider binary in driver-writes mode, sharing a socket directory; the controller's
//! CRDs and ClusterRole from its source tree, bound to its ServiceAccount as its chart
//! binds them.
//!
//! The controller watches SecretSyncs in every namespace, so only one [`Sidecar`] may run
//! at a time: its tests share one test function. Dropping a [`Sidecar`] kills both
//! processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleRef, Subject};
use kube::api::{Api, ApiResource, GroupVersionKind};
use kube::core::ObjectMeta;
use tokio::sync::OnceCell;

use super::csi_cluster::{create, establish, read_yaml, token};
use super::csi_node::{counter, tail};
use super::kube_server::{free_port, wait_until_authorized, ControlPlane};

const NAMESPACE: &str = "kube-system";
/// The ServiceAccount its chart runs it as.
const SERVICE_ACCOUNT: &str = "secrets-store-sync-controller-manager";

/// The controller's binary and its source tree (CRDs, RBAC).
pub struct Tools {
    controller: PathBuf,
    source: PathBuf,
}

/// The tools, or None (after saying why) when they were not built; a failure instead
/// under `REQUIRE_PEER=1`, which `./scripts/test` sets.
pub fn tools() -> Option<Tools> {
    let given = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    match (given("SYNC_CONTROLLER_BIN"), given("SYNC_CONTROLLER_DIR")) {
        (Some(controller), Some(source)) if controller.is_file() && source.is_dir() => {
            Some(Tools { controller, source })
        }
        _ if std::env::var("REQUIRE_PEER").is_ok_and(|v| v == "1") => panic!(
            "REQUIRE_PEER=1 but SYNC_CONTROLLER_BIN and SYNC_CONTROLLER_DIR do not name the sync \
             controller's binary and source: run ./scripts/test, which builds them"
        ),
        _ => {
            eprintln!(
                "SKIPPED: the sync controller tests need SYNC_CONTROLLER_BIN and \
                 SYNC_CONTROLLER_DIR (./scripts/test sets them: scripts/peers.py sync-controller)"
            );
            None
        }
    }
}

pub fn secret_sync_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("secret-sync.x-k8s.io", "v1alpha1", "SecretSync");
    ApiResource::from_gvk_with_plural(&gvk, "secretsyncs")
}

static KUBECONFIG: OnceCell<PathBuf> = OnceCell::const_new();

/// Installs the controller's CRDs and ClusterRole (once), its ServiceAccount and the
/// binding its chart makes; returns the kubeconfig of that ServiceAccount.
pub async fn install(plane: &ControlPlane, tools: &Tools) -> PathBuf {
    KUBECONFIG
        .get_or_init(|| async {
            let admin = plane.admin().await.expect("admin client");
            let bases = tools.source.join("config/crd/bases");
            let crds = [
                "secret-sync.x-k8s.io_secretsyncs.yaml",
                "secrets-store.csi.x-k8s.io_secretproviderclasses.yaml",
            ]
            .map(|f| bases.join(f));
            establish(&admin, &crds).await;
            let mut role: ClusterRole =
                read_yaml(&tools.source.join("config/rbac/role.yaml")).remove(0);
            role.metadata.name = Some(SERVICE_ACCOUNT.into());
            create(&Api::all(admin.clone()), role.clone()).await;
            let account = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(SERVICE_ACCOUNT.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            create(&Api::namespaced(admin.clone(), NAMESPACE), account).await;
            let binding = ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(SERVICE_ACCOUNT.into()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: SERVICE_ACCOUNT.into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: SERVICE_ACCOUNT.into(),
                    namespace: Some(NAMESPACE.into()),
                    ..Default::default()
                }]),
            };
            create(&Api::all(admin.clone()), binding).await;
            let user = format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}");
            wait_until_authorized(&admin, &user, &role).await;
            let token = token(
                &Api::namespaced(admin, NAMESPACE),
                SERVICE_ACCOUNT,
                vec![],
                None,
            )
            .await;
            plane.write_kubeconfig(SERVICE_ACCOUNT, &plane.url(), &token)
        })
        .await
        .clone()
}

/// The controller and our provider side by side, as one pod of the controller's chart.
pub struct Sidecar {
    dir: tempfile::TempDir,
    /// None until the provider's socket is there.
    controller: Option<Child>,
    provider: Child,
    provider_metrics: u16,
}

/// How the pair runs.
pub struct SidecarConfig<'a> {
    pub controller_kubeconfig: &'a Path,
    pub provider_kubeconfig: &'a Path,
    pub aws_endpoint: &'a str,
    /// Our provider's flags besides `--driver-writes-secrets`, which a sidecar needs.
    pub provider_flags: &'a [&'a str],
}

impl Sidecar {
    /// Starts our provider, waits for its socket, then starts the controller with the
    /// flags its chart gives it: the socket directory, the audience of IRSA's tokens. Its
    /// own polling is off (`--rotation-poll-interval=0s`): tests make it sync by changing
    /// a SecretSync's `forceSynchronization`, so nothing depends on timing.
    pub async fn start(tools: &Tools, config: SidecarConfig<'_>) -> Sidecar {
        let dir = tempfile::Builder::new()
            .prefix("sync-controller-")
            .tempdir()
            .expect("sidecar directory");
        let providers = dir.path().join("provider");
        let provider_metrics = free_port();
        let provider = super::deployed_provider_on(
            &providers,
            config.provider_kubeconfig,
            "sync-controller-node",
            config.aws_endpoint,
            &format!("127.0.0.1:{provider_metrics}"),
        )
        .arg("--driver-writes-secrets")
        .args(config.provider_flags)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("provider.log")).unwrap())
        .spawn()
        .expect("provider starts");
        let log = std::fs::File::create(dir.path().join("controller.log")).unwrap();
        let mut sidecar = Sidecar {
            controller: None,
            provider,
            provider_metrics,
            dir,
        };
        super::wait_for_socket(&providers.join("aws.sock")).await;
        let controller = Command::new(&tools.controller)
            .arg(format!("--provider-volume={}", providers.display()))
            .arg(format!(
                "--token-request-audience={}",
                provider::domain::attributes::IRSA_AUDIENCE
            ))
            // "0": no metrics or probe listener (their defaults bind every interface).
            .args([
                "--metrics-bind-address=0",
                "--health-probe-bind-address=0",
                "--rotation-poll-interval=0s",
            ])
            .env("KUBECONFIG", config.controller_kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            // As its chart sets them from the downward API; it sends them as the pod's.
            .env(
                "SYNC_CONTROLLER_POD_NAME",
                "secrets-store-sync-controller-0",
            )
            .env(
                "SYNC_CONTROLLER_POD_UID",
                "7d4c8a52-0d1e-4f7b-9a43-5b2f0c6e1a90",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("controller starts");
        sidecar.controller = Some(controller);
        sidecar
    }

    /// Our provider's counter `name`, summed over its labels.
    pub async fn provider_metric(&self, name: &str) -> u64 {
        counter(self.provider_metrics, name).await
    }

    pub fn controller_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("controller.log")).unwrap_or_default()
    }

    pub fn provider_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("provider.log")).unwrap_or_default()
    }

    /// Both logs' tails, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- controller log:\n{}\n--- provider log:\n{}",
            tail(&self.controller_log()),
            tail(&self.provider_log())
        )
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        for child in self.controller.iter_mut().chain([&mut self.provider]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
