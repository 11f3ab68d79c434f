//! The load N provider processes put on one real API server (`common::kube_server`):
//! requests, bytes the API server sends, and watches, at start-up and in steady state.
//!
//! The counts are asserted (one list and one watch of service accounts and of the own
//! node per provider, no GET without a mount); the bytes are measured and printed, with
//! the extrapolation the README's Kubernetes section quotes. Sizes come from the
//! environment: `KUBE_LOAD_PROVIDERS` (10), `KUBE_LOAD_SERVICE_ACCOUNTS` (1000),
//! `KUBE_LOAD_UPDATES` (50); `KUBE_LOAD_REPORT=<file>` also writes the report there.

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kube_server::ControlPlane;
use common::tcp_relay::Relay;
use futures::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{Container, Namespace, Node, Pod, PodSpec, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use provider::adapters::kube::{REGION_LABEL, ROLE_ANNOTATION};

const BIN: &str = env!("CARGO_BIN_EXE_secrets-store-csi-driver-provider-aws");
const NAMESPACES: usize = 10;

fn size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

struct Process {
    child: Child,
    log: PathBuf,
    ops: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The provider binary as the DaemonSet runs it on node `node`.
fn start_provider(dir: &Path, kubeconfig: &Path, node: &str) -> Process {
    let volume = dir.join(node);
    std::fs::create_dir_all(&volume).unwrap();
    let log = dir.join(format!("{node}.log"));
    let port = free_port();
    let child = Command::new(BIN)
        .arg(format!("--provider-volume={}", volume.display()))
        .arg(format!("--metrics-addr=127.0.0.1:{port}"))
        .args(["--log-format", "json"])
        .env("KUBECONFIG", kubeconfig)
        .env("NODE_NAME", node)
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the provider starts");
    Process {
        child,
        log,
        ops: format!("http://127.0.0.1:{port}"),
    }
}

/// Sum of the samples of `name` whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What the API server reports about the provider's two resources.
#[derive(Debug, Clone, Copy, Default)]
struct ServerView {
    sa_lists: f64,
    sa_watch_requests: f64,
    sa_gets: f64,
    node_lists: f64,
    node_watch_requests: f64,
    sa_watches_open: f64,
    node_watches_open: f64,
    /// Calls the API server made to etcd for service accounts.
    sa_etcd: f64,
    /// Service-account lists served from the watch cache, and from etcd.
    sa_cache_lists: f64,
    sa_storage_lists: f64,
}

async fn server_view(plane: &ControlPlane) -> ServerView {
    let m = plane.metrics().await;
    let req = |resource, verb| {
        sample(
            &m,
            "apiserver_request_total",
            &[("resource", resource), ("verb", verb)],
        )
    };
    let open = |resource| {
        sample(
            &m,
            "apiserver_longrunning_requests",
            &[("resource", resource), ("verb", "WATCH")],
        )
    };
    ServerView {
        sa_lists: req("serviceaccounts", "LIST"),
        sa_watch_requests: req("serviceaccounts", "WATCH"),
        sa_gets: req("serviceaccounts", "GET"),
        node_lists: req("nodes", "LIST"),
        node_watch_requests: req("nodes", "WATCH"),
        sa_watches_open: open("serviceaccounts"),
        node_watches_open: open("nodes"),
        sa_etcd: sample(
            &m,
            "etcd_requests_total",
            &[("resource", "serviceaccounts")],
        ),
        sa_cache_lists: sample(
            &m,
            "apiserver_storage_list_total",
            &[("resource", "serviceaccounts"), ("storage", "watchcache")],
        ),
        sa_storage_lists: sample(
            &m,
            "apiserver_storage_list_total",
            &[("resource", "serviceaccounts")],
        ) - sample(
            &m,
            "apiserver_storage_list_total",
            &[("resource", "serviceaccounts"), ("storage", "watchcache")],
        ),
    }
}

async fn provider_metrics(url: &str) -> String {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, http_body_util::Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .get(format!("{url}/metrics").parse().unwrap())
        .await
        .expect("the provider's metrics");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// Bytes of one raw response body, with `accept` as the Accept header.
async fn body_bytes(client: &kube::Client, path: &str, accept: &str) -> usize {
    let req = http::Request::get(path)
        .header(http::header::ACCEPT, accept)
        .body(kube::client::Body::empty())
        .unwrap();
    let response = client.send(req).await.expect("raw request");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .len()
}

/// Waits until the relay's byte count has not moved for a second.
async fn settle(relay: &Relay) {
    let mut last = relay.bytes_down();
    let mut still = Instant::now();
    let start = Instant::now();
    while still.elapsed() < Duration::from_secs(1) && start.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = relay.bytes_down();
        if now != last {
            last = now;
            still = Instant::now();
        }
    }
}

/// Dispatched requests by "flow schema/priority level".
fn flows(metrics: &str) -> BTreeMap<String, f64> {
    let label = |line: &str, name: &str| {
        let start = line.find(&format!("{name}=\""))? + name.len() + 2;
        let len = line[start..].find('"')?;
        Some(line[start..start + len].to_string())
    };
    let mut out = BTreeMap::new();
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_flowcontrol_dispatched_requests_total{"))
    {
        if let (Some(schema), Some(level), Some(v)) = (
            label(line, "flow_schema"),
            label(line, "priority_level"),
            line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()),
        ) {
            *out.entry(format!("{schema}/{level}")).or_default() += v;
        }
    }
    out
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn median(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn n_providers_cost_one_list_and_one_watch_each() {
    let (providers, accounts, updates) = (
        size("KUBE_LOAD_PROVIDERS", 10),
        size("KUBE_LOAD_SERVICE_ACCOUNTS", 1000),
        size("KUBE_LOAD_UPDATES", 50),
    );
    let Some(plane) = ControlPlane::start(&[]).await else {
        return;
    };
    let admin = plane.admin().await.unwrap();

    // The cluster: service accounts in ten namespaces (every second one annotated), a
    // node per provider and two pods on each.
    for n in 0..NAMESPACES {
        Api::<Namespace>::all(admin.clone())
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: meta(&format!("team-{n}")),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    futures::stream::iter(0..accounts)
        .map(|i| {
            let api = Api::<ServiceAccount>::namespaced(
                admin.clone(),
                &format!("team-{}", i % NAMESPACES),
            );
            let mut sa = ServiceAccount {
                metadata: meta(&format!("app-{i}")),
                ..Default::default()
            };
            if i % 2 == 0 {
                sa.metadata.annotations = Some(BTreeMap::from([(
                    ROLE_ANNOTATION.to_string(),
                    format!("arn:aws:iam::123456789012:role/app-{i}"),
                )]));
            }
            async move { api.create(&PostParams::default(), &sa).await.map(|_| ()) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("service accounts created");
    for p in 0..providers {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(format!("node-{p}")),
                labels: Some(BTreeMap::from([(
                    REGION_LABEL.to_string(),
                    "us-east-1".to_string(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Node>::all(admin.clone())
            .create(&PostParams::default(), &node)
            .await
            .unwrap();
        for k in 0..2 {
            let i = (p * 2 + k) % accounts.max(1);
            let pod = Pod {
                metadata: meta(&format!("app-{i}-{p}-{k}")),
                spec: Some(PodSpec {
                    node_name: Some(format!("node-{p}")),
                    service_account_name: Some(format!("app-{i}")),
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some("app:1".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            };
            Api::<Pod>::namespaced(admin.clone(), &format!("team-{}", i % NAMESPACES))
                .create(&PostParams::default(), &pod)
                .await
                .unwrap();
        }
    }

    // Every provider through one relay, which counts what the API server sends them.
    let relay = Relay::start(plane.port).await;
    let kubeconfig = plane.install_provider("", &relay.url, |_| {}).await;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let listed = Api::<ServiceAccount>::all(admin.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .len();
    let before = server_view(&plane).await;
    let flows_before = flows(&plane.metrics().await);
    let running: Vec<Process> = (0..providers)
        .map(|p| start_provider(dir.path(), &kubeconfig, &format!("node-{p}")))
        .collect();
    let start = Instant::now();
    for p in &running {
        while !std::fs::read_to_string(&p.log)
            .unwrap_or_default()
            .contains("service accounts synced")
        {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "a provider never synced:\n{}",
                std::fs::read_to_string(&p.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    settle(&relay).await;
    let started = server_view(&plane).await;
    let flows_after = flows(&plane.metrics().await);
    // API priority and fairness: where the providers' requests were classified.
    let classified: Vec<String> = flows_after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - flows_before.get(k).copied().unwrap_or(0.0);
            (d > 0.0).then(|| format!("{} {d}", k))
        })
        .collect();
    let rss: Vec<u64> = running.iter().map(|p| rss_kib(p.child.id())).collect();
    let startup_bytes = relay.bytes_down() as f64;

    // Counted by each provider itself: one list (in pages) and one watch per resource.
    let pages = listed.div_ceil(500) as f64; // the watcher lists in pages of 500
    for p in &running {
        let m = provider_metrics(&p.ops).await;
        let own = |resource, verb| {
            sample(
                &m,
                "secrets_store_provider_aws_kubernetes_requests_total",
                &[("resource", resource), ("verb", verb), ("outcome", "ok")],
            )
        };
        assert_eq!(
            own("serviceaccounts", "list"),
            pages,
            "service-account list pages"
        );
        assert_eq!(own("serviceaccounts", "watch"), 1.0);
        assert_eq!(own("serviceaccounts", "get"), 0.0, "no GET without a mount");
        assert_eq!(own("nodes", "list"), 1.0);
        assert_eq!(own("nodes", "watch"), 1.0);
    }
    // And by the API server: N more open watches on each resource.
    let n = providers as f64;
    assert_eq!(started.sa_watches_open - before.sa_watches_open, n);
    assert_eq!(started.node_watches_open - before.node_watches_open, n);
    assert_eq!(started.sa_gets - before.sa_gets, 0.0);

    // Steady state, idle: what the watches cost with nothing changing.
    let idle_seconds = 20;
    let idle_from = relay.bytes_down();
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let idle_bytes = (relay.bytes_down() - idle_from) as f64;

    // Steady state, churn: role annotations changed; every provider receives each event.
    let churn_from = relay.bytes_down();
    for u in 0..updates {
        let i = (u * 2) % accounts.max(1);
        let api =
            Api::<ServiceAccount>::namespaced(admin.clone(), &format!("team-{}", i % NAMESPACES));
        let patch = serde_json::json!({"metadata": {"annotations": {ROLE_ANNOTATION: format!("arn:aws:iam::123456789012:role/app-{i}-v2")}}});
        api.patch(
            &format!("app-{i}"),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    }
    settle(&relay).await;
    let churn_bytes = (relay.bytes_down() - churn_from) as f64;
    let steady = server_view(&plane).await;
    assert_eq!(
        steady.sa_lists, started.sa_lists,
        "no re-list in steady state"
    );
    assert_eq!(steady.sa_watches_open, started.sa_watches_open);

    // What a list costs per service account, whole objects vs metadata only, and one GET
    // (the existing provider's request per mount).
    let full = body_bytes(&admin, "/api/v1/serviceaccounts", "application/json").await as f64;
    let metadata = body_bytes(
        &admin,
        "/api/v1/serviceaccounts",
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .await as f64;
    let protobuf = body_bytes(
        &admin,
        "/api/v1/serviceaccounts",
        "application/vnd.kubernetes.protobuf",
    )
    .await as f64;
    let get_relay = Relay::start(plane.port).await;
    let get_config = ControlPlane::config(
        &plane
            .install_provider("-gets", &get_relay.url, |_| {})
            .await,
    )
    .await;
    let get_client = kube::Client::try_from(get_config).unwrap();
    let gets = 50;
    Api::<ServiceAccount>::namespaced(get_client.clone(), "team-0")
        .get("app-0")
        .await
        .unwrap();
    let get_from = get_relay.bytes_down();
    for _ in 0..gets {
        Api::<ServiceAccount>::namespaced(get_client.clone(), "team-0")
            .get("app-0")
            .await
            .unwrap();
    }
    let per_get = (get_relay.bytes_down() - get_from) as f64 / gets as f64;

    let per_sa_full = full / listed as f64;
    let per_provider_startup = startup_bytes / n;
    let fixed = (per_provider_startup - full).max(0.0);
    let per_event = churn_bytes / (n * updates as f64);
    let per_idle_minute = idle_bytes / n * 60.0 / idle_seconds as f64;

    let (nodes, sas) = (5000.0, 100_000.0);
    let node_startup = fixed + per_sa_full * sas;
    let mut report = String::new();
    let _ = writeln!(report, "providers={providers} service_accounts={accounts} updates={updates} (kube-apiserver v1.37.2, watch cache on)");
    let _ = writeln!(report, "start-up, per provider: {:.0} B from the API server ({} list page(s) + 1 watch of service accounts, 1 list + 1 watch of its node)", per_provider_startup, pages);
    let _ = writeln!(report, "start-up, API server: +{} LIST, +{} WATCH requests on serviceaccounts; +{} LIST, +{} WATCH on nodes; +{} / +{} open watches",
        started.sa_lists - before.sa_lists, started.sa_watch_requests - before.sa_watch_requests,
        started.node_lists - before.node_lists, started.node_watch_requests - before.node_watch_requests,
        started.sa_watches_open - before.sa_watches_open, started.node_watches_open - before.node_watches_open);
    let _ = writeln!(
        report,
        "start-up, API priority and fairness (flow schema/priority level: requests): {}",
        classified.join(", ")
    );
    let _ = writeln!(
        report,
        "provider RSS after sync (this build): {} KiB median, {} KiB max",
        median(&rss),
        rss.iter().max().copied().unwrap_or(0)
    );
    let _ = writeln!(report, "start-up, behind the API server: {} etcd requests for service accounts; {} lists served from the watch cache, {} from etcd",
        started.sa_etcd - before.sa_etcd, started.sa_cache_lists - before.sa_cache_lists, started.sa_storage_lists - before.sa_storage_lists);
    let _ = writeln!(report, "list of all service accounts: {full:.0} B as JSON ({per_sa_full:.0} B each), {metadata:.0} B as metadata-only JSON ({:+.1}%), {protobuf:.0} B as protobuf ({:+.1}%)",
        (metadata / full - 1.0) * 100.0, (protobuf / full - 1.0) * 100.0);
    let _ = writeln!(report, "steady state, idle: {per_idle_minute:.0} B per provider per minute; churn: {per_event:.0} B per provider per service-account update");
    let _ = writeln!(
        report,
        "one GET of a service account (the existing provider's request per mount): {per_get:.0} B"
    );
    let _ = writeln!(
        report,
        "extrapolated to 5,000 nodes and 100,000 service accounts:"
    );
    let _ = writeln!(report, "  start-up per node {} ; all nodes {} ; 5,000 open watches of service accounts and 5,000 of one node each",
        mib(node_startup), mib(node_startup * nodes));
    let _ = writeln!(
        report,
        "  each service-account update: {} to all nodes; idle: {} per minute",
        mib(per_event * nodes),
        mib(per_idle_minute * nodes)
    );
    let _ = writeln!(report, "  existing provider (a GET per mount): {} per 1,000 mounts, with no start-up cost and no watch", mib(per_get * 1000.0));
    eprintln!("{report}");
    if let Ok(path) = std::env::var("KUBE_LOAD_REPORT") {
        std::fs::write(path, &report).unwrap();
    }
    drop(running);
    // Sanity of the measurement itself: each provider received the whole list.
    assert!(
        per_provider_startup >= full,
        "{per_provider_startup} < {full}"
    );
}
