//! The cluster side of the real driver's tests (`common::csi_node` runs the node): the
//! tools, the driver's CRDs, RBAC and ServiceAccount from its Go module (installed once
//! into the shared API server), SecretProviderClasses, and pods with an inline volume of
//! the driver and the volume context the kubelet would send for them.
//!
//! The driver mounts a tmpfs on every target, so these tests need root: without it they
//! skip with a message, as they do without the tools (unless `REQUIRE_GO_TOOLS=1`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    CSIVolumeSource, Container, Pod, PodSpec, ServiceAccount, Volume,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::core::ObjectMeta;
use tokio::sync::OnceCell;

use super::csi_node::Node;
use super::kube_fixtures::eventually;
use super::kube_server::{wait_until_authorized, ControlPlane};

/// The region of the cluster tests' AWS (moto behind the fault proxy).
pub const REGION: &str = "eu-west-1";
/// A region whose every call the proxy refuses as IAM does.
pub const DENIED_REGION: &str = "eu-west-2";
/// MySecret's value in the cluster tests.
pub const VALUE: &str = r#"{"username":"memeuser","password":"hunter2"}"#;

/// Reads of secret values our provider made through `proxy`.
pub fn secret_reads(proxy: &super::fault_proxy::Proxy) -> usize {
    proxy.count("GetSecretValue") + proxy.count("BatchGetSecretValue")
}

pub const DRIVER_NAME: &str = "secrets-store.csi.k8s.io";
const DRIVER_NAMESPACE: &str = "kube-system";
const DRIVER_SERVICE_ACCOUNT: &str = "secrets-store-csi-driver";
/// The pod's volume, as its spec names it.
const VOLUME: &str = "secrets";

/// The two programs, and the driver's module (its CRDs and RBAC).
pub struct Tools {
    pub driver: PathBuf,
    pub kubelet: PathBuf,
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
            let crds = ["secretproviderclasses", "secretproviderclasspodstatuses"]
                .map(|kind| deploy.join(format!("secrets-store.csi.x-k8s.io_{kind}.yaml")));
            establish(&admin, &crds).await;
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

/// Creates the CustomResourceDefinitions of `files` (one each; kept if there already) and
/// waits until every one is established.
pub async fn establish(admin: &kube::Client, files: &[PathBuf]) {
    let crds = Api::<CustomResourceDefinition>::all(admin.clone());
    let mut names = Vec::new();
    for file in files {
        let crd: CustomResourceDefinition = read_yaml(file).remove(0);
        names.push(crd.metadata.name.clone().expect("a CRD has a name"));
        create(&crds, crd).await;
    }
    for name in names {
        eventually(&format!("CRD {name} is established"), async || {
            let Some(crd) = crds.get_opt(&name).await.unwrap() else {
                return false;
            };
            let conditions = crd
                .status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten());
            conditions
                .into_iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
        .await;
    }
}

pub fn read_yaml<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Creates `object`; one that is there already (another test binary's run) is kept.
pub async fn create<K>(api: &Api<K>, object: K)
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
pub async fn token(
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
