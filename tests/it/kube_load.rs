//! The load N provider processes put on one real API server (`common::kube_server`):
//! requests, bytes the API server sends, and watches, at start-up and in steady state.
//!
//! The counts are asserted (one list and one watch of service accounts and of the own
//! node per provider, no GET without a mount, no re-list or GET in steady state); the
//! bytes are measured and printed, with the extrapolation docs/kubernetes.md
//! quotes. Sizes come from the
//! environment: `KUBE_LOAD_PROVIDERS` (10), `KUBE_LOAD_SERVICE_ACCOUNTS` (1000),
//! `KUBE_LOAD_UPDATES` (50); `KUBE_LOAD_REPORT=<file>` also writes the report there.

use crate::common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kube_fixtures::pod_on;
use common::kube_server::ControlPlane;
use common::tcp_relay::Relay;
use futures::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
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

/// The provider binary as the DaemonSet runs it on node `node`.
fn start_provider(dir: &Path, kubeconfig: &Path, node: &str) -> Process {
    let volume = dir.join(node);
    std::fs::create_dir_all(&volume).unwrap();
    let log = dir.join(format!("{node}.log"));
    let port = common::kube_server::free_port();
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
    sa_gets: f64,
    node_lists: f64,
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
        sa_gets: req("serviceaccounts", "GET"),
        node_lists: req("nodes", "LIST"),
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

/// A provider's own count of its requests that succeeded, by resource and verb.
async fn provider_requests(url: &str) -> impl Fn(&str, &str) -> f64 {
    let m = provider_metrics(url).await;
    move |resource, verb| {
        sample(
            &m,
            "secrets_store_provider_aws_kubernetes_requests_total",
            &[("resource", resource), ("verb", verb), ("outcome", "ok")],
        )
    }
}

/// "flow schema/priority level count" for each pair that dispatched requests between.
fn classified(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> Vec<String> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (d > 0.0).then(|| format!("{k} {d}"))
        })
        .collect()
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

/// The cluster: service accounts in ten namespaces (every second one annotated), a node
/// per provider and two pods on each.
async fn populate(admin: &kube::Client, accounts: usize, providers: usize) {
    let pp = PostParams::default();
    for n in 0..NAMESPACES {
        let ns = Namespace {
            metadata: meta(&format!("team-{n}")),
            ..Default::default()
        };
        Api::<Namespace>::all(admin.clone())
            .create(&pp, &ns)
            .await
            .unwrap();
    }
    let namespaced = |i: usize| format!("team-{}", i % NAMESPACES);
    futures::stream::iter(0..accounts)
        .map(|i| {
            let api = Api::<ServiceAccount>::namespaced(admin.clone(), &namespaced(i));
            let mut sa = ServiceAccount {
                metadata: meta(&format!("app-{i}")),
                ..Default::default()
            };
            if i % 2 == 0 {
                sa.metadata.annotations = Some(BTreeMap::from([(
                    ROLE_ANNOTATION.to_string(),
                    role_of(i, 1),
                )]));
            }
            let pp = pp.clone();
            async move { api.create(&pp, &sa).await.map(|_| ()) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .expect("service accounts created");
    for p in 0..providers {
        let mut node = Node {
            metadata: meta(&format!("node-{p}")),
            ..Default::default()
        };
        node.metadata.labels = Some(BTreeMap::from([(
            REGION_LABEL.to_string(),
            "us-east-1".to_string(),
        )]));
        Api::<Node>::all(admin.clone())
            .create(&pp, &node)
            .await
            .unwrap();
        for k in 0..2 {
            let i = (p * 2 + k) % accounts.max(1);
            let pod = pod_on(
                &format!("app-{i}-{p}-{k}"),
                &format!("node-{p}"),
                &format!("app-{i}"),
            );
            Api::<Pod>::namespaced(admin.clone(), &namespaced(i))
                .create(&pp, &pod)
                .await
                .unwrap();
        }
    }
}

async fn count_service_accounts(admin: &kube::Client) -> usize {
    Api::<ServiceAccount>::all(admin.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .len()
}

fn role_of(i: usize, version: u32) -> String {
    format!("arn:aws:iam::123456789012:role/app-{i}-v{version}")
}

/// Until every provider has logged that its service-account watch synced.
async fn wait_synced(running: &[Process]) {
    let start = Instant::now();
    for p in running {
        let log = || std::fs::read_to_string(&p.log).unwrap_or_default();
        while !log().contains("service accounts synced") {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "a provider never synced:\n{}",
                log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Bytes of the list of all service accounts in three encodings, and of one GET through
/// a relay of its own (the existing provider's request per mount).
struct Sizes {
    full: f64,
    metadata: f64,
    protobuf: f64,
    per_get: f64,
}

async fn sizes(plane: &ControlPlane, admin: &kube::Client) -> Sizes {
    let path = "/api/v1/serviceaccounts";
    let full = body_bytes(admin, path, "application/json").await as f64;
    let metadata = body_bytes(
        admin,
        path,
        "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
    )
    .await as f64;
    let protobuf = body_bytes(admin, path, "application/vnd.kubernetes.protobuf").await as f64;
    let relay = Relay::start(plane.port).await;
    let kubeconfig = plane.install_provider("-gets", &relay.url, |_| {}).await;
    let client = kube::Client::try_from(ControlPlane::config(&kubeconfig).await).unwrap();
    let api = Api::<ServiceAccount>::namespaced(client, "team-0");
    api.get("app-0").await.unwrap(); // the connection set up
    let (from, gets) = (relay.bytes_down(), 50);
    for _ in 0..gets {
        api.get("app-0").await.unwrap();
    }
    let per_get = (relay.bytes_down() - from) as f64 / gets as f64;
    Sizes {
        full,
        metadata,
        protobuf,
        per_get,
    }
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
    populate(&admin, accounts, providers).await;

    // Every provider through one relay, which counts what the API server sends them.
    let relay = Relay::start(plane.port).await;
    let kubeconfig = plane.install_provider("", &relay.url, |_| {}).await;
    let listed = count_service_accounts(&admin).await;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let before = server_view(&plane).await;
    let flows_before = flows(&plane.metrics().await);
    let running: Vec<Process> = (0..providers)
        .map(|p| start_provider(dir.path(), &kubeconfig, &format!("node-{p}")))
        .collect();
    wait_synced(&running).await;
    // "synced" is logged when the list is done, before the watch is opened.
    let n = providers as f64;
    let start = Instant::now();
    loop {
        let now = server_view(&plane).await;
        let open = (
            now.sa_watches_open - before.sa_watches_open,
            now.node_watches_open - before.node_watches_open,
        );
        if open == (n, n) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "open watches {open:?}, expected {n} of each"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    settle(&relay).await;
    let started = server_view(&plane).await;
    let flows_after = flows(&plane.metrics().await);
    let startup_bytes = relay.bytes_down() as f64;
    let rss: Vec<u64> = running.iter().map(|p| rss_kib(p.child.id())).collect();

    // Counted by each provider itself: one list (in pages) and one watch per resource.
    let pages = listed.div_ceil(500) as f64; // the watcher lists in pages of 500
    for p in &running {
        let own = provider_requests(&p.ops).await;
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
    assert_eq!(started.sa_watches_open - before.sa_watches_open, n);
    assert_eq!(started.node_watches_open - before.node_watches_open, n);
    assert_eq!(started.sa_gets, before.sa_gets);

    // Steady state: role annotations changed; every provider receives each event.
    let churn_from = relay.bytes_down();
    for u in 0..updates {
        let i = (u * 2) % accounts.max(1);
        let api =
            Api::<ServiceAccount>::namespaced(admin.clone(), &format!("team-{}", i % NAMESPACES));
        let patch =
            serde_json::json!({"metadata": {"annotations": {ROLE_ANNOTATION: role_of(i, 2)}}});
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
    assert_eq!(steady.sa_gets, started.sa_gets, "no GET in steady state");
    assert_eq!(steady.sa_watches_open, started.sa_watches_open);
    drop(running);

    let sizes = sizes(&plane, &admin).await;
    let per_provider_startup = startup_bytes / n;
    // Sanity of the measurement itself: each provider received the whole list.
    assert!(
        per_provider_startup >= sizes.full,
        "{per_provider_startup} < {}",
        sizes.full
    );
    let measured = Measured {
        providers,
        accounts,
        updates,
        listed,
        pages,
        before,
        started,
        classified: classified(&flows_before, &flows_after),
        rss,
        per_provider_startup,
        per_event: churn_bytes / (n * updates as f64),
        sizes,
    };
    let report = measured.report();
    eprintln!("{report}");
    if let Ok(path) = std::env::var("KUBE_LOAD_REPORT") {
        std::fs::write(path, &report).unwrap();
    }
}

struct Measured {
    providers: usize,
    accounts: usize,
    updates: usize,
    listed: usize,
    pages: f64,
    before: ServerView,
    started: ServerView,
    classified: Vec<String>,
    rss: Vec<u64>,
    per_provider_startup: f64,
    per_event: f64,
    sizes: Sizes,
}

impl Measured {
    /// The figures, and the extrapolation to 5,000 nodes and 100,000 service accounts
    /// (linear in both: per-item and per-event bytes as measured, the rest of start-up
    /// as a fixed part per node).
    fn report(&self) -> String {
        let (b, s, z) = (&self.before, &self.started, &self.sizes);
        let per_sa = z.full / self.listed as f64;
        let fixed = (self.per_provider_startup - z.full).max(0.0);
        let (nodes, sas) = (5000.0, 100_000.0);
        let node_startup = fixed + per_sa * sas;
        let node_lists = (sas / 500.0).ceil() + 1.0;
        let mut r = String::new();
        let _ = writeln!(
            r,
            "providers={} service_accounts={} updates={} (kube-apiserver v1.37.2, watch cache on)",
            self.providers, self.accounts, self.updates
        );
        let _ = writeln!(r, "start-up, per provider: {:.0} B from the API server ({} list page(s) + 1 watch of service accounts, 1 list + 1 watch of its node)", self.per_provider_startup, self.pages);
        let _ = writeln!(r, "start-up, API server: +{} LIST of serviceaccounts, +{} LIST of nodes; +{} / +{} open watches",
            s.sa_lists - b.sa_lists, s.node_lists - b.node_lists,
            s.sa_watches_open - b.sa_watches_open, s.node_watches_open - b.node_watches_open);
        let _ = writeln!(r, "start-up, behind the API server: {} etcd requests for service accounts; {} lists served from the watch cache, {} from etcd",
            s.sa_etcd - b.sa_etcd, s.sa_cache_lists - b.sa_cache_lists, s.sa_storage_lists - b.sa_storage_lists);
        let _ = writeln!(
            r,
            "start-up, API priority and fairness (flow schema/priority level: requests): {}",
            self.classified.join(", ")
        );
        let _ = writeln!(
            r,
            "provider RSS after sync (this build): {} KiB median, {} KiB max",
            median(&self.rss),
            self.rss.iter().max().copied().unwrap_or(0)
        );
        let _ = writeln!(r, "list of all {} service accounts: {:.0} B as JSON ({per_sa:.0} B each), {:.0} B as metadata-only JSON ({:+.1}%), {:.0} B as protobuf ({:+.1}%)",
            self.listed, z.full, z.metadata, (z.metadata / z.full - 1.0) * 100.0, z.protobuf, (z.protobuf / z.full - 1.0) * 100.0);
        let _ = writeln!(
            r,
            "steady state: {:.0} B per provider per service-account update; no re-list, no GET",
            self.per_event
        );
        let _ = writeln!(
            r,
            "one GET of a service account (the existing provider's request per mount): {:.0} B",
            z.per_get
        );
        let _ = writeln!(
            r,
            "extrapolated to 5,000 nodes and 100,000 service accounts:"
        );
        let _ = writeln!(r, "  start-up per node {} in {node_lists} list requests; all nodes {} in {:.0} list requests", mib(node_startup), mib(node_startup * nodes), node_lists * nodes);
        let _ = writeln!(
            r,
            "  10,000 open watches (re-requested every 290 s by kube-rs: {:.1} requests/s)",
            2.0 * nodes / 290.0
        );
        let _ = writeln!(
            r,
            "  each service-account update: {} to all nodes",
            mib(self.per_event * nodes)
        );
        let _ = writeln!(
            r,
            "  existing provider (a GET per mount): {} per 1,000 mounts",
            mib(z.per_get * 1000.0)
        );
        r
    }
}
