//! A node with the real Secrets Store CSI Driver (v1.6.0) in the loop: the driver
//! (`.tools/secrets-store-csi-driver`, built by `./scripts/test` from `tests/csidriver`)
//! and our provider binary as deployed, side by side in one temporary directory, and
//! `.tools/csikubelet` playing the kubelet's CSI calls. The driver's CRDs and RBAC come
//! from its Go module and are installed once into the shared API server; the driver runs
//! as its own ServiceAccount.
//!
//! The driver mounts a tmpfs on every target, so these tests need root: without it they
//! skip with a message, as they do without the tools (unless `REQUIRE_GO_TOOLS=1`).
//! Dropping a [`Node`] kills both processes and unmounts everything under its directory,
//! on success and on failure alike.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    CSIVolumeSource, Container, Pod, PodSpec, ServiceAccount, Volume,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::core::ObjectMeta;
use tokio::sync::OnceCell;

use super::kube_fixtures::eventually;
use super::kube_server::{free_port, wait_until_authorized, ControlPlane};

pub const DRIVER_NAME: &str = "secrets-store.csi.k8s.io";
const DRIVER_NAMESPACE: &str = "kube-system";
const DRIVER_SERVICE_ACCOUNT: &str = "secrets-store-csi-driver";
/// The pod's volume, as its spec names it.
const VOLUME: &str = "secrets";

/// The two programs, and the driver's module (its CRDs and RBAC).
pub struct Tools {
    driver: PathBuf,
    kubelet: PathBuf,
    module: PathBuf,
}

/// The tools, or None (after saying why) when they are missing or this is not root.
pub fn tools() -> Option<Tools> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: the driver tests need root (the driver mounts a tmpfs per volume)");
        return None;
    }
    let driver = super::go_tool(
        "secrets-store-csi-driver",
        "CSI_DRIVER",
        "the driver end-to-end tests",
    )?;
    let kubelet = super::go_tool("csikubelet", "CSI_KUBELET", "the driver end-to-end tests")?;
    let module_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/csidriver");
    let out = Command::new("go")
        .arg("-C")
        .arg(&module_dir)
        .args(["list", "-m", "-f", "{{.Dir}}"])
        .arg("sigs.k8s.io/secrets-store-csi-driver")
        .output()
        .expect("go runs (it built the tools)");
    assert!(
        out.status.success(),
        "go list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let module = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Some(Tools {
        driver,
        kubelet,
        module,
    })
}

/// The driver's kubeconfig, made once per test binary: CRDs, RBAC, ServiceAccount, token.
static DRIVER_KUBECONFIG: OnceCell<PathBuf> = OnceCell::const_new();

/// Installs what the driver's deploy/ ships (once) and returns its kubeconfig.
pub async fn install_driver(plane: &ControlPlane, tools: &Tools) -> PathBuf {
    DRIVER_KUBECONFIG
        .get_or_init(|| async {
            let admin = plane.admin().await.expect("admin client");
            let deploy = tools.module.join("deploy");
            for kind in ["secretproviderclasses", "secretproviderclasspodstatuses"] {
                let file = deploy.join(format!("secrets-store.csi.x-k8s.io_{kind}.yaml"));
                let crd: CustomResourceDefinition = read_yaml(&file).remove(0);
                create(&Api::all(admin.clone()), crd).await;
            }
            let crds = Api::<CustomResourceDefinition>::all(admin.clone());
            eventually("the driver's CRDs are established", async || {
                let mut ready = 0;
                for crd in crds.list(&Default::default()).await.unwrap() {
                    let established = crd
                        .status
                        .iter()
                        .flat_map(|s| s.conditions.iter().flatten());
                    if crd.spec.group == "secrets-store.csi.x-k8s.io"
                        && established
                            .into_iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    {
                        ready += 1;
                    }
                }
                ready == 2
            })
            .await;
            let user = format!("system:serviceaccount:{DRIVER_NAMESPACE}:{DRIVER_SERVICE_ACCOUNT}");
            let mut roles = Vec::new();
            for file in [
                "rbac-secretproviderclass.yaml",
                "rbac-secretprovidersyncing.yaml",
            ] {
                for doc in read_yaml::<serde_json::Value>(&deploy.join(file)) {
                    match doc["kind"].as_str() {
                        Some("ServiceAccount") => {
                            let sa: ServiceAccount = serde_json::from_value(doc).unwrap();
                            create(&Api::namespaced(admin.clone(), DRIVER_NAMESPACE), sa).await;
                        }
                        Some("ClusterRole") => {
                            let role: ClusterRole = serde_json::from_value(doc).unwrap();
                            create(&Api::all(admin.clone()), role.clone()).await;
                            roles.push(role);
                        }
                        Some("ClusterRoleBinding") => {
                            let binding: ClusterRoleBinding = serde_json::from_value(doc).unwrap();
                            create(&Api::all(admin.clone()), binding).await;
                        }
                        other => panic!("{file}: unexpected kind {other:?}"),
                    }
                }
            }
            for role in &roles {
                wait_until_authorized(&admin, &user, role).await;
            }
            let token = token(
                &Api::namespaced(admin, DRIVER_NAMESPACE),
                DRIVER_SERVICE_ACCOUNT,
                vec![],
                None,
            )
            .await;
            plane.write_kubeconfig(DRIVER_SERVICE_ACCOUNT, &plane.url(), &token)
        })
        .await
        .clone()
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Creates `object`; one that is there already (another test binary's run) is kept.
async fn create<K>(api: &Api<K>, object: K)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating {object:?}: {e}"),
    }
}

/// A token of `account` from the TokenRequest API, for `audiences`, bound to `pod`.
async fn token(
    accounts: &Api<ServiceAccount>,
    account: &str,
    audiences: Vec<String>,
    pod: Option<&Pod>,
) -> String {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences,
            expiration_seconds: Some(3600),
            bound_object_ref: pod.map(|p| BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: p.metadata.name.clone(),
                uid: p.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("a token for {account}: {e}"))
        .status
        .expect("token status")
        .token
}

pub fn class_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("secrets-store.csi.x-k8s.io", "v1", "SecretProviderClass");
    ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasses")
}

pub fn pod_status_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(
        "secrets-store.csi.x-k8s.io",
        "v1",
        "SecretProviderClassPodStatus",
    );
    ApiResource::from_gvk_with_plural(&gvk, "secretproviderclasspodstatuses")
}

/// A SecretProviderClass of our provider in `namespace`: `parameters` (objects, region…)
/// and, if given, `secretObjects` to sync into Kubernetes Secrets.
pub async fn class(
    admin: &kube::Client,
    namespace: &str,
    name: &str,
    parameters: &[(&str, &str)],
    secret_objects: Option<serde_json::Value>,
) {
    let mut spec = serde_json::json!({
        "provider": "aws",
        "parameters": parameters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
    });
    if let Some(objects) = secret_objects {
        spec["secretObjects"] = objects;
    }
    let mut object = DynamicObject::new(name, &class_resource()).within(namespace);
    object.data = serde_json::json!({ "spec": spec });
    Api::<DynamicObject>::namespaced_with(admin.clone(), namespace, &class_resource())
        .create(&PostParams::default(), &object)
        .await
        .expect("SecretProviderClass created");
}

/// A pod's inline volume as the kubelet publishes it.
pub struct PodVolume {
    pub name: String,
    pub uid: String,
    pub volume_id: String,
    pub target: PathBuf,
    pub context: BTreeMap<String, String>,
}

/// Creates pod `name` of `account` on `node` with an inline volume of the driver naming
/// `class`, and the volume context the kubelet would send for it: the pod's identity and
/// a token of `sts.amazonaws.com` bound to the pod, as the CSIDriver's tokenRequests ask.
pub async fn pod_volume(
    admin: &kube::Client,
    node: &Node,
    namespace: &str,
    name: &str,
    account: &str,
    class: &str,
) -> PodVolume {
    let attributes = BTreeMap::from([("secretProviderClass".to_string(), class.to_string())]);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(node.name.clone()),
            service_account_name: Some(account.into()),
            containers: vec![Container {
                name: "app".into(),
                image: Some("app:1".into()),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: VOLUME.into(),
                csi: Some(CSIVolumeSource {
                    driver: DRIVER_NAME.into(),
                    read_only: Some(true),
                    volume_attributes: Some(attributes.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let pod = Api::<Pod>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
    let uid = pod.metadata.uid.clone().expect("pod uid");
    let jwt = token(
        &Api::namespaced(admin.clone(), namespace),
        account,
        vec![provider::domain::attributes::IRSA_AUDIENCE.into()],
        Some(&pod),
    )
    .await;
    let tokens = serde_json::json!({
        provider::domain::attributes::IRSA_AUDIENCE: {"token": jwt, "expirationTimestamp": "2030-01-01T00:00:00Z"}
    });
    let mut context = attributes;
    for (key, value) in [
        ("csi.storage.k8s.io/pod.name", name.to_string()),
        ("csi.storage.k8s.io/pod.namespace", namespace.to_string()),
        ("csi.storage.k8s.io/pod.uid", uid.clone()),
        (
            "csi.storage.k8s.io/serviceAccount.name",
            account.to_string(),
        ),
        ("csi.storage.k8s.io/ephemeral", "true".to_string()),
        (
            "csi.storage.k8s.io/serviceAccount.tokens",
            tokens.to_string(),
        ),
    ] {
        context.insert(key.into(), value);
    }
    let target = node
        .kubelet_root()
        .join("pods")
        .join(&uid)
        .join("volumes/kubernetes.io~csi")
        .join(VOLUME)
        .join("mount");
    PodVolume {
        name: name.into(),
        volume_id: format!("csi-{uid}-{VOLUME}"),
        uid,
        target,
        context,
    }
}

/// The driver and our provider on one node; both killed and every mount under `dir`
/// undone when dropped.
pub struct Node {
    pub name: String,
    dir: tempfile::TempDir,
    kubelet: PathBuf,
    driver: Child,
    provider: Child,
    endpoint: String,
    metrics: u16,
}

/// How the node runs: our provider's extra flags.
pub struct NodeConfig<'a> {
    pub name: &'a str,
    pub provider_kubeconfig: &'a Path,
    pub driver_kubeconfig: &'a Path,
    pub aws_endpoint: &'a str,
    pub provider_flags: &'a [&'a str],
}

impl Node {
    /// Starts our provider as deployed, then the driver with rotation on (a poll interval
    /// of an hour: tests age a target to make its rotation due, instead of sleeping), and
    /// waits until the driver answers.
    pub async fn start(tools: &Tools, config: NodeConfig<'_>) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("csi-node-")
            .tempdir()
            .expect("node directory");
        let providers = dir.path().join("providers");
        let provider = super::deployed_provider(
            &providers,
            config.provider_kubeconfig,
            config.name,
            config.aws_endpoint,
        )
        .args(config.provider_flags)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("provider.log")).unwrap())
        .spawn()
        .expect("provider starts");
        let metrics = free_port();
        let endpoint = format!("unix://{}", dir.path().join("csi.sock").display());
        let log = std::fs::File::create(dir.path().join("driver.log")).unwrap();
        let driver = Command::new(&tools.driver)
            .arg(format!("--endpoint={endpoint}"))
            .arg(format!("--nodeid={}", config.name))
            .arg(format!("--provider-volume={}", providers.display()))
            .arg(format!("--metrics-addr=127.0.0.1:{metrics}"))
            .args([
                "--enable-secret-rotation",
                "--rotation-poll-interval=1h",
                "-v=5",
            ])
            .env("KUBECONFIG", config.driver_kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("driver starts");
        let mut node = Node {
            name: config.name.into(),
            dir,
            kubelet: tools.kubelet.clone(),
            driver,
            provider,
            endpoint,
            metrics,
        };
        super::wait_for_socket(&providers.join("aws.sock")).await;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = node.driver.try_wait() {
                panic!("the driver exited with {status}:\n{}", node.logs());
            }
            if node.call(&["probe"]).await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the driver never answered:\n{}",
                node.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node
    }

    pub fn kubelet_root(&self) -> PathBuf {
        self.dir.path().join("kubelet")
    }

    /// NodePublishVolume of `volume`: Ok, or the driver's error message.
    pub async fn publish(&self, volume: &PodVolume) -> Result<(), String> {
        let context = serde_json::to_string(&volume.context).unwrap();
        let target = volume.target.display().to_string();
        self.call(&[
            "publish",
            "-volume-id",
            &volume.volume_id,
            "-target",
            &target,
            "-context",
            &context,
        ])
        .await
    }

    /// NodeUnpublishVolume of `volume`.
    pub async fn unpublish(&self, volume: &PodVolume) -> Result<(), String> {
        let target = volume.target.display().to_string();
        self.call(&[
            "unpublish",
            "-volume-id",
            &volume.volume_id,
            "-target",
            &target,
        ])
        .await
    }

    /// One csikubelet call (on a blocking thread: the test's runtime serves the proxy).
    async fn call(&self, args: &[&str]) -> Result<(), String> {
        let mut command = Command::new(&self.kubelet);
        command
            .arg(args[0])
            .arg("-endpoint")
            .arg(&self.endpoint)
            .args(&args[1..]);
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("csikubelet runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "csikubelet {args:?}: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let outcome: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("csikubelet printed {stdout:?}: {e}"));
        if outcome["ok"] == true {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                outcome["code"].as_str().unwrap_or(""),
                outcome["message"].as_str().unwrap_or("")
            ))
        }
    }

    /// The driver's counter `name` (its metrics endpoint), summed over its labels.
    pub async fn driver_metric(&self, name: &str) -> u64 {
        let port = self.metrics;
        let text = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
            stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
            let mut text = String::new();
            stream.read_to_string(&mut text)?;
            Ok::<_, std::io::Error>(text)
        })
        .await
        .unwrap()
        .expect("the driver's metrics");
        text.lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// Both processes' logs, for failure messages.
    pub fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "--- driver log:\n{}\n--- provider log:\n{}",
            tail(&read("driver.log")),
            tail(&read("provider.log"))
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for child in [&mut self.driver, &mut self.provider] {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deepest first; lazily, so a busy mount cannot keep the directory.
        let mut mounts = mounts_under(self.dir.path());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for mount in mounts {
            let _ = Command::new("umount").arg("-l").arg(&mount).status();
        }
    }
}

/// Mount points at or under `dir` (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(point.replace("\\040", " ")))
        .filter(|point| point.starts_with(dir))
        .collect()
}

/// The file system type mounted at `path`, if it is a mount point.
pub fn mounted_type(path: &Path) -> Option<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (Path::new(left.split(' ').nth(4)?) == path)
                .then(|| right.split(' ').next().unwrap_or("").to_string())
        })
}

/// Makes `target` look last written an hour ago: the driver's rotation of it is due.
pub fn age(target: &Path) {
    std::fs::File::open(target)
        .and_then(|dir| dir.set_modified(SystemTime::now() - Duration::from_secs(3600)))
        .unwrap_or_else(|e| panic!("aging {}: {e}", target.display()));
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
