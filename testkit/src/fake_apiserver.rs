//! A fake Kubernetes API server over plain HTTP (for tests and the benchmark): service accounts, nodes and pods, with
//! list + watch for the first two, injected answers (status or hang) for single reads,
//! and counters of single reads by resource.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Inject {
    Normal,
    Status(u16),
    Hang,
}

pub struct ApiState {
    pub service_accounts: BTreeMap<(String, String), BTreeMap<String, String>>,
    pub nodes: BTreeMap<String, BTreeMap<String, String>>,
    pub pods: BTreeMap<(String, String), String>,
    /// Single reads (GET of one object) by resource: "serviceaccounts", "nodes", "pods".
    pub gets: HashMap<String, usize>,
    pub lists: usize,
    pub watches: usize,
    pub inject: Inject,
    /// Lists and watches of collections answer 403, as under the existing provider's
    /// ClusterRole (get only). Each refused one still counts in `lists`/`watches`.
    pub forbid_list_and_watch: bool,
    version: u64,
}

#[derive(Clone)]
pub struct FakeApi {
    pub url: String,
    pub state: Arc<Mutex<ApiState>>,
    events: broadcast::Sender<(String, Value)>,
}

fn sa_json(ns: &str, name: &str, annotations: &BTreeMap<String, String>, rv: u64) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount",
           "metadata": {"name": name, "namespace": ns, "resourceVersion": rv.to_string(), "annotations": annotations}})
}

fn node_json(name: &str, labels: &BTreeMap<String, String>, rv: u64) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "resourceVersion": rv.to_string(), "labels": labels}})
}

impl FakeApi {
    pub fn gets(&self, resource: &str) -> usize {
        self.state
            .lock()
            .expect("fake API server")
            .gets
            .get(resource)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_gets(&self) -> usize {
        self.state
            .lock()
            .expect("fake API server")
            .gets
            .values()
            .sum()
    }

    /// A kubeconfig pointing at this server, for a provider process (KUBECONFIG).
    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(
            path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{}\"}}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context: {{cluster: fake, user: u}}\ncurrent-context: c\n",
                self.url
            ),
        )
    }

    /// Watch streams open right now.
    pub fn open_watches(&self) -> usize {
        self.events.receiver_count()
    }

    /// Answer 403 to every list and watch from now on.
    pub fn forbid_list_and_watch(&self) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forbid_list_and_watch = true;
    }

    pub fn inject(&self, inject: Inject) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).inject = inject;
    }

    pub fn set_service_account(&self, ns: &str, name: &str, role: Option<&str>, announce: bool) {
        let mut annotations = BTreeMap::new();
        if let Some(role) = role {
            annotations.insert("eks.amazonaws.com/role-arn".to_string(), role.to_string());
        }
        let object = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.version += 1;
            let existed = s
                .service_accounts
                .insert((ns.into(), name.into()), annotations.clone())
                .is_some();
            (existed, sa_json(ns, name, &annotations, s.version))
        };
        if announce {
            let kind = if object.0 { "MODIFIED" } else { "ADDED" };
            let _ = self.events.send((
                "serviceaccounts".into(),
                json!({"type": kind, "object": object.1}),
            ));
        }
    }

    pub fn set_node(&self, name: &str, region: Option<&str>) {
        let mut labels = BTreeMap::new();
        if let Some(region) = region {
            labels.insert(
                "topology.kubernetes.io/region".to_string(),
                region.to_string(),
            );
        }
        let object = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.version += 1;
            s.nodes.insert(name.into(), labels.clone());
            node_json(name, &labels, s.version)
        };
        let _ = self.events.send((
            "nodes".into(),
            json!({"type": "MODIFIED", "object": object}),
        ));
    }

    pub fn set_pod(&self, ns: &str, name: &str, node: &str) {
        self.state
            .lock()
            .expect("fake API server")
            .pods
            .insert((ns.into(), name.into()), node.into());
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn full(status: u16, value: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(value.to_string())).boxed())
        .expect("fake API server")
}

fn status(code: u16, reason: &str) -> Response<Body> {
    full(
        code,
        json!({"apiVersion": "v1", "kind": "Status", "status": "Failure", "message": format!("injected {code}"), "reason": reason, "code": code}),
    )
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%3D", "=").replace("%3d", "=")))
        .collect()
}

async fn handle(api: FakeApi, req: Request<Incoming>) -> Response<Body> {
    let path: Vec<String> = req
        .uri()
        .path()
        .trim_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let q = query(&req);
    let is_watch = q.get("watch").is_some_and(|v| v == "true" || v == "1");
    let parts: Vec<&str> = path.iter().map(String::as_str).collect();
    match parts.as_slice() {
        ["api", "v1", "serviceaccounts"] | ["api", "v1", "nodes"] => {
            let resource = parts[2].to_string();
            let field_name = q
                .get("fieldSelector")
                .and_then(|f| f.strip_prefix("metadata.name="))
                .map(str::to_string);
            {
                let mut s = api.state.lock().unwrap_or_else(|p| p.into_inner());
                if s.forbid_list_and_watch {
                    if is_watch {
                        s.watches += 1;
                    } else {
                        s.lists += 1;
                    }
                    return status(403, "Forbidden");
                }
            }
            if is_watch {
                api.state.lock().unwrap_or_else(|p| p.into_inner()).watches += 1;
                let events = BroadcastStream::new(api.events.subscribe()).filter_map(move |e| {
                    let (resource, field_name) = (resource.clone(), field_name.clone());
                    async move {
                        let (kind, event) = e.ok()?;
                        if kind != resource {
                            return None;
                        }
                        if let Some(want) = &field_name {
                            if event["object"]["metadata"]["name"].as_str() != Some(want.as_str()) {
                                return None;
                            }
                        }
                        Some(Ok::<_, Infallible>(Frame::data(Bytes::from(format!(
                            "{event}\n"
                        )))))
                    }
                });
                return Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(BodyExt::boxed(StreamBody::new(events)))
                    .expect("fake API server");
            }
            let s = {
                let mut s = api.state.lock().unwrap_or_else(|p| p.into_inner());
                s.lists += 1;
                let rv = s.version;
                let items: Vec<Value> = if resource == "serviceaccounts" {
                    s.service_accounts
                        .iter()
                        .map(|((ns, n), a)| sa_json(ns, n, a, rv))
                        .collect()
                } else {
                    s.nodes
                        .iter()
                        .filter(|(n, _)| field_name.as_ref().is_none_or(|want| want == *n))
                        .map(|(n, l)| node_json(n, l, rv))
                        .collect()
                };
                let kind = if resource == "serviceaccounts" {
                    "ServiceAccountList"
                } else {
                    "NodeList"
                };
                json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": rv.to_string()}, "items": items})
            };
            full(200, s)
        }
        ["api", "v1", "namespaces", ns, resource @ ("serviceaccounts" | "pods"), name] => {
            single(&api, resource, Some(ns), name).await
        }
        ["api", "v1", "nodes", name] => single(&api, "nodes", None, name).await,
        _ => status(404, "NotFound"),
    }
}

async fn single(api: &FakeApi, resource: &str, ns: Option<&str>, name: &str) -> Response<Body> {
    let (inject, found) = {
        let mut s = api.state.lock().unwrap_or_else(|p| p.into_inner());
        *s.gets.entry(resource.to_string()).or_default() += 1;
        let rv = s.version;
        let found = match resource {
            "serviceaccounts" => s.service_accounts.get(&(ns.unwrap_or("").into(), name.into())).map(|a| sa_json(ns.unwrap_or(""), name, a, rv)),
            "nodes" => s.nodes.get(name).map(|l| node_json(name, l, rv)),
            _ => s.pods.get(&(ns.unwrap_or("").into(), name.into())).map(|node| {
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": {"nodeName": node, "containers": []}})
            }),
        };
        (s.inject, found)
    };
    match inject {
        Inject::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Inject::Status(code) => status(code, "Injected"),
        Inject::Normal => match found {
            Some(object) => full(200, object),
            None => status(404, "NotFound"),
        },
    }
}

pub async fn start() -> FakeApi {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("fake API server");
    let url = format!("http://{}", listener.local_addr().expect("fake API server"));
    let (events, _) = broadcast::channel(256);
    let api = FakeApi {
        url,
        state: Arc::new(Mutex::new(ApiState {
            service_accounts: BTreeMap::new(),
            nodes: BTreeMap::new(),
            pods: BTreeMap::new(),
            gets: HashMap::new(),
            lists: 0,
            watches: 0,
            inject: Inject::Normal,
            forbid_list_and_watch: false,
            version: 1,
        })),
        events,
    };
    let server = api.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let api = server.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(handle(api, req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    api
}
