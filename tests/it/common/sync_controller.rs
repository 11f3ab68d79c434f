//! The Secrets Store Sync Controller v0.0.4 with our provider as its sidecar, deployed
//! as `examples/sync-controller/` says: the controller's chart (from its source tree)
//! rendered by helm with `examples/sync-controller/values.yaml`, every object of it but the
//! Deployment installed into the API server (ServiceAccount, RBAC, validating admission
//! policies), `examples/sync-controller/rbac.yaml` granting the provider's reads to the
//! controller's ServiceAccount, and the Deployment's two containers run here as
//! processes with their rendered arguments: the controller (built by `./scripts/test`
//! with `scripts/peers.py sync-controller build`) and our provider binary, sharing a
//! socket directory and the controller's ServiceAccount.
//!
//! The controller watches SecretSyncs in every namespace, so only one [`Sidecar`] may run
//! at a time: its tests share one test function. Dropping a [`Sidecar`] kills both
//! processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::Scope;
use tokio::sync::OnceCell;

use super::csi_cluster::{establish, read_yaml, token};
use super::csi_node::{counter, tail};
use super::kube_server::{free_port, wait_until_authorized, ControlPlane};

/// Where the chart is installed (the namespace of the example's RBAC).
const NAMESPACE: &str = "kube-system";
/// The ServiceAccount its chart runs it as.
const SERVICE_ACCOUNT: &str = "secrets-store-sync-controller-manager";
const EXAMPLE: &str = "examples/sync-controller";
/// The socket directory in the rendered containers, replaced by a temporary one here.
const PROVIDER_VOLUME: &str = "/provider";

/// The controller's binary, its source tree (CRDs, chart) and helm.
pub struct Tools {
    controller: PathBuf,
    source: PathBuf,
    helm: PathBuf,
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
            let helm = super::go_tool("helm", "HELM", "the sync controller tests")?;
            Some(Tools {
                controller,
                source,
                helm,
            })
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

/// What the example's install made: the ServiceAccount's kubeconfig and the rendered
/// containers.
pub struct Installed {
    kubeconfig: PathBuf,
    controller: Container,
    provider: Container,
}

static INSTALLED: OnceCell<Installed> = OnceCell::const_new();

/// Installs the controller's CRDs and its chart rendered with the example's values (once),
/// and the example's RBAC; returns the kubeconfig of the ServiceAccount and the
/// Deployment's containers.
pub async fn install(plane: &ControlPlane, tools: &Tools) -> &'static Installed {
    INSTALLED
        .get_or_init(|| async {
            let admin = plane.admin().await.expect("admin client");
            let bases = tools.source.join("config/crd/bases");
            let crds = [
                "secret-sync.x-k8s.io_secretsyncs.yaml",
                "secrets-store.csi.x-k8s.io_secretproviderclasses.yaml",
            ]
            .map(|f| bases.join(f));
            establish(&admin, &crds).await;
            let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE);
            let mut objects = render(tools, &example.join("values.yaml"));
            objects.extend(read_yaml::<serde_json::Value>(&example.join("rbac.yaml")));
            let mut deployment = None;
            let mut roles = Vec::new();
            let mut bound = Vec::new();
            for object in objects {
                match object["kind"].as_str() {
                    Some("Deployment") => deployment = Some(object),
                    Some(kind) => {
                        if kind == "ClusterRole" {
                            roles.push(
                                serde_json::from_value::<ClusterRole>(object.clone()).unwrap(),
                            );
                        }
                        if kind == "ClusterRoleBinding" {
                            let binding: ClusterRoleBinding =
                                serde_json::from_value(object.clone()).unwrap();
                            if binding
                                .subjects
                                .iter()
                                .flatten()
                                .any(|s| s.name == SERVICE_ACCOUNT)
                            {
                                bound.push(binding.role_ref.name);
                            }
                        }
                        create_any(&admin, object).await;
                    }
                    None => panic!("a rendered object without a kind: {object}"),
                }
            }
            // The controller's role and the example's, both bound to the ServiceAccount.
            assert_eq!(bound.len(), 2, "{bound:?}");
            let user = format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}");
            for role in roles
                .iter()
                .filter(|r| bound.contains(r.metadata.name.as_ref().unwrap()))
            {
                wait_until_authorized(&admin, &user, role).await;
            }
            let deployment: Deployment =
                serde_json::from_value(deployment.expect("the chart renders a Deployment"))
                    .unwrap();
            let spec = deployment.spec.unwrap().template.spec.unwrap();
            assert_eq!(spec.service_account_name.as_deref(), Some(SERVICE_ACCOUNT));
            let container = |name: &str| {
                spec.containers
                    .iter()
                    .find(|c| c.name == name)
                    .cloned()
                    .unwrap_or_else(|| panic!("no container {name} in {:?}", spec.containers))
            };
            let token = token(
                &Api::namespaced(admin, NAMESPACE),
                SERVICE_ACCOUNT,
                vec![],
                None,
            )
            .await;
            Installed {
                kubeconfig: plane.write_kubeconfig(SERVICE_ACCOUNT, &plane.url(), &token),
                controller: container("manager"),
                provider: container("provider-aws"),
            }
        })
        .await
}

/// The controller's chart rendered by helm with `values`, in `NAMESPACE`.
fn render(tools: &Tools, values: &Path) -> Vec<serde_json::Value> {
    let chart = tools.source.join("charts/secrets-store-sync-controller");
    let out = Command::new(&tools.helm)
        .args(["template", "secrets-store-sync-controller"])
        .arg(&chart)
        .args(["--namespace", NAMESPACE, "--values"])
        .arg(values)
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("rendered YAML");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// Creates an object of any kind the API server serves (kept if it is there already).
async fn create_any(admin: &kube::Client, object: serde_json::Value) {
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    let types = object.types.clone().expect("apiVersion and kind");
    let gvk = GroupVersionKind::try_from(&types).unwrap();
    let (resource, capabilities) = kube::discovery::pinned_kind(admin, &gvk)
        .await
        .unwrap_or_else(|e| panic!("the API server serves no {gvk:?}: {e}"));
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Namespaced => {
            let namespace = object.metadata.namespace.as_deref().unwrap_or(NAMESPACE);
            Api::namespaced_with(admin.clone(), namespace, &resource)
        }
        Scope::Cluster => Api::all_with(admin.clone(), &resource),
    };
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating {gvk:?} {:?}: {e}", object.metadata.name),
    }
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
    pub installed: &'a Installed,
    pub aws_endpoint: &'a str,
    /// Our provider's flags besides the rendered ones.
    pub provider_flags: &'a [&'a str],
}

impl Sidecar {
    /// Starts our provider with its rendered arguments, waits for its socket, then the
    /// controller with its rendered arguments; both as the controller's ServiceAccount.
    /// What a process on this machine cannot keep is replaced: the socket directory, the
    /// listeners (loopback or none instead of every interface), leader election (one
    /// replica; a killed one would hold the lease for its 15 s). The controller's polling
    /// is off (`--rotation-poll-interval=0s`): tests make it sync by changing a
    /// SecretSync's `forceSynchronization`, so nothing depends on timing.
    pub async fn start(tools: &Tools, config: SidecarConfig<'_>) -> Sidecar {
        let installed = config.installed;
        let dir = tempfile::Builder::new()
            .prefix("sync-controller-")
            .tempdir()
            .expect("sidecar directory");
        let providers = dir.path().join("provider");
        let volume_arg = format!("--provider-volume={PROVIDER_VOLUME}");
        let provider_args = args(&installed.provider);
        assert!(provider_args.contains(&volume_arg), "{provider_args:?}");
        let provider_metrics = free_port();
        // deployed_provider_on gives the socket directory and the metrics address.
        let provider =
            super::deployed_provider_on(
                &providers,
                &installed.kubeconfig,
                "sync-controller-node",
                config.aws_endpoint,
                &format!("127.0.0.1:{provider_metrics}"),
            )
            .args(provider_args.iter().filter(|a| {
                !a.starts_with("--provider-volume=") && !a.starts_with("--metrics-addr=")
            }))
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
        let controller_args = args(&installed.controller);
        assert!(controller_args.contains(&volume_arg), "{controller_args:?}");
        let controller_args = controller_args.iter().filter_map(|arg| {
            let (flag, _) = arg.split_once('=').unwrap_or((arg, ""));
            match flag {
                "--provider-volume" => Some(format!("{flag}={}", providers.display())),
                "--health-probe-bind-address" | "--metrics-bind-address" => {
                    Some(format!("{flag}=0"))
                }
                "--rotation-poll-interval" => Some(format!("{flag}=0s")),
                "--leader-elect" => None,
                _ => Some(arg.clone()),
            }
        });
        let controller = Command::new(&tools.controller)
            .args(controller_args)
            .env("KUBECONFIG", &installed.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            // What its chart sets from the downward API; it sends them as the pod's.
            .env(
                "SYNC_CONTROLLER_POD_NAME",
                "secrets-store-sync-controller-0",
            )
            .env(
                "SYNC_CONTROLLER_POD_UID",
                "7d4c8a52-0d1e-4f7b-9a43-5b2f0c6e1a90",
            )
            .env("SYNC_CONTROLLER_POD_NAMESPACE", NAMESPACE)
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

/// A rendered container's arguments.
fn args(container: &Container) -> Vec<String> {
    container.args.clone().unwrap_or_default()
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        for child in self.controller.iter_mut().chain([&mut self.provider]) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
