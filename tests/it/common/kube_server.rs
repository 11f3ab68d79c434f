//! A real Kubernetes control plane on loopback: `.tools/kubeserver` (Go, `tests/kubeserver/`,
//! built by `./scripts/test` from the pinned kube-apiserver and etcd modules) runs etcd
//! and kube-apiserver as two processes, with TLS, RBAC authorization and a service-account
//! issuer. The provider authenticates as its own ServiceAccount, bound to the ClusterRole
//! of `deploy/installer.yaml`, with a token from the TokenRequest API.
//!
//! Without the tool the tests skip with a message, unless `REQUIRE_GO_TOOLS=1` (set by the
//! test command) makes that a failure. `KUBESERVER` names another build of it.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The names `deploy/installer.yaml` gives the provider's identity.
pub const PROVIDER_NAMESPACE: &str = "kube-system";
pub const PROVIDER_SERVICE_ACCOUNT: &str = "csi-secrets-store-provider-aws";

pub fn tool() -> Option<PathBuf> {
    super::go_tool("kubeserver", "KUBESERVER", "the real API server tests")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// etcd and kube-apiserver, killed when dropped (and when the test process dies: the tool
/// exits when its parent does). Its pki, data and logs are in a directory under the
/// target's tmp.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    bin: PathBuf,
    etcd: Child,
    apiserver: Option<Child>,
    pub etcd_url: String,
    pub port: u16,
    flags: Vec<String>,
    starts: usize,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(mut a) = self.apiserver.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
        let _ = self.etcd.kill();
        let _ = self.etcd.wait();
    }
}

impl ControlPlane {
    /// Starts etcd and the API server (with `flags` added to the defaults) and waits until
    /// the API server is ready. None when the tool is missing (the test skips).
    pub async fn start(flags: &[&str]) -> Option<ControlPlane> {
        let bin = tool()?;
        let dir = work_dir();
        let status = Command::new(&bin)
            .arg("pki")
            .arg(dir.path())
            .status()
            .expect("kubeserver pki runs");
        assert!(status.success(), "kubeserver pki failed");
        let etcd_url = format!("http://127.0.0.1:{}", free_port());
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let mut etcd = spawn(
            &bin,
            dir.path(),
            "etcd",
            &[
                "etcd".into(),
                dir.path().join("etcd").display().to_string(),
                etcd_url.clone(),
                peer_url,
            ],
        );
        wait_for_etcd(&mut etcd, &dir.path().join("etcd.log"));
        let mut plane = ControlPlane {
            dir,
            bin,
            etcd,
            apiserver: None,
            etcd_url,
            port: free_port(),
            flags: flags.iter().map(|f| f.to_string()).collect(),
            starts: 0,
        };
        plane.start_apiserver().await;
        Some(plane)
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn apiserver_args(&self) -> Vec<String> {
        let d = |f: &str| self.dir.path().join(f).display().to_string();
        let mut args = vec![
            "apiserver".to_string(),
            format!("--etcd-servers={}", self.etcd_url),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            // A loopback address cannot be published as the `kubernetes` service endpoint.
            "--endpoint-reconciler-type=none".into(),
            format!("--secure-port={}", self.port),
            format!("--cert-dir={}", d("apiserver-certs")),
            format!("--tls-cert-file={}", d("server.crt")),
            format!("--tls-private-key-file={}", d("server.key")),
            format!("--token-auth-file={}", d("tokens.csv")),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", d("sa.pub")),
            format!("--service-account-signing-key-file={}", d("sa.key")),
            "--service-cluster-ip-range=10.96.0.0/24".into(),
            "--allow-privileged=false".into(),
            // The tests are the only ones to compact, so a 410 comes when they say.
            "--etcd-compaction-interval=0".into(),
            "--v=0".into(),
        ];
        args.extend(self.flags.iter().cloned());
        args
    }

    /// (Re)starts the API server on the same port and etcd, and waits until it is ready.
    pub async fn start_apiserver(&mut self) {
        assert!(self.apiserver.is_none(), "the API server is running");
        self.starts += 1;
        let log = format!("apiserver-{}", self.starts);
        let child = spawn(&self.bin, self.dir.path(), &log, &self.apiserver_args());
        self.apiserver = Some(child);
        self.wait_ready(&log).await;
    }

    /// Kills the API server (as a crash or node loss would); etcd keeps the data.
    pub fn kill_apiserver(&mut self) {
        if let Some(mut a) = self.apiserver.take() {
            let _ = a.kill();
            let _ = a.wait();
        }
    }

    async fn wait_ready(&mut self, log: &str) {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < Duration::from_secs(180) {
            if let Ok(Some(status)) = self.etcd.try_wait() {
                panic!(
                    "etcd exited with {status}:\n{}",
                    tail(&self.dir.path().join("etcd.log"))
                );
            }
            if let Some(status) = self
                .apiserver
                .as_mut()
                .and_then(|a| a.try_wait().ok().flatten())
            {
                panic!(
                    "kube-apiserver exited with {status}:\n{}",
                    tail(&self.dir.path().join(format!("{log}.log")))
                );
            }
            match self.admin().await {
                Ok(client) => {
                    let req = http::Request::get("/readyz").body(Vec::new()).unwrap();
                    match client.request_text(req).await {
                        Ok(text) if text.trim() == "ok" => return,
                        Ok(text) => last = text,
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "kube-apiserver not ready within 180s ({last}):\n{}",
            tail(&self.dir.path().join(format!("{log}.log")))
        );
    }

    /// Discards etcd's history up to now: a watch resuming from before gets 410 Gone.
    pub fn compact(&self) {
        let out = Command::new(&self.bin)
            .args(["compact", &self.etcd_url])
            .output()
            .expect("kubeserver compact runs");
        assert!(
            out.status.success(),
            "compaction failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A kubeconfig for `server` (this API server, or a proxy in front of it) with a token.
    pub fn write_kubeconfig(&self, name: &str, server: &str, token: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.kubeconfig"));
        let ca = self.dir.path().join("ca.crt");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {name}\n  user:\n    token: {token}\ncontexts:\n- name: {name}\n  context:\n    cluster: test\n    user: {name}\ncurrent-context: {name}\n",
            ca = ca.display()
        );
        // Whole or not at all: concurrent tests write the admin's and read it.
        let mut file = tempfile::NamedTempFile::new_in(self.dir.path()).expect("kubeconfig file");
        file.write_all(text.as_bytes()).expect("kubeconfig written");
        file.persist(&path).expect("kubeconfig in place");
        path
    }

    pub async fn config(path: &Path) -> kube::Config {
        let kubeconfig = Kubeconfig::read_from(path).expect("kubeconfig parses");
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig loads")
    }

    /// A client in `system:masters`, for the tests' own changes.
    pub async fn admin(&self) -> Result<kube::Client, kube::Error> {
        let token = std::fs::read_to_string(self.dir.path().join("admin.token"))
            .expect("admin token written by kubeserver pki");
        let path = self.write_kubeconfig("admin", &self.url(), token.trim());
        kube::Client::try_from(Self::config(&path).await)
    }

    /// The API server's own metrics (Prometheus text).
    pub async fn metrics(&self) -> String {
        let client = self.admin().await.expect("admin client");
        let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
        client.request_text(req).await.expect("API server metrics")
    }

    /// Installs the provider's ServiceAccount, ClusterRole and ClusterRoleBinding as
    /// `deploy/installer.yaml` ships them, with `edit` applied to the ClusterRole and all
    /// three renamed with `suffix` (so tests with different RBAC share one server), and
    /// returns a kubeconfig that authenticates as that ServiceAccount against `server`.
    pub async fn install_provider(
        &self,
        suffix: &str,
        server: &str,
        edit: impl FnOnce(&mut ClusterRole),
    ) -> PathBuf {
        let admin = self.admin().await.expect("admin client");
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(
            &std::fs::read_to_string(
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/installer.yaml"),
            )
            .expect("deploy/installer.yaml"),
        )
        .expect("installer parses");
        let of_kind = |kind: &str| {
            docs.iter()
                .find(|d| d["kind"] == kind)
                .cloned()
                .unwrap_or_else(|| panic!("installer has a {kind}"))
        };
        let mut sa: ServiceAccount = serde_json::from_value(of_kind("ServiceAccount")).unwrap();
        let mut role: ClusterRole = serde_json::from_value(of_kind("ClusterRole")).unwrap();
        let mut binding: ClusterRoleBinding =
            serde_json::from_value(of_kind("ClusterRoleBinding")).unwrap();
        assert_eq!(sa.metadata.name.as_deref(), Some(PROVIDER_SERVICE_ACCOUNT));
        assert_eq!(sa.metadata.namespace.as_deref(), Some(PROVIDER_NAMESPACE));
        let renamed = |name: &Option<String>| Some(format!("{}{suffix}", name.as_deref().unwrap()));
        sa.metadata.name = renamed(&sa.metadata.name);
        role.metadata.name = renamed(&role.metadata.name);
        binding.metadata.name = renamed(&binding.metadata.name);
        binding.role_ref.name = role.metadata.name.clone().unwrap();
        for subject in binding.subjects.iter_mut().flatten() {
            assert_eq!(subject.name, PROVIDER_SERVICE_ACCOUNT);
            subject.name = sa.metadata.name.clone().unwrap();
        }
        edit(&mut role);
        let pp = PostParams::default();
        let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), PROVIDER_NAMESPACE);
        accounts
            .create(&pp, &sa)
            .await
            .expect("provider ServiceAccount");
        Api::<ClusterRole>::all(admin.clone())
            .create(&pp, &role)
            .await
            .expect("provider ClusterRole");
        Api::<ClusterRoleBinding>::all(admin.clone())
            .create(&pp, &binding)
            .await
            .expect("provider ClusterRoleBinding");
        let user = format!(
            "system:serviceaccount:{PROVIDER_NAMESPACE}:{}",
            sa.metadata.name.as_deref().unwrap()
        );
        wait_until_authorized(&admin, &user, &role).await;
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: vec![],
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            ..Default::default()
        };
        let name = sa.metadata.name.clone().unwrap();
        let token = accounts
            .create_token_request(&name, &pp, &request)
            .await
            .expect("a token for the provider's ServiceAccount")
            .status
            .expect("token status")
            .token;
        self.write_kubeconfig(&name, server, &token)
    }
}

/// A directory under the target's tmp for this control plane. Shared control planes live
/// in statics, which are never dropped: directories of test processes that are gone are
/// removed here instead.
fn work_dir() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix("kubeserver-")
            .and_then(|rest| rest.split('-').next());
        if let Some(pid) = pid {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("kubeserver-{}-", std::process::id()))
        .tempdir_in(root)
        .expect("temporary directory")
}

/// Until etcd says it is ready (or exits, or a minute passes).
fn wait_for_etcd(etcd: &mut Child, log: &Path) {
    let start = Instant::now();
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("etcd ready")
    {
        if let Ok(Some(status)) = etcd.try_wait() {
            panic!("etcd exited with {status}:\n{}", tail(log));
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "etcd not ready within 60s:\n{}",
            tail(log)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Until the API server's authorizer grants `user` every verb `role` names (in the rule's
/// first API group, on its first resource name if it names any): a binding is created
/// before the RBAC cache has seen it, and a test must not meet that gap.
pub async fn wait_until_authorized(admin: &kube::Client, user: &str, role: &ClusterRole) {
    let reviews = Api::<SubjectAccessReview>::all(admin.clone());
    for rule in role.rules.iter().flatten() {
        for resource in rule.resources.iter().flatten() {
            let (name, subresource) = match resource.split_once('/') {
                Some((name, sub)) => (name, Some(sub)),
                None => (resource.as_str(), None),
            };
            for verb in &rule.verbs {
                let review = SubjectAccessReview {
                    spec: SubjectAccessReviewSpec {
                        user: Some(user.to_string()),
                        resource_attributes: Some(ResourceAttributes {
                            verb: Some(verb.clone()),
                            group: rule.api_groups.iter().flatten().next().cloned(),
                            resource: Some(name.to_string()),
                            subresource: subresource.map(str::to_string),
                            name: rule.resource_names.iter().flatten().next().cloned(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let start = Instant::now();
                loop {
                    let answer = reviews
                        .create(&PostParams::default(), &review)
                        .await
                        .expect("SubjectAccessReview");
                    if answer.status.is_some_and(|s| s.allowed) {
                        break;
                    }
                    assert!(
                        start.elapsed() < Duration::from_secs(30),
                        "{user} never allowed to {verb} {resource}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

fn spawn(bin: &Path, dir: &Path, log: &str, args: &[String]) -> Child {
    let file = std::fs::File::create(dir.join(format!("{log}.log"))).expect("log file");
    Command::new(bin)
        .args(args)
        .env("KUBESERVER_PARENT_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .spawn()
        .expect("kubeserver starts")
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
